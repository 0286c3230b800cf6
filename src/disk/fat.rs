//! FAT16/FAT32 file systems (what UEFI and the Raspberry Pi boot ROM read).
//!
//! `fatfs` formats the volume; bootgate then writes the whole tree itself, in
//! one pass, because fatfs 0.3 (the latest release) gives every name a long
//! name entry — `.` and `..` included, which `fsck.fat` rejects. Writing a
//! fixed set of files once is simple: directories first, then each file in one
//! contiguous run of clusters, both FATs written in one go, FSInfo updated.
//!
//! Also fixed here, over fatfs's defaults: the volume id (fatfs writes
//! 1234-5678 unless told), `hidden_sectors` (fatfs writes 0; it must be the
//! partition's start), a volume label entry in the root directory (as
//! `mkfs.fat -n` makes), and fixed timestamps so the same inputs give the same
//! bytes.

use std::collections::HashSet;
use std::io::{self, Read, Seek, SeekFrom, Write};

use anyhow::{Context, Result, bail};
pub use fatfs::FatType;
use fatfs::FormatVolumeOptions;

use super::fat_dir::{
    ATTR_ARCHIVE, ATTR_DIRECTORY, ATTR_VOLUME_ID, ENTRY, exact_short_name, generated_short_name,
    long_entries, short_entry, validate_long_name,
};

/// Which FAT to aim for. It decides the cluster size; when the partition is
/// too small for it, fatfs falls back to the next type that fits (see
/// [`FatSummary::fat_type`] for the outcome).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FatPreference {
    /// FAT16 with 1-2 KiB clusters on small partitions (what the original
    /// Raspberry Pi images used).
    Fat16,
    /// FAT32, what the UEFI specification asks of an EFI system partition
    /// (512-byte clusters up to 260 MiB, like `mkfs.fat`).
    Fat32,
}

#[derive(Debug, Clone)]
pub struct FatOptions {
    pub preference: FatPreference,
    /// The serial number shown as `XXXX-XXXX` (blkid's UUID).
    pub volume_id: u32,
    /// Up to 11 letters, digits, `_` or `-`; stored upper-case.
    pub label: String,
    /// The partition's first LBA, recorded in the boot sector.
    pub hidden_sectors: u32,
}

/// What a written file system turned out to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FatSummary {
    pub fat_type: FatType,
    pub cluster_size: u32,
    pub total_clusters: u32,
    pub free_clusters: u32,
}

/// One file to put on the file system.
pub struct FatFile<'a> {
    /// `/`-separated path; parent folders are created as needed.
    pub path: String,
    /// Exact length; the reader must yield exactly this many bytes.
    pub len: u64,
    pub reader: Box<dyn Read + 'a>,
}

/// Formats `part` (exactly the partition's bytes, e.g. an
/// `fscommon::StreamSlice`) and writes `files` into it. `progress` is called
/// with the number of file bytes written as they go.
pub fn write_fat<D: Read + Write + Seek>(
    mut part: D,
    opts: &FatOptions,
    files: Vec<FatFile<'_>>,
    progress: &mut dyn FnMut(u64),
) -> Result<FatSummary> {
    let label = label_bytes(&opts.label)?;
    let base = FormatVolumeOptions::new()
        .volume_id(opts.volume_id)
        .volume_label(label);
    let preferred = base.clone().fat_type(match opts.preference {
        FatPreference::Fat16 => FatType::Fat16,
        FatPreference::Fat32 => FatType::Fat32,
    });
    let formatted = fatfs::format_volume(&mut part, preferred).or_else(|_| {
        // The preferred cluster size fits no FAT type at this size: let fatfs pick.
        part.seek(SeekFrom::Start(0))?;
        fatfs::format_volume(&mut part, base)
    });
    formatted.context("formatting the FAT file system")?;
    let geo = Geometry::read(&mut part).context("reading the new FAT boot sector")?;
    geo.set_hidden_sectors(&mut part, opts.hidden_sectors)
        .context("writing the FAT boot sector")?;
    let mut tree = Tree::default();
    for (index, file) in files.iter().enumerate() {
        tree.add(&file.path, index)?;
    }
    Writer {
        part: &mut part,
        geo: &geo,
        label,
    }
    .write(&tree, files, progress)
}

