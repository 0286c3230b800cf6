//! Per-machine bootable images: platform recipes that combine [`crate::disk`]
//! (partition tables, FAT), [`crate::bootcfg`] (the `autoexec.ipxe` script) and
//! [`crate::ca`] (the machine's certificate and key, the CA).
//!
//! - [`platform`]: the table of platforms and the firmware each needs.
//! - [`firmware`]: finding firmware files (`--firmware-dir`, `BOOTGATE_FIRMWARE`, `/usr/lib`).
//! - [`esl`]: the CA as an EFI signature list (`TlsCaCertificate`).
//! - [`uboot_script`]: U-Boot legacy script images (`boot.scr`).
//! - [`rpi`]: Raspberry Pi `config.txt` and the `boot.scr` text.
//! - [`cache_fs`]: the ext4 `B2C_CACHE` file system of the cache partition.
//! - [`build`]: resolving inputs and assembling the image.
//! - [`bmap`]: the block map (`<output>.bmap`) bmaptool writes cards with.
//! - [`output`]: atomic, sparse, 0600 output and its block map.
//! - [`interrupt`]: Ctrl-C stops a build cleanly.
//!
//! See `docs/platforms.md` for the layout of each platform's image.

pub mod bmap;
pub mod build;
pub mod cache_fs;
pub mod error;
pub mod esl;
pub mod firmware;
pub mod interrupt;
pub mod output;
pub mod platform;
pub mod rpi;
pub mod uboot_script;

pub use build::{BuildOptions, BuildReport, PartitionReport, Role, build};
pub use error::{ImageError, MissingFirmware};
pub use firmware::{FIRMWARE_ENV, FirmwareSearch, FoundFirmware, LEGACY_FIRMWARE_ENV};
pub use output::{Progress, Silent};
pub use platform::Platform;
