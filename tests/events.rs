//! Boot history, metrics and the status page, end to end: the real `bootgate
//! serve`, real TLS clients (with, without and with foreign certificates),
//! the CLI reading the history through the running server or straight from
//! the file, a `kill -9` in between, and the status page in headless Chromium.

use std::collections::BTreeMap;
use std::io::BufRead;
use std::process::Stdio;
use std::time::Duration;

use crate::support::*;
use serde_json::Value;

/// Changes one setting of the `[events]` table that `init` wrote.
fn set_events(env: &Env, key: &str, value: u64) {
    let path = env.path("bootgate.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    let line = text
        .lines()
        .find(|l| l.starts_with(&format!("{key} =")))
        .unwrap_or_else(|| panic!("{key} not in bootgate.toml:\n{text}"))
        .to_string();
    std::fs::write(&path, text.replace(&line, &format!("{key} = {value}"))).unwrap();
}

fn events(env: &Env, extra: &[&str]) -> Vec<Value> {
    let mut args = vec!["events", "--json", "--limit", "10000"];
    args.extend_from_slice(extra);
    env.ok(&args)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn json(text: &str) -> Value {
    serde_json::from_str(text).unwrap()
}

/// `/metrics` as sample -> value (`name{labels}` as written).
fn metrics(server: &Server) -> BTreeMap<String, f64> {
    let (status, text) = server.admin_get("/metrics");
    assert_eq!(status, 200);
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| {
            let (name, value) = l.rsplit_once(' ').unwrap();
            (name.to_string(), value.parse().unwrap())
        })
        .collect()
}

fn metric(m: &BTreeMap<String, f64>, sample: &str) -> f64 {
    *m.get(sample)
        .unwrap_or_else(|| panic!("{sample} missing from {m:#?}"))
}

/// Reads a file under /files/ and vanishes after the first MiB.
fn vanish_mid_download(client: &Client, id: &Identity, path: &str) {
    let mut seen = 0usize;
    let aborted = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        client.request_with("GET", path, Some(id), &[], |_, chunk| {
            seen += chunk.len();
            if seen > 1 << 20 {
                panic!("vanish");
            }
        })
    }));
    assert!(aborted.is_err(), "the download was not cut");
}

fn find<'a>(events: &'a [Value], what: &str, f: impl Fn(&Value) -> bool) -> &'a Value {
    events
        .iter()
        .find(|e| f(e))
        .unwrap_or_else(|| panic!("no event for {what} in {events:#?}"))
}

