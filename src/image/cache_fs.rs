//! The boot2container cache partition's file system: ext4 labelled
//! `B2C_CACHE`, made the way boot2container's own `format_cache_partition`
//! makes it (`mkfs.ext4 -O encrypt -L B2C_CACHE`), so that
//! `b2c.cache_device=auto` finds it by its label and mounts it as it is.
//!
//! e2fsprogs' `mke2fs` formats a scratch sparse file the size of the
//! partition (next to the output, removed afterwards); the blocks it wrote
//! (found with `SEEK_DATA`/`SEEK_HOLE`) are copied into the image, zeros
//! included, so they are all in the block map. Inode tables and the journal
//! are left for the kernel to initialise (`lazy_itable_init`,
//! `lazy_journal_init`), which keeps an 8 GiB cache to a few MiB of data.
//!
//! Reproducible: the file system UUID and directory hash seed are derived by
//! the caller, the root belongs to 0:0, and the time stamps are fixed
//! (`E2FSPROGS_FAKE_TIME`, `SOURCE_DATE_EPOCH`).

use std::fs::{self, File};
use std::io::{self, Seek, SeekFrom, Write};
use std::os::unix::fs::{FileExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::disk::{Extent, Guid, SparseImage};
use crate::fsutil;

use super::interrupt;

/// File system label boot2container looks for (`CACHE_PARTITION_LABEL`).
pub const LABEL: &str = "B2C_CACHE";

/// Time stamp written into the file system (2023-01-01T00:00:00Z).
const FIXED_TIME: &str = "1672531200";

/// Where `mke2fs` is looked for besides `$PATH` (Debian keeps it in sbin,
/// which an ordinary user's `$PATH` may lack).
const SBIN: [&str; 2] = ["/usr/sbin", "/sbin"];

/// What the cache file system was made with.
#[derive(Debug, Clone)]
pub struct CacheFs {
    /// The ext4 UUID (blkid's `UUID`).
    pub uuid: Guid,
    /// Bytes of file system metadata `mke2fs` wrote.
    pub written: u64,
}

/// Finds `mke2fs`.
pub fn mke2fs_path() -> Result<PathBuf> {
    let path_dirs = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default();
    path_dirs
        .into_iter()
        .chain(SBIN.iter().map(PathBuf::from))
        .map(|dir| dir.join("mke2fs"))
        .find(|p| p.is_file())
        .context(
            "mke2fs is needed to format the cache partition and was not found in $PATH, /usr/sbin or /sbin: install e2fsprogs",
        )
}

/// Formats `extent` of `image` as boot2container's cache. `scratch_dir`
/// receives the temporary file `mke2fs` works on.
pub fn format(
    image: &mut SparseImage,
    extent: Extent,
    uuid: Guid,
    hash_seed: Guid,
    scratch_dir: &Path,
) -> Result<CacheFs> {
    let mke2fs = mke2fs_path()?;
    let scratch = tempfile::Builder::new()
        .prefix(".bootgate-cache.")
        .suffix(".ext4")
        .permissions(fs::Permissions::from_mode(fsutil::PRIVATE))
        .tempfile_in(scratch_dir)
        .with_context(|| format!("creating a temporary file in {}", scratch_dir.display()))?;
    scratch
        .as_file()
        .set_len(extent.len)
        .with_context(|| format!("sizing {}", scratch.path().display()))?;
    let out = Command::new(&mke2fs)
        .args(["-q", "-F", "-t", "ext4", "-O", "encrypt", "-L", LABEL])
        .arg("-U")
        .arg(uuid.to_string())
        .arg("-E")
        .arg(format!(
            "lazy_itable_init=1,lazy_journal_init=1,nodiscard,root_owner=0:0,hash_seed={hash_seed}"
        ))
        .arg(scratch.path())
        .arg(format!("{}k", extent.len / 1024))
        .env("E2FSPROGS_FAKE_TIME", FIXED_TIME)
        .env("SOURCE_DATE_EPOCH", FIXED_TIME)
        .env("LC_ALL", "C")
        .output()
        .with_context(|| format!("running {}", mke2fs.display()))?;
    interrupt::check()?;
    if !out.status.success() {
        bail!(
            "{} could not format the cache partition ({}): {}",
            mke2fs.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let written = copy_data(scratch.as_file(), image, extent.start)
        .with_context(|| format!("reading {}", scratch.path().display()))?;
    Ok(CacheFs { uuid, written })
}

/// Copies every data extent of `file` into `image` at `base`, returning the
/// bytes copied.
fn copy_data(file: &File, image: &mut SparseImage, base: u64) -> io::Result<u64> {
    let len = file.metadata()?.len();
    let mut copied = 0;
    let mut buf = vec![0u8; 1 << 20];
    for (start, end) in data_extents(file, len)? {
        let mut pos = start;
        while pos < end {
            interrupt::check().map_err(io::Error::other)?;
            let n = (end - pos).min(buf.len() as u64) as usize;
            file.read_exact_at(&mut buf[..n], pos)?;
            image.seek(SeekFrom::Start(base + pos))?;
            image.write_all(&buf[..n])?;
            pos += n as u64;
        }
        copied += end - start;
    }
    Ok(copied)
}

/// The `[start, end)` byte ranges of `file` that hold data, from
/// `SEEK_DATA`/`SEEK_HOLE`.
fn data_extents(file: &File, len: u64) -> io::Result<Vec<(u64, u64)>> {
    use rustix::fs::{SeekFrom as RSeek, seek};
    let mut extents = Vec::new();
    let mut pos = 0u64;
    while pos < len {
        let start = match seek(file, RSeek::Data(pos)) {
            Ok(start) => start,
            Err(rustix::io::Errno::NXIO) => break,
            Err(err) => return Err(err.into()),
        };
        let end = seek(file, RSeek::Hole(start))?.min(len);
        extents.push((start, end));
        pos = end;
    }
    // A file system without hole tracking reports one extent as long as the
    // file: that would copy gigabytes of zeros.
    let allocated = {
        use std::os::unix::fs::MetadataExt;
        file.metadata()?.blocks() * 512
    };
    let data: u64 = extents.iter().map(|(s, e)| e - s).sum();
    if data > allocated.saturating_mul(2) + (16 << 20) {
        return Err(io::Error::other(format!(
            "its file system reports {data} bytes of data for {allocated} allocated: it does not track holes (SEEK_DATA); build the image in a folder on ext4, xfs, btrfs or tmpfs"
        )));
    }
    Ok(extents)
}
