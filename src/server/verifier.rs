//! The client-certificate verifier, wrapped to remember what was presented.
//!
//! A certificate that fails verification (another CA's, an expired one) ends
//! the handshake inside rustls, and the error that comes out of it no longer
//! carries the certificate. [`RecordingVerifier`] delegates every decision to
//! rustls's `WebPkiClientVerifier` and, when it says no, leaves the
//! certificate's fingerprint, subject and issuer in a slot that belongs to the
//! connection being accepted (a tokio task-local set by [`watch`]), so the
//! failed handshake can be recorded with the identity that was tried
//! ([`super::handshake`] names the failure).

use std::future::Future;
use std::sync::{Arc, Mutex};

use rustls::client::danger::HandshakeSignatureValid;
use rustls::pki_types::{CertificateDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{DigitallySignedStruct, DistinguishedName};
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::names::Fingerprint;

type Slot = Arc<Mutex<Option<Presented>>>;

tokio::task_local! {
    static PRESENTED: Slot;
}

/// A client certificate that failed verification.
#[derive(Debug, Clone)]
pub struct Presented {
    pub fingerprint: Fingerprint,
    pub subject: Option<String>,
    pub issuer: Option<String>,
    pub error: rustls::Error,
}

impl Presented {
    fn of(der: &[u8], error: rustls::Error) -> Self {
        let parsed = X509Certificate::from_der(der).ok().map(|(_, cert)| cert);
        Self {
            fingerprint: Fingerprint::of_der(der),
            subject: parsed.as_ref().map(|c| c.subject().to_string()),
            issuer: parsed.as_ref().map(|c| c.issuer().to_string()),
            error,
        }
    }
}

#[derive(Debug)]
pub struct RecordingVerifier {
    inner: Arc<dyn ClientCertVerifier>,
}

impl RecordingVerifier {
    pub fn new(inner: Arc<dyn ClientCertVerifier>) -> Self {
        Self { inner }
    }
}

impl ClientCertVerifier for RecordingVerifier {
    fn offer_client_auth(&self) -> bool {
        self.inner.offer_client_auth()
    }

    fn client_auth_mandatory(&self) -> bool {
        self.inner.client_auth_mandatory()
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.inner.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        let result = self
            .inner
            .verify_client_cert(end_entity, intermediates, now);
        if let Err(err) = &result {
            remember(end_entity, err.clone());
        }
        result
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.inner.supported_verify_schemes()
    }

    fn requires_raw_public_keys(&self) -> bool {
        self.inner.requires_raw_public_keys()
    }
}

/// Leaves a refused certificate in the slot of the connection being accepted.
/// Outside [`watch`] (no slot) there is nobody to tell.
pub fn remember(der: &[u8], error: rustls::Error) {
    let _ = PRESENTED.try_with(|slot| {
        *slot.lock().expect("presented slot") = Some(Presented::of(der, error));
    });
}

/// Runs a TLS accept with a slot for [`RecordingVerifier`]; returns its
/// result and the certificate that failed verification, if one did.
pub async fn watch<F: Future>(accept: F) -> (F::Output, Option<Presented>) {
    let slot: Slot = Arc::default();
    let output = PRESENTED.scope(slot.clone(), accept).await;
    let presented = slot.lock().expect("presented slot").take();
    (output, presented)
}
