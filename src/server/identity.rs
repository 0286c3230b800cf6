//! Who is asking: the identity of a request comes only from the client
//! certificate verified in the TLS handshake, never from a header or query.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::response::{IntoResponse, Response};

use crate::datadir::registry::Machine;
use crate::names::Fingerprint;

/// What the connection layer knows about the peer; attached to every request.
#[derive(Debug, Clone)]
pub struct Peer {
    pub addr: SocketAddr,
    /// SHA-1 fingerprint of the verified client certificate, if one was presented.
    pub fingerprint: Option<Fingerprint>,
    /// The TLS protocol version and cipher suite the handshake settled on.
    pub tls: Arc<TlsSession>,
    /// `addr` and `tls` as text, made once per connection for the log
    /// line and the history event of each request.
    pub addr_text: Arc<str>,
    pub tls_text: Arc<str>,
}

impl Peer {
    pub fn new(addr: SocketAddr, fingerprint: Option<Fingerprint>, tls: TlsSession) -> Self {
        Self {
            addr,
            fingerprint,
            addr_text: addr.to_string().into(),
            tls_text: tls.to_string().into(),
            tls: Arc::new(tls),
        }
    }
}

/// What a handshake settled on, e.g. `TLSv1.2` and
/// `TLS_DHE_RSA_WITH_AES_128_GCM_SHA256` (IANA names on both stacks).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsSession {
    pub version: String,
    pub suite: String,
    /// Served by the legacy stack (a client with only pre-2024 iPXE's suites).
    pub legacy: bool,
}

impl std::fmt::Display for TlsSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.version, self.suite)
    }
}

/// The machine a response was for: what the history and the access log name.
#[derive(Debug, Clone)]
pub struct Served {
    pub machine: Arc<str>,
    pub fingerprint: Fingerprint,
}

impl Served {
    pub fn of(machine: &Machine) -> Self {
        Self {
            machine: machine.name.shared(),
            fingerprint: machine.fingerprint.clone(),
        }
    }
}

/// A response and the machine it was for, if known. The connection takes
/// the machine from here when it calls a route itself; through the router,
/// the machine travels in the response's extensions, which cost three
/// allocations per request.
pub struct Answer {
    pub response: Response,
    pub served: Option<Served>,
}

impl Answer {
    /// A response for `machine`.
    pub fn to(machine: &Machine, response: impl IntoResponse) -> Self {
        Self {
            response: response.into_response(),
            served: Some(Served::of(machine)),
        }
    }

    /// A response for no known machine.
    pub fn anonymous(response: impl IntoResponse) -> Self {
        Self {
            response: response.into_response(),
            served: None,
        }
    }
}

impl IntoResponse for Answer {
    fn into_response(self) -> Response {
        let mut response = self.response;
        if let Some(served) = self.served {
            response.extensions_mut().insert(served);
        }
        response
    }
}
