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
//! Each commit of the writer is one *block*: its events and the latest
//! record of each boot it changed, in a compact binary form ([`block`]).
//! Writing a batch is one row and one index entry per machine, whatever its
//! size; retention moves a *floor* (the oldest id still kept) and removes a
//! block once all its events are below it, so trimming costs one row per
//! block, not four per event.
//!
//! ```text
//! blocks            block number -> block        numbers and event ids grow together
//! blocks_by_machine (machine, block number) -> () blocks with an event or boot of the machine
//! machines          machine -> MachineSeen (JSON) last seen, last address, last boot
//! meta              name -> u64                   format, last_id, floor, count, next_block
//! ```
//!
//! A boot's newest record is in the newest block that has it; the block of
//! its `/boot/ipxe` event always has one. A file written in the first format
//! (a row per event and per boot) is converted when it is first opened for
//! writing ([`migrate`]).

mod block;
mod migrate;

use std::collections::{BTreeMap, HashMap};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::RwLock;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use redb::{
    Database, DatabaseError, Durability, ReadOnlyDatabase, ReadTransaction, ReadableDatabase,
    ReadableTable, Table, TableDefinition, TableHandle, WriteTransaction,
};

use super::boots::Changes;
use super::model::{Boot, BootDetail, Event, EventQuery, MachineSeen, Timestamp};
use block::{Contents, Header};

const BLOCKS: TableDefinition<u64, &[u8]> = TableDefinition::new("blocks");
const BLOCKS_BY_MACHINE: TableDefinition<(&str, u64), ()> =
    TableDefinition::new("blocks_by_machine");
const MACHINES: TableDefinition<&str, &str> = TableDefinition::new("machines");
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");

/// The format this version writes; a file of a later one is refused.
const FORMAT: u64 = 2;

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
        self.with_db(|db| Snapshot::in_txn(db.begin_read()?))
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
        anyhow::ensure!(
            changes.is_finished(),
            "boot changes written before the tracker finished the step (a bug)"
        );
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
/// let go of it, and prepares it ([`prepare`]).
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
    prepare(&db, path)?;
    Ok(db)
}

/// Sets the file's mode, makes sure every table exists (so read-only opens
/// find them all) and converts a file of the first format.
fn prepare(db: &Database, path: &Path) -> Result<()> {
    // redb creates the file with the umask's mode; set it explicitly.
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(crate::fsutil::PUBLIC))
        .with_context(|| format!("setting the mode of {}", path.display()))?;
    let txn = begin_write(db)?;
    {
        let mut blocks = txn.open_table(BLOCKS)?;
        let mut index = txn.open_table(BLOCKS_BY_MACHINE)?;
        txn.open_table(MACHINES)?;
        let mut meta = txn.open_table(META)?;
        let format = meta.get("format")?.map(|v| v.value());
        if format.is_some_and(|f| f > FORMAT) {
            bail!(
                "{} was written by a newer bootgate (history format {}, this one knows {FORMAT}); \
                 run that version, or move the file away to start a new history",
                path.display(),
                format.unwrap_or_default()
            );
        }
        if migrate::is_needed(&txn)? {
            let mut counters = Counters::read(&meta)?;
            let moved = migrate::run(&txn, &mut blocks, &mut index, &mut counters)
                .with_context(|| format!("converting {} to the block format", path.display()))?;
            counters.write(&mut meta)?;
            tracing::info!(
                events = moved,
                "converted {} to the block format",
                path.display()
            );
        }
        meta.insert("format", FORMAT)?;
    }
    txn.commit()?;
    Ok(())
}

/// Whether a file opened read-only is in the current format (or empty).
fn is_current(db: &ReadOnlyDatabase) -> Result<bool> {
    let txn = db.begin_read()?;
    let mut tables = txn.list_tables()?;
    Ok(tables.any(|t| t.name() == BLOCKS.name()))
}

/// A write transaction: durable, and saving the allocator state so that a
/// crash needs no full repair.
fn begin_write(db: &Database) -> Result<WriteTransaction> {
    let mut txn = db.begin_write()?;
    txn.set_durability(Durability::Immediate)?;
    txn.set_quick_repair(true);
    Ok(txn)
}

/// The store's running numbers, kept in `meta`.
#[derive(Debug, Default, Clone, Copy)]
struct Counters {
    /// The largest event id ever written.
    last_id: u64,
    /// Events with a smaller id are trimmed, even while their block remains.
    floor: u64,
    /// Events kept: written, less trimmed.
    count: u64,
    /// The number the next block gets.
    next_block: u64,
}

