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
    fn round_trips_through_toml() {
        let config = Config::new(vec!["a".into(), "10.0.0.1".into()], default_listen());
        let text = toml::to_string(&config).unwrap();
        assert_eq!(toml::from_str::<Config>(&text).unwrap(), config);
    }
}
