//! `bootgate init`: creates a data directory with its configuration, CA and
//! server certificate. The directory is assembled under a temporary name and
//! renamed into place, so a failed or interrupted init leaves nothing behind.

use std::fs::File;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

use crate::ca::{self, Ca, CertInfo, PrivateKey};
use crate::config::Config;
use crate::datadir::DataDir;
use crate::fsutil;
use crate::manage::enrollment;

/// Where the CA comes from.
pub enum CaSource {
    /// Make a new RSA-2048 CA.
    Generate,
    /// Adopt an existing CA (e.g. an ipxe-boot-server `ca_cert/ca.crt` + `ca.key`).
    Import { cert: PathBuf, key: PathBuf },
}

/// Where the HTTPS server's certificate comes from.
pub enum ServerCertSource {
    /// Issue one from the CA for the server names.
    Issue,
    /// Use an externally issued one (e.g. Let's Encrypt): PEM chain + key.
    External { cert: PathBuf, key: PathBuf },
}

pub struct InitOptions {
    pub server_names: Vec<String>,
    pub listen: SocketAddr,
    pub ca: CaSource,
    pub server_cert: ServerCertSource,
}

/// What init did, for the CLI to report.
pub struct InitReport {
    pub ca: CertInfo,
    pub warnings: Vec<String>,
}

/// Name prefix of the folder a data directory is assembled in.
const INIT_PREFIX: &str = ".bootgate-init-";

/// Creates the data directory `target`; refused if it exists and is not empty.
pub fn create(target: &Path, opts: &InitOptions) -> Result<InitReport> {
    if opts.server_names.is_empty() {
        bail!("give at least one --server-name (the DNS name or IP address machines use)");
    }
    for name in &opts.server_names {
        validate_server_name(name)?;
    }
    refuse_existing(target)?;

    let parent = match target.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    fsutil::create_dir(&parent)?;
    // An init that is still running holds its folder's lock; one whose lock
    // can be taken was interrupted.
    fsutil::remove_leftovers(&parent, |path| {
        path.file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with(INIT_PREFIX))
            && File::open(path).is_ok_and(|f| f.try_lock().is_ok())
    });
    let staging = tempfile::Builder::new()
        .prefix(INIT_PREFIX)
        .tempdir_in(&parent)
        .with_context(|| format!("creating a temporary folder in {}", parent.display()))?;
    let staging_lock = File::open(staging.path())
        .and_then(|f| f.lock().map(|()| f))
        .with_context(|| format!("locking {}", staging.path().display()))?;
    let dir = DataDir::new(staging.path());
    let report = populate(&dir, opts)?;
    std::fs::set_permissions(
        staging.path(),
        std::os::unix::fs::PermissionsExt::from_mode(fsutil::DIR),
    )
    .with_context(|| format!("setting the mode of {}", staging.path().display()))?;

    let staging = staging.keep();
    std::fs::rename(&staging, target).with_context(|| {
        let _ = std::fs::remove_dir_all(&staging);
        format!("moving the new data directory to {}", target.display())
    })?;
    fsutil::sync_dir(&parent);
    drop(staging_lock);
    Ok(report)
}

fn refuse_existing(target: &Path) -> Result<()> {
    if DataDir::new(target).is_initialised() {
        bail!(
            "{} is already a bootgate data directory; refusing to overwrite it",
            target.display()
        );
    }
    match std::fs::read_dir(target) {
        Ok(mut entries) => {
            if entries.next().is_some() {
                bail!(
                    "{} exists and is not empty; choose another --data folder",
                    target.display()
                );
            }
            Ok(())
        }
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(err) => Err(err).with_context(|| format!("reading {}", target.display())),
    }
}

fn validate_server_name(name: &str) -> Result<()> {
    if name.parse::<std::net::IpAddr>().is_ok() {
        return Ok(());
    }
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    if name.len() > 253 || !name.split('.').all(label_ok) {
        bail!(
            "invalid --server-name {name:?}: give a DNS name (boot.example.com) or an IP address"
        );
    }
    Ok(())
}