impl Counters {
    fn read(meta: &impl ReadableTable<&'static str, u64>) -> Result<Self> {
        let get = |name: &str| -> Result<u64> { Ok(meta.get(name)?.map_or(0, |v| v.value())) };
        Ok(Self {
            last_id: get("last_id")?,
            floor: get("floor")?,
            count: get("count")?,
            next_block: get("next_block")?,
        })
    }

    fn write(&self, meta: &mut Table<&'static str, u64>) -> Result<()> {
        meta.insert("last_id", self.last_id)?;
        meta.insert("floor", self.floor)?;
        meta.insert("count", self.count)?;
        meta.insert("next_block", self.next_block)?;
        Ok(())
    }
}

/// Appends `block` (made by [`block::encode`]) as the next block, indexed
/// under each machine it concerns.
fn append_block(
    blocks: &mut Table<u64, &[u8]>,
    index: &mut Table<(&str, u64), ()>,
    counters: &mut Counters,
    block: &[u8],
    machines: &[&str],
) -> Result<()> {
    let number = counters.next_block;
    counters.next_block += 1;
    blocks.insert(number, block)?;
    for machine in machines {
        index.insert((*machine, number), ())?;
    }
    Ok(())
}

/// Writes events (ids ascending) and the boots they changed as one block in
/// one durable commit, then applies retention.
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
        let mut blocks = txn.open_table(BLOCKS)?;
        let mut index = txn.open_table(BLOCKS_BY_MACHINE)?;
        let mut meta = txn.open_table(META)?;
        let mut counters = Counters::read(&meta)?;
        if !events.is_empty() || !changes.updated.is_empty() {
            let (block, machines) = block::encode(events, changes.updated.values())?;
            append_block(&mut blocks, &mut index, &mut counters, &block, &machines)?;
        }
        written.events = events.len();
        counters.count += events.len() as u64;
        if let Some(last) = events.last() {
            counters.last_id = counters.last_id.max(last.id);
        }
        update_machines(&mut txn.open_table(MACHINES)?, events, changes)?;
        written.trimmed = trim(&mut blocks, &mut index, &mut counters, retention, now)?;
        counters.write(&mut meta)?;
    }
    txn.commit()?;
    Ok(written)
}

/// Updates each machine's last sighting and last boot.
fn update_machines(
    machines: &mut Table<&str, &str>,
    events: &[Event],
    changes: &Changes,
) -> Result<()> {
    let mut seen: HashMap<&str, MachineSeen> = HashMap::new();
    for event in events {
        let Some(machine) = event.machine.as_deref() else {
            continue;
        };
        let entry = match seen.get_mut(machine) {
            Some(entry) => entry,
            None => {
                let stored = get_json::<MachineSeen>(machines, machine)?;
                let entry = stored.unwrap_or_else(|| MachineSeen {
                    machine: machine.into(),
                    fingerprint: "".into(),
                    last_seen: Timestamp::default(),
                    last_peer: "".into(),
                    last_boot: None,
                });
                seen.entry(machine).or_insert(entry)
            }
        };
        if event.time >= entry.last_seen {
            entry.last_seen = event.time;
            entry.last_peer.clone_from(&event.peer);
            if let Some(fp) = &event.fingerprint {
                entry.fingerprint.clone_from(fp);
            }
        }
    }
    // Each machine's newest changed boot; a step can start hundreds.
    let mut newest: HashMap<&str, &Boot> = HashMap::new();
    for boot in changes.updated.values() {
        let slot = newest.entry(&*boot.machine).or_insert(boot);
        if slot.id < boot.id {
            *slot = boot;
        }
    }
    for (machine, boot) in newest {
        let entry = match seen.get_mut(machine) {
            Some(entry) => entry,
            None => match get_json::<MachineSeen>(machines, machine)? {
                Some(stored) => seen.entry(machine).or_insert(stored),
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
        machines.insert(*name, serde_json::to_string(entry)?.as_str())?;
    }
    Ok(())
}

/// Trims the oldest events past either limit: moves the floor past them and
/// removes the blocks left with none above it. Returns how many events went.
fn trim(
    blocks: &mut Table<u64, &[u8]>,
    index: &mut Table<(&str, u64), ()>,
    counters: &mut Counters,
    retention: Retention,
    now: Timestamp,
) -> Result<usize> {
    // `id >= time`, so an id before the cutoff is an event before it.
    let cutoff = now.saturating_sub(retention.max_age).as_micros();
    let mut trimmed = 0;
    loop {
        let Some((number, header)) = blocks
            .first()?
            .map(|(number, block)| {
                Ok::<_, anyhow::Error>((number.value(), Header::read(block.value())?))
            })
            .transpose()?
        else {
            break;
        };
        let kept = &header.ids[header.ids.partition_point(|&id| id < counters.floor)..];
        let excess = counters.count.saturating_sub(retention.max_events);
        let too_old = kept.partition_point(|&id| id < cutoff);
        let going = usize::try_from(excess)
            .unwrap_or(usize::MAX)
            .min(kept.len())
            .max(too_old);
        counters.count = counters.count.saturating_sub(going as u64);
        trimmed += going;
        if going < kept.len() {
            counters.floor = counters.floor.max(kept[going]);
            break;
        }
        // Nothing in it is kept any more (a block of boots only is older
        // than the events after it, so its boots are trimmed too).
        if let Some(last) = header.last_id() {
            counters.floor = counters.floor.max(last + 1);
        }
        blocks.remove(number)?;
        for machine in &header.machines {
            index.remove((machine.as_str(), number))?;
        }
    }
    Ok(trimmed)
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
            Ok(db) if is_current(&db)? => Ok(Self::Open(Box::new(db))),
            // The first format: convert it, which takes a writable open.
            Ok(db) => {
                drop(db);
                Self::open_writable(path).context(
                    "the boot history is in an older format and is converted on its first \
                     writable open: start `bootgate serve` once, or run this as the owner of \
                     the data directory",
                )
            }
            Err(DatabaseError::DatabaseAlreadyOpen) => Ok(Self::Busy),
            // Written without quick repair (not by us) and not closed cleanly:
            // only a writable open can repair it, which nobody else holds now.
            Err(DatabaseError::RepairAborted) => Self::open_writable(path),
            Err(err) => Err(err).with_context(|| format!("opening {}", path.display())),
        }
    }

    fn open_writable(path: &Path) -> Result<Self> {
        match Database::builder()
            .set_cache_size(DEFAULT_CACHE_BYTES)
            .create(path)
        {
            Ok(db) => {
                prepare(&db, path)?;
                Ok(Self::Open(Box::new(db)))
            }
            Err(DatabaseError::DatabaseAlreadyOpen) => Ok(Self::Busy),
            Err(err) => Err(err).with_context(|| format!("opening {} to write", path.display())),
        }
    }
}

