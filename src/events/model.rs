//! What the boot history is made of: events (one per request a machine made,
//! or per failed TLS handshake), boots (a `/boot/ipxe` fetch and the requests
//! that follow it) and, per machine, when it was last seen. These types are
//! what the event store keeps and what the admin API answers (as JSON), so
//! the CLI reads the same shapes from either.
//!
//! Text that a request shares with its connection (peer, TLS session), its
//! machine (name, fingerprint) or its boot (MAC, platform, ...) is an
//! `Arc<str>`: one allocation however many records carry it. Every request is
//! recorded, so this is on the hot path.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use time::OffsetDateTime;
use time::format_description::BorrowedFormatItem;
use time::format_description::well_known::Rfc3339;
use time::macros::format_description;

/// A moment, in microseconds since the Unix epoch; written as RFC 3339 UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Timestamp(u64);

impl Timestamp {
    pub fn now() -> Self {
        Self::from(SystemTime::now())
    }

    pub const fn from_micros(us: u64) -> Self {
        Self(us)
    }

    pub const fn as_micros(self) -> u64 {
        self.0
    }

    pub fn as_secs_f64(self) -> f64 {
        self.0 as f64 / 1e6
    }

    pub fn saturating_sub(self, d: Duration) -> Self {
        Self(self.0.saturating_sub(d.as_micros() as u64))
    }

    pub fn saturating_add(self, d: Duration) -> Self {
        Self(self.0.saturating_add(d.as_micros() as u64))
    }

    /// Time from `earlier` to `self`, zero if `earlier` is later.
    pub fn since(self, earlier: Timestamp) -> Duration {
        Duration::from_micros(self.0.saturating_sub(earlier.0))
    }

    fn datetime(self) -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp_nanos(i128::from(self.0) * 1000)
            .unwrap_or(OffsetDateTime::UNIX_EPOCH)
    }

    /// `2025-06-01T10:00:01.123Z`: to the millisecond, for people.
    pub fn display_ms(self) -> String {
        self.format(MILLIS)
    }

    /// `2025-06-01 10:00:01`: to the second, UTC, for tables.
    pub fn display_secs(self) -> String {
        self.format(SECONDS)
    }

    fn format(self, description: &[BorrowedFormatItem<'_>]) -> String {
        self.datetime()
            .format(description)
            .expect("a UTC time formats")
    }
}

const MILLIS: &[BorrowedFormatItem<'_>] =
    format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z");
const SECONDS: &[BorrowedFormatItem<'_>] =
    format_description!("[year]-[month]-[day] [hour]:[minute]:[second]");
/// Full precision, so a value read back is the value written.
const MICROS: &[BorrowedFormatItem<'_>] =
    format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:6]Z");

impl From<SystemTime> for Timestamp {
    fn from(t: SystemTime) -> Self {
        let us = t
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_micros() as u64);
        Self(us)
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.format(MICROS))
    }
}

impl std::str::FromStr for Timestamp {
    type Err = time::error::Parse;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = OffsetDateTime::parse(s, &Rfc3339)?;
        Ok(Self((t.unix_timestamp_nanos() / 1000).max(0) as u64))
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// What an event records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// An HTTP request answered on the machine listener.
    Request,
    /// A TLS handshake that failed: no request was ever read.
    Handshake,
}

/// One request, or one failed handshake. `id` orders events and is unique;
/// it is the event's time in microseconds unless two events share a
/// microsecond (or a long download finishes after a later request), in which
/// case it is bumped just past the previous one: `id >= time` always.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub id: u64,
    /// When the request arrived (or the connection, for a handshake).
    pub time: Timestamp,
    pub kind: Kind,
    /// The client's address and port.
    pub peer: Arc<str>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub machine: Option<Arc<str>>,
    /// SHA-1 of the client certificate, verified or (handshake failures) merely presented.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fingerprint: Option<Arc<str>>,
    /// Subject and issuer of a certificate that failed verification.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<Arc<str>>,
    /// The request path; one-time secret tokens are replaced by `<token>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<Arc<str>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac: Option<Arc<str>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Arc<str>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub buildarch: Option<Arc<str>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// Body bytes actually handed to the connection.
    #[serde(default)]
    pub bytes: u64,
    /// The body's announced length, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected_bytes: Option<u64>,
    /// From the request's arrival to its last byte (or to the failure).
    #[serde(default)]
    pub duration_ms: u64,
    /// TLS version and cipher suite of the connection, e.g.
    /// `TLSv1.2 TLS_RSA_WITH_AES_128_CBC_SHA256`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<Arc<str>>,
    /// Why it failed: `revoked`, `no-certificate`, `foreign-ca`, `aborted`, ...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The boot this request belongs to (the id of its `/boot/ipxe` event).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub boot: Option<u64>,
}

