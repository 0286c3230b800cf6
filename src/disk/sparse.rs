//! An in-memory disk of fixed length that stores only the blocks written with
//! something other than zeros. Partition tables and file systems are built in
//! it, then [`SparseImage::runs`] streams it out: data runs are written, the
//! zero gaps between them are skipped (left as holes in a sparse file) yet
//! still visible to whoever hashes the image.
//!
//! It also remembers every block that was *written*, zeros included: those
//! are the blocks whose content matters (a FAT's free entries, the unused
//! slots of a GPT's entry array). [`SparseImage::mapped`] lists them, for the
//! block map that lets `bmaptool` skip the rest of a card.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::ops::Range;

const BLOCK: usize = 4096;
const BLOCK_U64: u64 = BLOCK as u64;

/// A sparse, fixed-size, in-memory block device.
#[derive(Debug, Default)]
pub struct SparseImage {
    len: u64,
    pos: u64,
    blocks: BTreeMap<u64, Box<[u8; BLOCK]>>,
    /// Blocks written with zeros only (never stored).
    zero_written: BTreeSet<u64>,
}

/// One stretch of a [`SparseImage`], in order.
#[derive(Debug, PartialEq, Eq)]
pub enum Run<'a> {
    /// Bytes that were written, starting at `offset`.
    Data { offset: u64, bytes: &'a [u8] },
    /// `len` bytes of zeros starting at `offset`, never stored.
    Zeros { offset: u64, len: u64 },
}

impl SparseImage {
    /// A device of `len` bytes, all zero.
    pub fn new(len: u64) -> Self {
        Self {
            len,
            pos: 0,
            blocks: BTreeMap::new(),
            zero_written: BTreeSet::new(),
        }
    }

    /// Size of the blocks [`SparseImage::mapped`] counts in.
    pub const BLOCK_SIZE: u64 = BLOCK_U64;

    /// Ranges of block numbers (of [`SparseImage::BLOCK_SIZE`] bytes) that
    /// were written, with data or with zeros, merged and in order: what a
    /// card must receive for the image to work on it.
    pub fn mapped(&self) -> Vec<Range<u64>> {
        let mut ranges: Vec<Range<u64>> = Vec::new();
        let mut stored = self.blocks.keys().copied().peekable();
        let mut zeros = self.zero_written.iter().copied().peekable();
        loop {
            let next = match (stored.peek(), zeros.peek()) {
                (Some(&a), Some(&b)) if a <= b => stored.next(),
                (Some(_), Some(_)) => zeros.next(),
                (Some(_), None) => stored.next(),
                (None, Some(_)) => zeros.next(),
                (None, None) => break,
            };
            let block = next.expect("peeked");
            match ranges.last_mut() {
                Some(last) if last.end == block => last.end += 1,
                _ => ranges.push(block..block + 1),
            }
        }
        ranges
    }

    /// Bytes in the blocks [`SparseImage::mapped`] lists.
    pub fn mapped_bytes(&self) -> u64 {
        self.mapped()
            .iter()
            .map(|r| (r.end * BLOCK_U64).min(self.len) - r.start * BLOCK_U64)
            .sum()
    }

    /// Copies `buf.len()` bytes at `offset` into `buf` (zeros where nothing
    /// is stored) without moving the cursor.
    pub fn read_at(&self, offset: u64, buf: &mut [u8]) {
        let mut done = 0;
        while done < buf.len() {
            let (index, within, n) = block_span(offset + done as u64, buf.len() - done);
            match self.blocks.get(&index) {
                Some(block) => buf[done..done + n].copy_from_slice(&block[within..within + n]),
                None => buf[done..done + n].fill(0),
            }
            done += n;
        }
    }

    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Bytes held in memory (what a sparse file of this image will allocate).
    pub fn stored_bytes(&self) -> u64 {
        self.blocks.len() as u64 * BLOCK_U64
    }

    /// The whole device from offset 0 to its length as data and zero runs.
    /// Adjacent stored blocks come out one block at a time; a writer that
    /// cares about syscalls buffers them.
    pub fn runs(&self) -> impl Iterator<Item = Run<'_>> {
        let mut next = 0u64;
        let mut blocks = self.blocks.iter().peekable();
        let len = self.len;
        std::iter::from_fn(move || {
            if next >= len {
                return None;
            }
            match blocks.peek() {
                Some(&(&index, _)) if index * BLOCK_U64 == next => {
                    let (_, block) = blocks.next().expect("peeked");
                    let n = (len - next).min(BLOCK_U64) as usize;
                    let run = Run::Data {
                        offset: next,
                        bytes: &block[..n],
                    };
                    next += n as u64;
                    Some(run)
                }
                Some(&(&index, _)) => {
                    let run = Run::Zeros {
                        offset: next,
                        len: index * BLOCK_U64 - next,
                    };
                    next = index * BLOCK_U64;
                    Some(run)
                }
                None => {
                    let run = Run::Zeros {
                        offset: next,
                        len: len - next,
                    };
                    next = len;
                    Some(run)
                }
            }
        })
    }
}

/// The block holding byte `pos`, where `pos` falls within it, and how many of
/// `want` bytes from there stay inside that block.
fn block_span(pos: u64, want: usize) -> (u64, usize, usize) {
    let index = pos / BLOCK_U64;
    let within = (pos % BLOCK_U64) as usize;
    (index, within, want.min(BLOCK - within))
}

