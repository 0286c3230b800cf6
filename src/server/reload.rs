//! Applying a changed `bootgate.toml` to the running server (`SIGHUP`,
//! `systemctl reload`). Connections and downloads in flight are not touched.
//! A file that does not load is refused with its error and the settings in
//! force stay; settings tied to open sockets or loaded certificates are
//! reported as needing a restart.

use std::sync::{Arc, Mutex};

use anyhow::Result;

use super::state::AppState;
use crate::config::Config;

pub struct Reloader {
    state: Arc<AppState>,
    applied: Mutex<Config>,
}

impl Reloader {
    pub(super) fn new(state: Arc<AppState>, config: Config) -> Self {
        Self {
            state,
            applied: Mutex::new(config),
        }
    }

    /// Re-reads `bootgate.toml` and applies what can change live:
    /// `secrets_ttl_secs`.
    pub fn reload(&self) -> Result<()> {
        let config = Config::load(&self.state.dir)?;
        let mut applied = self.applied.lock().expect("config lock");
        self.state.secrets.set_ttl(config.secrets_ttl());
        let need_restart = restart_only_changes(&applied, &config);
        if !need_restart.is_empty() {
            tracing::warn!(
                "{} changed in bootgate.toml: takes effect when the server restarts (systemctl restart bootgate)",
                need_restart.join(", ")
            );
        }
        tracing::info!(
            secrets_ttl_secs = config.secrets_ttl_secs,
            "configuration reloaded"
        );
        *applied = config;
        Ok(())
    }
}

/// Settings that differ between `old` and `new` and only a restart applies.
fn restart_only_changes(old: &Config, new: &Config) -> Vec<&'static str> {
    [
        ("server_names", old.server_names != new.server_names),
        ("listen", old.listen != new.listen),
        ("public_url", old.public_url != new.public_url),
        ("admin_listen", old.admin_listen != new.admin_listen),
        ("[events]", old.events != new.events),
        ("[git]", old.git != new.git),
    ]
    .into_iter()
    .filter_map(|(setting, changed)| changed.then_some(setting))
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_the_settings_that_need_a_restart() {
        let old = Config::new(vec!["a".into()], "0.0.0.0:8443".parse().unwrap());
        let mut new = old.clone();
        new.secrets_ttl_secs = 5;
        assert!(restart_only_changes(&old, &new).is_empty());
        new.listen = "0.0.0.0:443".parse().unwrap();
        new.events.max_events = 7;
        assert_eq!(restart_only_changes(&old, &new), ["listen", "[events]"]);
    }
}
