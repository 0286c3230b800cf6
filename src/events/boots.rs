//! Grouping requests into boots, as they are recorded. A pure state machine
//! (no clock, no storage) so the rules are tested on their own:
//!
//! - a `/boot/ipxe` request from a machine starts a new boot; the machine's
//!   previous boot, if still open, settles;
//! - any other request from the same machine that starts no later than the
//!   settle time after the boot's last activity belongs to it; requests with no
//!   such boot (or from no known machine) belong to none;
//! - the outcome is `script-only` until a file under `/files/` is served in
//!   full (`files-served`); the first request that fails (status 400 and up, a
//!   refusal, or a body cut short) makes it `failed` with that request's
//!   reason, and stays so;
//! - a boot settles when the machine starts another, when it fails, or when
//!   the machine has been quiet for the settle time. Settling is when a boot
//!   is counted in `bootgate_boots_total`; a late request still updates the
//!   stored record.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use super::model::{Boot, Event, Kind, Outcome, Timestamp};

/// What one step of the tracker changed.
#[derive(Debug, Default)]
pub struct Changes {
    /// Boots whose record changed, by id: to be written.
    pub updated: BTreeMap<u64, Boot>,
    /// Boots that settled in this step, as they stood then: to be counted.
    pub settled: Vec<Settled>,
    /// Boots that began in this step, by id; their records are in `updated`.
    pub started: Vec<u64>,
    /// Boots that changed and are still the tracker's latest: copied into
    /// `updated` once, by [`BootTracker::finish`], however often they changed.
    changed: BTreeSet<u64>,
}

/// How a boot stood when it settled: what the metrics count. (A late
/// request can still change the stored record, not the count.)
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settled {
    pub id: u64,
    pub outcome: Outcome,
    pub reason: Option<String>,
}

impl Settled {
    fn of(boot: &Boot) -> Self {
        Self {
            id: boot.id,
            outcome: boot.outcome,
            reason: boot.reason.clone(),
        }
    }
}

impl Changes {
    pub fn is_empty(&self) -> bool {
        self.updated.is_empty()
            && self.settled.is_empty()
            && self.started.is_empty()
            && self.changed.is_empty()
    }

    /// Whether `updated` holds every changed boot ([`BootTracker::finish`]).
    pub fn is_finished(&self) -> bool {
        self.changed.is_empty()
    }
}

pub struct BootTracker {
    settle: Duration,
    /// Each machine's latest boot, open or settled.
    latest: HashMap<Arc<str>, Boot>,
}

impl BootTracker {
    pub fn new(settle: Duration) -> Self {
        Self {
            settle,
            latest: HashMap::new(),
        }
    }

    /// Takes up a machine's latest boot as stored before a restart. One that
    /// has been quiet for longer than the settle time is settled without being
    /// counted (this process never saw it begin); it is returned for writing.
    pub fn resume(&mut self, mut boot: Boot, now: Timestamp) -> Option<Boot> {
        let changed = !boot.settled && now.since(boot.last_activity) > self.settle;
        if changed {
            boot.settled = true;
        }
        self.latest.insert(boot.machine.clone(), boot.clone());
        changed.then_some(boot)
    }

    /// Assigns `event` to a boot (setting `event.boot`), updating the boot.
    pub fn assign(&mut self, event: &mut Event, changes: &mut Changes) {
        if event.kind != Kind::Request {
            return;
        }
        if event.is_boot_script() {
            let Some(machine) = event.machine.clone() else {
                return;
            };
            let boot = self.start(event, machine, changes);
            let previous = match self.latest.get_mut(&boot.machine) {
                Some(slot) => Some(std::mem::replace(slot, boot)),
                None => {
                    self.latest.insert(boot.machine.clone(), boot);
                    None
                }
            };
            // The previous boot has left `latest`: settle it, hand it over.
            if let Some(mut previous) = previous {
                let mut changed = changes.changed.remove(&previous.id);
                if !previous.settled {
                    previous.settled = true;
                    changes.settled.push(Settled::of(&previous));
                    changed = true;
                }
                if changed {
                    changes.updated.insert(previous.id, previous);
                }
            }
            return;
        }
        let Some(machine) = event.machine.as_deref() else {
            return;
        };
        let Some(boot) = self.latest.get_mut(machine) else {
            return;
        };
        let in_window = event.time >= boot.started
            && event.time <= boot.last_activity.saturating_add(self.settle);
        if !in_window {
            return;
        }
        event.boot = Some(boot.id);
        boot.requests += 1;
        boot.bytes += event.bytes;
        boot.last_activity = boot.last_activity.max(event.end());
        if event.succeeded() {
            if event
                .path
                .as_deref()
                .is_some_and(|p| p.starts_with("/files/"))
            {
                boot.files += 1;
                if boot.outcome == Outcome::ScriptOnly {
                    boot.outcome = Outcome::FilesServed;
                }
            }
        } else if boot.outcome != Outcome::Failed {
            fail(boot, event);
            if !boot.settled {
                boot.settled = true;
                changes.settled.push(Settled::of(boot));
            }
        }
        changes.changed.insert(boot.id);
    }

