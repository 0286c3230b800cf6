//! Putting a built image on disk without ever leaving a partial file under the
//! output name: temporary files (mode 0600, in the output's folder, so the
//! rename never crosses file systems) receive the image's data runs (holes
//! stay holes) and its block map (`<output>.bmap`, see [`super::bmap`]), then
//! fsync and atomic renames (ones that refuse to replace an existing file
//! unless `--force`). A full disk, a failed rename or Ctrl-C
//! ([`super::interrupt`]) leaves neither file behind.
//!
//! The SHA-256 of the whole file costs time in proportion to its size, zeros
//! included (seconds for an 8 GiB cache), so it is computed only on request;
//! the block map's checksum identifies the image at no cost.

use std::ffi::OsString;
use std::fs::{self, File};
use std::io::{self, Write};
use std::os::unix::fs::{FileExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use sha2::{Digest, Sha256};
use tempfile::NamedTempFile;

use crate::disk::{Run, Size, SparseImage};
use crate::fsutil::{self, parent_of};

use super::bmap::{self, Bmap};
use super::error::ImageError;
use super::interrupt;

/// Progress of a long step, drawn by the caller (a bar on a TTY, lines
/// otherwise). All methods default to doing nothing.
pub trait Progress {
    /// A step of `total` bytes starts.
    fn begin(&mut self, _step: &str, _total: u64) {}
    /// `bytes` more of the current step are done.
    fn advance(&mut self, _bytes: u64) {}
    /// The current step is over.
    fn end(&mut self) {}
}

/// Reports nothing.
pub struct Silent;

impl Progress for Silent {}

/// What was written.
#[derive(Debug, Clone)]
pub struct Written {
    pub len: u64,
    /// SHA-256 of every byte of the image, when asked for.
    pub sha256: Option<String>,
    pub bmap: Bmap,
    pub bmap_path: PathBuf,
}

static ZEROS: [u8; 1 << 16] = [0; 1 << 16];
const WRITE_CHUNK: usize = 1 << 20;

/// `<output>.bmap`: where the block map of `output` goes (where `bmaptool
/// copy` looks for it).
pub fn bmap_path(output: &Path) -> PathBuf {
    let mut name = OsString::from(output.as_os_str());
    name.push(".bmap");
    PathBuf::from(name)
}

/// Refuses early (before any work) when `output` or its block map exists
/// and `force` is not set, or when either is not a regular file: bootgate
/// replaces files, it does not write to devices (use bmaptool or dd for that).
pub fn check_output(output: &Path, force: bool) -> Result<()> {
    for path in [output.to_path_buf(), bmap_path(output)] {
        match fs::symlink_metadata(&path) {
            Ok(meta) if !meta.file_type().is_file() => bail!(
                "{} exists and is not a regular file; give a file name (write the image to a card or stick afterwards with bmaptool or dd)",
                path.display()
            ),
            Ok(_) if !force => return Err(ImageError::OutputExists { path }.into()),
            Ok(_) => {}
            Err(err) if err.kind() == io::ErrorKind::NotFound => {
                let parent = parent_of(&path);
                if !parent.is_dir() {
                    bail!("folder {} does not exist", parent.display());
                }
            }
            Err(err) => return Err(err).with_context(|| format!("checking {}", path.display())),
        }
    }
    Ok(())
}

/// Turns "no space left" into advice; other errors keep their context.
pub fn explain_full(err: anyhow::Error, dir: &Path, needed: Option<u64>) -> anyhow::Error {
    let full = err.chain().any(|cause| {
        cause
            .downcast_ref::<io::Error>()
            .is_some_and(|e| e.kind() == io::ErrorKind::StorageFull)
            || cause.to_string().contains("No space left on device")
    });
    if full {
        let needs = needed
            .map(|n| {
                format!(
                    " (the image needs about {} there; the rest of it stays sparse)",
                    Size(n)
                )
            })
            .unwrap_or_default();
        err.context(format!(
            "{} is full{needs}: nothing was written; free some space or write to another folder",
            dir.display(),
        ))
    } else {
        err
    }
}

fn temp_in(dir: &Path, name: &str, suffix: &str) -> Result<NamedTempFile> {
    tempfile::Builder::new()
        .prefix(&format!(".{name}."))
        .suffix(suffix)
        .permissions(fs::Permissions::from_mode(fsutil::PRIVATE))
        .tempfile_in(dir)
        .with_context(|| format!("creating a temporary file in {}", dir.display()))
}

/// Renames `tmp` to `path`, refusing to replace a file unless `force`.
fn persist(tmp: NamedTempFile, path: &Path, force: bool) -> Result<()> {
    let persisted = if force {
        tmp.persist(path).map_err(|e| e.error)
    } else {
        tmp.persist_noclobber(path).map_err(|e| e.error)
    };
    match persisted {
        Ok(_) => Ok(()),
        Err(err) if err.kind() == io::ErrorKind::AlreadyExists => Err(ImageError::OutputExists {
            path: path.to_path_buf(),
        }
        .into()),
        Err(err) => Err(err).with_context(|| format!("renaming into {}", path.display())),
    }
}

/// Writes `image` to `output` and its block map to `<output>.bmap`,
/// atomically with mode 0600; hashes the whole image too if `full_sha256`.
pub fn write_image(
    image: &SparseImage,
    output: &Path,
    force: bool,
    full_sha256: bool,
    progress: &mut dyn Progress,
) -> Result<Written> {
    check_output(output, force)?;
    let dir = parent_of(output);
    let name = output
        .file_name()
        .with_context(|| format!("{} is not a file name", output.display()))?
        .to_string_lossy()
        .into_owned();
    let bmap_path = bmap_path(output);
    let needed = image.mapped_bytes() + (1 << 20);

    let staged = (|| -> Result<_> {
        let tmp = temp_in(dir, &name, ".partial")?;
        let sha256 = fill(tmp.as_file(), image, full_sha256, progress)
            .and_then(|sha| {
                tmp.as_file().sync_all()?;
                Ok(sha)
            })
            .with_context(|| format!("writing {}", tmp.path().display()))?;

        progress.begin("mapping blocks", image.mapped_bytes());
        let bmap = bmap::render(image, |n| progress.advance(n));
        progress.end();
        let mut tmp_bmap = temp_in(dir, &name, ".bmap.partial")?;
        tmp_bmap
            .write_all(bmap.text.as_bytes())
            .and_then(|()| tmp_bmap.as_file().sync_all())
            .with_context(|| format!("writing {}", tmp_bmap.path().display()))?;
        interrupt::check()?;
        Ok((tmp, sha256, tmp_bmap, bmap))
    })();
    let (tmp, sha256, tmp_bmap, bmap) =
        staged.map_err(|err| explain_full(err, dir, Some(needed)))?;

    // Never leave an image next to a block map that is not its own.
    if force {
        match fs::remove_file(&bmap_path) {
            Ok(()) => {}
            Err(err) if err.kind() == io::ErrorKind::NotFound => {}
            Err(err) => {
                return Err(err).with_context(|| format!("removing {}", bmap_path.display()));
            }
        }
    }
    persist(tmp, output, force)?;
    if let Err(err) = persist(tmp_bmap, &bmap_path, force) {
        let _ = fs::remove_file(output);
        return Err(err.context(format!(
            "the image's block map could not be put in place, so {} was removed too",
            output.display()
        )));
    }
    fsutil::sync_dir(dir);
    Ok(Written {
        len: image.len(),
        sha256,
        bmap,
        bmap_path,
    })
}

/// Writes the data runs at their offsets (the file is sized first, so zero
/// runs become holes); hashes every byte, zeros included, if `hash`.
fn fill(
    file: &File,
    image: &SparseImage,
    hash: bool,
    progress: &mut dyn Progress,
) -> Result<Option<String>> {
    file.set_len(image.len())?;
    let mut hasher = hash.then(Sha256::new);
    let mut pending: Vec<u8> = Vec::with_capacity(WRITE_CHUNK);
    let mut pending_at = 0u64;
    let (step, total) = if hash {
        ("writing and hashing the image", image.len())
    } else {
        ("writing the image", image.stored_bytes())
    };
    progress.begin(step, total);
    for run in image.runs() {
        interrupt::check()?;
        match run {
            Run::Data { offset, bytes } => {
                if pending.len() + bytes.len() > WRITE_CHUNK
                    || pending_at + pending.len() as u64 != offset
                {
                    file.write_all_at(&pending, pending_at)?;
                    pending.clear();
                    pending_at = offset;
                }
                pending.extend_from_slice(bytes);
                if let Some(h) = &mut hasher {
                    h.update(bytes);
                }
                progress.advance(bytes.len() as u64);
            }
            Run::Zeros { len, .. } => {
                let Some(h) = &mut hasher else { continue };
                let mut left = len;
                while left > 0 {
                    interrupt::check()?;
                    let n = left.min(ZEROS.len() as u64);
                    h.update(&ZEROS[..n as usize]);
                    left -= n;
                    progress.advance(n);
                }
            }
        }
    }
    file.write_all_at(&pending, pending_at)?;
    progress.end();
    Ok(hasher.map(|h| hex::encode(h.finalize())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Seek, SeekFrom, Write};
    use std::os::unix::fs::MetadataExt;

    #[test]
    fn writes_sparse_private_files_and_hashes_them() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("disk.img");
        let mut image = SparseImage::new(64 << 20);
        image.write_all(b"head").unwrap();
        image.seek(SeekFrom::End(-4)).unwrap();
        image.write_all(b"tail").unwrap();
        let written = write_image(&image, &out, false, true, &mut Silent).unwrap();

        let bytes = fs::read(&out).unwrap();
        assert_eq!(bytes.len(), 64 << 20);
        assert_eq!(&bytes[..4], b"head");
        assert_eq!(&bytes[bytes.len() - 4..], b"tail");
        assert_eq!(written.sha256, Some(hex::encode(Sha256::digest(&bytes))));
        assert_eq!(written.bmap_path, dir.path().join("disk.img.bmap"));
        assert_eq!(
            fs::read_to_string(&written.bmap_path).unwrap(),
            written.bmap.text
        );
        assert_eq!(
            fs::metadata(&written.bmap_path).unwrap().mode() & 0o777,
            0o600
        );
        let meta = fs::metadata(&out).unwrap();
        assert_eq!(meta.mode() & 0o777, 0o600);
        assert!(meta.blocks() * 512 < 1 << 20, "holes stay holes");

        let err = write_image(&image, &out, false, false, &mut Silent).unwrap_err();
        assert!(matches!(
            err.downcast_ref(),
            Some(ImageError::OutputExists { .. })
        ));
        fs::remove_file(&out).unwrap();
        let err = write_image(&image, &out, false, false, &mut Silent).unwrap_err();
        assert!(
            matches!(err.downcast_ref(), Some(ImageError::OutputExists { path }) if path.ends_with("disk.img.bmap")),
            "a lone block map is not replaced either: {err:#}"
        );
        assert!(!out.exists());
        let again = write_image(&image, &out, true, false, &mut Silent).unwrap();
        assert_eq!(again.sha256, None);
        assert_eq!(again.bmap.checksum, written.bmap.checksum);
        assert_eq!(
            fs::read_dir(dir.path()).unwrap().count(),
            2,
            "no temporary file left"
        );
    }

    #[test]
    fn refuses_non_files_and_missing_folders() {
        let dir = tempfile::tempdir().unwrap();
        assert!(check_output(dir.path(), true).is_err());
        assert!(check_output(&dir.path().join("no/such/dir/x.img"), false).is_err());
        assert!(check_output(&dir.path().join("x.img"), false).is_ok());
    }
}
