//! `bootgate events`: the boot history, as lines or JSON, optionally followed.
//! The lines themselves are [`crate::events::text`]'s.

use std::io::Write;
use std::time::Duration;

use anyhow::Result;
use clap::Args;

use super::history::History;
use crate::datadir::DataDir;
use crate::datadir::registry::Registry;
use crate::events::duration::Span;
use crate::events::{Event, EventQuery, Timestamp, text};

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
        writeln!(out, "{}", text::header())?;
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
        writeln!(out, "{}", text::line(event).trim_end())?;
    }
    Ok(())
}
