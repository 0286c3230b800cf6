//! `assets/index.json`: which asset name points at which stored content.
//! Replaced atomically on every change, so the server (which reloads it when
//! the file changes) sees either the old index or the new one.

use std::collections::BTreeMap;

use anyhow::Result;
use serde::{Deserialize, Serialize};

use super::store::Digest;
use crate::datadir::DataDir;
use crate::datadir::statefile::StateFile;
use crate::names::AssetName;

const VERSION: u32 = 1;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AssetEntry {
    pub sha256: Digest,
    pub size: u64,
    pub added_at: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AssetIndex {
    version: u32,
    assets: BTreeMap<AssetName, AssetEntry>,
}

impl Default for AssetIndex {
    fn default() -> Self {
        Self {
            version: VERSION,
            assets: BTreeMap::new(),
        }
    }
}

impl StateFile for AssetIndex {
    const WHAT: &'static str = "asset index";
    const VERSION: u32 = VERSION;
    fn version(&self) -> u32 {
        self.version
    }
}

impl AssetIndex {
    /// Loads the index; a data directory without one has no assets.
    pub fn load(dir: &DataDir) -> Result<Self> {
        Self::load_from(&dir.asset_index_path())
    }

    pub fn parse(text: &[u8]) -> Result<Self> {
        <Self as StateFile>::parse(text)
    }

    pub fn save(&self, dir: &DataDir) -> Result<()> {
        self.save_to(&dir.asset_index_path())
    }

    pub fn get(&self, name: &str) -> Option<&AssetEntry> {
        self.assets
            .iter()
            .find(|(n, _)| n.as_ref() == name)
            .map(|(_, e)| e)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&AssetName, &AssetEntry)> {
        self.assets.iter()
    }

    pub fn len(&self) -> usize {
        self.assets.len()
    }

    pub fn is_empty(&self) -> bool {
        self.assets.is_empty()
    }

    /// Points `name` at an entry; returns the entry it pointed at before.
    pub fn insert(&mut self, name: AssetName, entry: AssetEntry) -> Option<AssetEntry> {
        self.assets.insert(name, entry)
    }

    pub fn remove(&mut self, name: &AssetName) -> Option<AssetEntry> {
        self.assets.remove(name)
    }

    /// Whether any name still points at `digest`.
    pub fn holds(&self, digest: &Digest) -> bool {
        self.assets.values().any(|e| e.sha256 == *digest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_refuses_bad_entries() {
        let mut index = AssetIndex::default();
        let digest: Digest = "ab".repeat(32).parse().unwrap();
        let entry = AssetEntry {
            sha256: digest.clone(),
            size: 3,
            added_at: "2025-01-01T00:00:00Z".into(),
        };
        index.insert("k".parse().unwrap(), entry.clone());
        index.insert("k2".parse().unwrap(), entry);
        let text = serde_json::to_vec(&index).unwrap();
        let back = AssetIndex::parse(&text).unwrap();
        assert_eq!(back, index);
        assert!(back.holds(&digest));
        assert_eq!(back.get("k2").unwrap().size, 3);

        let bad_name = String::from_utf8(text.clone())
            .unwrap()
            .replace("\"k2\"", "\"../x\"");
        assert!(AssetIndex::parse(bad_name.as_bytes()).is_err());
        let bad_hash = String::from_utf8(text)
            .unwrap()
            .replace(&"ab".repeat(32), "../../etc");
        assert!(AssetIndex::parse(bad_hash.as_bytes()).is_err());
        assert!(AssetIndex::parse(br#"{"version":2,"assets":{}}"#).is_err());
    }
}
