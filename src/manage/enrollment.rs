//! Machine enrollment: `bootgate machine add | adopt | revoke | set-profile`.
//! Each command takes the data directory's lock, writes its files first and
//! commits by saving the registry last, so an interrupted command never leaves
//! a registry entry pointing at missing files.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};

use crate::ca::{self, Ca, CertInfo};
use crate::datadir::profiles;
use crate::datadir::registry::{Machine, MachineName, Origin, Registry};
use crate::datadir::{DataDir, SCRIPT_FILE};
use crate::fsutil;
use crate::names::ProfileName;

/// The script a newly enrolled machine gets until someone writes its own.
pub const DEFAULT_MACHINE_TEMPLATE: &str = include_str!("../../templates/machine-boot.ipxe");

pub fn write_default_template(dir: &DataDir) -> Result<()> {
    let path = dir.machine_template_path();
    fsutil::create_dir(path.parent().expect("has a parent"))?;
    fsutil::write_new(&path, DEFAULT_MACHINE_TEMPLATE.as_bytes(), fsutil::PUBLIC)?;
    Ok(())
}

/// The template ([`DataDir::machine_template_path`], the editable copy of
/// [`DEFAULT_MACHINE_TEMPLATE`]), opened beneath its folder: it is copied into a served
/// folder, so a link to a key must not be followed.
fn machine_template(dir: &DataDir) -> Result<String> {
    let path = dir.machine_template_path();
    let read = || -> std::io::Result<String> {
        let folder = fsutil::beneath::Dir::open(fsutil::parent_of(&path))?;
        let name = path.file_name().expect("has a name");
        let (mut file, _) = folder.open_file(std::path::Path::new(name))?;
        let mut text = String::new();
        std::io::Read::read_to_string(&mut file, &mut text)?;
        Ok(text)
    };
    match read() {
        Ok(text) => Ok(text),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
            Ok(DEFAULT_MACHINE_TEMPLATE.to_string())
        }
        Err(err) => Err(err).with_context(|| format!("reading {}", path.display())),
    }
}

/// Issues a client certificate and key for a new machine and gives it a
/// `files/<fingerprint>/boot.ipxe` from the template, or, with a profile, no
/// folder of its own: its own script would shadow the profile's.
pub fn add(dir: &DataDir, name: &MachineName, profile: Option<&ProfileName>) -> Result<Machine> {
    let _lock = dir.lock()?;
    if let Some(profile) = profile {
        profiles::require(dir, profile.as_ref())?;
    }
    let mut registry = Registry::load(dir)?;
    if registry.get(name.as_ref()).is_some() {
        bail!(
            "a machine named {:?} already exists; `bootgate machine show {name}` shows it",
            name.as_ref()
        );
    }
    let machine_dir = dir.machine_dir(name.as_ref());
    if machine_dir.exists() {
        bail!(
            "{} exists but {:?} is not in the registry (left by an interrupted command?); move it away and try again",
            machine_dir.display(),
            name.as_ref()
        );
    }
    let template = machine_template(dir)?;
    let ca = Ca::load(dir)?;
    let issued = ca.issue_client(name.as_ref())?;

    // Assemble the machine's folder under a temporary name, then rename it.
    let staging = tempfile::Builder::new()
        .prefix(".bootgate-add-")
        .tempdir_in(dir.machines_dir())
        .context("creating a temporary folder under machines/")?;
    let key_path = staging.path().join("client.key");
    fsutil::write_atomic(&key_path, issued.key_pem().as_bytes(), fsutil::PRIVATE)?;
    fsutil::write_atomic(
        &staging.path().join("client.crt"),
        issued.cert_pem.as_bytes(),
        fsutil::PUBLIC,
    )?;
    std::fs::set_permissions(
        staging.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o700),
    )?;

    if profile.is_none() {
        let files = dir.machine_files_dir(&issued.info.fingerprint);
        fsutil::create_dir(&files)?;
        fsutil::write_new(
            &files.join(SCRIPT_FILE),
            template.as_bytes(),
            fsutil::PUBLIC,
        )?;
    }

    std::fs::rename(staging.keep(), &machine_dir)
        .with_context(|| format!("creating {}", machine_dir.display()))?;
    let mut machine = Machine::new(name.clone(), &issued.info, Origin::Issued);
    machine.profile = profile.cloned();
    registry.add(machine.clone())?;
    registry.save(dir)?;
    Ok(machine)
}

