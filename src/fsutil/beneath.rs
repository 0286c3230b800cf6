//! Opening files *beneath* a folder, with the kernel refusing to leave it.
//!
//! Every file a machine can influence or an editor controls (served files,
//! boot scripts, `vars.toml`, `secrets`, profile files, shared assets) is read
//! through here. Checking a path and then opening it by name again is a race:
//! whoever can write into the folder swaps a symlink in between and the open
//! lands outside (on `ca/ca.key`, say). So nothing is checked by name: the
//! folder is opened once as a [`Dir`], the file is opened relative to that
//! descriptor, and every later decision (is it a regular file, its size,
//! times, ETag) is made with `fstat` on the opened descriptor, whose bytes are
//! then the ones read.
//!
//! Resolution uses `openat2(RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS)`: symlinks
//! and `..` that stay inside the folder work, anything that would leave it
//! (an absolute symlink, `..` above the folder, `/proc/self/fd/N`) fails with
//! `EXDEV`/`ELOOP` inside the kernel, atomically with the open. Where
//! `openat2` does not exist (Linux before 5.6: `ENOSYS`) the path is walked one
//! component at a time with `O_NOFOLLOW`, which refuses every symlink.
//!
//! The folder itself ([`Dir::open`]) is opened by its path, following
//! symlinks: it is the root that bootgate (or the operator) chose, and it may
//! be a link that is swapped to switch trees atomically.

use std::fs::File;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Component, Path, PathBuf};

use rustix::fs::{AtFlags, FileType, Mode, OFlags, ResolveFlags};
use rustix::io::Errno;

/// A folder opened once; files are opened beneath it.
#[derive(Debug)]
pub struct Dir {
    fd: OwnedFd,
    path: PathBuf,
}

/// Which way of resolving beneath a folder is used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Walk {
    /// `openat2` with `RESOLVE_BENEATH`, falling back when it is missing.
    Kernel,
    /// One component at a time with `O_NOFOLLOW` (chosen directly only by
    /// the tests; otherwise reached through `Kernel` on `ENOSYS`).
    #[cfg_attr(not(test), allow(dead_code))]
    NoFollow,
}

/// How often an `openat2` that raced a rename (`EAGAIN`) is tried again.
const RETRIES: usize = 8;

impl Dir {
    /// Opens the folder at `path` (symlinks followed): the root everything
    /// else is opened beneath.
    pub fn open(path: &Path) -> io::Result<Self> {
        let fd = rustix::fs::open(path, dir_flags(), Mode::empty())?;
        Ok(Self {
            fd,
            path: path.to_path_buf(),
        })
    }

    /// Where this folder was opened from, for messages.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Opens the folder `relative` beneath this one.
    pub fn open_dir(&self, relative: &Path) -> io::Result<Self> {
        let fd = self
            .open_beneath(relative, dir_flags(), Walk::Kernel)
            .map_err(|err| self.explain(relative, err))?;
        Ok(Self {
            fd,
            path: self.path.join(relative),
        })
    }

    /// Opens the regular file `relative` beneath this folder for reading and
    /// returns it with its metadata, taken from the opened descriptor.
    /// Anything but a regular file (a folder, a FIFO, a device) is refused
    /// with `InvalidInput`, symlinks leading outside with the kernel's error.
    pub fn open_file(&self, relative: &Path) -> io::Result<(File, std::fs::Metadata)> {
        self.open_file_walking(relative, Walk::Kernel)
    }

