//! Events and boots in words, for people: the pieces both `bootgate events` /
//! `machine show` and the status page print, and the CLI's lines built from
//! them. Each piece is plain text; the status page escapes it as it places it.

use std::io::Write;

use anyhow::Result;

use super::duration::bytes;
use super::{Boot, BootDetail, Event, Kind};

/// `GET /files/vmlinuz`, or `TLS handshake`.
pub fn request(e: &Event) -> String {
    match e.kind {
        Kind::Handshake => "TLS handshake".into(),
        Kind::Request => format!(
            "{} {}",
            e.method.as_deref().unwrap_or("?"),
            e.path.as_deref().unwrap_or("?")
        ),
    }
}

/// The HTTP status, or `-` when there was none.
pub fn status(e: &Event) -> String {
    e.status.map_or("-".into(), |s| s.to_string())
}

/// `8.1 MiB`, or `1.0 MiB of 64.0 MiB` for a body cut short.
pub fn sent(e: &Event) -> String {
    match e.expected_bytes {
        Some(expected) if expected != e.bytes => {
            format!("{} of {}", bytes(e.bytes), bytes(expected))
        }
        _ => bytes(e.bytes),
    }
}

/// `+1.250s`: when a request came, counted from the start of its boot.
pub fn offset(e: &Event, boot: &Boot) -> String {
    format!("+{:.3}s", e.time.since(boot.started).as_secs_f64())
}

/// What the machine said of itself when it asked for its script.
pub fn boot_facts(b: &Boot) -> impl Iterator<Item = (&'static str, &str)> {
    [
        ("mac", &b.mac),
        ("platform", &b.platform),
        ("buildarch", &b.buildarch),
    ]
    .into_iter()
    .filter_map(|(name, value)| Some((name, value.as_deref()?)))
}

/// The header over [`line`]s.
pub fn header() -> String {
    format!(
        "{:24}  {:12}  {:21}  {:32}  {:>6}  {:>10}  {:>8}  NOTES",
        "TIME", "MACHINE", "PEER", "REQUEST", "STATUS", "SENT", "DURATION"
    )
}

/// One event as a line of text.
pub fn line(e: &Event) -> String {
    format!(
        "{:24}  {:12}  {:21}  {:32}  {:>6}  {:>10}  {:>8}  {}",
        e.time.display_ms(),
        e.machine.as_deref().unwrap_or("-"),
        e.peer,
        request(e),
        status(e),
        match e.kind {
            Kind::Handshake => "-".into(),
            Kind::Request => sent(e),
        },
        format!("{} ms", e.duration_ms),
        notes(e)
    )
}

fn notes(e: &Event) -> String {
    let mut notes = Vec::new();
    if let Some(reason) = e.failure_reason() {
        notes.push(format!("failed: {reason}"));
    }
    for (name, value) in [
        ("mac", e.mac.as_deref()),
        ("platform", e.platform.as_deref()),
        ("buildarch", e.buildarch.as_deref()),
        ("subject", e.subject.as_deref()),
        ("issuer", e.issuer.as_deref()),
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
    let facts: Vec<String> = boot_facts(b)
        .map(|(name, value)| format!("{name}={value}"))
        .collect();
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
            offset(e, b),
            request(e),
            status(e),
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
