//! Versioned JSON state files (`registry.json`, `assets/index.json`): read
//! whole, refused when written by a bootgate of another format version, and
//! replaced atomically on every change.

use std::path::Path;

use anyhow::{Context, Result, bail};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::fsutil;

pub trait StateFile: Serialize + DeserializeOwned + Default {
    /// What the file is, for messages ("registry").
    const WHAT: &'static str;
    /// The format version this bootgate reads and writes.
    const VERSION: u32;

    fn version(&self) -> u32;

    /// Parses the file's bytes, refusing other format versions.
    fn parse(text: &[u8]) -> Result<Self> {
        let value: Self = serde_json::from_slice(text)?;
        if value.version() != Self::VERSION {
            bail!(
                "{} version {} is not supported (this bootgate reads version {})",
                Self::WHAT,
                value.version(),
                Self::VERSION
            );
        }
        Ok(value)
    }

    /// Parses the file's bytes; no file (`None`) is the empty default.
    fn parse_or_default(text: Option<&[u8]>) -> Result<Self> {
        text.map_or_else(|| Ok(Self::default()), Self::parse)
    }

    /// Loads the file; a missing one is the empty default.
    fn load_from(path: &Path) -> Result<Self> {
        let text = match std::fs::read(path) {
            Ok(text) => Some(text),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => None,
            Err(err) => return Err(err).with_context(|| format!("reading {}", path.display())),
        };
        Self::parse_or_default(text.as_deref())
            .with_context(|| format!("parsing {}", path.display()))
    }

    /// Writes the file atomically (creating its folder if needed).
    fn save_to(&self, path: &Path) -> Result<()> {
        let mut text = serde_json::to_vec_pretty(self)
            .with_context(|| format!("serialising the {}", Self::WHAT))?;
        text.push(b'\n');
        fsutil::create_dir(fsutil::parent_of(path))?;
        fsutil::write_atomic(path, &text, fsutil::PUBLIC)
    }
}
