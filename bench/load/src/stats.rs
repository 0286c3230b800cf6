//! Counting: what each worker saw, merged into one report with latency
//! percentiles (nearest rank over every completed request, no sampling).

use std::time::Duration;

use serde::Serialize;

use crate::client::Failure;

/// Failed requests by kind.
#[derive(Debug, Default, Clone, Copy, Serialize)]
pub struct Errors {
    pub connect: u64,
    pub tls: u64,
    pub http: u64,
    /// Answers other than 2xx.
    pub status: u64,
}

impl Errors {
    pub fn count(&mut self, failure: &Failure) {
        match failure {
            Failure::Connect(_) => self.connect += 1,
            Failure::Tls(_) => self.tls += 1,
            Failure::Http(_) => self.http += 1,
            Failure::Status(_) => self.status += 1,
        }
    }

    pub fn total(&self) -> u64 {
        self.connect + self.tls + self.http + self.status
    }

    fn add(&mut self, other: &Errors) {
        self.connect += other.connect;
        self.tls += other.tls;
        self.http += other.http;
        self.status += other.status;
    }
}

/// What one worker measured.
#[derive(Debug, Default)]
pub struct Tally {
    /// Latency of each successful request, in microseconds.
    pub latencies_us: Vec<u32>,
    pub errors: Errors,
    pub body_bytes: u64,
    pub connections: u64,
}

impl Tally {
    pub fn record(&mut self, latency: Duration) {
        self.latencies_us
            .push(latency.as_micros().min(u128::from(u32::MAX)) as u32);
    }

    pub fn merge(&mut self, other: Tally) {
        self.latencies_us.extend(other.latencies_us);
        self.errors.add(&other.errors);
        self.body_bytes += other.body_bytes;
        self.connections += other.connections;
    }
}

#[derive(Debug, Serialize)]
pub struct Latency {
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub max: f64,
}

impl Latency {
    /// Percentiles in milliseconds; sorts `us`.
    pub fn of(us: &mut [u32]) -> Option<Self> {
        if us.is_empty() {
            return None;
        }
        us.sort_unstable();
        let rank = |p: f64| {
            let i = ((p * us.len() as f64).ceil() as usize).clamp(1, us.len()) - 1;
            f64::from(us[i]) / 1000.0
        };
        Some(Self {
            p50: rank(0.50),
            p90: rank(0.90),
            p99: rank(0.99),
            max: rank(1.0),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let mut us: Vec<u32> = (1..=100).rev().map(|ms| ms * 1000).collect();
        let l = Latency::of(&mut us).unwrap();
        assert_eq!((l.p50, l.p90, l.p99, l.max), (50.0, 90.0, 99.0, 100.0));
        let l = Latency::of(&mut [1500]).unwrap();
        assert_eq!((l.p50, l.p99), (1.5, 1.5));
        assert!(Latency::of(&mut []).is_none());
    }
}
