//! Per-machine scratch space on an S3 object store: each machine gets a
//! private bucket named after its fingerprint and a key that opens that
//! bucket only, handed to its templates as `$s3_endpoint`,
//! `$s3_access_key_id`, `$s3_access_key` and `$s3_bucket_name`.
//!
//! The store is reached through [`store::ObjectStore`]; [`garage`] is the
//! provider implemented. Work for one machine is serialised (concurrent
//! renders never leave two live keys), and a render waits at most
//! `[scratch] timeout_ms` for it: the store's calls then finish in the
//! background, still holding the machine's lock, so the next render
//! starts from what they left.

pub mod config;
mod garage;
mod s3;
pub mod store;
mod transport;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result, anyhow, bail};

pub use config::{KeyRotation, ScratchConfig};
use store::{BucketInfo, Credentials, ObjectStore};

use crate::names::Fingerprint;

/// The template variables scratch space provides.
pub const VARIABLES: [&str; 4] = [
    "s3_endpoint",
    "s3_access_key_id",
    "s3_access_key",
    "s3_bucket_name",
];

/// The variable that holds key material.
pub const SECRET_VARIABLE: &str = "s3_access_key";

/// The bucket of the machine with this fingerprint: `bootgate-` and the 40
/// hex digits (49 characters, lowercase, valid for S3 and stable across
/// renames).
pub fn bucket_name(fingerprint: &Fingerprint) -> String {
    format!("bootgate-{fingerprint}")
}

/// The name its keys carry in the store, so they can be found again.
pub fn key_name(fingerprint: &Fingerprint) -> String {
    format!("bootgate-scratch-{fingerprint}")
}

/// What a machine's templates get.
#[derive(Debug, Clone)]
pub struct Grant {
    pub endpoint: String,
    pub bucket: String,
    pub credentials: Credentials,
}

impl Grant {
    pub fn vars(&self) -> [(&'static str, String); 4] {
        [
            ("s3_endpoint", self.endpoint.clone()),
            ("s3_access_key_id", self.credentials.access_key_id.clone()),
            (
                "s3_access_key",
                self.credentials.secret_access_key.as_str().to_string(),
            ),
            ("s3_bucket_name", self.bucket.clone()),
        ]
    }
}

/// What `machine show` prints about a machine's scratch space.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Status {
    pub bucket: String,
    pub exists: bool,
    pub key_ids: Vec<String>,
    pub bytes: Option<u64>,
    pub objects: Option<u64>,
}

pub struct Scratch {
    store: Arc<dyn ObjectStore>,
    config: ScratchConfig,
    /// One lock per machine: its store work happens one call chain at a time.
    locks: Mutex<HashMap<Fingerprint, Arc<tokio::sync::Mutex<()>>>>,
    /// Machines already warned about a secret key in their boot script.
    warned: Mutex<HashSet<String>>,
}

impl Scratch {
    pub fn from_config(config: &ScratchConfig) -> Result<Self> {
        config.validate()?;
        let token = config.admin_token()?;
        let store: Arc<dyn ObjectStore> = match config.provider {
            config::Provider::Garage => Arc::new(garage::Garage::new(
                &config.admin_url,
                token,
                &config.s3_endpoint,
                &config.region,
            )?),
        };
        Ok(Self {
            store,
            config: config.clone(),
            locks: Mutex::new(HashMap::new()),
            warned: Mutex::new(HashSet::new()),
        })
    }

    fn lock_of(&self, fingerprint: &Fingerprint) -> Arc<tokio::sync::Mutex<()>> {
        self.locks
            .lock()
            .expect("scratch locks")
            .entry(fingerprint.clone())
            .or_default()
            .clone()
    }

    /// The machine's bucket (created if missing) and a key for it: a new one
    /// (the previous ones deleted first) unless keys are stable. Bounded by
    /// `[scratch] timeout_ms`. `still_active` is asked once the key exists:
    /// a machine revoked meanwhile (by another process, which deleted the
    /// keys it saw) gets its new key deleted too, and no grant.
    pub async fn grant(
        self: &Arc<Self>,
        fingerprint: &Fingerprint,
        still_active: impl FnOnce() -> bool + Send + 'static,
    ) -> Result<Grant> {
        let timeout = self.config.timeout();
        let this = self.clone();
        let fingerprint = fingerprint.clone();
        let lock = self.lock_of(&fingerprint);
        let bounded = async move {
            let guard = lock.lock_owned().await;
            // Spawned, so a render that gives up does not cut the store's
            // calls short: the lock is released once they are done.
            tokio::spawn(async move {
                let _guard = guard;
                let grant = this.grant_now(&fingerprint).await?;
                if !still_active() {
                    this.delete_keys(&fingerprint).await?;
                    bail!("the machine was revoked while its key was made; the key is deleted");
                }
                Ok(grant)
            })
            .await
            .map_err(|err| anyhow!("scratch task failed: {err}"))?
        };
        tokio::time::timeout(timeout, bounded)
            .await
            .map_err(|_| anyhow!("the object store did not answer within {timeout:?}"))?
    }

