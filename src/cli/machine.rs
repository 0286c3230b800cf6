//! `bootgate machine add | adopt | list | show | revoke`.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use serde::Serialize;

use crate::datadir::DataDir;
use crate::machines;
use crate::registry::{Machine, MachineName, Registry};

#[derive(Debug, Subcommand)]
pub enum MachineCommand {
    /// Issue a client certificate and key for a new machine; prints its fingerprint.
    Add(AddArgs),
    /// Register a client certificate issued elsewhere by this CA.
    Adopt(AdoptArgs),
    /// List enrolled machines.
    List(ListArgs),
    /// Show one machine.
    Show(ShowArgs),
    /// Revoke a machine: the running server refuses it from its next request.
    Revoke(RevokeArgs),
}

#[derive(Debug, Args)]
pub struct AddArgs {
    name: MachineName,
}

#[derive(Debug, Args)]
pub struct AdoptArgs {
    /// The machine's client certificate (PEM).
    cert: PathBuf,
    /// Name to register it under (default: the certificate's common name).
    #[arg(long)]
    name: Option<MachineName>,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
pub struct ShowArgs {
    name: String,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
pub struct RevokeArgs {
    name: String,
}

pub fn run(dir: &DataDir, cmd: MachineCommand) -> Result<()> {
    let dir = DataDir::open(dir.root())?;
    match cmd {
        MachineCommand::Add(args) => {
            let machine = machines::add(&dir, &args.name)?;
            eprintln!(
                "enrolled {}: key and certificate in {} (the key is private: mode 0600)",
                machine.name,
                dir.machine_dir(machine.name.as_ref()).display()
            );
            eprintln!(
                "boot script: {}",
                dir.machine_files_dir(&machine.fingerprint)
                    .join("boot.ipxe")
                    .display()
            );
            println!("{}", machine.fingerprint);
        }
        MachineCommand::Adopt(args) => {
            let pem = std::fs::read_to_string(&args.cert)
                .with_context(|| format!("reading {}", args.cert.display()))?;
            let machine = machines::adopt(&dir, &pem, args.name.as_ref())?;
            let files = dir.machine_files_dir(&machine.fingerprint);
            eprintln!("adopted {} ({})", machine.name, machine.fingerprint);
            if !files.join("boot.ipxe").is_file() {
                eprintln!(
                    "note: {} has no boot.ipxe yet; copy the old files/{}/ tree there",
                    files.display(),
                    machine.fingerprint
                );
            }
            println!("{}", machine.fingerprint);
        }
        MachineCommand::List(args) => {
            let registry = Registry::load(&dir)?;
            let views: Vec<_> = registry.machines().iter().map(View::of).collect();
            if args.json {
                println!("{}", serde_json::to_string_pretty(&views)?);
            } else {
                print_table(&views);
            }
        }
        MachineCommand::Show(args) => {
            let registry = Registry::load(&dir)?;
            let view = View::of(registry.require(&args.name)?);
            if args.json {
                println!("{}", serde_json::to_string_pretty(&view)?);
            } else {
                print_details(&dir, &view);
            }
        }
        MachineCommand::Revoke(args) => {
            if machines::revoke(&dir, &args.name)? {
                eprintln!(
                    "revoked {}; a running server refuses it from its next request",
                    args.name
                );
            } else {
                eprintln!("{} was already revoked", args.name);
            }
        }
    }
    Ok(())
}

/// What `list` and `show` print about a machine.
#[derive(Debug, Serialize)]
struct View<'a> {
    name: &'a str,
    fingerprint: &'a str,
    sha256: &'a str,
    serial: &'a str,
    not_before: &'a str,
    not_after: &'a str,
    origin: crate::registry::Origin,
    enrolled_at: &'a str,
    revoked: bool,
    revoked_at: Option<&'a str>,
    /// Not recorded yet: filled in once boot history exists.
    last_seen: Option<&'a str>,
}

impl<'a> View<'a> {
    fn of(m: &'a Machine) -> Self {
        Self {
            name: m.name.as_ref(),
            fingerprint: &m.fingerprint,
            sha256: &m.sha256,
            serial: &m.serial,
            not_before: &m.not_before,
            not_after: &m.not_after,
            origin: m.origin,
            enrolled_at: &m.enrolled_at,
            revoked: m.is_revoked(),
            revoked_at: m.revoked_at.as_deref(),
            last_seen: None,
        }
    }
}

fn print_table(views: &[View]) {
    let width = views.iter().map(|v| v.name.len()).max().unwrap_or(4).max(4);
    println!(
        "{:width$}  {:40}  {:20}  STATUS",
        "NAME", "FINGERPRINT", "NOT AFTER"
    );
    for v in views {
        let status = if v.revoked { "revoked" } else { "active" };
        println!(
            "{:width$}  {:40}  {:20}  {status}",
            v.name, v.fingerprint, v.not_after
        );
    }
}

fn print_details(dir: &DataDir, v: &View) {
    let files = dir.machine_files_dir(v.fingerprint);
    println!("name:        {}", v.name);
    println!("fingerprint: {}", v.fingerprint);
    println!("sha256:      {}", v.sha256);
    println!("serial:      {}", v.serial);
    println!("valid:       {} .. {}", v.not_before, v.not_after);
    println!("origin:      {:?}", v.origin);
    println!("enrolled:    {}", v.enrolled_at);
    match v.revoked_at {
        Some(at) => println!("status:      revoked at {at}"),
        None => println!("status:      active"),
    }
    println!("last seen:   {}", v.last_seen.unwrap_or("never recorded"));
    println!(
        "files:       {}{}",
        files.display(),
        if files.is_dir() {
            ""
        } else {
            " (absent: serves files/default/)"
        }
    );
}
