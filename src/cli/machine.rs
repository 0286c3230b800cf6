//! `bootgate machine add | adopt | list | show | revoke | set-profile`.
//! `list` and `show` add what the boot history knows: last seen, last boot.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use serde::Serialize;

use super::events::SourceArgs;
use super::history::History;
use crate::datadir::registry::{Machine, MachineName, Registry};
use crate::datadir::{DataDir, SCRIPT_FILE};
use crate::events::duration::ago;
use crate::events::text::print_boot;
use crate::events::{Boot, BootDetail, MachineSeen, Timestamp};
use crate::manage::enrollment;
use crate::names::Fingerprint;
use crate::names::ProfileName;

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
    /// Make a machine use a profile's script and files (or none with --none).
    SetProfile(SetProfileArgs),
}

#[derive(Debug, Args)]
pub struct AddArgs {
    name: MachineName,
    /// Boot it with this profile's script and files instead of its own
    /// (no files/<fingerprint>/boot.ipxe is written).
    #[arg(long, value_name = "PROFILE")]
    profile: Option<ProfileName>,
}

#[derive(Debug, Args)]
pub struct SetProfileArgs {
    name: String,
    /// The profile to use.
    #[arg(required_unless_present = "none", conflicts_with = "none")]
    profile: Option<ProfileName>,
    /// Use no profile any more.
    #[arg(long)]
    none: bool,
}

#[derive(Debug, Args)]
pub struct AdoptArgs {
    /// The machine's client certificate (PEM).
    cert: PathBuf,
    /// Name to register it under (default: the certificate's common name).
    #[arg(long)]
    name: Option<MachineName>,
    /// Adopt it even though it has expired or is not valid yet.
    #[arg(long)]
    force: bool,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    source: SourceArgs,
}

#[derive(Debug, Args)]
pub struct ShowArgs {
    name: String,
    /// Print JSON.
    #[arg(long)]
    json: bool,
    /// How many of its latest boots to show, with their requests.
    #[arg(long, value_name = "N", default_value_t = 5)]
    boots: usize,
    #[command(flatten)]
    source: SourceArgs,
}

#[derive(Debug, Args)]
pub struct RevokeArgs {
    name: String,
}

pub fn run(dir: &DataDir, cmd: MachineCommand) -> Result<()> {
    let dir = DataDir::open(dir.root())?;
    match cmd {
        MachineCommand::Add(args) => add(&dir, args),
        MachineCommand::Adopt(args) => adopt(&dir, args),
        MachineCommand::List(args) => list(&dir, args),
        MachineCommand::Show(args) => show(&dir, args),
        MachineCommand::SetProfile(args) => set_profile(&dir, args),
        MachineCommand::Revoke(args) => revoke(&dir, args),
    }
}

/// `machine add`: enrolls a new machine and says where its boot script goes.
fn add(dir: &DataDir, args: AddArgs) -> Result<()> {
    let machine = enrollment::add(dir, &args.name, args.profile.as_ref())?;
    eprintln!(
        "enrolled {}: key and certificate in {} (the key is private: mode 0600)",
        machine.name,
        dir.machine_dir(machine.name.as_ref()).display()
    );
    let own = dir.machine_files_dir(&machine.fingerprint);
    match &machine.profile {
        Some(profile) => eprintln!(
            "boot script: profile {profile} ({}); per-machine overrides go in {}",
            dir.profile_dir(profile.as_ref())
                .join(SCRIPT_FILE)
                .display(),
            own.display()
        ),
        None => eprintln!("boot script: {}", own.join(SCRIPT_FILE).display()),
    }
    println!("{}", machine.fingerprint);
    Ok(())
}

/// `machine adopt`: registers a certificate this CA issued elsewhere.
fn adopt(dir: &DataDir, args: AdoptArgs) -> Result<()> {
    let pem = std::fs::read_to_string(&args.cert)
        .with_context(|| format!("reading {}", args.cert.display()))?;
    let machine = enrollment::adopt(dir, &pem, args.name.as_ref(), args.force)?;
    let files = dir.machine_files_dir(&machine.fingerprint);
    eprintln!("adopted {} ({})", machine.name, machine.fingerprint);
    if crate::ca::x509_version(&crate::ca::der_from_pem(&pem)?)? == 1 {
        let legacy = crate::config::Config::load(dir)
            .map(|c| c.legacy_tls)
            .unwrap_or(false);
        eprintln!(
            "note: an X.509 v1 certificate is accepted only from clients served by the legacy TLS stack (iPXE built before 2024){}",
            if legacy {
                ""
            } else {
                "; legacy_tls is off in bootgate.toml: turn it on for this machine to connect"
            }
        );
    }
    if !files.join(SCRIPT_FILE).is_file() {
        eprintln!(
            "note: {} has no {SCRIPT_FILE} yet; copy the old files/{}/ tree there",
            files.display(),
            machine.fingerprint
        );
    }
    println!("{}", machine.fingerprint);
    Ok(())
}