impl Event {
    /// A blank event of `kind`, to be filled in by whoever records it.
    pub fn new(kind: Kind, time: Timestamp, peer: Arc<str>) -> Self {
        Self {
            id: 0,
            time,
            kind,
            peer,
            machine: None,
            fingerprint: None,
            subject: None,
            issuer: None,
            method: None,
            path: None,
            mac: None,
            platform: None,
            buildarch: None,
            status: None,
            bytes: 0,
            expected_bytes: None,
            duration_ms: 0,
            tls: None,
            reason: None,
            boot: None,
        }
    }

    /// When the last byte went out (or the request was given up).
    pub fn end(&self) -> Timestamp {
        self.time
            .saturating_add(Duration::from_millis(self.duration_ms))
    }

    pub fn is_boot_script(&self) -> bool {
        self.kind == Kind::Request && self.path.as_deref() == Some(BOOT_SCRIPT_PATH)
    }

    /// Whether the request got what it asked for, in full.
    pub fn succeeded(&self) -> bool {
        self.reason.is_none() && self.status.is_some_and(|s| s < 400)
    }

    /// `reason`, or one made from the status for failures that have none.
    pub fn failure_reason(&self) -> Option<String> {
        if let Some(reason) = &self.reason {
            return Some(reason.clone());
        }
        match self.status {
            Some(s) if s >= 400 => Some(format!("http-{s}")),
            _ => None,
        }
    }
}

pub const BOOT_SCRIPT_PATH: &str = "/boot/ipxe";

/// How a boot went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    /// The script was served; no file fetch (yet).
    ScriptOnly,
    /// The script and at least one file were served, nothing failed.
    FilesServed,
    /// The script fetch, or a fetch after it, failed (see the boot's reason).
    Failed,
}

impl Outcome {
    pub const ALL: [Outcome; 3] = [Outcome::ScriptOnly, Outcome::FilesServed, Outcome::Failed];

    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::ScriptOnly => "script-only",
            Outcome::FilesServed => "files-served",
            Outcome::Failed => "failed",
        }
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A `/boot/ipxe` fetch and the requests the same machine made after it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Boot {
    /// The id of its `/boot/ipxe` event.
    pub id: u64,
    pub machine: Arc<str>,
    pub fingerprint: Arc<str>,
    pub started: Timestamp,
    /// When its latest request ended.
    pub last_activity: Timestamp,
    /// Address the script was fetched from.
    pub peer: Arc<str>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac: Option<Arc<str>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Arc<str>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub buildarch: Option<Arc<str>>,
    pub outcome: Outcome,
    /// For a failed boot: the first failure's reason (`revoked`, `http-404`, `aborted`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// For a failed boot: the request that failed (`GET /files/vmlinuz`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed_request: Option<String>,
    pub requests: u32,
    /// Files served in full (200, 206 or 304) under `/files/`.
    pub files: u32,
    pub bytes: u64,
    /// No longer expecting requests: the machine started another boot, or
    /// was quiet for the settle time. A settled boot has been counted in the
    /// metrics; a late request still updates its record.
    pub settled: bool,
}

impl Boot {
    /// `files-served`, `script-only` or `failed (reason)`.
    pub fn outcome_text(&self) -> String {
        match (&self.outcome, &self.reason) {
            (Outcome::Failed, Some(reason)) => format!("failed ({reason})"),
            (outcome, _) => outcome.to_string(),
        }
    }
}

/// What is known of a machine from its requests: when and from where it was
/// last seen, and its latest boot (kept here even once the boot's own record
/// is past retention).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MachineSeen {
    pub machine: Arc<str>,
    pub fingerprint: Arc<str>,
    pub last_seen: Timestamp,
    pub last_peer: Arc<str>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_boot: Option<Boot>,
}

/// A boot with its requests, oldest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BootDetail {
    pub boot: Boot,
    pub requests: Vec<Event>,
}

/// Which events to read.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EventQuery {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub machine: Option<String>,
    /// Only events at or after this time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<Timestamp>,
    /// Only events with a larger id (for following).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<u64>,
    /// At most this many: the newest ones.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<usize>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_round_trip_through_text() {
        let t = Timestamp::from_micros(1_748_772_001_123_456);
        assert_eq!(t.to_string(), "2025-06-01T10:00:01.123456Z");
        assert_eq!(t.display_ms(), "2025-06-01T10:00:01.123Z");
        assert_eq!(t.display_secs(), "2025-06-01 10:00:01");
        assert_eq!(t.to_string().parse::<Timestamp>().unwrap(), t);
        let json = serde_json::to_string(&t).unwrap();
        assert_eq!(serde_json::from_str::<Timestamp>(&json).unwrap(), t);
    }

    #[test]
    fn outcomes_are_kebab_case() {
        assert_eq!(
            serde_json::to_string(&Outcome::ScriptOnly).unwrap(),
            "\"script-only\""
        );
        assert_eq!(Outcome::FilesServed.to_string(), "files-served");
    }
}
