//! The server's shared state. The machine index is loaded once and swapped in
//! atomically when `registry.json` changes (every write replaces the file, so a
//! change of inode, size or mtime is a new registry); a request costs one
//! `stat`, never a directory scan. A registry that fails to parse is refused
//! loudly and the last good index stays in force.

use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;

use super::assets::AssetCache;
use super::file_cache::FileCache;
use super::live_tree::LiveTree;
use super::render_cache::RenderCache;
use super::secrets::SecretStore;
use crate::bootcfg::template::Vars;
use crate::config::Config;
use crate::datadir::DataDir;
use crate::registry::{Machine, Registry};
use crate::scratch::Scratch;
use anyhow::Context as _;

pub struct AppState {
    pub dir: DataDir,
    pub public_url: String,
    pub config: Config,
    pub machines: Arc<MachineIndex>,
    /// Where `files/` and `profiles/` are served from.
    pub tree: LiveTree,
    pub assets: AssetCache,
    pub secrets: SecretStore,
    /// Boot scripts and `vars.toml` files, re-read only when they change.
    pub scripts: FileCache<String>,
    pub vars: FileCache<Vars>,
    /// Each machine's last rendered script, while its inputs stay the same.
    pub rendered: RenderCache,
    /// Per-machine scratch space, when `[scratch]` is configured.
    pub scratch: Option<Arc<Scratch>>,
}

impl AppState {
    pub fn new(dir: DataDir, config: Config) -> anyhow::Result<Self> {
        let machines = Arc::new(MachineIndex::load(&dir)?);
        let assets = AssetCache::load(&dir)?;
        let scratch = match &config.scratch {
            Some(settings) => Some(Arc::new(
                Scratch::from_config(settings).context("setting up [scratch]")?,
            )),
            None => None,
        };
        Ok(Self {
            tree: LiveTree::load(&dir)?,
            public_url: config.public_url(),
            secrets: SecretStore::new(config.secrets_ttl()),
            scripts: FileCache::new(Ok),
            vars: FileCache::new(|text| super::boot::parse_vars(&text)),
            rendered: RenderCache::default(),
            machines,
            assets,
            dir,
            config,
            scratch,
        })
    }
}

/// Enrolled machines by fingerprint.
pub struct Index {
    by_fingerprint: HashMap<String, Arc<Machine>>,
}

impl Index {
    fn build(registry: Registry) -> Self {
        let by_fingerprint = registry
            .machines()
            .iter()
            .map(|m| (m.fingerprint.clone(), Arc::new(m.clone())))
            .collect();
        Self { by_fingerprint }
    }

    pub fn get(&self, fingerprint: &str) -> Option<&Arc<Machine>> {
        self.by_fingerprint.get(fingerprint)
    }

    pub fn len(&self) -> usize {
        self.by_fingerprint.len()
    }

    pub fn iter(&self) -> impl Iterator<Item = &Arc<Machine>> {
        self.by_fingerprint.values()
    }
}

/// What identifies one version of a file that is only ever replaced whole.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Stamp {
    ino: u64,
    len: u64,
    mtime_ns: i128,
}

impl Stamp {
    pub(super) fn of(path: &std::path::Path) -> Option<Self> {
        let meta = std::fs::metadata(path).ok()?;
        Some(Self {
            ino: meta.ino(),
            len: meta.len(),
            mtime_ns: i128::from(meta.mtime()) * 1_000_000_000 + i128::from(meta.mtime_nsec()),
        })
    }
}

pub struct MachineIndex {
    dir: DataDir,
    path: PathBuf,
    current: ArcSwap<Index>,
    stamp: Mutex<Option<Stamp>>,
}

impl MachineIndex {
    fn load(dir: &DataDir) -> anyhow::Result<Self> {
        let path = dir.registry_path();
        let stamp = Stamp::of(&path);
        let registry = Registry::load(dir)?;
        Ok(Self {
            dir: dir.clone(),
            path,
            current: ArcSwap::from_pointee(Index::build(registry)),
            stamp: Mutex::new(stamp),
        })
    }

    /// The index as of now: reloaded first if the registry file changed.
    pub fn current(&self) -> Arc<Index> {
        let stamp = Stamp::of(&self.path);
        let mut known = self.stamp.lock().expect("stamp lock");
        if *known != stamp {
            match Registry::load(&self.dir) {
                Ok(registry) => {
                    let index = Index::build(registry);
                    tracing::info!(machines = index.len(), "registry changed; index reloaded");
                    self.current.store(Arc::new(index));
                    *known = stamp;
                }
                Err(err) => {
                    tracing::error!(
                        "registry changed but cannot be read, keeping the previous one: {err:#}"
                    );
                }
            }
        }
        drop(known);
        self.current.load_full()
    }
}