/// Whether a walk over blocks goes on.
enum Walk {
    On,
    Stop,
}

/// A consistent snapshot of the store, for queries.
pub struct Snapshot {
    txn: ReadTransaction,
    counters: Counters,
}

impl Snapshot {
    /// A snapshot of a store opened read-only.
    pub fn of(db: &(dyn ReadableDatabase + Send + Sync)) -> Result<Self> {
        Self::in_txn(db.begin_read()?)
    }

    fn in_txn(txn: ReadTransaction) -> Result<Self> {
        let counters = Counters::read(&txn.open_table(META)?)?;
        Ok(Self { txn, counters })
    }

    pub fn event_count(&self) -> Result<u64> {
        Ok(self.counters.count)
    }

    /// Visits blocks newest first (all, or those of `machine`), decoded,
    /// until `visit` says stop.
    fn walk_newest_first(
        &self,
        machine: Option<&str>,
        mut visit: impl FnMut(Contents) -> Result<Walk>,
    ) -> Result<()> {
        let blocks = self.txn.open_table(BLOCKS)?;
        let mut visit_bytes = |bytes: &[u8]| visit(Contents::read(bytes)?);
        match machine {
            Some(machine) => {
                let index = self.txn.open_table(BLOCKS_BY_MACHINE)?;
                for entry in index.range((machine, 0)..=(machine, u64::MAX))?.rev() {
                    let number = entry?.0.value().1;
                    let Some(block) = blocks.get(number)? else {
                        bail!("the history index names block {number}, which is missing");
                    };
                    if let Walk::Stop = visit_bytes(block.value())? {
                        break;
                    }
                }
            }
            None => {
                for entry in blocks.iter()?.rev() {
                    if let Walk::Stop = visit_bytes(entry?.1.value())? {
                        break;
                    }
                }
            }
        }
        Ok(())
    }

