//! `bootgate asset add | list | rm`.

use std::path::PathBuf;

use super::ListArgs;
use anyhow::Result;
use clap::{Args, Subcommand};

use crate::datadir::DataDir;
use crate::datadir::assets::{self, AddOptions, Digest};
use crate::names::AssetName;

#[derive(Debug, Subcommand)]
pub enum AssetCommand {
    /// Store a kernel, initramfs or device tree once, for every machine to
    /// fetch as /files/NAME; prints its SHA-256.
    Add(AddArgs),
    /// List shared assets and the boot scripts that use them.
    List(ListArgs),
    /// Remove a shared asset (refused while a boot script names it).
    Rm(RmArgs),
}

#[derive(Debug, Args)]
pub struct AddArgs {
    /// The file to store.
    file: PathBuf,
    /// Name machines fetch it by (default: the file's name).
    #[arg(long)]
    name: Option<AssetName>,
    /// Refuse the file unless its SHA-256 is this (e.g. from a release's checksums).
    #[arg(long, value_name = "HEX")]
    sha256: Option<Digest>,
    /// Point an existing name at this file's content.
    #[arg(long)]
    replace: bool,
}

#[derive(Debug, Args)]
pub struct RmArgs {
    name: String,
    /// Remove it even though boot scripts name it (they will get 404).
    #[arg(long)]
    force: bool,
}

pub fn run(dir: &DataDir, cmd: AssetCommand) -> Result<()> {
    let dir = DataDir::open(dir.root())?;
    match cmd {
        AssetCommand::Add(args) => {
            let opts = AddOptions {
                name: args.name,
                expected: args.sha256,
                replace: args.replace,
            };
            let added = assets::add(&dir, &args.file, opts)?;
            let (name, entry) = (&added.name, &added.entry);
            if added.unchanged {
                eprintln!("{name} already holds this content; nothing changed");
            } else {
                let how = if added.stored {
                    "stored"
                } else {
                    "already stored (one copy kept)"
                };
                eprintln!(
                    "{name}: {} bytes, {how}; machines fetch it as /files/{name}",
                    entry.size
                );
                if let Some(old) = &added.replaced {
                    eprintln!("{name} pointed at {} before", old.sha256);
                }
            }
            println!("{}", entry.sha256);
        }
        AssetCommand::List(args) => {
            let listed = assets::list(&dir)?;
            if args.json {
                println!("{}", serde_json::to_string_pretty(&listed)?);
                return Ok(());
            }
            let width = super::column_width("NAME", listed.iter().map(|a| a.name.as_str()));
            println!(
                "{:width$}  {:>12}  {:16}  USED BY",
                "NAME", "SIZE", "SHA256"
            );
            for a in &listed {
                let used = if a.used_by.is_empty() {
                    "-".to_string()
                } else {
                    a.used_by.join(", ")
                };
                println!(
                    "{:width$}  {:>12}  {:16}  {used}",
                    a.name,
                    a.size,
                    &a.sha256[..16]
                );
            }
        }
        AssetCommand::Rm(args) => {
            let removed = assets::remove(&dir, &args.name, args.force)?;
            eprintln!("removed {} ({})", args.name, removed.entry.sha256);
            if !removed.users.is_empty() {
                eprintln!(
                    "warning: {} still name it and will get 404 for /files/{}",
                    removed.users.join(", "),
                    args.name
                );
            }
        }
    }
    Ok(())
}
