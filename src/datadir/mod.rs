//! The data directory: where every piece of bootgate's state lives, and the one
//! place that knows its layout. See `docs/data-layout.md`.
//!
//! ```text
//! bootgate.toml            configuration
//! registry.json            enrolled machines (name, fingerprint, revocation)
//! ca/ca.crt, ca/ca.key     the CA that issues and verifies client certificates
//! server/server.{crt,key}  the HTTPS server's certificate
//! machines/<name>/client.{crt,key}
//! templates/machine-boot.ipxe  what `machine add` gives a new machine
//! files/<fingerprint>/     what each machine may fetch (boot.ipxe, kernel, ...)
//! files/default/boot.ipxe  script for enrolled machines without a folder
//! profiles/<name>/         a boot configuration many machines share
//! assets/index.json        shared assets: name -> SHA-256
//! assets/sha256/<hex>      each shared asset's content, stored once
//! events/events.redb       boot history (written by the running server)
//! events/admin.json        where the running server's admin listener is
//! config/repo.git          boot configuration fetched from git (bare)
//! config/trees/<commit>/   each checked commit's files/ and profiles/
//! config/live.json         which tree the server serves, and whether pinned
//! config/history.jsonl     every applied or rejected commit
//! config/sync.lock         taken by every sync, pin and unpin
//! .lock                    taken by commands that change state
//! ```
//!
//! A boot folder — a machine's `files/<fingerprint>/`, `files/default/` or a
//! profile's `profiles/<name>/` — holds [`SCRIPT_FILE`], optionally
//! [`VARS_FILE`] and [`SECRETS_FILE`], and any file its machines fetch under
//! `/files/`, except the [`NEVER_SERVED`] ones.
//!
//! Beside the layout, this folder holds the state kept in the data directory:
//! the machine registry ([`registry`]), profiles ([`profiles`]), the shared
//! assets store ([`assets`]), the versioned JSON files they are written as
//! ([`statefile`]) and the permission check `serve` runs on it ([`permcheck`]).

pub mod assets;
pub mod permcheck;
pub mod profiles;
pub mod registry;
pub mod statefile;

use std::fs::File;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

use crate::names::Fingerprint;

/// Default location when neither `--data` nor `BOOTGATE_DATA` is given.
pub const DEFAULT_PATH: &str = "./bootgate-data";

/// A boot folder's iPXE script template.
pub const SCRIPT_FILE: &str = "boot.ipxe";
/// A boot folder's variables (flat TOML), rendered into its templates.
pub const VARS_FILE: &str = "vars.toml";
/// A boot folder's one-time secrets template, served only through `/secrets/<token>`.
pub const SECRETS_FILE: &str = "secrets";
/// Names in a boot folder that `/files/` never serves, directly, through a
/// symlink or as a shared asset: `secrets` is only ever rendered once through
/// `/secrets/<token>`, and `vars.toml` may hold values meant only for rendering.
pub const NEVER_SERVED: [&str; 2] = [SECRETS_FILE, VARS_FILE];

/// Whether `/files/` must refuse a file of this name.
pub fn is_never_served(name: &str) -> bool {
    NEVER_SERVED.contains(&name)
}

/// The two trees of boot folders, as a data directory and a git-managed
/// configuration both hold them.
pub const FILES_TREE: &str = "files";
pub const PROFILES_TREE: &str = "profiles";
/// The folder in `files/` that stands in for machines without their own.
const DEFAULT_FOLDER: &str = "default";
/// The template `machine add` gives a new machine, when the operator wrote one.
const MACHINE_TEMPLATE_FILE: &str = "templates/machine-boot.ipxe";

#[derive(Debug, Clone)]
pub struct DataDir {
    root: PathBuf,
}

impl DataDir {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// Opens an initialised data directory, or explains how to create one.
    pub fn open(root: impl Into<PathBuf>) -> Result<Self> {
        let dir = Self::new(root);
        if !dir.is_initialised() {
            bail!(
                "{} is not a bootgate data directory (no bootgate.toml); run `bootgate init --server-name NAME` first",
                dir.root.display()
            );
        }
        Ok(dir)
    }

    pub fn is_initialised(&self) -> bool {
        self.config_path().is_file()
    }

