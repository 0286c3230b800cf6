//! One HTTP/1.1 request over plain TCP, bounded in time: the few calls
//! bootgate makes to an object store need nothing more than hyper's
//! connection API.

use std::time::Duration;

use anyhow::{Context, Result, anyhow};
use bytes::Bytes;
use http::{Request, StatusCode, Uri};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// Longest any single call may take, connection included; the boot script
/// render has its own, shorter, bound (`[scratch] timeout_ms`).
pub const CALL_TIMEOUT: Duration = Duration::from_secs(20);

/// `http://host:port` split into what a connection needs.
#[derive(Debug, Clone)]
pub struct Endpoint {
    pub authority: String,
}

impl Endpoint {
    pub fn parse(url: &str) -> Result<Self> {
        let uri: Uri = url
            .parse()
            .with_context(|| format!("parsing the URL {url:?}"))?;
        if uri.scheme_str() != Some("http") {
            anyhow::bail!("{url:?}: only http:// is supported here");
        }
        let authority = uri
            .authority()
            .ok_or_else(|| anyhow!("{url:?} has no host"))?;
        let authority = match authority.port_u16() {
            Some(_) => authority.to_string(),
            None => format!("{}:80", authority.host()),
        };
        Ok(Self { authority })
    }

    /// Sends `request` (its URI holds only the path and query) and returns
    /// the status and the whole body.
    pub async fn send(&self, request: Request<Full<Bytes>>) -> Result<(StatusCode, Bytes)> {
        tokio::time::timeout(CALL_TIMEOUT, self.send_unbounded(request))
            .await
            .map_err(|_| anyhow!("no answer from {} within {CALL_TIMEOUT:?}", self.authority))?
    }

    async fn send_unbounded(
        &self,
        mut request: Request<Full<Bytes>>,
    ) -> Result<(StatusCode, Bytes)> {
        let stream = TcpStream::connect(&self.authority)
            .await
            .with_context(|| format!("connecting to {}", self.authority))?;
        stream.set_nodelay(true)?;
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .with_context(|| format!("talking to {}", self.authority))?;
        tokio::spawn(connection);
        request.headers_mut().insert(
            http::header::HOST,
            self.authority.parse().context("host header")?,
        );
        let response = sender
            .send_request(request)
            .await
            .with_context(|| format!("sending a request to {}", self.authority))?;
        let status = response.status();
        let body = response
            .into_body()
            .collect()
            .await
            .with_context(|| format!("reading an answer from {}", self.authority))?
            .to_bytes();
        Ok((status, body))
    }
}
