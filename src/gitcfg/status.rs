//! What the git-managed configuration looks like now, for `config status`,
//! the status page and `/metrics`.

use std::fmt::Write;

use anyhow::Result;

use super::history::{self, CommitOutcome, Record};
use super::live::Live;
use super::short;
use crate::datadir::DataDir;

pub struct Status {
    pub live: Option<Live>,
    pub last_rejection: Option<Record>,
    pub rejections: u64,
}

impl Status {
    pub fn load(dir: &DataDir) -> Result<Self> {
        let records = history::read(dir)?;
        let rejected = || {
            records
                .iter()
                .filter(|r| r.outcome == CommitOutcome::Rejected)
        };
        Ok(Self {
            live: Live::load(dir)?,
            last_rejection: rejected().next_back().cloned(),
            rejections: rejected().count() as u64,
        })
    }

    /// One line: the live commit, pin, last rejection.
    pub fn summary(&self) -> String {
        let mut out = match &self.live {
            Some(live) => format!(
                "config {} “{}”{}",
                short(&live.commit.commit),
                live.commit.subject,
                if live.pinned { " (pinned)" } else { "" }
            ),
            None => "config from the data directory (no git sync yet)".to_string(),
        };
        if let Some(r) = &self.last_rejection {
            let _ = write!(
                out,
                "; last rejected {} “{}” ({} problem{})",
                short(&r.commit.commit),
                r.commit.subject,
                r.problems.len(),
                if r.problems.len() == 1 { "" } else { "s" }
            );
        }
        out
    }

    /// Prometheus text for the configuration's families.
    pub fn metrics(&self, now_secs: i64) -> String {
        let mut out = String::new();
        if let Some(live) = &self.live {
            let _ = writeln!(
                out,
                "# HELP bootgate_config_live_commit_age_seconds Age of the served configuration commit (by commit time).\n\
                 # TYPE bootgate_config_live_commit_age_seconds gauge\n\
                 bootgate_config_live_commit_age_seconds {}\n\
                 # HELP bootgate_config_pinned Whether a pin holds the served configuration.\n\
                 # TYPE bootgate_config_pinned gauge\n\
                 bootgate_config_pinned {}",
                (now_secs - live.commit.time).max(0),
                u8::from(live.pinned)
            );
        }
        let _ = writeln!(
            out,
            "# HELP bootgate_config_rejections_total Configuration commits rejected by the checks.\n\
             # TYPE bootgate_config_rejections_total counter\n\
             bootgate_config_rejections_total {}",
            self.rejections
        );
        out
    }
}
