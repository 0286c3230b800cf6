//! The event store: one redb file, `events/events.redb` in the data directory.
//!
//! redb lets one process open a database at a time (an exclusive file lock; a
//! read-only open takes a shared one). The server opens it for writing when it
//! starts and keeps it; its admin listener answers reads for everyone else.
//! Without a running server, the CLI opens the file read-only itself.
//!
//! Every commit is durable (fsync) and saves redb's allocator state
//! ("quick repair"), so after a `kill -9` the file opens at once, read-only
//! too, with every committed batch in it.
//!
//! Tables (values are the JSON of the [`model`](super::model) types):
//!
//! ```text
//! events            id -> Event               ids grow with time: id >= time in µs
//! events_by_machine (machine, id) -> ()
//! boots             boot id -> Boot           a boot's id is its /boot/ipxe event's
//! boots_by_machine  (machine, boot id) -> ()
//! machines          machine -> MachineSeen    last seen, last address, last boot
//! meta              "last_id" -> u64
//! ```

use std::borrow::Cow;
use std::collections::HashMap;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::RwLock;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use redb::{
    Database, DatabaseError, Durability, ReadOnlyDatabase, ReadTransaction, ReadableDatabase,
    ReadableTable, ReadableTableMetadata, TableDefinition, WriteTransaction,
};

use super::boots::Changes;
use super::model::{Boot, BootDetail, Event, EventQuery, MachineSeen, Timestamp};

const EVENTS: TableDefinition<u64, &str> = TableDefinition::new("events");
const EVENTS_BY_MACHINE: TableDefinition<(&str, u64), ()> =
    TableDefinition::new("events_by_machine");
const BOOTS: TableDefinition<u64, &str> = TableDefinition::new("boots");
const BOOTS_BY_MACHINE: TableDefinition<(&str, u64), ()> = TableDefinition::new("boots_by_machine");
const MACHINES: TableDefinition<&str, &str> = TableDefinition::new("machines");
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");

/// Most events removed by one commit, so shrinking the retention of a full
/// store spreads the work over several commits instead of one long one.
const TRIM_BATCH: usize = 5000;

/// How long history is kept: whichever limit is reached first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    pub max_age: Duration,
    pub max_events: u64,
}

/// redb's page cache when nothing else is said: the store's working set is
/// the newest pages (appends) and the oldest (trimming), a few MiB at most;
/// redb's own default (1 GiB) would let the cache grow with the file.
pub const DEFAULT_CACHE_BYTES: usize = 4 * 1024 * 1024;

/// The store, opened for writing by the one process that records.
pub struct Store {
    /// `None` between closing after a failed write and reopening.
    db: RwLock<Option<Database>>,
    /// A write failed: reopen before the next one.
    failed: AtomicBool,
    path: std::path::PathBuf,
    cache_bytes: usize,
}

/// How much memory and disk the store takes, for the metrics.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Usage {
    /// Size of the file on disk.
    pub file_bytes: u64,
    /// Bytes in redb's page cache (read cache and write buffer).
    pub cache_bytes: u64,
    /// The page cache's limit.
    pub cache_limit_bytes: u64,
}

/// What a commit did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Committed {
    pub events: usize,
    pub trimmed: usize,
}

impl Store {
    /// Opens (or creates) the store for writing, waiting up to `wait` for a
    /// reader (`bootgate events` without a server) to let go of it, with a
    /// page cache of `cache_bytes`.
    pub fn open(path: &Path, wait: Duration, cache_bytes: usize) -> Result<Self> {
        if let Some(dir) = path.parent() {
            crate::fsutil::create_dir(dir)?;
        }
        let db = open_database(path, wait, cache_bytes)?;
        Ok(Self {
            db: RwLock::new(Some(db)),
            failed: AtomicBool::new(false),
            path: path.to_path_buf(),
            cache_bytes,
        })
    }

    /// Runs `f` on the open database.
    fn with_db<T>(&self, f: impl FnOnce(&Database) -> Result<T>) -> Result<T> {
        match self.db.read().expect("store lock").as_ref() {
            Some(db) => f(db),
            None => {
                bail!("the boot history is closed after a failed write; the next write reopens it")
            }
        }
    }

