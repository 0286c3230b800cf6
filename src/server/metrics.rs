//! Counters for `/metrics`, in the Prometheus text format 0.0.4, written by
//! hand: a few maps behind mutexes, touched once per request (when its body
//! is done), per connection and per boot. Every name starts with `bootgate_`;
//! label values come from fixed sets (routes, reasons, outcomes) or from
//! enrolled machine names, so none grows with what clients send.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use crate::events::store::Usage;
use crate::events::writer::{BootNotice, RecorderStats};
use crate::events::{Outcome, Timestamp};
use crate::names::Fingerprint;

#[derive(Default)]
pub struct Metrics {
    requests: Mutex<BTreeMap<(&'static str, u16), u64>>,
    sent_bytes: Mutex<BTreeMap<&'static str, u64>>,
    refusals: Mutex<BTreeMap<String, u64>>,
    handshake_failures: Mutex<BTreeMap<&'static str, u64>>,
    connections_open: AtomicI64,
    connections_total: AtomicU64,
    boots_started: AtomicU64,
    boots_settled: Mutex<BTreeMap<Outcome, u64>>,
    boot_failures: Mutex<BTreeMap<String, u64>>,
    boots_open: AtomicU64,
    last_boot: Mutex<BTreeMap<String, Timestamp>>,
    tls_sessions: Mutex<BTreeMap<(String, String, &'static str), u64>>,
    /// Per client certificate: whether its latest handshake used the legacy stack.
    latest_stack: Mutex<BTreeMap<Fingerprint, bool>>,
}

/// The route a path belongs to, as a metrics label.
pub fn route_of(path: &str) -> &'static str {
    match path {
        "/boot/ipxe" => "/boot/ipxe",
        "/healthz" => "/healthz",
        p if p.starts_with("/files/") => "/files",
        p if p.starts_with("/secrets/") => "/secrets",
        _ => "other",
    }
}

/// Counts an open connection until dropped.
pub struct ConnectionGuard<'a>(&'a Metrics);

impl Drop for ConnectionGuard<'_> {
    fn drop(&mut self) {
        self.0.connections_open.fetch_sub(1, Ordering::Relaxed);
    }
}

fn bump<K: Ord>(map: &Mutex<BTreeMap<K, u64>>, key: K, by: u64) {
    *map.lock().expect("metrics lock").entry(key).or_insert(0) += by;
}

impl Metrics {
    pub fn request(&self, route: &'static str, status: u16, bytes: u64, reason: Option<&str>) {
        bump(&self.requests, (route, status), 1);
        bump(&self.sent_bytes, route, bytes);
        if let Some(reason) = reason {
            bump(&self.refusals, reason.to_string(), 1);
        }
    }

    pub fn handshake_failure(&self, reason: &'static str) {
        bump(&self.handshake_failures, reason, 1);
    }

    /// Counts an established TLS session by version, suite and stack, and
    /// notes which stack the certificate's holder used last.
    pub fn tls_session(&self, fingerprint: Option<&Fingerprint>, session: &super::TlsSession) {
        let stack = if session.legacy { "legacy" } else { "modern" };
        bump(
            &self.tls_sessions,
            (session.version.clone(), session.suite.clone(), stack),
            1,
        );
        if let Some(fingerprint) = fingerprint {
            self.latest_stack
                .lock()
                .expect("metrics lock")
                .insert(fingerprint.clone(), session.legacy);
        }
    }

