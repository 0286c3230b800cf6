//! The server's RSA key signing handshakes for rustls through OpenSSL.
//!
//! Every full handshake costs the server one RSA-2048 signature, and a
//! booting machine always makes a full handshake. OpenSSL's RSA is faster
//! than ring's on the same machine (see `docs/performance.md`), so the
//! signature is made there; everything else about the handshake stays with
//! rustls and ring: versions, suites, key exchange, record encryption, and
//! the verification of client certificates. The schemes offered and their
//! order of preference are those of rustls's own RSA key.

use std::sync::Arc;

use openssl::hash::MessageDigest;
use openssl::pkey::{PKey, Private};
use openssl::rsa::Padding;
use openssl::sign::RsaPssSaltlen;
use rustls::sign::{Signer, SigningKey};
use rustls::{SignatureAlgorithm, SignatureScheme};
use rustls_pki_types::SubjectPublicKeyInfoDer;

/// What rustls's RSA key offers, most preferred first.
const SCHEMES: &[SignatureScheme] = &[
    SignatureScheme::RSA_PSS_SHA512,
    SignatureScheme::RSA_PSS_SHA384,
    SignatureScheme::RSA_PSS_SHA256,
    SignatureScheme::RSA_PKCS1_SHA512,
    SignatureScheme::RSA_PKCS1_SHA384,
    SignatureScheme::RSA_PKCS1_SHA256,
];

/// An RSA private key held by OpenSSL.
pub struct OpensslRsaKey {
    key: Arc<PKey<Private>>,
    spki: Vec<u8>,
}

impl std::fmt::Debug for OpensslRsaKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the key itself.
        f.write_str("OpensslRsaKey")
    }
}

impl OpensslRsaKey {
    /// Loads a PKCS#8 DER RSA private key.
    pub fn from_pkcs8_der(der: &[u8]) -> anyhow::Result<Self> {
        let key = PKey::private_key_from_pkcs8(der)?;
        anyhow::ensure!(key.rsa().is_ok(), "the server key is not an RSA key");
        let spki = key.public_key_to_der()?;
        Ok(Self {
            key: Arc::new(key),
            spki,
        })
    }
}

impl SigningKey for OpensslRsaKey {
    fn choose_scheme(&self, offered: &[SignatureScheme]) -> Option<Box<dyn Signer>> {
        let scheme = *SCHEMES.iter().find(|scheme| offered.contains(scheme))?;
        Some(Box::new(RsaSigner {
            key: self.key.clone(),
            scheme,
        }))
    }

    fn public_key(&self) -> Option<SubjectPublicKeyInfoDer<'_>> {
        Some(SubjectPublicKeyInfoDer::from(self.spki.as_slice()))
    }

    fn algorithm(&self) -> SignatureAlgorithm {
        SignatureAlgorithm::RSA
    }
}

struct RsaSigner {
    key: Arc<PKey<Private>>,
    scheme: SignatureScheme,
}

impl std::fmt::Debug for RsaSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RsaSigner({:?})", self.scheme)
    }
}

impl Signer for RsaSigner {
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, rustls::Error> {
        let (digest, pss) = match self.scheme {
            SignatureScheme::RSA_PSS_SHA512 => (MessageDigest::sha512(), true),
            SignatureScheme::RSA_PSS_SHA384 => (MessageDigest::sha384(), true),
            SignatureScheme::RSA_PSS_SHA256 => (MessageDigest::sha256(), true),
            SignatureScheme::RSA_PKCS1_SHA512 => (MessageDigest::sha512(), false),
            SignatureScheme::RSA_PKCS1_SHA384 => (MessageDigest::sha384(), false),
            _ => (MessageDigest::sha256(), false),
        };
        let failed = |err: openssl::error::ErrorStack| {
            rustls::Error::General(format!("signing with the server key: {err}"))
        };
        let mut signer = openssl::sign::Signer::new(digest, &self.key).map_err(failed)?;
        if pss {
            // TLS wants PSS with a salt as long as the digest (RFC 8446 4.2.3).
            signer.set_rsa_padding(Padding::PKCS1_PSS).map_err(failed)?;
            signer
                .set_rsa_pss_saltlen(RsaPssSaltlen::DIGEST_LENGTH)
                .map_err(failed)?;
            signer.set_rsa_mgf1_md(digest).map_err(failed)?;
        }
        signer.update(message).map_err(failed)?;
        signer.sign_to_vec().map_err(failed)
    }

    fn scheme(&self) -> SignatureScheme {
        self.scheme
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::crypto::ring::default_provider;

    /// Signatures made through OpenSSL verify with ring, for every scheme,
    /// and the scheme chosen is the one rustls's own key would choose.
    #[test]
    fn signs_what_ring_verifies_and_chooses_as_rustls_does() {
        let rsa = openssl::rsa::Rsa::generate(2048).unwrap();
        let der = PKey::from_rsa(rsa).unwrap().private_key_to_pkcs8().unwrap();
        let ours = OpensslRsaKey::from_pkcs8_der(&der).unwrap();
        let provider = default_provider();
        let theirs = provider
            .key_provider
            .load_private_key(rustls_pki_types::PrivateKeyDer::Pkcs8(der.into()))
            .unwrap();
        assert_eq!(ours.public_key(), theirs.public_key());
        let message = b"a ServerKeyExchange's parameters";
        for offered in [
            SCHEMES.to_vec(),
            vec![SignatureScheme::RSA_PKCS1_SHA256],
            vec![
                SignatureScheme::RSA_PKCS1_SHA1,
                SignatureScheme::RSA_PSS_SHA256,
            ],
            vec![SignatureScheme::ECDSA_NISTP256_SHA256],
        ] {
            let chosen = |key: &dyn SigningKey| key.choose_scheme(&offered).map(|s| s.scheme());
            assert_eq!(chosen(&ours), chosen(theirs.as_ref()), "{offered:?}");
        }
        for &scheme in SCHEMES {
            let signature = ours
                .choose_scheme(&[scheme])
                .unwrap()
                .sign(message)
                .unwrap();
            let algorithm = provider
                .signature_verification_algorithms
                .mapping
                .iter()
                .find(|(s, _)| *s == scheme)
                .unwrap()
                .1[0];
            let spki = ours.public_key().unwrap();
            // The SPKI's subjectPublicKey: the last BIT STRING, past its unused-bits byte.
            let public = webpki_public_key(spki.as_ref());
            algorithm
                .verify_signature(public, message, &signature)
                .unwrap_or_else(|_| panic!("{scheme:?} does not verify"));
        }
    }

    /// The RSAPublicKey inside an RSA SubjectPublicKeyInfo.
    fn webpki_public_key(spki: &[u8]) -> &[u8] {
        let rsa = openssl::pkey::PKey::public_key_from_der(spki)
            .unwrap()
            .rsa()
            .unwrap();
        let inner = rsa.public_key_to_der_pkcs1().unwrap();
        let at = spki
            .windows(inner.len())
            .position(|w| w == inner.as_slice())
            .unwrap();
        &spki[at..at + inner.len()]
    }
}
