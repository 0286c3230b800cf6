//! The crowd: connections held open while the workload runs, to see what many
//! waiting machines cost the server. An idle member makes one request (so the
//! server holds a fully set-up, kept-alive mTLS connection) and then waits,
//! repeating the request every `idle_every` if asked to (servers close
//! connections left idle too long: bootgate and nginx as set up by
//! `scripts/bench` after 10 s); a slow reader requests a file and reads it at
//! a trickle, so the server has a response in progress that the peer does not
//! drain.

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{Semaphore, mpsc, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::client::{Failure, Target};

/// Handshakes in flight at once while the crowd gathers (keeps the listen
/// backlog from overflowing).
const OPENING_AT_ONCE: usize = 32;
/// Slow readers read every this often.
const TICK: Duration = Duration::from_millis(100);

pub struct CrowdPlan {
    pub idle: usize,
    /// Idle members repeat their request this often (never if `None`).
    pub idle_every: Option<Duration>,
    pub slow: usize,
    pub slow_path: String,
    /// Bytes per second each slow reader reads.
    pub slow_rate: u64,
}

#[derive(Debug, Default, Serialize)]
pub struct CrowdReport {
    pub idle_open: usize,
    pub slow_open: usize,
    pub failed: usize,
    /// Members the server closed before the end of the run.
    pub closed_early: usize,
    /// Bytes the slow readers received (response heads included).
    pub slow_bytes: u64,
    /// Time taken to open the whole crowd.
    pub open_secs: f64,
}

enum Opened {
    Idle,
    Slow,
    Failed,
}

struct End {
    closed_early: bool,
    bytes: u64,
}

pub struct Crowd {
    stop: watch::Sender<bool>,
    members: JoinSet<End>,
    report: CrowdReport,
}

impl Crowd {
    /// Opens every member, waiting at most `limit` for all to be set up.
    pub async fn open(target: Arc<Target>, plan: &CrowdPlan, limit: Duration) -> Self {
        let started = Instant::now();
        let (stop, stopped) = watch::channel(false);
        let (opened_tx, mut opened) = mpsc::unbounded_channel();
        let gate = Arc::new(Semaphore::new(OPENING_AT_ONCE));
        let mut members = JoinSet::new();
        for i in 0..plan.idle + plan.slow {
            let slow = (i >= plan.idle).then(|| (plan.slow_path.clone(), plan.slow_rate));
            let every = plan.idle_every;
            let member = Member {
                target: target.clone(),
                gate: gate.clone(),
                opened: opened_tx.clone(),
                stopped: stopped.clone(),
            };
            members.spawn(async move {
                match slow {
                    Some((path, rate)) => member.slow(&path, rate).await,
                    None => member.idle(every).await,
                }
            });
        }
        drop(opened_tx);
        let mut report = CrowdReport::default();
        let total = plan.idle + plan.slow;
        let gathered = tokio::time::timeout(limit, async {
            while report.idle_open + report.slow_open + report.failed < total {
                match opened.recv().await {
                    Some(Opened::Idle) => report.idle_open += 1,
                    Some(Opened::Slow) => report.slow_open += 1,
                    Some(Opened::Failed) | None => report.failed += 1,
                }
            }
        })
        .await;
        if gathered.is_err() {
            eprintln!(
                "bootgate-load: crowd not fully open after {limit:?}; going on with what is open"
            );
        }
        report.open_secs = started.elapsed().as_secs_f64();
        Crowd {
            stop,
            members,
            report,
        }
    }

    /// Closes every member; returns what the crowd saw.
    pub async fn close(mut self) -> CrowdReport {
        let _ = self.stop.send(true);
        while let Some(end) = self.members.join_next().await {
            let end = end.expect("crowd task");
            self.report.closed_early += usize::from(end.closed_early);
            self.report.slow_bytes += end.bytes;
        }
        self.report
    }
}

struct Member {
    target: Arc<Target>,
    gate: Arc<Semaphore>,
    opened: mpsc::UnboundedSender<Opened>,
    stopped: watch::Receiver<bool>,
}

impl Member {
    fn failed(&self, failure: &Failure) -> End {
        self.target.note(failure);
        let _ = self.opened.send(Opened::Failed);
        End {
            closed_early: false,
            bytes: 0,
        }
    }

    async fn idle(mut self, every: Option<Duration>) -> End {
        let permit = self.gate.clone().acquire_owned().await.expect("gate");
        let mut sender = match self.target.connect().await {
            Ok(sender) => sender,
            Err(failure) => return self.failed(&failure),
        };
        let mut bytes = 0;
        if let Err(failure) = self.target.get(&mut sender, false, &mut bytes).await {
            return self.failed(&failure);
        }
        drop(permit);
        let _ = self.opened.send(Opened::Idle);
        loop {
            let pause = async {
                match every {
                    Some(every) => tokio::time::sleep(every).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                () = stop_signal(&mut self.stopped) => break,
                () = pause => {
                    if let Err(failure) = self.target.get(&mut sender, false, &mut bytes).await {
                        self.target.note(&failure);
                        return End { closed_early: true, bytes: 0 };
                    }
                }
            }
        }
        End {
            closed_early: sender.is_closed(),
            bytes: 0,
        }
    }

    async fn slow(mut self, path: &str, rate: u64) -> End {
        let quota = usize::try_from((rate / 10).max(1)).unwrap_or(usize::MAX);
        let mut buf = vec![0u8; quota.min(64 * 1024)];
        let permit = self.gate.clone().acquire_owned().await.expect("gate");
        let mut tls = match self.target.tls_connect().await {
            Ok(tls) => tls,
            Err(failure) => return self.failed(&failure),
        };
        let head = self.target.request_head(path);
        if let Err(err) = tls.write_all(head.as_bytes()).await {
            return self.failed(&Failure::Tls(err));
        }
        // The status line tells whether the server took the request.
        let n = match tls.read(&mut buf).await {
            Ok(n) => n,
            Err(err) => return self.failed(&Failure::Tls(err)),
        };
        if !buf[..n].starts_with(b"HTTP/1.1 2") {
            let status = String::from_utf8_lossy(&buf[..n.min(12)]).into_owned();
            let failure = Failure::Tls(std::io::Error::other(format!(
                "slow reader got {status:?} for {path}"
            )));
            return self.failed(&failure);
        }
        drop(permit);
        let _ = self.opened.send(Opened::Slow);

        let mut bytes = n as u64;
        let mut next = Instant::now() + TICK;
        let closed_early = loop {
            let step = async {
                let mut left = quota;
                while left > 0 {
                    let want = left.min(buf.len());
                    match tls.read(&mut buf[..want]).await {
                        Ok(0) | Err(_) => return false,
                        Ok(got) => {
                            bytes += got as u64;
                            left -= got;
                        }
                    }
                }
                tokio::time::sleep_until(next).await;
                true
            };
            tokio::select! {
                _ = self.stopped.wait_for(|stop| *stop) => break false,
                alive = step => if !alive { break true },
            }
            next += TICK;
        };
        End {
            closed_early,
            bytes,
        }
    }
}

/// Completes when the crowd is told to stop.
async fn stop_signal(stopped: &mut watch::Receiver<bool>) {
    // The guard wait_for returns is not Send: drop it here.
    let _ = stopped.wait_for(|stop| *stop).await;
}