    /// How many of `fingerprints` last connected with an old client's suite.
    pub fn legacy_tls_machines<'a>(
        &self,
        fingerprints: impl Iterator<Item = &'a Fingerprint>,
    ) -> usize {
        let latest = self.latest_stack.lock().expect("metrics lock");
        fingerprints
            .filter(|f| latest.get(f).copied().unwrap_or(false))
            .count()
    }

    pub fn connection_opened(&self) -> ConnectionGuard<'_> {
        self.connections_open.fetch_add(1, Ordering::Relaxed);
        self.connections_total.fetch_add(1, Ordering::Relaxed);
        ConnectionGuard(self)
    }

    pub fn boot(&self, notice: BootNotice<'_>) {
        match notice {
            BootNotice::Resumed(boot) => self.set_last_boot(&boot.machine, boot.started),
            BootNotice::Started(boot) => {
                self.boots_started.fetch_add(1, Ordering::Relaxed);
                self.set_last_boot(&boot.machine, boot.started);
            }
            BootNotice::Settled(boot) => {
                bump(&self.boots_settled, boot.outcome, 1);
                if let Some(reason) = &boot.reason {
                    bump(&self.boot_failures, reason.clone(), 1);
                }
            }
            BootNotice::Open(n) => self.boots_open.store(n as u64, Ordering::Relaxed),
        }
    }

    fn set_last_boot(&self, machine: &str, at: Timestamp) {
        let mut map = self.last_boot.lock().expect("metrics lock");
        match map.get_mut(machine) {
            Some(last) => *last = (*last).max(at),
            None => {
                map.insert(machine.to_string(), at);
            }
        }
    }

    /// The whole exposition. `machines` is (active, revoked) enrolled machines;
    /// `legacy_machines` how many of them last used an old client's suite.
    pub fn render(
        &self,
        recorder: &RecorderStats,
        store: Usage,
        machines: (usize, usize),
        legacy_machines: usize,
    ) -> String {
        let mut out = Exposition::default();
        render_inventory(&mut out, machines, legacy_machines);
        self.render_traffic(&mut out);
        self.render_boots(&mut out);
        render_history(&mut out, recorder, store);
        out.text
    }

    /// TLS sessions, requests, bytes, refusals and connections.
    fn render_traffic(&self, out: &mut Exposition) {
        out.family(
            "bootgate_tls_sessions_total",
            "counter",
            "TLS sessions established on the machine listener, by version, suite and stack.",
        );
        for ((version, suite, stack), n) in self.tls_sessions.lock().expect("metrics lock").iter() {
            out.sample(
                "bootgate_tls_sessions_total",
                &[
                    ("version", version.as_str()),
                    ("suite", suite.as_str()),
                    ("stack", *stack),
                ],
                n,
            );
        }

        out.family(
            "bootgate_requests_total",
            "counter",
            "Requests answered on the machine listener, by route and status.",
        );
        for ((route, status), n) in self.requests.lock().expect("metrics lock").iter() {
            let status = status.to_string();
            out.sample(
                "bootgate_requests_total",
                &[("route", route), ("status", &status)],
                n,
            );
        }

        out.by_label(
            "bootgate_sent_bytes_total",
            "counter",
            "Response body bytes handed to machine connections, by route.",
            "route",
            &self.sent_bytes,
        );
        out.by_label(
            "bootgate_request_failures_total",
            "counter",
            "Requests refused or cut short, by reason.",
            "reason",
            &self.refusals,
        );
        out.by_label(
            "bootgate_tls_handshake_failures_total",
            "counter",
            "TLS handshakes that failed, by reason.",
            "reason",
            &self.handshake_failures,
        );
        out.single(
            "bootgate_connections_open",
            "gauge",
            "Connections open on the machine listener.",
            self.connections_open.load(Ordering::Relaxed),
        );
        out.single(
            "bootgate_connections_total",
            "counter",
            "Connections accepted on the machine listener.",
            self.connections_total.load(Ordering::Relaxed),
        );
    }

    /// Boots begun, settled, failed and open, and each machine's last one.
    fn render_boots(&self, out: &mut Exposition) {
        out.single(
            "bootgate_boots_started_total",
            "counter",
            "Boots begun: /boot/ipxe requests from known machines.",
            self.boots_started.load(Ordering::Relaxed),
        );
        out.family(
            "bootgate_boots_total",
            "counter",
            "Boots by outcome, counted when they settle (next boot, failure, or quiet for boot_settle_secs).",
        );
        {
            let settled = self.boots_settled.lock().expect("metrics lock");
            for outcome in Outcome::ALL {
                let n = settled.get(&outcome).copied().unwrap_or(0);
                out.sample("bootgate_boots_total", &[("outcome", outcome.as_str())], n);
            }
        }
        out.by_label(
            "bootgate_boot_failures_total",
            "counter",
            "Failed boots, by the reason of their first failure.",
            "reason",
            &self.boot_failures,
        );
        out.single(
            "bootgate_boots_open",
            "gauge",
            "Boots begun and not settled yet.",
            self.boots_open.load(Ordering::Relaxed),
        );

        out.family(
            "bootgate_machine_last_boot_timestamp_seconds",
            "gauge",
            "When each machine last fetched its boot script (Unix time).",
        );
        for (machine, at) in self.last_boot.lock().expect("metrics lock").iter() {
            out.sample_f64(
                "bootgate_machine_last_boot_timestamp_seconds",
                &[("machine", machine)],
                at.as_secs_f64(),
            );
        }
    }
}

