//! Where a machine's requests are answered from, in order of precedence:
//!
//! 1. its own folder `files/<fingerprint>/` — or, for a machine with neither
//!    an own folder nor a profile, `files/default/` standing in for it, as
//!    before profiles existed;
//! 2. its profile's folder `profiles/<name>/`;
//! 3. for `/files/<name>` only: the shared asset `<name>`;
//! 4. for the script only: `files/default/boot.ipxe`.
//!
//! Variables stack the other way round: the profile's `vars.toml` first, the
//! machine's own on top. Each folder keeps the protections of
//! [`super::paths`]: a file refused in one folder is looked for in the next,
//! never outside them. [`Roots::find_file`] is the one walk of that order for
//! `/files/`, used by the server and by the checks of a git-managed
//! configuration alike.
//!
//! A folder is opened beneath its tree (`files/` or `profiles/`, opened by
//! path), and everything in it beneath the folder
//! ([`crate::fsutil::beneath`]): a machine's folder that is a symlink to
//! another folder of the same tree works, one leading elsewhere does not.

use std::fs::{File, Metadata};
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use super::error::{Refusal, internal};
use super::paths;
use crate::datadir::registry::Machine;
use crate::datadir::{DataDir, SCRIPT_FILE, SECRETS_FILE, VARS_FILE, is_never_served};
use crate::fsutil::beneath::Dir;

/// Where `/files/<path>` is found for a machine.
#[derive(Debug)]
pub enum Found<A> {
    /// A file of one of its folders, opened beneath that folder.
    File((File, Metadata)),
    /// The shared asset of that name, as the caller's lookup gave it.
    Asset(A),
}

/// A machine's folders, most specific first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Roots {
    own: Option<PathBuf>,
    profile: Option<PathBuf>,
    default: PathBuf,
}

impl Roots {
    pub fn of(dir: &DataDir, machine: &Machine) -> Self {
        let own = dir.machine_files_dir(&machine.fingerprint);
        let own = if own.is_dir() {
            Some(own)
        } else if machine.profile.is_none() {
            Some(dir.default_files_dir())
        } else {
            None
        };
        Self {
            own,
            profile: machine
                .profile
                .as_ref()
                .map(|p| dir.profile_dir(p.as_ref())),
            default: dir.default_files_dir(),
        }
    }

    /// Every file a render of `machine`'s script can be made from: the
    /// script and `vars.toml` of its own folder (also while that folder does
    /// not exist, since its creation changes what [`Roots::of`] finds), of
    /// its profile's and of the default folder.
    pub fn render_inputs(dir: &DataDir, machine: &Machine) -> Vec<PathBuf> {
        let mut folders = vec![dir.machine_files_dir(&machine.fingerprint)];
        folders.extend(
            machine
                .profile
                .as_ref()
                .map(|p| dir.profile_dir(p.as_ref())),
        );
        folders.push(dir.default_files_dir());
        folders
            .iter()
            .flat_map(|folder| [folder.join(SCRIPT_FILE), folder.join(VARS_FILE)])
            .collect()
    }

    /// Folders searched for `/files/<path>`, in order.
    pub fn folders(&self) -> impl Iterator<Item = &Path> {
        self.own
            .iter()
            .chain(self.profile.iter())
            .map(PathBuf::as_path)
    }

    /// Finds `/files/<segments>` for this machine: in its folders in order,
    /// then, for a single name, the shared asset `asset` finds under it.
    /// `None` when nothing matches; never-served names match nothing.
    pub fn find_file<A>(
        &self,
        segments: &[String],
        asset: impl FnOnce(&str) -> Option<A>,
    ) -> Result<Option<Found<A>>, Refusal> {
        if let [name] = segments
            && is_never_served(name)
        {
            return Ok(None);
        }
        for folder in self.folders() {
            let Ok(folder) = open_folder(folder) else {
                continue;
            };
            match paths::open_within(&folder, segments) {
                Ok(opened) => return Ok(Some(Found::File(opened))),
                Err(Refusal::NotFound) => continue,
                Err(refusal) => return Err(refusal),
            }
        }
        Ok(match segments {
            [name] => asset(name).map(Found::Asset),
            _ => None,
        })
    }

    /// Candidate boot scripts, in order.
    pub fn scripts(&self) -> Vec<PathBuf> {
        let mut scripts: Vec<PathBuf> = self.folders().map(|f| f.join(SCRIPT_FILE)).collect();
        let default = self.default.join(SCRIPT_FILE);
        if !scripts.contains(&default) {
            scripts.push(default);
        }
        scripts
    }

    /// Candidate `secrets` templates, in order.
    pub fn secrets(&self) -> Vec<PathBuf> {
        self.folders().map(|f| f.join(SECRETS_FILE)).collect()
    }

    /// Folders whose `vars.toml` apply, lowest precedence first.
    pub fn vars_folders(&self) -> impl Iterator<Item = &Path> {
        self.profile
            .iter()
            .chain(self.own.iter())
            .map(PathBuf::as_path)
    }
}

/// Opens a machine or profile folder beneath the tree that holds it.
pub fn open_folder(folder: &Path) -> io::Result<Dir> {
    let (Some(tree), Some(name)) = (folder.parent(), folder.file_name()) else {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{} is not a folder inside a tree", folder.display()),
        ));
    };
    Dir::open(tree)?.open_dir(Path::new(name))
}

