//! How the CLI reads boot history, server running or not. redb lets one
//! process hold a database, and a running server holds the event store, so:
//!
//! - no server: the CLI opens `events/events.redb` read-only, reads a
//!   snapshot and closes it at once (a server starting meanwhile waits a few
//!   seconds for it);
//! - a server: the open is refused, and the CLI asks the server's admin
//!   listener instead ([`AdminClient`]), at the URL the server wrote to
//!   `events/admin.json` when it started (or the one given with `--admin`).
//!   Its JSON answers are the same types the store holds.

use anyhow::{Result, anyhow};

use super::admin_client::AdminClient;
use crate::datadir::DataDir;
use crate::events::model::{BootDetail, Event, EventQuery, MachineSeen};
use crate::events::store::{ReadOnlyStore, Snapshot};
use crate::server::AdminInfo;

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
                let info = AdminInfo::load(dir)?.ok_or_else(|| {
                    anyhow!(
                        "a running `bootgate serve` holds the boot history and its admin listener is off; \
                         restart it with --admin-listen ADDR, or pass --admin URL"
                    )
                })?;
                Ok(Self::Admin(AdminClient::new(&info.url)?))
            }
        }
    }

    pub fn source(&self) -> String {
        match self {
            Self::Store(_) => "the event store".into(),
            Self::Admin(client) => format!("the server at {}", client.base()),
            Self::Empty => "nothing yet".into(),
        }
    }

    pub fn events(&self, query: &EventQuery) -> Result<Vec<Event>> {
        match self {
            Self::Store(db) => Snapshot::of(db.as_ref())?.events(query),
            Self::Admin(client) => client.events(query),
            Self::Empty => Ok(Vec::new()),
        }
    }

    pub fn machines(&self) -> Result<Vec<MachineSeen>> {
        match self {
            Self::Store(db) => Snapshot::of(db.as_ref())?.machines(),
            Self::Admin(client) => client.machines(),
            Self::Empty => Ok(Vec::new()),
        }
    }

    /// A machine's latest boots, newest first, with their requests.
    pub fn boots(&self, machine: &str, limit: usize) -> Result<Vec<BootDetail>> {
        match self {
            Self::Store(db) => Snapshot::of(db.as_ref())?.boots(machine, limit),
            Self::Admin(client) => client.boots(machine, limit),
            Self::Empty => Ok(Vec::new()),
        }
    }
}
