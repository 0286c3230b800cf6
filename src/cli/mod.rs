//! The command line: parses arguments and hands each subcommand to the library.
//! Errors reach the user as one line, `error: what failed: why`.

mod admin_client;
mod asset;
mod boot_try;
mod config;
mod events;
mod generate;
mod history;
pub mod image;
mod init;
mod machine;
mod profile;
mod scratch;
mod serve;

use std::path::PathBuf;

use anyhow::Result;
use clap::{Parser, Subcommand};

use crate::datadir::{self, DataDir};

#[derive(Debug, Parser)]
#[command(
    name = "bootgate",
    version,
    about = "Authenticated network boot: a CA, an mTLS boot server for iPXE and a boot-image builder",
    propagate_version = true
)]
pub struct Cli {
    /// Data directory (configuration, CA, machines, served files).
    #[arg(long, global = true, env = "BOOTGATE_DATA", default_value = datadir::DEFAULT_PATH)]
    pub data: PathBuf,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create a data directory: configuration, CA and server certificate.
    Init(init::InitArgs),
    /// Run the HTTPS boot server (creates a localhost data directory on first run).
    Serve(serve::ServeArgs),
    /// Enroll, list, inspect and revoke machines.
    #[command(subcommand)]
    Machine(machine::MachineCommand),
    /// Build per-machine boot images (SD cards, USB sticks).
    #[command(subcommand)]
    Image(image::ImageCommand),
    /// Boot an image in QEMU against the server, before flashing it.
    Try(boot_try::TryArgs),
    /// Boot configurations shared by many machines.
    #[command(subcommand)]
    Profile(profile::ProfileCommand),
    /// Kernels, initramfs images and device trees stored once for all machines.
    #[command(subcommand)]
    Asset(asset::AssetCommand),
    /// Boot history: every request machines made, and failed TLS handshakes.
    Events(events::EventsArgs),
    /// Boot configuration from git: sync, status, log, pin and unpin.
    #[command(subcommand)]
    Config(config::ConfigCommand),
    /// Per-machine S3 scratch space (see `[scratch]` in bootgate.toml).
    #[command(subcommand)]
    Scratch(scratch::ScratchCommand),
    /// Write the man pages and shell completions (for packaging).
    #[command(name = "generate-docs", hide = true)]
    GenerateDocs(generate::GenerateArgs),
}

/// Arguments of a `list` subcommand that has nothing but `--json`.
#[derive(Debug, clap::Args)]
pub struct ListArgs {
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

impl Cli {
    pub fn run(self) -> Result<()> {
        let dir = DataDir::new(&self.data);
        match self.command {
            Command::Init(args) => init::run(&dir, args),
            Command::Serve(args) => serve::run(&dir, args),
            Command::Machine(cmd) => machine::run(&dir, cmd),
            Command::Image(cmd) => image::run(&dir, cmd),
            Command::Try(args) => boot_try::run(&dir, args),
            Command::Profile(cmd) => profile::run(&dir, cmd),
            Command::Asset(cmd) => asset::run(&dir, cmd),
            Command::Events(args) => events::run(&dir, args),
            Command::Config(cmd) => config::run(&dir, cmd),
            Command::Scratch(cmd) => scratch::run(&dir, cmd),
            Command::GenerateDocs(args) => generate::run(args),
        }
    }
}

/// The width of a table column: its longest cell, and at least its heading's.
fn column_width<'a>(heading: &str, cells: impl IntoIterator<Item = &'a str>) -> usize {
    cells
        .into_iter()
        .map(str::len)
        .max()
        .unwrap_or(0)
        .max(heading.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_consistent() {
        Cli::command().debug_assert();
    }
}
