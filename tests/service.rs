//! `bootgate serve` as systemd runs it: readiness and reload notifications on
//! a `$NOTIFY_SOCKET` the test listens on, SIGHUP re-reading bootgate.toml
//! while a download streams on, and log lines carrying journald priorities
//! when stderr is the journal stream.

use std::io::Seek;
use std::os::unix::fs::MetadataExt;
use std::os::unix::net::UnixDatagram;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::support::*;

const BIG: u64 = 200 * 1024 * 1024;

/// The next notification, or a failure naming what was awaited.
fn next_message(socket: &UnixDatagram, what: &str) -> String {
    let mut buf = [0u8; 4096];
    match socket.recv(&mut buf) {
        Ok(n) => String::from_utf8(buf[..n].to_vec()).unwrap(),
        Err(err) => panic!("no notification while waiting for {what}: {err}"),
    }
}

fn signal(pid: u32, signal: libc::c_int) {
    assert_eq!(unsafe { libc::kill(pid as libc::pid_t, signal) }, 0);
}

#[test]
fn notifies_readiness_and_reloads_on_hangup_while_a_download_streams() {
    let env = Env::new();
    let fp = env.add_machine_with_script(
        "gw1",
        "#!ipxe\nkernel /files/k b2c.extra_args_url=$secrets_url\n",
    );
    write(&env.files(&fp).join("secrets"), "b2c.minio=\"s3,key\"\n");
    let big = env.files(&fp).join("big.img");
    let mut file = std::fs::File::create(&big).unwrap();
    file.set_len(BIG).unwrap();
    file.seek(std::io::SeekFrom::End(-4)).unwrap();
    std::io::Write::write_all(&mut file, b"END!").unwrap();
    drop(file);

    let notify_path = env.tmp.path().join("notify");
    let notify = UnixDatagram::bind(&notify_path).unwrap();
    notify
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    let log = env.tmp.path().join("serve.log");
    let log_file = std::fs::File::create(&log).unwrap();
    let meta = log_file.metadata().unwrap();
    let mut server = env
        .command(&["serve", "--admin-listen", "off"])
        .env("NOTIFY_SOCKET", &notify_path)
        .env("JOURNAL_STREAM", format!("{}:{}", meta.dev(), meta.ino()))
        .env("BOOTGATE_LOG", "info")
        .stdout(Stdio::null())
        .stderr(log_file)
        .spawn()
        .unwrap();
    let log_text = || std::fs::read_to_string(&log).unwrap_or_default();

    // The first word from the server is READY=1, and at that moment a
    // machine's TLS handshake and request succeed, with no retry.
    let ready = next_message(&notify, "READY=1");
    assert!(
        ready.starts_with("READY=1\nSTATUS=serving 1 machine(s)"),
        "{ready}"
    );
    let client = env.client();
    let id = env.identity("gw1");
    let script = client
        .get("/boot/ipxe", Some(&id))
        .unwrap_or_else(|err| panic!("request right after READY=1 failed: {err}\n{}", log_text()));
    assert_eq!(script.status, 200);

    // Secrets live 60 s as configured: one fetched right away works.
    let secrets_path = |script: &str| {
        let start = script.find("/secrets/").unwrap();
        script[start..]
            .split_whitespace()
            .next()
            .unwrap()
            .to_string()
    };
    let first = secrets_path(&script.text());
    assert_eq!(client.get(&first, None).unwrap().status, 200);

    // A 200 MiB download, slowed down so that it spans the reload.
    let dir = env.tmp.path();
    let out = dir.join("big.out");
    let mut curl = Command::new("curl")
        .args(["--silent", "--show-error", "--limit-rate", "10M"])
        .arg("--cacert")
        .arg(env.path("ca/ca.crt"))
        .arg("--cert")
        .arg(env.path("machines/gw1/client.crt"))
        .arg("--key")
        .arg(env.path("machines/gw1/client.key"))
        .args(["--write-out", "%{http_code} %{size_download}", "--output"])
        .arg(&out)
        .arg(format!("https://localhost:{}/files/big.img", env.port))
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let received = || std::fs::metadata(&out).map(|m| m.len()).unwrap_or(0);
    wait_until("the download to start", Duration::from_secs(30), || {
        received() > 1024 * 1024
    });

    // Shorten the secrets' TTL and reload.
    env.edit_config("secrets_ttl_secs = 60", "secrets_ttl_secs = 1");
    signal(server.id(), libc::SIGHUP);
    let reloading = next_message(&notify, "RELOADING=1");
    assert!(
        reloading.starts_with("RELOADING=1\nMONOTONIC_USEC="),
        "{reloading}"
    );
    let ready = next_message(&notify, "READY=1 after the reload");
    assert!(ready.starts_with("READY=1\n"), "{ready}");
    assert!(
        log_text().contains("configuration reloaded secrets_ttl_secs=1"),
        "{}",
        log_text()
    );
    assert!(
        received() < BIG,
        "the download finished before the reload: slow it down further"
    );

    // The new TTL is in force: a secret minted now is gone 2 s later,
    // where the old 60 s would have kept it.
    let second = secrets_path(&client.get("/boot/ipxe", Some(&id)).unwrap().text());
    std::thread::sleep(Duration::from_millis(2000));
    assert_eq!(client.get(&second, None).unwrap().status, 404);

    // The download went on through the reload, to the last byte.
    let done = curl.wait().unwrap();
    let summary = read_to_string(curl.stdout.take().unwrap());
    assert!(done.success(), "curl failed: {summary}");
    assert_eq!(summary, format!("200 {BIG}"));
    let mut tail = std::fs::File::open(&out).unwrap();
    tail.seek(std::io::SeekFrom::End(-4)).unwrap();
    assert_eq!(read_to_string(tail), "END!");

    // A broken file is refused; the server keeps its settings and serves on.
    write(&env.path("bootgate.toml"), "secrets_ttl_secs = \"soon\"\n");
    signal(server.id(), libc::SIGHUP);
    next_message(&notify, "RELOADING=1");
    next_message(&notify, "READY=1 after a failed reload");
    assert!(
        log_text().contains("reloading the configuration failed, keeping the settings in force"),
        "{}",
        log_text()
    );
    assert_eq!(client.get("/boot/ipxe", Some(&id)).unwrap().status, 200);

    // Stopping is announced; lines carry syslog priorities for journald.
    signal(server.id(), libc::SIGTERM);
    assert_eq!(next_message(&notify, "STOPPING=1"), "STOPPING=1");
    assert!(server.wait().unwrap().success());
    let text = log_text();
    assert!(text.lines().any(|l| l.starts_with("<6> INFO ")), "{text}");
    assert!(text.lines().any(|l| l.starts_with("<3>ERROR ")), "{text}");
    assert!(!text.contains("\x1b["), "{text}");

    // Each request has its access line, a secret's token hidden.
    let access = |rest: &str| {
        text.lines().any(|l| {
            l.starts_with("<6> INFO bootgate::access: peer=127.0.0.1:") && l.contains(rest)
        })
    };
    let script_line = format!(
        " machine=\"gw1\" fingerprint=\"{fp}\" method=GET path=\"/boot/ipxe\" status=200 bytes="
    );
    assert!(access(&script_line), "{text}");
    assert!(access(" path=\"/secrets/<token>\" status=200 "), "{text}");
    assert!(access(" path=\"/secrets/<token>\" status=404 "), "{text}");
    for secret in [&first, &second] {
        let token = secret.rsplit('/').next().unwrap();
        assert!(
            !text.contains(token),
            "a secret's token was logged:\n{text}"
        );
    }
}

