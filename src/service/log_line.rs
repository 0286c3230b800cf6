//! Plain-text log lines, byte for byte what `tracing-subscriber`'s default
//! format writes without colours (`2026-12-01T10:00:01.123456Z  INFO
//! target: message name="value" n=5`), written with less work: the access
//! log writes one per request, and the stock formatter cost about a tenth
//! of the CPU of a boot script request (see `docs/performance.md`).
//!
//! What it does differently: the date and time up to the second are
//! formatted once per second per thread, and fields are written directly:
//! strings that need no escaping between quotes, integers as digits, other
//! values with `{:?}`. Messages, errors, log metadata, raw names and strings
//! that need escaping go through the stock visitor, so they come out the
//! same. bootgate opens no spans, so none are
//! printed. With colours (a terminal), the stock formatter is used.
//!
//! The access log goes further ([`write_direct`]): once logging is set up
//! for plain lines on stderr, a line whose values need no escaping is
//! formatted here and written to stderr without going through `tracing`'s
//! dispatch, whose field visiting cost more than the formatting itself. The
//! filter still decides (the caller asks `tracing::enabled!` first), the
//! bytes are the same, and anything unusual takes the `tracing` path.

use std::cell::RefCell;
use std::fmt::{self, Write as _};
use std::io::Write as _;
use std::sync::OnceLock;

use time::OffsetDateTime;
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_log::NormalizeEvent;
use tracing_subscriber::field::{RecordFields, VisitOutput};
use tracing_subscriber::fmt::FmtContext;
use tracing_subscriber::fmt::format::{DefaultVisitor, FormatEvent, FormatFields, Writer};
use tracing_subscriber::fmt::time::{FormatTime, SystemTime};
use tracing_subscriber::registry::LookupSpan;

/// The line's frame: time (unless the journal adds its own), level, target.
pub struct PlainLine {
    pub timestamps: bool,
}

impl<S, N> FormatEvent<S, N> for PlainLine
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let normalized = event.normalized_metadata();
        let meta = normalized.as_ref().unwrap_or_else(|| event.metadata());
        if self.timestamps {
            write_now(&mut writer)?;
            writer.write_char(' ')?;
        }
        writer.write_str(level_text(*meta.level()))?;
        writer.write_char(' ')?;
        writer.write_str(meta.target())?;
        writer.write_str(": ")?;
        ctx.format_fields(writer.by_ref(), event)?;
        writer.write_char('\n')
    }
}

/// The syslog priority journald reads from a `<N>` in front of a line.
pub fn syslog_priority(level: Level) -> u8 {
    match level {
        Level::ERROR => 3,
        Level::WARN => 4,
        Level::INFO => 6,
        Level::DEBUG | Level::TRACE => 7,
    }
}

fn level_text(level: Level) -> &'static str {
    match level {
        Level::TRACE => "TRACE",
        Level::DEBUG => "DEBUG",
        Level::INFO => " INFO",
        Level::WARN => " WARN",
        Level::ERROR => "ERROR",
    }
}

thread_local! {
    /// The second last formatted on this thread and its text up to the
    /// fraction: `2026-12-01T10:00:01.`.
    static SECOND: RefCell<(u64, String)> = const { RefCell::new((u64::MAX, String::new())) };
}

/// The current time as RFC 3339 UTC with microseconds.
fn write_now(writer: &mut Writer<'_>) -> fmt::Result {
    let now = now();
    write_time(writer, now.as_secs(), now.subsec_micros())
}

fn write_time(writer: &mut impl fmt::Write, secs: u64, micros: u32) -> fmt::Result {
    SECOND.with_borrow_mut(|(second, prefix)| {
        if *second != secs {
            prefix.clear();
            let Some(date) = i64::try_from(secs)
                .ok()
                .and_then(|s| OffsetDateTime::from_unix_timestamp(s).ok())
                .filter(|d| (0..=9999).contains(&d.year()))
            else {
                // Out of the four-digit years: as the stock timer writes it.
                return SystemTime.format_time(&mut Writer::new(writer));
            };
            write!(
                prefix,
                "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.",
                date.year(),
                u8::from(date.month()),
                date.day(),
                date.hour(),
                date.minute(),
                date.second()
            )?;
            *second = secs;
        }
        writer.write_str(prefix)?;
        write_micros(writer, micros)
    })
}

