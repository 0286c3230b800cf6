//! One block of the event store: the events of one commit and the latest
//! record of each boot that commit changed, in a compact binary form
//! ([postcard](https://docs.rs/postcard)).
//!
//! A block is two postcard values one after the other:
//!
//! - the [`Header`]: the events' ids and the machines the block concerns,
//!   what trimming and the by-machine index need, read without the rest;
//! - the body: the events and boots themselves.
//!
//! postcard stores fields and enum variants by position, not by name, so the
//! stored shapes below are the on-disk format: a field or variant is only
//! ever added at the end, and the store's format number goes up when one is.
//! An event's time is stored as how far it lies before its id (`id >= time`,
//! usually equal), and the ids as gaps from the previous one.

use std::borrow::Cow;
use std::collections::BTreeSet;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use crate::events::model::{Boot, Event, Kind, Outcome, Timestamp};

/// A block's ids and machines.
#[derive(Debug)]
pub struct Header {
    /// The events' ids, ascending (empty for a block of boots only).
    pub ids: Vec<u64>,
    /// Every machine with an event or a boot in the block, each once.
    pub machines: Vec<String>,
}

impl Header {
    /// The header of a stored block, reading nothing after it.
    pub fn read(block: &[u8]) -> Result<Self> {
        Ok(split(block)?.0.into())
    }

    /// The newest event's id, if the block has events.
    pub fn last_id(&self) -> Option<u64> {
        self.ids.last().copied()
    }
}

/// A stored block, decoded.
pub struct Contents {
    pub header: Header,
    /// Oldest first.
    pub events: Vec<Event>,
    pub boots: Vec<Boot>,
}

impl Contents {
    pub fn read(block: &[u8]) -> Result<Self> {
        let (header, rest) = split(block)?;
        let body: StoredBody = postcard::from_bytes(rest).context("reading a history block")?;
        let header = Header::from(header);
        anyhow::ensure!(
            body.events.len() == header.ids.len(),
            "a history block has {} events for {} ids",
            body.events.len(),
            header.ids.len()
        );
        let events = header
            .ids
            .iter()
            .zip(body.events)
            .map(|(&id, stored)| stored.into_event(id))
            .collect();
        let boots = body.boots.into_iter().map(Boot::from).collect();
        Ok(Self {
            header,
            events,
            boots,
        })
    }
}

/// Encodes a commit's events (ids ascending) and changed boots as a block;
/// also returns the machines it concerns, for the index.
pub fn encode<'a>(
    events: &'a [Event],
    boots: impl Iterator<Item = &'a Boot> + Clone,
) -> Result<(Vec<u8>, Vec<&'a str>)> {
    let machines: BTreeSet<&str> = events
        .iter()
        .filter_map(|e| e.machine.as_deref())
        .chain(boots.clone().map(|b| &*b.machine))
        .collect();
    let machines: Vec<&str> = machines.into_iter().collect();
    let mut gaps = Vec::with_capacity(events.len());
    let mut previous = 0;
    for event in events {
        anyhow::ensure!(
            event.id > previous || gaps.is_empty(),
            "history block events out of order ({} after {previous})",
            event.id
        );
        gaps.push(event.id - previous);
        previous = event.id;
    }
    let header = StoredHeader {
        gaps: Cow::Owned(gaps),
        machines: machines.iter().map(|m| Cow::Borrowed(*m)).collect(),
    };
    // The body as a `StoredBody` is written, each record converted as it
    // goes rather than gathered first.
    let body = (
        Records(events.iter().map(StoredEvent::from)),
        Records(boots.clone().map(StoredBoot::from)),
    );
    // Room for what a script request usually takes, so the block is not
    // copied as it grows.
    let room = 16 + 8 * events.len() + 256 * (events.len() + boots.count());
    let block =
        postcard::serialize_with_flavor(&(&header, &body), Output(Vec::with_capacity(room)))?;
    Ok((block, machines))
}

/// Records written as a sequence, the same bytes as a `Vec` of them,
/// made one by one as they are written. The iterator must know its length.
struct Records<I>(I);

impl<I> Serialize for Records<I>
where
    I: Iterator + Clone,
    I::Item: Serialize,
{
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.0.clone())
    }
}

/// postcard's output: a `Vec` made with room for the whole block.
struct Output(Vec<u8>);

impl postcard::ser_flavors::Flavor for Output {
    type Output = Vec<u8>;

    fn try_extend(&mut self, data: &[u8]) -> postcard::Result<()> {
        self.0.extend_from_slice(data);
        Ok(())
    }

    fn try_push(&mut self, data: u8) -> postcard::Result<()> {
        self.0.push(data);
        Ok(())
    }

