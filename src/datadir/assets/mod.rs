//! Shared assets: kernels, initramfs images and device trees stored once and
//! fetched by any machine as `/files/<name>` when neither its own folder nor
//! its profile has a file of that name (`docs/data-layout.md`).
//!
//! `add` streams the file into the content-addressed store ([`store`]) before
//! taking the data directory's lock, then names it in the index ([`index`])
//! under the lock; `remove` refuses while a boot script names the asset
//! ([`usage`]). Content no name points at any more is deleted.

pub mod index;
pub mod store;
pub mod usage;

pub use index::{AssetEntry, AssetIndex};
pub use store::Digest;

use std::path::Path;

use anyhow::{Context, Result, bail};

use crate::datadir::DataDir;
use crate::names::AssetName;

/// Refusals a caller may want to tell apart.
#[derive(Debug, thiserror::Error)]
pub enum AssetError {
    #[error("no asset named {0:?}; `bootgate asset list` shows them")]
    Unknown(String),
    #[error(
        "asset {name:?} already holds other content (sha256 {old}); add with --replace to point it at this file, or choose another --name"
    )]
    NameTaken { name: String, old: Digest },
    #[error(
        "asset {name:?} is used by {users}; make them use another asset first, or remove it anyway with --force"
    )]
    InUse { name: String, users: String },
}

pub struct AddOptions {
    /// Name machines fetch it by (default: the file's name).
    pub name: Option<AssetName>,
    /// Refuse the file unless it has this SHA-256.
    pub expected: Option<Digest>,
    /// Point an existing name at new content.
    pub replace: bool,
}

/// What `add` did.
#[derive(Debug)]
pub struct Added {
    pub name: AssetName,
    pub entry: AssetEntry,
    /// A new blob was written (false: the content was already stored).
    pub stored: bool,
    /// The name already pointed at exactly this content: nothing changed.
    pub unchanged: bool,
    /// What the name pointed at before `--replace`.
    pub replaced: Option<AssetEntry>,
}

pub fn add(dir: &DataDir, file: &Path, opts: AddOptions) -> Result<Added> {
    let name = match opts.name {
        Some(name) => name,
        None => file
            .file_name()
            .and_then(|n| n.to_str())
            .with_context(|| format!("{} has no file name; give one with --name", file.display()))?
            .parse()
            .context("the file's name is not a valid asset name; give one with --name")?,
    };
    if crate::datadir::is_never_served(name.as_ref()) {
        bail!("{name:?} is never served under /files/; choose another --name");
    }
    let blobs = dir.asset_blobs_dir();
    // The slow part runs before the lock: other commands are not held up.
    let staged = store::stage(&blobs, file, opts.expected.as_ref())?;

    let _lock = dir.lock()?;
    let mut index = AssetIndex::load(dir)?;
    if let Some(current) = index.get(name.as_ref()) {
        if current.sha256 == staged.digest {
            return Ok(Added {
                entry: current.clone(),
                name,
                stored: false,
                unchanged: true,
                replaced: None,
            });
        }
        if !opts.replace {
            return Err(AssetError::NameTaken {
                name: name.to_string(),
                old: current.sha256.clone(),
            }
            .into());
        }
    }
    let entry = AssetEntry {
        sha256: staged.digest.clone(),
        size: staged.size,
        added_at: crate::ca::rfc3339(time::OffsetDateTime::now_utc()),
    };
    let stored = staged.commit(&blobs)?;
    let replaced = index.insert(name.clone(), entry.clone());
    index.save(dir)?;
    if let Some(old) = &replaced {
        delete_unreferenced(dir, &index, &old.sha256);
    }
    Ok(Added {
        name,
        entry,
        stored,
        unchanged: false,
        replaced,
    })
}

/// What `remove` did.
#[derive(Debug)]
pub struct Removed {
    pub entry: AssetEntry,
    /// Scripts that still name it (only with `force`).
    pub users: Vec<String>,
}

pub fn remove(dir: &DataDir, name: &str, force: bool) -> Result<Removed> {
    let _lock = dir.lock()?;
    let mut index = AssetIndex::load(dir)?;
    let key: AssetName = name
        .parse()
        .map_err(|_| AssetError::Unknown(name.to_string()))?;
    let entry = index
        .remove(&key)
        .ok_or_else(|| AssetError::Unknown(name.to_string()))?;
    let scripts = usage::scan(dir)?;
    let users: Vec<String> = usage::users(&scripts, name)
        .map(|s| s.owner.clone())
        .collect();
    if !users.is_empty() && !force {
        return Err(AssetError::InUse {
            name: name.to_string(),
            users: users.join(", "),
        }
        .into());
    }
    index.save(dir)?;
    delete_unreferenced(dir, &index, &entry.sha256);
    Ok(Removed { entry, users })
}

/// An asset with the scripts that use it.
#[derive(Debug, serde::Serialize)]
pub struct Listed {
    pub name: String,
    pub sha256: String,
    pub size: u64,
    pub added_at: String,
    pub used_by: Vec<String>,
}

pub fn list(dir: &DataDir) -> Result<Vec<Listed>> {
    let index = AssetIndex::load(dir)?;
    let scripts = usage::scan(dir)?;
    Ok(index
        .iter()
        .map(|(name, entry)| Listed {
            name: name.to_string(),
            sha256: entry.sha256.to_string(),
            size: entry.size,
            added_at: entry.added_at.clone(),
            used_by: usage::users(&scripts, name.as_ref())
                .map(|s| s.owner.clone())
                .collect(),
        })
        .collect())
}

/// Deletes the blob of `digest` when no name points at it any more. A
/// failure only leaves an unused file behind, so it is logged, not fatal.
fn delete_unreferenced(dir: &DataDir, index: &AssetIndex, digest: &Digest) {
    if index.holds(digest) {
        return;
    }
    let path = store::blob_path(&dir.asset_blobs_dir(), digest);
    match std::fs::remove_file(&path) {
        Ok(()) => {}
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
        Err(err) => eprintln!("warning: could not delete {}: {err}", path.display()),
    }
}
