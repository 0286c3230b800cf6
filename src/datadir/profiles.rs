//! Profiles: boot configurations shared by many machines. A profile is a
//! folder `profiles/<name>/` holding a `boot.ipxe` template, an optional
//! `vars.toml` and any files its machines fetch; a machine uses it when the
//! registry records `profile` for it. What a machine's own folder holds wins
//! over its profile, and shared assets come last (`docs/api-http.md`).
//!
//! Commands that change profiles hold the data directory's lock; a new
//! profile is assembled under a temporary name and renamed into place.

use std::path::PathBuf;
use std::str::FromStr;

use anyhow::{Context, Result, bail};
use serde::Serialize;

use crate::bootcfg::b2c::B2cConfig;
use crate::bootcfg::refs::file_references;
use crate::datadir::assets::AssetIndex;
use crate::datadir::assets::usage::subfolders;
use crate::datadir::registry::Registry;
use crate::datadir::{DataDir, SCRIPT_FILE, SECRETS_FILE, VARS_FILE};
use crate::fsutil;
use crate::names::ProfileName;

/// One `NAME=VALUE` for a profile's `vars.toml`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VarAssignment {
    pub name: String,
    pub value: String,
}

impl FromStr for VarAssignment {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> Result<Self> {
        let (name, value) = s
            .split_once('=')
            .with_context(|| format!("{s:?} is not NAME=VALUE"))?;
        let mut bytes = name.bytes();
        let identifier = bytes
            .next()
            .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
            && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_');
        if !identifier {
            bail!("{name:?} is not a variable name ([A-Za-z_][A-Za-z0-9_]*)");
        }
        if value.chars().any(char::is_control) {
            bail!("the value of {name} contains a control character; it would break the script");
        }
        Ok(Self {
            name: name.into(),
            value: value.into(),
        })
    }
}

/// Where a profile's script comes from.
pub enum Script {
    /// A hand-written template.
    Text(String),
    /// Generated from boot2container parameters.
    B2c(B2cConfig),
}

pub struct CreateOptions {
    pub script: Script,
    /// Written to `vars.toml`; with `replace` and no vars, the file is kept.
    pub vars: Vec<VarAssignment>,
    /// Rewrite an existing profile's script (and vars, if given).
    pub replace: bool,
    /// Written to `secrets` (a template, served once through `$secrets_url`);
    /// with `replace` and none, the file is kept.
    pub secrets: Option<String>,
}

pub struct Created {
    pub dir: PathBuf,
    pub script: String,
    pub warnings: Vec<String>,
}

/// The folder of an existing profile, or an error saying how to make one.
pub fn require(dir: &DataDir, name: &str) -> Result<PathBuf> {
    let folder = dir.profile_dir(name);
    if !folder.is_dir() {
        bail!(
            "no profile named {name:?}; `bootgate profile list` shows them, `bootgate profile create {name} ...` makes one"
        );
    }
    Ok(folder)
}

