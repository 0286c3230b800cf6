//! Finding firmware files: each `--firmware-dir DIR`, then each folder of
//! `BOOTGATE_FIRMWARE` (colon-separated; the older name `BOOTGATE_ASSETS` is
//! still read, after it), then `/usr/lib`, all laid out like a
//! distribution's `/usr/lib` (`ipxe/ipxe-amd64.efi`, `u-boot/rpi_arm64/u-boot.bin`,
//! `raspi-firmware/start4.elf`, `linux-image-*/broadcom/*.dtb`).

use std::cmp::Ordering;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

use super::error::{ImageError, MissingFirmware};
use super::platform::{FirmwareFile, Platform};

/// Environment variable listing extra firmware folders.
pub const FIRMWARE_ENV: &str = "BOOTGATE_FIRMWARE";
/// The former name of [`FIRMWARE_ENV`], still read (after it) so existing
/// setups keep working.
pub const LEGACY_FIRMWARE_ENV: &str = "BOOTGATE_ASSETS";
/// Where a distribution installs the packages' files.
pub const SYSTEM_FIRMWARE: &str = "/usr/lib";

/// The ordered list of folders searched for firmware files.
#[derive(Debug, Clone)]
pub struct FirmwareSearch {
    roots: Vec<PathBuf>,
}

/// A firmware file found on disk.
#[derive(Debug, Clone)]
pub struct FoundFirmware {
    pub file: FirmwareFile,
    pub path: PathBuf,
    pub len: u64,
}

impl FirmwareSearch {
    /// `--firmware-dir` folders, then `$BOOTGATE_FIRMWARE`, then
    /// `$BOOTGATE_ASSETS`, then `/usr/lib`.
    pub fn new(explicit: &[PathBuf]) -> Self {
        let env = [FIRMWARE_ENV, LEGACY_FIRMWARE_ENV]
            .into_iter()
            .filter_map(std::env::var_os);
        Self::with_env(explicit, env)
    }

    /// As [`FirmwareSearch::new`] with the environment variables' values
    /// given, in search order.
    pub fn with_env(explicit: &[PathBuf], env: impl IntoIterator<Item = OsString>) -> Self {
        let mut roots: Vec<PathBuf> = explicit.to_vec();
        for value in env {
            roots.extend(std::env::split_paths(&value).filter(|p| !p.as_os_str().is_empty()));
        }
        roots.push(PathBuf::from(SYSTEM_FIRMWARE));
        Self { roots }
    }

    /// Exactly these folders, in this order.
    pub fn from_roots(roots: Vec<PathBuf>) -> Self {
        Self { roots }
    }

    pub fn roots(&self) -> &[PathBuf] {
        &self.roots
    }

    /// The first match of `source` under the roots, or every path tried.
    pub fn find(&self, source: &str) -> Result<PathBuf, Vec<PathBuf>> {
        let mut searched = Vec::new();
        for root in &self.roots {
            match source.split_once('/') {
                Some((first, rest)) if first.ends_with('*') => {
                    let prefix = first.trim_end_matches('*');
                    for dir in matching_dirs(root, prefix) {
                        let candidate = dir.join(rest);
                        if candidate.is_file() {
                            return Ok(candidate);
                        }
                    }
                    searched.push(root.join(source));
                }
                _ => {
                    let candidate = root.join(source);
                    if candidate.is_file() {
                        return Ok(candidate);
                    }
                    searched.push(candidate);
                }
            }
        }
        Err(searched)
    }

    /// Finds every firmware file `platform` needs, or reports all the missing
    /// ones at once.
    pub fn resolve(&self, platform: Platform) -> Result<Vec<FoundFirmware>, ImageError> {
        let mut found = Vec::new();
        let mut missing = Vec::new();
        for file in platform.firmware() {
            match self.find(file.source) {
                Ok(path) => {
                    let len = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
                    found.push(FoundFirmware {
                        file: *file,
                        path,
                        len,
                    });
                }
                Err(searched) => missing.push(MissingFirmware {
                    file: file.source.to_string(),
                    package: file.package.to_string(),
                    searched,
                }),
            }
        }
        if missing.is_empty() {
            Ok(found)
        } else {
            Err(ImageError::FirmwareMissing(missing))
        }
    }
}

/// Sub-folders of `root` whose name starts with `prefix`, newest version first.
fn matching_dirs(root: &Path, prefix: &str) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(root) else {
        return Vec::new();
    };
    let mut names: Vec<String> = entries
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|name| name.starts_with(prefix))
        .collect();
    names.sort_by(|a, b| version_cmp(b, a));
    names
        .into_iter()
        .map(|name| root.join(name))
        .filter(|p| p.is_dir())
        .collect()
}

