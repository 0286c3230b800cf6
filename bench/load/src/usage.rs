//! What the server under test used, read from `/proc/<pid>/` (Linux): CPU
//! time, the sum of `VmRSS` over the watched processes sampled while the load
//! runs, and the sum of their `VmHWM` (each process's own peak) at the end.
//! For a server of several processes (nginx: master + workers) the sum of
//! peaks is an upper bound, since the peaks need not coincide, and pages the
//! processes share (libraries) count once per process; the sampled sum is a
//! lower bound of the true peak.
//!
//! On a shared machine the rest matters too: the load generator's own CPU
//! time, and what everything else on the machine used meanwhile (busy CPU time
//! minus server and load generator) or the hypervisor took (steal), from
//! `/proc/stat`.

use std::time::Duration;

use serde::Serialize;
use tokio::sync::watch;

const EVERY: Duration = Duration::from_millis(50);
/// `/proc/<pid>/stat` counts CPU time in USER_HZ ticks, 100 per second on Linux.
const TICKS_PER_SEC: f64 = 100.0;

#[derive(Debug, Default, Serialize)]
pub struct UsageReport {
    pub pids: Vec<u32>,
    /// Seconds watched.
    pub wall_s: f64,
    /// User + system CPU time of the watched processes while watched, seconds.
    pub cpu_s: f64,
    /// CPU time of this load generator, seconds.
    pub loader_cpu_s: f64,
    /// CPU time of everything else on the machine, seconds.
    pub others_cpu_s: f64,
    /// CPU time the hypervisor took from this machine, seconds.
    pub steal_s: f64,
    /// Largest sampled sum of VmRSS, KiB.
    pub sampled_peak_rss_kib: u64,
    /// Sum of VmHWM at the end, KiB.
    pub hwm_kib: u64,
}

/// A field of `/proc/<pid>/status` in KiB.
fn status_kib(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// utime + stime of a process, in ticks.
fn cpu_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces and parentheses: fields count from the last ')'.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

fn sum(pids: &[u32], field: &str) -> u64 {
    pids.iter().filter_map(|&p| status_kib(p, field)).sum()
}

fn ticks(pids: &[u32]) -> u64 {
    pids.iter().filter_map(|&p| cpu_ticks(p)).sum()
}

/// Machine-wide (busy, steal) ticks from the `cpu` line of `/proc/stat`.
fn machine_ticks() -> (u64, u64) {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let fields: Vec<u64> = stat
        .lines()
        .find_map(|l| l.strip_prefix("cpu "))
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|v| v.parse().ok())
        .collect();
    let at = |i: usize| fields.get(i).copied().unwrap_or(0);
    // user nice system idle iowait irq softirq steal
    (at(0) + at(1) + at(2) + at(5) + at(6), at(7))
}

/// A snapshot to measure from.
struct Counters {
    at: std::time::Instant,
    watched: u64,
    loader: u64,
    machine: (u64, u64),
}

impl Counters {
    fn now(pids: &[u32]) -> Self {
        Self {
            at: std::time::Instant::now(),
            watched: ticks(pids),
            loader: cpu_ticks(std::process::id()).unwrap_or(0),
            machine: machine_ticks(),
        }
    }
}

/// Samples until `stop` turns true.
pub async fn watch_until(pids: Vec<u32>, mut stop: watch::Receiver<bool>) -> UsageReport {
    let before = Counters::now(&pids);
    let mut peak = 0;
    let mut every = tokio::time::interval(EVERY);
    loop {
        tokio::select! {
            _ = stop.wait_for(|s| *s) => break,
            _ = every.tick() => peak = peak.max(sum(&pids, "VmRSS")),
        }
    }
    let peak = peak.max(sum(&pids, "VmRSS"));
    let after = Counters::now(&pids);
    let secs = |a: u64, b: u64| a.saturating_sub(b) as f64 / TICKS_PER_SEC;
    let cpu_s = secs(after.watched, before.watched);
    let loader_cpu_s = secs(after.loader, before.loader);
    let busy_s = secs(after.machine.0, before.machine.0);
    UsageReport {
        wall_s: (after.at - before.at).as_secs_f64(),
        cpu_s,
        loader_cpu_s,
        others_cpu_s: (busy_s - cpu_s - loader_cpu_s).max(0.0),
        steal_s: secs(after.machine.1, before.machine.1),
        sampled_peak_rss_kib: peak,
        hwm_kib: sum(&pids, "VmHWM"),
        pids,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_this_process() {
        let me = std::process::id();
        assert!(status_kib(me, "VmRSS").unwrap() > 0);
        assert!(status_kib(me, "VmHWM").unwrap() > 0);
        assert!(cpu_ticks(me).is_some());
        assert!(status_kib(me, "NoSuchField").is_none());
        assert!(machine_ticks().0 > 0);
    }
}
