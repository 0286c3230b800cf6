//! RSA private keys: generation and loading. iPXE speaks RSA only, so every key
//! bootgate makes is RSA, stored as PKCS#8 PEM (what iPXE's `privkey` takes).

use anyhow::{Context, Result, bail};
use rcgen::{KeyPair, PKCS_RSA_SHA256};
use rsa::RsaPrivateKey;
use rsa::pkcs1::DecodeRsaPrivateKey;
use rsa::pkcs8::{DecodePrivateKey, EncodePrivateKey, LineEnding};
use rustls_pki_types::PrivatePkcs8KeyDer;
use zeroize::Zeroizing;

/// Key size for every key bootgate generates.
pub const RSA_BITS: usize = 2048;

/// A private key with its PKCS#8 encodings. Debug output never shows the key.
pub struct PrivateKey {
    pkcs8_der: Zeroizing<Vec<u8>>,
}

impl std::fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PrivateKey(..)")
    }
}

impl PrivateKey {
    pub fn generate_rsa() -> Result<Self> {
        let key = RsaPrivateKey::new(&mut rand::rngs::OsRng, RSA_BITS)
            .context("generating an RSA key")?;
        let der = key.to_pkcs8_der().context("encoding the RSA key")?;
        Ok(Self {
            pkcs8_der: Zeroizing::new(der.as_bytes().to_vec()),
        })
    }

    /// Parses a PEM private key: PKCS#8 (`BEGIN PRIVATE KEY`) or PKCS#1
    /// (`BEGIN RSA PRIVATE KEY`, what older `openssl genrsa` writes).
    pub fn from_pem(pem: &str) -> Result<Self> {
        if pem.contains("ENCRYPTED") {
            bail!(
                "the key is encrypted; decrypt it first with `openssl pkey -in KEY -out PLAIN.key`"
            );
        }
        let key = if pem.contains("BEGIN RSA PRIVATE KEY") {
            RsaPrivateKey::from_pkcs1_pem(pem).context("parsing a PKCS#1 RSA key")?
        } else if pem.contains("BEGIN PRIVATE KEY") {
            RsaPrivateKey::from_pkcs8_pem(pem)
                .context("parsing a PKCS#8 key (only RSA keys work with iPXE)")?
        } else {
            bail!("no PEM private key found (expected BEGIN PRIVATE KEY or BEGIN RSA PRIVATE KEY)");
        };
        let der = key.to_pkcs8_der().context("encoding the RSA key")?;
        Ok(Self {
            pkcs8_der: Zeroizing::new(der.as_bytes().to_vec()),
        })
    }

    pub fn pkcs8_der(&self) -> &[u8] {
        &self.pkcs8_der
    }

    pub fn to_pem(&self) -> Zeroizing<String> {
        let key = RsaPrivateKey::from_pkcs8_der(&self.pkcs8_der).expect("key was validated");
        key.to_pkcs8_pem(LineEnding::LF)
            .expect("encoding a valid key")
    }

    /// The key as an rcgen signer (RSA PKCS#1 v1.5 with SHA-256).
    pub fn key_pair(&self) -> Result<KeyPair> {
        let der = PrivatePkcs8KeyDer::from(self.pkcs8_der.to_vec());
        KeyPair::from_pkcs8_der_and_sign_algo(&der, &PKCS_RSA_SHA256)
            .context("loading the RSA key for signing")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pem_round_trip_and_debug_hides_key() {
        let key = PrivateKey::generate_rsa().unwrap();
        let pem = key.to_pem();
        assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----"));
        let again = PrivateKey::from_pem(&pem).unwrap();
        assert_eq!(again.pkcs8_der(), key.pkcs8_der());
        assert_eq!(format!("{key:?}"), "PrivateKey(..)");
        key.key_pair().unwrap();
    }

    #[test]
    fn refuses_encrypted_and_garbage() {
        let err = PrivateKey::from_pem("-----BEGIN ENCRYPTED PRIVATE KEY-----\n").unwrap_err();
        assert!(err.to_string().contains("encrypted"));
        assert!(PrivateKey::from_pem("hello").is_err());
    }
}
