//! Knowing that nothing changed without looking at each file: one inotify
//! instance for the server, and a *generation* that moves on whenever the
//! kernel reports a change to anything watched.
//!
//! A request [observes](ChangeWatch::observe) the generation first: that is
//! one `read` of the inotify descriptor, which returns at once, with nothing
//! when nothing changed. The kernel queues a change's event before the call
//! that made it (`write`, `rename`, `unlink`, ...) returns, so a request that
//! starts after a change always sees the generation move.
//!
//! What was loaded from files may then be used without a `stat` as long as
//! the generation has not moved since it was last checked *and* every path
//! it depends on was watched before that check ([`ChangeWatch::covered`]).
//! Paths are watched as chains from a root down (`files/`, `files/<fp>/`,
//! `files/<fp>/boot.ipxe`), so a rename, a replacement or a new file at any
//! level is an event. A symlink in a chain is not followed: such a chain is
//! never covered, and whoever depends on it checks the files every time, as
//! without a watch. Neither is a path above the root of a chain (the data
//! directory itself) watched: replacing the data directory of a running
//! server is not a change it follows.
//!
//! Any event moves the generation and forgets what was watched (the kernel
//! keeps the watches; adding one again is cheap and gives the same one), so
//! a replaced file is watched anew before anything relies on it again. What
//! was found missing or not watchable is remembered for the generation too:
//! a caller that can never be covered (a machine whose folder is a symlink)
//! asks again at each request, and costs no system call doing so.

use std::collections::HashMap;
use std::io;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use rustix::fs::inotify::{self, CreateFlags, WatchFlags};
use rustix::io::Errno;

/// A point in the history of changes, as seen by one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Seen {
    /// Moves on with every change reported.
    pub generation: u64,
    /// How many paths had been watched by then, in this generation.
    watched: u64,
}

/// Everything that changes a file, its folder's entries or a folder itself.
fn changes() -> WatchFlags {
    WatchFlags::MODIFY
        | WatchFlags::ATTRIB
        | WatchFlags::CLOSE_WRITE
        | WatchFlags::MOVED_FROM
        | WatchFlags::MOVED_TO
        | WatchFlags::CREATE
        | WatchFlags::DELETE
        | WatchFlags::DELETE_SELF
        | WatchFlags::MOVE_SELF
        | WatchFlags::DONT_FOLLOW
}

pub struct ChangeWatch {
    fd: OwnedFd,
    state: Mutex<State>,
}

struct State {
    /// Starts at 1: 0 is never a generation anything was checked in.
    generation: u64,
    /// Paths looked at in this generation, and what was found.
    paths: HashMap<PathBuf, Found>,
    /// How many of them are watched.
    watched: u64,
}

/// What a path turned out to be, in one generation.
#[derive(Debug, Clone, Copy)]
enum Found {
    /// Watched, the `n`th path of the generation to be.
    Watched(u64),
    /// Nothing there: its creation is an event of the folder before it.
    Missing,
    /// Cannot be watched (a symlink, no more watches, no permission).
    Refused,
}