    /// After a failed write redb refuses every further one (its state on disk
    /// is only known again after a repair), so the next write closes the
    /// file and opens it again. While that fails (the disk is still full),
    /// writes fail and their events are counted as lost.
    fn reopen(&self) -> Result<()> {
        let mut slot = self.db.write().expect("store lock");
        // Close first: redb locks the file, even against this process.
        *slot = None;
        let db = open_database(&self.path, Duration::ZERO, self.cache_bytes)
            .with_context(|| format!("reopening {} after a failed write", self.path.display()))?;
        *slot = Some(db);
        self.failed.store(false, Ordering::Relaxed);
        tracing::info!("reopened {} after a failed write", self.path.display());
        Ok(())
    }

    pub fn snapshot(&self) -> Result<Snapshot> {
        self.with_db(|db| {
            Ok(Snapshot {
                txn: db.begin_read()?,
            })
        })
    }

    /// Writes events (ids already assigned) and the boots they changed in one
    /// durable commit, then applies retention.
    pub fn write(
        &self,
        events: &[Event],
        changes: &Changes,
        retention: Retention,
        now: Timestamp,
    ) -> Result<Committed> {
        if self.failed.load(Ordering::Relaxed) {
            self.reopen()?;
        }
        let written = self.with_db(|db| write_to(db, events, changes, retention, now));
        if written.is_err() {
            self.failed.store(true, Ordering::Relaxed);
        }
        written
    }

    /// The file's size and the page cache's use.
    pub fn usage(&self) -> Usage {
        let cache = self.with_db(|db| Ok(db.cache_stats().used_bytes() as u64));
        Usage {
            file_bytes: std::fs::metadata(&self.path).map_or(0, |m| m.len()),
            cache_bytes: cache.unwrap_or(0),
            cache_limit_bytes: self.cache_bytes as u64,
        }
    }

    /// The largest event id ever written (0 for a new store).
    pub fn last_id(&self) -> Result<u64> {
        self.with_db(|db| {
            let txn = db.begin_read()?;
            let meta = txn.open_table(META)?;
            Ok(meta.get("last_id")?.map_or(0, |v| v.value()))
        })
    }
}

/// Opens the file for writing, waiting up to `wait` for another process to
/// let go of it, and makes sure every table exists (so read-only opens find
/// them all).
fn open_database(path: &Path, wait: Duration, cache_bytes: usize) -> Result<Database> {
    let deadline = Instant::now() + wait;
    let db = loop {
        match Database::builder().set_cache_size(cache_bytes).create(path) {
            Ok(db) => break db,
            Err(DatabaseError::DatabaseAlreadyOpen) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(100));
            }
            Err(DatabaseError::DatabaseAlreadyOpen) => bail!(
                "{} is in use by another process (another `bootgate serve` on this data directory?)",
                path.display()
            ),
            Err(err) => {
                return Err(err).with_context(|| format!("opening {}", path.display()));
            }
        }
    };
    // redb creates the file with the umask's mode; set it explicitly.
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(crate::fsutil::PUBLIC))
        .with_context(|| format!("setting the mode of {}", path.display()))?;
    let txn = begin_write(&db)?;
    txn.open_table(EVENTS)?;
    txn.open_table(EVENTS_BY_MACHINE)?;
    txn.open_table(BOOTS)?;
    txn.open_table(BOOTS_BY_MACHINE)?;
    txn.open_table(MACHINES)?;
    txn.open_table(META)?;
    txn.commit()?;
    Ok(db)
}

/// A write transaction: durable, and saving the allocator state so that a
/// crash needs no full repair.
fn begin_write(db: &Database) -> Result<WriteTransaction> {
    let mut txn = db.begin_write()?;
    txn.set_durability(Durability::Immediate)?;
    txn.set_quick_repair(true);
    Ok(txn)
}