pub fn create(dir: &DataDir, name: &ProfileName, opts: CreateOptions) -> Result<Created> {
    let _lock = dir.lock()?;
    let folder = dir.profile_dir(name.as_ref());
    let exists = folder.is_dir();
    if exists && !opts.replace {
        bail!(
            "a profile named {name:?} already exists; `bootgate profile show {name}` shows it, add --replace to rewrite its script"
        );
    }
    let vars_text = if opts.vars.is_empty() {
        None
    } else {
        Some(vars_toml(&opts.vars))
    };
    let var_names: Vec<String> = match (&vars_text, exists) {
        (Some(_), _) => opts.vars.iter().map(|v| v.name.clone()).collect(),
        (None, true) => existing_var_names(&folder.join(VARS_FILE))?,
        (None, false) => Vec::new(),
    };
    let (script, mut warnings) = match opts.script {
        Script::Text(text) => (text, Vec::new()),
        Script::B2c(config) => {
            require_files(dir, &folder, &config)?;
            let names: Vec<&str> = var_names.iter().map(String::as_str).collect();
            let rendered = config.render(&names)?;
            (rendered.script, rendered.warnings)
        }
    };
    warnings.extend(unresolved_references(dir, &folder, &script)?);

    if exists {
        fsutil::write_atomic(&folder.join(SCRIPT_FILE), script.as_bytes(), fsutil::PUBLIC)?;
        if let Some(text) = &vars_text {
            fsutil::write_atomic(&folder.join(VARS_FILE), text.as_bytes(), fsutil::PUBLIC)?;
        }
        if let Some(text) = &opts.secrets {
            fsutil::write_atomic(&folder.join(SECRETS_FILE), text.as_bytes(), fsutil::PUBLIC)?;
        }
    } else {
        let parent = dir.profiles_dir();
        fsutil::create_dir(&parent)?;
        let staging = tempfile::Builder::new()
            .prefix(".bootgate-profile-")
            .tempdir_in(&parent)
            .with_context(|| format!("creating a temporary folder in {}", parent.display()))?;
        fsutil::write_atomic(
            &staging.path().join(SCRIPT_FILE),
            script.as_bytes(),
            fsutil::PUBLIC,
        )?;
        if let Some(text) = &vars_text {
            fsutil::write_atomic(
                &staging.path().join(VARS_FILE),
                text.as_bytes(),
                fsutil::PUBLIC,
            )?;
        }
        if let Some(text) = &opts.secrets {
            fsutil::write_atomic(
                &staging.path().join(SECRETS_FILE),
                text.as_bytes(),
                fsutil::PUBLIC,
            )?;
        }
        std::fs::set_permissions(
            staging.path(),
            std::os::unix::fs::PermissionsExt::from_mode(fsutil::DIR),
        )?;
        std::fs::rename(staging.keep(), &folder)
            .with_context(|| format!("creating {}", folder.display()))?;
        fsutil::sync_dir(&parent);
    }
    Ok(Created {
        dir: folder,
        script,
        warnings,
    })
}

/// A generated script's kernel, initramfs and device tree must exist, as a
/// shared asset or a file already in the profile's folder.
fn require_files(dir: &DataDir, folder: &std::path::Path, config: &B2cConfig) -> Result<()> {
    let index = AssetIndex::load(dir)?;
    let files = [
        ("--kernel", &config.kernel),
        ("--initramfs", &config.initramfs),
        ("--dtb", &config.dtb),
    ];
    for (flag, name) in files {
        if let Some(name) = name
            && resolve_reference(&index, folder, name.as_ref()) == Source::Missing
        {
            bail!(
                "{flag} {name}: no shared asset has that name; add the file first with `bootgate asset add FILE --name {name}` (`bootgate asset list` shows the stored ones)"
            );
        }
    }
    Ok(())
}

fn vars_toml(vars: &[VarAssignment]) -> String {
    let mut table = toml::Table::new();
    for var in vars {
        table.insert(var.name.clone(), toml::Value::String(var.value.clone()));
    }
    toml::to_string(&table).expect("a table of strings serialises")
}

fn existing_var_names(path: &std::path::Path) -> Result<Vec<String>> {
    match std::fs::read_to_string(path) {
        Ok(text) => {
            let table: toml::Table =
                toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
            Ok(table.keys().cloned().collect())
        }
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(err) => Err(err).with_context(|| format!("reading {}", path.display())),
    }
}

/// How each `/files/<name>` a profile's script names is found.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    /// A file in the profile's folder.
    Profile,
    /// A shared asset.
    Asset,
    /// Neither: only machines' own folders could provide it.
    Missing,
}

fn resolve_reference(index: &AssetIndex, folder: &std::path::Path, name: &str) -> Source {
    if folder.join(name).is_file() {
        Source::Profile
    } else if index.get(name).is_some() {
        Source::Asset
    } else {
        Source::Missing
    }
}

fn unresolved_references(
    dir: &DataDir,
    folder: &std::path::Path,
    script: &str,
) -> Result<Vec<String>> {
    let index = AssetIndex::load(dir)?;
    Ok(file_references(script)
        .into_iter()
        .filter(|name| resolve_reference(&index, folder, name) == Source::Missing)
        .map(|name| {
            format!(
                "/files/{name} is neither a shared asset nor a file of this profile: add it with `bootgate asset add FILE --name {name}`, or machines must each have it in their own folder"
            )
        })
        .collect())
}

