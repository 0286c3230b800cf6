//! One log line per request: peer, machine, fingerprint, method, path, status,
//! bytes and duration. One-time secret tokens are credentials and never logged.

use crate::events::Event;

/// Writes the line of a request from its history event, filled in from the
/// response ([`super::record::Recording::finish`]): `bytes` is the body's
/// announced length, `ms` the time until the response was ready.
pub(super) fn write(event: &Event, bytes: u64, ms: u64) {
    tracing::info!(
        target: "bootgate::access",
        peer = %event.peer,
        machine = event.machine.as_deref().unwrap_or("-"),
        fingerprint = event.fingerprint.as_deref().unwrap_or("-"),
        method = %event.method.as_deref().unwrap_or("-"),
        path = event.path.as_deref().unwrap_or("-"),
        status = event.status.unwrap_or(0),
        bytes,
        ms,
    );
}

/// The path as logged and recorded: a secret's token hidden, at most
/// [`MAX_PATH_CHARS`] characters.
pub(super) fn loggable_path(path: &str) -> String {
    let shown = if path.starts_with("/secrets/") {
        "/secrets/<token>"
    } else {
        path
    };
    if shown.len() <= MAX_PATH_CHARS {
        return shown.to_owned();
    }
    match shown.char_indices().nth(MAX_PATH_CHARS) {
        Some((end, _)) => shown[..end].to_owned(),
        None => shown.to_owned(),
    }
}

const MAX_PATH_CHARS: usize = 256;
