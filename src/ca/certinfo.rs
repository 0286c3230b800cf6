//! What bootgate needs to know about a certificate: its fingerprints (the
//! machine's identity on disk and on the wire), serial, names and validity.

use anyhow::{Context, Result, anyhow, bail};
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::names::Fingerprint;

pub fn sha256_fingerprint(der: &[u8]) -> String {
    hex::encode(Sha256::digest(der))
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct CertInfo {
    pub fingerprint: Fingerprint,
    pub sha256: String,
    /// Serial number, lowercase hex.
    pub serial: String,
    pub subject_cn: Option<String>,
    pub not_before: String,
    pub not_after: String,
    pub is_ca: bool,
}

impl CertInfo {
    pub fn from_der(der: &[u8]) -> Result<Self> {
        let cert = parse(der)?;
        let validity = cert.validity();
        Ok(Self {
            fingerprint: Fingerprint::of_der(der),
            sha256: sha256_fingerprint(der),
            serial: hex::encode(cert.raw_serial()),
            subject_cn: cert
                .subject()
                .iter_common_name()
                .next()
                .and_then(|cn| cn.as_str().ok())
                .map(str::to_string),
            not_before: rfc3339(validity.not_before.to_datetime()),
            not_after: rfc3339(validity.not_after.to_datetime()),
            is_ca: cert.is_ca(),
        })
    }

    pub fn not_before_time(&self) -> OffsetDateTime {
        OffsetDateTime::parse(&self.not_before, &Rfc3339).expect("written by rfc3339()")
    }

    pub fn not_after_time(&self) -> OffsetDateTime {
        OffsetDateTime::parse(&self.not_after, &Rfc3339).expect("written by rfc3339()")
    }
}

pub fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).expect("formatting a valid time")
}

fn parse(der: &[u8]) -> Result<X509Certificate<'_>> {
    let (rest, cert) =
        X509Certificate::from_der(der).map_err(|e| anyhow!("parsing certificate: {e}"))?;
    if !rest.is_empty() {
        bail!("trailing bytes after the certificate");
    }
    Ok(cert)
}

/// Reads the first certificate of a PEM file's text.
pub fn der_from_pem(pem: &str) -> Result<Vec<u8>> {
    let der = CertificateDer::from_pem_slice(pem.as_bytes())
        .map_err(|e| anyhow!("no PEM certificate found: {e}"))?;
    Ok(der.to_vec())
}

/// Reads every certificate of a PEM file's text (a chain: leaf first).
pub fn chain_from_pem(pem: &str) -> Result<Vec<CertificateDer<'static>>> {
    let chain = CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| anyhow!("reading PEM certificates: {e}"))?;
    if chain.is_empty() {
        bail!("no PEM certificate found");
    }
    Ok(chain)
}

/// The certificate's X.509 version as written on certificates (1, 2 or 3).
pub fn x509_version(der: &[u8]) -> Result<u32> {
    Ok(parse(der)?.version().0 + 1)
}

/// Whether the certificate may authenticate a TLS client: true without an
/// extended key usage extension (no restriction), else whether it lists
/// `clientAuth`, as TLS client verification requires.
pub fn allows_client_auth(der: &[u8]) -> Result<bool> {
    let cert = parse(der)?;
    let usage = cert
        .extended_key_usage()
        .map_err(|e| anyhow!("reading the extended key usage: {e}"))?;
    Ok(usage.is_none_or(|usage| usage.value.client_auth))
}

/// Whether the certificate's subject is byte for byte its issuer's name, which
/// OpenSSL-based clients take for a self-signed certificate.
pub fn subject_is_issuer(der: &[u8]) -> Result<bool> {
    let cert = parse(der)?;
    Ok(cert.subject().as_raw() == cert.issuer().as_raw())
}

/// Checks that `cert_der` carries a valid signature by the CA in `ca_der`.
pub fn verify_issued_by(cert_der: &[u8], ca_der: &[u8]) -> Result<()> {
    let cert = parse(cert_der)?;
    let ca = parse(ca_der).context("parsing the CA certificate")?;
    if cert.issuer() != ca.subject() {
        bail!(
            "issued by \"{}\", not by this CA (\"{}\")",
            cert.issuer(),
            ca.subject()
        );
    }
    cert.verify_signature(Some(ca.public_key()))
        .map_err(|e| anyhow!("its signature does not verify with this CA's key: {e}"))
}

/// Checks that the certificate's public key matches `key`'s.
pub fn key_matches(cert_der: &[u8], key: &super::PrivateKey) -> Result<bool> {
    use rcgen::PublicKeyData;
    let cert = parse(cert_der)?;
    let pair = key.key_pair()?;
    Ok(cert.public_key().subject_public_key.data.as_ref() == pair.der_bytes())
}