/// Compares strings with runs of digits compared as numbers, so `6.12.10`
/// sorts after `6.12.9`.
fn version_cmp(a: &str, b: &str) -> Ordering {
    let (mut a, mut b) = (a.as_bytes(), b.as_bytes());
    loop {
        match (a.first(), b.first()) {
            (None, None) => return Ordering::Equal,
            (None, Some(_)) => return Ordering::Less,
            (Some(_), None) => return Ordering::Greater,
            (Some(x), Some(y)) if x.is_ascii_digit() && y.is_ascii_digit() => {
                let na = a.iter().take_while(|c| c.is_ascii_digit()).count();
                let nb = b.iter().take_while(|c| c.is_ascii_digit()).count();
                let (da, db) = (&a[..na], &b[..nb]);
                let trim = |d: &[u8]| -> usize { d.iter().take_while(|&&c| c == b'0').count() };
                let (da, db) = (&da[trim(da)..], &db[trim(db)..]);
                let ord = da.len().cmp(&db.len()).then_with(|| da.cmp(db));
                if ord != Ordering::Equal {
                    return ord;
                }
                a = &a[na..];
                b = &b[nb..];
            }
            (Some(x), Some(y)) => {
                if x != y {
                    return x.cmp(y);
                }
                a = &a[1..];
                b = &b[1..];
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    #[test]
    fn versions_sort_numerically() {
        assert_eq!(
            version_cmp("linux-image-6.12.10", "linux-image-6.12.9"),
            Ordering::Greater
        );
        assert_eq!(version_cmp("a1", "a01"), Ordering::Equal);
        assert_eq!(version_cmp("a", "a1"), Ordering::Less);
    }

    #[test]
    fn folders_of_each_variable_follow_the_explicit_ones_in_order() {
        let search = FirmwareSearch::with_env(
            &[PathBuf::from("/given")],
            [OsString::from("/new-a::/new-b"), OsString::from("/old")],
        );
        let roots: Vec<&Path> = search.roots().iter().map(PathBuf::as_path).collect();
        assert_eq!(
            roots,
            ["/given", "/new-a", "/new-b", "/old", "/usr/lib"].map(Path::new)
        );
    }

    #[test]
    fn searches_in_order_with_globs_and_reports_what_it_tried() {
        let first = tempfile::tempdir().unwrap();
        let second = tempfile::tempdir().unwrap();
        for (root, ver) in [
            (&first, "6.1.0-9"),
            (&second, "6.12.9"),
            (&second, "6.12.10"),
        ] {
            let dir = root
                .path()
                .join(format!("linux-image-{ver}-arm64/broadcom"));
            fs::create_dir_all(&dir).unwrap();
            fs::write(dir.join("bcm2711-rpi-4-b.dtb"), ver).unwrap();
        }
        fs::create_dir_all(second.path().join("ipxe")).unwrap();
        fs::write(second.path().join("ipxe/ipxe-arm64.efi"), "x").unwrap();

        let env = std::env::join_paths([second.path()]).unwrap();
        let search = FirmwareSearch::with_env(&[first.path().to_path_buf()], [env]);
        assert_eq!(search.roots().last().unwrap(), Path::new("/usr/lib"));

        let dtb = search
            .find("linux-image-*/broadcom/bcm2711-rpi-4-b.dtb")
            .unwrap();
        assert_eq!(
            fs::read_to_string(dtb).unwrap(),
            "6.1.0-9",
            "first root wins"
        );
        let only_second = FirmwareSearch::from_roots(vec![second.path().to_path_buf()]);
        let dtb = only_second
            .find("linux-image-*/broadcom/bcm2711-rpi-4-b.dtb")
            .unwrap();
        assert_eq!(
            fs::read_to_string(dtb).unwrap(),
            "6.12.10",
            "newest version wins"
        );

        let searched = search.find("u-boot/rpi_arm64/u-boot.bin").unwrap_err();
        assert_eq!(searched.len(), 3);
        assert_eq!(
            searched[0],
            first.path().join("u-boot/rpi_arm64/u-boot.bin")
        );

        let err = search.resolve(Platform::Rpi4).unwrap_err().to_string();
        assert!(
            err.contains("u-boot/rpi_arm64/u-boot.bin (Debian package u-boot-rpi)"),
            "{err}"
        );
        assert!(
            err.contains("raspi-firmware/start4.elf (Debian package raspi-firmware)"),
            "{err}"
        );
        assert!(!err.contains("ipxe/ipxe-arm64.efi"), "{err}");
        assert!(err.contains("`apt install raspi-firmware`"), "{err}");
        assert!(
            err.contains("apt-get download linux-image-arm64:arm64 u-boot-rpi:arm64"),
            "{err}"
        );
    }
}
