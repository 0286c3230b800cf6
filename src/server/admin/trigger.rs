//! `POST /config/sync` on the admin listener: what a forge's deployment
//! pipeline calls after a merge, like the 2023 server's `/update-cfg`. It
//! requires `Authorization: Bearer <token>`, the token being the content of
//! `trigger_token_file` (re-read at each call, so it can be rotated); without
//! that file configured the trigger is off. The answer is the sync's report:
//! 200 applied or unchanged, 422 rejected with its problems, 502 when the
//! remote could not be fetched.

use std::sync::Arc;

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, StatusCode, header};
use sha2::{Digest, Sha256};

use super::super::state::AppState;
use crate::gitcfg;

pub async fn sync(State(app): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    let Some(git) = app.config.git.clone() else {
        return (StatusCode::NOT_FOUND, "git sync is not configured\n").into_response();
    };
    let Some(token_file) = git.trigger_token_file else {
        return (
            StatusCode::NOT_FOUND,
            "the sync trigger is off: set trigger_token_file in [git]\n",
        )
            .into_response();
    };
    let expected = match std::fs::read_to_string(&token_file) {
        Ok(token) if !token.trim().is_empty() => token.trim().to_string(),
        _ => {
            tracing::error!("cannot read a token from {}", token_file.display());
            return (
                StatusCode::SERVICE_UNAVAILABLE,
                "the sync trigger's token file is unreadable or empty; see the server log\n",
            )
                .into_response();
        }
    };
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default();
    if !same_secret(given.trim(), &expected) {
        tracing::warn!("config sync trigger refused: missing or wrong token");
        return (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Bearer")],
            "missing or wrong token\n",
        )
            .into_response();
    }
    let dir = app.dir.clone();
    let config = app.config.clone();
    let result = tokio::task::spawn_blocking(move || gitcfg::sync(&dir, &config)).await;
    match result {
        Ok(Ok(report)) => {
            tracing::info!("config sync (trigger): {}", report.to_string().trim_end());
            let status = if report.is_rejected() {
                StatusCode::UNPROCESSABLE_ENTITY
            } else {
                StatusCode::OK
            };
            (status, format!("{}\n", report.to_string().trim_end())).into_response()
        }
        Ok(Err(err)) => {
            tracing::error!("config sync (trigger) failed: {err:#}");
            (
                StatusCode::BAD_GATEWAY,
                format!("sync failed, still serving the last good commit: {err:#}\n"),
            )
                .into_response()
        }
        Err(err) => {
            tracing::error!("config sync (trigger) panicked: {err}");
            (StatusCode::INTERNAL_SERVER_ERROR, "internal error\n").into_response()
        }
    }
}

/// Compares two secrets in time independent of where they differ (and of
/// their lengths): their SHA-256 digests are compared whole.
fn same_secret(given: &str, expected: &str) -> bool {
    let (a, b) = (Sha256::digest(given), Sha256::digest(expected));
    a.iter()
        .zip(b.iter())
        .fold(0u8, |acc, (x, y)| acc | (x ^ y))
        == 0
}

#[cfg(test)]
mod tests {
    #[test]
    fn compares_secrets() {
        assert!(super::same_secret("s3cret", "s3cret"));
        assert!(!super::same_secret("s3cres", "s3cret"));
        assert!(!super::same_secret("", "s3cret"));
    }
}
