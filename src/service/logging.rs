//! Log output on stderr, filtered by `BOOTGATE_LOG` (same syntax as
//! `RUST_LOG`; default `info`). rustls is kept to errors by default: it warns
//! on every iPXE connection, which sends an IP address as the TLS server name.
//!
//! Three shapes: human-readable lines with a timestamp (a terminal or a file);
//! the same lines without the timestamp and with a `<N>` syslog priority
//! prefix when stderr is the systemd journal (`$JOURNAL_STREAM` names it), so
//! journald keeps each line's level and adds its own time; or one JSON object
//! per line (`--log-format json`) for log shippers.

use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::{FormatEvent, FormatFields, Writer};
use tracing_subscriber::fmt::{FmtContext, MakeWriter};
use tracing_subscriber::registry::LookupSpan;

use super::log_line::{self, Frame, PlainFields, PlainLine, syslog_priority};

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum LogFormat {
    /// Lines for people (the journal gets them with priority prefixes).
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// Logs as human-readable text (see [`init_with`]).
pub fn init() {
    init_with(LogFormat::Text);
}

pub fn init_with(format: LogFormat) {
    if let Some(frame) = init_to(format, stderr_is_journal(), std::io::stderr) {
        // Lines of plain text on stderr: the access log may write its own.
        log_line::enable_direct(frame);
    }
}

/// Installs the subscriber; returns how its lines are framed when they are
/// plain text ([`PlainLine`]) and it was installed.
fn init_to<W>(format: LogFormat, journal: bool, writer: W) -> Option<Frame>
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let filter = tracing_subscriber::EnvFilter::try_from_env("BOOTGATE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,rustls=error"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer);
    let terminal = std::io::IsTerminal::is_terminal(&std::io::stderr());
    match (format, journal) {
        (LogFormat::Json, _) => {
            let _ = builder.json().try_init();
            None
        }
        (LogFormat::Text, true) => builder
            .with_ansi(false)
            .fmt_fields(PlainFields)
            .event_format(JournalPriority(PlainLine { timestamps: false }))
            .try_init()
            .ok()
            .map(|()| Frame {
                timestamps: false,
                priority: true,
            }),
        // Colours: the stock formatter.
        (LogFormat::Text, false) if terminal => {
            let _ = builder.with_ansi(true).try_init();
            None
        }
        (LogFormat::Text, false) => builder
            .with_ansi(false)
            .fmt_fields(PlainFields)
            .event_format(PlainLine { timestamps: true })
            .try_init()
            .ok()
            .map(|()| Frame {
                timestamps: true,
                priority: false,
            }),
    }
}

/// Whether stderr is the stream systemd connected to the journal: its
/// device and inode match `$JOURNAL_STREAM` (`DEV:INO`).
fn stderr_is_journal() -> bool {
    let Some(expected) = std::env::var_os("JOURNAL_STREAM") else {
        return false;
    };
    let Ok(stat) = rustix::fs::fstat(std::io::stderr()) else {
        return false;
    };
    expected.to_str() == Some(&format!("{}:{}", stat.st_dev, stat.st_ino))
}

/// Prefixes each line with its syslog priority, as journald reads it.
struct JournalPriority<F>(F);

impl<S, N, F> FormatEvent<S, N> for JournalPriority<F>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
    F: FormatEvent<S, N>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> std::fmt::Result {
        write!(writer, "<{}>", syslog_priority(*event.metadata().level()))?;
        self.0.format_event(ctx, writer, event)
    }
}