impl ChangeWatch {
    pub fn new() -> io::Result<Self> {
        let fd = inotify::init(CreateFlags::CLOEXEC | CreateFlags::NONBLOCK)?;
        Ok(Self {
            fd,
            state: Mutex::new(State {
                generation: 1,
                paths: HashMap::new(),
                watched: 0,
            }),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The generation as of now: what the kernel queued is taken first, and
    /// any of it starts a new one.
    pub fn observe(&self) -> Seen {
        let mut state = self.lock();
        // Only whether there was anything matters; not zeroed, as this is
        // every script request.
        let mut buf = [std::mem::MaybeUninit::<u8>::uninit(); 4096];
        let mut changed = false;
        loop {
            match rustix::io::read(&self.fd, &mut buf) {
                Ok(([], _)) | Err(Errno::AGAIN) => break,
                Ok(_) => changed = true,
                Err(Errno::INTR) => continue,
                // Cannot tell: treat it as a change, every time.
                Err(_) => {
                    changed = true;
                    break;
                }
            }
        }
        if changed {
            state.generation += 1;
            state.paths.clear();
            state.watched = 0;
        }
        Seen {
            generation: state.generation,
            watched: state.watched,
        }
    }

    /// Whether a check made after `seen` can be relied on until the next
    /// change: nothing changed since `seen`, and every path of every chain
    /// was watched before it. Paths not watched yet are watched now (so the
    /// answer is no this time, and yes for a later check). A chain ends
    /// early, covered, where a path does not exist: its creation is an event
    /// of the folder before it.
    pub fn covered(&self, seen: Seen, chains: &[Vec<PathBuf>]) -> bool {
        let mut state = self.lock();
        if state.generation != seen.generation {
            return false;
        }
        let mut covered = true;
        for chain in chains {
            for path in chain {
                let found = match state.paths.get(path) {
                    Some(&found) => found,
                    None => {
                        let found = self.add(path, state.watched);
                        if let Found::Watched(_) = found {
                            state.watched += 1;
                        }
                        state.paths.insert(path.clone(), found);
                        found
                    }
                };
                match found {
                    Found::Watched(order) => covered &= order < seen.watched,
                    Found::Missing => break,
                    Found::Refused => return false,
                }
            }
        }
        covered
    }

    /// Watches `path`, as the `order`th path of the generation.
    fn add(&self, path: &Path, order: u64) -> Found {
        match std::fs::symlink_metadata(path) {
            Ok(meta) if meta.file_type().is_symlink() => return Found::Refused,
            Ok(_) => {}
            Err(err) if err.kind() == io::ErrorKind::NotFound => return Found::Missing,
            Err(_) => return Found::Refused,
        }
        match inotify::add_watch(&self.fd, path, changes()) {
            Ok(_) => Found::Watched(order),
            Err(Errno::NOENT) => Found::Missing,
            Err(err) => {
                tracing::debug!("cannot watch {}: {err}", path.display());
                Found::Refused
            }
        }
    }
}

/// `root` and each path from it down to `path` (which lies beneath it).
pub fn chain(root: &Path, path: &Path) -> Vec<PathBuf> {
    let mut chain = vec![root.to_path_buf()];
    if let Ok(rest) = path.strip_prefix(root) {
        let mut at = root.to_path_buf();
        for part in rest.components() {
            at.push(part);
            chain.push(at.clone());
        }
    }
    chain
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settled(watch: &ChangeWatch, chains: &[Vec<PathBuf>]) -> Seen {
        // The first look adds the watches, the second relies on them.
        let seen = watch.observe();
        assert!(!watch.covered(seen, chains));
        let seen = watch.observe();
        assert!(watch.covered(seen, chains), "{chains:?}");
        seen
    }

    #[test]
    fn every_kind_of_change_moves_the_generation() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        let folder = root.join("files/aa");
        std::fs::create_dir_all(&folder).unwrap();
        let script = folder.join("boot.ipxe");
        std::fs::write(&script, "one").unwrap();
        let chains = [chain(root, &script), chain(root, &folder.join("vars.toml"))];
        let watch = ChangeWatch::new().unwrap();

        type Change<'a> = (&'a str, Box<dyn Fn() + 'a>);
        let changes: Vec<Change> = vec![
            (
                "rewritten in place",
                Box::new(|| std::fs::write(&script, "two").unwrap()),
            ),
            (
                "a file created beside it",
                Box::new(|| std::fs::write(folder.join("vars.toml"), "a = 1").unwrap()),
            ),
            (
                "renamed over",
                Box::new(|| {
                    std::fs::write(folder.join("new"), "six").unwrap();
                    std::fs::rename(folder.join("new"), &script).unwrap();
                }),
            ),
            (
                "mode changed",
                Box::new(|| {
                    use std::os::unix::fs::PermissionsExt;
                    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o600))
                        .unwrap();
                }),
            ),
            (
                "folder moved away and back",
                Box::new(|| {
                    std::fs::rename(&folder, root.join("files/bb")).unwrap();
                    std::fs::rename(root.join("files/bb"), &folder).unwrap();
                }),
            ),
            (
                "removed",
                Box::new(|| std::fs::remove_file(folder.join("vars.toml")).unwrap()),
            ),
        ];
        for (what, change) in changes {
            let seen = settled(&watch, &chains);
            assert_eq!(watch.observe(), seen, "nothing changed yet ({what})");
            change();
            let after = watch.observe();
            assert!(after.generation > seen.generation, "{what}");
            assert!(!watch.covered(seen, &chains), "{what}");
        }
    }

    #[test]
    fn a_change_through_a_hard_link_elsewhere_is_seen() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("data");
        std::fs::create_dir(&root).unwrap();
        let script = root.join("boot.ipxe");
        std::fs::write(&script, "one").unwrap();
        let elsewhere = tmp.path().join("link");
        std::fs::hard_link(&script, &elsewhere).unwrap();
        let watch = ChangeWatch::new().unwrap();
        let seen = settled(&watch, &[chain(&root, &script)]);
        std::fs::write(&elsewhere, "two").unwrap();
        assert!(watch.observe().generation > seen.generation);
    }

    #[test]
    fn a_chain_through_a_symlink_is_never_covered() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        std::fs::create_dir_all(root.join("files/real")).unwrap();
        std::fs::write(root.join("files/real/boot.ipxe"), "x").unwrap();
        std::os::unix::fs::symlink("real", root.join("files/aa")).unwrap();
        let watch = ChangeWatch::new().unwrap();
        let chains = [chain(root, &root.join("files/aa/boot.ipxe"))];
        for _ in 0..3 {
            let seen = watch.observe();
            assert!(!watch.covered(seen, &chains));
        }
    }

    #[test]
    fn a_path_watched_after_the_look_does_not_cover_it() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        std::fs::write(root.join("registry.json"), "{}").unwrap();
        let chains = [chain(root, &root.join("registry.json"))];
        let watch = ChangeWatch::new().unwrap();
        // Two requests look before either watches: neither may rely on it.
        let first = watch.observe();
        let second = watch.observe();
        assert!(!watch.covered(first, &chains));
        assert!(!watch.covered(second, &chains));
        assert!(watch.covered(watch.observe(), &chains));
    }
}
