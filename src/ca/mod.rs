//! The certificate authority: makes the CA, the server certificate and each
//! machine's client certificate, and knows how to read certificates back.
//!
//! Every certificate a board without a clock must validate (the CA and the
//! server certificate, checked by iPXE) gets a notBefore of 1970-01-01: a
//! Raspberry Pi starts near the epoch and this iPXE has no `ntp` command.

mod certinfo;
mod keys;

pub use crate::names::Fingerprint;
pub use certinfo::{
    CertInfo, allows_client_auth, chain_from_pem, der_from_pem, key_matches, rfc3339,
    verify_issued_by, x509_version,
};
pub use keys::{PrivateKey, RSA_BITS};

use anyhow::{Context, Result, bail};
use rand::RngCore;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SerialNumber,
};
use time::{Duration, OffsetDateTime};
use zeroize::Zeroizing;

use crate::datadir::DataDir;

/// Lifetime of every certificate bootgate issues (the original used 10 years).
pub const VALIDITY_DAYS: i64 = 3650;

/// The notBefore that clockless boards accept.
pub fn epoch() -> OffsetDateTime {
    OffsetDateTime::UNIX_EPOCH
}

/// A newly made certificate and its key, both PEM.
pub struct Issued {
    pub cert_pem: String,
    pub key: PrivateKey,
    pub info: CertInfo,
}

impl Issued {
    pub fn key_pem(&self) -> Zeroizing<String> {
        self.key.to_pem()
    }
}

/// A loaded CA, ready to sign.
pub struct Ca {
    cert_der: Vec<u8>,
    issuer: Issuer<'static, KeyPair>,
}

impl Ca {
    /// Makes a new self-signed RSA CA.
    pub fn generate(common_name: &str) -> Result<(Self, Issued)> {
        let key = PrivateKey::generate_rsa()?;
        let mut params = CertificateParams::default();
        params.distinguished_name = dn(common_name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        set_validity(&mut params);
        let pair = key.key_pair()?;
        let cert = params
            .self_signed(&pair)
            .context("signing the CA certificate")?;
        let cert_der = cert.der().to_vec();
        let info = CertInfo::from_der(&cert_der)?;
        let ca = Self {
            cert_der,
            issuer: Issuer::new(params, pair),
        };
        Ok((
            ca,
            Issued {
                cert_pem: cert.pem(),
                key,
                info,
            },
        ))
    }

    /// Loads a CA from PEM texts, checking that the key belongs to the cert.
    pub fn from_pem(cert_pem: &str, key_pem: &str) -> Result<Self> {
        let cert_der = der_from_pem(cert_pem).context("reading the CA certificate")?;
        let info = CertInfo::from_der(&cert_der).context("reading the CA certificate")?;
        if !info.is_ca {
            bail!("the certificate is not a CA (no basicConstraints CA:TRUE)");
        }
        let key = PrivateKey::from_pem(key_pem).context("reading the CA key")?;
        if !key_matches(&cert_der, &key)? {
            bail!("the CA key does not match the CA certificate");
        }
        let pair = key.key_pair()?;
        let issuer = Issuer::from_ca_cert_der(&cert_der.clone().into(), pair)
            .context("reading the CA's name and key usages")?;
        Ok(Self { cert_der, issuer })
    }

    /// Loads the data directory's CA.
    pub fn load(dir: &DataDir) -> Result<Self> {
        let cert_path = dir.ca_cert_path();
        let key_path = dir.ca_key_path();
        let cert = std::fs::read_to_string(&cert_path)
            .with_context(|| format!("reading CA certificate {}", cert_path.display()))?;
        let key = Zeroizing::new(
            std::fs::read_to_string(&key_path)
                .with_context(|| format!("reading CA key {}", key_path.display()))?,
        );
        Self::from_pem(&cert, &key)
            .with_context(|| format!("loading the CA from {}", dir.ca_dir().display()))
    }

    pub fn cert_der(&self) -> &[u8] {
        &self.cert_der
    }

    /// Issues the HTTPS server's certificate for `names` (DNS names or IPs).
    pub fn issue_server(&self, names: &[String]) -> Result<Issued> {
        let mut params = CertificateParams::new(names.to_vec())
            .context("server names must be DNS names or IP addresses")?;
        params.distinguished_name = dn(&names[0]);
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        self.issue(params)
    }

    /// Issues a machine's client certificate, with the machine name as CN.
    pub fn issue_client(&self, machine: &str) -> Result<Issued> {
        let mut params = CertificateParams::default();
        params.distinguished_name = dn(machine);
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        self.issue(params)
    }

    /// Signs `params` with a new key. A subject equal to the CA's (an imported
    /// CA named after the server, as ipxe-boot-server's were) gets an extra
    /// `OU=bootgate` so no issued certificate can pass for self-signed.
    fn issue(&self, mut params: CertificateParams) -> Result<Issued> {
        set_validity(&mut params);
        params.use_authority_key_identifier_extension = true;
        let key = PrivateKey::generate_rsa()?;
        let pair = key.key_pair()?;
        let mut cert = params
            .signed_by(&pair, &self.issuer)
            .context("signing the certificate")?;
        if certinfo::subject_is_issuer(cert.der())? {
            params
                .distinguished_name
                .push(DnType::OrganizationalUnitName, "bootgate");
            cert = params
                .signed_by(&pair, &self.issuer)
                .context("signing the certificate")?;
        }
        let info = CertInfo::from_der(cert.der())?;
        Ok(Issued {
            cert_pem: cert.pem(),
            key,
            info,
        })
    }
}

fn dn(common_name: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, common_name);
    dn
}

