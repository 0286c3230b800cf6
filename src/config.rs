//! `bootgate.toml`: the server's settings, parsed and validated once at start-up.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};

use crate::datadir::DataDir;
use crate::fsutil;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Names and addresses machines use to reach the server; the server
    /// certificate carries each as a SAN. The first one makes the public URL.
    pub server_names: Vec<String>,
    /// Address the HTTPS listener binds (`serve --listen` overrides it).
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// URL baked into images and given to scripts as `$server_url`; defaults to
    /// `https://<first server name>[:<listen port> unless 443]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_url: Option<String>,
    /// How long a `$secrets_url` stays valid after the script that minted it.
    #[serde(default = "default_secrets_ttl")]
    pub secrets_ttl_secs: u64,
    /// Address of the plain-HTTP admin listener (status page, `/metrics`,
    /// history API), or `off`; `serve --admin-listen` overrides it.
    #[serde(default)]
    pub admin_listen: AdminListen,
    /// Serve clients that speak only the TLS 1.2 suites of iPXE built before
    /// 2024 (RSA or DHE key exchange, AES-CBC/GCM) through OpenSSL. Needed to
    /// take over gateways flashed by ipxe-boot-server; costs forward secrecy
    /// for clients that choose RSA key exchange. See docs/security.md.
    #[serde(default)]
    pub legacy_tls: bool,
    /// Boot history: retention and boot grouping.
    #[serde(default)]
    pub events: EventsConfig,
    /// Boot configuration (`files/`, `profiles/`) taken from a git branch
    /// instead of the data directory; see docs/git.md.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub git: Option<GitConfig>,
    /// Per-machine scratch space on an object store; off without it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scratch: Option<crate::scratch::ScratchConfig>,
}

/// `[git]` in bootgate.toml: where the boot configuration comes from.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct GitConfig {
    /// URL `git fetch` understands (`https://`, `ssh://`, `file://`, a path).
    pub remote: String,
    /// Branch whose head is served.
    #[serde(default = "default_branch")]
    pub branch: String,
    /// The server syncs this often (seconds) on its own; none: only on demand.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub poll_secs: Option<u64>,
    /// Private key for `ssh://` remotes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ssh_key: Option<std::path::PathBuf>,
    /// A git-credential-store file (`https://user:token@host` lines) for
    /// `https://` remotes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials_file: Option<std::path::PathBuf>,
    /// File holding the token `POST /config/sync` on the admin listener
    /// requires; without it that trigger is off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trigger_token_file: Option<std::path::PathBuf>,
    /// A git command that takes longer than this is killed.
    #[serde(default = "default_git_timeout")]
    pub timeout_secs: u64,
    /// A commit holding a file larger than this (MiB) is rejected.
    #[serde(default = "default_max_file_mib")]
    pub max_file_mib: u64,
}

fn default_branch() -> String {
    "main".into()
}

fn default_git_timeout() -> u64 {
    300
}

fn default_max_file_mib() -> u64 {
    1024
}

impl GitConfig {
    pub fn new(remote: String, branch: String) -> Self {
        Self {
            remote,
            branch,
            poll_secs: None,
            ssh_key: None,
            credentials_file: None,
            trigger_token_file: None,
            timeout_secs: default_git_timeout(),
            max_file_mib: default_max_file_mib(),
        }
    }
}

/// Where the admin listener listens, if anywhere.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdminListen {
    Off,
    At(SocketAddr),
}

impl Default for AdminListen {
    /// Loopback only: the admin listener has no authentication.
    fn default() -> Self {
        Self::At(SocketAddr::from(([127, 0, 0, 1], 8444)))
    }
}

impl std::str::FromStr for AdminListen {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> Result<Self> {
        if s == "off" {
            return Ok(Self::Off);
        }
        s.parse()
            .map(Self::At)
            .map_err(|_| anyhow::anyhow!("invalid admin address {s:?}: use IP:PORT or off"))
    }
}

impl std::fmt::Display for AdminListen {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Off => f.write_str("off"),
            Self::At(addr) => write!(f, "{addr}"),
        }
    }
}

impl Serialize for AdminListen {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for AdminListen {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

/// `[events]` in bootgate.toml.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct EventsConfig {
    /// Events older than this many days are deleted.
    pub retention_days: u64,
    /// At most this many events are kept; the oldest go first.
    pub max_events: u64,
    /// A boot is settled (counted in the metrics as it stands) once its
    /// machine has been quiet this long.
    pub boot_settle_secs: u64,
    /// Memory for the store's page cache, in MiB.
    pub cache_mib: u64,
}

impl Default for EventsConfig {
    fn default() -> Self {
        Self {
            retention_days: 30,
            max_events: 100_000,
            boot_settle_secs: 300,
            cache_mib: (crate::events::store::DEFAULT_CACHE_BYTES >> 20) as u64,
        }
    }
}

impl EventsConfig {
    pub fn retention(&self) -> crate::events::store::Retention {
        crate::events::store::Retention {
            max_age: Duration::from_secs(self.retention_days.saturating_mul(86_400)),
            max_events: self.max_events,
        }
    }