#[test]
fn records_boots_refusals_and_handshakes_and_counts_them() {
    let env = Env::new();
    set_events(&env, "boot_settle_secs", 4);
    let fp1 = env.add_machine("gw1");
    env.add_machine("gw2");
    env.add_machine("gw3");
    let files = env.files(&fp1);
    write(
        &files.join("boot.ipxe"),
        "#!ipxe\nkernel /files/vmlinuz\ninitrd /files/initrd\nboot\n",
    );
    write(&files.join("vmlinuz"), vec![7u8; 100_000]);
    write(&files.join("initrd"), vec![8u8; 50_000]);
    let big = std::fs::File::create(files.join("big")).unwrap();
    big.set_len(64 << 20).unwrap();
    drop(big);
    // Other CAs: another bootgate for the same names (same CA name), and one
    // for another server.
    let twin = Env::new();
    let twin_fp = twin.add_machine("gw1");
    let stranger = Env::with_names(&["elsewhere.example"], &[]);
    let stranger_fp = stranger.add_machine("intruder");

    let server = env.serve();
    let client = env.client();
    let (gw1, gw2) = (env.identity("gw1"), env.identity("gw2"));

    // Boot 1 of gw1: its script and both files.
    let script = "/boot/ipxe?mac=52:54:00:12:34:56&platform=efi&buildarch=x86_64";
    assert_eq!(client.get(script, Some(&gw1)).unwrap().status, 200);
    assert_eq!(
        client.get("/files/vmlinuz", Some(&gw1)).unwrap().status,
        200
    );
    assert_eq!(client.get("/files/initrd", Some(&gw1)).unwrap().status, 200);
    // gw2 gets its script, is revoked, and is refused.
    assert_eq!(client.get("/boot/ipxe", Some(&gw2)).unwrap().status, 200);
    env.ok(&["machine", "revoke", "gw2"]);
    assert_eq!(client.get("/boot/ipxe", Some(&gw2)).unwrap().status, 403);
    // No certificate: refused by the handler.
    assert_eq!(client.get("/boot/ipxe", None).unwrap().status, 403);
    // Foreign certificates: refused in the handshake.
    assert!(
        client
            .get("/boot/ipxe", Some(&twin.identity("gw1")))
            .is_err()
    );
    let intruder = Identity::from_files(
        &stranger.path("machines/intruder/client.crt"),
        &stranger.path("machines/intruder/client.key"),
    );
    assert!(client.get("/boot/ipxe", Some(&intruder)).is_err());
    // Boot 2 of gw1: a download cut short.
    assert_eq!(client.get(script, Some(&gw1)).unwrap().status, 200);
    vanish_mid_download(&client, &gw1, "/files/big");
    // Health checks are counted, not recorded.
    assert_eq!(client.get("/healthz", None).unwrap().status, 200);
    // The machine listener shows none of the admin listener's pages.
    for path in ["/metrics", "/", "/api/events", "/machines/gw1"] {
        assert_eq!(client.get(path, Some(&gw1)).unwrap().status, 404, "{path}");
        assert_eq!(client.get(path, None).unwrap().status, 404, "{path}");
    }

    // Every boot settles: by the next boot, by failing, or after 4 quiet seconds.
    wait_until("boots to settle", Duration::from_secs(30), || {
        let m = metrics(&server);
        metric(&m, "bootgate_boots_open") == 0.0
            && metric(&m, "bootgate_connections_open") == 0.0
            && metric(&m, "bootgate_events_recorded_total") == 18.0
    });
    let m = metrics(&server);
    let expect = [
        (
            "bootgate_requests_total{route=\"/boot/ipxe\",status=\"200\"}",
            3.0,
        ),
        (
            "bootgate_requests_total{route=\"/boot/ipxe\",status=\"403\"}",
            2.0,
        ),
        (
            "bootgate_requests_total{route=\"/files\",status=\"200\"}",
            3.0,
        ),
        (
            "bootgate_requests_total{route=\"/healthz\",status=\"200\"}",
            1.0,
        ),
        (
            "bootgate_requests_total{route=\"other\",status=\"404\"}",
            8.0,
        ),
        ("bootgate_request_failures_total{reason=\"revoked\"}", 1.0),
        (
            "bootgate_request_failures_total{reason=\"no-certificate\"}",
            1.0,
        ),
        ("bootgate_request_failures_total{reason=\"aborted\"}", 1.0),
        ("bootgate_request_failures_total{reason=\"not-found\"}", 8.0),
        (
            "bootgate_tls_handshake_failures_total{reason=\"foreign-ca\"}",
            2.0,
        ),
        ("bootgate_boots_started_total", 4.0),
        ("bootgate_boots_total{outcome=\"files-served\"}", 1.0),
        ("bootgate_boots_total{outcome=\"script-only\"}", 1.0),
        ("bootgate_boots_total{outcome=\"failed\"}", 2.0),
        ("bootgate_boot_failures_total{reason=\"aborted\"}", 1.0),
        ("bootgate_boot_failures_total{reason=\"revoked\"}", 1.0),
        ("bootgate_machines{state=\"active\"}", 2.0),
        ("bootgate_machines{state=\"revoked\"}", 1.0),
        ("bootgate_events_dropped_total", 0.0),
        ("bootgate_event_store_errors_total", 0.0),
        ("bootgate_events_lost_total", 0.0),
        ("bootgate_event_store_cache_limit_bytes", 4.0 * 1_048_576.0),
        ("bootgate_build_info{version=\"0.1.0\"}", 1.0),
    ];
    for (sample, value) in expect {
        assert_eq!(metric(&m, sample), value, "{sample}");
    }
    // The history's file and cache, as the server sees them.
    let file = metric(&m, "bootgate_event_store_file_bytes");
    let on_disk = std::fs::metadata(env.path("events/events.redb"))
        .unwrap()
        .len() as f64;
    assert!(file > 0.0 && file <= on_disk, "{file} of {on_disk}");
    let cache = metric(&m, "bootgate_event_store_cache_bytes");
    assert!(cache > 0.0 && cache <= 8.0 * 1_048_576.0, "{cache}");
    // Connections: every request above is one, plus the readiness probe.
    assert!(metric(&m, "bootgate_connections_total") >= 20.0);
    let files_sent = metric(&m, "bootgate_sent_bytes_total{route=\"/files\"}");
    assert!(
        files_sent > 150_000.0 + 1_048_576.0 && files_sent < 150_000.0 + 64.0 * 1_048_576.0,
        "{files_sent}"
    );
    assert!(
        metric(
            &m,
            "bootgate_machine_last_boot_timestamp_seconds{machine=\"gw1\"}"
        ) > 1e9
    );
    assert!(m.contains_key("bootgate_machine_last_boot_timestamp_seconds{machine=\"gw2\"}"));
    assert!(!m.keys().any(|k| k.contains("gw3")));

    // The history, read through the running server's admin listener.
    let all = events(&env, &[]);
    assert_eq!(all.len(), 18, "{all:#?}");
    assert!(
        all.windows(2)
            .all(|w| w[0]["id"].as_u64() < w[1]["id"].as_u64())
    );
    assert!(!all.iter().any(|e| e["path"] == "/healthz"));
    let first = find(&all, "gw1's first script", |e| {
        e["machine"] == "gw1" && e["path"] == "/boot/ipxe"
    });
    assert_eq!(first["mac"], "52:54:00:12:34:56");
    assert_eq!(first["platform"], "efi");
    assert_eq!(first["buildarch"], "x86_64");
    assert_eq!(first["fingerprint"], fp1.as_str());
    assert_eq!(first["boot"], first["id"]);
    let kernel = find(&all, "the kernel", |e| e["path"] == "/files/vmlinuz");
    assert_eq!(kernel["boot"], first["id"]);
    assert_eq!(kernel["bytes"], 100_000);
    assert_eq!(kernel["status"], 200);
    assert!(kernel["peer"].as_str().unwrap().starts_with("127.0.0.1:"));
    let revoked = find(&all, "the revoked script", |e| {
        e["status"] == 403 && e["machine"] == "gw2"
    });
    assert_eq!(revoked["reason"], "revoked");
    let anonymous = find(&all, "the request without certificate", |e| {
        e["reason"] == "no-certificate"
    });
    assert!(anonymous.get("machine").is_none() && anonymous.get("fingerprint").is_none());
    let twin_event = find(&all, "the twin CA's handshake", |e| {
        e["kind"] == "handshake" && e["fingerprint"] == twin_fp.as_str()
    });
    assert_eq!(twin_event["reason"], "foreign-ca");
    assert_eq!(twin_event["subject"], "CN=gw1");
    let stranger_event = find(&all, "the stranger's handshake", |e| {
        e["kind"] == "handshake" && e["fingerprint"] == stranger_fp.as_str()
    });
    assert_eq!(stranger_event["reason"], "foreign-ca");
    assert_eq!(stranger_event["subject"], "CN=intruder");
    assert!(
        stranger_event["issuer"]
            .as_str()
            .unwrap()
            .contains("elsewhere.example")
    );
    let cut = find(&all, "the cut download", |e| e["path"] == "/files/big");
    assert_eq!(cut["reason"], "aborted");
    assert_eq!(cut["expected_bytes"], 64 << 20);
    assert!(cut["bytes"].as_u64().unwrap() < 64 << 20);
    assert!(cut["bytes"].as_u64().unwrap() >= 1 << 20);
    let probe = find(&all, "a probe of /metrics", |e| e["path"] == "/metrics");
    assert_eq!(probe["status"], 404);

    let gw1_events = events(&env, &["--machine", "gw1"]);
    assert_eq!(gw1_events.len(), 5);
    assert!(gw1_events.iter().all(|e| e["machine"] == "gw1"));
    let text = env.ok(&["events", "--since", "1h"]);
    assert!(text.starts_with("TIME"), "{text}");
    assert!(text.contains("failed: revoked"), "{text}");
    assert!(text.contains("TLS handshake"), "{text}");
    assert!(text.contains("subject=\"CN=intruder\""), "{text}");
    let err = env.fails(&["events", "--machine", "ghost"]);
    assert!(err.contains("ghost"), "{err}");

    // Machines: last seen, last boot, address.
    let listed = json(&env.ok(&["machine", "list", "--json"]));
    let by_name = |name: &str| {
        listed
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["name"] == name)
            .unwrap()
            .clone()
    };
    let m1 = by_name("gw1");
    assert_eq!(m1["last_boot"]["outcome"], "failed");
    assert_eq!(m1["last_boot"]["reason"], "aborted");
    assert_eq!(m1["last_boot"]["failed_request"], "GET /files/big");
    assert!(
        m1["last_address"]
            .as_str()
            .unwrap()
            .starts_with("127.0.0.1:")
    );
    assert!(m1["last_seen"].is_string());
    assert_eq!(by_name("gw2")["last_boot"]["reason"], "revoked");
    assert!(by_name("gw3")["last_seen"].is_null());
    let table = env.ok(&["machine", "list"]);
    assert!(table.contains("LAST BOOT"), "{table}");
    assert!(table.contains("failed (aborted)"), "{table}");
    assert!(table.contains("never"), "{table}");

    let shown = json(&env.ok(&["machine", "show", "gw1", "--json"]));
    let boots = shown["boots"].as_array().unwrap();
    assert_eq!(boots.len(), 2);
    assert_eq!(boots[0]["boot"]["outcome"], "failed");
    assert_eq!(boots[1]["boot"]["outcome"], "files-served");
    assert_eq!(boots[1]["boot"]["files"], 2);
    assert_eq!(boots[1]["boot"]["mac"], "52:54:00:12:34:56");
    let paths: Vec<_> = boots[1]["requests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["path"].as_str().unwrap())
        .collect();
    assert_eq!(paths, ["/boot/ipxe", "/files/vmlinuz", "/files/initrd"]);
    let details = env.ok(&["machine", "show", "gw1"]);
    assert!(details.contains("files-served"), "{details}");
    assert!(details.contains("GET /files/initrd"), "{details}");
    assert!(
        details.contains("first failure: GET /files/big"),
        "{details}"
    );

    // The status page and a machine's page, on the admin listener only.
    let (status, page) = server.admin_get("/");
    assert_eq!(status, 200);
    for needle in [
        "gw1",
        "gw2",
        "gw3",
        "failed (aborted)",
        "failed (revoked)",
        "CN=intruder",
    ] {
        assert!(page.contains(needle), "{needle} not on the status page");
    }
    let (status, page) = server.admin_get("/machines/gw1");
    assert_eq!(status, 200);
    assert!(page.contains("/files/initrd") && page.contains("files-served"));
    assert_eq!(server.admin_get("/machines/nobody").0, 404);
    assert_eq!(server.admin_get("/nothing-here").0, 404);
}