/// `machine list`: every machine with what the history knows of it.
fn list(dir: &DataDir, args: ListArgs) -> Result<()> {
    let registry = Registry::load(dir)?;
    let seen = history(dir, &args.source)
        .and_then(|h| h.machines())
        .unwrap_or_else(|err| {
            eprintln!("warning: boot history unavailable: {err:#}");
            Vec::new()
        });
    let views: Vec<_> = registry
        .machines()
        .iter()
        .map(|m| View::of(m, seen.iter().find(|s| *s.machine == *m.name.as_ref())))
        .collect();
    if args.json {
        println!("{}", serde_json::to_string_pretty(&views)?);
    } else {
        print_table(&views);
    }
    Ok(())
}

/// `machine show`: one machine, its script, scratch space and latest boots.
fn show(dir: &DataDir, args: ShowArgs) -> Result<()> {
    let registry = Registry::load(dir)?;
    let machine = registry.require(&args.name)?;
    let (seen, boots) = match history(dir, &args.source).and_then(|h| {
        let seen = h.machines()?.into_iter().find(|s| *s.machine == *args.name);
        Ok((seen, h.boots(&args.name, args.boots)?))
    }) {
        Ok(found) => found,
        Err(err) => {
            eprintln!("warning: boot history unavailable: {err:#}");
            (None, Vec::new())
        }
    };
    let view = View::of(machine, seen.as_ref());
    let unprovided = crate::server::unprovided_variables(dir, machine)?;
    let scratch = match super::scratch::status(dir, machine) {
        Ok(status) => status,
        Err(err) => {
            eprintln!("warning: scratch space unavailable: {err:#}");
            None
        }
    };
    let secret_in_script = super::scratch::script_holds_secret(dir, machine);
    if let Some(path) = &secret_in_script {
        eprintln!(
            "warning: {} puts $s3_access_key in the boot script itself, which iPXE shows and logs; \
             move it to `secrets` and pass $secrets_url",
            path.display()
        );
    }
    if args.json {
        let shown = Shown {
            view,
            script: unprovided.as_ref().map(|(path, _)| path.as_path()),
            unprovided_variables: unprovided
                .as_ref()
                .map(|(_, names)| names.as_slice())
                .unwrap_or_default(),
            boots,
            scratch,
            secret_in_script: secret_in_script.is_some(),
        };
        println!("{}", serde_json::to_string_pretty(&shown)?);
    } else {
        print_details(dir, &view);
        print_script(unprovided.as_ref());
        if let Some(status) = &scratch {
            print_scratch(status);
        }
        print_boots(&boots)?;
    }
    Ok(())
}

/// `machine set-profile`: switches a machine to a profile (or none).
fn set_profile(dir: &DataDir, args: SetProfileArgs) -> Result<()> {
    let change = enrollment::set_profile(dir, &args.name, args.profile.as_ref())?;
    match &args.profile {
        Some(profile) => eprintln!("{} now uses profile {profile}", args.name),
        None => match &change.previous {
            Some(previous) => eprintln!("{} no longer uses profile {previous}", args.name),
            None => eprintln!("{} had no profile", args.name),
        },
    }
    if let Some(path) = &change.removed_placeholder {
        eprintln!(
            "removed {}: it was the placeholder from `machine add` and would have hidden the profile's script",
            path.display()
        );
    }
    if let Some(path) = &change.shadowed_by {
        eprintln!(
            "note: {} exists and is served instead of the profile's script; delete it to use the profile's",
            path.display()
        );
    }
    Ok(())
}

/// `machine revoke`: revokes a machine and deletes its scratch keys.
fn revoke(dir: &DataDir, args: RevokeArgs) -> Result<()> {
    if enrollment::revoke(dir, &args.name)? {
        eprintln!(
            "revoked {}; a running server refuses it from its next request",
            args.name
        );
    } else {
        eprintln!("{} was already revoked", args.name);
    }
    let registry = Registry::load(dir)?;
    let machine = registry.require(&args.name)?;
    match super::scratch::revoke_keys(dir, machine) {
        Ok(Some(n)) => eprintln!("deleted {n} scratch key(s) of {}", args.name),
        Ok(None) => {}
        Err(err) => anyhow::bail!(
            "{} is revoked, but its scratch key could not be deleted: {err:#}; \
             run `bootgate machine revoke {}` again once the object store answers",
            args.name,
            args.name
        ),
    }
    Ok(())
}

/// What `list` and `show` print about a machine.
#[derive(Debug, Serialize)]
struct View<'a> {
    name: &'a str,
    fingerprint: &'a Fingerprint,
    sha256: &'a str,
    serial: &'a str,
    not_before: &'a str,
    not_after: &'a str,
    origin: crate::datadir::registry::Origin,
    enrolled_at: &'a str,
    revoked: bool,
    revoked_at: Option<&'a str>,
    profile: Option<&'a str>,
    /// From the boot history: its latest request, where from, its latest boot.
    last_seen: Option<Timestamp>,
    last_address: Option<&'a str>,
    last_boot: Option<&'a Boot>,
}

