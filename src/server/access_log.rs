//! One log line per request: peer, machine, fingerprint, method, path, status,
//! bytes and duration. One-time secret tokens are credentials and never logged.

use std::time::Instant;

use axum::extract::{Extension, Request};
use axum::middleware::Next;
use axum::response::Response;
use http::header;
use http_body::Body as _;

use super::identity::{Peer, Served};

pub async fn log_request(
    Extension(peer): Extension<Peer>,
    request: Request,
    next: Next,
) -> Response {
    let started = Instant::now();
    let method = request.method().clone();
    let path = loggable_path(request.uri().path());
    let response = next.run(request).await;
    let served = response.extensions().get::<Served>();
    let bytes = response
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok())
        .or_else(|| response.body().size_hint().exact())
        .unwrap_or(0);
    tracing::info!(
        target: "bootgate::access",
        peer = %peer.addr,
        machine = served.map_or("-", |s| &s.machine),
        fingerprint = served
            .map(|s| &s.fingerprint)
            .or(peer.fingerprint.as_ref())
            .map_or("-", |fp| fp.as_str()),
        %method,
        path,
        status = response.status().as_u16(),
        bytes,
        ms = started.elapsed().as_millis() as u64,
    );
    response
}

pub(super) fn loggable_path(path: &str) -> String {
    let shown = if path.starts_with("/secrets/") {
        "/secrets/<token>"
    } else {
        path
    };
    shown.chars().take(256).collect()
}
