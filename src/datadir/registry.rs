//! The machine registry (`registry.json`): which machines are enrolled, under
//! which certificate, and whether they are revoked. It is the commit point of
//! every enrollment: files are written first, the registry last, atomically.

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};

use crate::ca::{CertInfo, Fingerprint};
use crate::datadir::DataDir;
use crate::datadir::statefile::StateFile;
pub use crate::names::MachineName;
use crate::names::ProfileName;

const VERSION: u32 = 1;

/// How a machine's certificate came to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Origin {
    /// Issued by `bootgate machine add`; the key is in `machines/<name>/`.
    Issued,
    /// Registered by `bootgate machine adopt`; the key stayed wherever it was.
    Adopted,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Machine {
    pub name: MachineName,
    pub fingerprint: Fingerprint,
    pub sha256: String,
    pub serial: String,
    pub not_before: String,
    pub not_after: String,
    pub origin: Origin,
    pub enrolled_at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked_at: Option<String>,
    /// The profile whose script and files the machine falls back to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<ProfileName>,
}

impl Machine {
    pub fn new(name: MachineName, cert: &CertInfo, origin: Origin) -> Self {
        Self {
            name,
            fingerprint: cert.fingerprint.clone(),
            sha256: cert.sha256.clone(),
            serial: cert.serial.clone(),
            not_before: cert.not_before.clone(),
            not_after: cert.not_after.clone(),
            origin,
            enrolled_at: crate::ca::rfc3339(time::OffsetDateTime::now_utc()),
            revoked_at: None,
            profile: None,
        }
    }

    pub fn is_revoked(&self) -> bool {
        self.revoked_at.is_some()
    }
}

#[cfg(test)]
impl Machine {
    /// An issued machine with this name and certificate fingerprint.
    pub(crate) fn sample(name: &str, fingerprint: &str) -> Self {
        let cert = CertInfo {
            fingerprint: fingerprint.parse().expect("a valid fingerprint"),
            sha256: "s".repeat(64),
            serial: "01".into(),
            subject_cn: None,
            not_before: String::new(),
            not_after: String::new(),
            is_ca: false,
        };
        Self::new(name.parse().expect("a valid name"), &cert, Origin::Issued)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Registry {
    version: u32,
    machines: Vec<Machine>,
}

impl Default for Registry {
    fn default() -> Self {
        Self {
            version: VERSION,
            machines: Vec::new(),
        }
    }
}

impl StateFile for Registry {
    const WHAT: &'static str = "registry";
    const VERSION: u32 = VERSION;
    fn version(&self) -> u32 {
        self.version
    }
}

impl Registry {
    /// Loads the registry; a data directory without one has no machines.
    pub fn load(dir: &DataDir) -> Result<Self> {
        Self::load_from(&dir.registry_path())
    }

    pub fn parse(text: &[u8]) -> Result<Self> {
        <Self as StateFile>::parse(text)
    }

    pub fn save(&self, dir: &DataDir) -> Result<()> {
        self.save_to(&dir.registry_path())
    }

    pub fn machines(&self) -> &[Machine] {
        &self.machines
    }

    pub fn get(&self, name: &str) -> Option<&Machine> {
        self.machines.iter().find(|m| m.name.as_ref() == name)
    }

    /// Looks a machine up, or fails with a message listing what to do.
    pub fn require(&self, name: &str) -> Result<&Machine> {
        self.get(name).with_context(|| {
            format!("no machine named {name:?}; `bootgate machine list` shows the enrolled ones")
        })
    }

    pub fn get_mut(&mut self, name: &str) -> Option<&mut Machine> {
        self.machines.iter_mut().find(|m| m.name.as_ref() == name)
    }

    /// Machines that use `profile`.
    pub fn using_profile<'a>(&'a self, profile: &'a str) -> impl Iterator<Item = &'a Machine> {
        self.machines
            .iter()
            .filter(move |m| m.profile.as_ref().is_some_and(|p| p.as_ref() == profile))
    }

    pub fn by_fingerprint(&self, fingerprint: &Fingerprint) -> Option<&Machine> {
        self.machines.iter().find(|m| m.fingerprint == *fingerprint)
    }

    /// Adds a machine; its name and its certificate must both be new.
    pub fn add(&mut self, machine: Machine) -> Result<()> {
        if self.get(machine.name.as_ref()).is_some() {
            bail!("a machine named {:?} already exists", machine.name.as_ref());
        }
        if let Some(other) = self.by_fingerprint(&machine.fingerprint) {
            bail!(
                "this certificate is already enrolled as {:?}",
                other.name.as_ref()
            );
        }
        self.machines.push(machine);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn machine_names_are_folder_safe() {
        for good in ["gw-1", "rpi4.lab", "A_b", "9"] {
            assert!(good.parse::<MachineName>().is_ok(), "{good}");
        }
        for bad in [
            "",
            "..",
            ".hidden",
            "-x",
            "a/b",
            "a b",
            "é",
            &"x".repeat(64),
        ] {
            assert!(bad.parse::<MachineName>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn refuses_duplicates_and_unknown_versions() {
        let cert = CertInfo {
            fingerprint: "a".repeat(40).parse().unwrap(),
            sha256: "b".repeat(64),
            serial: "01".into(),
            subject_cn: None,
            not_before: "1970-01-01T00:00:00Z".into(),
            not_after: "2036-01-01T00:00:00Z".into(),
            is_ca: false,
        };
        let mut reg = Registry::default();
        reg.add(Machine::new("a".parse().unwrap(), &cert, Origin::Issued))
            .unwrap();
        let dup_name = reg.add(Machine::new("a".parse().unwrap(), &cert, Origin::Issued));
        assert!(dup_name.unwrap_err().to_string().contains("already exists"));
        let dup_cert = reg.add(Machine::new("b".parse().unwrap(), &cert, Origin::Adopted));
        assert!(
            dup_cert
                .unwrap_err()
                .to_string()
                .contains("already enrolled")
        );

        let text = serde_json::to_vec(&reg).unwrap();
        assert_eq!(Registry::parse(&text).unwrap(), reg);
        assert!(Registry::parse(br#"{"version":9,"machines":[]}"#).is_err());
        assert!(Registry::parse(br#"{"version":1,"machines":[{"name":"../x"}]}"#).is_err());
    }

    #[test]
    fn profiles_are_optional_and_validated() {
        let old = br#"{"version":1,"machines":[{"name":"gw","fingerprint":"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
            "sha256":"bb",
            "serial":"01","not_before":"x","not_after":"y","origin":"issued","enrolled_at":"z"}]}"#;
        let reg = Registry::parse(old).unwrap();
        assert_eq!(reg.machines()[0].profile, None);
        let text = String::from_utf8(serde_json::to_vec(&reg).unwrap()).unwrap();
        assert!(!text.contains("profile"), "{text}");

        let with = String::from_utf8(old.to_vec()).unwrap().replace(
            r#""enrolled_at":"z""#,
            r#""enrolled_at":"z","profile":"rpi-gw""#,
        );
        let reg = Registry::parse(with.as_bytes()).unwrap();
        assert_eq!(reg.using_profile("rpi-gw").count(), 1);
        assert!(Registry::parse(with.replace("rpi-gw", "../x").as_bytes()).is_err());
    }
}