/// What `show --json` prints: the machine and its latest boots.
#[derive(Debug, Serialize)]
struct Shown<'a> {
    #[serde(flatten)]
    view: View<'a>,
    /// The script the machine is served, if any.
    script: Option<&'a std::path::Path>,
    /// Names it uses that nothing provides; they stay in it as written.
    unprovided_variables: &'a [String],
    boots: Vec<BootDetail>,
    /// The machine's scratch space, when `[scratch]` is configured.
    #[serde(skip_serializing_if = "Option::is_none")]
    scratch: Option<crate::scratch::Status>,
    /// Its boot script renders the secret key into itself.
    secret_in_script: bool,
}

fn print_scratch(s: &crate::scratch::Status) {
    let bucket = if s.exists {
        s.bucket.clone()
    } else {
        format!("{} (not created yet: made at its next boot)", s.bucket)
    };
    println!("scratch:     bucket {bucket}");
    let keys = if s.key_ids.is_empty() {
        "-".to_string()
    } else {
        s.key_ids.join(", ")
    };
    println!("  key id:    {keys}");
    match (s.bytes, s.objects) {
        (Some(bytes), Some(objects)) => println!("  stored:    {bytes} bytes in {objects} objects"),
        (Some(bytes), None) => println!("  stored:    {bytes} bytes"),
        _ => println!("  stored:    (not reported by the store)"),
    }
}

fn history(dir: &DataDir, source: &SourceArgs) -> Result<History> {
    source.open(dir)
}

impl<'a> View<'a> {
    fn of(m: &'a Machine, seen: Option<&'a MachineSeen>) -> Self {
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
            profile: m.profile.as_ref().map(AsRef::as_ref),
            last_seen: seen.map(|s| s.last_seen),
            last_address: seen.map(|s| &*s.last_peer),
            last_boot: seen.and_then(|s| s.last_boot.as_ref()),
        }
    }
}

fn print_table(views: &[View]) {
    let now = Timestamp::now();
    let width = super::column_width("NAME", views.iter().map(|v| v.name));
    let pwidth = super::column_width("PROFILE", views.iter().filter_map(|v| v.profile));
    let rows: Vec<_> = views
        .iter()
        .map(|v| {
            let seen = v.last_seen.map_or("never".into(), |t| ago(now.since(t)));
            let boot = v.last_boot.map_or("-".into(), |b| {
                format!("{} {}", b.outcome_text(), ago(now.since(b.started)))
            });
            (v, seen, boot)
        })
        .collect();
    let bwidth = rows.iter().map(|r| r.2.len()).max().unwrap_or(9).max(9);
    println!(
        "{:width$}  {:7}  {:pwidth$}  {:9}  {:bwidth$}  {:21}  FINGERPRINT",
        "NAME", "STATUS", "PROFILE", "LAST SEEN", "LAST BOOT", "ADDRESS"
    );
    for (v, seen, boot) in rows {
        let status = if v.revoked { "revoked" } else { "active" };
        println!(
            "{:width$}  {status:7}  {:pwidth$}  {seen:9}  {boot:bwidth$}  {:21}  {}",
            v.name,
            v.profile.unwrap_or("-"),
            v.last_address.unwrap_or("-"),
            v.fingerprint,
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
    let now = Timestamp::now();
    match (v.last_seen, v.last_address) {
        (Some(at), Some(from)) => println!(
            "last seen:   {} UTC ({}) from {from}",
            at.display_secs(),
            ago(now.since(at))
        ),
        _ => println!("last seen:   never recorded"),
    }
    if let Some(boot) = v.last_boot {
        println!(
            "last boot:   {} UTC, {}",
            boot.started.display_secs(),
            boot.outcome_text()
        );
    }
    println!("profile:     {}", v.profile.unwrap_or("-"));
    let absent = match v.profile {
        _ if files.is_dir() => "",
        Some(_) => " (absent: the profile's files apply)",
        None => " (absent: serves files/default/)",
    };
    println!("files:       {}{absent}", files.display());
}

fn print_script(unprovided: Option<&(std::path::PathBuf, Vec<String>)>) {
    let Some((script, names)) = unprovided else {
        println!("script:      none (no boot.ipxe applies)");
        return;
    };
    println!("script:      {}", script.display());
    if !names.is_empty() {
        println!(
            "unset vars:  {} (nothing provides them: they stay as written; set them in vars.toml)",
            names.join(", ")
        );
    }
}

fn print_boots(boots: &[BootDetail]) -> Result<()> {
    let mut out = std::io::stdout().lock();
    if boots.is_empty() {
        return Ok(());
    }
    writeln!(out)?;
    writeln!(out, "latest boots, newest first:")?;
    for boot in boots {
        print_boot(&mut out, boot)?;
    }
    Ok(())
}
