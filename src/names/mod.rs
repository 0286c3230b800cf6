//! Validated names for things that name a folder or a file in the data
//! directory: machines, profiles and shared assets (and machines' certificate
//! [`Fingerprint`]s, which name their `files/` folders). One rule for all of them,
//! so a name that works in one place works everywhere and none can climb out
//! of its folder: letters, digits, `.`, `_` and `-`, starting with a letter or
//! a digit.

mod fingerprint;

pub use fingerprint::Fingerprint;

use std::str::FromStr;
use std::sync::Arc;

use anyhow::{Result, bail};
use serde::{Deserialize, Serialize};

/// Checks `s` against the naming rule; `kind` ("machine", "profile", ...) goes
/// into the message.
pub fn check(kind: &str, s: &str, max_len: usize) -> Result<()> {
    let valid_start = s.chars().next().is_some_and(|c| c.is_ascii_alphanumeric());
    let valid_chars = s
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if s.is_empty() || s.len() > max_len || !valid_start || !valid_chars {
        bail!(
            "invalid {kind} name {s:?}: use 1-{max_len} letters, digits, '.', '_' or '-', starting with a letter or digit"
        );
    }
    Ok(())
}

/// Whether `c` may appear in a name (used to find names inside scripts).
pub fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')
}

/// For a `$ty(String)` or `$ty(Arc<str>)` whose `FromStr` validates:
/// parsing from a `String` (what serde's `try_from = "String"` uses), back
/// into a `String`, `Display` and `AsRef<str>`, all of the text as it is.
macro_rules! string_newtype {
    ($ty:ident) => {
        impl TryFrom<String> for $ty {
            type Error = anyhow::Error;
            fn try_from(s: String) -> anyhow::Result<Self> {
                s.parse()
            }
        }

        impl From<$ty> for String {
            fn from(value: $ty) -> String {
                value.0.to_string()
            }
        }

        impl ::std::fmt::Display for $ty {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl AsRef<str> for $ty {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }
    };
}
pub(crate) use string_newtype;

macro_rules! validated_name {
    ($(#[$doc:meta])* $ty:ident, $kind:literal, $max:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $ty(Arc<str>);

        impl $ty {
            /// The name, shared rather than copied (for records that keep it).
            pub fn shared(&self) -> Arc<str> {
                self.0.clone()
            }
        }

        impl FromStr for $ty {
            type Err = anyhow::Error;
            fn from_str(s: &str) -> Result<Self> {
                check($kind, s, $max)?;
                Ok(Self(s.into()))
            }
        }

        string_newtype!($ty);
    };
}

validated_name!(
    /// A machine's name: names its folder `machines/<name>/`.
    MachineName,
    "machine",
    63
);

validated_name!(
    /// A profile's name: names its folder `profiles/<name>/`.
    ProfileName,
    "profile",
    63
);

validated_name!(
    /// A shared asset's name: what machines fetch as `/files/<name>`. Longer
    /// than other names because kernel file names carry versions.
    AssetName,
    "asset",
    128
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_rule_for_every_name() {
        for good in [
            "gw",
            "rpi4.lab",
            "linux-arm64-6.5.1",
            "initramfs.linux_arm64.cpio.xz",
        ] {
            assert!(good.parse::<ProfileName>().is_ok(), "{good}");
            assert!(good.parse::<AssetName>().is_ok(), "{good}");
        }
        for bad in ["", "..", ".hidden", "-x", "a/b", "a b", "é", "a\0"] {
            assert!(bad.parse::<ProfileName>().is_err(), "{bad:?}");
            assert!(bad.parse::<AssetName>().is_err(), "{bad:?}");
        }
        assert!("x".repeat(64).parse::<ProfileName>().is_err());
        assert!("x".repeat(128).parse::<AssetName>().is_ok());
        let err = "a b".parse::<ProfileName>().unwrap_err().to_string();
        assert!(err.starts_with("invalid profile name"), "{err}");
    }
}
