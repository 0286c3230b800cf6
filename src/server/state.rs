//! The server's shared state. The machine index is loaded once and swapped in
//! atomically when `registry.json` changes ([`FileBacked`]): a request costs
//! one `stat`, never a directory scan, and a revocation is in force from the
//! next request on. A registry that fails to parse is refused loudly and the
//! last good index stays in force.

use std::collections::HashMap;
use std::sync::Arc;

use super::assets::AssetCache;
use super::file_backed::FileBacked;
use super::file_cache::FileCache;
use super::live_tree::LiveTree;
use super::render_cache::RenderCache;
use super::secrets::SecretStore;
use crate::bootcfg::template::Vars;
use crate::config::Config;
use crate::datadir::DataDir;
use crate::datadir::registry::{Machine, Registry};
use crate::datadir::statefile::StateFile;
use crate::fsutil::watch::{ChangeWatch, Seen};
use crate::names::Fingerprint;
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
    /// Tells that files may have changed; `None` without inotify, and then
    /// every use looks at the files.
    pub watch: Option<Arc<ChangeWatch>>,
}

impl AppState {
    pub fn new(dir: DataDir, config: Config) -> anyhow::Result<Self> {
        let watch = match ChangeWatch::new() {
            Ok(watch) => Some(Arc::new(watch)),
            Err(err) => {
                tracing::warn!(
                    "cannot watch the data directory for changes ({err}); every request looks at the files it depends on instead"
                );
                None
            }
        };
        let watch = watch.as_ref();
        let machines = Arc::new(MachineIndex::load(&dir)?.watched_by(watch, &dir));
        let assets = AssetCache::load(&dir)?.watched_by(watch, &dir);
        let scratch = match &config.scratch {
            Some(settings) => Some(Arc::new(
                Scratch::from_config(settings).context("setting up [scratch]")?,
            )),
            None => None,
        };
        Ok(Self {
            tree: LiveTree::load(&dir)?.watched_by(watch, &dir),
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
            watch: watch.cloned(),
        })
    }
}

/// Enrolled machines by fingerprint.
pub struct Index {
    by_fingerprint: HashMap<Fingerprint, Arc<Machine>>,
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

    pub fn get(&self, fingerprint: &Fingerprint) -> Option<&Arc<Machine>> {
        self.by_fingerprint.get(fingerprint)
    }

    pub fn len(&self) -> usize {
        self.by_fingerprint.len()
    }

    pub fn iter(&self) -> impl Iterator<Item = &Arc<Machine>> {
        self.by_fingerprint.values()
    }
}

/// The enrolled machines as of the last change of `registry.json`.
pub struct MachineIndex(FileBacked<Index>);

impl MachineIndex {
    fn load(dir: &DataDir) -> anyhow::Result<Self> {
        let index = FileBacked::load(
            dir.registry_path(),
            Registry::WHAT,
            |bytes| Registry::parse_or_default(bytes).map(Index::build),
            |index| format!("{} machines", index.len()),
        )?;
        Ok(Self(index))
    }

    fn watched_by(self, watch: Option<&Arc<ChangeWatch>>, dir: &DataDir) -> Self {
        Self(self.0.watched_by(watch, dir.root()))
    }

    /// The index as of now: reloaded first if the registry file changed.
    pub fn current(&self) -> Arc<Index> {
        self.0.current()
    }

    /// The index as of `seen` ([`FileBacked::current_as_of`]).
    pub fn current_as_of(&self, seen: Option<Seen>) -> Arc<Index> {
        self.0.current_as_of(seen)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_saved_registry_is_in_force_at_the_next_use() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = DataDir::new(tmp.path());
        let machines = MachineIndex::load(&dir).unwrap();
        assert_eq!(machines.current().len(), 0);

        let mut registry = Registry::parse(
            br#"{"version": 1, "machines": [{"name": "gw1", "fingerprint": "ab12ab12ab12ab12ab12ab12ab12ab12ab12ab12",
                "sha256": "cd34", "serial": "01", "not_before": "2026-01-01T00:00:00Z",
                "not_after": "2036-01-01T00:00:00Z", "origin": "issued",
                "enrolled_at": "2026-01-01T00:00:00Z"}]}"#,
        )
        .unwrap();
        registry.save(&dir).unwrap();
        let fp = &registry.machines()[0].fingerprint;
        assert!(!machines.current().get(fp).unwrap().is_revoked());

        registry.get_mut("gw1").unwrap().revoked_at = Some("2026-01-02T00:00:00Z".into());
        registry.save(&dir).unwrap();
        let fp = &registry.machines()[0].fingerprint;
        assert!(machines.current().get(fp).unwrap().is_revoked());
    }
}
