//! Byte sizes as people type them: `64M`, `8G`, `512MiB`, `1048576`.
//!
//! Like coreutils (`truncate -s`, `dd`): `K`, `M`, `G`, `T` and their `KiB`...
//! spellings are powers of 1024; `KB`, `MB`, `GB`, `TB` are powers of 1000.

use std::fmt;
use std::str::FromStr;

use anyhow::{Context, Result, bail};

/// A size in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Size(pub u64);

impl Size {
    pub const KIB: u64 = 1 << 10;
    pub const MIB: u64 = 1 << 20;
    pub const GIB: u64 = 1 << 30;
    pub const TIB: u64 = 1 << 40;

    pub const fn bytes(self) -> u64 {
        self.0
    }

    pub const fn mib(n: u64) -> Self {
        Self(n * Self::MIB)
    }
}

impl FromStr for Size {
    type Err = anyhow::Error;

    fn from_str(s: &str) -> Result<Self> {
        let text = s.trim();
        let split = text
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(text.len());
        let (digits, unit) = text.split_at(split);
        if digits.is_empty() {
            bail!(
                "invalid size {s:?}: expected a number with an optional unit, e.g. 64M, 8G, 512MiB"
            );
        }
        let number: u64 = digits
            .parse()
            .with_context(|| format!("invalid size {s:?}: number too large"))?;
        let multiplier: u64 = match unit.trim() {
            "" | "B" => 1,
            "K" | "k" | "KiB" => Self::KIB,
            "M" | "MiB" => Self::MIB,
            "G" | "GiB" => Self::GIB,
            "T" | "TiB" => Self::TIB,
            "KB" | "kB" => 1_000,
            "MB" => 1_000_000,
            "GB" => 1_000_000_000,
            "TB" => 1_000_000_000_000,
            other => bail!(
                "invalid size {s:?}: unknown unit {other:?} (use K, M, G, T or KiB, MiB, GiB, TiB for powers of 1024; KB, MB, GB, TB for powers of 1000)"
            ),
        };
        let bytes = number
            .checked_mul(multiplier)
            .with_context(|| format!("invalid size {s:?}: too large"))?;
        Ok(Self(bytes))
    }
}

impl fmt::Display for Size {
    /// Exact when the size is a whole number of a binary unit, else one decimal.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.0;
        for (unit, name) in [
            (Self::TIB, "TiB"),
            (Self::GIB, "GiB"),
            (Self::MIB, "MiB"),
            (Self::KIB, "KiB"),
        ] {
            if b >= unit {
                return if b.is_multiple_of(unit) {
                    write!(f, "{} {name}", b / unit)
                } else {
                    write!(f, "{:.1} {name}", b as f64 / unit as f64)
                };
            }
        }
        write!(f, "{b} B")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_binary_and_decimal_units() {
        let cases = [
            ("1048576", 1 << 20),
            ("512B", 512),
            ("64M", 64 << 20),
            ("64MiB", 64 << 20),
            ("8G", 8 << 30),
            ("8 GiB", 8 << 30),
            ("4k", 4096),
            ("1T", 1 << 40),
            ("100MB", 100_000_000),
            ("2GB", 2_000_000_000),
        ];
        for (text, bytes) in cases {
            assert_eq!(text.parse::<Size>().unwrap(), Size(bytes), "{text}");
        }
        for bad in [
            "",
            "M",
            "-1M",
            "1.5G",
            "12X",
            "99999999999999999999",
            "20000000T",
        ] {
            assert!(bad.parse::<Size>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn displays_readably() {
        assert_eq!(Size(64 << 20).to_string(), "64 MiB");
        assert_eq!(Size(8 << 30).to_string(), "8 GiB");
        assert_eq!(Size(1536).to_string(), "1.5 KiB");
        assert_eq!(Size(100).to_string(), "100 B");
    }
}