/// The running version and the enrolled machines.
fn render_inventory(out: &mut Exposition, machines: (usize, usize), legacy_machines: usize) {
    out.family(
        "bootgate_build_info",
        "gauge",
        "The running bootgate's version.",
    );
    out.sample(
        "bootgate_build_info",
        &[("version", env!("CARGO_PKG_VERSION"))],
        1,
    );

    out.family("bootgate_machines", "gauge", "Enrolled machines, by state.");
    out.sample("bootgate_machines", &[("state", "active")], machines.0);
    out.sample("bootgate_machines", &[("state", "revoked")], machines.1);

    out.single(
        "bootgate_legacy_tls_machines",
        "gauge",
        "Enrolled machines whose latest TLS session since start used a pre-2024 iPXE suite (legacy stack).",
        legacy_machines,
    );
}

/// Boot scripts served, by how they were made
/// ([`super::render_cache::Made`]).
pub fn render_scripts(served: &[(super::render_cache::Made, u64)]) -> String {
    let mut out = Exposition::default();
    out.family(
        "bootgate_boot_scripts_total",
        "counter",
        "Boot scripts served: rendered for the request, kept after a look at the files they are made from, or settled (kept, no file changed since).",
    );
    for (made, n) in served {
        out.sample("bootgate_boot_scripts_total", &[("made", made.label())], n);
    }
    out.text
}

/// The boot history's writer and store.
fn render_history(out: &mut Exposition, recorder: &RecorderStats, store: Usage) {
    for (name, kind, help, value) in [
        (
            "bootgate_events_recorded_total",
            "counter",
            "Boot history events written to the store.",
            recorder.written.load(Ordering::Relaxed),
        ),
        (
            "bootgate_events_dropped_total",
            "counter",
            "Boot history events dropped because the writer was behind.",
            recorder.dropped.load(Ordering::Relaxed),
        ),
        (
            "bootgate_event_store_errors_total",
            "counter",
            "Failed writes to the boot history store (their events are lost).",
            recorder.errors.load(Ordering::Relaxed),
        ),
        (
            "bootgate_events_lost_total",
            "counter",
            "Boot history events lost in failed writes.",
            recorder.lost.load(Ordering::Relaxed),
        ),
        (
            "bootgate_event_store_file_bytes",
            "gauge",
            "Size of the boot history file on disk.",
            store.file_bytes,
        ),
        (
            "bootgate_event_store_cache_bytes",
            "gauge",
            "Memory in the boot history store's page cache.",
            store.cache_bytes,
        ),
        (
            "bootgate_event_store_cache_limit_bytes",
            "gauge",
            "Limit of the boot history store's page cache ([events] cache_mib).",
            store.cache_limit_bytes,
        ),
    ] {
        out.single(name, kind, help, value);
    }
}

/// Prometheus text format 0.0.4.
#[derive(Default)]
struct Exposition {
    text: String,
}

