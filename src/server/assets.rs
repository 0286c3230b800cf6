//! The shared-asset index as the server sees it: loaded once, reloaded when
//! `assets/index.json` changes (one `stat` per lookup, like the machine
//! index). An index that fails to parse is logged and the last good one stays.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;

use super::state::Stamp;
use crate::assets::{AssetIndex, Digest};
use crate::datadir::DataDir;

pub struct AssetCache {
    dir: DataDir,
    path: PathBuf,
    current: ArcSwap<AssetIndex>,
    stamp: Mutex<Option<Stamp>>,
}

impl AssetCache {
    pub fn load(dir: &DataDir) -> anyhow::Result<Self> {
        let path = dir.asset_index_path();
        let stamp = Stamp::of(&path);
        let index = AssetIndex::load(dir)?;
        Ok(Self {
            dir: dir.clone(),
            path,
            current: ArcSwap::from_pointee(index),
            stamp: Mutex::new(stamp),
        })
    }

    /// The content an asset name points at, as of now.
    pub fn lookup(&self, name: &str) -> Option<Digest> {
        self.current().get(name).map(|entry| entry.sha256.clone())
    }

    fn current(&self) -> Arc<AssetIndex> {
        let stamp = Stamp::of(&self.path);
        let mut known = self.stamp.lock().expect("stamp lock");
        if *known != stamp {
            match AssetIndex::load(&self.dir) {
                Ok(index) => {
                    tracing::info!(assets = index.len(), "asset index changed; reloaded");
                    self.current.store(Arc::new(index));
                    *known = stamp;
                }
                Err(err) => tracing::error!(
                    "asset index changed but cannot be read, keeping the previous one: {err:#}"
                ),
            }
        }
        drop(known);
        self.current.load_full()
    }
}
