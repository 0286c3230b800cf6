//! The rustls configuration of the machine-facing listener: TLS 1.2 (ECDHE)
//! and 1.3, RSA server certificate (its signatures made by
//! [`super::openssl_signer`]), and client certificates verified against
//! the CA but optional at the TLS level. A certificate from another CA fails
//! the handshake; a connection without one reaches the handlers, which answer
//! 403 (and `/secrets`, which needs no certificate, works). The verifier is
//! wrapped so a refused certificate is recorded ([`super::verifier`]).
//! Clients that speak none of these suites are served by
//! [`super::legacy_tls`] when the configuration allows it.

use std::sync::Arc;

use anyhow::{Context, Result, anyhow};
use rustls::RootCertStore;
use rustls::crypto::CryptoProvider;
use rustls::server::WebPkiClientVerifier;
use rustls::server::danger::ClientCertVerifier;
use rustls::sign::{CertifiedKey, SingleCertAndKey};

use super::openssl_signer::OpensslRsaKey;
use crate::ca::{self, PrivateKey};
use crate::datadir::DataDir;

pub fn server_config(dir: &DataDir) -> Result<Arc<rustls::ServerConfig>> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = Arc::new(super::verifier::RecordingVerifier::new(client_verifier(
        dir, &provider,
    )?));

    let chain = ca::chain_from_pem(&read(&dir.server_cert_path())?)
        .with_context(|| format!("reading {}", dir.server_cert_path().display()))?;
    let key = PrivateKey::from_pem(&zeroize::Zeroizing::new(read(&dir.server_key_path())?))
        .with_context(|| format!("reading {}", dir.server_key_path().display()))?;
    let key = OpensslRsaKey::from_pkcs8_der(key.pkcs8_der())
        .with_context(|| format!("loading {}", dir.server_key_path().display()))?;
    let certified = CertifiedKey::new(chain, Arc::new(key));
    certified
        .keys_match()
        .context("loading the server certificate and key")?;

    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .context("selecting TLS versions")?
        .with_client_cert_verifier(verifier)
        .with_cert_resolver(Arc::new(SingleCertAndKey::from(certified)));
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// rustls's verifier of client certificates issued by the data directory's CA.
pub fn client_verifier(
    dir: &DataDir,
    provider: &Arc<CryptoProvider>,
) -> Result<Arc<dyn ClientCertVerifier>> {
    let ca_pem = read(&dir.ca_cert_path())?;
    let mut roots = RootCertStore::empty();
    for cert in ca::chain_from_pem(&ca_pem)? {
        roots
            .add(cert)
            .map_err(|e| anyhow!("adding the CA to the trust store: {e}"))?;
    }
    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .allow_unauthenticated()
        .build()
        .context("building the client-certificate verifier")
}

/// The default provider, for verifiers used outside rustls's own handshake.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The IANA codes of the suites rustls serves (TLS 1.3, and ECDHE on 1.2).
pub fn modern_suites() -> Vec<u16> {
    rustls::crypto::ring::default_provider()
        .cipher_suites
        .iter()
        .map(|s| u16::from(s.suite()))
        .collect()
}

fn read(path: &std::path::Path) -> Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))
}