#[test]
fn history_survives_kill_9_and_a_restart() {
    let env = Env::new();
    let fp = env.add_machine("gw1");
    write(&env.files(&fp).join("kernel"), vec![1u8; 10_000]);
    let mut server = env.serve();
    let client = env.client();
    let id = env.identity("gw1");
    for _ in 0..3 {
        assert_eq!(client.get("/boot/ipxe", Some(&id)).unwrap().status, 200);
        assert_eq!(client.get("/files/kernel", Some(&id)).unwrap().status, 200);
    }
    // What the server counts as written is committed: a kill loses none of it.
    wait_until("the six events written", Duration::from_secs(30), || {
        metric(&metrics(&server), "bootgate_events_recorded_total") == 6.0
    });
    server.child.kill().unwrap();
    server.child.wait().unwrap();
    assert!(
        env.path("events/admin.json").exists(),
        "a killed server leaves its note behind"
    );

    // No server: the CLI opens the file itself.
    let before = events(&env, &[]);
    assert_eq!(before.len(), 6, "{before:#?}");
    let listed = json(&env.ok(&["machine", "list", "--json"]));
    assert_eq!(listed[0]["last_boot"]["outcome"], "files-served");
    let shown = json(&env.ok(&["machine", "show", "gw1", "--json", "--boots", "10"]));
    assert_eq!(shown["boots"].as_array().unwrap().len(), 3);

    // A new server takes the store up where the old one stopped.
    let server = env.serve();
    let m = metrics(&server);
    assert!(m.contains_key("bootgate_machine_last_boot_timestamp_seconds{machine=\"gw1\"}"));
    assert_eq!(client.get("/boot/ipxe", Some(&id)).unwrap().status, 200);
    wait_until("the new event", Duration::from_secs(10), || {
        events(&env, &[]).len() == 7
    });
    let after = events(&env, &[]);
    assert_eq!(after[..6], before[..]);
    assert!(after[6]["id"].as_u64() > after[5]["id"].as_u64());
    // The boot open at the kill was settled by the new one.
    let shown = json(&env.ok(&["machine", "show", "gw1", "--json", "--boots", "10"]));
    let boots = shown["boots"].as_array().unwrap();
    assert_eq!(boots.len(), 4);
    assert_eq!(boots[1]["boot"]["settled"], true);
    assert_eq!(boots[1]["boot"]["outcome"], "files-served");
    drop(server);
}

