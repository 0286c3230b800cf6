//! One log line per request: peer, machine, fingerprint, method, path, status,
//! bytes and duration. One-time secret tokens are credentials and never logged.

use std::time::Instant;

use axum::extract::Request;
use axum::response::Response;
use http::{Method, header};
use http_body::Body as _;

use super::identity::{Peer, Served};

/// What the log line needs of a request, taken when it arrives.
pub struct Logging {
    started: Instant,
    method: Method,
    path: String,
}

impl Logging {
    pub fn begin<B>(request: &Request<B>) -> Self {
        Self {
            started: Instant::now(),
            method: request.method().clone(),
            path: loggable_path(request.uri().path()),
        }
    }

    /// Writes the line for `response`.
    pub fn finish(self, peer: &Peer, response: &Response) {
        let served = response.extensions().get::<Served>();
        let bytes = response
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok()?.parse::<u64>().ok())
            .or_else(|| response.body().size_hint().exact())
            .unwrap_or(0);
        tracing::info!(
            target: "bootgate::access",
            peer = %peer.addr_text,
            machine = served.map_or("-", |s| &s.machine),
            fingerprint = served
                .map(|s| &s.fingerprint)
                .or(peer.fingerprint.as_ref())
                .map_or("-", |fp| fp.as_str()),
            method = %self.method,
            path = self.path,
            status = response.status().as_u16(),
            bytes,
            ms = self.started.elapsed().as_millis() as u64,
        );
    }
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
