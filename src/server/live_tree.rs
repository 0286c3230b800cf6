//! The folder whose `files/` and `profiles/` the server answers from: the
//! data directory itself, or the checked git tree `config/live.json` names
//! (see [`crate::gitcfg`]). A request loads it once ([`LiveTree::current`])
//! and resolves everything beneath that one root, so a switch between trees
//! is a single pointer store and no request sees a mix of two commits.
//! Like the machine index, a change of `live.json` costs one `stat` to notice
//! ([`FileBacked`]).

use std::sync::Arc;

use super::file_backed::FileBacked;
use crate::datadir::DataDir;
use crate::fsutil::watch::{ChangeWatch, Seen};
use crate::gitcfg::live::{Live, served_root};

/// A data directory rooted at the served tree: only its `files/` and
/// `profiles/` paths are used.
pub struct LiveTree(FileBacked<DataDir>);

impl LiveTree {
    /// Fails when `live.json` names a tree that is not there, rather than
    /// serving something else.
    pub fn load(dir: &DataDir) -> anyhow::Result<Self> {
        let data = dir.clone();
        let tree = FileBacked::load(
            dir.gitcfg_live_path(),
            "live boot configuration",
            move |bytes| {
                let live = bytes.map(Live::parse).transpose()?;
                Ok(DataDir::new(served_root(&data, live.as_ref())?))
            },
            |tree| format!("serving {}", tree.root().display()),
        )?;
        Ok(Self(tree))
    }

    /// Lets `watch` tell when `live.json` may have changed.
    pub fn watched_by(self, watch: Option<&Arc<ChangeWatch>>, dir: &DataDir) -> Self {
        Self(self.0.watched_by(watch, dir.root()))
    }

    /// The tree as of now: switched first if `live.json` changed.
    pub fn current(&self) -> Arc<DataDir> {
        self.0.current()
    }

    /// The tree as of `seen` ([`FileBacked::current_as_of`]).
    pub fn current_as_of(&self, seen: Option<Seen>) -> Arc<DataDir> {
        self.0.current_as_of(seen)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gitcfg::git::CommitInfo;

    #[test]
    fn a_switch_of_live_json_is_served_at_the_next_use() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = DataDir::new(tmp.path());
        let tree = LiveTree::load(&dir).unwrap();
        assert_eq!(tree.current().root(), tmp.path());

        let live = |commit: &str| Live {
            commit: CommitInfo {
                commit: commit.into(),
                ..CommitInfo::default()
            },
            pinned: false,
            applied_at: 0,
        };
        for commit in ["1111", "2222"] {
            std::fs::create_dir_all(crate::gitcfg::live::tree_path(&dir, commit)).unwrap();
            live(commit).save(&dir).unwrap();
            assert_eq!(
                *tree.current().root(),
                crate::gitcfg::live::tree_path(&dir, commit)
            );
        }

        // A tree that is not there is not switched to.
        live("3333").save(&dir).unwrap();
        assert_eq!(
            *tree.current().root(),
            crate::gitcfg::live::tree_path(&dir, "2222")
        );
    }
}
