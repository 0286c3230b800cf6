//! The boot history stays within its documented bounds however long it
//! records: the real event writer and redb store, fed far more events than a
//! small retention keeps, so that the oldest are pruned over and over. It
//! checks sizes, not speeds: the file stops growing once the retention is
//! full (freed pages are reused), and the process's memory stays under the
//! bound of `docs/performance.md`.
//!
//! The test runs in a process of its own, so the process's resident memory
//! is this test's alone.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use crate::support::{in_own_process, run_in_own_process, wait_until};
use bootgate::events::store::{DEFAULT_CACHE_BYTES, Retention, Store};
use bootgate::events::writer::{Recorder, WriterConfig};
use bootgate::events::{Event, EventQuery, Kind, Timestamp};

/// Events the test keeps: a small retention, so pruning cycles come quickly.
const KEPT: u64 = 5_000;
/// Times the whole retention is replaced.
const CYCLES: u64 = 8;
/// Events queued before waiting for the writer: under its channel's 8192.
const CHUNK: u64 = 4_000;
/// Machines making the requests.
const MACHINES: u64 = 128;
/// The documented bound of the file: bytes per kept event (the event and the
/// boot it began, in their block) and a fixed part, see
/// `docs/performance.md`, "Bounds of the boot history".
const FILE_BYTES_PER_EVENT: u64 = 1024;
const FILE_BYTES_FIXED: u64 = 4 * 1024 * 1024;
/// The documented bound of the memory the history adds to a process.
const RSS_BOUND_BYTES: u64 = 64 * 1024 * 1024;

/// What a busy farm sends most: every machine fetching its script (each one
/// starts a boot) and then its files, with the longest query values kept.
fn event(n: u64) -> Event {
    let machine = format!("gateway-{:03}", n % MACHINES);
    let mut e = Event::new(
        Kind::Request,
        Timestamp::now(),
        format!("192.0.2.{}:{}", n % MACHINES, 40_000 + n % 20_000).into(),
    );
    e.fingerprint = Some(format!("{:040x}", n % MACHINES).into());
    e.machine = Some(machine.into());
    e.method = Some("GET".into());
    e.status = Some(200);
    if n.is_multiple_of(3) {
        e.path = Some("/boot/ipxe".into());
        e.mac = Some("52:54:00:12:34:56".into());
        e.platform = Some("efi".into());
        e.buildarch = Some("x86_64".into());
        e.bytes = 420;
    } else {
        e.path = Some(format!("/files/initramfs-{}.img", n % 7).into());
        e.bytes = 64 << 20;
        e.expected_bytes = Some(64 << 20);
        e.duration_ms = 900;
    }
    e
}

fn status_kib(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no {field} in /proc/self/status"))
}

/// The measuring test's path in the suite.
const ALONE: &str = "history_bounds::file_and_memory_stay_bounded_in_a_process_of_their_own";

#[test]
fn file_and_memory_stay_bounded_over_many_pruning_cycles() {
    run_in_own_process(ALONE);
}

#[test]
#[ignore = "run in a process of its own by file_and_memory_stay_bounded_over_many_pruning_cycles"]
fn file_and_memory_stay_bounded_in_a_process_of_their_own() {
    assert!(
        in_own_process(ALONE),
        "shares its process with other tests: run it through \
         file_and_memory_stay_bounded_over_many_pruning_cycles"
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("events.redb");
    let store = Arc::new(Store::open(&path, Duration::ZERO, DEFAULT_CACHE_BYTES).unwrap());
    let config = WriterConfig {
        retention: Retention {
            max_age: Duration::from_secs(86_400),
            max_events: KEPT,
        },
        settle: Duration::from_secs(300),
    };
    let recorder = Recorder::start(store.clone(), config, Box::new(|_| {})).unwrap();
    let file_bound = FILE_BYTES_FIXED + FILE_BYTES_PER_EVENT * KEPT;

    let total = KEPT * CYCLES;
    let mut sent = 0;
    let mut file_after_first_cycle = 0;
    let mut largest_file = 0;
    while sent < total {
        for _ in 0..CHUNK.min(total - sent) {
            recorder.record(event(sent));
            sent += 1;
        }
        let stats = recorder.stats();
        wait_until("the writer to catch up", Duration::from_secs(120), || {
            stats.written.load(Ordering::Relaxed) + stats.dropped.load(Ordering::Relaxed) >= sent
        });
        let usage = store.usage();
        largest_file = largest_file.max(usage.file_bytes);
        if sent >= 2 * KEPT && file_after_first_cycle == 0 {
            file_after_first_cycle = usage.file_bytes;
        }
        assert!(
            usage.cache_bytes <= usage.cache_limit_bytes,
            "page cache {} over its limit {}",
            usage.cache_bytes,
            usage.cache_limit_bytes
        );
    }
    let stats = recorder.stats();
    assert_eq!(stats.dropped.load(Ordering::Relaxed), 0, "events dropped");
    assert_eq!(stats.errors.load(Ordering::Relaxed), 0, "failed writes");
    assert_eq!(stats.written.load(Ordering::Relaxed), total);

    // Only the newest KEPT events are left, and the boots went with theirs.
    let snapshot = store.snapshot().unwrap();
    assert_eq!(snapshot.event_count().unwrap(), KEPT);
    let newest = snapshot
        .events(&EventQuery {
            limit: Some(1),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(newest[0].path, event(total - 1).path);
    let boots = snapshot.boots("gateway-000", 1_000).unwrap();
    assert!(
        boots.len() as u64 <= KEPT / MACHINES / 3 + 1,
        "{} boots of gateway-000 kept",
        boots.len()
    );
    drop(snapshot);

    let usage = store.usage();
    let rss = status_kib("VmRSS:") * 1024;
    let hwm = status_kib("VmHWM:") * 1024;
    eprintln!(
        "{total} events through a retention of {KEPT}: file {} KiB after the first cycle, \
         {} KiB at most, {} KiB at the end (bound {} KiB); page cache {} KiB of {} KiB; \
         VmRSS {} KiB, VmHWM {} KiB",
        file_after_first_cycle >> 10,
        largest_file >> 10,
        usage.file_bytes >> 10,
        file_bound >> 10,
        usage.cache_bytes >> 10,
        usage.cache_limit_bytes >> 10,
        rss >> 10,
        hwm >> 10,
    );
    assert!(
        largest_file <= file_bound,
        "the file grew to {largest_file} bytes, over the bound {file_bound}"
    );
    // Once the retention is full, freed pages are reused: the file stops
    // growing (some slack for the B-trees' fill changing).
    assert!(
        largest_file <= file_after_first_cycle + file_after_first_cycle / 4,
        "the file kept growing after the first cycle: {file_after_first_cycle} then {largest_file}"
    );
    assert!(
        hwm <= RSS_BOUND_BYTES,
        "peak resident memory {hwm} bytes, over the bound {RSS_BOUND_BYTES}"
    );
    recorder.close();
}