/// An 11-byte, space-padded, upper-case volume label.
fn label_bytes(label: &str) -> Result<[u8; 11]> {
    if label.is_empty()
        || label.len() > 11
        || !label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        bail!("FAT volume label {label:?} must be 1-11 letters, digits, '_' or '-'");
    }
    let mut bytes = [b' '; 11];
    bytes[..label.len()].copy_from_slice(label.to_ascii_uppercase().as_bytes());
    Ok(bytes)
}

/// The numbers of a formatted volume that placing files needs.
#[derive(Debug)]
struct Geometry {
    fat_type: FatType,
    bytes_per_sector: u64,
    cluster_size: u64,
    fat_start: u64,
    fat_bytes: u64,
    fats: u64,
    /// FAT12/16: the fixed root directory's offset and entry count.
    root_start: u64,
    root_entries: u64,
    /// FAT32: the root directory's first cluster.
    root_cluster: u32,
    data_start: u64,
    total_clusters: u32,
    fs_info_sector: u64,
    backup_boot_sector: u64,
}

impl Geometry {
    fn read<D: Read + Seek>(part: &mut D) -> io::Result<Self> {
        let mut b = [0u8; 512];
        part.seek(SeekFrom::Start(0))?;
        part.read_exact(&mut b)?;
        let u16_at = |o: usize| u64::from(u16::from_le_bytes([b[o], b[o + 1]]));
        let u32_at = |o: usize| u64::from(u32::from_le_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]]));
        let bytes_per_sector = u16_at(0x0b);
        let sectors_per_cluster = u64::from(b[0x0d]);
        let reserved = u16_at(0x0e);
        let fats = u64::from(b[0x10]);
        let root_entries = u16_at(0x11);
        let total = match u16_at(0x13) {
            0 => u32_at(0x20),
            n => n,
        };
        let sectors_per_fat = match u16_at(0x16) {
            0 => u32_at(0x24),
            n => n,
        };
        let root_sectors = (root_entries * ENTRY as u64).div_ceil(bytes_per_sector);
        let data_sector = reserved + fats * sectors_per_fat + root_sectors;
        let total_clusters = ((total - data_sector) / sectors_per_cluster) as u32;
        // The same thresholds fatfs (and the FAT specification) use.
        let fat_type = if total_clusters < 4085 {
            FatType::Fat12
        } else if total_clusters < 65525 {
            FatType::Fat16
        } else {
            FatType::Fat32
        };
        let fat32 = fat_type == FatType::Fat32;
        Ok(Self {
            fat_type,
            bytes_per_sector,
            cluster_size: sectors_per_cluster * bytes_per_sector,
            fat_start: reserved * bytes_per_sector,
            fat_bytes: sectors_per_fat * bytes_per_sector,
            fats,
            root_start: (reserved + fats * sectors_per_fat) * bytes_per_sector,
            root_entries,
            root_cluster: if fat32 { u32_at(0x2c) as u32 } else { 0 },
            data_start: data_sector * bytes_per_sector,
            total_clusters,
            fs_info_sector: if fat32 { u16_at(0x30) } else { 0 },
            backup_boot_sector: if fat32 { u16_at(0x32) } else { 0 },
        })
    }

    fn cluster_offset(&self, cluster: u32) -> u64 {
        self.data_start + u64::from(cluster - 2) * self.cluster_size
    }

    /// fatfs leaves `hidden_sectors` at 0; firmware that locates the file
    /// system through it, and `fsck.fat`, want the partition's start. FAT32's
    /// backup boot sector must say the same.
    fn set_hidden_sectors<D: Write + Seek>(&self, part: &mut D, hidden: u32) -> io::Result<()> {
        let mut sectors = vec![0];
        if self.backup_boot_sector != 0 && self.backup_boot_sector != 0xffff {
            sectors.push(self.backup_boot_sector);
        }
        for sector in sectors {
            part.seek(SeekFrom::Start(sector * self.bytes_per_sector + 0x1c))?;
            part.write_all(&hidden.to_le_bytes())?;
        }
        Ok(())
    }
}

/// The folder tree, in the order paths were added. Node 0 is the root.
struct Tree {
    nodes: Vec<Node>,
}

struct Node {
    name: String,
    /// `Some(file index)` for files.
    file: Option<usize>,
    parent: usize,
    children: Vec<usize>,
}

impl Default for Tree {
    fn default() -> Self {
        Self {
            nodes: vec![Node {
                name: String::new(),
                file: None,
                parent: 0,
                children: Vec::new(),
            }],
        }
    }
}

