//! The folder whose `files/` and `profiles/` the server answers from: the
//! data directory itself, or the checked git tree `config/live.json` names
//! (see [`crate::gitcfg`]). A request loads it once ([`LiveTree::current`])
//! and resolves everything beneath that one root, so a switch between trees
//! is a single pointer store and no request sees a mix of two commits.
//! Like the machine index, a change of `live.json` costs one `stat` to notice.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;

use super::state::Stamp;
use crate::datadir::DataDir;
use crate::gitcfg::live::served_root;

pub struct LiveTree {
    dir: DataDir,
    path: PathBuf,
    /// A data directory rooted at the served tree: only its `files/` and
    /// `profiles/` paths are used.
    current: ArcSwap<DataDir>,
    stamp: Mutex<Option<Stamp>>,
}

impl LiveTree {
    /// Fails when `live.json` names a tree that is not there, rather than
    /// serving something else.
    pub fn load(dir: &DataDir) -> anyhow::Result<Self> {
        let path = dir.gitcfg_live_path();
        let stamp = Stamp::of(&path);
        let root = served_root(dir)?;
        Ok(Self {
            dir: dir.clone(),
            path,
            current: ArcSwap::from_pointee(DataDir::new(root)),
            stamp: Mutex::new(stamp),
        })
    }

    /// The tree as of now: switched first if `live.json` changed.
    pub fn current(&self) -> Arc<DataDir> {
        let stamp = Stamp::of(&self.path);
        let mut known = self.stamp.lock().expect("stamp lock");
        if *known != stamp {
            match served_root(&self.dir) {
                Ok(root) => {
                    tracing::info!("serving boot configuration from {}", root.display());
                    self.current.store(Arc::new(DataDir::new(root)));
                    *known = stamp;
                }
                Err(err) => tracing::error!(
                    "live boot configuration changed but cannot be used, keeping the previous one: {err:#}"
                ),
            }
        }
        drop(known);
        self.current.load_full()
    }
}
