//! Converting a store of the first format, a row of JSON per event and per
//! boot with an index row for each, to blocks. It runs once, in the
//! transaction that first opens such a file for writing: either the whole
//! history is converted and the old tables are gone, or (a crash, a full
//! disk) nothing changed and the next open tries again.

use anyhow::{Context, Result};
use redb::{ReadableTable, Table, TableDefinition, TableHandle, WriteTransaction};

use super::Counters;
use super::block;
use crate::events::model::{Boot, Event};

const EVENTS: TableDefinition<u64, &str> = TableDefinition::new("events");
const EVENTS_BY_MACHINE: TableDefinition<(&str, u64), ()> =
    TableDefinition::new("events_by_machine");
const BOOTS: TableDefinition<u64, &str> = TableDefinition::new("boots");
const BOOTS_BY_MACHINE: TableDefinition<(&str, u64), ()> = TableDefinition::new("boots_by_machine");

/// Events per block made from the old rows.
const EVENTS_PER_BLOCK: usize = 1024;

/// Whether the file still has the first format's tables.
pub(super) fn is_needed(txn: &WriteTransaction) -> Result<bool> {
    Ok(txn.list_tables()?.any(|t| t.name() == EVENTS.name()))
}

/// Moves every event, and every boot with the block of its script's event,
/// into blocks, then deletes the old tables. Returns how many events moved.
pub(super) fn run(
    txn: &WriteTransaction,
    blocks: &mut Table<u64, &[u8]>,
    index: &mut Table<(&str, u64), ()>,
    counters: &mut Counters,
) -> Result<u64> {
    let mut moved = 0;
    {
        let events = txn.open_table(EVENTS)?;
        let boots = txn.open_table(BOOTS)?;
        let mut chunk: Vec<Event> = Vec::with_capacity(EVENTS_PER_BLOCK);
        let mut rows = events.iter()?;
        loop {
            let row = rows.next().transpose()?;
            if let Some((id, json)) = &row {
                let event: Event = serde_json::from_str(json.value())
                    .with_context(|| format!("reading event {}", id.value()))?;
                chunk.push(event);
            }
            if chunk.len() == EVENTS_PER_BLOCK || (row.is_none() && !chunk.is_empty()) {
                let first = chunk[0].id;
                let last = chunk[chunk.len() - 1].id;
                let mut began = Vec::new();
                for entry in boots.range(first..=last)? {
                    let (id, json) = entry?;
                    let boot: Boot = serde_json::from_str(json.value())
                        .with_context(|| format!("reading boot {}", id.value()))?;
                    began.push(boot);
                }
                let (bytes, machines) = block::encode(&chunk, began.iter())?;
                super::append_block(blocks, index, counters, &bytes, &machines)?;
                moved += chunk.len() as u64;
                counters.last_id = counters.last_id.max(last);
                chunk.clear();
            }
            if row.is_none() {
                break;
            }
        }
    }
    txn.delete_table(EVENTS)?;
    txn.delete_table(EVENTS_BY_MACHINE)?;
    txn.delete_table(BOOTS)?;
    txn.delete_table(BOOTS_BY_MACHINE)?;
    // Added to what is there: blocks may exist already if an older bootgate
    // wrote rows to a converted file before this one opened it again.
    counters.count += moved;
    Ok(moved)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use redb::Database;

    use super::*;
    use crate::events::boots::{BootTracker, Changes};
    use crate::events::model::{EventQuery, Kind, Timestamp};
    use crate::events::store::{DEFAULT_CACHE_BYTES, ReadOnlyStore, Retention, Snapshot, Store};

    const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
    const MACHINES: TableDefinition<&str, &str> = TableDefinition::new("machines");

    fn request(n: u64, machine: &str, path: &str) -> Event {
        let time = Timestamp::from_micros(1_700_000_000_000_000 + n * 1_000_000);
        let mut e = Event::new(Kind::Request, time, "192.0.2.7:4000".into());
        e.id = time.as_micros();
        e.machine = Some(machine.into());
        e.fingerprint = Some(format!("fp-{machine}").into());
        e.method = Some("GET".into());
        e.path = Some(path.into());
        e.status = Some(200);
        e
    }

    /// A file as the first format wrote it: `count` requests, a boot every
    /// third one, from two machines.
    fn first_format_file(path: &std::path::Path, count: u64) -> (Vec<Event>, Vec<Boot>) {
        let mut tracker = BootTracker::new(Duration::from_secs(300));
        let mut changes = Changes::default();
        let mut events = Vec::new();
        for n in 0..count {
            let machine = if n % 2 == 0 { "gw1" } else { "gw2" };
            let path = if n % 6 < 2 {
                "/boot/ipxe"
            } else {
                "/files/vmlinuz"
            };
            let mut e = request(n, machine, path);
            tracker.assign(&mut e, &mut changes);
            events.push(e);
        }
        tracker.finish(&mut changes);
        let db = Database::create(path).unwrap();
        let txn = db.begin_write().unwrap();
        {
            let mut table = txn.open_table(EVENTS).unwrap();
            let mut by_machine = txn.open_table(EVENTS_BY_MACHINE).unwrap();
            for e in &events {
                let json = serde_json::to_string(e).unwrap();
                table.insert(e.id, json.as_str()).unwrap();
                let machine = e.machine.as_deref().unwrap();
                by_machine.insert((machine, e.id), ()).unwrap();
            }
            let mut boots = txn.open_table(BOOTS).unwrap();
            let mut boots_by_machine = txn.open_table(BOOTS_BY_MACHINE).unwrap();
            for b in changes.updated.values() {
                let json = serde_json::to_string(b).unwrap();
                boots.insert(b.id, json.as_str()).unwrap();
                boots_by_machine.insert((&*b.machine, b.id), ()).unwrap();
            }
            txn.open_table(MACHINES).unwrap();
            let last = events.last().unwrap().id;
            txn.open_table(META)
                .unwrap()
                .insert("last_id", last)
                .unwrap();
        }
        txn.commit().unwrap();
        (events, changes.updated.into_values().collect())
    }

    fn all_events(r: &Snapshot) -> Vec<Event> {
        r.events(&EventQuery::default()).unwrap()
    }

    #[test]
    fn a_first_format_file_is_converted_with_every_event_and_boot() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("e.redb");
        // More than one block's worth, so boots land in the right blocks.
        let (events, boots) = first_format_file(&path, 2 * EVENTS_PER_BLOCK as u64 + 5);

        let store = Store::open(&path, Duration::ZERO, DEFAULT_CACHE_BYTES).unwrap();
        let r = store.snapshot().unwrap();
        assert_eq!(all_events(&r), events);
        assert_eq!(r.event_count().unwrap(), events.len() as u64);
        assert_eq!(store.last_id().unwrap(), events.last().unwrap().id);
        let gw1_boots: Vec<_> = boots.iter().filter(|b| &*b.machine == "gw1").collect();
        let read = r.boots("gw1", usize::MAX).unwrap();
        assert_eq!(read.len(), gw1_boots.len());
        for (detail, boot) in read.iter().zip(gw1_boots.iter().rev()) {
            assert_eq!(&detail.boot, *boot);
            assert_eq!(detail.requests.len(), boot.requests as usize);
            assert!(detail.requests.iter().all(|e| e.boot == Some(boot.id)));
        }
        drop(r);

        // The old tables are gone; new events follow the converted ones.
        let txn = store.with_db(|db| Ok(db.begin_write()?)).unwrap();
        assert!(!is_needed(&txn).unwrap());
        drop(txn);
        let next = request(10_000, "gw1", "/boot/ipxe");
        let retention = Retention {
            max_age: Duration::from_secs(30 * 86400),
            max_events: 100,
        };
        store
            .write(
                std::slice::from_ref(&next),
                &Changes::default(),
                retention,
                next.time,
            )
            .unwrap();
        let r = store.snapshot().unwrap();
        assert_eq!(r.event_count().unwrap(), 100);
        let kept = all_events(&r);
        assert_eq!(kept.len(), 100);
        assert_eq!(kept.last().unwrap(), &next);
        assert_eq!(kept[..99], events[events.len() - 99..]);
    }

    #[test]
    fn a_reader_without_a_server_converts_the_file_too() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("e.redb");
        let (events, _) = first_format_file(&path, 7);
        let ReadOnlyStore::Open(db) = ReadOnlyStore::open(&path).unwrap() else {
            panic!("not opened");
        };
        let r = Snapshot::of(db.as_ref()).unwrap();
        assert_eq!(all_events(&r), events);
    }
}