impl Exposition {
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.text, "# HELP {name} {help}");
        let _ = writeln!(self.text, "# TYPE {name} {kind}");
    }

    /// A family with one unlabelled sample.
    fn single(&mut self, name: &str, kind: &str, help: &str, value: impl std::fmt::Display) {
        self.family(name, kind, help);
        self.sample(name, &[], value);
    }

    /// A family with one sample per key of `counts`, the key as `label`.
    fn by_label<K: AsRef<str>>(
        &mut self,
        name: &str,
        kind: &str,
        help: &str,
        label: &str,
        counts: &Mutex<BTreeMap<K, u64>>,
    ) {
        self.family(name, kind, help);
        for (key, n) in counts.lock().expect("metrics lock").iter() {
            self.sample(name, &[(label, AsRef::<str>::as_ref(key))], n);
        }
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: impl std::fmt::Display) {
        self.text.push_str(name);
        if !labels.is_empty() {
            self.text.push('{');
            for (i, (key, value)) in labels.iter().enumerate() {
                if i > 0 {
                    self.text.push(',');
                }
                let _ = write!(self.text, "{key}=\"{}\"", escape_label(value));
            }
            self.text.push('}');
        }
        let _ = writeln!(self.text, " {value}");
    }

    fn sample_f64(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        // Enough digits for microseconds, no exponent.
        self.sample(name, labels, format!("{value:.6}"));
    }
}

fn escape_label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::Boot;
    use crate::events::boots::Settled;

    fn boot(machine: &str) -> Boot {
        Boot {
            id: 1,
            machine: machine.into(),
            fingerprint: "".into(),
            started: Timestamp::from_micros(1_700_000_000_500_000),
            last_activity: Timestamp::from_micros(1_700_000_000_500_000),
            peer: "".into(),
            mac: None,
            platform: None,
            buildarch: None,
            outcome: Outcome::ScriptOnly,
            reason: None,
            failed_request: None,
            requests: 1,
            files: 0,
            bytes: 0,
            settled: true,
        }
    }

    #[test]
    fn renders_the_text_format() {
        let m = Metrics::default();
        m.request("/boot/ipxe", 200, 120, None);
        m.request("/boot/ipxe", 403, 20, Some("revoked"));
        m.request("/files", 200, 1000, None);
        m.handshake_failure("foreign-ca");
        let conn = m.connection_opened();
        m.boot(BootNotice::Started(&boot("gw\"1")));
        m.boot(BootNotice::Settled(&Settled {
            id: 2,
            outcome: Outcome::Failed,
            reason: Some("revoked".into()),
        }));
        let old = super::super::TlsSession {
            version: "TLSv1.2".into(),
            suite: "TLS_DHE_RSA_WITH_AES_128_GCM_SHA256".into(),
            legacy: true,
        };
        let fp = |digit: &str| digit.repeat(40).parse::<Fingerprint>().unwrap();
        m.tls_session(Some(&fp("a")), &old);
        m.tls_session(None, &old);
        assert_eq!(m.legacy_tls_machines([fp("a"), fp("b")].iter()), 1);
        let text = m.render(&RecorderStats::default(), Usage::default(), (2, 1), 1);
        drop(conn);
        for line in [
            "# TYPE bootgate_requests_total counter",
            "bootgate_requests_total{route=\"/boot/ipxe\",status=\"200\"} 1",
            "bootgate_requests_total{route=\"/boot/ipxe\",status=\"403\"} 1",
            "bootgate_sent_bytes_total{route=\"/boot/ipxe\"} 140",
            "bootgate_request_failures_total{reason=\"revoked\"} 1",
            "bootgate_tls_handshake_failures_total{reason=\"foreign-ca\"} 1",
            "bootgate_connections_open 1",
            "bootgate_boots_started_total 1",
            "bootgate_boots_total{outcome=\"failed\"} 1",
            "bootgate_boots_total{outcome=\"files-served\"} 0",
            "bootgate_boot_failures_total{reason=\"revoked\"} 1",
            "bootgate_machine_last_boot_timestamp_seconds{machine=\"gw\\\"1\"} 1700000000.500000",
            "bootgate_machines{state=\"revoked\"} 1",
            "bootgate_legacy_tls_machines 1",
            "bootgate_tls_sessions_total{version=\"TLSv1.2\",suite=\"TLS_DHE_RSA_WITH_AES_128_GCM_SHA256\",stack=\"legacy\"} 2",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} missing:\n{text}");
        }
        assert!(text.ends_with('\n'));
        assert_eq!(
            m.render(&RecorderStats::default(), Usage::default(), (0, 0), 0)
                .lines()
                .find(|l| l.starts_with("bootgate_connections_open")),
            Some("bootgate_connections_open 0")
        );
    }
}