    fn finalize(self) -> postcard::Result<Vec<u8>> {
        Ok(self.0)
    }
}

fn split(block: &[u8]) -> Result<(StoredHeader<'_>, &[u8])> {
    postcard::take_from_bytes(block).context("reading a history block's header")
}

#[derive(Serialize, Deserialize)]
struct StoredHeader<'a> {
    /// The first id, then each id's distance from the one before.
    gaps: Cow<'a, [u64]>,
    #[serde(borrow)]
    machines: Vec<Cow<'a, str>>,
}

impl From<StoredHeader<'_>> for Header {
    fn from(stored: StoredHeader<'_>) -> Self {
        let mut id = 0;
        let ids = stored
            .gaps
            .iter()
            .map(|gap| {
                id += gap;
                id
            })
            .collect();
        let machines = stored.machines.into_iter().map(Cow::into_owned).collect();
        Self { ids, machines }
    }
}

/// The body of a block, as read; [`encode`] writes the same bytes.
#[derive(Deserialize)]
struct StoredBody<'a> {
    events: Vec<StoredEvent<'a>>,
    boots: Vec<StoredBoot<'a>>,
}

/// An [`Event`] as stored: its id is in the header.
#[derive(Serialize, Deserialize)]
struct StoredEvent<'a> {
    /// `id - time`, in microseconds.
    lag: u64,
    kind: Kind,
    peer: Cow<'a, str>,
    machine: Option<Cow<'a, str>>,
    fingerprint: Option<Cow<'a, str>>,
    subject: Option<Cow<'a, str>>,
    issuer: Option<Cow<'a, str>>,
    method: Option<Cow<'a, str>>,
    path: Option<Cow<'a, str>>,
    mac: Option<Cow<'a, str>>,
    platform: Option<Cow<'a, str>>,
    buildarch: Option<Cow<'a, str>>,
    status: Option<u16>,
    bytes: u64,
    expected_bytes: Option<u64>,
    duration_ms: u64,
    tls: Option<Cow<'a, str>>,
    reason: Option<Cow<'a, str>>,
    boot: Option<u64>,
}

fn borrow<S: AsRef<str>>(s: &Option<S>) -> Option<Cow<'_, str>> {
    s.as_ref().map(|s| Cow::Borrowed(s.as_ref()))
}

/// Into a `String` or an `Arc<str>`, whichever the model's field is.
fn own<'a, T: From<Cow<'a, str>>>(s: Option<Cow<'a, str>>) -> Option<T> {
    s.map(T::from)
}

impl<'a> From<&'a Event> for StoredEvent<'a> {
    fn from(e: &'a Event) -> Self {
        Self {
            lag: e.id.saturating_sub(e.time.as_micros()),
            kind: e.kind,
            peer: Cow::Borrowed(&e.peer),
            machine: borrow(&e.machine),
            fingerprint: borrow(&e.fingerprint),
            subject: borrow(&e.subject),
            issuer: borrow(&e.issuer),
            method: borrow(&e.method),
            path: borrow(&e.path),
            mac: borrow(&e.mac),
            platform: borrow(&e.platform),
            buildarch: borrow(&e.buildarch),
            status: e.status,
            bytes: e.bytes,
            expected_bytes: e.expected_bytes,
            duration_ms: e.duration_ms,
            tls: borrow(&e.tls),
            reason: borrow(&e.reason),
            boot: e.boot,
        }
    }
}

impl StoredEvent<'_> {
    fn into_event(self, id: u64) -> Event {
        Event {
            id,
            time: Timestamp::from_micros(id.saturating_sub(self.lag)),
            kind: self.kind,
            peer: self.peer.into(),
            machine: own(self.machine),
            fingerprint: own(self.fingerprint),
            subject: own(self.subject),
            issuer: own(self.issuer),
            method: own(self.method),
            path: own(self.path),
            mac: own(self.mac),
            platform: own(self.platform),
            buildarch: own(self.buildarch),
            status: self.status,
            bytes: self.bytes,
            expected_bytes: self.expected_bytes,
            duration_ms: self.duration_ms,
            tls: own(self.tls),
            reason: own(self.reason),
            boot: self.boot,
        }
    }
}

/// A [`Boot`] as stored.
#[derive(Serialize, Deserialize)]
struct StoredBoot<'a> {
    id: u64,
    machine: Cow<'a, str>,
    fingerprint: Cow<'a, str>,
    started: u64,
    last_activity: u64,
    peer: Cow<'a, str>,
    mac: Option<Cow<'a, str>>,
    platform: Option<Cow<'a, str>>,
    buildarch: Option<Cow<'a, str>>,
    outcome: Outcome,
    reason: Option<Cow<'a, str>>,
    failed_request: Option<Cow<'a, str>>,
    requests: u32,
    files: u32,
    bytes: u64,
    settled: bool,
}