fn populate(dir: &DataDir, opts: &InitOptions) -> Result<InitReport> {
    let mut warnings = Vec::new();
    fsutil::create_private_dir(&dir.ca_dir())?;
    fsutil::create_private_dir(&dir.server_dir())?;
    fsutil::create_private_dir(&dir.machines_dir())?;
    fsutil::create_dir(&dir.files_dir())?;
    let (ca, ca_info) = install_ca(dir, opts, &mut warnings)?;
    install_server_cert(dir, opts, &ca, &mut warnings)?;
    let mut config = Config::new(opts.server_names.clone(), opts.listen);
    // A takeover serves gateways flashed with the original's pre-2024 iPXE.
    config.legacy_tls = matches!(opts.ca, CaSource::Import { .. });
    config.save(dir)?;
    enrollment::write_default_template(dir)?;
    Ok(InitReport {
        ca: ca_info,
        warnings,
    })
}

/// Generates the CA or imports the given one into `ca/`.
fn install_ca(
    dir: &DataDir,
    opts: &InitOptions,
    warnings: &mut Vec<String>,
) -> Result<(Ca, CertInfo)> {
    let installed = match &opts.ca {
        CaSource::Generate => {
            let (ca, issued) = Ca::generate(&format!("bootgate CA {}", opts.server_names[0]))?;
            fsutil::write_atomic(
                &dir.ca_cert_path(),
                issued.cert_pem.as_bytes(),
                fsutil::PUBLIC,
            )?;
            fsutil::write_atomic(
                &dir.ca_key_path(),
                issued.key_pem().as_bytes(),
                fsutil::PRIVATE,
            )?;
            (ca, issued.info)
        }
        CaSource::Import { cert, key } => {
            let cert_pem = read_text(cert)?;
            let key_pem = zeroize::Zeroizing::new(read_text(key)?);
            let ca = Ca::from_pem(&cert_pem, &key_pem)
                .with_context(|| format!("importing the CA {}", cert.display()))?;
            let info = CertInfo::from_der(ca.cert_der())?;
            if info.not_before_time() > ca::epoch() + time::Duration::days(1) {
                warnings.push(format!(
                    "the imported CA is valid only from {}: boards without a clock (Raspberry Pi) will reject it until their clock passes that date",
                    info.not_before
                ));
            }
            let key = PrivateKey::from_pem(&key_pem)?;
            fsutil::write_atomic(&dir.ca_cert_path(), cert_pem.as_bytes(), fsutil::PUBLIC)?;
            fsutil::write_atomic(&dir.ca_key_path(), key.to_pem().as_bytes(), fsutil::PRIVATE)?;
            (ca, info)
        }
    };
    Ok(installed)
}

/// Issues the server certificate from `ca`, or installs the given one.
fn install_server_cert(
    dir: &DataDir,
    opts: &InitOptions,
    ca: &Ca,
    warnings: &mut Vec<String>,
) -> Result<()> {
    match &opts.server_cert {
        ServerCertSource::Issue => {
            let issued = ca.issue_server(&opts.server_names)?;
            let chain = issued.cert_pem.clone();
            fsutil::write_atomic(&dir.server_cert_path(), chain.as_bytes(), fsutil::PUBLIC)?;
            fsutil::write_atomic(
                &dir.server_key_path(),
                issued.key_pem().as_bytes(),
                fsutil::PRIVATE,
            )?;
        }
        ServerCertSource::External {
            cert,
            key: key_path,
        } => {
            let chain_pem = read_text(cert)?;
            let key_pem = zeroize::Zeroizing::new(read_text(key_path)?);
            let chain = ca::chain_from_pem(&chain_pem)
                .with_context(|| format!("reading {}", cert.display()))?;
            let key = PrivateKey::from_pem(&key_pem)
                .with_context(|| format!("reading {}", key_path.display()))?;
            if !ca::key_matches(&chain[0], &key)? {
                bail!(
                    "{} does not match the key {}",
                    cert.display(),
                    key_path.display()
                );
            }
            let info = CertInfo::from_der(&chain[0])?;
            if info.not_before_time() > ca::epoch() + time::Duration::days(1) {
                warnings.push(format!(
                    "the server certificate is valid only from {}: iPXE on boards without a clock rejects it",
                    info.not_before
                ));
            }
            fsutil::write_atomic(
                &dir.server_cert_path(),
                chain_pem.as_bytes(),
                fsutil::PUBLIC,
            )?;
            fsutil::write_atomic(
                &dir.server_key_path(),
                key.to_pem().as_bytes(),
                fsutil::PRIVATE,
            )?;
        }
    }
    Ok(())
}

fn read_text(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))
}