impl Tree {
    fn find(&self, dir: usize, name: &str) -> Option<usize> {
        self.nodes[dir]
            .children
            .iter()
            .copied()
            .find(|&c| self.nodes[c].name.eq_ignore_ascii_case(name))
    }

    fn push(&mut self, parent: usize, name: &str, file: Option<usize>) -> usize {
        self.nodes.push(Node {
            name: name.to_string(),
            file,
            parent,
            children: Vec::new(),
        });
        let id = self.nodes.len() - 1;
        self.nodes[parent].children.push(id);
        id
    }

    fn add(&mut self, path: &str, index: usize) -> Result<()> {
        let components: Vec<&str> = path.split('/').filter(|c| !c.is_empty()).collect();
        let Some((name, parents)) = components.split_last() else {
            bail!("empty file path {path:?}");
        };
        for c in &components {
            validate_long_name(c).with_context(|| format!("file path {path:?}"))?;
        }
        let mut dir = 0;
        for parent in parents {
            dir = match self.find(dir, parent) {
                Some(d) if self.nodes[d].file.is_none() => d,
                Some(_) => bail!("{path}: {parent} is a file"),
                None => self.push(dir, parent, None),
            };
        }
        if self.find(dir, name).is_some() {
            bail!("{path} is given twice (FAT names ignore case)");
        }
        self.push(dir, name, Some(index));
        Ok(())
    }

    /// Folders other than the root, parents before children.
    fn dirs(&self) -> Vec<usize> {
        let mut order = Vec::new();
        let mut queue = std::collections::VecDeque::from([0usize]);
        while let Some(d) = queue.pop_front() {
            if d != 0 {
                order.push(d);
            }
            for &c in &self.nodes[d].children {
                if self.nodes[c].file.is_none() {
                    queue.push_back(c);
                }
            }
        }
        order
    }
}

struct Writer<'p, D> {
    part: &'p mut D,
    geo: &'p Geometry,
    label: [u8; 11],
}

/// Each node's short name, whether it also needs long-name entries, and (for
/// folders) how many 32-byte entries the folder holds.
struct Names {
    short: Vec<[u8; 11]>,
    needs_long: Vec<bool>,
    dir_entries: Vec<u64>,
}

impl Names {
    /// Names every child of `dirs` (the root first), avoiding clashes within
    /// each folder.
    fn assign(tree: &Tree, dirs: &[usize]) -> Self {
        let mut names = Names {
            short: vec![[0; 11]; tree.nodes.len()],
            needs_long: vec![false; tree.nodes.len()],
            dir_entries: vec![0; tree.nodes.len()],
        };
        for &d in dirs {
            let mut taken = HashSet::new();
            let mut count = if d == 0 { 1 } else { 2 }; // volume label, or . and ..
            for &c in &tree.nodes[d].children {
                let name = &tree.nodes[c].name;
                let (sfn, long) = match exact_short_name(name) {
                    Some(sfn) if !taken.contains(&sfn) => (sfn, false),
                    _ => (generated_short_name(name, &taken), true),
                };
                taken.insert(sfn);
                names.short[c] = sfn;
                names.needs_long[c] = long;
                count += 1 + if long {
                    name.encode_utf16().count().div_ceil(13) as u64
                } else {
                    0
                };
            }
            names.dir_entries[d] = count;
        }
        names
    }
}

/// Where each node's clusters start, and the contiguous runs to chain in the FAT.
struct Placement {
    first_cluster: Vec<u32>,
    /// (first cluster, count) of every run, in cluster order.
    chains: Vec<(u32, u32)>,
    /// The first cluster left free.
    next: u32,
}

impl Placement {
    fn used(&self) -> u32 {
        self.next - 2
    }

    fn alloc(&mut self, n: u32) -> u32 {
        let start = self.next;
        self.next += n;
        self.chains.push((start, n));
        start
    }
}

