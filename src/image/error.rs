//! Failures of an image build that a caller may want to tell apart (tests,
//! scripts branching on them); everything else is an `anyhow` error with
//! context.

use std::fmt;
use std::path::PathBuf;

use thiserror::Error;

use crate::disk::Size;

#[derive(Debug, Error)]
pub enum ImageError {
    #[error(
        "unknown platform {name:?}; known platforms: {known} (`bootgate image platforms` describes them)"
    )]
    UnknownPlatform { name: String, known: String },

    #[error(
        "machine {machine:?} was revoked at {since}; its certificate would be refused, so no image is built for it (enroll a new machine instead)"
    )]
    Revoked { machine: String, since: String },

    #[error("{} already exists; pass --force to replace it", path.display())]
    OutputExists { path: PathBuf },

    #[error("an image of {given} is too small: this one needs at least {needed} ({detail})", given = Size(*given), needed = Size(*needed))]
    TooSmall {
        needed: u64,
        given: u64,
        detail: String,
    },

    #[error("{}", MissingList(.0))]
    FirmwareMissing(Vec<MissingFirmware>),
}

/// A firmware file that was looked for and not found.
#[derive(Debug, Clone)]
pub struct MissingFirmware {
    /// Path relative to a firmware folder, e.g. `ipxe/ipxe-arm64.efi`.
    pub file: String,
    /// The Debian package that ships it.
    pub package: String,
    /// Every path tried.
    pub searched: Vec<PathBuf>,
}

/// Packages Debian builds for arm64 only (no `all` version to install on x86).
const ARM64_ONLY: &[&str] = &["u-boot-rpi", "linux-image-arm64"];

struct MissingList<'a>(&'a [MissingFirmware]);

impl fmt::Display for MissingList<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut packages: Vec<&str> = self.0.iter().map(|m| m.package.as_str()).collect();
        packages.sort_unstable();
        packages.dedup();
        writeln!(f, "missing firmware files:")?;
        for m in self.0 {
            writeln!(f, "  {} (Debian package {}); looked in:", m.file, m.package)?;
            for path in &m.searched {
                writeln!(f, "    {}", path.display())?;
            }
        }
        let (native, arm64): (Vec<&str>, Vec<&str>) =
            packages.iter().partition(|p| !ARM64_ONLY.contains(p));
        write!(f, "to get them")?;
        if !native.is_empty() {
            write!(
                f,
                ", on Debian trixie or newer: `apt install {}`",
                native.join(" ")
            )?;
            if native.contains(&"raspi-firmware") {
                write!(f, " (raspi-firmware is in the non-free-firmware component)")?;
            }
        }
        if !arm64.is_empty() {
            let specs: Vec<String> = arm64.iter().map(|p| format!("{p}:arm64")).collect();
            write!(
                f,
                "; {} built for arm64: on an arm64 host `apt install` them, elsewhere \
                 `apt-get download {}` and unpack with `dpkg-deb -x PACKAGE.deb DIR`",
                if arm64.len() == 1 {
                    "this package is only"
                } else {
                    "these packages are only"
                },
                specs.join(" ")
            )?;
        }
        write!(
            f,
            "; then pass --firmware-dir DIR or set BOOTGATE_FIRMWARE to a folder laid out like /usr/lib \
             (in a bootgate checkout, scripts/fetch-firmware fetches all of them into .cache/firmware)"
        )
    }
}
