//! The TLS stack for old clients: OpenSSL, TLS 1.2 only, with exactly the
//! twelve suites an iPXE built before 2024 offers (RSA or DHE key exchange ×
//! AES-128/256 × GCM, CBC-SHA256 or CBC-SHA), DHE over ffdhe2048 (RFC 7919),
//! DHE preferred. Nothing weaker: no RC4, 3DES, NULL, export or anonymous
//! suite, no TLS 1.0/1.1, no renegotiation, no compression.
//!
//! Only connections whose ClientHello offers none of rustls's suites come
//! here ([`super::hello`]), and only when `legacy_tls` is on. Client
//! certificates are checked against the same CA as on the rustls side and
//! are optional at the TLS level, as there. OpenSSL accepts X.509 v1
//! certificates (what the 2023 ipxe-boot-server's `openssl ca` issued); a v3
//! certificate must in addition pass rustls's own verifier, so nothing is
//! relaxed for v3. A refused certificate is remembered for the boot history
//! like on the rustls side ([`super::verifier`]).

use crate::names::Fingerprint;
use std::io;
use std::pin::Pin;
use std::sync::Arc;

use anyhow::{Context, Result};
use openssl::dh::Dh;
use openssl::pkey::PKey;
use openssl::ssl::{
    Ssl, SslContext, SslMethod, SslOptions, SslSessionCacheMode, SslVerifyMode, SslVersion,
};
use openssl::x509::{X509, X509StoreContextRef};
use rustls::CertificateError;
use rustls::server::danger::ClientCertVerifier;
use rustls_pki_types::{CertificateDer, UnixTime};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_openssl::SslStream;

use crate::datadir::DataDir;

/// The suites of iPXE as of 2023-12-29, in OpenSSL's names, DHE first.
pub const CIPHERS: &str = "DHE-RSA-AES128-GCM-SHA256:DHE-RSA-AES256-GCM-SHA384:\
DHE-RSA-AES128-SHA256:DHE-RSA-AES256-SHA256:DHE-RSA-AES128-SHA:DHE-RSA-AES256-SHA:\
AES128-GCM-SHA256:AES256-GCM-SHA384:AES128-SHA256:AES256-SHA256:AES128-SHA:AES256-SHA";

/// RFC 7919's ffdhe2048 group.
const FFDHE2048: &[u8] = b"-----BEGIN DH PARAMETERS-----
MIIBCAKCAQEA//////////+t+FRYortKmq/cViAnPTzx2LnFg84tNpWp4TZBFGQz
+8yTnc4kmz75fS/jY2MMddj2gbICrsRhetPfHtXV/WVhJDP1H18GbtCFY2VVPe0a
87VXE15/V8k1mE8McODmi3fipona8+/och3xWKE2rec1MKzKT0g6eXq8CrGCsyT7
YdEIqUuyyOP7uWrat2DX9GgdT0Kj3jlN9K5W7edjcrsZCwenyO4KbXCeAvzhzffi
7MA0BM0oNC9hkXL+nOmFg/+OTxIy7vKBg8P+OxtMb61zO7X8vC7CIAXFjvGDfRaD
ssbzSibBsu/6iGtCOGEoXJf//////////wIBAg==
-----END DH PARAMETERS-----
";

// OpenSSL's X509_V_ERR_* codes the boot history tells apart.
const UNABLE_TO_GET_ISSUER_CERT: i32 = 2;
const CERT_SIGNATURE_FAILURE: i32 = 7;
const CERT_NOT_YET_VALID: i32 = 9;
const CERT_HAS_EXPIRED: i32 = 10;
const DEPTH_ZERO_SELF_SIGNED_CERT: i32 = 18;
const SELF_SIGNED_CERT_IN_CHAIN: i32 = 19;
const UNABLE_TO_GET_ISSUER_CERT_LOCALLY: i32 = 20;
const UNABLE_TO_VERIFY_LEAF_SIGNATURE: i32 = 21;
const CERT_REVOKED: i32 = 23;

/// The legacy acceptor, built once with the server.
pub struct LegacyTls {
    context: SslContext,
}

/// What the handshake settled, for the boot history.
pub struct Negotiated {
    pub version: &'static str,
    pub suite: Option<&'static str>,
}

impl LegacyTls {
    pub fn new(dir: &DataDir, webpki: Arc<dyn ClientCertVerifier>) -> Result<Self> {
        let mut b =
            SslContext::builder(SslMethod::tls_server()).context("creating the OpenSSL context")?;
        b.set_min_proto_version(Some(SslVersion::TLS1_2))?;
        b.set_max_proto_version(Some(SslVersion::TLS1_2))?;
        b.set_cipher_list(CIPHERS)
            .context("selecting the legacy cipher suites")?;
        b.set_options(
            SslOptions::CIPHER_SERVER_PREFERENCE
                | SslOptions::NO_COMPRESSION
                | SslOptions::NO_RENEGOTIATION
                | SslOptions::NO_TICKET,
        );
        b.set_session_cache_mode(SslSessionCacheMode::OFF);
        let dh = Dh::params_from_pem(FFDHE2048).context("loading ffdhe2048")?;
        b.set_tmp_dh(&dh)?;

        let chain_path = dir.server_cert_path();
        let chain = X509::stack_from_pem(&read(&chain_path)?)
            .with_context(|| format!("reading {}", chain_path.display()))?;
        let mut chain = chain.into_iter();
        let leaf = chain
            .next()
            .with_context(|| format!("{} holds no certificate", chain_path.display()))?;
        b.set_certificate(&leaf)?;
        for cert in chain {
            b.add_extra_chain_cert(cert)?;
        }
        let key_path = dir.server_key_path();
        let key = zeroize::Zeroizing::new(read(&key_path)?);
        let key = PKey::private_key_from_pem(&key)
            .with_context(|| format!("reading {}", key_path.display()))?;
        b.set_private_key(&key)?;
        b.check_private_key()
            .context("the server key does not match the server certificate")?;

        let ca_path = dir.ca_cert_path();
        for ca in X509::stack_from_pem(&read(&ca_path)?)
            .with_context(|| format!("reading {}", ca_path.display()))?
        {
            b.add_client_ca(&ca)?;
            b.cert_store_mut().add_cert(ca)?;
        }
        b.set_verify_callback(SslVerifyMode::PEER, move |ok, ctx| {
            verify(ok, ctx, webpki.as_ref())
        });
        Ok(Self { context: b.build() })
    }

