//! `bootgate generate-docs DIR` (hidden): writes the man pages (one per
//! subcommand) and the bash, zsh and fish completions from the command-line
//! definition, for `scripts/build-deb` to package.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Args, CommandFactory};
use clap_complete::Shell;

use super::Cli;
use crate::fsutil;

#[derive(Debug, Args)]
pub struct GenerateArgs {
    /// Folder to write `man/` and `completions/` into.
    out: PathBuf,
}

pub fn run(args: GenerateArgs) -> Result<()> {
    let man = args.out.join("man");
    let completions = args.out.join("completions");
    for dir in [&man, &completions] {
        fsutil::create_dir(dir)?;
    }
    clap_mangen::generate_to(Cli::command(), &man)
        .with_context(|| format!("writing man pages to {}", man.display()))?;
    for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
        clap_complete::generate_to(shell, &mut visible_commands(), "bootgate", &completions)
            .with_context(|| format!("writing {shell} completions to {}", completions.display()))?;
    }
    Ok(())
}

/// The command line without its hidden commands (this one), which the
/// completion generators would otherwise offer.
fn visible_commands() -> clap::Command {
    let full = Cli::command();
    clap::Command::new("bootgate")
        .args(full.get_arguments().cloned())
        .subcommands(full.get_subcommands().filter(|s| !s.is_hide_set()).cloned())
}
