//! `bootgate scratch purge`, and the scratch-space steps of `machine show`
//! and `machine revoke`: each talks to the object store configured in
//! `[scratch]`, from a short-lived async runtime.

use std::io::{BufRead, Write};

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};

use crate::config::Config;
use crate::datadir::DataDir;
use crate::datadir::registry::{Machine, Registry};
use crate::scratch::{self, Scratch, Status};

#[derive(Debug, Subcommand)]
pub enum ScratchCommand {
    /// Delete a machine's scratch space: its keys, every object of its
    /// bucket, and the bucket.
    Purge(PurgeArgs),
}

#[derive(Debug, Args)]
pub struct PurgeArgs {
    /// The machine's name.
    name: String,
    /// Do not ask for confirmation.
    #[arg(long)]
    yes: bool,
}

pub fn run(dir: &DataDir, cmd: ScratchCommand) -> Result<()> {
    let dir = DataDir::open(dir.root())?;
    match cmd {
        ScratchCommand::Purge(args) => {
            let registry = Registry::load(&dir)?;
            let machine = registry.require(&args.name)?;
            let Some(scratch) = configured(&dir)? else {
                bail!("no [scratch] in bootgate.toml: there is no scratch space to purge");
            };
            let bucket = scratch::bucket_name(&machine.fingerprint);
            if !args.yes
                && !confirm(&format!(
                    "delete bucket {bucket} of {} and everything in it? [y/N] ",
                    args.name
                ))?
            {
                bail!("nothing deleted");
            }
            block_on(scratch.purge(&machine.fingerprint))
                .with_context(|| format!("purging the scratch space of {}", args.name))?;
            eprintln!("deleted the keys and bucket {bucket} of {}", args.name);
        }
    }
    Ok(())
}

/// The configured scratch space, if `[scratch]` is set.
fn configured(dir: &DataDir) -> Result<Option<Scratch>> {
    let config = Config::load(dir)?;
    config
        .scratch
        .as_ref()
        .map(Scratch::from_config)
        .transpose()
}

fn block_on<T>(future: impl std::future::Future<Output = Result<T>>) -> Result<T> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?
        .block_on(future)
}

/// [`block_on`], giving up after `timeout`.
fn block_on_within<T>(
    timeout: std::time::Duration,
    future: impl std::future::Future<Output = Result<T>>,
) -> Result<T> {
    block_on(async {
        tokio::time::timeout(timeout, future)
            .await
            .map_err(|_| anyhow::anyhow!("the object store did not answer within {timeout:?}"))?
    })
}

fn confirm(question: &str) -> Result<bool> {
    eprint!("{question}");
    std::io::stderr().flush()?;
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    Ok(matches!(answer.trim(), "y" | "Y" | "yes"))
}

/// Deletes a revoked machine's keys; `Ok(None)` without `[scratch]`.
pub fn revoke_keys(dir: &DataDir, machine: &Machine) -> Result<Option<usize>> {
    let Some(scratch) = configured(dir)? else {
        return Ok(None);
    };
    block_on_within(scratch_timeout(dir)?, scratch.revoke(&machine.fingerprint)).map(Some)
}

/// The machine's scratch space as the store sees it; `Ok(None)` without
/// `[scratch]`.
pub fn status(dir: &DataDir, machine: &Machine) -> Result<Option<Status>> {
    let Some(scratch) = configured(dir)? else {
        return Ok(None);
    };
    block_on_within(scratch_timeout(dir)?, scratch.status(&machine.fingerprint)).map(Some)
}

/// CLI calls wait a little longer than a boot script would.
fn scratch_timeout(dir: &DataDir) -> Result<std::time::Duration> {
    let config = Config::load(dir)?;
    Ok(config
        .scratch
        .map_or(std::time::Duration::from_secs(10), |s| {
            s.timeout().max(std::time::Duration::from_secs(10))
        }))
}

/// Whether the machine's boot script puts the secret key in itself.
pub fn script_holds_secret(dir: &DataDir, machine: &Machine) -> Option<std::path::PathBuf> {
    let path = crate::server::boot_script_of(dir, machine)?;
    let text = std::fs::read_to_string(&path).ok()?;
    scratch::uses_secret(&crate::bootcfg::template::referenced_names(&text)).then_some(path)
}
