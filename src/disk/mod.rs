//! Disk image writing: partition tables and FAT file systems in a plain file. Knows nothing of iPXE.