impl<'a> From<&'a Boot> for StoredBoot<'a> {
    fn from(b: &'a Boot) -> Self {
        Self {
            id: b.id,
            machine: Cow::Borrowed(&b.machine),
            fingerprint: Cow::Borrowed(&b.fingerprint),
            started: b.started.as_micros(),
            last_activity: b.last_activity.as_micros(),
            peer: Cow::Borrowed(&b.peer),
            mac: borrow(&b.mac),
            platform: borrow(&b.platform),
            buildarch: borrow(&b.buildarch),
            outcome: b.outcome,
            reason: borrow(&b.reason),
            failed_request: borrow(&b.failed_request),
            requests: b.requests,
            files: b.files,
            bytes: b.bytes,
            settled: b.settled,
        }
    }
}

impl From<StoredBoot<'_>> for Boot {
    fn from(b: StoredBoot<'_>) -> Self {
        Self {
            id: b.id,
            machine: b.machine.into(),
            fingerprint: b.fingerprint.into(),
            started: Timestamp::from_micros(b.started),
            last_activity: Timestamp::from_micros(b.last_activity),
            peer: b.peer.into(),
            mac: own(b.mac),
            platform: own(b.platform),
            buildarch: own(b.buildarch),
            outcome: b.outcome,
            reason: own(b.reason),
            failed_request: own(b.failed_request),
            requests: b.requests,
            files: b.files,
            bytes: b.bytes,
            settled: b.settled,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(id: u64, time: u64, machine: Option<&str>) -> Event {
        let mut e = Event::new(
            Kind::Request,
            Timestamp::from_micros(time),
            "192.0.2.7:4000".into(),
        );
        e.id = id;
        e.machine = machine.map(Into::into);
        e.path = Some("/boot/ipxe".into());
        e.status = Some(200);
        e.tls = Some("TLSv1.3 TLS13_AES_128_GCM_SHA256".into());
        e.boot = Some(id);
        e
    }

    fn boot(id: u64, machine: &str) -> Boot {
        Boot {
            id,
            machine: machine.into(),
            fingerprint: "ab".repeat(20).into(),
            started: Timestamp::from_micros(id),
            last_activity: Timestamp::from_micros(id + 9),
            peer: "192.0.2.7:4000".into(),
            mac: Some("52:54:00:12:34:56".into()),
            platform: None,
            buildarch: Some("x86_64".into()),
            outcome: Outcome::Failed,
            reason: Some("aborted".into()),
            failed_request: Some("GET /files/vmlinuz".into()),
            requests: 3,
            files: 1,
            bytes: 1 << 40,
            settled: true,
        }
    }

    #[test]
    fn a_block_reads_back_what_was_written() {
        let events = vec![
            event(1_700_000_000_000_000, 1_700_000_000_000_000, Some("gw2")),
            event(1_700_000_000_000_007, 1_699_999_999_000_000, None),
            event(1_700_000_000_000_008, 1_700_000_000_000_008, Some("gw1")),
        ];
        let boots = [boot(1_700_000_000_000_000, "gw2"), boot(5, "gw3")];
        let (block, machines) = encode(&events, boots.iter()).unwrap();
        assert_eq!(machines, ["gw1", "gw2", "gw3"]);

        let header = Header::read(&block).unwrap();
        assert_eq!(header.ids, events.iter().map(|e| e.id).collect::<Vec<_>>());
        assert_eq!(header.machines, ["gw1", "gw2", "gw3"]);
        assert_eq!(header.last_id(), Some(1_700_000_000_000_008));

        let contents = Contents::read(&block).unwrap();
        assert_eq!(contents.events, events);
        assert_eq!(contents.boots, boots);
    }

    #[test]
    fn a_block_of_boots_only_has_no_ids() {
        let boots = [boot(5, "gw3")];
        let (block, _) = encode(&[], boots.iter()).unwrap();
        let header = Header::read(&block).unwrap();
        assert!(header.ids.is_empty());
        assert_eq!(header.last_id(), None);
        assert_eq!(Contents::read(&block).unwrap().boots, boots);
    }

    #[test]
    fn events_out_of_order_and_damaged_blocks_are_refused() {
        let events = [event(9, 9, None), event(8, 8, None)];
        assert!(encode(&events, [].iter()).is_err());

        let (block, _) = encode(&events[..1], [boot(9, "gw1")].iter()).unwrap();
        let err = Contents::read(&block[..block.len() - 3]).err().unwrap();
        assert!(format!("{err:#}").contains("history block"), "{err:#}");
    }
}
