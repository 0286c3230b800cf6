//! Disk image writing: partition tables (GPT, MBR) and FAT file systems, built in
//! memory over a sparse block map and then streamed to a file. Knows nothing of
//! iPXE, machines or platforms: [`crate::image`] is the layer that decides what
//! goes where.
//!
//! Everything here works on any `Read + Write + Seek` device, so the same code
//! writes into a [`SparseImage`] (what the image builder uses: only the blocks
//! that hold data are ever stored or written, so a multi-gigabyte cache
//! partition costs nothing) or into a plain file.

mod fat;
mod fat_dir;
mod gpt;
mod guid;
mod layout;
mod mbr;
mod size;
mod sparse;

pub use fat::{FatFile, FatOptions, FatPreference, FatSummary, FatType, write_fat};
pub use gpt::{GptPartition, write_gpt};
pub use guid::Guid;
pub use layout::{Extent, Layout, LayoutError, TableKind, Want, plan};
pub use mbr::{MbrPartition, mbr_type_for, write_mbr};
pub use size::Size;
pub use sparse::{Run, SparseImage};

/// Logical sector size of every image bootgate writes.
pub const SECTOR: u64 = 512;

/// Partitions start on 1 MiB boundaries: what fdisk and parted do, and what
/// SD cards' erase blocks want.
pub const ALIGN: u64 = 1 << 20;

/// Well-known partition type GUIDs.
pub mod types {
    use super::Guid;

    /// EFI system partition.
    pub const ESP: Guid = Guid::from_u128(0xC12A7328_F81F_11D2_BA4B_00A0C93EC93B);
    /// Linux filesystem data.
    pub const LINUX_DATA: Guid = Guid::from_u128(0x0FC63DAF_8483_4772_8E79_3D69D8477DE4);
    /// Microsoft basic data (what FAT data partitions use on GPT).
    pub const BASIC_DATA: Guid = Guid::from_u128(0xEBD0A0A2_B9E5_4433_87C0_68B6B72699C7);
}