#[test]
fn follow_prints_events_as_they_happen() {
    let env = Env::new();
    let fp = env.add_machine("gw1");
    write(&env.files(&fp).join("kernel"), b"kernel");
    let _server = env.serve();
    let id = env.identity("gw1");
    let client = env.client();
    // One event in the past: the follower prints it first, then follows.
    assert_eq!(client.get("/files/kernel", Some(&id)).unwrap().status, 200);
    wait_until("the past event", Duration::from_secs(30), || {
        events(&env, &[]).len() == 1
    });
    let mut follower = env
        .command(&["events", "--follow", "--json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = follower.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout).lines() {
            if tx.send(line.unwrap()).is_err() {
                return;
            }
        }
    });
    let past = json(
        &rx.recv_timeout(Duration::from_secs(30))
            .expect("no past event"),
    );
    assert_eq!(past["path"], "/files/kernel");
    assert_eq!(client.get("/boot/ipxe", Some(&id)).unwrap().status, 200);
    let line = rx.recv_timeout(Duration::from_secs(15));
    follower.kill().unwrap();
    follower.wait().unwrap();
    let event = json(&line.expect("no event followed"));
    assert_eq!(event["machine"], "gw1");
    assert_eq!(event["path"], "/boot/ipxe");
    assert!(event["id"].as_u64() > past["id"].as_u64());
}

