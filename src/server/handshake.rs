//! Why a TLS handshake failed, in a word, and whether it deserves a place in
//! the boot history.
//!
//! A connection closed before the client said anything (a port probe, a
//! health check, the tests' readiness check) or left silent is only counted.
//! Everything else is recorded. That includes a client that sent its hello
//! and then hung up without a word: stock iPXE does exactly that when it does
//! not trust the server's certificate (an image with an old CA list, or the
//! wrong server), so [`ReadCount`] tells such a client from a probe.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};

use rustls::{AlertDescription, CertificateError};
use tokio::io::{AsyncRead, ReadBuf};

use super::hello::forward_async_write;
use super::verifier::Presented;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HandshakeFailure {
    pub reason: &'static str,
    pub record: bool,
}

impl HandshakeFailure {
    /// A handshake not finished in time; `client_bytes` is what the client sent.
    pub fn timeout(client_bytes: u64) -> Self {
        Self {
            reason: "timeout",
            record: client_bytes > 0,
        }
    }

    pub fn of(err: &io::Error, presented: Option<&Presented>, client_bytes: u64) -> Self {
        let recorded = |reason| Self {
            reason,
            record: true,
        };
        let tls = presented.map(|p| &p.error).or_else(|| {
            err.get_ref()
                .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        });
        let Some(tls) = tls else {
            // The connection ended without a TLS error of ours.
            return match client_bytes {
                0 => Self {
                    reason: "closed",
                    record: false,
                },
                _ => recorded("client-hung-up"),
            };
        };
        use rustls::Error as E;
        recorded(match tls {
            E::InvalidCertificate(cert) => match cert {
                // Not issued by our CA: no issuer of that name, or one of
                // the same name whose signature it does not carry (every
                // bootgate CA of a given server name is called the same).
                CertificateError::UnknownIssuer | CertificateError::BadSignature => "foreign-ca",
                CertificateError::Expired | CertificateError::ExpiredContext { .. } => "expired",
                CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
                    "not-yet-valid"
                }
                CertificateError::Revoked => "revoked",
                _ => "bad-certificate",
            },
            E::AlertReceived(alert) => match alert {
                // The client did not trust our certificate and said so.
                AlertDescription::BadCertificate
                | AlertDescription::UnknownCA
                | AlertDescription::CertificateUnknown
                | AlertDescription::UnsupportedCertificate
                | AlertDescription::CertificateExpired
                | AlertDescription::CertificateRevoked => "server-certificate-refused",
                _ => "client-alert",
            },
            E::PeerIncompatible(_) | E::NoApplicationProtocol => "incompatible",
            E::DecryptError => "decrypt-error",
            _ => "protocol-error",
        })
    }
}

/// A stream that counts the bytes read from it, readable after the stream
/// itself is gone (a failed TLS accept drops it).
pub struct ReadCount<S> {
    inner: S,
    read: Arc<AtomicU64>,
}

impl<S> ReadCount<S> {
    pub fn new(inner: S) -> (Self, Arc<AtomicU64>) {
        let read = Arc::new(AtomicU64::new(0));
        (
            Self {
                inner,
                read: read.clone(),
            },
            read,
        )
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for ReadCount<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let poll = Pin::new(&mut self.inner).poll_read(cx, buf);
        let n = buf.filled().len().saturating_sub(before);
        if n > 0 {
            self.read.fetch_add(n as u64, Ordering::Relaxed);
        }
        poll
    }
}

forward_async_write!(ReadCount);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::names::Fingerprint;

    fn io(err: rustls::Error) -> io::Error {
        io::Error::new(io::ErrorKind::InvalidData, err)
    }

    #[test]
    fn classifies_handshake_failures() {
        let foreign = Presented {
            fingerprint: Fingerprint::of_der(b"a foreign certificate"),
            subject: Some("CN=gw1".into()),
            issuer: None,
            error: rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer),
        };
        let generic = io(rustls::Error::General("x".into()));
        assert_eq!(
            HandshakeFailure::of(&generic, Some(&foreign), 300).reason,
            "foreign-ca"
        );
        let alert = io(rustls::Error::AlertReceived(AlertDescription::UnknownCA));
        assert_eq!(
            HandshakeFailure::of(&alert, None, 300).reason,
            "server-certificate-refused"
        );
        let eof = io::Error::new(io::ErrorKind::UnexpectedEof, "tls handshake eof");
        assert_eq!(
            HandshakeFailure::of(&eof, None, 0),
            HandshakeFailure {
                reason: "closed",
                record: false
            }
        );
        assert_eq!(
            HandshakeFailure::of(&eof, None, 517),
            HandshakeFailure {
                reason: "client-hung-up",
                record: true
            }
        );
        let garbage = io(rustls::Error::InvalidMessage(
            rustls::InvalidMessage::InvalidContentType,
        ));
        assert_eq!(
            HandshakeFailure::of(&garbage, None, 9).reason,
            "protocol-error"
        );
        assert!(!HandshakeFailure::timeout(0).record);
        assert!(HandshakeFailure::timeout(200).record);
    }

    #[tokio::test]
    async fn counts_what_was_read_after_the_stream_is_gone() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let (mut client, server) = tokio::io::duplex(64);
        let (mut counted, read) = ReadCount::new(server);
        client.write_all(b"hello").await.unwrap();
        let mut buf = [0u8; 5];
        counted.read_exact(&mut buf).await.unwrap();
        drop(counted);
        assert_eq!(read.load(Ordering::Relaxed), 5);
    }
}