/// Writes events and the boots they changed in one durable commit, then
/// applies retention.
fn write_to(
    db: &Database,
    events: &[Event],
    changes: &Changes,
    retention: Retention,
    now: Timestamp,
) -> Result<Committed> {
    let txn = begin_write(db)?;
    let mut written = Committed::default();
    {
        let mut table = txn.open_table(EVENTS)?;
        let mut by_machine = txn.open_table(EVENTS_BY_MACHINE)?;
        let mut machines = txn.open_table(MACHINES)?;
        let mut seen: HashMap<String, MachineSeen> = HashMap::new();
        for event in events {
            table.insert(event.id, serde_json::to_string(event)?.as_str())?;
            written.events += 1;
            let Some(machine) = &event.machine else {
                continue;
            };
            by_machine.insert((machine.as_str(), event.id), ())?;
            let entry = match seen.get_mut(machine) {
                Some(entry) => entry,
                None => {
                    let stored = get_json::<MachineSeen>(&machines, machine.as_str())?;
                    let entry = stored.unwrap_or_else(|| MachineSeen {
                        machine: machine.clone(),
                        fingerprint: String::new(),
                        last_seen: Timestamp::default(),
                        last_peer: String::new(),
                        last_boot: None,
                    });
                    seen.entry(machine.clone()).or_insert(entry)
                }
            };
            if event.time >= entry.last_seen {
                entry.last_seen = event.time;
                entry.last_peer = event.peer.clone();
                if let Some(fp) = &event.fingerprint {
                    entry.fingerprint = fp.clone();
                }
            }
        }

        let mut boots = txn.open_table(BOOTS)?;
        let mut boots_by_machine = txn.open_table(BOOTS_BY_MACHINE)?;
        for boot in changes.updated.values() {
            boots.insert(boot.id, serde_json::to_string(boot)?.as_str())?;
            boots_by_machine.insert((boot.machine.as_str(), boot.id), ())?;
            let entry = match seen.get_mut(&boot.machine) {
                Some(entry) => entry,
                None => match get_json::<MachineSeen>(&machines, boot.machine.as_str())? {
                    Some(stored) => seen.entry(boot.machine.clone()).or_insert(stored),
                    None => continue,
                },
            };
            if entry
                .last_boot
                .as_ref()
                .is_none_or(|last| last.id <= boot.id)
            {
                entry.last_boot = Some(boot.clone());
            }
        }
        for (name, entry) in &seen {
            machines.insert(name.as_str(), serde_json::to_string(entry)?.as_str())?;
        }
        drop((by_machine, boots_by_machine, boots));

        if let Some(last) = events.iter().map(|e| e.id).max() {
            let mut meta = txn.open_table(META)?;
            let previous = meta.get("last_id")?.map_or(0, |v| v.value());
            meta.insert("last_id", last.max(previous))?;
        }
        drop(table);
        written.trimmed = trim(&txn, retention, now)?;
    }
    txn.commit()?;
    Ok(written)
}

/// Removes the oldest events past either limit (and the boots they began).
fn trim(txn: &WriteTransaction, retention: Retention, now: Timestamp) -> Result<usize> {
    let cutoff = now.saturating_sub(retention.max_age).as_micros();
    let mut events = txn.open_table(EVENTS)?;
    let mut by_machine = txn.open_table(EVENTS_BY_MACHINE)?;
    let mut boots = txn.open_table(BOOTS)?;
    let mut boots_by_machine = txn.open_table(BOOTS_BY_MACHINE)?;
    let mut removed = 0;
    while removed < TRIM_BATCH {
        let len = events.len()?;
        let Some(first) = events.first()?.map(|(k, _)| k.value()) else {
            break;
        };
        // `id >= time`, so an id before the cutoff is an event before it.
        if len <= retention.max_events && first >= cutoff {
            break;
        }
        let Some((_, json)) = events.pop_first()? else {
            break;
        };
        let IndexedBy { id, machine, boot } = serde_json::from_str(json.value())?;
        let machine = machine.map(Cow::into_owned);
        drop(json);
        if let Some(machine) = &machine {
            by_machine.remove((machine.as_str(), id))?;
            if boot == Some(id) {
                boots.remove(id)?;
                boots_by_machine.remove((machine.as_str(), id))?;
            }
        }
        removed += 1;
    }
    Ok(removed)
}

/// What trimming needs of a stored event: the index entries it has. Read
/// instead of the whole [`Event`], which would cost a string per field.
#[derive(serde::Deserialize)]
struct IndexedBy<'a> {
    id: u64,
    #[serde(default, borrow)]
    machine: Option<Cow<'a, str>>,
    #[serde(default)]
    boot: Option<u64>,
}