    pub fn root(&self) -> &Path {
        &self.root
    }
    pub fn config_path(&self) -> PathBuf {
        self.root.join("bootgate.toml")
    }
    pub fn registry_path(&self) -> PathBuf {
        self.root.join("registry.json")
    }
    pub fn ca_dir(&self) -> PathBuf {
        self.root.join("ca")
    }
    pub fn ca_cert_path(&self) -> PathBuf {
        self.ca_dir().join("ca.crt")
    }
    pub fn ca_key_path(&self) -> PathBuf {
        self.ca_dir().join("ca.key")
    }
    pub fn server_dir(&self) -> PathBuf {
        self.root.join("server")
    }
    pub fn server_cert_path(&self) -> PathBuf {
        self.server_dir().join("server.crt")
    }
    pub fn server_key_path(&self) -> PathBuf {
        self.server_dir().join("server.key")
    }
    pub fn machines_dir(&self) -> PathBuf {
        self.root.join("machines")
    }
    pub fn machine_dir(&self, name: &str) -> PathBuf {
        self.machines_dir().join(name)
    }
    pub fn machine_cert_path(&self, name: &str) -> PathBuf {
        self.machine_dir(name).join("client.crt")
    }
    pub fn machine_key_path(&self, name: &str) -> PathBuf {
        self.machine_dir(name).join("client.key")
    }
    /// What `machine add` gives a new machine's folder, if the operator wrote it.
    pub fn machine_template_path(&self) -> PathBuf {
        self.root.join(MACHINE_TEMPLATE_FILE)
    }
    pub fn files_dir(&self) -> PathBuf {
        self.root.join(FILES_TREE)
    }
    /// A machine's own folder, named by its certificate fingerprint as the
    /// original ipxe-boot-server did.
    pub fn machine_files_dir(&self, fingerprint: &Fingerprint) -> PathBuf {
        self.files_dir().join(fingerprint.as_str())
    }
    pub fn default_files_dir(&self) -> PathBuf {
        self.files_dir().join(DEFAULT_FOLDER)
    }
    /// A machine's own boot script (which may not exist).
    pub fn machine_script_path(&self, fingerprint: &Fingerprint) -> PathBuf {
        self.machine_files_dir(fingerprint).join(SCRIPT_FILE)
    }
    /// The script of enrolled machines without a folder of their own.
    pub fn default_script_path(&self) -> PathBuf {
        self.default_files_dir().join(SCRIPT_FILE)
    }

    pub fn profiles_dir(&self) -> PathBuf {
        self.root.join(PROFILES_TREE)
    }
    pub fn profile_dir(&self, name: &str) -> PathBuf {
        self.profiles_dir().join(name)
    }
    pub fn assets_dir(&self) -> PathBuf {
        self.root.join("assets")
    }
    pub fn asset_index_path(&self) -> PathBuf {
        self.assets_dir().join("index.json")
    }
    /// Content-addressed storage: each asset's bytes under their SHA-256.
    pub fn asset_blobs_dir(&self) -> PathBuf {
        self.assets_dir().join("sha256")
    }

    pub fn events_dir(&self) -> PathBuf {
        self.root.join("events")
    }
    /// The boot history database; only one process opens it at a time.
    pub fn events_db_path(&self) -> PathBuf {
        self.events_dir().join("events.redb")
    }
    /// Written by `serve` while its admin listener runs, so the CLI can find it.
    pub fn admin_info_path(&self) -> PathBuf {
        self.events_dir().join("admin.json")
    }

    /// Everything the git-managed boot configuration keeps (see [`crate::gitcfg`]).
    pub fn gitcfg_dir(&self) -> PathBuf {
        self.root.join("config")
    }
    pub fn gitcfg_repo_path(&self) -> PathBuf {
        self.gitcfg_dir().join("repo.git")
    }
    pub fn gitcfg_trees_dir(&self) -> PathBuf {
        self.gitcfg_dir().join("trees")
    }
    /// Written atomically at each switch; absent until the first sync, when
    /// `files/` and `profiles/` of the data directory itself are served.
    pub fn gitcfg_live_path(&self) -> PathBuf {
        self.gitcfg_dir().join("live.json")
    }
    pub fn gitcfg_history_path(&self) -> PathBuf {
        self.gitcfg_dir().join("history.jsonl")
    }
    /// Taken by every sync, pin and unpin of the git-managed configuration.
    pub fn gitcfg_lock_path(&self) -> PathBuf {
        self.gitcfg_dir().join("sync.lock")
    }

    /// Takes the data directory's lock for a command that changes state, so two
    /// commands never interleave their read-modify-write of the registry.
    /// Released when the returned guard is dropped.
    pub fn lock(&self) -> Result<File> {
        let path = self.root.join(".lock");
        let file = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(crate::fsutil::PRIVATE)
            .open(&path)
            .with_context(|| format!("opening lock file {}", path.display()))?;
        file.lock()
            .with_context(|| format!("locking {}", path.display()))?;
        // Commands assemble new machines and profiles there while holding
        // this lock: temporary folders still there were left by one that
        // was interrupted.
        for folder in [self.machines_dir(), self.profiles_dir()] {
            crate::fsutil::remove_leftovers(&folder, |_| true);
        }
        Ok(file)
    }
}
