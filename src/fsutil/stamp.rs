//! Telling one version of a file from the next without reading it: the one
//! rule used wherever bootgate keeps something loaded from a file (the machine
//! registry, the asset index, `live.json`, boot scripts and `vars.toml`) and
//! for the ETag of a served file.
//!
//! A [`FileStamp`] is the device, inode, size, mtime and ctime (both in ns).
//! Every way of changing a file moves at least one of them: replacing it
//! (editors, `write_atomic`, `rsync`) gives a new inode, or, if a freed inode
//! number is reused, a new ctime; rewriting it in place moves the mtime and
//! ctime, and tools that put an old mtime back (`cp -p`, `rsync -t`, `touch
//! -r`) still move the ctime, which nobody can set.
//!
//! The one gap is the clock: file times come from a coarse clock (a few ms),
//! so two same-size writes in one tick can leave equal stamps. As git does
//! with "racily clean" files, a stamp is [trusted](FileStamp::is_trusted)
//! only if its ctime lies at least [`TRUST_AFTER`] before the moment it was
//! taken; until then, whoever holds a copy reads the file again. The ctime
//! alone decides (not the mtime, which can be set to the future and would
//! then never be trusted).

use std::fs::Metadata;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::{Duration, SystemTime};

/// How long a file must have been left alone before its stamp is trusted.
pub const TRUST_AFTER: Duration = Duration::from_secs(1);

/// What identifies one version of a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileStamp {
    dev: u64,
    ino: u64,
    len: u64,
    mtime_ns: i128,
    ctime_ns: i128,
}

impl FileStamp {
    /// The stamp of an opened file (`fstat`) or of a path (`stat`).
    pub fn of(meta: &Metadata) -> Self {
        let ns = |secs: i64, nanos: i64| i128::from(secs) * 1_000_000_000 + i128::from(nanos);
        Self {
            dev: meta.dev(),
            ino: meta.ino(),
            len: meta.len(),
            mtime_ns: ns(meta.mtime(), meta.mtime_nsec()),
            ctime_ns: ns(meta.ctime(), meta.ctime_nsec()),
        }
    }

    /// The stamp of the file at `path` (following symlinks); `None` when
    /// there is none to take (missing, or not readable).
    pub fn of_path(path: &Path) -> Option<Self> {
        std::fs::metadata(path).ok().map(|meta| Self::of(&meta))
    }

    /// Whether any change made after `taken` (when the stamp was taken) is
    /// sure to give another stamp: the file was last changed at least
    /// `trust_after` before.
    pub fn is_trusted(&self, taken: SystemTime, trust_after: Duration) -> bool {
        let taken_ns = taken
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as i128);
        taken_ns - self.ctime_ns >= trust_after.as_nanos() as i128
    }

    /// An HTTP entity tag for this version of the file's bytes.
    pub fn etag(&self) -> String {
        format!(
            "\"{:x}-{:x}-{:x}-{:x}-{:x}\"",
            self.dev, self.ino, self.len, self.mtime_ns, self.ctime_ns
        )
    }
}

/// Changes that only a full stamp tells apart, for tests.
#[cfg(test)]
pub(crate) mod testing {
    use super::*;
    use std::fs::File;
    use std::io::Write;

    /// Waits until the file clock has moved past `path`'s ctime, so that the
    /// next change of the file is sure to get another one.
    pub(crate) fn wait_for_the_file_clock(path: &Path) {
        let ctime = |meta: &Metadata| (meta.ctime(), meta.ctime_nsec());
        let changed = ctime(&std::fs::metadata(path).unwrap());
        let mut probe = tempfile::NamedTempFile::new_in(path.parent().unwrap()).unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            probe.write_all(b".").unwrap();
            if ctime(&probe.as_file().metadata().unwrap()) > changed {
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the file clock does not move"
            );
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    pub(crate) fn set_mtime(path: &Path, mtime: SystemTime) {
        let file = File::options().write(true).open(path).unwrap();
        file.set_modified(mtime).unwrap();
    }

    /// Writes `text` over the file's bytes (same inode), then puts `mtime`
    /// back, as `cp -p` would.
    pub(crate) fn rewrite_in_place(path: &Path, text: &str, mtime: SystemTime) {
        let mut file = File::options()
            .write(true)
            .truncate(true)
            .open(path)
            .unwrap();
        file.write_all(text.as_bytes()).unwrap();
        file.set_modified(mtime).unwrap();
    }

    /// Replaces the file with a new one holding `text` and dated `mtime`, as
    /// `rsync -t` would.
    pub(crate) fn rename_over(path: &Path, text: &str, mtime: SystemTime) {
        let copy = path.with_extension("new");
        std::fs::write(&copy, text).unwrap();
        set_mtime(&copy, mtime);
        std::fs::rename(&copy, path).unwrap();
    }
}

#[cfg(test)]
mod tests {
    use super::testing::*;
    use super::*;

    fn stamp(path: &Path) -> FileStamp {
        FileStamp::of_path(path).unwrap()
    }

    #[test]
    fn same_size_same_mtime_changes_give_another_stamp() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("registry.json");
        std::fs::write(&path, "one").unwrap();
        let mtime = std::fs::metadata(&path).unwrap().modified().unwrap();
        let first = stamp(&path);
        assert_eq!(first, stamp(&path));

        // Rewritten in place, old mtime put back: same inode, size, mtime.
        wait_for_the_file_clock(&path);
        rewrite_in_place(&path, "two", mtime);
        let in_place = stamp(&path);
        assert_ne!(in_place, first);

        // Replaced by a renamed copy with the same size and mtime.
        wait_for_the_file_clock(&path);
        rename_over(&path, "six", mtime);
        let renamed = stamp(&path);
        assert_ne!(renamed, in_place);
        assert_ne!(renamed, first);

        std::fs::remove_file(&path).unwrap();
        assert_eq!(FileStamp::of_path(&path), None);
    }

    #[test]
    fn a_stamp_is_trusted_by_its_ctime() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("vars.toml");
        std::fs::write(&path, "x").unwrap();
        // An mtime in the future does not keep a stamp from being trusted.
        set_mtime(&path, SystemTime::now() + Duration::from_secs(3600));
        let stamp = stamp(&path);
        let now = SystemTime::now();
        assert!(!stamp.is_trusted(now, TRUST_AFTER));
        assert!(stamp.is_trusted(now + TRUST_AFTER * 2, TRUST_AFTER));
        assert!(stamp.is_trusted(now, Duration::ZERO));
    }

    #[test]
    fn the_etag_follows_the_stamp() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("kernel");
        std::fs::write(&path, "one").unwrap();
        let etag = stamp(&path).etag();
        assert!(etag.starts_with('"') && etag.ends_with('"'), "{etag}");
        wait_for_the_file_clock(&path);
        std::fs::write(&path, "two").unwrap();
        assert_ne!(stamp(&path).etag(), etag);
    }
}