    fn start(&mut self, event: &mut Event, machine: Arc<str>, changes: &mut Changes) -> Boot {
        let mut boot = Boot {
            id: event.id,
            machine,
            fingerprint: event.fingerprint.clone().unwrap_or_default(),
            started: event.time,
            last_activity: event.end(),
            peer: event.peer.clone(),
            mac: event.mac.clone(),
            platform: event.platform.clone(),
            buildarch: event.buildarch.clone(),
            outcome: Outcome::ScriptOnly,
            reason: None,
            failed_request: None,
            requests: 1,
            files: 0,
            bytes: event.bytes,
            settled: false,
        };
        if !event.succeeded() {
            // Without a script there is nothing more to this boot.
            fail(&mut boot, event);
            boot.settled = true;
            changes.settled.push(Settled::of(&boot));
        }
        event.boot = Some(boot.id);
        changes.started.push(boot.id);
        changes.changed.insert(boot.id);
        boot
    }

    /// Settles the boots that have been quiet for the settle time.
    pub fn settle_idle(&mut self, now: Timestamp, changes: &mut Changes) {
        for boot in self.latest.values_mut() {
            if !boot.settled && now.since(boot.last_activity) > self.settle {
                boot.settled = true;
                changes.settled.push(Settled::of(boot));
                changes.changed.insert(boot.id);
            }
        }
    }

    /// Ends a step: copies the boots that changed and are still current
    /// into `changes.updated`, to be written.
    pub fn finish(&self, changes: &mut Changes) {
        if changes.changed.is_empty() {
            return;
        }
        for boot in self.latest.values() {
            if changes.changed.remove(&boot.id) {
                changes.updated.insert(boot.id, boot.clone());
            }
        }
    }

    /// Boots not settled yet.
    pub fn open(&self) -> usize {
        self.latest.values().filter(|b| !b.settled).count()
    }
}

fn fail(boot: &mut Boot, event: &Event) {
    boot.outcome = Outcome::Failed;
    boot.reason = event.failure_reason();
    boot.failed_request = Some(format!(
        "{} {}",
        event.method.as_deref().unwrap_or("GET"),
        event.path.as_deref().unwrap_or("?")
    ));
}

#[cfg(test)]
mod tests {
    use super::*;

    const SETTLE: Duration = Duration::from_secs(300);

    fn at(secs: u64) -> Timestamp {
        Timestamp::from_micros(1_700_000_000_000_000 + secs * 1_000_000)
    }

    fn request(id: u64, secs: u64, machine: Option<&str>, path: &str, status: u16) -> Event {
        let mut e = Event::new(Kind::Request, at(secs), "192.0.2.7:4000".into());
        e.id = id;
        e.machine = machine.map(Arc::from);
        e.fingerprint = machine.map(|m| format!("fp-{m}").into());
        e.method = Some("GET".into());
        e.path = Some(path.into());
        e.status = Some(status);
        e.bytes = 100;
        e.duration_ms = 10;
        if status == 403 && machine.is_some() {
            e.reason = Some("revoked".into());
        }
        e
    }

