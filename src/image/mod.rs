//! Per-machine bootable images: platform recipes combining disk, bootcfg and ca.