#[test]
fn retention_keeps_the_newest_events() {
    let env = Env::new();
    set_events(&env, "max_events", 5);
    env.add_machine("gw1");
    let server = env.serve();
    let client = env.client();
    let id = env.identity("gw1");
    for i in 0..8 {
        let path = format!("/boot/ipxe?platform=n{i}");
        assert_eq!(client.get(&path, Some(&id)).unwrap().status, 200);
    }
    wait_until("eight events", Duration::from_secs(10), || {
        metric(&metrics(&server), "bootgate_events_recorded_total") == 8.0
    });
    let kept = events(&env, &[]);
    let platforms: Vec<_> = kept
        .iter()
        .map(|e| e["platform"].as_str().unwrap())
        .collect();
    assert_eq!(platforms, ["n3", "n4", "n5", "n6", "n7"]);
}

#[test]
fn without_an_admin_listener_the_cli_says_what_to_do() {
    let env = Env::new();
    env.add_machine("gw1");
    // Before any server ran there is simply no history.
    let out = env.run(&["events"]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no events recorded"));

    let server = Server::start(&env, &["--admin-listen", "off"]);
    assert!(server.admin.is_none());
    assert!(!env.path("events/admin.json").exists());
    let err = env.fails(&["events"]);
    assert!(err.contains("admin listener is off"), "{err}");
    // `machine list` still lists, and says why the history is missing.
    let out = env.run(&["machine", "list"]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("gw1"));
    assert!(String::from_utf8_lossy(&out.stderr).contains("boot history unavailable"));
    let dead = format!("http://127.0.0.1:{}", free_port());
    let err = env.fails(&["events", "--admin", &dead]);
    assert!(err.contains("admin listener"), "{err}");
}

/// Runs headless Chromium on `url` with `args` (a screenshot or a DOM dump);
/// returns its stdout.
fn chromium(url: &str, args: &[&str]) -> String {
    let profile = tempfile::tempdir().unwrap();
    let child = std::process::Command::new("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--window-size=1200,800",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(args)
        .arg(url)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run chromium ({e}): install Debian's chromium package (scripts/test does)"
            )
        });
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(Duration::from_secs(120)) {
        Ok(out) => {
            let out = out.unwrap();
            assert!(out.status.success(), "chromium failed on {url}");
            String::from_utf8_lossy(&out.stdout).into_owned()
        }
        Err(_) => {
            // SAFETY: the pid is our own child's, still running.
            unsafe { libc::kill(pid as i32, libc::SIGKILL) };
            panic!("chromium did not finish within 120 s on {url}");
        }
    }
}