    /// Completes the handshake on `stream`, which replays the ClientHello.
    pub async fn accept<S: AsyncRead + AsyncWrite + Unpin>(
        &self,
        stream: S,
    ) -> io::Result<SslStream<S>> {
        let ssl = Ssl::new(&self.context).map_err(io::Error::other)?;
        let mut stream = SslStream::new(ssl, stream).map_err(io::Error::other)?;
        Pin::new(&mut stream)
            .accept()
            .await
            .map_err(handshake_error)?;
        Ok(stream)
    }
}

/// The protocol and suite of an established connection.
pub fn negotiated<S>(stream: &SslStream<S>) -> Negotiated {
    let ssl = stream.ssl();
    Negotiated {
        version: ssl.version_str(),
        suite: ssl.current_cipher().and_then(|c| c.standard_name()),
    }
}

/// The SHA-1 fingerprint of the verified client certificate, if one was sent.
pub fn peer_fingerprint<S>(stream: &SslStream<S>) -> Option<Fingerprint> {
    let cert = stream.ssl().peer_certificate()?;
    Some(Fingerprint::of_der(&cert.to_der().ok()?))
}

/// OpenSSL's verdict on each certificate of the chain, plus rustls's on a v3
/// leaf; a refusal is remembered with the leaf that was presented.
fn verify(ok: bool, ctx: &mut X509StoreContextRef, webpki: &dyn ClientCertVerifier) -> bool {
    let leaf_der = ctx
        .chain()
        .and_then(|chain| chain.get(0))
        .or(ctx.current_cert())
        .and_then(|cert| cert.to_der().ok());
    let Some(leaf_der) = leaf_der else {
        return false;
    };
    if !ok {
        super::verifier::remember(&leaf_der, openssl_refusal(ctx.error().as_raw()));
        return false;
    }
    if ctx.error_depth() != 0 {
        return true;
    }
    let is_v3 = ctx.current_cert().is_some_and(|cert| cert.version() >= 2);
    if !is_v3 {
        return true;
    }
    let leaf = CertificateDer::from(leaf_der.as_slice());
    match webpki.verify_client_cert(&leaf, &[], UnixTime::now()) {
        Ok(_) => true,
        Err(err) => {
            super::verifier::remember(&leaf_der, err);
            false
        }
    }
}

/// An OpenSSL verification error as the rustls error the rest of the server
/// classifies ([`super::handshake`]).
fn openssl_refusal(code: i32) -> rustls::Error {
    rustls::Error::InvalidCertificate(match code {
        UNABLE_TO_GET_ISSUER_CERT
        | UNABLE_TO_GET_ISSUER_CERT_LOCALLY
        | UNABLE_TO_VERIFY_LEAF_SIGNATURE
        | DEPTH_ZERO_SELF_SIGNED_CERT
        | SELF_SIGNED_CERT_IN_CHAIN => CertificateError::UnknownIssuer,
        CERT_SIGNATURE_FAILURE => CertificateError::BadSignature,
        CERT_HAS_EXPIRED => CertificateError::Expired,
        CERT_NOT_YET_VALID => CertificateError::NotValidYet,
        CERT_REVOKED => CertificateError::Revoked,
        _ => CertificateError::BadEncoding,
    })
}

/// A failed OpenSSL handshake as an I/O error carrying the equivalent rustls
/// error, or the plain I/O error when the connection itself failed.
fn handshake_error(err: openssl::ssl::Error) -> io::Error {
    if let Some(stack) = err.ssl_error() {
        let reasons: Vec<&str> = stack.errors().iter().filter_map(|e| e.reason()).collect();
        let has = |needle: &str| reasons.iter().any(|r| r.contains(needle));
        let tls =
            if has("no shared cipher") || has("unsupported protocol") || has("version too low") {
                rustls::Error::PeerIncompatible(rustls::PeerIncompatible::NoCipherSuitesInCommon)
            } else if has("alert unknown ca")
                || has("alert bad certificate")
                || has("certificate unknown")
            {
                rustls::Error::AlertReceived(rustls::AlertDescription::UnknownCA)
            } else if has("alert") {
                rustls::Error::AlertReceived(rustls::AlertDescription::HandshakeFailure)
            } else {
                rustls::Error::General(stack.to_string())
            };
        return io::Error::new(io::ErrorKind::InvalidData, tls);
    }
    match err.into_io_error() {
        Ok(io) => io,
        Err(err) => io::Error::new(io::ErrorKind::UnexpectedEof, err.to_string()),
    }
}

fn read(path: &std::path::Path) -> Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("reading {}", path.display()))
}
