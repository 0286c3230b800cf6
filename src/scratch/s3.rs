//! The little of S3 bootgate speaks itself: listing a bucket and deleting
//! its objects (to purge a machine's scratch space), path-style, signed with
//! AWS Signature Version 4.

use anyhow::{Context, Result, bail};
use bytes::Bytes;
use http::{Method, Request};
use http_body_util::Full;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use time::macros::format_description;

use super::store::Credentials;
use super::transport::Endpoint;

/// Characters SigV4 leaves as they are: `A-Za-z0-9-._~`.
const UNRESERVED: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

pub struct S3<'a> {
    endpoint: Endpoint,
    region: &'a str,
    credentials: &'a Credentials,
}

impl<'a> S3<'a> {
    pub fn new(url: &str, region: &'a str, credentials: &'a Credentials) -> Result<Self> {
        Ok(Self {
            endpoint: Endpoint::parse(url).context("[scratch] s3_endpoint")?,
            region,
            credentials,
        })
    }

    /// Deletes every object of `bucket`, a page of listing at a time.
    pub async fn empty_bucket(&self, bucket: &str) -> Result<u64> {
        let mut deleted = 0;
        loop {
            let listing = self
                .request(Method::GET, &format!("/{bucket}"), &[("list-type", "2")])
                .await
                .with_context(|| format!("listing bucket {bucket}"))?;
            let keys = xml_values(&listing, "Key");
            if keys.is_empty() {
                return Ok(deleted);
            }
            for key in keys {
                let path = format!("/{bucket}/{}", encode_path(&key));
                self.request(Method::DELETE, &path, &[])
                    .await
                    .with_context(|| format!("deleting {key:?} from bucket {bucket}"))?;
                deleted += 1;
            }
        }
    }

    /// A signed request with an empty body; the answer's body on success.
    async fn request(&self, method: Method, path: &str, query: &[(&str, &str)]) -> Result<String> {
        let now = OffsetDateTime::now_utc();
        let date = now
            .format(format_description!("[year][month][day]"))
            .context("formatting the request date")?;
        let stamp = now
            .format(format_description!(
                "[year][month][day]T[hour][minute][second]Z"
            ))
            .context("formatting the request time")?;
        let mut pairs: Vec<(String, String)> =
            query.iter().map(|(k, v)| (encode(k), encode(v))).collect();
        pairs.sort();
        let canonical_query = pairs
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("&");
        let payload_hash = hex::encode(Sha256::digest(b""));
        let host = &self.endpoint.authority;
        let canonical = format!(
            "{method}\n{path}\n{canonical_query}\nhost:{host}\nx-amz-content-sha256:{payload_hash}\nx-amz-date:{stamp}\n\nhost;x-amz-content-sha256;x-amz-date\n{payload_hash}"
        );
        let scope = format!("{date}/{}/s3/aws4_request", self.region);
        let to_sign = format!(
            "AWS4-HMAC-SHA256\n{stamp}\n{scope}\n{}",
            hex::encode(Sha256::digest(canonical.as_bytes()))
        );
        let secret = format!("AWS4{}", self.credentials.secret_access_key.as_str());
        let mut key = hmac_sha256(secret.as_bytes(), date.as_bytes());
        for part in [self.region, "s3", "aws4_request"] {
            key = hmac_sha256(&key, part.as_bytes());
        }
        let signature = hex::encode(hmac_sha256(&key, to_sign.as_bytes()));
        let authorization = format!(
            "AWS4-HMAC-SHA256 Credential={}/{scope}, SignedHeaders=host;x-amz-content-sha256;x-amz-date, Signature={signature}",
            self.credentials.access_key_id
        );
        let uri = if canonical_query.is_empty() {
            path.to_string()
        } else {
            format!("{path}?{canonical_query}")
        };
        let request = Request::builder()
            .method(method)
            .uri(uri)
            .header("x-amz-date", &stamp)
            .header("x-amz-content-sha256", &payload_hash)
            .header(http::header::AUTHORIZATION, authorization)
            .body(Full::new(Bytes::new()))
            .context("building an S3 request")?;
        let (status, body) = self.endpoint.send(request).await?;
        let text = String::from_utf8_lossy(&body).into_owned();
        if !status.is_success() {
            let code = xml_values(&text, "Code")
                .into_iter()
                .next()
                .unwrap_or_default();
            bail!("S3 answered {status} {code}");
        }
        Ok(text)
    }
}

fn encode(s: &str) -> String {
    utf8_percent_encode(s, UNRESERVED).to_string()
}

/// An object key as a path: each segment encoded, slashes kept.
fn encode_path(key: &str) -> String {
    key.split('/').map(encode).collect::<Vec<_>>().join("/")
}

/// HMAC-SHA256 (RFC 2104).
fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    const BLOCK: usize = 64;
    let mut block = [0u8; BLOCK];
    if key.len() > BLOCK {
        block[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    let pad = |byte: u8| block.map(|b| b ^ byte);
    let inner = Sha256::new()
        .chain_update(pad(0x36))
        .chain_update(message)
        .finalize();
    Sha256::new()
        .chain_update(pad(0x5c))
        .chain_update(inner)
        .finalize()
        .into()
}

/// The text of every `<tag>…</tag>` in `xml`, entities decoded.
fn xml_values(xml: &str, tag: &str) -> Vec<String> {
    let (open, close) = (format!("<{tag}>"), format!("</{tag}>"));
    let mut values = Vec::new();
    let mut rest = xml;
    while let Some(start) = rest.find(&open) {
        let after = &rest[start + open.len()..];
        let Some(end) = after.find(&close) else { break };
        values.push(unescape(&after[..end]));
        rest = &after[end + close.len()..];
    }
    values
}

fn unescape(s: &str) -> String {
    s.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&apos;", "'")
        .replace("&amp;", "&")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hmac_matches_rfc_4231() {
        // Test case 2 of RFC 4231.
        let mac = hmac_sha256(b"Jefe", b"what do ya want for nothing?");
        assert_eq!(
            hex::encode(mac),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        // Test case 6: a key longer than a block.
        let mac = hmac_sha256(
            &[0xaa; 131],
            b"Test Using Larger Than Block-Size Key - Hash Key First",
        );
        assert_eq!(
            hex::encode(mac),
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
        );
    }

    #[test]
    fn reads_listing_keys() {
        let xml = "<ListBucketResult><Contents><Key>a/b c</Key></Contents>\
                   <Contents><Key>x&amp;y</Key></Contents></ListBucketResult>";
        assert_eq!(xml_values(xml, "Key"), ["a/b c", "x&y"]);
        assert_eq!(encode_path("a/b c"), "a/b%20c");
    }
}