fn get_json<T: serde::de::DeserializeOwned>(
    table: &impl ReadableTable<&'static str, &'static str>,
    key: &str,
) -> Result<Option<T>> {
    match table.get(key)? {
        Some(value) => Ok(Some(serde_json::from_str(value.value())?)),
        None => Ok(None),
    }
}

/// The store opened by a process that only reads it.
pub enum ReadOnlyStore {
    /// Opened: read it through [`Snapshot::of`].
    Open(Box<dyn ReadableDatabase + Send + Sync>),
    /// The server (or another writer) holds it: ask its admin listener.
    Busy,
    /// Never written: no server has run on this data directory yet.
    Missing,
}

impl ReadOnlyStore {
    pub fn open(path: &Path) -> Result<Self> {
        if !path.exists() {
            return Ok(Self::Missing);
        }
        match ReadOnlyDatabase::open(path) {
            Ok(db) => Ok(Self::Open(Box::new(db))),
            Err(DatabaseError::DatabaseAlreadyOpen) => Ok(Self::Busy),
            // Written without quick repair (not by us) and not closed cleanly:
            // only a writable open can repair it, which nobody else holds now.
            Err(DatabaseError::RepairAborted) => match Database::open(path) {
                Ok(db) => Ok(Self::Open(Box::new(db))),
                Err(DatabaseError::DatabaseAlreadyOpen) => Ok(Self::Busy),
                Err(err) => Err(err).with_context(|| format!("repairing {}", path.display())),
            },
            Err(err) => Err(err).with_context(|| format!("opening {}", path.display())),
        }
    }
}

/// A consistent snapshot of the store, for queries.
pub struct Snapshot {
    txn: ReadTransaction,
}

impl Snapshot {
    /// A snapshot of a store opened read-only.
    pub fn of(db: &(dyn ReadableDatabase + Send + Sync)) -> Result<Self> {
        Ok(Self {
            txn: db.begin_read()?,
        })
    }

    pub fn event_count(&self) -> Result<u64> {
        Ok(self.txn.open_table(EVENTS)?.len()?)
    }

    /// Events matching `query`, oldest first (the newest `limit` of them).
    pub fn events(&self, query: &EventQuery) -> Result<Vec<Event>> {
        let since = query.since.map_or(0, Timestamp::as_micros);
        let after = query.after.map_or(0, |a| a.saturating_add(1));
        let from = since.max(after);
        let limit = query.limit.unwrap_or(usize::MAX);
        let events = self.txn.open_table(EVENTS)?;
        let keep = |e: &Event| e.time.as_micros() >= since;
        let mut out = Vec::new();
        match &query.machine {
            Some(machine) => {
                let index = self.txn.open_table(EVENTS_BY_MACHINE)?;
                for entry in index
                    .range((machine.as_str(), from)..=(machine.as_str(), u64::MAX))?
                    .rev()
                {
                    if out.len() >= limit {
                        break;
                    }
                    let id = entry?.0.value().1;
                    if let Some(json) = events.get(id)? {
                        let event: Event = serde_json::from_str(json.value())?;
                        if keep(&event) {
                            out.push(event);
                        }
                    }
                }
            }
            None => {
                for entry in events.range(from..)?.rev() {
                    if out.len() >= limit {
                        break;
                    }
                    let event: Event = serde_json::from_str(entry?.1.value())?;
                    if keep(&event) {
                        out.push(event);
                    }
                }
            }
        }
        out.reverse();
        Ok(out)
    }

    /// Every machine that has made a request, by name.
    pub fn machines(&self) -> Result<Vec<MachineSeen>> {
        let table = self.txn.open_table(MACHINES)?;
        let mut out = Vec::new();
        for entry in table.iter()? {
            out.push(serde_json::from_str(entry?.1.value())?);
        }
        Ok(out)
    }

    pub fn machine(&self, name: &str) -> Result<Option<MachineSeen>> {
        get_json(&self.txn.open_table(MACHINES)?, name)
    }

