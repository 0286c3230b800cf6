//! `config/live.json`: which checked tree the server serves. Replaced
//! atomically at each switch, so after a crash it names either the old tree
//! or the new one, and that tree is complete (trees are renamed into place
//! only once written and checked).

use std::path::PathBuf;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use super::git::CommitInfo;
use crate::datadir::DataDir;
use crate::fsutil;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Live {
    #[serde(flatten)]
    pub commit: CommitInfo,
    /// Set by `config pin`: syncs fetch and check but do not switch.
    #[serde(default)]
    pub pinned: bool,
    /// When this commit went live, seconds since the epoch.
    pub applied_at: i64,
}

impl Live {
    /// The live commit, or `None` before the first sync.
    pub fn load(dir: &DataDir) -> Result<Option<Self>> {
        let path = dir.gitcfg_live_path();
        match std::fs::read(&path) {
            Ok(bytes) => Self::parse(&bytes)
                .map(Some)
                .with_context(|| format!("parsing {}", path.display())),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(err) => Err(err).with_context(|| format!("reading {}", path.display())),
        }
    }

    pub fn parse(bytes: &[u8]) -> Result<Self> {
        Ok(serde_json::from_slice(bytes)?)
    }

    pub fn save(&self, dir: &DataDir) -> Result<()> {
        let text = serde_json::to_string_pretty(self).context("serialising live.json")?;
        fsutil::write_atomic(&dir.gitcfg_live_path(), text.as_bytes(), fsutil::PUBLIC)
    }

    /// The folder holding this commit's `files/` and `profiles/`.
    pub fn tree(&self, dir: &DataDir) -> PathBuf {
        tree_path(dir, &self.commit.commit)
    }
}

pub fn tree_path(dir: &DataDir, commit: &str) -> PathBuf {
    dir.gitcfg_trees_dir().join(commit)
}

/// The folder whose `files/` and `profiles/` are served while `live` is
/// `live.json`: its tree, or the data directory itself when git does not
/// manage them (`None`: no `live.json`).
pub fn served_root(dir: &DataDir, live: Option<&Live>) -> Result<PathBuf> {
    match live {
        Some(live) => {
            let tree = live.tree(dir);
            anyhow::ensure!(
                tree.is_dir(),
                "{} names commit {} but {} is missing; run `bootgate config sync`",
                dir.gitcfg_live_path().display(),
                live.commit.commit,
                tree.display()
            );
            Ok(tree)
        }
        None => Ok(dir.root().to_path_buf()),
    }
}
