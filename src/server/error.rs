//! Every way a request can be refused, and the one place each maps to an HTTP
//! status. Bodies are short plain-text reasons that iPXE shows on the console.

use axum::response::{IntoResponse, Response};
use http::StatusCode;

#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    #[error("a client certificate is required")]
    NoCertificate,
    #[error("this certificate is not enrolled")]
    UnknownCertificate,
    #[error("machine {0} is revoked")]
    Revoked(String),
    #[error("this secrets link belongs to another machine")]
    NotTheOwner,
    #[error("not found")]
    NotFound,
    #[error("bad request: {0}")]
    BadRequest(String),
    #[error("range not satisfiable")]
    RangeNotSatisfiable { len: u64 },
    #[error("internal error; see the server log")]
    Internal,
}

impl Refusal {
    pub fn status(&self) -> StatusCode {
        match self {
            Refusal::NoCertificate
            | Refusal::UnknownCertificate
            | Refusal::Revoked(_)
            | Refusal::NotTheOwner => StatusCode::FORBIDDEN,
            Refusal::NotFound => StatusCode::NOT_FOUND,
            Refusal::BadRequest(_) => StatusCode::BAD_REQUEST,
            Refusal::RangeNotSatisfiable { .. } => StatusCode::RANGE_NOT_SATISFIABLE,
            Refusal::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// A short, fixed name for the boot history and metrics labels.
    pub fn reason(&self) -> &'static str {
        match self {
            Refusal::NoCertificate => "no-certificate",
            Refusal::UnknownCertificate => "unknown-certificate",
            Refusal::Revoked(_) => "revoked",
            Refusal::NotTheOwner => "not-the-owner",
            Refusal::NotFound => "not-found",
            Refusal::BadRequest(_) => "bad-request",
            Refusal::RangeNotSatisfiable { .. } => "range-not-satisfiable",
            Refusal::Internal => "internal",
        }
    }
}

/// The `reason` the boot history records for a response: attached to every
/// refusal ([`Refusal::reason`]) and to a script served without its scratch space.
#[derive(Debug, Clone, Copy)]
pub struct EventReason(pub &'static str);

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        let mut response = (self.status(), format!("{self}\n")).into_response();
        response.extensions_mut().insert(EventReason(self.reason()));
        if let Refusal::RangeNotSatisfiable { len } = self {
            response.headers_mut().insert(
                http::header::CONTENT_RANGE,
                format!("bytes */{len}").parse().expect("valid header"),
            );
        }
        response
    }
}

/// Logs an unexpected error in full and answers 500 without details.
pub fn internal(context: &str, err: impl std::fmt::Display) -> Refusal {
    tracing::error!("{context}: {err}");
    Refusal::Internal
}
