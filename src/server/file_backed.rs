//! A value loaded from one file and loaded again when the file changes: the
//! machine index (`registry.json`, so this decides when a revocation takes
//! effect), the shared-asset index and the served tree (`live.json`).
//!
//! A use costs one `stat`, never a read: the file is read again only when its
//! [`FileStamp`] differs from the one the value was loaded from, or when that
//! stamp was not trusted yet (see [`crate::fsutil::stamp`]), so a change is in
//! force from the next request on, whatever its size and times. The stamp kept
//! is the one of the descriptor whose bytes were parsed, and the new value is
//! swapped in with one pointer store: a request sees one version whole. A file
//! that cannot be loaded is logged, the last good value stays in force, and
//! the next use tries again.
//!
//! [Watched](FileBacked::watched_by), a use costs not even the `stat` while
//! the server's [`ChangeWatch`] reports no change since the last trusted
//! check of the file, made with the file and its folders already watched.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use anyhow::{Context, Result};
use arc_swap::ArcSwap;

use crate::fsutil::stamp::{FileStamp, TRUST_AFTER};
use crate::fsutil::watch::{self, ChangeWatch, Seen};

/// Turns the file's bytes (`None`: there is no file) into the value.
type Loader<T> = Box<dyn Fn(Option<&[u8]>) -> Result<T> + Send + Sync>;

pub struct FileBacked<T> {
    path: PathBuf,
    /// What the file holds, for the log ("registry").
    what: &'static str,
    load: Loader<T>,
    /// What a newly loaded value holds, for the log ("3 machines").
    describe: fn(&T) -> String,
    trust_after: Duration,
    current: ArcSwap<T>,
    loaded_from: Mutex<Version>,
    /// The watch and the paths it must cover: the folders from the data
    /// directory down, and the file.
    watch: Option<(Arc<ChangeWatch>, Vec<PathBuf>)>,
    /// The generation of changes in which a trusted check found the file
    /// covered by the watch (0: none yet).
    valid_in: AtomicU64,
}

/// The version of the file the current value was loaded from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Version {
    /// `None`: there was no file.
    stamp: Option<FileStamp>,
    /// Whether any later change is sure to give another stamp.
    trusted: bool,
}

impl<T> FileBacked<T> {
    /// Loads the value now; unlike a later reload, a failure is an error.
    pub fn load(
        path: PathBuf,
        what: &'static str,
        load: impl Fn(Option<&[u8]>) -> Result<T> + Send + Sync + 'static,
        describe: fn(&T) -> String,
    ) -> Result<Self> {
        Self::with_trust_after(path, what, Box::new(load), describe, TRUST_AFTER)
    }

    fn with_trust_after(
        path: PathBuf,
        what: &'static str,
        load: Loader<T>,
        describe: fn(&T) -> String,
        trust_after: Duration,
    ) -> Result<Self> {
        let (version, value) = read(&path, &load, trust_after)?;
        Ok(Self {
            path,
            what,
            load,
            describe,
            trust_after,
            current: ArcSwap::from_pointee(value),
            loaded_from: Mutex::new(version),
            watch: None,
            valid_in: AtomicU64::new(0),
        })
    }

    /// Lets `watch` (if any) tell when the file may have changed; `root` is
    /// the folder the file lies beneath (the data directory).
    pub fn watched_by(mut self, watch: Option<&Arc<ChangeWatch>>, root: &Path) -> Self {
        self.watch = watch.map(|watch| (watch.clone(), watch::chain(root, &self.path)));
        self
    }

    /// The value as of now: loaded again first if the file changed.
    pub fn current(&self) -> Arc<T> {
        let seen = self.watch.as_ref().map(|(watch, _)| watch.observe());
        self.current_as_of(seen)
    }

    /// The value as of `seen` (taken by the caller from the same watch; `None`
    /// when the caller did not look, and then this looks): as it is when no
    /// change was reported since a trusted, covered check; checked (and
    /// loaded again if the file changed) otherwise.
    pub fn current_as_of(&self, seen: Option<Seen>) -> Arc<T> {
        let Some((watch, chain)) = &self.watch else {
            return self.checked().0;
        };
        let seen = seen.unwrap_or_else(|| watch.observe());
        if self.valid_in.load(Ordering::Acquire) == seen.generation {
            return self.current.load_full();
        }
        let (value, trusted) = self.checked();
        if trusted && watch.covered(seen, std::slice::from_ref(chain)) {
            self.valid_in.store(seen.generation, Ordering::Release);
        }
        value
    }

    /// The value after a look at the file's stamp, and whether the version
    /// it was loaded from is trusted (old enough that a change would move
    /// its stamp).
    fn checked(&self) -> (Arc<T>, bool) {
        let stamp = FileStamp::of_path(&self.path);
        // One reload at a time; the others wait for it rather than read too.
        let mut loaded_from = self.loaded_from.lock().unwrap_or_else(|e| e.into_inner());
        if loaded_from.stamp != stamp || !loaded_from.trusted {
            match read(&self.path, &self.load, self.trust_after) {
                Ok((version, value)) => {
                    if version.stamp != loaded_from.stamp {
                        let now = (self.describe)(&value);
                        tracing::info!("{} changed; reloaded: {now}", self.what);
                    }
                    self.current.store(Arc::new(value));
                    *loaded_from = version;
                }
                Err(err) => tracing::error!(
                    "{} changed but cannot be loaded, keeping the previous one: {err:#}",
                    self.what
                ),
            }
        }
        (self.current.load_full(), loaded_from.trusted)
    }
}

