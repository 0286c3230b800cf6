//! Small files read on every boot-script request (`boot.ipxe`, `vars.toml`),
//! kept in memory as parsed and re-read only when they change. A request
//! costs one open + `fstat` + close per file instead of open + read + close
//! (+ parse); a file edited on the server is used from the next request on,
//! as before. Files are opened beneath their folder
//! ([`crate::fsutil::beneath`]) and the stamp compared is the opened file's,
//! so a cached text is only ever used for the very file that was opened.
//!
//! "Changed" is decided by [`FileStamp`], the one rule for every file the
//! server keeps loaded: a stamp taken less than [`TRUST_AFTER`] after the
//! file changed is not trusted, so such a file is not kept.

use std::collections::HashMap;
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use anyhow::Context;

use crate::fsutil::beneath::Dir;
use crate::fsutil::stamp::{FileStamp, TRUST_AFTER};

/// Beyond this many files the cache starts over: a bound, not a policy
/// (two files per machine folder).
const MAX_ENTRIES: usize = 8192;

/// Files parsed into `T` by one function.
pub struct FileCache<T> {
    parse: fn(String) -> anyhow::Result<T>,
    trust_after: Duration,
    entries: Mutex<HashMap<PathBuf, (FileStamp, Arc<T>)>>,
}

impl<T> FileCache<T> {
    pub fn new(parse: fn(String) -> anyhow::Result<T>) -> Self {
        Self {
            parse,
            trust_after: TRUST_AFTER,
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// The file `name` beneath `folder`, parsed; `None` if it does not exist.
    pub fn get(&self, folder: &Dir, name: &str) -> anyhow::Result<Option<Arc<T>>> {
        let path = folder.path().join(name);
        let reading = || format!("reading {}", path.display());
        let (file, meta) = match folder.open_file(Path::new(name)) {
            Ok(opened) => opened,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(err) => return Err(err).with_context(reading),
        };
        let stamp = FileStamp::of(&meta);
        if let Some((known, value)) = self.lock().get(&path)
            && *known == stamp
        {
            return Ok(Some(value.clone()));
        }
        let trusted = stamp.is_trusted(SystemTime::now(), self.trust_after);
        self.load(path, file, stamp, trusted).map(Some)
    }

    /// Reads and parses the opened `file`, whose stamp is `stamp`, keeping
    /// it if that stamp was trusted when taken: if the file changes
    /// meanwhile, the next request sees another stamp and reads it again.
    fn load(
        &self,
        path: PathBuf,
        mut file: File,
        stamp: FileStamp,
        trusted: bool,
    ) -> anyhow::Result<Arc<T>> {
        let mut text = String::new();
        file.read_to_string(&mut text)
            .with_context(|| format!("reading {}", path.display()))?;
        let value =
            Arc::new((self.parse)(text).with_context(|| format!("parsing {}", path.display()))?);
        if !trusted {
            return Ok(value);
        }
        let mut entries = self.lock();
        if entries.len() >= MAX_ENTRIES {
            entries.clear();
        }
        entries.insert(path, (stamp, value.clone()));
        Ok(value)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<PathBuf, (FileStamp, Arc<T>)>> {
        // A panic while holding the lock leaves a consistent map.
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fsutil::stamp::testing::{rewrite_in_place, wait_for_the_file_clock};

    fn folder(tmp: &tempfile::TempDir) -> Dir {
        Dir::open(tmp.path()).unwrap()
    }

    fn trusted_at_once() -> FileCache<String> {
        FileCache {
            trust_after: Duration::ZERO,
            ..FileCache::new(Ok)
        }
    }

    #[test]
    fn keeps_a_file_until_it_changes() {
        let tmp = tempfile::tempdir().unwrap();
        const NAME: &str = "boot.ipxe";
        let path = tmp.path().join(NAME);
        let folder = folder(&tmp);
        let cache = trusted_at_once();
        assert!(cache.get(&folder, NAME).unwrap().is_none());

        std::fs::write(&path, "one").unwrap();
        let first = cache.get(&folder, NAME).unwrap().unwrap();
        assert_eq!(*first, "one");
        assert!(Arc::ptr_eq(
            &first,
            &cache.get(&folder, NAME).unwrap().unwrap()
        ));

        std::fs::write(&path, "three").unwrap();
        assert_eq!(*cache.get(&folder, NAME).unwrap().unwrap(), "three");

        // Same size and mtime put back, as `cp -p` would: the ctime differs.
        let mtime = std::fs::metadata(&path).unwrap().modified().unwrap();
        wait_for_the_file_clock(&path);
        rewrite_in_place(&path, "seven", mtime);
        assert_eq!(*cache.get(&folder, NAME).unwrap().unwrap(), "seven");

        std::fs::remove_file(&path).unwrap();
        assert!(cache.get(&folder, NAME).unwrap().is_none());
    }

    #[test]
    fn a_file_changed_just_now_is_read_again() {
        let tmp = tempfile::tempdir().unwrap();
        const NAME: &str = "boot.ipxe";
        let path = tmp.path().join(NAME);
        let folder = folder(&tmp);
        let cache = FileCache::new(Ok);
        // Same size, within one tick of the file clock: the stamp may not
        // change, the content must.
        for text in ["one", "two", "six"] {
            std::fs::write(&path, text).unwrap();
            assert_eq!(*cache.get(&folder, NAME).unwrap().unwrap(), text);
        }
    }

    #[test]
    fn a_link_leading_outside_is_never_read() {
        let tmp = tempfile::tempdir().unwrap();
        let inside = tmp.path().join("folder");
        std::fs::create_dir(&inside).unwrap();
        std::fs::write(tmp.path().join("ca.key"), "SECRET").unwrap();
        std::os::unix::fs::symlink("../ca.key", inside.join("boot.ipxe")).unwrap();
        let cache = trusted_at_once();
        let err = cache
            .get(&Dir::open(&inside).unwrap(), "boot.ipxe")
            .unwrap_err();
        assert!(format!("{err:#}").contains("leads outside"), "{err:#}");
        assert!(!format!("{err:#}").contains("SECRET"));
    }

    #[test]
    fn parse_errors_are_reported_and_not_kept() {
        let tmp = tempfile::tempdir().unwrap();
        const NAME: &str = "vars.toml";
        let path = tmp.path().join(NAME);
        let folder = folder(&tmp);
        let cache = FileCache::new(|text: String| crate::server::parse_vars(&text));
        std::fs::write(&path, "not toml").unwrap();
        let err = cache.get(&folder, NAME).unwrap_err();
        assert!(format!("{err:#}").contains("parsing"), "{err:#}");
        std::fs::write(&path, "role = \"gw\"\n").unwrap();
        assert_eq!(cache.get(&folder, NAME).unwrap().unwrap()["role"], "gw");
    }
}
