//! The permission check `serve` runs before it starts: whoever can write into
//! the data directory can un-revoke a machine, replace the CA or rewrite boot
//! scripts, so bootgate refuses to serve a data directory that others can
//! write to. See `docs/security.md`.
//!
//! - Anything world-writable: refused.
//! - Group-writable state (the data directory itself, `bootgate.toml`,
//!   `registry.json`, `ca/`, `server/`, `machines/`, `assets/`, `events/`):
//!   refused.
//! - Group-writable content in `files/` and `profiles/`: allowed with a
//!   warning, for sites whose operators' group edits boot scripts. Those
//!   folders are only ever read beneath themselves, so a group member can
//!   change what machines boot, never what else the server reads.
//!
//! Symlinks are not followed (their own mode means nothing).

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

use anyhow::{Context, Result, bail};

use crate::datadir::DataDir;

const GROUP_WRITE: u32 = 0o020;
const WORLD_WRITE: u32 = 0o002;
/// Most offending paths named in a message.
const SHOWN: usize = 5;

/// What the check found.
#[derive(Debug, Default)]
pub struct Findings {
    /// Writable by others where that is never acceptable.
    pub refused: Vec<PathBuf>,
    /// Group-writable editor content.
    pub group_writable_content: Vec<PathBuf>,
}

/// Walks the data directory and sorts what others can write to.
pub fn inspect(dir: &DataDir) -> Result<Findings> {
    let mut findings = Findings::default();
    let root = dir.root();
    let content = [dir.files_dir(), dir.profiles_dir()];
    let mut stack = vec![root.to_path_buf()];
    while let Some(path) = stack.pop() {
        let meta = match std::fs::symlink_metadata(&path) {
            Ok(meta) => meta,
            // Removed while walking: nothing to judge.
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => continue,
            Err(err) => return Err(err).with_context(|| format!("inspecting {}", path.display())),
        };
        if meta.file_type().is_symlink() {
            continue;
        }
        let mode = meta.permissions().mode();
        let in_content = path != root && content.iter().any(|c| path.starts_with(c));
        if mode & WORLD_WRITE != 0 || (mode & GROUP_WRITE != 0 && !in_content) {
            findings.refused.push(path.clone());
        } else if mode & GROUP_WRITE != 0 {
            findings.group_writable_content.push(path.clone());
        }
        if meta.is_dir() {
            let entries =
                std::fs::read_dir(&path).with_context(|| format!("listing {}", path.display()))?;
            for entry in entries {
                stack.push(
                    entry
                        .with_context(|| format!("listing {}", path.display()))?
                        .path(),
                );
            }
        }
    }
    findings.refused.sort();
    findings.group_writable_content.sort();
    Ok(findings)
}

/// Refuses a data directory others can write to; returns a warning for
/// group-writable editor content.
pub fn check(dir: &DataDir) -> Result<Option<String>> {
    let findings = inspect(dir)?;
    if !findings.refused.is_empty() {
        bail!(
            "refusing to serve: {} can be written by other users ({}); run `chmod -R g-w,o-w {}` (bootgate sets 0750 folders and 0640/0600 files; see docs/security.md)",
            list(&findings.refused),
            if findings.refused.len() == 1 {
                "it"
            } else {
                "they"
            },
            dir.root().display()
        );
    }
    Ok((!findings.group_writable_content.is_empty()).then(|| {
        format!(
            "{} can be written by the data directory's group: its members can change what machines boot",
            list(&findings.group_writable_content)
        )
    }))
}

fn list(paths: &[PathBuf]) -> String {
    let shown: Vec<String> = paths
        .iter()
        .take(SHOWN)
        .map(|p| p.display().to_string())
        .collect();
    match paths.len() {
        n if n > SHOWN => format!("{} and {} more", shown.join(", "), n - SHOWN),
        _ => shown.join(", "),
    }
}

#[cfg(test)]
mod tests {
    use std::fs::{self, Permissions};
    use std::path::Path;

    use super::*;

    fn chmod(path: &Path, mode: u32) {
        fs::set_permissions(path, Permissions::from_mode(mode)).unwrap();
    }

    #[test]
    fn sorts_what_others_can_write() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = DataDir::new(tmp.path().join("data"));
        fs::create_dir_all(dir.default_files_dir()).unwrap();
        fs::create_dir_all(dir.ca_dir()).unwrap();
        fs::write(dir.registry_path(), "{}").unwrap();
        fs::write(dir.default_script_path(), "#!ipxe").unwrap();
        for path in [
            dir.root(),
            &dir.files_dir(),
            &dir.default_files_dir(),
            &dir.ca_dir(),
        ] {
            chmod(path, 0o750);
        }
        chmod(&dir.registry_path(), 0o640);
        chmod(&dir.default_script_path(), 0o640);
        std::os::unix::fs::symlink("/tmp", dir.files_dir().join("link")).unwrap();
        assert!(check(&dir).unwrap().is_none());

        chmod(&dir.default_files_dir(), 0o770);
        let warning = check(&dir).unwrap().unwrap();
        assert!(warning.contains("default"), "{warning}");

        chmod(&dir.registry_path(), 0o660);
        let err = check(&dir).unwrap_err().to_string();
        assert!(
            err.contains("registry.json") && err.contains("chmod"),
            "{err}"
        );
        chmod(&dir.registry_path(), 0o640);

        chmod(&dir.default_script_path(), 0o646);
        let err = check(&dir).unwrap_err().to_string();
        assert!(err.contains("boot.ipxe"), "{err}");
    }
}
