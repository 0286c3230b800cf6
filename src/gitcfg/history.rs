//! `config/history.jsonl`: one JSON line per applied, rejected, pinned or
//! unpinned commit, appended (and synced) under the sync lock.

use std::io::{BufRead, Write};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use super::git::CommitInfo;
use crate::datadir::DataDir;

/// What happened to a commit of the configuration repository.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum CommitOutcome {
    Applied,
    Rejected,
    Pinned,
    Unpinned,
}

impl std::fmt::Display for CommitOutcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Applied => "applied",
            Self::Rejected => "rejected",
            Self::Pinned => "pinned",
            Self::Unpinned => "unpinned",
        })
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Record {
    /// Seconds since the epoch.
    pub at: i64,
    pub outcome: CommitOutcome,
    #[serde(flatten)]
    pub commit: CommitInfo,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub problems: Vec<String>,
}

pub fn append(dir: &DataDir, record: &Record) -> Result<()> {
    let path = dir.gitcfg_history_path();
    let mut line = serde_json::to_string(record).context("serialising a history record")?;
    line.push('\n');
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .with_context(|| format!("opening {}", path.display()))?;
    file.write_all(line.as_bytes())
        .and_then(|()| file.sync_all())
        .with_context(|| format!("writing {}", path.display()))
}

/// Every record, oldest first; a torn last line (a crash while appending) is skipped.
pub fn read(dir: &DataDir) -> Result<Vec<Record>> {
    let path = dir.gitcfg_history_path();
    let file = match std::fs::File::open(&path) {
        Ok(file) => file,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(err) => return Err(err).with_context(|| format!("opening {}", path.display())),
    };
    let mut records = Vec::new();
    for line in std::io::BufReader::new(file).lines() {
        let line = line.with_context(|| format!("reading {}", path.display()))?;
        if let Ok(record) = serde_json::from_str(&line) {
            records.push(record);
        }
    }
    Ok(records)
}