/// Registers a client certificate issued elsewhere by this data directory's CA,
/// e.g. by ipxe-boot-server, so its existing `files/<fingerprint>/` is served.
///
/// Certificates the server would refuse are refused here, so a takeover fails
/// at adoption, not at the first boot: the server's own certificate, one
/// without `clientAuth` in its extended key usage and, unless `force`, one
/// outside its validity period.
pub fn adopt(
    dir: &DataDir,
    cert_pem: &str,
    name: Option<&MachineName>,
    force: bool,
) -> Result<Machine> {
    let _lock = dir.lock()?;
    let mut registry = Registry::load(dir)?;
    let der = ca::der_from_pem(cert_pem)?;
    let info = CertInfo::from_der(&der)?;
    if info.is_ca {
        bail!("this is a CA certificate, not a machine's client certificate");
    }
    // v1 is what the original's `openssl ca` issued; such a machine is served
    // through the legacy TLS stack (`legacy_tls`), which accepts v1.
    let version = ca::x509_version(&der)?;
    if version == 2 {
        bail!("this is an X.509 v2 certificate; only v1 and v3 client certificates are served");
    }
    refuse_unusable(dir, &der, &info, force)?;
    let ca_pem = std::fs::read_to_string(dir.ca_cert_path())
        .with_context(|| format!("reading {}", dir.ca_cert_path().display()))?;
    let ca_der = ca::der_from_pem(&ca_pem)?;
    ca::verify_issued_by(&der, &ca_der)
        .context("this certificate was not issued by this data directory's CA")?;
    let name = match name {
        Some(name) => name.clone(),
        None => info
            .subject_cn
            .as_deref()
            .context("the certificate has no common name; give one with --name")?
            .parse()
            .context(
                "the certificate's common name is not a valid machine name; give one with --name",
            )?,
    };
    if registry.get(name.as_ref()).is_some() {
        bail!(
            "a machine named {:?} already exists; choose another with --name",
            name.as_ref()
        );
    }
    let machine = Machine::new(name.clone(), &info, Origin::Adopted);
    // Check for a duplicate certificate before touching the disk.
    registry.add(machine.clone())?;
    let machine_dir = dir.machine_dir(name.as_ref());
    fsutil::create_private_dir(&machine_dir)?;
    fsutil::write_atomic(
        &machine_dir.join("client.crt"),
        pem_of(&der).as_bytes(),
        fsutil::PUBLIC,
    )?;
    registry.save(dir)?;
    Ok(machine)
}

/// Refuses a certificate the boot server would never accept from a machine.
fn refuse_unusable(dir: &DataDir, der: &[u8], info: &CertInfo, force: bool) -> Result<()> {
    let server_pem = std::fs::read_to_string(dir.server_cert_path())
        .with_context(|| format!("reading {}", dir.server_cert_path().display()))?;
    if ca::chain_from_pem(&server_pem)?
        .iter()
        .any(|cert| cert.as_ref() == der)
    {
        bail!("this is the boot server's own certificate, not a machine's client certificate");
    }
    if !ca::allows_client_auth(der)? {
        bail!(
            "this certificate's extended key usage does not include TLS client authentication (clientAuth); the server would refuse it: re-issue it with `extendedKeyUsage=clientAuth` or enroll the machine with `bootgate machine add`"
        );
    }
    if force {
        return Ok(());
    }
    let now = time::OffsetDateTime::now_utc();
    if now > info.not_after_time() {
        bail!(
            "this certificate expired on {}; the server would refuse it (give --force to adopt it anyway)",
            info.not_after
        );
    }
    if now < info.not_before_time() {
        bail!(
            "this certificate is not valid before {}; the server would refuse it until then (give --force to adopt it anyway)",
            info.not_before
        );
    }
    Ok(())
}

/// Marks a machine revoked; a running server refuses it from its next request.
/// Returns false when it was already revoked.
pub fn revoke(dir: &DataDir, name: &str) -> Result<bool> {
    let _lock = dir.lock()?;
    let mut registry = Registry::load(dir)?;
    registry.require(name)?;
    let machine = registry.get_mut(name).expect("just checked");
    if machine.is_revoked() {
        return Ok(false);
    }
    machine.revoked_at = Some(ca::rfc3339(time::OffsetDateTime::now_utc()));
    registry.save(dir)?;
    Ok(true)
}

/// What `set_profile` did.
pub struct ProfileChange {
    pub previous: Option<ProfileName>,
    /// The machine's own `boot.ipxe` was the untouched placeholder from
    /// `machine add` and was removed so the profile's script applies.
    pub removed_placeholder: Option<PathBuf>,
    /// The machine's own `boot.ipxe`, which keeps taking precedence.
    pub shadowed_by: Option<PathBuf>,
}

/// Makes a machine use a profile (`None`: no profile any more). Its own
/// `boot.ipxe` wins over the profile's; when it is still the placeholder
/// `machine add` wrote, it is removed, otherwise reported.
pub fn set_profile(
    dir: &DataDir,
    name: &str,
    profile: Option<&ProfileName>,
) -> Result<ProfileChange> {
    let _lock = dir.lock()?;
    let mut registry = Registry::load(dir)?;
    registry.require(name)?;
    if let Some(profile) = profile {
        profiles::require(dir, profile.as_ref())?;
    }
    let machine = registry.get_mut(name).expect("just checked");
    let previous = std::mem::replace(&mut machine.profile, profile.cloned());
    let own_script = dir.machine_script_path(&machine.fingerprint);
    registry.save(dir)?;

    let mut change = ProfileChange {
        previous,
        removed_placeholder: None,
        shadowed_by: None,
    };
    if profile.is_some() {
        match std::fs::read_to_string(&own_script) {
            Ok(text) if text == machine_template(dir)? || text == DEFAULT_MACHINE_TEMPLATE => {
                std::fs::remove_file(&own_script)
                    .with_context(|| format!("removing {}", own_script.display()))?;
                change.removed_placeholder = Some(own_script);
            }
            Ok(_) => change.shadowed_by = Some(own_script),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
            Err(err) => {
                return Err(err).with_context(|| format!("reading {}", own_script.display()));
            }
        }
    }
    Ok(change)
}

fn pem_of(der: &[u8]) -> String {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut pem = String::from("-----BEGIN CERTIFICATE-----\n");
    for line in b64.as_bytes().chunks(64) {
        pem.push_str(std::str::from_utf8(line).expect("base64 is ASCII"));
        pem.push('\n');
    }
    pem.push_str("-----END CERTIFICATE-----\n");
    pem
}