    pub fn cache_bytes(&self) -> usize {
        (self.cache_mib as usize).saturating_mul(1 << 20)
    }

    pub fn boot_settle(&self) -> Duration {
        Duration::from_secs(self.boot_settle_secs)
    }
}

fn default_listen() -> SocketAddr {
    SocketAddr::from(([0, 0, 0, 0], 8443))
}

fn default_secrets_ttl() -> u64 {
    60
}

impl Config {
    pub fn new(server_names: Vec<String>, listen: SocketAddr) -> Self {
        Self {
            server_names,
            listen,
            public_url: None,
            secrets_ttl_secs: default_secrets_ttl(),
            admin_listen: AdminListen::default(),
            legacy_tls: false,
            events: EventsConfig::default(),
            git: None,
            scratch: None,
        }
    }

    pub fn load(dir: &DataDir) -> Result<Self> {
        let path = dir.config_path();
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        let config: Config =
            toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
        config
            .validate()
            .with_context(|| format!("checking {}", path.display()))?;
        Ok(config)
    }

    pub fn save(&self, dir: &DataDir) -> Result<()> {
        let text = format!(
            "# bootgate configuration; see docs/configuration.md\n{}",
            toml::to_string(self).context("serialising configuration")?
        );
        fsutil::write_atomic(&dir.config_path(), text.as_bytes(), fsutil::PUBLIC)
    }

    fn validate(&self) -> Result<()> {
        if self.server_names.is_empty() {
            bail!("server_names is empty: list at least one name machines use to reach the server");
        }
        if let Some(url) = &self.public_url
            && !url.starts_with("https://")
        {
            bail!("public_url must start with https:// (got {url:?})");
        }
        if self.secrets_ttl_secs == 0 {
            bail!("secrets_ttl_secs must be at least 1");
        }
        if self.events.retention_days == 0 || self.events.max_events == 0 {
            bail!("[events] retention_days and max_events must be at least 1");
        }
        if !(1..=4096).contains(&self.events.cache_mib) {
            bail!("[events] cache_mib must be between 1 and 4096");
        }
        if self.events.boot_settle_secs == 0 {
            bail!("[events] boot_settle_secs must be at least 1");
        }
        if let Some(git) = &self.git {
            if git.remote.is_empty() || git.branch.is_empty() {
                bail!("[git] remote and branch must not be empty");
            }
            if git.poll_secs == Some(0) || git.timeout_secs == 0 || git.max_file_mib == 0 {
                bail!("[git] poll_secs, timeout_secs and max_file_mib must be at least 1");
            }
        }
        if let Some(scratch) = &self.scratch {
            scratch.validate()?;
        }
        Ok(())
    }

    pub fn secrets_ttl(&self) -> Duration {
        Duration::from_secs(self.secrets_ttl_secs)
    }

    /// The URL machines use to reach the server, without a trailing slash.
    pub fn public_url(&self) -> String {
        if let Some(url) = &self.public_url {
            return url.trim_end_matches('/').to_string();
        }
        let name = &self.server_names[0];
        let host = if name.parse::<std::net::Ipv6Addr>().is_ok() {
            format!("[{name}]")
        } else {
            name.clone()
        };
        match self.listen.port() {
            443 => format!("https://{host}"),
            port => format!("https://{host}:{port}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn public_url_includes_port_unless_443() {
        let mut config = Config::new(vec!["boot.example.com".into()], default_listen());
        assert_eq!(config.public_url(), "https://boot.example.com:8443");
        config.listen = "0.0.0.0:443".parse().unwrap();
        assert_eq!(config.public_url(), "https://boot.example.com");
        config.server_names = vec!["fd00::1".into()];
        assert_eq!(config.public_url(), "https://[fd00::1]");
        config.public_url = Some("https://proxy.example.com/".into());
        assert_eq!(config.public_url(), "https://proxy.example.com");
    }

    #[test]
    fn events_and_admin_settings_default_and_parse() {
        let minimal: Config = toml::from_str("server_names = [\"a\"]").unwrap();
        assert_eq!(minimal.admin_listen.to_string(), "127.0.0.1:8444");
        assert_eq!(minimal.events, EventsConfig::default());
        assert!(!minimal.legacy_tls);
        let set: Config = toml::from_str(
            "server_names = [\"a\"]\nadmin_listen = \"off\"\n[events]\nmax_events = 5\n",
        )
        .unwrap();
        assert_eq!(set.admin_listen, AdminListen::Off);
        assert_eq!(set.events.max_events, 5);
        assert_eq!(set.events.retention_days, 30);
        assert!(
            toml::from_str::<Config>("server_names = [\"a\"]\n[events]\nmax_event = 5\n").is_err()
        );
        assert!("nowhere".parse::<AdminListen>().is_err());
    }

    #[test]
    fn round_trips_through_toml() {
        let config = Config::new(vec!["a".into(), "10.0.0.1".into()], default_listen());
        let text = toml::to_string(&config).unwrap();
        assert_eq!(toml::from_str::<Config>(&text).unwrap(), config);
    }
}