    /// Events matching `query`, oldest first (the newest `limit` of them).
    pub fn events(&self, query: &EventQuery) -> Result<Vec<Event>> {
        let since = query.since.map_or(0, Timestamp::as_micros);
        let after = query.after.map_or(0, |a| a.saturating_add(1));
        let from = since.max(after).max(self.counters.floor);
        let limit = query.limit.unwrap_or(usize::MAX);
        let machine = query.machine.as_deref();
        let mut out = Vec::new();
        if limit == 0 {
            return Ok(out);
        }
        self.walk_newest_first(machine, |block| {
            if block.header.last_id().is_some_and(|last| last < from) {
                return Ok(Walk::Stop);
            }
            for event in block.events.into_iter().rev() {
                if event.id < from {
                    return Ok(Walk::Stop);
                }
                if event.time.as_micros() >= since
                    && machine.is_none_or(|m| event.machine.as_deref() == Some(m))
                {
                    out.push(event);
                    if out.len() >= limit {
                        return Ok(Walk::Stop);
                    }
                }
            }
            Ok(Walk::On)
        })?;
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
        let floor = self.counters.floor;
        // Newest record of each boot; the requests of each.
        let mut boots: BTreeMap<u64, Boot> = BTreeMap::new();
        let mut requests: HashMap<u64, Vec<Event>> = HashMap::new();
        if limit > 0 {
            self.walk_newest_first(Some(machine), |block| {
                for boot in block.boots {
                    if *boot.machine == *machine && boot.id >= floor {
                        boots.entry(boot.id).or_insert(boot);
                    }
                }
                for event in block.events.into_iter().rev() {
                    if let Some(boot) = event.boot
                        && event.id >= floor
                        && event.machine.as_deref() == Some(machine)
                    {
                        requests.entry(boot).or_default().push(event);
                    }
                }
                // Every boot that began in this block or later is known now
                // (a boot's first record is in its script's block), and so
                // are all their requests, which come after it.
                let done = block
                    .header
                    .ids
                    .first()
                    .is_some_and(|&first| boots.range(first..).count() >= limit);
                Ok(if done { Walk::Stop } else { Walk::On })
            })?;
        }
        let out = boots
            .into_values()
            .rev()
            .take(limit)
            .map(|boot| {
                let mut requests = requests.remove(&boot.id).unwrap_or_default();
                requests.reverse();
                BootDetail { boot, requests }
            })
            .collect();
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
        e.fingerprint = Some(format!("fp-{machine}").into());
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
        tracker.finish(&mut changes);
        store.write(&events, &changes, retention, now).unwrap()
    }

    /// The numbers of the blocks in the store.
    fn block_numbers(r: &Snapshot) -> Vec<u64> {
        let blocks = r.txn.open_table(BLOCKS).unwrap();
        blocks
            .iter()
            .unwrap()
            .map(|e| e.unwrap().0.value())
            .collect()
    }

    #[test]
    fn a_boot_spread_over_commits_reads_back_whole_and_newest() {
        let dir = tempfile::tempdir().unwrap();
        let (store, mut tracker) = open_with_tracker(&dir.path().join("e.redb"));
        let commits = [
            vec![
                request(1, "gw1", "/boot/ipxe"),
                request(2, "gw2", "/boot/ipxe"),
            ],
            vec![request(3, "gw1", "/files/vmlinuz")],
            vec![request(4, "gw2", "/files/initrd")],
            vec![
                request(5, "gw1", "/files/initrd"),
                request(6, "gw2", "/boot/ipxe"),
            ],
        ];
        for events in commits {
            record(&store, &mut tracker, events, KEEP_ALL, at(7));
        }
        // A commit of boots only (what settling quiet boots writes).
        let mut quiet = Changes::default();
        tracker.settle_idle(at(1000), &mut quiet);
        tracker.finish(&mut quiet);
        assert!(!quiet.updated.is_empty());
        store.write(&[], &quiet, KEEP_ALL, at(1000)).unwrap();

        let r = store.snapshot().unwrap();
        let gw1 = r.boots("gw1", 10).unwrap();
        assert_eq!(gw1.len(), 1);
        assert_eq!(gw1[0].boot.requests, 3);
        assert_eq!(gw1[0].boot.files, 2);
        assert!(gw1[0].boot.settled, "the newest record is read");
        let times: Vec<_> = gw1[0].requests.iter().map(|e| e.time).collect();
        assert_eq!(times, [at(1), at(3), at(5)]);

        let gw2 = r.boots("gw2", 10).unwrap();
        let ids: Vec<_> = gw2.iter().map(|d| d.boot.id).collect();
        assert_eq!(ids, [at(6).as_micros(), at(2).as_micros()]);
        assert_eq!(gw2[1].requests.len(), 2);
        assert_eq!(r.boots("gw2", 1).unwrap().len(), 1);
        assert!(r.boots("gw3", 1).unwrap().is_empty());
        assert_eq!(events_of(&r, "gw2").len(), 3);
        assert_eq!(r.event_count().unwrap(), 6);
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
        assert_eq!(
            paths,
            [std::sync::Arc::from("/boot/ipxe"), "/files/vmlinuz".into()]
        );
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
        // The first commit's block is wholly trimmed and gone; the second is
        // kept for the events of it above the floor.
        assert_eq!(block_numbers(&r), [1, 2]);
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
        assert_eq!(block_numbers(&r), [3]);
        assert!(events_of(&r, "gw1").is_empty());
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