/// The status page as a person sees it: screenshots kept under
/// `target/e2e-logs/` (status-page.png, machine-page.png).
#[test]
fn status_page_renders_in_headless_chromium() {
    let env = Env::new();
    set_events(&env, "boot_settle_secs", 2);
    let script = env.tmp.path().join("gateway.ipxe");
    write(
        &script,
        "#!ipxe\nkernel /files/vmlinuz\ninitrd /files/initrd\nboot\n",
    );
    env.ok(&[
        "profile",
        "create",
        "gateway",
        "--script",
        script.to_str().unwrap(),
    ]);
    write(&env.path("profiles/gateway/vmlinuz"), vec![1u8; 300_000]);
    write(&env.path("profiles/gateway/initrd"), vec![2u8; 900_000]);
    for name in ["gw-01", "gw-02", "gw-03", "gw-04"] {
        env.ok(&["machine", "add", name, "--profile", "gateway"]);
    }
    env.add_machine("lab-x86");
    let server = env.serve();
    let client = env.client();
    let ipxe = "/boot/ipxe?mac=52:54:00:12:34:56&platform=efi&buildarch=x86_64";
    let gw01 = env.identity("gw-01");
    client.get(ipxe, Some(&gw01)).unwrap();
    client.get("/files/vmlinuz", Some(&gw01)).unwrap();
    client.get("/files/initrd", Some(&gw01)).unwrap();
    // gw-02 takes its script and is never heard of again: stuck.
    client
        .get(
            "/boot/ipxe?platform=efi&buildarch=arm64",
            Some(&env.identity("gw-02")),
        )
        .unwrap();
    // gw-03 asks for a file its profile lacks.
    let gw03 = env.identity("gw-03");
    client.get(ipxe, Some(&gw03)).unwrap();
    client.get("/files/dtb", Some(&gw03)).unwrap();
    env.ok(&["machine", "revoke", "gw-04"]);
    client.get(ipxe, Some(&env.identity("gw-04"))).unwrap();
    client.get("/boot/ipxe", None).unwrap();
    let stranger = Env::with_names(&["elsewhere.example"], &[]);
    stranger.add_machine("intruder");
    let intruder = Identity::from_files(
        &stranger.path("machines/intruder/client.crt"),
        &stranger.path("machines/intruder/client.key"),
    );
    assert!(client.get("/boot/ipxe", Some(&intruder)).is_err());
    wait_until("boots to settle", Duration::from_secs(30), || {
        metric(&metrics(&server), "bootgate_boots_open") == 0.0
    });

    let admin = format!("http://{}", server.admin.unwrap());
    let dom = chromium(&format!("{admin}/"), &["--dump-dom"]);
    for needle in [
        "gw-01",
        "files-served",
        "script-only",
        "failed (not-found)",
        "failed (revoked)",
        "no boot recorded",
        "CN=intruder",
        "no certificate",
    ] {
        assert!(dom.contains(needle), "{needle} not rendered:\n{dom}");
    }
    let shot = logs_dir().join("status-page.png");
    let _ = std::fs::remove_file(&shot);
    chromium(
        &format!("{admin}/"),
        &[&format!("--screenshot={}", shot.display())],
    );
    let png = std::fs::read(&shot).unwrap();
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 10_000,
        "{}",
        shot.display()
    );

    let shot = logs_dir().join("machine-page.png");
    let _ = std::fs::remove_file(&shot);
    chromium(
        &format!("{admin}/machines/gw-01"),
        &[&format!("--screenshot={}", shot.display())],
    );
    assert!(std::fs::read(&shot).unwrap().starts_with(b"\x89PNG"));
}
