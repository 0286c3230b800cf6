//! Who is asking: the identity of a request comes only from the client
//! certificate verified in the TLS handshake, never from a header or query.

use std::net::SocketAddr;
use std::sync::Arc;

use crate::registry::Machine;

/// What the connection layer knows about the peer; attached to every request.
#[derive(Debug, Clone)]
pub struct Peer {
    pub addr: SocketAddr,
    /// SHA-1 fingerprint of the verified client certificate, if one was presented.
    pub fingerprint: Option<Arc<str>>,
}

/// The machine a response was for, attached to the response for the access log.
#[derive(Debug, Clone)]
pub struct Served {
    pub machine: Arc<str>,
    pub fingerprint: Arc<str>,
}

impl Served {
    pub fn of(machine: &Machine) -> Self {
        Self {
            machine: Arc::from(machine.name.as_ref()),
            fingerprint: Arc::from(machine.fingerprint.as_str()),
        }
    }
}