    /// Feeds events through a tracker; returns them (with boots assigned) and
    /// every change.
    fn feed(tracker: &mut BootTracker, events: Vec<Event>) -> (Vec<Event>, Changes) {
        let mut changes = Changes::default();
        let events = events
            .into_iter()
            .map(|mut e| {
                tracker.assign(&mut e, &mut changes);
                e
            })
            .collect();
        tracker.finish(&mut changes);
        (events, changes)
    }

    #[test]
    fn a_step_copies_each_changed_boot_once_at_its_end() {
        let mut t = BootTracker::new(SETTLE);
        let mut changes = Changes::default();
        for (id, path) in [
            (1, "/boot/ipxe"),
            (2, "/files/a"),
            (3, "/boot/ipxe"),
            (4, "/files/b"),
        ] {
            t.assign(&mut request(id, id, Some("gw1"), path, 200), &mut changes);
        }
        assert!(!changes.is_finished());
        assert!(!changes.updated.contains_key(&3), "copied before the end");
        // The first boot, replaced by the second, was handed over whole.
        assert_eq!(changes.updated[&1].requests, 2);
        assert!(changes.updated[&1].settled);
        t.finish(&mut changes);
        assert!(changes.is_finished());
        assert_eq!(changes.updated[&3].requests, 2);
        assert!(!changes.updated[&3].settled);
        assert_eq!(changes.started, [1, 3]);
    }

    #[test]
    fn a_script_and_its_files_make_one_boot() {
        let mut t = BootTracker::new(SETTLE);
        let (events, changes) = feed(
            &mut t,
            vec![
                request(1, 0, Some("gw1"), "/boot/ipxe", 200),
                request(2, 1, Some("gw1"), "/files/vmlinuz", 200),
                request(3, 2, Some("gw1"), "/files/initrd", 200),
            ],
        );
        assert!(events.iter().all(|e| e.boot == Some(1)));
        let boot = &changes.updated[&1];
        assert_eq!(boot.outcome, Outcome::FilesServed);
        assert_eq!((boot.requests, boot.files, boot.bytes), (3, 2, 300));
        assert!(!boot.settled);
        assert_eq!(changes.started.len(), 1);
        assert!(changes.settled.is_empty());
        assert_eq!(t.open(), 1);
    }

    #[test]
    fn a_script_alone_is_script_only_and_settles_when_quiet() {
        let mut t = BootTracker::new(SETTLE);
        let (_, changes) = feed(&mut t, vec![request(1, 0, Some("gw1"), "/boot/ipxe", 200)]);
        assert_eq!(changes.updated[&1].outcome, Outcome::ScriptOnly);

        let mut changes = Changes::default();
        t.settle_idle(at(200), &mut changes);
        assert!(changes.is_empty(), "settled too early");
        t.settle_idle(at(400), &mut changes);
        t.finish(&mut changes);
        assert_eq!(changes.settled.len(), 1);
        assert_eq!(changes.settled[0].outcome, Outcome::ScriptOnly);
        assert!(changes.updated[&1].settled);
        assert_eq!(t.open(), 0);
        // Settled once only.
        let mut again = Changes::default();
        t.settle_idle(at(900), &mut again);
        assert!(again.is_empty());
    }

    #[test]
    fn the_next_boot_settles_the_previous_one() {
        let mut t = BootTracker::new(SETTLE);
        let (events, changes) = feed(
            &mut t,
            vec![
                request(1, 0, Some("gw1"), "/boot/ipxe", 200),
                request(2, 1, Some("gw1"), "/files/vmlinuz", 200),
                request(3, 60, Some("gw1"), "/boot/ipxe", 200),
                request(4, 61, Some("gw2"), "/boot/ipxe", 200),
                request(5, 62, Some("gw1"), "/files/vmlinuz", 200),
            ],
        );
        let boots: Vec<_> = events.iter().map(|e| e.boot).collect();
        assert_eq!(boots, [Some(1), Some(1), Some(3), Some(4), Some(3)]);
        assert_eq!(changes.settled.len(), 1);
        assert_eq!(changes.settled[0].id, 1);
        assert_eq!(changes.settled[0].outcome, Outcome::FilesServed);
        assert_eq!(t.open(), 2);
    }

