//! A machine's identity: the SHA-1 fingerprint of its client certificate,
//! parsed once where it enters (a certificate, `registry.json`, the command
//! line) and written one way everywhere, as 40 lowercase hex digits without
//! colons: nginx's `$ssl_client_fingerprint`, and the name of the machine's
//! `files/<fingerprint>/` folder since the original deployment.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use anyhow::{Result, bail};
use serde::{Deserialize, Serialize};
use sha1::{Digest, Sha1};

/// A certificate's SHA-1 fingerprint; cheap to clone.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Fingerprint(Arc<str>);

impl Fingerprint {
    /// The fingerprint of a certificate in DER.
    pub fn of_der(der: &[u8]) -> Self {
        Self(hex::encode(Sha1::digest(der)).into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The text, shared rather than copied (for records that keep it).
    pub fn shared(&self) -> Arc<str> {
        self.0.clone()
    }
}

/// Accepts the forms tools print: lowercase or uppercase, with or without
/// colons (`openssl x509 -fingerprint -sha1` prints `AB:CD:...`).
impl FromStr for Fingerprint {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> Result<Self> {
        let digits: String = s
            .trim()
            .chars()
            .filter(|c| *c != ':')
            .map(|c| c.to_ascii_lowercase())
            .collect();
        if digits.len() != 40 || !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
            bail!("{s:?} is not a SHA-1 certificate fingerprint (40 hex digits)");
        }
        Ok(Self(digits.into()))
    }
}

impl TryFrom<String> for Fingerprint {
    type Error = anyhow::Error;
    fn try_from(s: String) -> Result<Self> {
        s.parse()
    }
}

impl From<Fingerprint> for String {
    fn from(fingerprint: Fingerprint) -> String {
        fingerprint.0.to_string()
    }
}

impl AsRef<str> for Fingerprint {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Fingerprint({})", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn is_written_one_way_whatever_way_it_came_in() {
        let der = b"not really a certificate";
        let fp = Fingerprint::of_der(der);
        assert_eq!(fp.as_str(), hex::encode(Sha1::digest(der)));
        let colons = fp
            .as_str()
            .to_ascii_uppercase()
            .as_bytes()
            .chunks(2)
            .map(|pair| std::str::from_utf8(pair).unwrap())
            .collect::<Vec<_>>()
            .join(":");
        for form in [fp.to_string(), fp.as_str().to_ascii_uppercase(), colons] {
            assert_eq!(form.parse::<Fingerprint>().unwrap(), fp, "{form}");
        }
        let json = serde_json::to_string(&fp).unwrap();
        assert_eq!(json, format!("\"{fp}\""));
        assert_eq!(serde_json::from_str::<Fingerprint>(&json).unwrap(), fp);
    }

    #[test]
    fn anything_else_is_refused() {
        for bad in ["", "ab", &"g".repeat(40), &"a".repeat(41), "../etc/passwd"] {
            let err = bad.parse::<Fingerprint>().unwrap_err();
            assert!(err.to_string().contains("40 hex digits"), "{err}");
        }
        assert!(serde_json::from_str::<Fingerprint>("\"ab\"").is_err());
    }
}
