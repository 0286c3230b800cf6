//! Garage (<https://garagehq.deuxfleurs.fr>) through its admin API v2:
//! `CreateBucket`, `GetBucketInfo`, `CreateKey`, `AllowBucketKey`,
//! `GetKeyInfo`, `ListKeys`, `DeleteKey`, `DeleteBucket`, with a bearer
//! token. Emptying a bucket before deleting it goes through S3 ([`super::s3`]).

use anyhow::{Context, Result, anyhow, bail};
use bytes::Bytes;
use futures_util::future::BoxFuture;
use http::{Method, Request, StatusCode};
use http_body_util::Full;
use serde::Deserialize;
use serde_json::json;
use zeroize::Zeroizing;

use super::s3::S3;
use super::store::{BucketInfo, Credentials, ObjectStore};
use super::transport::Endpoint;

pub struct Garage {
    admin: Endpoint,
    token: Zeroizing<String>,
    s3_endpoint: String,
    region: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct BucketAnswer {
    id: String,
    #[serde(default)]
    bytes: Option<i64>,
    #[serde(default)]
    objects: Option<i64>,
    #[serde(default)]
    keys: Vec<BucketKeyAnswer>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct BucketKeyAnswer {
    access_key_id: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct KeyAnswer {
    access_key_id: String,
    #[serde(default)]
    secret_access_key: Option<String>,
}

#[derive(Deserialize)]
struct KeyListItem {
    id: String,
    name: String,
}

impl From<BucketAnswer> for BucketInfo {
    fn from(b: BucketAnswer) -> Self {
        Self {
            id: b.id,
            bytes: b.bytes.and_then(|n| u64::try_from(n).ok()),
            objects: b.objects.and_then(|n| u64::try_from(n).ok()),
            key_ids: b.keys.into_iter().map(|k| k.access_key_id).collect(),
        }
    }
}

impl Garage {
    pub fn new(
        admin_url: &str,
        token: Zeroizing<String>,
        s3_endpoint: &str,
        region: &str,
    ) -> Result<Self> {
        Ok(Self {
            admin: Endpoint::parse(admin_url).context("[scratch] admin_url")?,
            token,
            s3_endpoint: s3_endpoint.to_string(),
            region: region.to_string(),
        })
    }

    /// One admin call; the answer's body when it is a success.
    async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> Result<(StatusCode, Bytes)> {
        let body = match body {
            Some(value) => Bytes::from(serde_json::to_vec(&value)?),
            None => Bytes::new(),
        };
        let request = Request::builder()
            .method(method)
            .uri(path)
            .header(
                http::header::AUTHORIZATION,
                format!("Bearer {}", self.token.as_str()),
            )
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(Full::new(body))
            .context("building an admin request")?;
        let endpoint = path.split('?').next().unwrap_or(path);
        let (status, answer) = self
            .admin
            .send(request)
            .await
            .with_context(|| format!("calling Garage's {endpoint}"))?;
        if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
            bail!(
                "Garage refused the admin token ({status}) on {endpoint}: check [scratch] admin_token_*"
            );
        }
        Ok((status, answer))
    }

    async fn expect_json<T: serde::de::DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> Result<T> {
        let endpoint = path.split('?').next().unwrap_or(path).to_string();
        let (status, answer) = self.call(method, path, body).await?;
        if !status.is_success() {
            bail!("Garage's {endpoint} answered {status}: {}", short(&answer));
        }
        serde_json::from_slice(&answer)
            .with_context(|| format!("reading Garage's answer to {endpoint}"))
    }

    async fn bucket_by_alias(&self, bucket: &str) -> Result<Option<BucketInfo>> {
        let path = format!("/v2/GetBucketInfo?globalAlias={bucket}");
        let (status, answer) = self.call(Method::GET, &path, None).await?;
        if status == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        if !status.is_success() {
            bail!(
                "Garage's GetBucketInfo answered {status}: {}",
                short(&answer)
            );
        }
        let info: BucketAnswer =
            serde_json::from_slice(&answer).context("reading Garage's answer to GetBucketInfo")?;
        Ok(Some(info.into()))
    }

    async fn create_bucket(&self, bucket: &str) -> Result<BucketInfo> {
        let (status, answer) = self
            .call(
                Method::POST,
                "/v2/CreateBucket",
                Some(json!({ "globalAlias": bucket })),
            )
            .await?;
        if status.is_success() {
            let info: BucketAnswer = serde_json::from_slice(&answer)
                .context("reading Garage's answer to CreateBucket")?;
            return Ok(info.into());
        }
        // Created meanwhile by someone else (another bootgate command).
        if status == StatusCode::CONFLICT
            && let Some(info) = self.bucket_by_alias(bucket).await?
        {
            return Ok(info);
        }
        bail!(
            "Garage's CreateBucket answered {status}: {}",
            short(&answer)
        )
    }

    async fn new_key(&self, name: &str, bucket_id: &str) -> Result<Credentials> {
        let key: KeyAnswer = self
            .expect_json(Method::POST, "/v2/CreateKey", Some(json!({ "name": name })))
            .await?;
        let secret = key
            .secret_access_key
            .ok_or_else(|| anyhow!("Garage's CreateKey answered without a secret key"))?;
        let credentials = Credentials {
            access_key_id: key.access_key_id,
            secret_access_key: Zeroizing::new(secret),
        };
        let allowed: Result<BucketAnswer> = self
            .expect_json(
                Method::POST,
                "/v2/AllowBucketKey",
                Some(json!({
                    "bucketId": bucket_id,
                    "accessKeyId": credentials.access_key_id,
                    "permissions": { "read": true, "write": true, "owner": false },
                })),
            )
            .await;
        if let Err(err) = allowed {
            // A key without rights is useless: do not leave it behind.
            let _ = self.remove_key(&credentials.access_key_id).await;
            return Err(err);
        }
        Ok(credentials)
    }

    async fn remove_key(&self, key_id: &str) -> Result<()> {
        let (status, answer) = self
            .call(Method::POST, &format!("/v2/DeleteKey?id={key_id}"), None)
            .await?;
        if status.is_success() || status == StatusCode::NOT_FOUND {
            return Ok(());
        }
        bail!("Garage's DeleteKey answered {status}: {}", short(&answer))
    }

    async fn remove_bucket(&self, bucket: &str) -> Result<()> {
        let Some(info) = self.bucket_by_alias(bucket).await? else {
            return Ok(());
        };
        // A short-lived key of our own empties the bucket through S3.
        let credentials = self
            .new_key(&format!("bootgate-purge-{bucket}"), &info.id)
            .await?;
        let emptied = async {
            S3::new(&self.s3_endpoint, &self.region, &credentials)?
                .empty_bucket(bucket)
                .await
        }
        .await;
        self.remove_key(&credentials.access_key_id).await?;
        emptied?;
        let (status, answer) = self
            .call(
                Method::POST,
                &format!("/v2/DeleteBucket?id={}", info.id),
                None,
            )
            .await?;
        if !status.is_success() && status != StatusCode::NOT_FOUND {
            bail!(
                "Garage's DeleteBucket answered {status}: {}",
                short(&answer)
            );
        }
        Ok(())
    }
}

/// The first line of an error answer, for messages.
fn short(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    text.lines()
        .next()
        .unwrap_or("")
        .chars()
        .take(200)
        .collect()
}

impl ObjectStore for Garage {
    fn ensure_bucket<'a>(&'a self, bucket: &'a str) -> BoxFuture<'a, Result<BucketInfo>> {
        Box::pin(async move {
            match self.bucket_by_alias(bucket).await? {
                Some(info) => Ok(info),
                None => self.create_bucket(bucket).await,
            }
        })
    }

    fn bucket<'a>(&'a self, bucket: &'a str) -> BoxFuture<'a, Result<Option<BucketInfo>>> {
        Box::pin(self.bucket_by_alias(bucket))
    }

    fn keys_named<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<Vec<String>>> {
        Box::pin(async move {
            let keys: Vec<KeyListItem> =
                self.expect_json(Method::GET, "/v2/ListKeys", None).await?;
            Ok(keys
                .into_iter()
                .filter(|k| k.name == name)
                .map(|k| k.id)
                .collect())
        })
    }

    fn create_key<'a>(
        &'a self,
        name: &'a str,
        bucket_id: &'a str,
    ) -> BoxFuture<'a, Result<Credentials>> {
        Box::pin(self.new_key(name, bucket_id))
    }

    fn key_secret<'a>(&'a self, key_id: &'a str) -> BoxFuture<'a, Result<Credentials>> {
        Box::pin(async move {
            let key: KeyAnswer = self
                .expect_json(
                    Method::GET,
                    &format!("/v2/GetKeyInfo?id={key_id}&showSecretKey=true"),
                    None,
                )
                .await?;
            let secret = key
                .secret_access_key
                .ok_or_else(|| anyhow!("Garage's GetKeyInfo answered without the secret key"))?;
            Ok(Credentials {
                access_key_id: key.access_key_id,
                secret_access_key: Zeroizing::new(secret),
            })
        })
    }

    fn delete_key<'a>(&'a self, key_id: &'a str) -> BoxFuture<'a, Result<()>> {
        Box::pin(self.remove_key(key_id))
    }

    fn delete_bucket<'a>(&'a self, bucket: &'a str) -> BoxFuture<'a, Result<()>> {
        Box::pin(self.remove_bucket(bucket))
    }
}
