//! `bootgate-load`: an HTTPS load generator that presents a TLS client
//! certificate, as machines do to bootgate (common HTTP load tools cannot).
//! It measures one workload against one server: requests/s, body bytes/s,
//! latency percentiles and errors, optionally with a crowd of idle or slowly
//! reading connections held open meanwhile, and the server's CPU time and
//! memory.
//! `scripts/bench` drives it against bootgate and nginx side by side.
//!
//! Every run is bounded in time (`--duration`), and optionally in count
//! (`--requests`).

mod client;
mod crowd;
mod stats;
mod usage;
mod workload;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::Parser;
use serde::Serialize;

use client::{Target, TlsFiles, TlsVersions};
use crowd::{Crowd, CrowdPlan, CrowdReport};
use stats::{Errors, Latency};
use usage::UsageReport;
use workload::Plan;

/// Longest run accepted, crowd set-up not included.
const MAX_DURATION: Duration = Duration::from_secs(3600);
/// How long the crowd may take to gather before the workload starts anyway.
const CROWD_LIMIT: Duration = Duration::from_secs(60);

#[derive(Debug, Parser)]
#[command(
    name = "bootgate-load",
    version,
    about = "HTTPS load generator presenting a TLS client certificate (benchmarks bootgate and nginx)"
)]
struct Args {
    /// URL to request, e.g. https://127.0.0.1:8443/boot/ipxe?mac=52:54:00:12:34:56
    url: http::Uri,
    /// Clients sending requests at the same time (one request in flight each).
    #[arg(short, long, default_value_t = 16)]
    concurrency: usize,
    /// How long to send requests, in seconds (fractions allowed).
    #[arg(short, long, value_name = "SECS", default_value = "10", value_parser = parse_secs)]
    duration: Duration,
    /// Stop after this many requests in total (the duration still bounds the run).
    #[arg(short = 'n', long, value_name = "N")]
    requests: Option<u64>,
    /// Open a new connection (TCP + full TLS handshake) for every request.
    #[arg(long)]
    new_connection_per_request: bool,
    /// CA certificate (PEM) the server certificate must chain to.
    #[arg(long, value_name = "PEM")]
    ca: PathBuf,
    /// Client certificate (PEM) to present.
    #[arg(long, value_name = "PEM", requires = "key")]
    cert: Option<PathBuf>,
    /// Private key (PEM) of --cert.
    #[arg(long, value_name = "PEM", requires = "cert")]
    key: Option<PathBuf>,
    /// Name to verify the server certificate against (default: the URL's host).
    #[arg(long, value_name = "NAME")]
    server_name: Option<String>,
    /// TLS versions to offer.
    #[arg(long, value_enum, default_value = "any")]
    tls: TlsVersions,
    /// Allow TLS session resumption (default: every connection does a full handshake).
    #[arg(long)]
    resume: bool,
    /// Handshake with OpenSSL, TLS 1.2, offering only these suites (an OpenSSL
    /// cipher list), as an iPXE built before 2024 does.
    #[arg(long, value_name = "LIST")]
    openssl_ciphers: Option<String>,
    /// Crowd: connections that make one request, then stay open and idle during the run.
    #[arg(long, value_name = "N", default_value_t = 0)]
    idle: usize,
    /// Crowd: idle connections repeat their request this often, in seconds, so
    /// that servers closing idle connections keep them (default: never).
    #[arg(long, value_name = "SECS", value_parser = parse_secs)]
    idle_every: Option<Duration>,
    /// Crowd: connections that GET --slow-path and read it slowly during the run.
    #[arg(long, value_name = "N", default_value_t = 0)]
    slow: usize,
    /// Path the slow readers request (default: the URL's path).
    #[arg(long, value_name = "PATH")]
    slow_path: Option<String>,
    /// Bytes per second each slow reader reads.
    #[arg(long, value_name = "BYTES", default_value_t = 32 * 1024)]
    slow_rate: u64,
    /// Server process whose CPU time and memory to report (repeatable: sums are reported).
    #[arg(long = "watch-pid", value_name = "PID")]
    watch_pids: Vec<u32>,
    /// Runtime threads of the load generator (default: one per core).
    #[arg(long, value_name = "N")]
    threads: Option<usize>,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

fn parse_secs(s: &str) -> Result<Duration, String> {
    let secs: f64 = s.parse().map_err(|e| format!("{s:?}: {e}"))?;
    Duration::try_from_secs_f64(secs).map_err(|e| format!("{s:?}: {e}"))
}

#[derive(Debug, Serialize)]
struct Report {
    url: String,
    concurrency: usize,
    new_connection_per_request: bool,
    tls_version: String,
    cipher_suite: String,
    duration_s: f64,
    requests: u64,
    requests_per_s: f64,
    body_bytes: u64,
    body_bytes_per_s: f64,
    connections: u64,
    errors: Errors,
    error_total: u64,
    error_examples: Vec<String>,
    latency_ms: Option<Latency>,
    crowd: Option<CrowdReport>,
    usage: UsageReport,
}

fn main() -> std::process::ExitCode {
    match run(Args::parse()) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("bootgate-load: error: {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run(args: Args) -> Result<()> {
    if args.concurrency == 0 || args.concurrency > 10_000 {
        bail!("--concurrency must be between 1 and 10000");
    }
    if args.idle + args.slow > 50_000 {
        bail!("--idle + --slow must be at most 50000");
    }
    if args.duration.is_zero() || args.duration > MAX_DURATION {
        bail!("--duration must be more than 0 and at most {MAX_DURATION:?}");
    }
    let tls = TlsFiles {
        ca: &args.ca,
        cert: args.cert.as_deref(),
        key: args.key.as_deref(),
        versions: args.tls,
        resume: args.resume,
        openssl_ciphers: args.openssl_ciphers.as_deref(),
    };
    let target = Arc::new(Target::new(&args.url, args.server_name.as_deref(), &tls)?);

    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    if let Some(threads) = args.threads {
        runtime.worker_threads(threads.max(1));
    }
    let runtime = runtime
        .enable_all()
        .build()
        .context("starting the runtime")?;
    let report = runtime.block_on(measure(&args, target))?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_report(&report);
    }
    Ok(())
}

async fn measure(args: &Args, target: Arc<Target>) -> Result<Report> {
    let (stop_watching, watching) = tokio::sync::watch::channel(false);
    let watcher = tokio::spawn(usage::watch_until(args.watch_pids.clone(), watching));

    let crowd = if args.idle + args.slow > 0 {
        let plan = CrowdPlan {
            idle: args.idle,
            idle_every: args.idle_every.filter(|d| !d.is_zero()),
            slow: args.slow,
            slow_path: args
                .slow_path
                .clone()
                .unwrap_or_else(|| target.path().to_string()),
            slow_rate: args.slow_rate.max(1),
        };
        Some(Crowd::open(target.clone(), &plan, CROWD_LIMIT).await)
    } else {
        None
    };

    let plan = Plan {
        concurrency: args.concurrency,
        duration: args.duration,
        requests: args.requests,
        new_connection_per_request: args.new_connection_per_request,
    };
    let (mut tally, elapsed) = workload::run(target.clone(), &plan).await;

    let crowd = match crowd {
        Some(crowd) => Some(crowd.close().await),
        None => None,
    };
    let _ = stop_watching.send(true);
    let usage = watcher.await.context("usage watcher")?;

    let secs = elapsed.as_secs_f64().max(1e-9);
    let requests = tally.latencies_us.len() as u64;
    let (tls_version, cipher_suite) = target
        .negotiated
        .get()
        .cloned()
        .unwrap_or_else(|| ("-".into(), "-".into()));
    let error_examples = target.examples.lock().expect("examples lock").clone();
    Ok(Report {
        url: args.url.to_string(),
        concurrency: args.concurrency,
        new_connection_per_request: args.new_connection_per_request,
        tls_version,
        cipher_suite,
        duration_s: secs,
        requests,
        requests_per_s: requests as f64 / secs,
        body_bytes: tally.body_bytes,
        body_bytes_per_s: tally.body_bytes as f64 / secs,
        connections: tally.connections,
        error_total: tally.errors.total(),
        errors: tally.errors,
        error_examples,
        latency_ms: Latency::of(&mut tally.latencies_us),
        crowd,
        usage,
    })
}

fn mib(bytes: f64) -> String {
    format!("{:.1} MiB", bytes / (1024.0 * 1024.0))
}

fn print_report(r: &Report) {
    println!("{}  {} {}", r.url, r.tls_version, r.cipher_suite);
    let mode = if r.new_connection_per_request {
        "a new connection per request"
    } else {
        "kept alive"
    };
    println!(
        "{} clients, {mode}, {:.2} s, {} connections",
        r.concurrency, r.duration_s, r.connections
    );
    println!(
        "requests  {:>10}  {:>10.1}/s   errors {} (connect {}, tls {}, http {}, status {})",
        r.requests,
        r.requests_per_s,
        r.error_total,
        r.errors.connect,
        r.errors.tls,
        r.errors.http,
        r.errors.status
    );
    println!(
        "body      {:>10}  {:>10}/s",
        mib(r.body_bytes as f64),
        mib(r.body_bytes_per_s)
    );
    if let Some(l) = &r.latency_ms {
        println!(
            "latency   p50 {:.3} ms  p90 {:.3} ms  p99 {:.3} ms  max {:.3} ms",
            l.p50, l.p90, l.p99, l.max
        );
    }
    if let Some(c) = &r.crowd {
        println!(
            "crowd     {} idle + {} slow open in {:.1} s; {} failed, {} closed early, slow readers got {}",
            c.idle_open,
            c.slow_open,
            c.open_secs,
            c.failed,
            c.closed_early,
            mib(c.slow_bytes as f64)
        );
    }
    let u = &r.usage;
    if !u.pids.is_empty() {
        println!(
            "server    pids {:?}: CPU {:.2} s, peak RSS {} sampled, {} by VmHWM",
            u.pids,
            u.cpu_s,
            mib(u.sampled_peak_rss_kib as f64 * 1024.0),
            mib(u.hwm_kib as f64 * 1024.0)
        );
    }
    println!(
        "machine   over {:.2} s: load generator CPU {:.2} s, everything else {:.2} s, steal {:.2} s",
        u.wall_s, u.loader_cpu_s, u.others_cpu_s, u.steal_s
    );
    for example in &r.error_examples {
        println!("error     {example}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_consistent() {
        Args::command().debug_assert();
    }

    #[test]
    fn durations() {
        assert_eq!(parse_secs("1.5").unwrap(), Duration::from_millis(1500));
        assert!(parse_secs("-1").is_err());
        assert!(parse_secs("x").is_err());
    }
}
