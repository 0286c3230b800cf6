//! Turning a request path into an opened file inside one machine's folder,
//! refusing everything that could reach outside it: `..` and `.` segments,
//! empty segments, percent-encoded slashes, backslashes or NULs, and symlinks
//! whose target lies outside the folder. The file is opened beneath the
//! folder's descriptor ([`crate::fsutil::beneath`]), so what is served is what
//! was checked, whatever changes on disk meanwhile.

use std::fs::{File, Metadata};
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;

use percent_encoding::percent_decode_str;

use super::error::Refusal;
use crate::datadir::{NEVER_SERVED, is_never_served};
use crate::fsutil::beneath::{self, Dir};

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

/// Opens `segments` beneath `folder` as a regular, servable file. Symlinks
/// may point anywhere inside the folder, but never at its
/// [never-served](NEVER_SERVED) files.
pub fn open_within(folder: &Dir, segments: &[String]) -> Result<(File, Metadata), Refusal> {
    if let [name] = segments
        && is_never_served(name)
    {
        return Err(Refusal::NotFound);
    }
    let relative: PathBuf = segments.iter().collect();
    let (file, meta) = folder.open_file(&relative).map_err(|err| {
        if beneath::is_escape(&err) {
            tracing::warn!("refused a request: {err}");
        }
        Refusal::NotFound
    })?;
    let opened = (meta.dev(), meta.ino());
    if NEVER_SERVED
        .iter()
        .any(|name| folder.entry_id(name) == Some(opened))
    {
        return Err(Refusal::NotFound);
    }
    Ok((file, meta))
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
        std::fs::write(tmp.path().join("outside"), "o").unwrap();
        std::os::unix::fs::symlink("kernel", root.join("alias")).unwrap();
        std::os::unix::fs::symlink("../outside", root.join("escape")).unwrap();
        let folder = Dir::open(&root).unwrap();
        let ok = |p: &str| open_within(&folder, &[p.to_string()]);
        assert!(ok("kernel").is_ok());
        assert!(ok("alias").is_ok());
        assert!(ok("escape").is_err());
        assert!(ok("missing").is_err());
    }

    #[test]
    fn never_served_names_are_refused_directly_and_through_links() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        std::fs::create_dir(root.join("sub")).unwrap();
        for name in NEVER_SERVED {
            std::fs::write(root.join(name), "private").unwrap();
            std::os::unix::fs::symlink(name, root.join(format!("{name}-leak"))).unwrap();
            let up = root.join("sub").join(format!("{name}-up"));
            std::os::unix::fs::symlink(format!("../{name}"), up).unwrap();
        }
        let folder = Dir::open(root).unwrap();
        let open = |segments: &[&str]| {
            let segments: Vec<String> = segments.iter().map(|s| s.to_string()).collect();
            open_within(&folder, &segments)
        };
        for name in NEVER_SERVED {
            assert!(open(&[name]).is_err(), "{name}");
            assert!(open(&[&format!("{name}-leak")]).is_err(), "{name}-leak");
            assert!(
                open(&["sub", &format!("{name}-up")]).is_err(),
                "sub/{name}-up"
            );
        }
    }
}
