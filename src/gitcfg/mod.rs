//! Boot configuration from git: the `files/` and `profiles/` the server
//! serves come from a branch of a repository operators edit through reviews.
//!
//! A sync fetches the branch into a bare repository (`config/repo.git`),
//! writes the new commit's tree into a temporary folder, checks it
//! ([`check`]), renames it to `config/trees/<commit>/`, and only then
//! replaces `config/live.json` (atomically) to name it. The server swaps to
//! the tree `live.json` names with one pointer store, so each request sees
//! one whole tree. A rejected commit changes nothing that is served.
//!
//! A repository whose top level holds `files/` is laid out like a data
//! directory (`files/`, `profiles/`); any other is taken to be a `files/`
//! folder on its own, as the 2023 ipxe-boot-server kept it.
//!
//! Syncs (CLI, polling, the admin trigger, pin and unpin) take
//! `config/sync.lock`, so two never interleave.

pub mod check;
pub mod git;
pub mod history;
pub mod live;
pub mod status;

use std::fs::File;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use crate::config::{Config, GitConfig};
use crate::datadir::assets::AssetIndex;
use crate::datadir::registry::Registry;
use crate::datadir::{DataDir, FILES_TREE, PROFILES_TREE};
use git::{CommitInfo, Git};
use history::{CommitOutcome, Record};
use live::Live;

/// Trees kept besides the live one, for `config pin` and quick undo.
const TREES_KEPT: usize = 4;
const TMP_PREFIX: &str = ".tmp-";

/// What a sync, pin or unpin did.
#[derive(Debug, Clone, PartialEq)]
pub enum Report {
    /// The commit is now live.
    Applied(CommitInfo),
    /// The commit was already live.
    Unchanged(CommitInfo),
    /// The commit failed its checks; the live tree did not change.
    Rejected {
        commit: CommitInfo,
        problems: Vec<String>,
    },
    /// A pin is in force: the fetched commit was not applied.
    Pinned { live: CommitInfo, fetched: String },
}

impl Report {
    pub fn is_rejected(&self) -> bool {
        matches!(self, Self::Rejected { .. })
    }
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Applied(c) => write!(f, "applied {} {}", short(&c.commit), c.subject),
            Self::Unchanged(c) => {
                write!(f, "unchanged: {} {} is live", short(&c.commit), c.subject)
            }
            Self::Rejected { commit, problems } => {
                writeln!(
                    f,
                    "rejected {} {}; still serving the last good commit:",
                    short(&commit.commit),
                    commit.subject
                )?;
                for problem in problems {
                    writeln!(f, "  {problem}")?;
                }
                Ok(())
            }
            Self::Pinned { live, fetched } => write!(
                f,
                "pinned to {}: fetched {} but did not apply it (`bootgate config unpin` to follow the branch again)",
                short(&live.commit),
                short(fetched)
            ),
        }
    }
}

pub fn short(commit: &str) -> &str {
    &commit[..commit.len().min(12)]
}

/// The `[git]` section, or how to add one.
pub fn git_config(config: &Config) -> Result<&GitConfig> {
    config.git.as_ref().context(
        "no [git] section in bootgate.toml; set one up with `bootgate config init --remote URL`",
    )
}

/// Fetches the branch and applies its head unless a pin is in force.
pub fn sync(dir: &DataDir, config: &Config) -> Result<Report> {
    let git_cfg = git_config(config)?;
    let _lock = lock(dir)?;
    let git = open_repo(dir, git_cfg)?;
    let head = git.fetch(&git_cfg.remote, &git_cfg.branch)?;
    let live = Live::load(dir)?;
    if let Some(live) = &live {
        if live.pinned {
            return Ok(Report::Pinned {
                live: live.commit.clone(),
                fetched: head,
            });
        }
        if live.commit.commit == head && live.tree(dir).is_dir() {
            return Ok(Report::Unchanged(live.commit.clone()));
        }
    }
    // A commit already rejected stays rejected: say so again without a new record.
    if let Some(last) = history::read(dir)?
        .into_iter()
        .rev()
        .find(|r| r.commit.commit == head)
        && last.outcome == CommitOutcome::Rejected
    {
        return Ok(Report::Rejected {
            commit: last.commit,
            problems: last.problems,
        });
    }
    apply(dir, config, &git, &head, false)
}

/// Serves `rev` (a commit already fetched) until `unpin`, without touching the remote.
pub fn pin(dir: &DataDir, config: &Config, rev: &str) -> Result<Report> {
    let git_cfg = git_config(config)?;
    let _lock = lock(dir)?;
    let git = open_repo(dir, git_cfg)?;
    let commit = git.commit_of(rev)?;
    apply(dir, config, &git, &commit, true)
}

/// Drops a pin and serves the last fetched head of the branch again.
pub fn unpin(dir: &DataDir, config: &Config) -> Result<Report> {
    let git_cfg = git_config(config)?;
    let _lock = lock(dir)?;
    let git = open_repo(dir, git_cfg)?;
    let head = git.commit_of(&git::tracking_ref(&git_cfg.branch))?;
    if let Some(mut live) = Live::load(dir)? {
        if live.pinned {
            live.pinned = false;
            live.save(dir)?;
            record(
                dir,
                CommitOutcome::Unpinned,
                live.commit.clone(),
                Vec::new(),
            )?;
        }
        if live.commit.commit == head {
            return Ok(Report::Unchanged(live.commit));
        }
    }
    apply(dir, config, &git, &head, false)
}

