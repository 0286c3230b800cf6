//! Recording off the request path. Handlers hand events to a bounded channel.
//! When the channel is full, the writer is behind: a server short of CPU
//! lets the request wait for room, up to [`MAX_WAIT`], rather than lose its
//! history; a writer that made no room in that time is stuck (a disk that
//! does not answer), and from then on events are dropped and counted
//! (`bootgate_events_dropped_total`) without waiting until it takes events
//! again, because a boot must never stall on its own history. One writer
//! thread drains the channel, groups requests into boots, and commits in
//! batches: a batch is committed as soon as it is [`FLUSH_EVERY`] old or
//! [`BATCH_MAX`] long, so nothing waits in memory longer than that, and a
//! `kill -9` loses at most that much.
//!
//! Once an event has arrived, the writer lets the channel fill for
//! [`GATHER`] before it takes what is there: a writer waiting on the channel
//! would be woken by every single event, a system call and two context
//! switches per request on a busy server.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TryRecvError, TrySendError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use super::boots::{BootTracker, Changes, Settled};
use super::model::{Boot, Event, Timestamp};
use super::store::{Retention, Store};

/// Events waiting for the writer; past this, new ones are dropped.
pub const CHANNEL_CAPACITY: usize = 8192;
/// Longest an event waits in memory before its batch is committed.
pub const FLUSH_EVERY: Duration = Duration::from_millis(250);
pub const BATCH_MAX: usize = 1024;
/// Longest a request waits for room in a full channel.
pub const MAX_WAIT: Duration = Duration::from_millis(100);
/// How long the writer lets events gather in the channel once one came.
pub const GATHER: Duration = Duration::from_millis(10);
/// How often the writer looks for quiet boots and old events with no
/// requests coming in.
const MAINTENANCE_EVERY: Duration = Duration::from_secs(1);
const TRIM_EVERY: Duration = Duration::from_secs(60);