#[test]
fn the_access_log_follows_the_log_filter() {
    let env = Env::new();
    env.add_machine_with_script("gw1", "#!ipxe\necho hello\n");
    let id = env.identity("gw1");
    let quiet = Server::start_logging(&env, &[], "info,bootgate::access=off");
    assert_eq!(
        env.client().get("/boot/ipxe", Some(&id)).unwrap().status,
        200
    );
    let log = quiet.log_text();
    assert!(log.contains(" INFO bootgate"), "{log}");
    assert!(!log.contains("bootgate::access"), "{log}");
    drop(quiet);

    let talkative = Server::start_logging(&env, &[], "info");
    assert_eq!(
        env.client().get("/boot/ipxe", Some(&id)).unwrap().status,
        200
    );
    let log = talkative.log_text();
    assert!(
        log.contains(" INFO bootgate::access: peer=127.0.0.1:"),
        "{log}"
    );
}

#[test]
fn logs_one_json_object_per_line_on_request() {
    let env = Env::new();
    let mut server = env
        .command(&["serve", "--admin-listen", "off", "--log-format", "json"])
        .env("BOOTGATE_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], env.port));
    wait_until("the server to listen", Duration::from_secs(30), || {
        std::net::TcpStream::connect(addr).is_ok()
    });
    signal(server.id(), libc::SIGTERM);
    let stderr = read_to_string(server.stderr.take().unwrap());
    assert!(server.wait().unwrap().success(), "{stderr}");
    let lines: Vec<serde_json::Value> = stderr
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert!(
        lines.iter().any(|l| l["level"] == "INFO"
            && l["fields"]["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("serving 0 machine(s)"))),
        "{stderr}"
    );
}
