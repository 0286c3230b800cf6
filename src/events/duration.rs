//! Durations as people type and read them: `90s`, `10m`, `2h`, `7d`, `1h30m`
//! in, `3m ago` out.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use anyhow::Result;

/// A duration given on the command line (`--since 2h`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span(pub Duration);

impl FromStr for Span {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> Result<Self> {
        let invalid = || {
            anyhow::anyhow!(
                "invalid duration {s:?}: use a number and a unit, s, m, h, d or w (e.g. 90s, 10m, 2h, 7d, 1h30m)"
            )
        };
        let mut total: u64 = 0;
        let mut digits = String::new();
        for c in s.trim().chars() {
            if c.is_ascii_digit() {
                digits.push(c);
                continue;
            }
            let unit = match c {
                's' => 1,
                'm' => 60,
                'h' => 3600,
                'd' => 86_400,
                'w' => 7 * 86_400,
                _ => return Err(invalid()),
            };
            let n: u64 = digits.parse().map_err(|_| invalid())?;
            total = n
                .checked_mul(unit)
                .and_then(|v| total.checked_add(v))
                .ok_or_else(invalid)?;
            digits.clear();
        }
        if !digits.is_empty() || s.trim().is_empty() {
            return Err(invalid());
        }
        Ok(Span(Duration::from_secs(total)))
    }
}

impl fmt::Display for Span {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&short(self.0))
    }
}

/// `45s`, `12m`, `3h`, `5d`: the largest unit that fits, rounded down.
pub fn short(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m", s / 60),
        3600..86_400 => format!("{}h", s / 3600),
        _ => format!("{}d", s / 86_400),
    }
}

/// `3m ago`.
pub fn ago(d: Duration) -> String {
    format!("{} ago", short(d))
}

/// `312 B`, `8.1 MiB`.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut value = n as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_what_people_type() {
        let secs = |s: &str| s.parse::<Span>().unwrap().0.as_secs();
        assert_eq!(secs("90s"), 90);
        assert_eq!(secs("10m"), 600);
        assert_eq!(secs("2h"), 7200);
        assert_eq!(secs("7d"), 7 * 86400);
        assert_eq!(secs("1w"), 7 * 86400);
        assert_eq!(secs("1h30m"), 5400);
        for bad in ["", "10", "m", "1x", "-1h", "1.5h", "99999999999999999999d"] {
            assert!(bad.parse::<Span>().is_err(), "{bad}");
        }
    }

    #[test]
    fn prints_short_forms() {
        assert_eq!(ago(Duration::from_secs(5)), "5s ago");
        assert_eq!(short(Duration::from_secs(600)), "10m");
        assert_eq!(short(Duration::from_secs(7300)), "2h");
        assert_eq!(short(Duration::from_secs(3 * 86400)), "3d");
        assert_eq!(bytes(312), "312 B");
        assert_eq!(bytes(8_500_000), "8.1 MiB");
    }
}
