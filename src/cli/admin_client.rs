//! A client for the admin listener's JSON API ([`crate::server`]'s admin
//! routes), which is how the CLI reads boot history while a running server
//! holds the event store. The API is plain HTTP on loopback by default; this
//! client is a few lines of HTTP/1.0 over a `TcpStream`, enough for that one
//! server.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use serde::de::DeserializeOwned;

use crate::events::model::{BootDetail, Event, EventQuery, MachineSeen};

const TIMEOUT: Duration = Duration::from_secs(10);
/// Largest answer the CLI accepts from the admin listener.
const MAX_ANSWER: u64 = 256 * 1024 * 1024;

pub struct AdminClient {
    base: String,
    addr: SocketAddr,
    host: String,
}

impl AdminClient {
    pub fn new(url: &str) -> Result<Self> {
        let base = url.trim_end_matches('/').to_string();
        let host = base
            .strip_prefix("http://")
            .filter(|h| !h.is_empty() && !h.contains('/'))
            .ok_or_else(|| anyhow!("admin URL must look like http://HOST:PORT (got {url:?})"))?
            .to_string();
        let addr = host
            .to_socket_addrs()
            .with_context(|| format!("resolving {host}"))?
            .next()
            .ok_or_else(|| anyhow!("{host} has no address"))?;
        Ok(Self { base, addr, host })
    }

    /// The listener's URL, as given.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// `GET /api/events`: the events `query` selects.
    pub fn events(&self, query: &EventQuery) -> Result<Vec<Event>> {
        let mut params = Vec::new();
        if let Some(machine) = &query.machine {
            params.push(format!("machine={}", encode(machine)));
        }
        if let Some(since) = query.since {
            params.push(format!("since={}", encode(&since.to_string())));
        }
        if let Some(after) = query.after {
            params.push(format!("after={after}"));
        }
        if let Some(limit) = query.limit {
            params.push(format!("limit={limit}"));
        }
        self.get(&format!("/api/events?{}", params.join("&")))
    }

    /// `GET /api/machines`: every machine's last sighting.
    pub fn machines(&self) -> Result<Vec<MachineSeen>> {
        self.get("/api/machines")
    }

    /// `GET /api/machines/NAME/boots`: a machine's latest boots.
    pub fn boots(&self, machine: &str, limit: usize) -> Result<Vec<BootDetail>> {
        self.get(&format!(
            "/api/machines/{}/boots?limit={limit}",
            encode(machine)
        ))
    }

    fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T> {
        let url = format!("{}{path}", self.base);
        let body = self
            .fetch(path)
            .with_context(|| format!("asking the server's admin listener ({url})"))?;
        serde_json::from_slice(&body).with_context(|| format!("reading the answer of {url}"))
    }

    fn fetch(&self, path: &str) -> Result<Vec<u8>> {
        let mut stream = TcpStream::connect_timeout(&self.addr, TIMEOUT)?;
        stream.set_read_timeout(Some(TIMEOUT))?;
        stream.set_write_timeout(Some(TIMEOUT))?;
        // HTTP/1.0: the server closes the connection after one answer, so
        // the body is everything up to the end.
        write!(
            stream,
            "GET {path} HTTP/1.0\r\nHost: {}\r\nAccept: application/json\r\n\r\n",
            self.host
        )?;
        let mut answer = Vec::new();
        stream.take(MAX_ANSWER).read_to_end(&mut answer)?;
        let split = answer
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .ok_or_else(|| anyhow!("malformed answer"))?;
        let head = String::from_utf8_lossy(&answer[..split]).into_owned();
        let body = answer.split_off(split + 4);
        let status = head
            .lines()
            .next()
            .and_then(|line| line.split_whitespace().nth(1))
            .ok_or_else(|| anyhow!("malformed answer"))?;
        if status != "200" {
            bail!(
                "answered {status}: {}",
                String::from_utf8_lossy(&body).trim()
            );
        }
        Ok(body)
    }
}

fn encode(s: &str) -> String {
    utf8_percent_encode(s, NON_ALPHANUMERIC).to_string()
}
