//! `[scratch]` in bootgate.toml: which object store holds the machines'
//! scratch space, how bootgate reaches its admin API, and how keys rotate.
//! The admin token is read from a file (mode 0600 or stricter) or an
//! environment variable, never from bootgate.toml itself.

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ScratchConfig {
    /// The object store's kind; `garage` is the one implemented.
    pub provider: Provider,
    /// Where bootgate reaches the store's admin API (`http://127.0.0.1:3903`).
    pub admin_url: String,
    /// A file holding the admin token (not readable by group or others).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admin_token_file: Option<PathBuf>,
    /// An environment variable holding the admin token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admin_token_env: Option<String>,
    /// The S3 endpoint machines use (`$s3_endpoint`).
    pub s3_endpoint: String,
    /// The S3 region the store answers to.
    #[serde(default = "default_region")]
    pub region: String,
    /// `every-render`: a new key at each boot script, the previous one
    /// deleted; `stable`: one key per machine, kept until revocation.
    #[serde(default)]
    pub key_rotation: KeyRotation,
    /// Longest a boot script waits for the store before it is served with
    /// empty scratch variables.
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum Provider {
    Garage,
}

#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum KeyRotation {
    #[default]
    EveryRender,
    Stable,
}

fn default_region() -> String {
    "garage".into()
}

fn default_timeout_ms() -> u64 {
    3000
}

impl ScratchConfig {
    pub fn validate(&self) -> Result<()> {
        if !self.admin_url.starts_with("http://") {
            bail!(
                "[scratch] admin_url must start with http:// (got {:?}); keep the admin API on loopback or a private network",
                self.admin_url
            );
        }
        self.admin_url
            .parse::<http::Uri>()
            .with_context(|| format!("[scratch] admin_url {:?} is not a URL", self.admin_url))?;
        if !(self.s3_endpoint.starts_with("http://") || self.s3_endpoint.starts_with("https://")) {
            bail!(
                "[scratch] s3_endpoint must start with http:// or https:// (got {:?})",
                self.s3_endpoint
            );
        }
        if self.s3_endpoint.contains([',', ' ', '"', '$']) {
            bail!("[scratch] s3_endpoint must not hold commas, spaces, quotes or `$`");
        }
        match (&self.admin_token_file, &self.admin_token_env) {
            (Some(_), Some(_)) => {
                bail!("[scratch] set admin_token_file or admin_token_env, not both")
            }
            (None, None) => bail!(
                "[scratch] set admin_token_file (a 0600 file) or admin_token_env (a variable name)"
            ),
            _ => {}
        }
        if self.timeout_ms == 0 {
            bail!("[scratch] timeout_ms must be at least 1");
        }
        Ok(())
    }

    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms)
    }

    /// Reads the admin token from where the configuration says it is.
    pub fn admin_token(&self) -> Result<Zeroizing<String>> {
        let token = if let Some(path) = &self.admin_token_file {
            let meta = std::fs::metadata(path)
                .with_context(|| format!("reading the admin token {}", path.display()))?;
            if meta.permissions().mode() & 0o077 != 0 {
                bail!(
                    "{} is readable by group or others; run `chmod 600 {}`",
                    path.display(),
                    path.display()
                );
            }
            Zeroizing::new(
                std::fs::read_to_string(path)
                    .with_context(|| format!("reading the admin token {}", path.display()))?,
            )
        } else {
            let name = self.admin_token_env.as_deref().unwrap_or_default();
            Zeroizing::new(std::env::var(name).with_context(|| {
                format!("reading the admin token: environment variable {name} is not set")
            })?)
        };
        let trimmed = Zeroizing::new(token.trim().to_string());
        if trimmed.is_empty() {
            bail!("the store's admin token is empty");
        }
        Ok(trimmed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(extra: &str) -> Result<ScratchConfig> {
        let text = format!(
            "provider = \"garage\"\nadmin_url = \"http://127.0.0.1:3903\"\ns3_endpoint = \"http://10.0.0.1:3900\"\n{extra}"
        );
        let config: ScratchConfig = toml::from_str(&text)?;
        config.validate()?;
        Ok(config)
    }

    #[test]
    fn parses_defaults_and_refuses_bad_settings() {
        let c = config("admin_token_env = \"GARAGE_TOKEN\"").unwrap();
        assert_eq!(c.key_rotation, KeyRotation::EveryRender);
        assert_eq!(c.region, "garage");
        assert_eq!(c.timeout(), Duration::from_secs(3));
        let stable = config("admin_token_env = \"T\"\nkey_rotation = \"stable\"").unwrap();
        assert_eq!(stable.key_rotation, KeyRotation::Stable);
        assert!(config("").is_err(), "no token source");
        assert!(config("admin_token_env = \"T\"\nadmin_token_file = \"/x\"").is_err());
        assert!(config("admin_token_env = \"T\"\nkey_rotation = \"daily\"").is_err());
        assert!(config("admin_token_env = \"T\"\ntimeout_ms = 0").is_err());
        assert!(config("admin_token_env = \"T\"\nadmin_token = \"x\"").is_err());
    }

    #[test]
    fn token_file_must_be_private() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        std::fs::write(&path, "s3cr3t\n").unwrap();
        let mut c = config("admin_token_env = \"T\"").unwrap();
        c.admin_token_env = None;
        c.admin_token_file = Some(path.clone());
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = c.admin_token().unwrap_err().to_string();
        assert!(err.contains("chmod 600"), "{err}");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(c.admin_token().unwrap().as_str(), "s3cr3t");
    }
}
