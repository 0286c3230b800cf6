//! Answers a GET or HEAD for one opened file: Content-Length, ETag,
//! Last-Modified, conditional requests (304) and a single byte range (206).
//! The body is streamed from the file in small chunks ([`super::file_body`]),
//! so a 1 GiB kernel costs a buffer, not a gigabyte. A request with several
//! ranges gets the whole file (RFC 9110 lets a server ignore Range). The ETag
//! is the file's [`FileStamp`] unless the caller knows a better one (a shared
//! asset's is its content hash). Everything is decided on the opened
//! file's own metadata, and its bytes are the ones sent.

use std::fs::{File, Metadata};
use std::time::SystemTime;

use axum::body::Body;
use axum::response::Response;
use http::{HeaderMap, HeaderValue, Method, StatusCode, header};

use super::error::Refusal;
use super::file_body::FileBody;
use crate::fsutil::stamp::FileStamp;

/// A file's validators.
struct Validators {
    len: u64,
    etag: String,
    modified: SystemTime,
}

impl Validators {
    fn of(meta: &std::fs::Metadata) -> Self {
        Self {
            len: meta.len(),
            etag: FileStamp::of(meta).etag(),
            modified: meta.modified().unwrap_or(SystemTime::UNIX_EPOCH),
        }
    }

    fn not_modified(&self, headers: &HeaderMap) -> bool {
        if let Some(tags) = headers.get(header::IF_NONE_MATCH) {
            return tags.to_str().is_ok_and(|tags| {
                tags.split(',')
                    .any(|t| t.trim() == self.etag || t.trim() == "*")
            });
        }
        header_date(headers, header::IF_MODIFIED_SINCE)
            .is_some_and(|since| truncate_to_secs(self.modified) <= since)
    }

    /// Whether an `If-Range` header (if any) still matches this file.
    fn range_applies(&self, headers: &HeaderMap) -> bool {
        match headers.get(header::IF_RANGE).and_then(|v| v.to_str().ok()) {
            None => true,
            Some(value) if value.starts_with('"') => value == self.etag,
            Some(value) => httpdate::parse_http_date(value)
                .is_ok_and(|date| truncate_to_secs(self.modified) <= date),
        }
    }
}

fn header_date(headers: &HeaderMap, name: header::HeaderName) -> Option<SystemTime> {
    httpdate::parse_http_date(headers.get(name)?.to_str().ok()?).ok()
}

fn truncate_to_secs(t: SystemTime) -> SystemTime {
    let secs = t
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(secs)
}

/// Parses a `Range` header against a file of `len` bytes: `Ok(None)` means
/// "send everything", `Err` means the one range asked for lies past the end.
fn parse_range(value: &str, len: u64) -> Result<Option<(u64, u64)>, Refusal> {
    let Some(spec) = value.trim().strip_prefix("bytes=") else {
        return Ok(None);
    };
    if spec.contains(',') {
        return Ok(None);
    }
    let Some((start, end)) = spec.trim().split_once('-') else {
        return Ok(None);
    };
    let (start, end) = (start.trim(), end.trim());
    let range = if start.is_empty() {
        let Ok(suffix) = end.parse::<u64>() else {
            return Ok(None);
        };
        if suffix == 0 || len == 0 {
            return Err(Refusal::RangeNotSatisfiable { len });
        }
        (len.saturating_sub(suffix), len - 1)
    } else {
        let Ok(first) = start.parse::<u64>() else {
            return Ok(None);
        };
        let last = if end.is_empty() {
            len.saturating_sub(1)
        } else {
            match end.parse::<u64>() {
                Ok(last) if last >= first => last.min(len.saturating_sub(1)),
                _ => return Ok(None),
            }
        };
        if first >= len {
            return Err(Refusal::RangeNotSatisfiable { len });
        }
        (first, last)
    };
    Ok(Some(range))
}

/// Answers with `file`, whose metadata `meta` was read from the open file.
pub fn respond(
    (file, meta): (File, Metadata),
    method: &Method,
    headers: &HeaderMap,
    etag: Option<String>,
) -> Result<Response, Refusal> {
    if !meta.is_file() {
        return Err(Refusal::NotFound);
    }
    let mut v = Validators::of(&meta);
    if let Some(etag) = etag {
        v.etag = etag;
    }

    let mut builder = Response::builder()
        .header(header::ETAG, &v.etag)
        .header(header::LAST_MODIFIED, httpdate::fmt_http_date(v.modified))
        .header(header::ACCEPT_RANGES, "bytes")
        .header(header::CONTENT_TYPE, "application/octet-stream");
    if v.not_modified(headers) {
        return Ok(builder
            .status(StatusCode::NOT_MODIFIED)
            .body(Body::empty())
            .expect("valid response"));
    }

    let range = match headers.get(header::RANGE).and_then(|r| r.to_str().ok()) {
        Some(value) if v.range_applies(headers) => parse_range(value, v.len)?,
        _ => None,
    };
    let (status, start, count) = match range {
        Some((first, last)) => {
            builder = builder.header(
                header::CONTENT_RANGE,
                format!("bytes {first}-{last}/{}", v.len),
            );
            (StatusCode::PARTIAL_CONTENT, first, last - first + 1)
        }
        None => (StatusCode::OK, 0, v.len),
    };
    builder = builder
        .status(status)
        .header(header::CONTENT_LENGTH, HeaderValue::from(count));

    if method == Method::HEAD {
        return Ok(builder.body(Body::empty()).expect("valid response"));
    }
    let body = FileBody::new(file, start, count);
    Ok(builder.body(Body::new(body)).expect("valid response"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        assert_eq!(parse_range("bytes=0-9", 100).unwrap(), Some((0, 9)));
        assert_eq!(parse_range("bytes=90-", 100).unwrap(), Some((90, 99)));
        assert_eq!(parse_range("bytes=-10", 100).unwrap(), Some((90, 99)));
        assert_eq!(parse_range("bytes=-500", 100).unwrap(), Some((0, 99)));
        assert_eq!(parse_range("bytes=95-200", 100).unwrap(), Some((95, 99)));
        assert_eq!(parse_range("bytes=0-1,5-6", 100).unwrap(), None);
        assert_eq!(parse_range("items=0-1", 100).unwrap(), None);
        assert_eq!(parse_range("bytes=9-2", 100).unwrap(), None);
        assert_eq!(parse_range("bytes=x-2", 100).unwrap(), None);
        assert!(parse_range("bytes=100-", 100).is_err());
        assert!(parse_range("bytes=-0", 100).is_err());
        assert!(parse_range("bytes=0-", 0).is_err());
    }
}