impl<D: Read + Write + Seek> Writer<'_, D> {
    fn write(
        mut self,
        tree: &Tree,
        mut files: Vec<FatFile<'_>>,
        progress: &mut dyn FnMut(u64),
    ) -> Result<FatSummary> {
        let geo = self.geo;
        if geo.fat_type == FatType::Fat12 {
            bail!("the partition is too small for FAT16 (FAT12 is not supported)");
        }
        let mut dirs = vec![0];
        dirs.extend(tree.dirs());
        let names = Names::assign(tree, &dirs);
        if !self.fat32() && names.dir_entries[0] > geo.root_entries {
            bail!(
                "the root folder needs {} entries, FAT16 allows {}",
                names.dir_entries[0],
                geo.root_entries
            );
        }
        let placement = self.place(tree, &dirs, &names, &files)?;
        self.write_fats(&placement)?;
        for &d in &dirs {
            self.write_dir(tree, d, &names, &placement, &files)?;
        }
        self.write_files(tree, &placement, &mut files, progress)?;
        let free = geo.total_clusters - placement.used();
        if self.fat32() {
            // FSInfo: free cluster count and next free cluster hints.
            self.part.seek(SeekFrom::Start(
                geo.fs_info_sector * geo.bytes_per_sector + 0x1e8,
            ))?;
            self.part.write_all(&free.to_le_bytes())?;
            self.part.write_all(&placement.next.to_le_bytes())?;
        }
        self.part.flush()?;
        Ok(FatSummary {
            fat_type: geo.fat_type,
            cluster_size: geo.cluster_size as u32,
            total_clusters: geo.total_clusters,
            free_clusters: free,
        })
    }

    fn fat32(&self) -> bool {
        self.geo.fat_type == FatType::Fat32
    }

    fn clusters_for(&self, bytes: u64) -> u32 {
        bytes.div_ceil(self.geo.cluster_size).max(1) as u32
    }

    /// Clusters: the FAT32 root where the format put it, then the other
    /// folders, then every file, each one contiguous run.
    fn place(
        &self,
        tree: &Tree,
        dirs: &[usize],
        names: &Names,
        files: &[FatFile<'_>],
    ) -> Result<Placement> {
        let geo = self.geo;
        let mut placement = Placement {
            first_cluster: vec![0; tree.nodes.len()],
            chains: Vec::new(),
            next: 2,
        };
        if self.fat32() {
            debug_assert_eq!(geo.root_cluster, 2, "fatfs puts the root at cluster 2");
            placement.first_cluster[0] =
                placement.alloc(self.clusters_for(names.dir_entries[0] * ENTRY as u64));
        }
        for &d in &dirs[1..] {
            placement.first_cluster[d] =
                placement.alloc(self.clusters_for(names.dir_entries[d] * ENTRY as u64));
        }
        for (id, node) in tree.nodes.iter().enumerate() {
            if let Some(f) = node.file
                && files[f].len > 0
            {
                placement.first_cluster[id] =
                    placement.alloc(files[f].len.div_ceil(geo.cluster_size) as u32);
            }
        }
        if placement.used() > geo.total_clusters {
            bail!(
                "the FAT file system is full: the files need {} clusters of {} bytes, it has {}",
                placement.used(),
                geo.cluster_size,
                geo.total_clusters
            );
        }
        Ok(placement)
    }

    /// Both FATs: entries 2..next (0 and 1 were written by the format).
    fn write_fats(&mut self, placement: &Placement) -> Result<()> {
        let geo = self.geo;
        let entry_size: usize = if self.fat32() { 4 } else { 2 };
        let end_of_chain: u32 = if self.fat32() { 0x0fff_ffff } else { 0xffff };
        let mut table = vec![0u8; placement.used() as usize * entry_size];
        for &(start, n) in &placement.chains {
            for c in start..start + n {
                let value = if c + 1 == start + n {
                    end_of_chain
                } else {
                    c + 1
                };
                let at = (c - 2) as usize * entry_size;
                table[at..at + entry_size].copy_from_slice(&value.to_le_bytes()[..entry_size]);
            }
        }
        for copy in 0..geo.fats {
            let at = geo.fat_start + copy * geo.fat_bytes + 2 * entry_size as u64;
            self.part.seek(SeekFrom::Start(at))?;
            self.part.write_all(&table)?;
        }
        Ok(())
    }

    /// Folder `d`'s entries: the volume label (root) or `.` and `..`, then
    /// each child's long-name entries and short entry.
    fn write_dir(
        &mut self,
        tree: &Tree,
        d: usize,
        names: &Names,
        placement: &Placement,
        files: &[FatFile<'_>],
    ) -> Result<()> {
        let geo = self.geo;
        let first_cluster = &placement.first_cluster;
        let mut bytes: Vec<u8> = Vec::new();
        if d == 0 {
            bytes.extend_from_slice(&short_entry(&self.label, ATTR_VOLUME_ID, 0, 0));
        } else {
            let parent = tree.nodes[d].parent;
            let dot = *b".          ";
            let dotdot = *b"..         ";
            bytes.extend_from_slice(&short_entry(&dot, ATTR_DIRECTORY, first_cluster[d], 0));
            // ".." of a top-level folder points at cluster 0, even on FAT32.
            let up = if parent == 0 {
                0
            } else {
                first_cluster[parent]
            };
            bytes.extend_from_slice(&short_entry(&dotdot, ATTR_DIRECTORY, up, 0));
        }
        for &c in &tree.nodes[d].children {
            let node = &tree.nodes[c];
            if names.needs_long[c] {
                for e in long_entries(&node.name, &names.short[c]) {
                    bytes.extend_from_slice(&e);
                }
            }
            let (attr, size) = match node.file {
                Some(f) => (
                    ATTR_ARCHIVE,
                    u32::try_from(files[f].len).context("file larger than 4 GiB")?,
                ),
                None => (ATTR_DIRECTORY, 0),
            };
            bytes.extend_from_slice(&short_entry(&names.short[c], attr, first_cluster[c], size));
        }
        let fixed_root = d == 0 && !self.fat32();
        let at = if fixed_root {
            geo.root_start
        } else {
            geo.cluster_offset(first_cluster[d])
        };
        // Pad to whole clusters: a stale byte would read as an entry.
        let padded = if fixed_root {
            bytes.len() as u64
        } else {
            self.clusters_for(bytes.len() as u64) as u64 * geo.cluster_size
        };
        bytes.resize(padded as usize, 0);
        self.part.seek(SeekFrom::Start(at))?;
        self.part.write_all(&bytes)?;
        Ok(())
    }

    /// Every non-empty file's bytes into its run of clusters.
    fn write_files(
        &mut self,
        tree: &Tree,
        placement: &Placement,
        files: &mut [FatFile<'_>],
        progress: &mut dyn FnMut(u64),
    ) -> Result<()> {
        for (id, node) in tree.nodes.iter().enumerate() {
            let Some(f) = node.file else { continue };
            let file = &mut files[f];
            if file.len == 0 {
                continue;
            }
            let at = self.geo.cluster_offset(placement.first_cluster[id]);
            self.part.seek(SeekFrom::Start(at))?;
            let copied = copy_exact(&mut file.reader, &mut *self.part, file.len, progress)
                .with_context(|| format!("writing {} into the FAT file system", file.path))?;
            if copied != file.len {
                bail!("{} was {} bytes, expected {}", file.path, copied, file.len);
            }
        }
        Ok(())
    }
}

/// Copies at most `len` bytes (one more is read to notice a longer source).
fn copy_exact(
    reader: &mut dyn Read,
    out: &mut dyn Write,
    len: u64,
    progress: &mut dyn FnMut(u64),
) -> io::Result<u64> {
    let mut buf = vec![0u8; 1 << 16];
    let mut done = 0u64;
    loop {
        let want = ((len - done).min(buf.len() as u64) as usize).max(1);
        let n = reader.read(&mut buf[..want])?;
        if n == 0 {
            return Ok(done);
        }
        if done + n as u64 > len {
            return Ok(done + n as u64);
        }
        out.write_all(&buf[..n])?;
        done += n as u64;
        progress(n as u64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::disk::SparseImage;
    use fatfs::{FileSystem, FsOptions};
    use fscommon::StreamSlice;

    fn options(preference: FatPreference) -> FatOptions {
        FatOptions {
            preference,
            volume_id: 0xdead_beef,
            label: "bootgate".into(),
            hidden_sectors: 2048,
        }
    }

    fn big() -> Vec<u8> {
        (0..300_000u32).map(|i| (i * 7 % 251) as u8).collect()
    }

    fn build(size: u64, preference: FatPreference) -> (SparseImage, FatSummary) {
        let mut disk = SparseImage::new(size + (1 << 20));
        let slice = StreamSlice::new(&mut disk, 1 << 20, size + (1 << 20)).unwrap();
        let big = big();
        let mut files = vec![
            FatFile {
                path: "EFI/BOOT/BOOTX64.EFI".into(),
                len: big.len() as u64,
                reader: Box::new(&big[..]),
            },
            FatFile {
                path: "autoexec.ipxe".into(),
                len: 7,
                reader: Box::new(&b"#!ipxe\n"[..]),
            },
            FatFile {
                path: "empty".into(),
                len: 0,
                reader: Box::new(&b""[..]),
            },
        ];
        for i in 0..40 {
            let name = format!("efi/tools/a-rather-long-file-name-{i}.dtb");
            files.push(FatFile {
                path: name,
                len: 3,
                reader: Box::new(&b"abc"[..]),
            });
        }
        let mut written = 0;
        let summary = write_fat(slice, &options(preference), files, &mut |n| written += n).unwrap();
        assert_eq!(written, 300_000 + 7 + 40 * 3);
        (disk, summary)
    }

    fn read(disk: &mut SparseImage, size: u64, path: &str) -> Vec<u8> {
        let slice = StreamSlice::new(disk, 1 << 20, size + (1 << 20)).unwrap();
        let fs = FileSystem::new(slice, FsOptions::new()).unwrap();
        let mut out = Vec::new();
        fs.root_dir()
            .open_file(path)
            .unwrap()
            .read_to_end(&mut out)
            .unwrap();
        out
    }

    #[test]
    fn fat32_with_fixes_and_files() {
        let size = 64 << 20;
        let (mut disk, summary) = build(size, FatPreference::Fat32);
        assert_eq!(summary.fat_type, FatType::Fat32);
        assert_eq!(summary.cluster_size, 512);
        let mut b = [0u8; 512];
        for sector in [0u64, 6] {
            disk.seek(SeekFrom::Start((1 << 20) + sector * 512))
                .unwrap();
            disk.read_exact(&mut b).unwrap();
            assert_eq!(u32::from_le_bytes(b[0x1c..0x20].try_into().unwrap()), 2048);
            assert_eq!(
                u32::from_le_bytes(b[0x43..0x47].try_into().unwrap()),
                0xdead_beef
            );
            assert_eq!(&b[0x47..0x52], b"BOOTGATE   ");
        }
        assert_eq!(read(&mut disk, size, "autoexec.ipxe"), b"#!ipxe\n");
        assert_eq!(read(&mut disk, size, "EFI/BOOT/BOOTX64.EFI"), big());
        assert_eq!(
            read(&mut disk, size, "efi/tools/a-rather-long-file-name-39.dtb"),
            b"abc"
        );
        assert_eq!(read(&mut disk, size, "empty"), b"");
    }

    #[test]
    fn fat16_preference_and_fallback() {
        let size = 64 << 20;
        let (mut disk, small) = build(size, FatPreference::Fat16);
        assert_eq!(small.fat_type, FatType::Fat16);
        assert_eq!(
            read(&mut disk, size, "efi/tools/a-rather-long-file-name-0.dtb"),
            b"abc"
        );
        let (_, tiny) = build(16 << 20, FatPreference::Fat32);
        assert_eq!(tiny.fat_type, FatType::Fat16, "too few clusters for FAT32");
    }

    #[test]
    fn refusals() {
        let mut disk = SparseImage::new(20 << 20);
        let slice = StreamSlice::new(&mut disk, 0, 20 << 20).unwrap();
        let big = vec![1u8; 21 << 20];
        let files = vec![FatFile {
            path: "big.bin".into(),
            len: big.len() as u64,
            reader: Box::new(&big[..]),
        }];
        let err = write_fat(slice, &options(FatPreference::Fat16), files, &mut |_| {}).unwrap_err();
        assert!(format!("{err:#}").contains("full"), "{err:#}");

        let mut tree = Tree::default();
        tree.add("a/B.txt", 0).unwrap();
        assert!(tree.add("A/b.TXT", 1).is_err(), "FAT names ignore case");
        assert!(tree.add("a/B.txt/c", 2).is_err());
        assert!(tree.add("a/x:y", 3).is_err());

        let short = vec![FatFile {
            path: "short".into(),
            len: 10,
            reader: Box::new(&b"abc"[..]),
        }];
        let slice = StreamSlice::new(&mut disk, 0, 20 << 20).unwrap();
        assert!(write_fat(slice, &options(FatPreference::Fat16), short, &mut |_| {}).is_err());
    }

    #[test]
    fn labels_are_checked() {
        assert_eq!(&label_bytes("boot").unwrap(), b"BOOT       ");
        assert!(label_bytes("much too long").is_err());
        assert!(label_bytes("a b").is_err());
    }
}
