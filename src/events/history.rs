//! How the CLI reads boot history, server running or not. redb lets one
//! process hold a database, and a running server holds the event store, so:
//!
//! - no server: the CLI opens `events/events.redb` read-only, reads a
//!   snapshot and closes it at once (a server starting meanwhile waits a few
//!   seconds for it);
//! - a server: the open is refused, and the CLI asks the server's admin
//!   listener instead, at the URL the server wrote to `events/admin.json`
//!   when it started (or the one given with `--admin`). Its JSON answers are
//!   the same types the store holds.
//!
//! The admin API is plain HTTP on loopback by default; this client is a
//! few lines of HTTP/1.0 over a `TcpStream`, enough for that one server.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::model::{BootDetail, Event, EventQuery, MachineSeen};
use super::store::{ReadOnlyStore, Snapshot};
use crate::datadir::DataDir;

/// What `bootgate serve` writes to `events/admin.json` once its admin
/// listener is up.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AdminInfo {
    /// Where a process on this machine reaches the admin listener.
    pub url: String,
    pub pid: u32,
}

const TIMEOUT: Duration = Duration::from_secs(10);
/// Largest answer the CLI accepts from the admin listener.
const MAX_ANSWER: u64 = 256 * 1024 * 1024;

/// Boot history, read from the store or through a running server.
pub enum History {
    Store(Box<dyn redb::ReadableDatabase + Send + Sync>),
    Admin(AdminClient),
    /// No server has ever recorded anything here.
    Empty,
}

impl History {
    /// Opens the history of `dir`: through `admin` if given, else the store
    /// itself, else the running server that holds it.
    pub fn open(dir: &DataDir, admin: Option<&str>) -> Result<Self> {
        if let Some(url) = admin {
            return Ok(Self::Admin(AdminClient::new(url)?));
        }
        match ReadOnlyStore::open(&dir.events_db_path())? {
            ReadOnlyStore::Open(db) => Ok(Self::Store(db)),
            ReadOnlyStore::Missing => Ok(Self::Empty),
            ReadOnlyStore::Busy => {
                let path = dir.admin_info_path();
                let text = std::fs::read_to_string(&path).map_err(|_| {
                    anyhow!(
                        "a running `bootgate serve` holds the boot history and its admin listener is off; \
                         restart it with --admin-listen ADDR, or pass --admin URL"
                    )
                })?;
                let info: AdminInfo = serde_json::from_str(&text)
                    .with_context(|| format!("reading {}", path.display()))?;
                Ok(Self::Admin(AdminClient::new(&info.url)?))
            }
        }
    }

    pub fn source(&self) -> String {
        match self {
            Self::Store(_) => "the event store".into(),
            Self::Admin(client) => format!("the server at {}", client.base),
            Self::Empty => "nothing yet".into(),
        }
    }

    pub fn events(&self, query: &EventQuery) -> Result<Vec<Event>> {
        match self {
            Self::Store(db) => Snapshot::of(db.as_ref())?.events(query),
            Self::Admin(client) => {
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
                client.get(&format!("/api/events?{}", params.join("&")))
            }
            Self::Empty => Ok(Vec::new()),
        }
    }

    pub fn machines(&self) -> Result<Vec<MachineSeen>> {
        match self {
            Self::Store(db) => Snapshot::of(db.as_ref())?.machines(),
            Self::Admin(client) => client.get("/api/machines"),
            Self::Empty => Ok(Vec::new()),
        }
    }

    /// A machine's latest boots, newest first, with their requests.
    pub fn boots(&self, machine: &str, limit: usize) -> Result<Vec<BootDetail>> {
        match self {
            Self::Store(db) => Snapshot::of(db.as_ref())?.boots(machine, limit),
            Self::Admin(client) => client.get(&format!(
                "/api/machines/{}/boots?limit={limit}",
                encode(machine)
            )),
            Self::Empty => Ok(Vec::new()),
        }
    }
}

fn encode(s: &str) -> String {
    utf8_percent_encode(s, NON_ALPHANUMERIC).to_string()
}

/// A client for the admin listener's JSON API.
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

    pub fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T> {
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