    #[test]
    fn failures_name_the_boot_and_settle_it_at_once() {
        let mut t = BootTracker::new(SETTLE);
        let (_, changes) = feed(
            &mut t,
            vec![
                request(1, 0, Some("gw1"), "/boot/ipxe", 200),
                request(2, 1, Some("gw1"), "/files/vmlinuz", 200),
                request(3, 2, Some("gw1"), "/files/initrd", 404),
                request(4, 3, Some("gw1"), "/files/other", 200),
            ],
        );
        let boot = &changes.updated[&1];
        assert_eq!(boot.outcome, Outcome::Failed);
        assert_eq!(boot.reason.as_deref(), Some("http-404"));
        assert_eq!(boot.failed_request.as_deref(), Some("GET /files/initrd"));
        assert_eq!(boot.outcome_text(), "failed (http-404)");
        assert_eq!(boot.requests, 4);
        assert_eq!(changes.settled.len(), 1);

        // A revoked machine's script fetch is a failed boot.
        let (_, changes) = feed(&mut t, vec![request(9, 10, Some("gw2"), "/boot/ipxe", 403)]);
        let boot = &changes.updated[&9];
        assert_eq!(boot.outcome_text(), "failed (revoked)");
        assert!(boot.settled);
        assert_eq!(changes.settled.len(), 1);
    }

    #[test]
    fn a_body_cut_short_fails_the_boot() {
        let mut t = BootTracker::new(SETTLE);
        let mut cut = request(2, 1, Some("gw1"), "/files/initrd", 200);
        cut.reason = Some("aborted".into());
        let (_, changes) = feed(
            &mut t,
            vec![request(1, 0, Some("gw1"), "/boot/ipxe", 200), cut],
        );
        assert_eq!(changes.updated[&1].outcome_text(), "failed (aborted)");
    }

    #[test]
    fn requests_outside_a_boot_belong_to_none() {
        let mut t = BootTracker::new(SETTLE);
        let (events, changes) = feed(
            &mut t,
            vec![
                // Files before any script (e.g. a server restart mid-boot).
                request(1, 0, Some("gw1"), "/files/vmlinuz", 200),
                // No machine: refused before one was known.
                request(2, 1, None, "/boot/ipxe", 403),
                request(3, 2, Some("gw1"), "/boot/ipxe", 200),
                // Long after the boot went quiet.
                request(4, 2 + 301, Some("gw1"), "/files/vmlinuz", 200),
            ],
        );
        let boots: Vec<_> = events.iter().map(|e| e.boot).collect();
        assert_eq!(boots, [None, None, Some(3), None]);
        assert_eq!(changes.updated.len(), 1);
        assert_eq!(changes.updated[&3].outcome, Outcome::ScriptOnly);
    }

    #[test]
    fn a_late_download_still_joins_its_settled_boot() {
        let mut t = BootTracker::new(SETTLE);
        feed(&mut t, vec![request(1, 0, Some("gw1"), "/boot/ipxe", 200)]);
        let mut changes = Changes::default();
        t.settle_idle(at(400), &mut changes);
        // A download that started within the window and finished long after.
        let mut slow = request(2, 250, Some("gw1"), "/files/initrd", 200);
        slow.duration_ms = 500_000;
        let (events, changes) = feed(&mut t, vec![slow]);
        assert_eq!(events[0].boot, Some(1));
        assert_eq!(changes.updated[&1].outcome, Outcome::FilesServed);
        assert!(changes.settled.is_empty(), "counted twice");
    }

    #[test]
    fn resumed_boots_settle_silently_when_stale() {
        let mut t = BootTracker::new(SETTLE);
        let (_, changes) = feed(&mut t, vec![request(1, 0, Some("gw1"), "/boot/ipxe", 200)]);
        let stored = changes.updated[&1].clone();

        let mut fresh = BootTracker::new(SETTLE);
        assert_eq!(fresh.resume(stored.clone(), at(10)), None);
        assert_eq!(fresh.open(), 1);
        let (events, _) = feed(
            &mut fresh,
            vec![request(2, 11, Some("gw1"), "/files/vmlinuz", 200)],
        );
        assert_eq!(events[0].boot, Some(1));

        let mut stale = BootTracker::new(SETTLE);
        let settled = stale.resume(stored, at(1000)).unwrap();
        assert!(settled.settled);
        assert_eq!(stale.open(), 0);
    }
}
