//! `bootgate events`: the boot history, as lines or JSON, optionally followed.
//! Also the text forms of events and boots that `machine show` prints.

use std::io::Write;
use std::time::Duration;

use anyhow::Result;
use clap::Args;

use crate::datadir::DataDir;
use crate::events::duration::{Span, bytes};
use crate::events::history::History;
use crate::events::{BootDetail, Event, EventQuery, Kind, Timestamp};
use crate::registry::Registry;

/// Events printed without `--since` or `--limit`.
const DEFAULT_LIMIT: usize = 100;
const FOLLOW_EVERY: Duration = Duration::from_secs(1);

#[derive(Debug, Args)]
pub struct EventsArgs {
    /// Only this machine's requests.
    #[arg(long, value_name = "NAME")]
    machine: Option<String>,
    /// Only events of the last DURATION (90s, 10m, 2h, 7d, 1h30m).
    #[arg(long, value_name = "DURATION")]
    since: Option<Span>,
    /// At most this many, the newest (default: 100 without --since, all with it).
    #[arg(long, value_name = "N")]
    limit: Option<usize>,
    /// Keep printing events as they are recorded, until interrupted.
    #[arg(long, short)]
    follow: bool,
    /// One JSON object per line.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    source: SourceArgs,
}

/// Where history is read from, for commands that read it.
#[derive(Debug, Args)]
pub struct SourceArgs {
    /// Read the history from this admin listener (http://HOST:PORT) instead
    /// of the data directory or the server that holds it.
    #[arg(long, value_name = "URL", env = "BOOTGATE_ADMIN")]
    pub admin: Option<String>,
}

impl SourceArgs {
    pub fn open(&self, dir: &DataDir) -> Result<History> {
        History::open(dir, self.admin.as_deref())
    }
}

pub fn run(dir: &DataDir, args: EventsArgs) -> Result<()> {
    match print_events(dir, args) {
        // `bootgate events | head`: the reader has seen enough.
        Err(err)
            if err
                .downcast_ref::<std::io::Error>()
                .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe) =>
        {
            Ok(())
        }
        result => result,
    }
}

fn print_events(dir: &DataDir, args: EventsArgs) -> Result<()> {
    let dir = DataDir::open(dir.root())?;
    if let Some(name) = &args.machine {
        Registry::load(&dir)?.require(name)?;
    }
    let query = EventQuery {
        machine: args.machine.clone(),
        since: args.since.map(|s| Timestamp::now().saturating_sub(s.0)),
        after: None,
        limit: args.limit.or(match args.since {
            None => Some(DEFAULT_LIMIT),
            Some(_) => None,
        }),
    };
    let history = args.source.open(&dir)?;
    let events = history.events(&query)?;
    let mut out = std::io::stdout().lock();
    if !args.json && (!events.is_empty() || args.follow) {
        writeln!(out, "{}", header())?;
    }
    for event in &events {
        print(&mut out, event, args.json)?;
    }
    if !args.follow {
        if events.is_empty() && !args.json {
            eprintln!("no events recorded (read from {})", history.source());
        }
        return Ok(());
    }
    // Every event written later has a larger id than any written before.
    let mut last = match events.last() {
        Some(event) => event.id,
        None => history
            .events(&EventQuery {
                limit: Some(1),
                ..Default::default()
            })?
            .last()
            .map_or(0, |e| e.id),
    };
    drop(history);
    out.flush()?;
    loop {
        std::thread::sleep(FOLLOW_EVERY);
        // Reopened each time: held open, the store would keep a server
        // from starting; and a server that started meanwhile is found.
        let history = args.source.open(&dir)?;
        let new = history.events(&EventQuery {
            machine: args.machine.clone(),
            after: Some(last),
            ..Default::default()
        })?;
        for event in &new {
            print(&mut out, event, args.json)?;
            last = last.max(event.id);
        }
        out.flush()?;
    }
}