    async fn grant_now(&self, fingerprint: &Fingerprint) -> Result<Grant> {
        let bucket = bucket_name(fingerprint);
        let info = self
            .store
            .ensure_bucket(&bucket)
            .await
            .with_context(|| format!("preparing bucket {bucket}"))?;
        let name = key_name(fingerprint);
        let existing = self.store.keys_named(&name).await?;
        let credentials = match (self.config.key_rotation, existing.as_slice()) {
            (KeyRotation::Stable, [only]) => self.store.key_secret(only).await?,
            _ => {
                for key_id in &existing {
                    self.store.delete_key(key_id).await?;
                }
                self.store.create_key(&name, &info.id).await?
            }
        };
        Ok(Grant {
            endpoint: self.config.s3_endpoint.clone(),
            bucket,
            credentials,
        })
    }

    /// Deletes every key of the machine (revocation); its bucket stays.
    pub async fn revoke(&self, fingerprint: &Fingerprint) -> Result<usize> {
        let lock = self.lock_of(fingerprint);
        let _guard = lock.lock().await;
        self.delete_keys(fingerprint).await
    }

    async fn delete_keys(&self, fingerprint: &Fingerprint) -> Result<usize> {
        let keys = self.store.keys_named(&key_name(fingerprint)).await?;
        for key_id in &keys {
            self.store.delete_key(key_id).await?;
        }
        Ok(keys.len())
    }

    /// The machine's bucket and keys as the store sees them.
    pub async fn status(&self, fingerprint: &Fingerprint) -> Result<Status> {
        let bucket = bucket_name(fingerprint);
        let info: Option<BucketInfo> = self.store.bucket(&bucket).await?;
        let key_ids = self.store.keys_named(&key_name(fingerprint)).await?;
        Ok(Status {
            exists: info.is_some(),
            bytes: info.as_ref().and_then(|i| i.bytes),
            objects: info.as_ref().and_then(|i| i.objects),
            key_ids,
            bucket,
        })
    }

    /// Deletes the machine's keys, every object of its bucket, and the bucket.
    pub async fn purge(&self, fingerprint: &Fingerprint) -> Result<()> {
        self.revoke(fingerprint).await?;
        let lock = self.lock_of(fingerprint);
        let _guard = lock.lock().await;
        self.store.delete_bucket(&bucket_name(fingerprint)).await
    }

    /// True the first time it is asked about `machine`: a boot script that
    /// puts the secret key in itself is worth one warning in the log.
    pub fn first_warning(&self, machine: &str) -> bool {
        self.warned
            .lock()
            .expect("scratch warnings")
            .insert(machine.to_string())
    }
}

/// Whether a template uses the secret key.
pub fn uses_secret(names: &[&str]) -> bool {
    names.contains(&SECRET_VARIABLE)
}

/// Whether a template uses any scratch variable.
pub fn uses_scratch(names: &[&str]) -> bool {
    names.iter().any(|n| VARIABLES.contains(n))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_names_follow_s3_rules() {
        let fingerprint = "3F6C0C8E5D6B0A9B1C2D3E4F5A6B7C8D9E0F1A2B".parse().unwrap();
        let name = bucket_name(&fingerprint);
        assert_eq!(name, "bootgate-3f6c0c8e5d6b0a9b1c2d3e4f5a6b7c8d9e0f1a2b");
        assert!((3..=63).contains(&name.len()));
        assert!(
            name.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        );
        assert!(name.as_bytes()[0].is_ascii_alphanumeric());
        assert!(name.as_bytes()[name.len() - 1].is_ascii_alphanumeric());
    }

    #[test]
    fn secrets_never_show_in_debug() {
        let grant = Grant {
            endpoint: "http://s3".into(),
            bucket: "b".into(),
            credentials: Credentials {
                access_key_id: "GKid".into(),
                secret_access_key: zeroize::Zeroizing::new("topsecret".into()),
            },
        };
        let text = format!("{grant:?}");
        assert!(
            text.contains("GKid") && !text.contains("topsecret"),
            "{text}"
        );
        assert_eq!(grant.vars()[2], ("s3_access_key", "topsecret".into()));
    }

    #[test]
    fn spots_scratch_variables() {
        assert!(uses_scratch(&["a", "s3_bucket_name"]));
        assert!(!uses_scratch(&["secrets_url"]));
        assert!(uses_secret(&["s3_access_key"]));
        assert!(!uses_secret(&["s3_access_key_id"]));
    }
}