impl SparseImage {
    /// [`block_span`] at the cursor, also stopping at the end of the disk.
    /// The cursor must be before the end.
    fn span_at_cursor(&self, want: usize) -> (u64, usize, usize) {
        block_span(self.pos, want.min((self.len - self.pos) as usize))
    }
}

impl Read for SparseImage {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.pos >= self.len || buf.is_empty() {
            return Ok(0);
        }
        let (index, within, n) = self.span_at_cursor(buf.len());
        match self.blocks.get(&index) {
            Some(block) => buf[..n].copy_from_slice(&block[within..within + n]),
            None => buf[..n].fill(0),
        }
        self.pos += n as u64;
        Ok(n)
    }
}

impl Write for SparseImage {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        if self.pos >= self.len {
            return Err(io::Error::new(
                io::ErrorKind::StorageFull,
                format!("write past the end of a {}-byte disk", self.len),
            ));
        }
        let (index, within, n) = self.span_at_cursor(buf.len());
        let data = &buf[..n];
        match self.blocks.get_mut(&index) {
            Some(block) => block[within..within + n].copy_from_slice(data),
            // Zeros over a block never written: nothing to store, but the
            // block now matters.
            None if data.iter().all(|&b| b == 0) => {
                self.zero_written.insert(index);
            }
            None => {
                let mut block = Box::new([0u8; BLOCK]);
                block[within..within + n].copy_from_slice(data);
                self.blocks.insert(index, block);
                self.zero_written.remove(&index);
            }
        }
        self.pos += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Seek for SparseImage {
    fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
        let target = match pos {
            SeekFrom::Start(n) => Some(n),
            SeekFrom::End(d) => self.len.checked_add_signed(d),
            SeekFrom::Current(d) => self.pos.checked_add_signed(d),
        };
        match target {
            Some(n) => {
                self.pos = n;
                Ok(n)
            }
            None => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "seek before the start of the disk",
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_back_writes_and_zeros() {
        let mut disk = SparseImage::new(3 * BLOCK_U64 + 100);
        disk.seek(SeekFrom::Start(BLOCK_U64 - 2)).unwrap();
        disk.write_all(b"hello").unwrap();
        disk.seek(SeekFrom::Start(2 * BLOCK_U64)).unwrap();
        disk.write_all(&[0; 10]).unwrap();
        assert_eq!(disk.stored_bytes(), 2 * BLOCK_U64, "zeros are not stored");

        let mut all = Vec::new();
        disk.seek(SeekFrom::Start(0)).unwrap();
        disk.read_to_end(&mut all).unwrap();
        assert_eq!(all.len() as u64, disk.len());
        let mut expected = vec![0u8; all.len()];
        expected[BLOCK - 2..BLOCK + 3].copy_from_slice(b"hello");
        assert_eq!(all, expected);
    }

    #[test]
    fn runs_cover_the_disk_in_order() {
        let mut disk = SparseImage::new(4 * BLOCK_U64 + 10);
        disk.seek(SeekFrom::Start(BLOCK_U64)).unwrap();
        disk.write_all(b"x").unwrap();
        disk.seek(SeekFrom::End(-1)).unwrap();
        disk.write_all(b"y").unwrap();
        let runs: Vec<_> = disk.runs().collect();
        assert_eq!(runs.len(), 4);
        assert_eq!(
            runs[0],
            Run::Zeros {
                offset: 0,
                len: BLOCK_U64
            }
        );
        assert!(
            matches!(runs[1], Run::Data { offset, bytes } if offset == BLOCK_U64 && bytes.len() == BLOCK && bytes[0] == b'x')
        );
        assert_eq!(
            runs[2],
            Run::Zeros {
                offset: 2 * BLOCK_U64,
                len: 2 * BLOCK_U64
            }
        );
        assert!(
            matches!(runs[3], Run::Data { offset, bytes } if offset == 4 * BLOCK_U64 && bytes == [&[0u8; 9][..], b"y"].concat())
        );
    }

    #[test]
    fn maps_every_written_block_zeros_included() {
        let mut disk = SparseImage::new(10 * BLOCK_U64 + 100);
        disk.seek(SeekFrom::Start(BLOCK_U64 + 10)).unwrap();
        disk.write_all(&[0; BLOCK]).unwrap();
        disk.write_all(b"x").unwrap();
        disk.seek(SeekFrom::Start(5 * BLOCK_U64)).unwrap();
        disk.write_all(b"y").unwrap();
        disk.seek(SeekFrom::Start(5 * BLOCK_U64 + 1)).unwrap();
        disk.write_all(&[0; 3]).unwrap();
        disk.seek(SeekFrom::End(-1)).unwrap();
        disk.write_all(&[0]).unwrap();
        assert_eq!(disk.mapped(), [1..3, 5..6, 10..11]);
        assert_eq!(disk.stored_bytes(), 2 * BLOCK_U64);
        assert_eq!(
            disk.mapped_bytes(),
            3 * BLOCK_U64 + 100,
            "the last block is short"
        );
        let mut buf = [9u8; 4];
        disk.read_at(2 * BLOCK_U64 + 9, &mut buf);
        assert_eq!(buf, [0, b'x', 0, 0]);
    }

    #[test]
    fn refuses_writes_past_the_end() {
        let mut disk = SparseImage::new(10);
        disk.seek(SeekFrom::Start(8)).unwrap();
        let err = disk.write_all(b"abc").unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::StorageFull);
    }
}
