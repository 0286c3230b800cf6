//! One log line per request: peer, machine, fingerprint, method, path, status,
//! bytes and duration. One-time secret tokens are credentials and never logged.
//!
//! The line is logged at INFO under the target `bootgate::access`. With plain
//! lines on stderr it is written by [`log_line::write_direct`], the same
//! bytes with less work; otherwise (JSON, a terminal) through `tracing`.

use tracing::Level;

use crate::events::Event;
use crate::service::log_line::{self, Value};

const TARGET: &str = "bootgate::access";

/// Writes the line of a request from its history event, filled in from the
/// response ([`super::record::Recording::finish`]): `bytes` is the body's
/// announced length, `ms` the time until the response was ready.
pub(super) fn write(event: &Event, bytes: u64, ms: u64) {
    if !tracing::enabled!(target: TARGET, Level::INFO) {
        return;
    }
    let machine = event.machine.as_deref().unwrap_or("-");
    let fingerprint = event.fingerprint.as_deref().unwrap_or("-");
    let method = event.method.as_deref().unwrap_or("-");
    let path = event.path.as_deref().unwrap_or("-");
    let status = event.status.unwrap_or(0);
    let written = log_line::write_direct(
        TARGET,
        &[
            ("peer", Value::Shown(&event.peer)),
            ("machine", Value::Text(machine)),
            ("fingerprint", Value::Text(fingerprint)),
            ("method", Value::Shown(method)),
            ("path", Value::Text(path)),
            ("status", Value::Number(status.into())),
            ("bytes", Value::Number(bytes)),
            ("ms", Value::Number(ms)),
        ],
    );
    if !written {
        tracing::info!(
            target: TARGET,
            peer = %event.peer,
            machine,
            fingerprint,
            method = %method,
            path,
            status,
            bytes,
            ms,
        );
    }
}