    fn open_file_walking(
        &self,
        relative: &Path,
        walk: Walk,
    ) -> io::Result<(File, std::fs::Metadata)> {
        // O_NONBLOCK: opening a FIFO must not hang; reads of regular files
        // ignore it.
        let flags = OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NOCTTY | OFlags::NONBLOCK;
        let file = File::from(
            self.open_beneath(relative, flags, walk)
                .map_err(|err| self.explain(relative, err))?,
        );
        let meta = file.metadata()?;
        if !meta.is_file() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "{} is not a regular file",
                    self.path.join(relative).display()
                ),
            ));
        }
        Ok((file, meta))
    }

    /// The device and inode of the file the entry `name` directly in this
    /// folder stands for (a symlink followed); `None` if there is none. Only
    /// for telling files apart: never open what this names.
    pub fn entry_id(&self, name: &str) -> Option<(u64, u64)> {
        let stat = rustix::fs::statat(&self.fd, name, AtFlags::empty()).ok()?;
        Some((stat.st_dev, stat.st_ino))
    }

    /// Names the refusal when the kernel refused to leave the folder.
    fn explain(&self, relative: &Path, err: io::Error) -> io::Error {
        let refused = matches!(
            err.raw_os_error().map(Errno::from_raw_os_error),
            Some(Errno::XDEV | Errno::LOOP)
        );
        if !refused {
            return err;
        }
        io::Error::new(
            io::ErrorKind::PermissionDenied,
            LeadsOutside(format!(
                "{} leads outside {} through a link or `..` ({err})",
                relative.display(),
                self.path.display()
            )),
        )
    }

    fn open_beneath(&self, relative: &Path, flags: OFlags, walk: Walk) -> io::Result<OwnedFd> {
        if walk == Walk::Kernel {
            let resolve = ResolveFlags::BENEATH | ResolveFlags::NO_MAGICLINKS;
            for _ in 0..RETRIES {
                match rustix::fs::openat2(&self.fd, relative, flags, Mode::empty(), resolve) {
                    Err(Errno::AGAIN | Errno::INTR) => continue,
                    Err(Errno::NOSYS) => return self.walk_nofollow(relative, flags),
                    other => return Ok(other?),
                }
            }
            return Err(io::Error::new(
                io::ErrorKind::WouldBlock,
                format!("{} kept changing while opened", relative.display()),
            ));
        }
        self.walk_nofollow(relative, flags)
    }

    /// The fallback: each folder on the way opened with `O_NOFOLLOW` beneath
    /// the previous one; `..`, absolute paths and every symlink refused.
    fn walk_nofollow(&self, relative: &Path, flags: OFlags) -> io::Result<OwnedFd> {
        let mut names = Vec::new();
        for component in relative.components() {
            match component {
                Component::Normal(name) => names.push(name),
                Component::CurDir => {}
                _ => {
                    return Err(io::Error::new(
                        io::ErrorKind::PermissionDenied,
                        LeadsOutside(format!(
                            "{} leads outside {}",
                            relative.display(),
                            self.path.display()
                        )),
                    ));
                }
            }
        }
        let Some((last, folders)) = names.split_last() else {
            return Ok(rustix::fs::openat(&self.fd, ".", flags, Mode::empty())?);
        };
        let mut current: Option<OwnedFd> = None;
        for name in folders {
            let at = current.as_ref().map_or(self.fd.as_fd(), AsFd::as_fd);
            let next = rustix::fs::openat(at, *name, dir_flags() | OFlags::NOFOLLOW, Mode::empty())
                .map_err(|err| match err {
                    // A link where a folder is expected: refused as a link.
                    Errno::NOTDIR if is_symlink(at, name) => Errno::LOOP,
                    other => other,
                })?;
            current = Some(next);
        }
        let at = current.as_ref().map_or(self.fd.as_fd(), AsFd::as_fd);
        Ok(rustix::fs::openat(
            at,
            *last,
            flags | OFlags::NOFOLLOW,
            Mode::empty(),
        )?)
    }
}

fn is_symlink(at: BorrowedFd<'_>, name: &std::ffi::OsStr) -> bool {
    rustix::fs::statat(at, name, AtFlags::SYMLINK_NOFOLLOW)
        .is_ok_and(|stat| FileType::from_raw_mode(stat.st_mode) == FileType::Symlink)
}

fn dir_flags() -> OFlags {
    OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC
}