/// Reads and loads the file, stamped with the descriptor that was read.
fn read<T>(path: &Path, load: &Loader<T>, trust_after: Duration) -> Result<(Version, T)> {
    let context = || format!("loading {}", path.display());
    let mut file = match File::open(path) {
        Ok(file) => file,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
            let version = Version {
                stamp: None,
                trusted: true,
            };
            return Ok((version, load(None).with_context(context)?));
        }
        Err(err) => return Err(err).with_context(context),
    };
    let stamp = FileStamp::of(&file.metadata().with_context(context)?);
    // Taken before reading: a change made while reading falls in an
    // untrusted stamp's window, or moves the stamp.
    let trusted = stamp.is_trusted(SystemTime::now(), trust_after);
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes).with_context(context)?;
    let value = load(Some(&bytes)).with_context(context)?;
    let version = Version {
        stamp: Some(stamp),
        trusted,
    };
    Ok((version, value))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fsutil::stamp::testing::{rename_over, rewrite_in_place, wait_for_the_file_clock};
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// The file's text, counting the loads.
    fn text_of(path: &Path, loads: Arc<AtomicUsize>, trust_after: Duration) -> FileBacked<String> {
        let load = move |bytes: Option<&[u8]>| {
            loads.fetch_add(1, Ordering::SeqCst);
            match bytes {
                Some(b"bad") => anyhow::bail!("bad content"),
                Some(bytes) => Ok(String::from_utf8(bytes.to_vec())?),
                None => Ok("(none)".to_string()),
            }
        };
        FileBacked::with_trust_after(
            path.to_path_buf(),
            "test file",
            Box::new(load),
            String::clone,
            trust_after,
        )
        .unwrap()
    }

    #[test]
    fn a_trusted_file_is_read_once_and_again_after_any_change() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("registry.json");
        let loads = Arc::new(AtomicUsize::new(0));
        let file = text_of(&path, loads.clone(), Duration::ZERO);
        assert_eq!(*file.current(), "(none)");

        std::fs::write(&path, "one").unwrap();
        let mtime = std::fs::metadata(&path).unwrap().modified().unwrap();
        assert_eq!(*file.current(), "one");
        let first = file.current();
        assert!(Arc::ptr_eq(&first, &file.current()));
        let read = loads.load(Ordering::SeqCst);

        // Same size, same mtime, same inode: only the ctime tells.
        wait_for_the_file_clock(&path);
        rewrite_in_place(&path, "two", mtime);
        assert_eq!(*file.current(), "two");

        // Same size, same mtime, renamed over.
        wait_for_the_file_clock(&path);
        rename_over(&path, "six", mtime);
        assert_eq!(*file.current(), "six");
        assert_eq!(*file.current(), "six");
        assert_eq!(loads.load(Ordering::SeqCst), read + 2);

        std::fs::remove_file(&path).unwrap();
        assert_eq!(*file.current(), "(none)");
    }

    #[test]
    fn a_file_changed_just_now_is_read_again_until_trusted() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("registry.json");
        std::fs::write(&path, "one").unwrap();
        let mtime = std::fs::metadata(&path).unwrap().modified().unwrap();
        let file = text_of(&path, Arc::default(), TRUST_AFTER);
        // Rewritten within the same tick of the file clock, most likely: the
        // stamp may not change, the value must.
        for text in ["two", "six", "ten"] {
            rewrite_in_place(&path, text, mtime);
            assert_eq!(*file.current(), text);
        }
    }

    #[test]
    fn a_watched_file_is_taken_as_is_until_a_change_is_reported() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("registry.json");
        std::fs::write(&path, "one").unwrap();
        let watch = Arc::new(ChangeWatch::new().unwrap());
        let file =
            text_of(&path, Arc::default(), Duration::ZERO).watched_by(Some(&watch), tmp.path());
        // Checked and watched, then checked and covered: settled.
        assert_eq!(*file.current(), "one");
        assert_eq!(*file.current(), "one");
        let seen = watch.observe();
        assert_eq!(file.valid_in.load(Ordering::SeqCst), seen.generation);
        let kept = file.current_as_of(Some(seen));
        assert!(Arc::ptr_eq(&kept, &file.current()));

        // Same size, same mtime, in place: the watch reports it.
        let mtime = std::fs::metadata(&path).unwrap().modified().unwrap();
        rewrite_in_place(&path, "two", mtime);
        assert_eq!(*file.current(), "two");
        rename_over(&path, "six", mtime);
        assert_eq!(*file.current(), "six");
        std::fs::remove_file(&path).unwrap();
        assert_eq!(*file.current(), "(none)");
    }

    #[test]
    fn a_file_that_cannot_be_loaded_keeps_the_last_good_value() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("index.json");
        std::fs::write(&path, "good").unwrap();
        let file = text_of(&path, Arc::default(), Duration::ZERO);
        std::fs::write(&path, "bad").unwrap();
        assert_eq!(*file.current(), "good");
        assert_eq!(*file.current(), "good");
        std::fs::write(&path, "fixed").unwrap();
        assert_eq!(*file.current(), "fixed");

        std::fs::write(&path, "bad").unwrap();
        let err = FileBacked::load(
            path.clone(),
            "test file",
            |_| -> Result<()> { anyhow::bail!("bad content") },
            |()| String::new(),
        )
        .err()
        .unwrap();
        assert!(format!("{err:#}").contains("loading"), "{err:#}");
    }
}
