//! Putting a built image on disk without ever leaving a partial file under the
//! output name: a temporary file (mode 0600, in the output's folder) receives
//! the data runs, holes stay holes, the SHA-256 is computed on the way, then
//! fsync and an atomic rename (one that refuses to replace an existing file
//! unless `--force`).

use std::fs::{self, File};
use std::io;
use std::os::unix::fs::{FileExt, PermissionsExt};
use std::path::Path;

use anyhow::{Context, Result, bail};
use sha2::{Digest, Sha256};

use crate::disk::{Run, SparseImage};
use crate::fsutil::{self, parent_of};

use super::error::ImageError;

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
    pub sha256: String,
    pub len: u64,
}

static ZEROS: [u8; 1 << 16] = [0; 1 << 16];
const WRITE_CHUNK: usize = 1 << 20;

/// Refuses early (before any work) when `output` exists and `force` is not
/// set, or when it is not a regular file: bootgate replaces files, it does not
/// write to devices (use dd or bmaptool for that).
pub fn check_output(output: &Path, force: bool) -> Result<()> {
    match fs::symlink_metadata(output) {
        Ok(meta) if !meta.file_type().is_file() => bail!(
            "{} exists and is not a regular file; give a file name (write the image to a card or stick afterwards with dd or bmaptool)",
            output.display()
        ),
        Ok(_) if !force => Err(ImageError::OutputExists {
            path: output.to_path_buf(),
        }
        .into()),
        Ok(_) => Ok(()),
        Err(err) if err.kind() == io::ErrorKind::NotFound => {
            let parent = parent_of(output);
            if !parent.is_dir() {
                bail!("folder {} does not exist", parent.display());
            }
            Ok(())
        }
        Err(err) => Err(err).with_context(|| format!("checking {}", output.display())),
    }
}

/// Writes `image` to `output` atomically with mode 0600 and returns its SHA-256.
pub fn write_image(
    image: &SparseImage,
    output: &Path,
    force: bool,
    progress: &mut dyn Progress,
) -> Result<Written> {
    check_output(output, force)?;
    let dir = parent_of(output);
    let name = output
        .file_name()
        .with_context(|| format!("{} is not a file name", output.display()))?
        .to_string_lossy()
        .into_owned();
    let tmp = tempfile::Builder::new()
        .prefix(&format!(".{name}."))
        .suffix(".partial")
        .permissions(fs::Permissions::from_mode(fsutil::PRIVATE))
        .tempfile_in(dir)
        .with_context(|| format!("creating a temporary file in {}", dir.display()))?;
    let tmp_path = tmp.path().to_path_buf();
    let sha256 = fill(tmp.as_file(), image, progress)
        .and_then(|sha| {
            tmp.as_file().sync_all()?;
            Ok(sha)
        })
        .with_context(|| format!("writing {}", tmp_path.display()))?;

    let persisted = if force {
        tmp.persist(output).map_err(|e| e.error)
    } else {
        tmp.persist_noclobber(output).map_err(|e| e.error)
    };
    match persisted {
        Ok(_) => {}
        Err(err) if err.kind() == io::ErrorKind::AlreadyExists => {
            return Err(ImageError::OutputExists {
                path: output.to_path_buf(),
            }
            .into());
        }
        Err(err) => {
            return Err(err).with_context(|| format!("renaming the image to {}", output.display()));
        }
    }
    fsutil::sync_dir(dir);
    Ok(Written {
        sha256,
        len: image.len(),
    })
}

/// Writes the data runs at their offsets (the file is sized first, so zero
/// runs become holes) and hashes every byte, zeros included.
fn fill(file: &File, image: &SparseImage, progress: &mut dyn Progress) -> io::Result<String> {
    file.set_len(image.len())?;
    let mut hasher = Sha256::new();
    let mut pending: Vec<u8> = Vec::with_capacity(WRITE_CHUNK);
    let mut pending_at = 0u64;
    progress.begin("writing image", image.len());
    for run in image.runs() {
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
                hasher.update(bytes);
                progress.advance(bytes.len() as u64);
            }
            Run::Zeros { len, .. } => {
                let mut left = len;
                while left > 0 {
                    let n = left.min(ZEROS.len() as u64);
                    hasher.update(&ZEROS[..n as usize]);
                    left -= n;
                    progress.advance(n);
                }
            }
        }
    }
    file.write_all_at(&pending, pending_at)?;
    progress.end();
    Ok(hex::encode(hasher.finalize()))
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
        let written = write_image(&image, &out, false, &mut Silent).unwrap();

        let bytes = fs::read(&out).unwrap();
        assert_eq!(bytes.len(), 64 << 20);
        assert_eq!(&bytes[..4], b"head");
        assert_eq!(&bytes[bytes.len() - 4..], b"tail");
        assert_eq!(written.sha256, hex::encode(Sha256::digest(&bytes)));
        let meta = fs::metadata(&out).unwrap();
        assert_eq!(meta.mode() & 0o777, 0o600);
        assert!(meta.blocks() * 512 < 1 << 20, "holes stay holes");

        let err = write_image(&image, &out, false, &mut Silent).unwrap_err();
        assert!(matches!(
            err.downcast_ref(),
            Some(ImageError::OutputExists { .. })
        ));
        write_image(&image, &out, true, &mut Silent).unwrap();
        assert_eq!(
            fs::read_dir(dir.path()).unwrap().count(),
            1,
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