/// One `/files/<name>` a profile's script fetches.
#[derive(Debug, Serialize)]
pub struct Fetch {
    pub name: String,
    pub source: Source,
}

/// What `profile list` and `profile show` report.
#[derive(Debug, Serialize)]
pub struct ProfileInfo {
    pub name: String,
    pub dir: PathBuf,
    pub machines: Vec<String>,
    /// Files in the profile's folder besides its script and variables.
    pub files: Vec<String>,
    /// The `/files/<name>` its script fetches, and where each comes from.
    pub fetches: Vec<Fetch>,
    pub script: Option<String>,
    pub vars: Option<String>,
}

pub fn list(dir: &DataDir) -> Result<Vec<ProfileInfo>> {
    let registry = Registry::load(dir)?;
    let index = AssetIndex::load(dir)?;
    subfolders(&dir.profiles_dir())?
        .into_iter()
        .map(|(name, _)| info(dir, &registry, &index, &name))
        .collect()
}

pub fn show(dir: &DataDir, name: &str) -> Result<ProfileInfo> {
    require(dir, name)?;
    info(dir, &Registry::load(dir)?, &AssetIndex::load(dir)?, name)
}

fn info(dir: &DataDir, registry: &Registry, index: &AssetIndex, name: &str) -> Result<ProfileInfo> {
    let folder = dir.profile_dir(name);
    let read = |file: &str| -> Result<Option<String>> {
        let path = folder.join(file);
        match std::fs::read_to_string(&path) {
            Ok(text) => Ok(Some(text)),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(err) => Err(err).with_context(|| format!("reading {}", path.display())),
        }
    };
    let script = read(SCRIPT_FILE)?;
    let vars = read(VARS_FILE)?;
    let mut files = Vec::new();
    for entry in
        std::fs::read_dir(&folder).with_context(|| format!("listing {}", folder.display()))?
    {
        let file = entry?.file_name().to_string_lossy().into_owned();
        if file != SCRIPT_FILE && file != VARS_FILE {
            files.push(file);
        }
    }
    files.sort();
    let fetches = script
        .as_deref()
        .map(file_references)
        .unwrap_or_default()
        .into_iter()
        .map(|n| Fetch {
            name: n.to_string(),
            source: resolve_reference(index, &folder, n),
        })
        .collect();
    Ok(ProfileInfo {
        name: name.into(),
        machines: registry
            .using_profile(name)
            .map(|m| m.name.to_string())
            .collect(),
        dir: folder,
        files,
        fetches,
        script,
        vars,
    })
}

/// Deletes a profile no machine uses.
pub fn remove(dir: &DataDir, name: &str) -> Result<()> {
    let _lock = dir.lock()?;
    let folder = require(dir, name)?;
    let registry = Registry::load(dir)?;
    let users: Vec<String> = registry
        .using_profile(name)
        .map(|m| m.name.to_string())
        .collect();
    if !users.is_empty() {
        bail!(
            "profile {name:?} is used by {}; move them first with `bootgate machine set-profile MACHINE OTHER` (or --none)",
            users.join(", ")
        );
    }
    // Out of the server's sight in one rename, then deleted.
    let graveyard = tempfile::Builder::new()
        .prefix(".bootgate-rm-")
        .tempdir_in(dir.profiles_dir())
        .context("creating a temporary folder under profiles/")?;
    std::fs::rename(&folder, graveyard.path().join(name))
        .with_context(|| format!("removing {}", folder.display()))?;
    fsutil::sync_dir(&dir.profiles_dir());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variable_assignments() {
        let v: VarAssignment = "registry=registry.example.com:5000".parse().unwrap();
        assert_eq!(
            (v.name.as_str(), v.value.as_str()),
            ("registry", "registry.example.com:5000")
        );
        assert_eq!("empty=".parse::<VarAssignment>().unwrap().value, "");
        for bad in ["novalue", "1x=1", "a-b=1", "=x", "x=a\nb"] {
            assert!(bad.parse::<VarAssignment>().is_err(), "{bad:?}");
        }
        let toml = vars_toml(&["a=1".parse().unwrap(), "b=x \"y\"".parse().unwrap()]);
        let table: toml::Table = toml::from_str(&toml).unwrap();
        assert_eq!(table["b"].as_str(), Some("x \"y\""));
    }
}