/// Why a path beneath a folder was refused: it leads outside.
#[derive(Debug)]
struct LeadsOutside(String);

impl std::fmt::Display for LeadsOutside {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for LeadsOutside {}

/// Whether an error from opening beneath a folder means "this path leads
/// outside it" (worth a warning) rather than "there is nothing there".
pub fn is_escape(err: &io::Error) -> bool {
    err.get_ref()
        .is_some_and(|inner| inner.is::<LeadsOutside>())
}

#[cfg(test)]
mod tests {
    use std::io::Read;
    use std::os::unix::fs::symlink;

    use super::*;

    fn tree() -> (tempfile::TempDir, Dir) {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("root");
        std::fs::create_dir_all(root.join("sub")).unwrap();
        std::fs::write(root.join("kernel"), "k").unwrap();
        std::fs::write(root.join("sub/initrd"), "i").unwrap();
        std::fs::write(tmp.path().join("ca.key"), "SECRET").unwrap();
        symlink("kernel", root.join("alias")).unwrap();
        symlink("../kernel", root.join("sub/up")).unwrap();
        symlink("../ca.key", root.join("escape")).unwrap();
        symlink(tmp.path().join("ca.key"), root.join("absolute")).unwrap();
        symlink("/proc/self/root/etc/hostname", root.join("magic")).unwrap();
        symlink("..", root.join("parent")).unwrap();
        std::os::unix::net::UnixListener::bind(root.join("socket")).unwrap();
        let dir = Dir::open(&root).unwrap();
        (tmp, dir)
    }

    fn read(dir: &Dir, path: &str, walk: Walk) -> io::Result<String> {
        let (mut file, _) = dir.open_file_walking(Path::new(path), walk)?;
        let mut text = String::new();
        file.read_to_string(&mut text)?;
        Ok(text)
    }

    #[test]
    fn files_inside_open_and_nothing_outside_does() {
        let (_tmp, dir) = tree();
        for walk in [Walk::Kernel, Walk::NoFollow] {
            assert_eq!(read(&dir, "kernel", walk).unwrap(), "k");
            assert_eq!(read(&dir, "sub/initrd", walk).unwrap(), "i");
            for outside in [
                "escape",
                "absolute",
                "magic",
                "parent/ca.key",
                "../ca.key",
                "sub/../../ca.key",
            ] {
                let err = read(&dir, outside, walk).unwrap_err();
                assert!(is_escape(&err), "{outside} ({walk:?}): {err}");
            }
            assert_eq!(
                read(&dir, "missing", walk).unwrap_err().kind(),
                io::ErrorKind::NotFound
            );
            assert_eq!(
                read(&dir, "sub", walk).unwrap_err().kind(),
                io::ErrorKind::InvalidInput
            );
        }
        // Symlinks that stay inside work where the kernel checks them...
        assert_eq!(read(&dir, "alias", Walk::Kernel).unwrap(), "k");
        assert_eq!(read(&dir, "sub/up", Walk::Kernel).unwrap(), "k");
        // ...and are refused by the fallback walk, which cannot tell.
        assert!(read(&dir, "alias", Walk::NoFollow).is_err());
    }

    #[test]
    fn sockets_and_folders_are_not_files() {
        let (_tmp, dir) = tree();
        assert!(dir.open_file(Path::new("socket")).is_err());
        let sub = dir.open_dir(Path::new("sub")).unwrap();
        assert!(sub.open_file(Path::new("initrd")).is_ok());
        assert!(sub.open_file(Path::new("../kernel")).is_err());
        assert!(dir.open_dir(Path::new("parent")).is_err());
        assert!(dir.entry_id("kernel").is_some());
        assert_eq!(dir.entry_id("alias"), dir.entry_id("kernel"));
        assert_ne!(dir.entry_id("sub"), dir.entry_id("kernel"));
        assert!(dir.entry_id("missing").is_none());
    }
}