fn lock(dir: &DataDir) -> Result<File> {
    let folder = dir.gitcfg_dir();
    std::fs::create_dir_all(&folder).with_context(|| format!("creating {}", folder.display()))?;
    let path = dir.gitcfg_lock_path();
    let file = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .with_context(|| format!("opening {}", path.display()))?;
    file.lock()
        .with_context(|| format!("locking {}", path.display()))?;
    Ok(file)
}

fn open_repo(dir: &DataDir, config: &GitConfig) -> Result<Git> {
    let git = Git::new(dir.gitcfg_repo_path(), dir.gitcfg_dir(), config);
    git.init().context("preparing config/repo.git")?;
    Ok(git)
}

/// Writes out, checks and switches to `commit`; called with the lock held.
fn apply(dir: &DataDir, config: &Config, git: &Git, commit: &str, pinned: bool) -> Result<Report> {
    let info = git.describe(commit)?;
    let trees = dir.gitcfg_trees_dir();
    std::fs::create_dir_all(&trees).with_context(|| format!("creating {}", trees.display()))?;
    remove_leftovers(&trees);

    let tmp = tempfile::Builder::new()
        .prefix(TMP_PREFIX)
        .tempdir_in(&trees)
        .with_context(|| format!("creating a folder in {}", trees.display()))?;
    let mut problems = write_tree(git, config, commit, tmp.path())?;
    if problems.is_empty() {
        let registry = Registry::load(dir)?;
        let assets = AssetIndex::load(dir)?;
        let cx = check::Context {
            registry: &registry,
            assets: &assets,
            public_url: &config.public_url(),
        };
        problems = check::check_tree(tmp.path(), &cx);
    }
    if !problems.is_empty() {
        record(dir, CommitOutcome::Rejected, info.clone(), problems.clone())?;
        return Ok(Report::Rejected {
            commit: info,
            problems,
        });
    }

    // A tree under its commit's name is complete and never changes: it may
    // be the one being served, so an existing one is kept as it is.
    let target = live::tree_path(dir, commit);
    if !target.is_dir() {
        let built = tmp.keep();
        std::fs::rename(&built, &target)
            .with_context(|| format!("moving the checked tree to {}", target.display()))?;
        crate::fsutil::sync_dir(&trees);
    }
    let live = Live {
        commit: info.clone(),
        pinned,
        applied_at: now(),
    };
    live.save(dir)?;
    let outcome = if pinned {
        CommitOutcome::Pinned
    } else {
        CommitOutcome::Applied
    };
    record(dir, outcome, info.clone(), Vec::new())?;
    collect_garbage(dir, commit);
    Ok(Report::Applied(info))
}

/// Writes a commit's configuration under `root` (as `files/` and
/// `profiles/`), unless the commit itself is unfit; returns its problems.
fn write_tree(git: &Git, config: &Config, commit: &str, root: &Path) -> Result<Vec<String>> {
    let git_cfg = git_config(config)?;
    let entries = git.list_tree(commit)?;
    let max = git_cfg.max_file_mib.saturating_mul(1024 * 1024);
    let mut problems = Vec::new();
    for entry in &entries {
        if entry.is_submodule() {
            problems.push(format!(
                "{}: is a submodule; bootgate serves files only",
                entry.path
            ));
        } else if entry.size.is_some_and(|size| size > max) {
            problems.push(format!(
                "{}: is {} MiB, more than max_file_mib = {}",
                entry.path,
                entry.size.unwrap_or(0) / (1024 * 1024),
                git_cfg.max_file_mib
            ));
        }
    }
    if !problems.is_empty() {
        return Ok(problems);
    }
    let data_layout = entries
        .iter()
        .any(|e| e.path.starts_with(&format!("{FILES_TREE}/")));
    let out = if data_layout {
        root.join("checkout")
    } else {
        root.join(FILES_TREE)
    };
    git.checkout(commit, &out)
        .with_context(|| format!("writing out commit {}", short(commit)))?;
    if data_layout {
        for name in [FILES_TREE, PROFILES_TREE] {
            let from = out.join(name);
            if from.is_dir() {
                std::fs::rename(&from, root.join(name))
                    .with_context(|| format!("moving {}", from.display()))?;
            }
        }
        std::fs::remove_dir_all(&out).with_context(|| format!("removing {}", out.display()))?;
    }
    Ok(problems)
}

fn record(
    dir: &DataDir,
    outcome: CommitOutcome,
    commit: CommitInfo,
    problems: Vec<String>,
) -> Result<()> {
    history::append(
        dir,
        &Record {
            at: now(),
            outcome,
            commit,
            problems,
        },
    )
}

pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// Removes what an interrupted sync left behind. Called with the lock held.
fn remove_leftovers(trees: &Path) {
    for path in entries(trees) {
        if path
            .file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with(TMP_PREFIX))
            && let Err(err) = std::fs::remove_dir_all(&path)
        {
            tracing::warn!("cannot remove {}: {err}", path.display());
        }
    }
}

/// Keeps the live tree and the few most recent others.
fn collect_garbage(dir: &DataDir, live: &str) {
    let mut trees: Vec<(std::time::SystemTime, PathBuf)> = entries(&dir.gitcfg_trees_dir())
        .into_iter()
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n != live && !n.to_string_lossy().starts_with('.'))
        })
        .filter_map(|p| Some((p.metadata().ok()?.modified().ok()?, p)))
        .collect();
    trees.sort();
    let excess = trees.len().saturating_sub(TREES_KEPT);
    for (_, path) in trees.into_iter().take(excess) {
        if let Err(err) = std::fs::remove_dir_all(&path) {
            tracing::warn!("cannot remove old tree {}: {err}", path.display());
        }
    }
}

fn entries(folder: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(folder)
        .map(|rd| rd.flatten().map(|e| e.path()).collect())
        .unwrap_or_default()
}
