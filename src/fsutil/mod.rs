//! Crash-safe file writes: every state file and key bootgate writes goes through
//! here, so an interrupted command leaves either the old file or the new one, never
//! a torn one, and private material is never readable by others, not even briefly.
//!
//! Every mode is set explicitly, whatever the process's umask: folders 0750
//! (0700 for keys), files 0640 (0600 for keys). See `docs/security.md`.

pub mod beneath;
pub mod stamp;
pub mod watch;

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use anyhow::{Context, Result};

/// File mode for keys, images holding keys, and anything else secret.
pub const PRIVATE: u32 = 0o600;
/// File mode for certificates, templates and other files the service's
/// group (its operators) may read.
pub const PUBLIC: u32 = 0o640;
/// Folder mode for everything but key folders.
pub const DIR: u32 = 0o750;
/// Folder mode for folders holding keys.
pub const PRIVATE_DIR: u32 = 0o700;

/// Writes `contents` to `path` atomically: a temporary file in the same folder is
/// written with `mode`, flushed to disk, then renamed over `path`.
pub fn write_atomic(path: &Path, contents: &[u8], mode: u32) -> Result<()> {
    let dir = parent_of(path);
    let mut tmp = tempfile::Builder::new()
        .prefix(".bootgate-tmp-")
        .permissions(fs::Permissions::from_mode(mode))
        .tempfile_in(dir)
        .with_context(|| format!("creating a temporary file in {}", dir.display()))?;
    // The umask may have taken bits away; set exactly `mode`.
    tmp.as_file()
        .set_permissions(fs::Permissions::from_mode(mode))
        .and_then(|()| tmp.write_all(contents))
        .and_then(|()| tmp.as_file().sync_all())
        .with_context(|| format!("writing {}", path.display()))?;
    tmp.persist(path)
        .with_context(|| format!("replacing {}", path.display()))?;
    sync_dir(dir);
    Ok(())
}

/// Creates `path` with `contents` only if nothing is there yet; returns false
/// (writing nothing) when the file already exists.
pub fn write_new(path: &Path, contents: &[u8], mode: u32) -> Result<bool> {
    match OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
    {
        Ok(mut file) => {
            // The umask may have taken bits away; set exactly `mode`.
            file.set_permissions(fs::Permissions::from_mode(mode))
                .and_then(|()| file.write_all(contents))
                .and_then(|()| file.sync_all())
                .with_context(|| format!("writing {}", path.display()))?;
            Ok(true)
        }
        Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
        Err(err) => Err(err).with_context(|| format!("creating {}", path.display())),
    }
}

/// Creates a folder (and missing parents) readable only by its owner.
pub fn create_private_dir(path: &Path) -> Result<()> {
    create_dir_with_mode(path, PRIVATE_DIR)?;
    fs::set_permissions(path, fs::Permissions::from_mode(PRIVATE_DIR))
        .with_context(|| format!("restricting {}", path.display()))
}

/// Creates a folder (and missing parents) with mode [`DIR`]. Folders that
/// already exist are left as they are.
pub fn create_dir(path: &Path) -> Result<()> {
    create_dir_with_mode(path, DIR)
}

fn create_dir_with_mode(path: &Path, mode: u32) -> Result<()> {
    let missing: Vec<&Path> = path
        .ancestors()
        .take_while(|p| !p.as_os_str().is_empty() && !p.exists())
        .collect();
    for folder in missing.into_iter().rev() {
        match fs::create_dir(folder) {
            Ok(()) => fs::set_permissions(folder, fs::Permissions::from_mode(mode))
                .with_context(|| format!("setting the mode of {}", folder.display()))?,
            Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(err) => {
                return Err(err).with_context(|| format!("creating {}", folder.display()));
            }
        }
    }
    Ok(())
}

/// Prefix of every temporary file and folder bootgate creates in the data
/// directory.
pub const TEMP_PREFIX: &str = ".bootgate-";

/// Removes what an interrupted command left in `folder`: entries named
/// `.bootgate-*` for which `abandoned` says yes. Returns how many went.
pub fn remove_leftovers(folder: &Path, abandoned: impl Fn(&Path) -> bool) -> usize {
    let Ok(entries) = fs::read_dir(folder) else {
        return 0;
    };
    let mut removed = 0;
    for entry in entries.flatten() {
        let path = entry.path();
        let is_temp = entry
            .file_name()
            .to_str()
            .is_some_and(|n| n.starts_with(TEMP_PREFIX));
        if !is_temp || !abandoned(&path) {
            continue;
        }
        let gone = match entry.file_type() {
            Ok(t) if t.is_dir() => fs::remove_dir_all(&path),
            _ => fs::remove_file(&path),
        };
        match gone {
            Ok(()) => {
                tracing::info!("removed {}, left by an interrupted command", path.display());
                removed += 1;
            }
            Err(err) => tracing::warn!("cannot remove leftover {}: {err}", path.display()),
        }
    }
    removed
}

/// Makes a completed rename durable. Errors are ignored: some filesystems
/// cannot sync folders, and the rename itself already happened.
pub fn sync_dir(dir: &Path) {
    if let Ok(handle) = File::open(dir) {
        let _ = handle.sync_all();
    }
}

/// The folder a path's file lives in (`.` for a bare file name).
pub fn parent_of(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_write_replaces_and_sets_mode() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("key.pem");
        write_atomic(&path, b"one", PRIVATE).unwrap();
        write_atomic(&path, b"two", PRIVATE).unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"two");
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let leftovers: Vec<_> = fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(leftovers.len(), 1, "no temporary file is left behind");
    }

    #[test]
    fn write_new_never_overwrites() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("boot.ipxe");
        assert!(write_new(&path, b"first", PUBLIC).unwrap());
        assert!(!write_new(&path, b"second", PUBLIC).unwrap());
        assert_eq!(fs::read(&path).unwrap(), b"first");
    }
}
