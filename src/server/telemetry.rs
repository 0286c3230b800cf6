//! What the server keeps about itself: the metrics, the event store and the
//! recorder that feeds it. Opened with the server, before any socket is
//! bound, and shared by the machine listener (which records) and the admin
//! listener (which reads).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result};

use super::handshake::HandshakeFailure;
use super::metrics::Metrics;
use super::verifier::Presented;
use crate::config::EventsConfig;
use crate::datadir::DataDir;
use crate::events::store::Store;
use crate::events::writer::{Recorder, WriterConfig};
use crate::events::{Event, Kind, Timestamp};

/// How long `serve` waits for a CLI reader to let go of the event store.
const STORE_OPEN_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

pub struct Telemetry {
    pub metrics: Arc<Metrics>,
    pub recorder: Recorder,
    pub store: Arc<Store>,
    pub started: Timestamp,
}

impl Telemetry {
    pub fn open(dir: &DataDir, config: &EventsConfig) -> Result<Self> {
        let path = dir.events_db_path();
        let store = Arc::new(
            Store::open(&path, STORE_OPEN_WAIT, config.cache_bytes())
                .with_context(|| format!("opening the boot history {}", path.display()))?,
        );
        let metrics = Arc::new(Metrics::default());
        let sink = metrics.clone();
        let recorder = Recorder::start(
            store.clone(),
            WriterConfig {
                retention: config.retention(),
                settle: config.boot_settle(),
            },
            Box::new(move |notice| sink.boot(notice)),
        )?;
        Ok(Self {
            metrics,
            recorder,
            store,
            started: Timestamp::now(),
        })
    }

    /// Counts a failed handshake and, unless it is noise, records it with
    /// whatever certificate was presented.
    pub fn handshake_failed(
        &self,
        peer: SocketAddr,
        time: Timestamp,
        began: Instant,
        failure: HandshakeFailure,
        presented: Option<Presented>,
    ) {
        self.metrics.handshake_failure(failure.reason);
        if !failure.record {
            return;
        }
        let mut event = Event::new(Kind::Handshake, time, peer.to_string().into());
        event.duration_ms = began.elapsed().as_millis() as u64;
        event.reason = Some(failure.reason.to_string());
        if let Some(p) = presented {
            event.fingerprint = Some(p.fingerprint.shared());
            event.subject = p.subject;
            event.issuer = p.issuer;
        }
        self.recorder.record(event);
    }
}