/// What the writer tells the rest of the server about boots.
#[derive(Debug, Clone)]
pub enum BootNotice<'a> {
    /// A machine's latest boot as stored by the last run, at start-up.
    Resumed(&'a Boot),
    Started(&'a Boot),
    Settled(&'a Settled),
    /// The number of boots not settled yet.
    Open(usize),
}

pub type Notify = Box<dyn Fn(BootNotice<'_>) + Send>;

#[derive(Debug, Clone, Copy)]
pub struct WriterConfig {
    pub retention: Retention,
    pub settle: Duration,
}

/// Counters about recording itself.
#[derive(Debug, Default)]
pub struct RecorderStats {
    pub written: AtomicU64,
    /// Events not queued because the writer was behind.
    pub dropped: AtomicU64,
    /// Failed writes to the store.
    pub errors: AtomicU64,
    /// Events that were in those failed writes.
    pub lost: AtomicU64,
    /// The latest failed write, and when writing worked again after it.
    pub last_failure: std::sync::Mutex<Option<WriteFailure>>,
}

/// A write to the store that failed, for the status page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriteFailure {
    pub at: Timestamp,
    pub error: String,
    /// The first write that worked afterwards.
    pub recovered: Option<Timestamp>,
}

impl RecorderStats {
    pub fn last_failure(&self) -> Option<WriteFailure> {
        self.last_failure.lock().expect("recorder stats").clone()
    }
}

enum Msg {
    Event(Box<Event>),
    Stop,
}

/// The request path's handle on the writer.
pub struct Recorder {
    tx: SyncSender<Msg>,
    /// Set when a wait for room ran out; cleared by the writer when it takes
    /// events again.
    stuck: Arc<AtomicBool>,
    stats: Arc<RecorderStats>,
    thread: std::sync::Mutex<Option<JoinHandle<()>>>,
}

impl Recorder {
    /// Starts the writer thread on an open store. Boots left open by the last
    /// run are taken up again (or settled if they have gone quiet).
    pub fn start(store: Arc<Store>, config: WriterConfig, notify: Notify) -> Result<Self> {
        let (tx, rx) = std::sync::mpsc::sync_channel(CHANNEL_CAPACITY);
        let stats = Arc::new(RecorderStats::default());
        let stuck = Arc::new(AtomicBool::new(false));
        let mut writer = Writer {
            stuck: stuck.clone(),
            last_id: store.last_id()?,
            tracker: BootTracker::new(config.settle),
            store,
            config,
            stats: stats.clone(),
            notify,
        };
        writer.resume()?;
        let thread = std::thread::Builder::new()
            .name("bootgate-events".into())
            .spawn(move || writer.run(rx))
            .context("starting the event writer")?;
        Ok(Self {
            tx,
            stuck,
            stats,
            thread: std::sync::Mutex::new(Some(thread)),
        })
    }

    /// Queues an event, waiting up to [`MAX_WAIT`] for room while the
    /// writer is behind but not stuck.
    pub fn record(&self, event: Event) {
        let mut msg = Msg::Event(Box::new(event));
        let mut deadline = None;
        loop {
            match self.tx.try_send(msg) {
                Ok(()) => return,
                Err(TrySendError::Full(back)) if !self.stuck.load(Ordering::Relaxed) => {
                    let deadline = *deadline.get_or_insert_with(|| Instant::now() + MAX_WAIT);
                    if Instant::now() >= deadline {
                        self.stuck.store(true, Ordering::Relaxed);
                        tracing::warn!(
                            "the boot history writer made no room for {} ms; dropping events until it takes them again",
                            MAX_WAIT.as_millis()
                        );
                        break;
                    }
                    msg = back;
                    std::thread::sleep(Duration::from_micros(200));
                }
                Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => break,
            }
        }
        self.stats.dropped.fetch_add(1, Ordering::Relaxed);
    }

    pub fn stats(&self) -> &RecorderStats {
        &self.stats
    }

    /// Commits what is queued and stops the writer.
    pub fn close(&self) {
        let _ = self.tx.send(Msg::Stop);
        if let Some(thread) = self.thread.lock().expect("writer handle").take() {
            let _ = thread.join();
        }
    }
}

/// Moves what the channel holds into `batch`, up to [`BATCH_MAX`], without
/// waiting (so the channel makes room a batch at a time); true when the
/// writer is to stop.
fn take_queued(rx: &Receiver<Msg>, batch: &mut Vec<Event>) -> bool {
    while batch.len() < BATCH_MAX {
        match rx.try_recv() {
            Ok(Msg::Event(event)) => batch.push(*event),
            Ok(Msg::Stop) | Err(TryRecvError::Disconnected) => return true,
            Err(TryRecvError::Empty) => return false,
        }
    }
    false
}

struct Writer {
    store: Arc<Store>,
    stuck: Arc<AtomicBool>,
    tracker: BootTracker,
    last_id: u64,
    config: WriterConfig,
    stats: Arc<RecorderStats>,
    notify: Notify,
}

impl Writer {
    fn resume(&mut self) -> Result<()> {
        let now = Timestamp::now();
        let mut changes = Changes::default();
        for seen in self.store.snapshot()?.machines()? {
            let Some(boot) = seen.last_boot else {
                continue;
            };
            (self.notify)(BootNotice::Resumed(&boot));
            if let Some(settled) = self.tracker.resume(boot, now) {
                changes.updated.insert(settled.id, settled);
            }
        }
        self.store
            .write(&[], &changes, self.config.retention, now)?;
        (self.notify)(BootNotice::Open(self.tracker.open()));
        Ok(())
    }

    fn run(mut self, rx: Receiver<Msg>) {
        let mut batch: Vec<Event> = Vec::new();
        let mut batch_started = Instant::now();
        let mut last_maintenance = Instant::now();
        let mut last_trim = Instant::now();
        loop {
            let wait = if batch.is_empty() {
                MAINTENANCE_EVERY
            } else {
                FLUSH_EVERY.saturating_sub(batch_started.elapsed())
            };
            let mut stop = match rx.recv_timeout(wait) {
                Ok(Msg::Event(event)) => {
                    if batch.is_empty() {
                        batch_started = Instant::now();
                    }
                    batch.push(*event);
                    false
                }
                Ok(Msg::Stop) | Err(RecvTimeoutError::Disconnected) => true,
                Err(RecvTimeoutError::Timeout) => false,
            };
            if !stop && !batch.is_empty() {
                stop = take_queued(&rx, &mut batch);
                if !stop && batch.len() < BATCH_MAX {
                    let left = FLUSH_EVERY.saturating_sub(batch_started.elapsed());
                    std::thread::sleep(GATHER.min(left));
                    stop = take_queued(&rx, &mut batch);
                }
                self.stuck.store(false, Ordering::Relaxed);
            }
            let due = !batch.is_empty()
                && (stop || batch.len() >= BATCH_MAX || batch_started.elapsed() >= FLUSH_EVERY);
            let maintenance = last_maintenance.elapsed() >= MAINTENANCE_EVERY;
            if due || maintenance {
                let trim = last_trim.elapsed() >= TRIM_EVERY;
                self.commit(std::mem::take(&mut batch), maintenance, trim);
                if maintenance {
                    last_maintenance = Instant::now();
                }
                if trim {
                    last_trim = Instant::now();
                }
            }
            if stop {
                return;
            }
        }
    }

    /// Assigns ids and boots, and writes (every write applies retention).
    /// `settle` also settles quiet boots; with nothing to write, a commit
    /// happens only when `trim` asks for one.
    fn commit(&mut self, mut events: Vec<Event>, settle: bool, trim: bool) {
        let now = Timestamp::now();
        let mut changes = Changes::default();
        for event in &mut events {
            self.last_id = (self.last_id + 1).max(event.time.as_micros());
            event.id = self.last_id;
            self.tracker.assign(event, &mut changes);
        }
        if settle {
            self.tracker.settle_idle(now, &mut changes);
        }
        self.tracker.finish(&mut changes);
        if events.is_empty() && changes.is_empty() && !trim {
            return;
        }
        match self
            .store
            .write(&events, &changes, self.config.retention, now)
        {
            Ok(written) => {
                self.stats
                    .written
                    .fetch_add(written.events as u64, Ordering::Relaxed);
                let mut failure = self.stats.last_failure.lock().expect("recorder stats");
                if let Some(f) = failure.as_mut().filter(|f| f.recovered.is_none()) {
                    f.recovered = Some(now);
                    tracing::info!("writing boot history works again");
                }
            }
            Err(err) => {
                // Nothing to retry into: the server keeps serving, the
                // counters, the log and the status page tell what was lost.
                self.stats.errors.fetch_add(1, Ordering::Relaxed);
                self.stats
                    .lost
                    .fetch_add(events.len() as u64, Ordering::Relaxed);
                tracing::error!(
                    events = events.len(),
                    "writing boot history failed, these events are lost: {err:#}"
                );
                *self.stats.last_failure.lock().expect("recorder stats") = Some(WriteFailure {
                    at: now,
                    error: format!("{err:#}"),
                    recovered: None,
                });
            }
        }
        for id in &changes.started {
            if let Some(boot) = changes.updated.get(id) {
                (self.notify)(BootNotice::Started(boot));
            }
        }
        for settled in &changes.settled {
            (self.notify)(BootNotice::Settled(settled));
        }
        (self.notify)(BootNotice::Open(self.tracker.open()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::model::{EventQuery, Kind};
    use std::sync::Mutex;

    fn request(machine: &str, path: &str) -> Event {
        let mut e = Event::new(Kind::Request, Timestamp::now(), "192.0.2.7:4000".into());
        e.machine = Some(machine.into());
        e.method = Some("GET".into());
        e.path = Some(path.into());
        e.status = Some(200);
        e
    }

    fn wait_until(what: &str, mut condition: impl FnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !condition() {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn recorder_on(tx: SyncSender<Msg>) -> Recorder {
        Recorder {
            tx,
            stuck: Arc::default(),
            stats: Arc::default(),
            thread: std::sync::Mutex::new(None),
        }
    }

    #[test]
    fn a_stuck_writer_costs_one_wait_then_events_are_dropped_and_counted() {
        // A writer that never drains: the channel fills up.
        let (tx, _rx) = std::sync::mpsc::sync_channel(4);
        let recorder = recorder_on(tx);
        let started = Instant::now();
        for _ in 0..10 {
            recorder.record(request("gw1", "/boot/ipxe"));
        }
        let took = started.elapsed();
        assert!(took >= MAX_WAIT, "{took:?}");
        assert!(took < MAX_WAIT * 3, "{took:?}");
        assert_eq!(recorder.stats().dropped.load(Ordering::Relaxed), 6);
    }

    #[test]
    fn a_writer_that_is_behind_but_taking_loses_nothing() {
        // A writer slower than the requests, taking one event every 5 ms.
        let (tx, rx) = std::sync::mpsc::sync_channel(4);
        let recorder = recorder_on(tx);
        let taker = std::thread::spawn(move || {
            let mut taken = 0;
            while let Ok(Msg::Event(_)) = rx.recv() {
                taken += 1;
                std::thread::sleep(Duration::from_millis(5));
            }
            taken
        });
        for _ in 0..40 {
            recorder.record(request("gw1", "/boot/ipxe"));
        }
        assert_eq!(recorder.stats().dropped.load(Ordering::Relaxed), 0);
        drop(recorder);
        assert_eq!(taker.join().unwrap(), 40);
    }

    #[test]
    fn writes_in_batches_within_the_flush_interval_and_settles_quiet_boots() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(
            Store::open(
                &dir.path().join("e.redb"),
                Duration::ZERO,
                crate::events::store::DEFAULT_CACHE_BYTES,
            )
            .unwrap(),
        );
        let notices = Arc::new(Mutex::new(Vec::new()));
        let sink = notices.clone();
        let config = WriterConfig {
            retention: Retention {
                max_age: Duration::from_secs(3600),
                max_events: 1000,
            },
            settle: Duration::from_millis(500),
        };
        let recorder = Recorder::start(
            store.clone(),
            config,
            Box::new(move |n| {
                // Only whether a boot settled matters here.
                let settled = matches!(n, BootNotice::Settled(_));
                sink.lock().unwrap().push(settled);
            }),
        )
        .unwrap();
        let sent = Instant::now();
        recorder.record(request("gw1", "/boot/ipxe"));
        recorder.record(request("gw1", "/files/vmlinuz"));
        let count = || store.snapshot().unwrap().event_count().unwrap();
        wait_until("the batch", || count() == 2);
        assert!(
            sent.elapsed() < Duration::from_secs(1),
            "{:?}",
            sent.elapsed()
        );

        wait_until("the boot to settle", || {
            notices.lock().unwrap().iter().any(|&settled| settled)
        });
        let events = store
            .snapshot()
            .unwrap()
            .events(&EventQuery::default())
            .unwrap();
        assert!(events[0].id < events[1].id);
        assert_eq!(events[1].boot, Some(events[0].id));
        recorder.close();
        assert_eq!(recorder.stats().written.load(Ordering::Relaxed), 2);
        // After close, events are counted as dropped, not lost silently.
        recorder.record(request("gw1", "/boot/ipxe"));
        assert_eq!(recorder.stats().dropped.load(Ordering::Relaxed), 1);
    }
}
