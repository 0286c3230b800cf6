//! GUID partition tables (with their protective MBR), written with `gptman`.

use std::io::{Read, Seek, Write};

use anyhow::{Context, Result, bail};
use gptman::{GPT, GPTPartitionEntry};

use super::{Extent, Guid, SECTOR};

/// One partition entry.
#[derive(Debug, Clone)]
pub struct GptPartition {
    pub type_guid: Guid,
    pub guid: Guid,
    /// The partition name (at most 36 UTF-16 code units), e.g. `B2C_CACHE`.
    pub name: String,
    pub extent: Extent,
}

/// Writes a protective MBR, the primary GPT and the backup GPT at the end of
/// `disk`, whose current length is taken as the disk's size.
pub fn write_gpt<D: Read + Write + Seek>(
    disk: &mut D,
    disk_guid: Guid,
    partitions: &[GptPartition],
) -> Result<()> {
    let mut gpt = GPT::new_from(disk, SECTOR, disk_guid.to_mixed_endian())
        .context("preparing the GPT header")?;
    for (i, part) in partitions.iter().enumerate() {
        if part.name.encode_utf16().count() > 36 {
            bail!(
                "GPT partition name {:?} is longer than 36 characters",
                part.name
            );
        }
        if !part.extent.start.is_multiple_of(SECTOR)
            || !part.extent.len.is_multiple_of(SECTOR)
            || part.extent.len == 0
        {
            bail!(
                "partition {} is not a whole number of sectors: {:?}",
                i + 1,
                part.extent
            );
        }
        if part.extent.first_lba() < gpt.header.first_usable_lba
            || part.extent.last_lba() > gpt.header.last_usable_lba
        {
            bail!(
                "partition {} ({:?}) lies outside the GPT's usable sectors {}..={}",
                i + 1,
                part.extent,
                gpt.header.first_usable_lba,
                gpt.header.last_usable_lba
            );
        }
        gpt[i as u32 + 1] = GPTPartitionEntry {
            partition_type_guid: part.type_guid.to_mixed_endian(),
            unique_partition_guid: part.guid.to_mixed_endian(),
            starting_lba: part.extent.first_lba(),
            ending_lba: part.extent.last_lba(),
            attribute_bits: 0,
            partition_name: part.name.as_str().into(),
        };
    }
    gpt.write_into(disk).context("writing the GPT")?;
    GPT::write_protective_mbr_into(disk, SECTOR).context("writing the protective MBR")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::disk::{SparseImage, types};

    #[test]
    fn round_trips_through_gptman() {
        let mut disk = SparseImage::new(8 << 20);
        let guid = Guid::from_u128(0x0123_4567_89ab_cdef_0123_4567_89ab_cdef);
        let part = GptPartition {
            type_guid: types::ESP,
            guid: Guid::from_hash([7; 16]),
            name: "ESP".into(),
            extent: Extent {
                start: 1 << 20,
                len: 4 << 20,
            },
        };
        write_gpt(&mut disk, guid, std::slice::from_ref(&part)).unwrap();
        let gpt = GPT::read_from(&mut disk, SECTOR).unwrap();
        assert_eq!(Guid::from_mixed_endian(gpt.header.disk_guid), guid);
        assert_eq!(gpt.header.backup_lba, (8 << 20) / SECTOR - 1);
        assert_eq!(gpt[1].starting_lba, 2048);
        assert_eq!(gpt[1].ending_lba, 2048 + 8192 - 1);
        assert_eq!(gpt[1].partition_name.as_str(), "ESP");
        assert_eq!(
            Guid::from_mixed_endian(gpt[1].partition_type_guid),
            types::ESP
        );
        assert!(gpt[2].is_unused());

        let outside = GptPartition {
            extent: Extent {
                start: 1 << 20,
                len: 7 << 20,
            },
            ..part
        };
        assert!(write_gpt(&mut disk, guid, &[outside]).is_err());
    }
}