/// `micros` (below a million) as six digits and a `Z`, without the
/// formatting machinery of `{:06}`.
fn write_micros(writer: &mut impl fmt::Write, micros: u32) -> fmt::Result {
    let mut text = *b"000000Z";
    let mut rest = micros.min(999_999);
    for digit in text[..6].iter_mut().rev() {
        *digit = b'0' + (rest % 10) as u8;
        rest /= 10;
    }
    writer.write_str(std::str::from_utf8(&text).map_err(|_| fmt::Error)?)
}

/// How lines are framed when they are plain text on stderr: set once by
/// `logging` when it installs [`PlainLine`]; unset for JSON, for colours,
/// and in tests that log elsewhere.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frame {
    /// The time in front of each line.
    pub timestamps: bool,
    /// The journal's `<N>` priority in front of each line.
    pub priority: bool,
}

static DIRECT: OnceLock<Frame> = OnceLock::new();

/// Lets [`write_direct`] write lines framed as `frame` to stderr.
pub fn enable_direct(frame: Frame) {
    let _ = DIRECT.set(frame);
}

/// A field's value in a line written by [`write_direct`].
#[derive(Debug, Clone, Copy)]
pub enum Value<'a> {
    /// Logged with `%`: written as it is.
    Shown(&'a str),
    /// A string: between quotes.
    Text(&'a str),
    Number(u64),
}

thread_local! {
    static LINE: RefCell<String> = const { RefCell::new(String::new()) };
}

/// Writes an INFO line of `target` with `fields` to stderr, byte for byte
/// as the installed formatter would. False when it did not: logging is not
/// plain lines on stderr, or a value needs escaping; the caller then logs
/// through `tracing`. The caller has checked that the filter lets the line
/// through.
pub fn write_direct(target: &str, fields: &[(&str, Value<'_>)]) -> bool {
    let Some(frame) = DIRECT.get() else {
        return false;
    };
    LINE.with_borrow_mut(|line| {
        line.clear();
        if format_direct(line, *frame, now(), target, fields).is_err() {
            return false;
        }
        // As the stock subscriber: a log line that cannot be written is lost.
        let _ = std::io::stderr().write_all(line.as_bytes());
        true
    })
}

/// Time since the Unix epoch.
fn now() -> std::time::Duration {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
}

/// The line [`write_direct`] writes, at `now`; an error when a value needs
/// escaping.
fn format_direct(
    line: &mut String,
    frame: Frame,
    now: std::time::Duration,
    target: &str,
    fields: &[(&str, Value<'_>)],
) -> fmt::Result {
    if frame.priority {
        write!(line, "<{}>", syslog_priority(Level::INFO))?;
    }
    if frame.timestamps {
        write_time(line, now.as_secs(), now.subsec_micros())?;
        line.push(' ');
    }
    line.push_str(level_text(Level::INFO));
    line.push(' ');
    line.push_str(target);
    line.push_str(": ");
    for (n, (name, value)) in fields.iter().enumerate() {
        if n > 0 {
            line.push(' ');
        }
        line.push_str(name);
        line.push('=');
        match value {
            Value::Shown(text) => line.push_str(text),
            Value::Text(text) if needs_no_escape(text) => {
                line.push('"');
                line.push_str(text);
                line.push('"');
            }
            Value::Text(_) => return Err(fmt::Error),
            Value::Number(n) => line.push_str(itoa::Buffer::new().format(*n)),
        }
    }
    line.push('\n');
    Ok(())
}

/// Fields as `name=value`, separated by spaces, message first.
pub struct PlainFields;

impl<'w> FormatFields<'w> for PlainFields {
    fn format_fields<R: RecordFields>(&self, writer: Writer<'w>, fields: R) -> fmt::Result {
        let mut visitor = PlainVisitor {
            writer,
            is_empty: true,
            result: Ok(()),
        };
        fields.record(&mut visitor);
        visitor.result
    }
}

struct PlainVisitor<'w> {
    writer: Writer<'w>,
    is_empty: bool,
    result: fmt::Result,
}

impl PlainVisitor<'_> {
    /// Whether `name` is written as is: not the message, not log metadata
    /// (which the stock visitor leaves out), not a raw identifier.
    fn is_plain(name: &str) -> bool {
        name != "message" && !name.starts_with("log.") && !name.starts_with("r#")
    }

    /// Writes `name=` after a separator, as the stock visitor does.
    fn start(&mut self, name: &str) -> fmt::Result {
        if self.is_empty {
            self.is_empty = false;
        } else {
            self.writer.write_char(' ')?;
        }
        self.writer.write_str(name)?;
        self.writer.write_char('=')
    }

    /// `name=digits` for a plain name; otherwise the stock way, `stock`.
    fn record_integer(
        &mut self,
        field: &Field,
        value: impl itoa::Integer,
        stock: impl FnOnce(&mut DefaultVisitor<'_>),
    ) {
        if self.result.is_ok() && Self::is_plain(field.name()) {
            let mut digits = itoa::Buffer::new();
            let text = digits.format(value);
            self.result = self
                .start(field.name())
                .and_then(|()| self.writer.write_str(text));
            return;
        }
        self.stock(field, stock);
    }

    /// Hands a field to the stock visitor, which writes it (and the
    /// separator before it) the stock way.
    fn stock(&mut self, field: &Field, record: impl FnOnce(&mut DefaultVisitor<'_>)) {
        if self.result.is_err() {
            return;
        }
        let mut stock = DefaultVisitor::new(self.writer.by_ref(), self.is_empty);
        record(&mut stock);
        self.result = stock.finish();
        // It writes nothing for log metadata, and something for the rest.
        self.is_empty &= field.name().starts_with("log.");
    }
}

/// Whether `s` prints the same with `{:?}` between quotes: printable ASCII
/// without quotes or backslashes.
fn needs_no_escape(s: &str) -> bool {
    // Without stopping at the first bad byte, so that it is vectorised.
    s.bytes().fold(true, |ok, b| {
        ok & (0x20..0x7f).contains(&b) & (b != b'"') & (b != b'\\')
    })
}

impl Visit for PlainVisitor<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        if self.result.is_ok() && Self::is_plain(field.name()) && needs_no_escape(value) {
            self.result = self.start(field.name()).and_then(|()| {
                self.writer.write_char('"')?;
                self.writer.write_str(value)?;
                self.writer.write_char('"')
            });
            return;
        }
        self.stock(field, |v| v.record_str(field, value));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.record_integer(field, value, |v| v.record_u64(field, value));
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.record_integer(field, value, |v| v.record_i64(field, value));
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.stock(field, |v| v.record_error(field, value));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        // `name=value` as the stock visitor writes it without colours.
        if self.result.is_ok() && Self::is_plain(field.name()) {
            self.result = self
                .start(field.name())
                .and_then(|()| write!(self.writer, "{value:?}"));
            return;
        }
        self.stock(field, |v| v.record_debug(field, value));
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use tracing_subscriber::fmt::MakeWriter;

    use super::*;

    /// Where a test's subscriber writes.
    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Buffer {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl MakeWriter<'_> for Buffer {
        type Writer = Buffer;
        fn make_writer(&self) -> Buffer {
            self.clone()
        }
    }

    impl Buffer {
        fn text(&self) -> String {
            String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
        }
    }

    /// Events of every shape the server logs, and some it does not.
    fn emit_all() {
        let addr: std::net::SocketAddr = "192.0.2.7:4000".parse().unwrap();
        let method = http::Method::GET;
        tracing::info!(
            target: "bootgate::access",
            peer = %addr,
            machine = "gw1",
            fingerprint = "-",
            %method,
            path = "/boot/ipxe",
            status = 200u16,
            bytes = 12u64,
            ms = 0u64,
        );
        tracing::warn!(
            path = "a \"quoted\" \\ path",
            name = "é\u{7}\n",
            "a message {} with args",
            5
        );
        tracing::error!(
            r#type = "raw",
            negative = -5i64,
            flag = true,
            ratio = 0.5f64,
            "plain"
        );
        let err = std::io::Error::other("disk full");
        tracing::info!(error = &err as &dyn std::error::Error, "with an error");
        tracing::debug!(message = "explicit message", after = 1u64);
        tracing::trace!(only = "fields", empty = "");
    }

    /// What `emit_all` logs through the stock formatter or this one.
    fn lines(stock: bool, timestamps: bool) -> String {
        let buffer = Buffer::default();
        let builder = tracing_subscriber::fmt()
            .with_writer(buffer.clone())
            .with_ansi(false)
            .with_max_level(Level::TRACE);
        if stock {
            let subscriber = builder.without_time().finish();
            tracing::subscriber::with_default(subscriber, emit_all);
        } else {
            let subscriber = builder
                .fmt_fields(PlainFields)
                .event_format(PlainLine { timestamps })
                .finish();
            tracing::subscriber::with_default(subscriber, emit_all);
        }
        buffer.text()
    }

    #[test]
    fn lines_are_what_the_stock_formatter_writes() {
        let stock = lines(true, false);
        assert_eq!(stock.lines().count(), 6, "{stock}");
        assert!(
            stock.starts_with(
                " INFO bootgate::access: peer=192.0.2.7:4000 machine=\"gw1\" fingerprint=\"-\" \
                 method=GET path=\"/boot/ipxe\" status=200 bytes=12 ms=0\n"
            ),
            "{stock}"
        );
        assert_eq!(lines(false, false), stock);

        // With the time in front, the rest is the same.
        let timed = lines(false, true);
        for (timed, stock) in timed.lines().zip(stock.lines()) {
            let (time, rest) = timed.split_at(27);
            assert_eq!(rest, format!(" {stock}"));
            let parsed: crate::events::Timestamp = time.parse().unwrap();
            assert!(time.ends_with('Z') && parsed.as_micros() > 0, "{time}");
        }
    }

    /// The access line of `emit_all`, as `write_direct` formats it.
    fn direct_access_line(frame: Frame, path: &str) -> Result<String, fmt::Error> {
        let mut line = String::new();
        let now = std::time::Duration::new(1_748_772_001, 123_456_000);
        format_direct(
            &mut line,
            frame,
            now,
            "bootgate::access",
            &[
                ("peer", Value::Shown("192.0.2.7:4000")),
                ("machine", Value::Text("gw1")),
                ("fingerprint", Value::Text("-")),
                ("method", Value::Shown("GET")),
                ("path", Value::Text(path)),
                ("status", Value::Number(200)),
                ("bytes", Value::Number(12)),
                ("ms", Value::Number(0)),
            ],
        )?;
        Ok(line)
    }

    #[test]
    fn direct_lines_are_what_the_stock_formatter_writes() {
        let stock = lines(true, false);
        let stock_access = stock.lines().next().unwrap();
        let plain = Frame {
            timestamps: false,
            priority: false,
        };
        for (frame, expected) in [
            (plain, format!("{stock_access}\n")),
            (
                Frame {
                    priority: true,
                    ..plain
                },
                format!("<6>{stock_access}\n"),
            ),
            (
                Frame {
                    timestamps: true,
                    ..plain
                },
                format!("2025-06-01T10:00:01.123456Z {stock_access}\n"),
            ),
        ] {
            let line = direct_access_line(frame, "/boot/ipxe").unwrap();
            assert_eq!(line, expected, "{frame:?}");
        }
        // What would need escaping is left to the stock visitor.
        for path in ["/a\"b", "/a\\b", "/é", "/a\nb", "/a\u{7f}"] {
            assert!(direct_access_line(plain, path).is_err(), "{path:?}");
        }
    }

    #[test]
    fn levels_map_to_syslog_priorities() {
        assert_eq!(syslog_priority(Level::ERROR), 3);
        assert_eq!(syslog_priority(Level::WARN), 4);
        assert_eq!(syslog_priority(Level::INFO), 6);
        assert_eq!(syslog_priority(Level::TRACE), 7);
    }

    #[test]
    fn times_are_rfc3339_with_microseconds() {
        let mut out = String::new();
        write_time(&mut out, 1_748_772_001, 123_456).unwrap();
        assert_eq!(out, "2025-06-01T10:00:01.123456Z");
        out.clear();
        // The same second again, from the kept prefix.
        write_time(&mut out, 1_748_772_001, 7).unwrap();
        assert_eq!(out, "2025-06-01T10:00:01.000007Z");
        out.clear();
        write_time(&mut out, 1_748_772_062, 0).unwrap();
        assert_eq!(out, "2025-06-01T10:01:02.000000Z");
    }
}