/// Validity from the epoch (for clockless boards) to ten years from now, and a
/// random 127-bit serial: serials never repeat, even across a crash.
fn set_validity(params: &mut CertificateParams) {
    params.not_before = epoch();
    params.not_after = OffsetDateTime::now_utc() + Duration::days(VALIDITY_DAYS);
    let mut serial = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut serial);
    serial[0] &= 0x7f;
    serial[0] |= 0x40;
    params.serial_number = Some(SerialNumber::from_slice(&serial));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issues_verifiable_client_certs_valid_from_epoch() {
        let (ca, ca_issued) = Ca::generate("test CA").unwrap();
        assert!(ca_issued.info.is_ca);
        assert_eq!(ca_issued.info.not_before, "1970-01-01T00:00:00Z");
        let client = ca.issue_client("gw-1").unwrap();
        assert_eq!(client.info.subject_cn.as_deref(), Some("gw-1"));
        assert_eq!(client.info.not_before, "1970-01-01T00:00:00Z");
        let der = der_from_pem(&client.cert_pem).unwrap();
        assert_eq!(client.info.fingerprint, Fingerprint::of_der(&der));
        verify_issued_by(&der, ca.cert_der()).unwrap();
        assert!(key_matches(&der, &client.key).unwrap());

        let (other, _) = Ca::generate("other CA").unwrap();
        assert!(verify_issued_by(&der, other.cert_der()).is_err());

        let reloaded = Ca::from_pem(&ca_issued.cert_pem, &ca_issued.key_pem()).unwrap();
        assert_eq!(reloaded.cert_der(), ca.cert_der());
        assert!(Ca::from_pem(&ca_issued.cert_pem, &client.key_pem()).is_err());
    }

    #[test]
    fn issued_subjects_never_equal_the_issuer() {
        let (ca, _) = Ca::generate("boot.example.com").unwrap();
        let server = ca.issue_server(&["boot.example.com".into()]).unwrap();
        let der = der_from_pem(&server.cert_pem).unwrap();
        assert!(!certinfo::subject_is_issuer(&der).unwrap());
        assert_eq!(server.info.subject_cn.as_deref(), Some("boot.example.com"));
        verify_issued_by(&der, ca.cert_der()).unwrap();
        let client = ca.issue_client("gw-1").unwrap();
        let der = der_from_pem(&client.cert_pem).unwrap();
        assert!(!certinfo::subject_is_issuer(&der).unwrap());
    }

    #[test]
    fn serials_differ() {
        let (ca, _) = Ca::generate("test CA").unwrap();
        let a = ca
            .issue_server(&["localhost".into(), "127.0.0.1".into()])
            .unwrap();
        let b = ca.issue_client("b").unwrap();
        assert_ne!(a.info.serial, b.info.serial);
    }
}
