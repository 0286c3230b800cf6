//! Block maps in bmaptool's format (version 2.0, SHA-256): the list of the
//! image's blocks that must reach the card, each range with its checksum,
//! so that `bmaptool copy` writes megabytes instead of the whole card and
//! verifies what it wrote.
//!
//! The mapped blocks are those the builder wrote, zeros included
//! ([`SparseImage::mapped`]); the rest (free space of the file systems, the
//! cache's empty blocks, the gaps between partitions) is left as it is on
//! the card. The file's own checksum (`BmapFileChecksum`) is the SHA-256 of
//! the file with that field set to 64 `0`s, as bmaptool computes it; with
//! the image size it pins down every byte of the image, so it is what
//! `image build` prints instead of a hash of the whole (sparse) file.

use std::fmt::Write;

use sha2::{Digest, Sha256};

use crate::disk::SparseImage;

/// A rendered block map.
#[derive(Debug, Clone)]
pub struct Bmap {
    pub text: String,
    /// `BmapFileChecksum`: SHA-256 of the file with this field zeroed.
    pub checksum: String,
    /// Bytes of the image in mapped blocks.
    pub mapped_bytes: u64,
}

const ZERO_CHECKSUM: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// The block map of `image`.
pub fn render(image: &SparseImage, mut checked: impl FnMut(u64)) -> Bmap {
    let block = SparseImage::BLOCK_SIZE;
    let len = image.len();
    let blocks = len.div_ceil(block);
    let ranges = image.mapped();
    let mapped_blocks: u64 = ranges.iter().map(|r| r.end - r.start).sum();
    let mapped_bytes = image.mapped_bytes();

    let mut text = String::new();
    let _ = write!(
        text,
        "<?xml version=\"1.0\" ?>\n\
         <!-- Block map of a bootgate image: the blocks listed here hold data and\n     \
         must be written to the card; the others are free space. Write the image\n     \
         with: bmaptool copy IMAGE /dev/sdX -->\n\
         <bmap version=\"2.0\">\n    \
         <!-- Image size in bytes: {} -->\n    \
         <ImageSize> {len} </ImageSize>\n    \
         <BlockSize> {block} </BlockSize>\n    \
         <BlocksCount> {blocks} </BlocksCount>\n    \
         <!-- Mapped: {} -->\n    \
         <MappedBlocksCount> {mapped_blocks} </MappedBlocksCount>\n    \
         <ChecksumType> sha256 </ChecksumType>\n    \
         <BmapFileChecksum> {ZERO_CHECKSUM} </BmapFileChecksum>\n    \
         <BlockMap>\n",
        crate::disk::Size(len),
        crate::disk::Size(mapped_bytes),
    );
    let mut buf = vec![0u8; 1 << 20];
    for range in &ranges {
        let start = range.start * block;
        let end = (range.end * block).min(len);
        let mut hasher = Sha256::new();
        let mut pos = start;
        while pos < end {
            let n = (end - pos).min(buf.len() as u64) as usize;
            image.read_at(pos, &mut buf[..n]);
            hasher.update(&buf[..n]);
            checked(n as u64);
            pos += n as u64;
        }
        let sum = hex::encode(hasher.finalize());
        let (first, last) = (range.start, range.end - 1);
        if first == last {
            let _ = writeln!(text, "        <Range chksum=\"{sum}\"> {first} </Range>");
        } else {
            let _ = writeln!(
                text,
                "        <Range chksum=\"{sum}\"> {first}-{last} </Range>"
            );
        }
    }
    text.push_str("    </BlockMap>\n</bmap>\n");
    let checksum = hex::encode(Sha256::digest(text.as_bytes()));
    let text = text.replacen(ZERO_CHECKSUM, &checksum, 1);
    Bmap {
        text,
        checksum,
        mapped_bytes,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Seek, SeekFrom, Write as _};

    #[test]
    fn lists_written_blocks_with_checksums() {
        let mut image = SparseImage::new(10 * 4096 + 512);
        image.write_all(b"head").unwrap();
        image.seek(SeekFrom::Start(4096)).unwrap();
        image.write_all(&[0; 4096]).unwrap();
        image.seek(SeekFrom::End(-1)).unwrap();
        image.write_all(b"t").unwrap();
        let bmap = render(&image, |_| {});
        let mut first = vec![0u8; 8192];
        first[..4].copy_from_slice(b"head");
        let mut last = vec![0u8; 512];
        last[511] = b't';
        for needle in [
            "<ImageSize> 41472 </ImageSize>".to_string(),
            "<BlocksCount> 11 </BlocksCount>".to_string(),
            "<MappedBlocksCount> 3 </MappedBlocksCount>".to_string(),
            format!(
                "<Range chksum=\"{}\"> 0-1 </Range>",
                hex::encode(Sha256::digest(&first))
            ),
            format!(
                "<Range chksum=\"{}\"> 10 </Range>",
                hex::encode(Sha256::digest(&last))
            ),
            format!("<BmapFileChecksum> {} </BmapFileChecksum>", bmap.checksum),
        ] {
            assert!(bmap.text.contains(&needle), "{needle}\n{}", bmap.text);
        }
        assert_eq!(bmap.mapped_bytes, 8192 + 512);
        let zeroed = bmap.text.replace(&bmap.checksum, ZERO_CHECKSUM);
        assert_eq!(
            hex::encode(Sha256::digest(zeroed.as_bytes())),
            bmap.checksum
        );
    }
}
