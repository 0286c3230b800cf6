//! The shared-asset index as the server sees it: loaded once, reloaded when
//! `assets/index.json` changes ([`FileBacked`]: one `stat` per lookup, like
//! the machine index). An index that fails to parse is logged and the last
//! good one stays.

use std::sync::Arc;

use super::file_backed::FileBacked;
use crate::datadir::DataDir;
use crate::datadir::assets::{AssetIndex, Digest};
use crate::datadir::statefile::StateFile;
use crate::fsutil::watch::ChangeWatch;

pub struct AssetCache(FileBacked<AssetIndex>);

impl AssetCache {
    pub fn load(dir: &DataDir) -> anyhow::Result<Self> {
        let index = FileBacked::load(
            dir.asset_index_path(),
            AssetIndex::WHAT,
            AssetIndex::parse_or_default,
            |index| format!("{} assets", index.len()),
        )?;
        Ok(Self(index))
    }

    /// Lets `watch` tell when the index may have changed.
    pub fn watched_by(self, watch: Option<&Arc<ChangeWatch>>, dir: &DataDir) -> Self {
        Self(self.0.watched_by(watch, dir.root()))
    }

    /// The content an asset name points at, as of now.
    pub fn lookup(&self, name: &str) -> Option<Digest> {
        self.0.current().get(name).map(|entry| entry.sha256.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn index(assets: &str) -> AssetIndex {
        let text = format!(r#"{{"version": 1, "assets": {{{assets}}}}}"#);
        AssetIndex::parse(text.as_bytes()).unwrap()
    }

    #[test]
    fn a_saved_index_is_used_at_the_next_lookup() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = DataDir::new(tmp.path());
        let assets = AssetCache::load(&dir).unwrap();
        assert_eq!(assets.lookup("kernel"), None);

        let entry = |digit: char| {
            format!(
                r#""kernel": {{"sha256": "{}", "size": 1, "added_at": "2026-01-01T00:00:00Z"}}"#,
                digit.to_string().repeat(64)
            )
        };
        index(&entry('a')).save(&dir).unwrap();
        assert_eq!(assets.lookup("kernel").unwrap().to_string(), "a".repeat(64));
        index(&entry('b')).save(&dir).unwrap();
        assert_eq!(assets.lookup("kernel").unwrap().to_string(), "b".repeat(64));
        index("").save(&dir).unwrap();
        assert_eq!(assets.lookup("kernel"), None);
    }
}