/// Splits a candidate file into its opened folder and its name; `None` when
/// the folder does not exist.
pub fn open_parent(path: &Path) -> Result<Option<(Dir, &str)>, Refusal> {
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| internal("opening a file", format!("{} has no name", path.display())))?;
    match open_folder(crate::fsutil::parent_of(path)) {
        Ok(folder) => Ok(Some((folder, name))),
        Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(err) => Err(internal(&format!("opening {}", path.display()), err)),
    }
}

/// The text of the first of `candidates` that exists, each opened beneath its
/// folder.
pub fn read_first(candidates: &[PathBuf]) -> Result<Option<String>, Refusal> {
    for path in candidates {
        let Some((folder, name)) = open_parent(path)? else {
            continue;
        };
        let failed = |err| internal(&format!("reading {}", path.display()), err);
        match folder.open_file(Path::new(name)) {
            Ok((mut file, _)) => {
                let mut text = String::new();
                file.read_to_string(&mut text).map_err(failed)?;
                return Ok(Some(text));
            }
            Err(err) if err.kind() == io::ErrorKind::NotFound => continue,
            Err(err) => return Err(failed(err)),
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn machine(profile: Option<&str>) -> Machine {
        let mut m = Machine::sample("gw", &"f".repeat(40));
        m.profile = profile.map(|p| p.parse().unwrap());
        m
    }

    #[test]
    fn folders_in_order() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = DataDir::new(tmp.path());
        let own = dir.machine_files_dir(&"f".repeat(40).parse().unwrap());
        let default = dir.default_files_dir();
        let profile = dir.profile_dir("rpi");
        let list = |r: &Roots| r.folders().map(Path::to_path_buf).collect::<Vec<_>>();

        // No own folder, no profile: files/default stands in, as before.
        let r = Roots::of(&dir, &machine(None));
        assert_eq!(list(&r), std::slice::from_ref(&default));
        assert_eq!(r.scripts(), [default.join("boot.ipxe")]);

        // No own folder, a profile: the profile, then the default script.
        let r = Roots::of(&dir, &machine(Some("rpi")));
        assert_eq!(list(&r), std::slice::from_ref(&profile));
        assert_eq!(
            r.scripts(),
            [profile.join("boot.ipxe"), default.join("boot.ipxe")]
        );

        std::fs::create_dir_all(&own).unwrap();
        let r = Roots::of(&dir, &machine(Some("rpi")));
        assert_eq!(list(&r), [own.clone(), profile.clone()]);
        let vars: Vec<_> = r.vars_folders().map(Path::to_path_buf).collect();
        assert_eq!(vars, [profile.clone(), own.clone()]);
        assert_eq!(r.secrets(), [own.join("secrets"), profile.join("secrets")]);
        assert_eq!(
            r.scripts(),
            [
                own.join("boot.ipxe"),
                profile.join("boot.ipxe"),
                default.join("boot.ipxe")
            ]
        );

        let r = Roots::of(&dir, &machine(None));
        assert_eq!(list(&r), std::slice::from_ref(&own));

        std::fs::write(own.join("boot.ipxe"), "own").unwrap();
        assert_eq!(read_first(&r.scripts()).unwrap().as_deref(), Some("own"));
        assert_eq!(read_first(&[tmp.path().join("none")]).unwrap(), None);
    }

    #[test]
    fn files_are_found_in_order_and_never_served_names_nowhere() {
        use crate::datadir::NEVER_SERVED;
        let tmp = tempfile::tempdir().unwrap();
        let dir = DataDir::new(tmp.path());
        let own = dir.machine_files_dir(&"f".repeat(40).parse().unwrap());
        let profile = dir.profile_dir("rpi");
        for folder in [&own, &profile] {
            std::fs::create_dir_all(folder).unwrap();
            std::fs::write(folder.join("kernel"), folder.to_str().unwrap()).unwrap();
            for name in NEVER_SERVED {
                std::fs::write(folder.join(name), "private").unwrap();
                std::os::unix::fs::symlink(name, folder.join(format!("{name}-link"))).unwrap();
            }
        }
        std::fs::write(profile.join("dtb"), "profile dtb").unwrap();
        let roots = Roots::of(&dir, &machine(Some("rpi")));
        // The never-served names are also shared assets (a hand-edited
        // index): the lookup must not reach them either.
        let asset = |name: &str| {
            (name == "vmlinuz" || NEVER_SERVED.contains(&name)).then(|| name.to_string())
        };
        let find = |path: &str| {
            let segments: Vec<String> = path.split('/').map(String::from).collect();
            match roots.find_file(&segments, asset) {
                Ok(Some(Found::File((mut file, _)))) => {
                    let mut text = String::new();
                    file.read_to_string(&mut text).unwrap();
                    Some(format!("file {text}"))
                }
                Ok(Some(Found::Asset(name))) => Some(format!("asset {name}")),
                Ok(None) | Err(_) => None,
            }
        };
        assert_eq!(find("kernel"), Some(format!("file {}", own.display())));
        assert_eq!(find("dtb").as_deref(), Some("file profile dtb"));
        assert_eq!(find("vmlinuz").as_deref(), Some("asset vmlinuz"));
        assert_eq!(find("sub/vmlinuz"), None, "assets have flat names");
        for name in NEVER_SERVED {
            assert_eq!(find(name), None, "{name}");
            assert_eq!(find(&format!("{name}-link")), None, "{name}-link");
        }
    }
}
