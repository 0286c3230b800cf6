//! `bootgate config`: boot configuration from git — set up, sync, status,
//! history, pin and unpin. See docs/git.md.

use std::path::PathBuf;

use anyhow::{Result, bail};
use clap::{Args, Subcommand};

use crate::config::{Config, GitConfig};
use crate::datadir::DataDir;
use crate::gitcfg::history::{self, Record};
use crate::gitcfg::status::Status;
use crate::gitcfg::{self, Report};

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Take files/ and profiles/ from a git branch from now on (writes [git]
    /// into bootgate.toml, then syncs once).
    Init(InitArgs),
    /// Fetch the branch, check its head and serve it if it passes.
    Sync,
    /// The served commit, pin and last rejection.
    Status,
    /// Applied and rejected commits, newest first.
    Log(LogArgs),
    /// Serve an earlier commit (already fetched) until `unpin`; the remote is not contacted.
    Pin {
        /// Commit id (or any revision git understands).
        commit: String,
    },
    /// Follow the branch again: serve the last fetched head.
    Unpin,
}

#[derive(Debug, Args)]
pub struct InitArgs {
    /// Repository URL (https://, ssh://, file:// or a path).
    #[arg(long)]
    remote: String,
    #[arg(long, default_value = "main")]
    branch: String,
    /// Sync every SECS seconds while the server runs.
    #[arg(long, value_name = "SECS")]
    poll: Option<u64>,
    /// File holding the token `POST /config/sync` on the admin listener requires.
    #[arg(long, value_name = "PATH")]
    trigger_token_file: Option<PathBuf>,
    /// Private key for ssh:// remotes.
    #[arg(long, value_name = "PATH")]
    ssh_key: Option<PathBuf>,
    /// git-credential-store file for https:// remotes.
    #[arg(long, value_name = "PATH")]
    credentials_file: Option<PathBuf>,
    /// Only write the configuration; do not sync now.
    #[arg(long)]
    no_sync: bool,
}

#[derive(Debug, Args)]
pub struct LogArgs {
    /// At most this many entries.
    #[arg(long, default_value_t = 20)]
    limit: usize,
    /// One JSON object per line.
    #[arg(long)]
    json: bool,
}

pub fn run(dir: &DataDir, cmd: ConfigCommand) -> Result<()> {
    let dir = DataDir::open(dir.root())?;
    match cmd {
        ConfigCommand::Init(args) => init(&dir, args),
        ConfigCommand::Sync => {
            let config = Config::load(&dir)?;
            print_report(gitcfg::sync(&dir, &config)?)
        }
        ConfigCommand::Pin { commit } => {
            let config = Config::load(&dir)?;
            print_report(gitcfg::pin(&dir, &config, &commit)?)
        }
        ConfigCommand::Unpin => {
            let config = Config::load(&dir)?;
            print_report(gitcfg::unpin(&dir, &config)?)
        }
        ConfigCommand::Status => status(&dir),
        ConfigCommand::Log(args) => log(&dir, args),
    }
}

fn init(dir: &DataDir, args: InitArgs) -> Result<()> {
    let lock = dir.lock()?;
    let mut config = Config::load(dir)?;
    let mut git = GitConfig::new(args.remote, args.branch);
    git.poll_secs = args.poll;
    git.trigger_token_file = args.trigger_token_file.map(absolute).transpose()?;
    git.ssh_key = args.ssh_key.map(absolute).transpose()?;
    git.credentials_file = args.credentials_file.map(absolute).transpose()?;
    config.git = Some(git);
    config.save(dir)?;
    // Re-read: what is saved must also load.
    let config = Config::load(dir)?;
    drop(lock);
    println!(
        "boot configuration now comes from git; a running server needs a restart to poll or take triggers"
    );
    if args.no_sync {
        return Ok(());
    }
    print_report(gitcfg::sync(dir, &config)?)
}

fn absolute(path: PathBuf) -> Result<PathBuf> {
    Ok(std::path::absolute(&path)?)
}

fn print_report(report: Report) -> Result<()> {
    println!("{}", report.to_string().trim_end());
    if report.is_rejected() {
        bail!("the commit was rejected; the server keeps serving the last good one");
    }
    Ok(())
}

fn status(dir: &DataDir) -> Result<()> {
    let config = Config::load(dir)?;
    let git = gitcfg::git_config(&config)?;
    let status = Status::load(dir)?;
    println!("remote:   {} (branch {})", git.remote, git.branch);
    match &status.live {
        Some(live) => {
            println!(
                "live:     {} {}{}",
                live.commit.commit,
                live.commit.subject,
                if live.pinned { " (pinned)" } else { "" }
            );
            println!("author:   {}", live.commit.author);
            println!("applied:  {}", when(live.applied_at));
        }
        None => {
            println!("live:     none yet; files/ and profiles/ of the data directory are served")
        }
    }
    if let Some(r) = &status.last_rejection {
        println!(
            "rejected: {} {} at {} ({} problems)",
            r.commit.commit,
            r.commit.subject,
            when(r.at),
            r.problems.len()
        );
    }
    Ok(())
}

fn log(dir: &DataDir, args: LogArgs) -> Result<()> {
    let records: Vec<Record> = history::read(dir)?
        .into_iter()
        .rev()
        .take(args.limit)
        .collect();
    for r in records {
        if args.json {
            println!("{}", serde_json::to_string(&r)?);
            continue;
        }
        println!(
            "{}  {:<8}  {}  {}  ({})",
            when(r.at),
            r.outcome.to_string(),
            gitcfg::short(&r.commit.commit),
            r.commit.subject,
            r.commit.author
        );
        for problem in &r.problems {
            println!("    {problem}");
        }
    }
    Ok(())
}

fn when(secs: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(secs)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| secs.to_string())
}
