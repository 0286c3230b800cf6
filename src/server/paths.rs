//! Turning a request path into a file inside one machine's folder, refusing
//! everything that could reach outside it: `..` and `.` segments, empty
//! segments, percent-encoded slashes, backslashes or NULs, and symlinks whose
//! target lies outside the folder.

use std::path::{Path, PathBuf};

use percent_encoding::percent_decode_str;

use super::error::Refusal;

/// Files in a machine's folder that are never served as files: `secrets` is
/// only ever rendered once through `/secrets/<token>`, and `vars.toml` may hold
/// values meant only for rendering.
pub const PRIVATE_NAMES: [&str; 2] = ["secrets", "vars.toml"];

/// Splits and decodes the part of the URL path after `/files/`.
pub fn decode_segments(raw: &str) -> Result<Vec<String>, Refusal> {
    let bad = || Refusal::BadRequest("invalid file path".into());
    if raw.is_empty() {
        return Err(Refusal::NotFound);
    }
    raw.split('/')
        .map(|segment| {
            let decoded = percent_decode_str(segment)
                .decode_utf8()
                .map_err(|_| bad())?
                .into_owned();
            let forbidden = decoded.is_empty()
                || decoded == "."
                || decoded == ".."
                || decoded.contains(['/', '\\', '\0']);
            if forbidden { Err(bad()) } else { Ok(decoded) }
        })
        .collect()
}

/// Resolves `segments` under `root` and checks the real path (symlinks
/// followed) is still inside `root` and is a regular, servable file.
pub fn resolve_within(root: &Path, segments: &[String]) -> Result<PathBuf, Refusal> {
    let root = match root.canonicalize() {
        Ok(root) => root,
        Err(_) => return Err(Refusal::NotFound),
    };
    let mut candidate = root.clone();
    candidate.extend(segments);
    let real = candidate.canonicalize().map_err(|_| Refusal::NotFound)?;
    if !real.starts_with(&root) {
        tracing::warn!(
            "refused {}: it resolves outside {}",
            candidate.display(),
            root.display()
        );
        return Err(Refusal::NotFound);
    }
    if PRIVATE_NAMES.iter().any(|name| real == root.join(name)) {
        return Err(Refusal::NotFound);
    }
    Ok(real)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_and_refuses_traversal() {
        assert_eq!(decode_segments("a/b%20c").unwrap(), ["a", "b c"]);
        for bad in [
            "..", "a/../b", "%2e%2e", "%2E%2E/x", "a%2fb", "a%5cb", "a//b", "./a", "a/", "%00",
            "a/%2e",
        ] {
            assert!(decode_segments(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn symlinks_must_stay_inside() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("root");
        std::fs::create_dir(&root).unwrap();
        std::fs::write(root.join("kernel"), "k").unwrap();
        std::fs::write(root.join("secrets"), "s").unwrap();
        std::fs::write(tmp.path().join("outside"), "o").unwrap();
        std::os::unix::fs::symlink("kernel", root.join("alias")).unwrap();
        std::os::unix::fs::symlink("../outside", root.join("escape")).unwrap();
        std::os::unix::fs::symlink("secrets", root.join("leak")).unwrap();
        let ok = |p: &str| resolve_within(&root, &[p.to_string()]);
        assert!(ok("kernel").is_ok());
        assert!(ok("alias").is_ok());
        assert!(ok("escape").is_err());
        assert!(ok("secrets").is_err());
        assert!(ok("leak").is_err());
        assert!(ok("missing").is_err());
    }
}
