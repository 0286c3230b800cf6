//! What bootgate needs from an object store, whatever its kind: buckets,
//! keys scoped to one bucket, usage. The server and the CLI only see this
//! trait; each provider (Garage today; AWS IAM + S3, MinIO or Backblaze B2
//! tomorrow) implements it in its own module.

use std::fmt;

use anyhow::Result;
use futures_util::future::BoxFuture;
use zeroize::Zeroizing;

/// An access key pair. The secret is wiped from memory when dropped and
/// never printed by `Debug`.
#[derive(Clone)]
pub struct Credentials {
    pub access_key_id: String,
    pub secret_access_key: Zeroizing<String>,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"<redacted>")
            .finish()
    }
}

/// What the store says about a bucket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BucketInfo {
    /// The store's own identifier of the bucket.
    pub id: String,
    /// Bytes stored, where the store reports it.
    pub bytes: Option<u64>,
    pub objects: Option<u64>,
    /// Ids of the keys allowed on it.
    pub key_ids: Vec<String>,
}

pub trait ObjectStore: Send + Sync {
    /// The bucket named `bucket`, created (private) if missing.
    fn ensure_bucket<'a>(&'a self, bucket: &'a str) -> BoxFuture<'a, Result<BucketInfo>>;

    /// The bucket named `bucket`, if it exists.
    fn bucket<'a>(&'a self, bucket: &'a str) -> BoxFuture<'a, Result<Option<BucketInfo>>>;

    /// Ids of the keys called `name`.
    fn keys_named<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<Vec<String>>>;

    /// A new key called `name` that may read, write, list and delete in
    /// `bucket_id` and nothing else.
    fn create_key<'a>(
        &'a self,
        name: &'a str,
        bucket_id: &'a str,
    ) -> BoxFuture<'a, Result<Credentials>>;

    /// An existing key's pair (for stable keys).
    fn key_secret<'a>(&'a self, key_id: &'a str) -> BoxFuture<'a, Result<Credentials>>;

    /// Deletes a key; a key already gone is not an error.
    fn delete_key<'a>(&'a self, key_id: &'a str) -> BoxFuture<'a, Result<()>>;

    /// Deletes every object of the bucket named `bucket`, then the bucket;
    /// a bucket already gone is not an error.
    fn delete_bucket<'a>(&'a self, bucket: &'a str) -> BoxFuture<'a, Result<()>>;
}
