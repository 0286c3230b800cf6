//! MS-DOS (MBR) partition tables, written with `mbrman`: what the Raspberry Pi
//! boot ROM reads.

use std::io::{Seek, Write};

use anyhow::{Context, Result, bail};
use mbrman::{BOOT_ACTIVE, BOOT_INACTIVE, CHS, MBR, MBRPartitionEntry};

use super::{Extent, FatType, SECTOR};

/// One primary partition.
#[derive(Debug, Clone)]
pub struct MbrPartition {
    /// The system id byte (0x0c FAT32 LBA, 0x0e FAT16 LBA, 0x83 Linux...).
    pub kind: u8,
    /// The "active" flag some boot loaders look for.
    pub bootable: bool,
    pub extent: Extent,
}

/// Partition type byte for a FAT partition addressed by LBA.
pub fn mbr_type_for(fat: FatType) -> u8 {
    match fat {
        FatType::Fat12 => 0x01,
        FatType::Fat16 => 0x0e,
        FatType::Fat32 => 0x0c,
    }
}

/// Writes an MBR with up to four primary partitions. `signature` is the disk
/// identifier Linux shows as `PARTUUID=<signature as 8 hex digits>-01`; it is
/// stored little-endian.
pub fn write_mbr<D: Write + Seek>(
    disk: &mut D,
    signature: u32,
    partitions: &[MbrPartition],
) -> Result<()> {
    if partitions.len() > 4 {
        bail!("an MBR holds at most 4 primary partitions");
    }
    let mut mbr =
        MBR::new_from(disk, SECTOR as u32, signature.to_le_bytes()).context("preparing the MBR")?;
    for (i, part) in partitions.iter().enumerate() {
        let start = u32::try_from(part.extent.first_lba());
        let sectors = u32::try_from(part.extent.sectors());
        let (Ok(start), Ok(sectors)) = (start, sectors) else {
            bail!(
                "partition {} ({:?}) is beyond what an MBR can address",
                i + 1,
                part.extent
            );
        };
        mbr[i + 1] = MBRPartitionEntry {
            boot: if part.bootable {
                BOOT_ACTIVE
            } else {
                BOOT_INACTIVE
            },
            first_chs: chs(u64::from(start)),
            sys: part.kind,
            last_chs: chs(part.extent.last_lba()),
            starting_lba: start,
            sectors,
        };
    }
    mbr.write_into(disk).context("writing the MBR")?;
    Ok(())
}

/// The CHS address fdisk would write, using the conventional 255 heads × 63
/// sectors geometry, or the 1023/254/63 marker past what CHS can reach.
fn chs(lba: u64) -> CHS {
    const HEADS: u64 = 255;
    const SECTORS: u64 = 63;
    let cylinder = lba / (HEADS * SECTORS);
    if cylinder > 1023 {
        return CHS::new(1023, 254, 63);
    }
    CHS::new(
        cylinder as u16,
        ((lba / SECTORS) % HEADS) as u8,
        (lba % SECTORS + 1) as u8,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::disk::SparseImage;
    use std::io::{Read, SeekFrom};

    #[test]
    fn writes_a_readable_table_with_a_little_endian_signature() {
        let mut disk = SparseImage::new(64 << 20);
        let parts = [
            MbrPartition {
                kind: 0x0e,
                bootable: true,
                extent: Extent {
                    start: 1 << 20,
                    len: 32 << 20,
                },
            },
            MbrPartition {
                kind: 0x83,
                bootable: false,
                extent: Extent {
                    start: 33 << 20,
                    len: 31 << 20,
                },
            },
        ];
        write_mbr(&mut disk, 0x1234_5678, &parts).unwrap();
        let mut sector = [0u8; 512];
        disk.seek(SeekFrom::Start(0)).unwrap();
        disk.read_exact(&mut sector).unwrap();
        assert_eq!(sector[440..444], [0x78, 0x56, 0x34, 0x12]);
        assert_eq!(sector[510..512], [0x55, 0xaa]);
        assert_eq!(sector[446], 0x80);
        assert_eq!(sector[446 + 4], 0x0e);
        assert_eq!(sector[462 + 4], 0x83);

        let mbr = MBR::read_from(&mut disk, 512).unwrap();
        assert_eq!(mbr[1].starting_lba, 2048);
        assert_eq!(mbr[2].sectors, (31 << 20) / 512);
    }

    #[test]
    fn chs_matches_fdisk() {
        assert_eq!(chs(2048), CHS::new(0, 32, 33));
        assert_eq!(chs(u64::from(u32::MAX)), CHS::new(1023, 254, 63));
    }
}
