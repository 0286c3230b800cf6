//! The measured workload: `concurrency` workers each sending one request at a
//! time until the deadline (or until `--requests` have been sent in all).
//!
//! Kept-alive workers connect before the clock starts, so the measurement is
//! of requests, not of the initial handshakes; a connection the server closes
//! is reopened inside the next request's latency. With a new connection per
//! request, each latency covers TCP connect, the full mTLS handshake, the
//! request and the response. A request still in flight at the deadline is
//! abandoned, neither counted nor an error, but the bytes it received count.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::client::{Failure, Sender, Target};
use crate::stats::Tally;

pub struct Plan {
    pub concurrency: usize,
    pub duration: Duration,
    /// Stop after this many requests in total.
    pub requests: Option<u64>,
    pub new_connection_per_request: bool,
}

/// Hands out request slots so `--requests` bounds the total across workers.
struct Tickets {
    issued: AtomicU64,
    limit: u64,
}

impl Tickets {
    fn take(&self) -> bool {
        self.issued.fetch_add(1, Ordering::Relaxed) < self.limit
    }
}

/// Runs the plan; returns the merged tally and the measured wall time.
pub async fn run(target: Arc<Target>, plan: &Plan) -> (Tally, Duration) {
    let mut total = Tally::default();

    // Kept-alive connections are opened before the clock starts.
    let mut senders: Vec<Option<Sender>> = Vec::with_capacity(plan.concurrency);
    if plan.new_connection_per_request {
        senders.resize_with(plan.concurrency, || None);
    } else {
        let mut opening = JoinSet::new();
        for _ in 0..plan.concurrency {
            let target = target.clone();
            opening.spawn(async move { target.connect().await });
        }
        while let Some(opened) = opening.join_next().await {
            match opened.expect("connect task") {
                Ok(sender) => {
                    total.connections += 1;
                    senders.push(Some(sender));
                }
                Err(failure) => {
                    target.note(&failure);
                    total.errors.count(&failure);
                    senders.push(None);
                }
            }
        }
    }

    let tickets = Arc::new(Tickets {
        issued: AtomicU64::new(0),
        limit: plan.requests.unwrap_or(u64::MAX),
    });
    let start = Instant::now();
    let deadline = start + plan.duration;
    let mut workers = JoinSet::new();
    for sender in senders {
        let target = target.clone();
        let tickets = tickets.clone();
        let fresh = plan.new_connection_per_request;
        workers.spawn(async move { worker(&target, &tickets, sender, fresh, deadline).await });
    }
    while let Some(tally) = workers.join_next().await {
        total.merge(tally.expect("worker task"));
    }
    let elapsed = Instant::now().min(deadline) - start;
    (total, elapsed)
}

async fn worker(
    target: &Target,
    tickets: &Tickets,
    mut sender: Option<Sender>,
    fresh: bool,
    deadline: Instant,
) -> Tally {
    let mut tally = Tally::default();
    while Instant::now() < deadline && tickets.take() {
        let started = Instant::now();
        let mut connections = 0;
        let attempt = async {
            let reuse = match sender.as_mut() {
                Some(s) if !fresh => s.ready().await.is_ok(),
                _ => false,
            };
            if !reuse {
                sender = Some(target.connect().await?);
                connections += 1;
            }
            let s = sender.as_mut().expect("connected");
            target.get(s, fresh, &mut tally.body_bytes).await
        };
        let outcome = tokio::time::timeout_at(deadline, attempt).await;
        tally.connections += connections;
        match outcome {
            Err(_elapsed) => break,
            Ok(Ok(())) => tally.record(started.elapsed()),
            Ok(Err(failure)) => {
                target.note(&failure);
                tally.errors.count(&failure);
                if !matches!(failure, Failure::Status(_)) {
                    sender = None;
                    // A refused connect fails in microseconds: don't spin on it.
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            }
        }
        if fresh {
            sender = None;
        }
    }
    tally
}