    /// A machine's latest `limit` boots, newest first, each with its requests.
    pub fn boots(&self, machine: &str, limit: usize) -> Result<Vec<BootDetail>> {
        let index = self.txn.open_table(BOOTS_BY_MACHINE)?;
        let boots = self.txn.open_table(BOOTS)?;
        let events = self.txn.open_table(EVENTS)?;
        let by_machine = self.txn.open_table(EVENTS_BY_MACHINE)?;
        let mut out = Vec::new();
        for entry in index.range((machine, 0)..=(machine, u64::MAX))?.rev() {
            if out.len() >= limit {
                break;
            }
            let id = entry?.0.value().1;
            let Some(json) = boots.get(id)? else {
                continue;
            };
            let boot: Boot = serde_json::from_str(json.value())?;
            // Its requests follow it; a few may come after the next boot's
            // script (a download that outlived it), so look a little further.
            let mut requests = Vec::new();
            let scan = boot.requests as usize + 256;
            for entry in by_machine
                .range((machine, id)..=(machine, u64::MAX))?
                .take(scan)
            {
                let event_id = entry?.0.value().1;
                let Some(json) = events.get(event_id)? else {
                    continue;
                };
                let event: Event = serde_json::from_str(json.value())?;
                if event.boot == Some(id) {
                    requests.push(event);
                    if requests.len() >= boot.requests as usize {
                        break;
                    }
                }
            }
            out.push(BootDetail { boot, requests });
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::boots::BootTracker;
    use crate::events::model::{Kind, Outcome};

    const KEEP_ALL: Retention = Retention {
        max_age: Duration::from_secs(30 * 86400),
        max_events: 100_000,
    };

    fn at(secs: u64) -> Timestamp {
        Timestamp::from_micros(1_700_000_000_000_000 + secs * 1_000_000)
    }

    fn request(secs: u64, machine: &str, path: &str) -> Event {
        let mut e = Event::new(Kind::Request, at(secs), "192.0.2.7:4000".into());
        e.id = at(secs).as_micros();
        e.machine = Some(machine.into());
        e.fingerprint = Some(format!("fp-{machine}"));
        e.method = Some("GET".into());
        e.path = Some(path.into());
        e.status = Some(200);
        e.bytes = 10;
        e
    }

    /// A store at `path` that does not wait for its lock, and a tracker that
    /// settles boots after five quiet minutes.
    fn open_with_tracker(path: &Path) -> (Store, BootTracker) {
        let store = Store::open(path, Duration::ZERO, DEFAULT_CACHE_BYTES).unwrap();
        (store, BootTracker::new(Duration::from_secs(300)))
    }

    /// The events of one machine, through its index.
    fn events_of(r: &Snapshot, machine: &str) -> Vec<Event> {
        r.events(&EventQuery {
            machine: Some(machine.into()),
            ..Default::default()
        })
        .unwrap()
    }

    /// Records events the way the writer does: boots assigned, one commit.
    fn record(
        store: &Store,
        tracker: &mut BootTracker,
        mut events: Vec<Event>,
        retention: Retention,
        now: Timestamp,
    ) -> Committed {
        let mut changes = Changes::default();
        for e in &mut events {
            tracker.assign(e, &mut changes);
        }
        store.write(&events, &changes, retention, now).unwrap()
    }

    #[test]
    fn events_boots_and_machines_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let (store, mut tracker) = open_with_tracker(&dir.path().join("e.redb"));
        let mut refused = Event::new(Kind::Handshake, at(0), "192.0.2.9:1".into());
        refused.id = at(0).as_micros();
        refused.reason = Some("foreign-ca".into());
        record(
            &store,
            &mut tracker,
            vec![
                refused,
                request(1, "gw1", "/boot/ipxe"),
                request(2, "gw1", "/files/vmlinuz"),
                request(3, "gw2", "/boot/ipxe"),
                request(4, "gw1", "/boot/ipxe"),
            ],
            KEEP_ALL,
            at(5),
        );
        let r = store.snapshot().unwrap();
        assert_eq!(r.event_count().unwrap(), 5);
        assert_eq!(store.last_id().unwrap(), at(4).as_micros());

        let all = r.events(&EventQuery::default()).unwrap();
        assert_eq!(all.len(), 5);
        assert!(all.windows(2).all(|w| w[0].id < w[1].id));

        let gw1 = events_of(&r, "gw1");
        assert_eq!(gw1.len(), 3);
        let recent = r
            .events(&EventQuery {
                since: Some(at(2)),
                limit: Some(2),
                ..Default::default()
            })
            .unwrap();
        let times: Vec<_> = recent.iter().map(|e| e.time).collect();
        assert_eq!(times, [at(3), at(4)]);
        let after = r
            .events(&EventQuery {
                after: Some(at(3).as_micros()),
                ..Default::default()
            })
            .unwrap();
        assert_eq!(after.len(), 1);

        let machines = r.machines().unwrap();
        assert_eq!(machines.len(), 2);
        let gw1 = r.machine("gw1").unwrap().unwrap();
        assert_eq!(gw1.last_seen, at(4));
        assert_eq!(gw1.last_boot.as_ref().unwrap().id, at(4).as_micros());

        let boots = r.boots("gw1", 10).unwrap();
        assert_eq!(boots.len(), 2);
        assert_eq!(boots[0].boot.id, at(4).as_micros());
        assert_eq!(boots[0].boot.outcome, Outcome::ScriptOnly);
        assert_eq!(boots[1].boot.outcome, Outcome::FilesServed);
        assert!(boots[1].boot.settled);
        let paths: Vec<_> = boots[1]
            .requests
            .iter()
            .map(|e| e.path.clone().unwrap())
            .collect();
        assert_eq!(paths, ["/boot/ipxe", "/files/vmlinuz"]);
        assert_eq!(r.boots("gw1", 1).unwrap().len(), 1);
    }

    #[test]
    fn retention_keeps_the_newest_events_within_both_limits() {
        let dir = tempfile::tempdir().unwrap();
        let (store, mut tracker) = open_with_tracker(&dir.path().join("e.redb"));
        let by_count = Retention {
            max_age: Duration::from_secs(86400),
            max_events: 10,
        };
        for round in 0..3 {
            let events = (0..6)
                .map(|i| request(round * 6 + i, "gw1", "/boot/ipxe"))
                .collect();
            record(&store, &mut tracker, events, by_count, at(20));
        }
        let r = store.snapshot().unwrap();
        assert_eq!(r.event_count().unwrap(), 10);
        let kept = r.events(&EventQuery::default()).unwrap();
        assert_eq!(kept.first().unwrap().time, at(8));
        assert_eq!(kept.last().unwrap().time, at(17));
        // The boots their scripts began went with them; the index too.
        assert_eq!(r.boots("gw1", 100).unwrap().len(), 10);
        let indexed = events_of(&r, "gw1");
        assert_eq!(indexed.len(), 10);
        drop(r);

        // By age: an hour later with a 30-minute limit, everything older goes
        // (the last event of the machine summary stays, as "last seen").
        let by_age = Retention {
            max_age: Duration::from_secs(1800),
            max_events: 100,
        };
        let late = request(3600, "gw2", "/boot/ipxe");
        record(&store, &mut tracker, vec![late], by_age, at(3601));
        let r = store.snapshot().unwrap();
        assert_eq!(r.event_count().unwrap(), 1);
        assert_eq!(r.boots("gw1", 100).unwrap().len(), 0);
        assert_eq!(r.machine("gw1").unwrap().unwrap().last_seen, at(17));
    }

    #[test]
    fn survives_reopening_and_reads_read_only() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("e.redb");
        assert!(matches!(
            ReadOnlyStore::open(&path).unwrap(),
            ReadOnlyStore::Missing
        ));
        {
            let (store, mut tracker) = open_with_tracker(&path);
            record(
                &store,
                &mut tracker,
                vec![request(1, "gw1", "/boot/ipxe")],
                KEEP_ALL,
                at(2),
            );
            // While it is open for writing, readers are told to go elsewhere,
            // and a second writer is refused.
            assert!(matches!(
                ReadOnlyStore::open(&path).unwrap(),
                ReadOnlyStore::Busy
            ));
            let err = Store::open(&path, Duration::from_millis(200), DEFAULT_CACHE_BYTES)
                .err()
                .unwrap()
                .to_string();
            assert!(err.contains("in use"), "{err}");
        }
        let ReadOnlyStore::Open(db) = ReadOnlyStore::open(&path).unwrap() else {
            panic!("not readable after close");
        };
        let r = Snapshot::of(db.as_ref()).unwrap();
        assert_eq!(r.events(&EventQuery::default()).unwrap().len(), 1);
        assert_eq!(r.boots("gw1", 5).unwrap().len(), 1);
    }
}