fn print(out: &mut impl Write, event: &Event, json: bool) -> Result<()> {
    if json {
        writeln!(out, "{}", serde_json::to_string(event)?)?;
    } else {
        writeln!(out, "{}", line(event).trim_end())?;
    }
    Ok(())
}

fn header() -> String {
    format!(
        "{:24}  {:12}  {:21}  {:32}  {:>6}  {:>10}  {:>8}  NOTES",
        "TIME", "MACHINE", "PEER", "REQUEST", "STATUS", "SENT", "DURATION"
    )
}

/// One event as a line of text.
pub fn line(e: &Event) -> String {
    let request = match e.kind {
        Kind::Handshake => "TLS handshake".to_string(),
        Kind::Request => format!(
            "{} {}",
            e.method.as_deref().unwrap_or("?"),
            e.path.as_deref().unwrap_or("?")
        ),
    };
    format!(
        "{:24}  {:12}  {:21}  {:32}  {:>6}  {:>10}  {:>8}  {}",
        e.time.display_ms(),
        e.machine.as_deref().unwrap_or("-"),
        e.peer,
        request,
        e.status.map_or("-".into(), |s| s.to_string()),
        match e.kind {
            Kind::Handshake => "-".into(),
            Kind::Request => sent(e),
        },
        format!("{} ms", e.duration_ms),
        notes(e)
    )
}

/// `8.1 MiB`, or `1.0 MiB of 64.0 MiB` for a body cut short.
fn sent(e: &Event) -> String {
    match e.expected_bytes {
        Some(expected) if expected != e.bytes => {
            format!("{} of {}", bytes(e.bytes), bytes(expected))
        }
        _ => bytes(e.bytes),
    }
}

fn notes(e: &Event) -> String {
    let mut notes = Vec::new();
    if let Some(reason) = e.failure_reason() {
        notes.push(format!("failed: {reason}"));
    }
    for (name, value) in [
        ("mac", &e.mac),
        ("platform", &e.platform),
        ("buildarch", &e.buildarch),
        ("subject", &e.subject),
        ("issuer", &e.issuer),
    ] {
        if let Some(value) = value {
            notes.push(format!("{name}={value:?}"));
        }
    }
    if e.machine.is_none()
        && let Some(fp) = &e.fingerprint
    {
        notes.push(format!("fingerprint={fp}"));
    }
    notes.join(" ")
}

/// A boot and its requests, as `machine show` prints them.
pub fn print_boot(out: &mut impl Write, detail: &BootDetail) -> Result<()> {
    let b = &detail.boot;
    let mut facts = Vec::new();
    for (name, value) in [
        ("mac", &b.mac),
        ("platform", &b.platform),
        ("buildarch", &b.buildarch),
    ] {
        if let Some(value) = value {
            facts.push(format!("{name}={value}"));
        }
    }
    let open = if b.settled { "" } else { ", in progress" };
    writeln!(
        out,
        "boot {} UTC from {}: {} ({} request(s), {}{open}) {}",
        b.started.display_secs(),
        b.peer,
        b.outcome_text(),
        b.requests,
        bytes(b.bytes),
        facts.join(" ")
    )?;
    if let Some(failed) = &b.failed_request {
        writeln!(out, "  first failure: {failed}")?;
    }
    for e in &detail.requests {
        let text = format!(
            "  {:>9}  {:32}  {:>3}  {:>10}  {:>6} ms  {}",
            format!("+{:.3}s", e.time.since(b.started).as_secs_f64()),
            format!(
                "{} {}",
                e.method.as_deref().unwrap_or("?"),
                e.path.as_deref().unwrap_or("?")
            ),
            e.status.map_or("-".into(), |s| s.to_string()),
            sent(e),
            e.duration_ms,
            e.failure_reason()
                .map(|r| format!("failed: {r}"))
                .unwrap_or_default()
        );
        writeln!(out, "{}", text.trim_end())?;
    }
    Ok(())
}
