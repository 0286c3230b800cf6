//! Old TLS clients (iPXE built before 2024) against a real `bootgate serve`,
//! driven with `openssl s_client` and, for suites this OpenSSL can no longer
//! offer (RC4, 3DES, export), with a hand-written ClientHello.
//!
//! - each of the twelve suites a 2023 iPXE offers is served when
//!   `legacy_tls` is on and refused when it is off;
//! - weak suites and TLS 1.0/1.1 are refused either way;
//! - a deployment made by ipxe-boot-server's openssl commands (X.509 v1
//!   client certificates) is taken over: enrolled v1 certificates are served,
//!   unenrolled, revoked, expired and foreign ones are refused like v3 ones.

use std::io::{Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::support::*;

/// The suites of iPXE as of 2023-12-29: OpenSSL name, IANA name.
const IPXE_2023_SUITES: [(&str, &str); 12] = [
    (
        "DHE-RSA-AES128-GCM-SHA256",
        "TLS_DHE_RSA_WITH_AES_128_GCM_SHA256",
    ),
    (
        "DHE-RSA-AES256-GCM-SHA384",
        "TLS_DHE_RSA_WITH_AES_256_GCM_SHA384",
    ),
    (
        "DHE-RSA-AES128-SHA256",
        "TLS_DHE_RSA_WITH_AES_128_CBC_SHA256",
    ),
    (
        "DHE-RSA-AES256-SHA256",
        "TLS_DHE_RSA_WITH_AES_256_CBC_SHA256",
    ),
    ("DHE-RSA-AES128-SHA", "TLS_DHE_RSA_WITH_AES_128_CBC_SHA"),
    ("DHE-RSA-AES256-SHA", "TLS_DHE_RSA_WITH_AES_256_CBC_SHA"),
    ("AES128-GCM-SHA256", "TLS_RSA_WITH_AES_128_GCM_SHA256"),
    ("AES256-GCM-SHA384", "TLS_RSA_WITH_AES_256_GCM_SHA384"),
    ("AES128-SHA256", "TLS_RSA_WITH_AES_128_CBC_SHA256"),
    ("AES256-SHA256", "TLS_RSA_WITH_AES_256_CBC_SHA256"),
    ("AES128-SHA", "TLS_RSA_WITH_AES_128_CBC_SHA"),
    ("AES256-SHA", "TLS_RSA_WITH_AES_256_CBC_SHA"),
];

/// Suites nobody needs, by code: none may ever get a ServerHello.
const WEAK_SUITES: [(u16, &str); 8] = [
    (0x0005, "RC4-SHA"),
    (0x0004, "RC4-MD5"),
    (0x000a, "DES-CBC3-SHA"),
    (0x0016, "EDH-RSA-DES-CBC3-SHA"),
    (0x0003, "EXP-RC4-MD5"),
    (0x0008, "EXP-DES-CBC-SHA"),
    (0x003b, "NULL-SHA256"),
    (0x00a6, "ADH-AES128-GCM-SHA256"),
];

fn enable_legacy(env: &Env) {
    env.edit_config("legacy_tls = false", "legacy_tls = true");
}

/// `openssl s_client` sending `GET /boot/ipxe`; returns whether it exited
/// well and everything it printed.
fn s_client(port: u16, dir: &Path, cert: Option<(&str, &str)>, args: &[&str]) -> (bool, String) {
    let connect = format!("127.0.0.1:{port}");
    let mut cmd = Command::new("openssl");
    cmd.args(["s_client", "-connect", &connect, "-servername", "localhost"])
        .args(["-CAfile", "ca/ca.crt", "-verify_return_error", "-ign_eof"])
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some((crt, key)) = cert {
        cmd.args(["-cert", crt, "-key", key]);
    }
    let mut child = cmd.spawn().expect("openssl is installed (scripts/test)");
    // A refused handshake may end s_client before it reads its input.
    let _ = child
        .stdin
        .take()
        .unwrap()
        .write_all(b"GET /boot/ipxe HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    let out = child.wait_with_output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// A ClientHello offering exactly `suites` at `version`, as a 2023 iPXE
/// shapes it (no supported_groups, no supported_versions).
fn client_hello(version: u16, suites: &[u16]) -> Vec<u8> {
    let mut body = version.to_be_bytes().to_vec();
    body.extend_from_slice(&[0x5a; 32]);
    body.push(0);
    body.extend_from_slice(&((suites.len() * 2) as u16).to_be_bytes());
    for suite in suites {
        body.extend_from_slice(&suite.to_be_bytes());
    }
    body.extend_from_slice(&[1, 0]);
    // signature_algorithms: rsa_pkcs1 sha256, sha1; renegotiation_info.
    let exts = [
        0x00, 0x0d, 0x00, 0x06, 0x00, 0x04, 0x04, 0x01, 0x02, 0x01, 0xff, 0x01, 0x00, 0x01, 0x00,
    ];
    body.extend_from_slice(&(exts.len() as u16).to_be_bytes());
    body.extend_from_slice(&exts);
    let mut hello = vec![1];
    hello.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
    hello.extend_from_slice(&body);
    let mut record = vec![0x16, 0x03, 0x01];
    record.extend_from_slice(&(hello.len() as u16).to_be_bytes());
    record.extend_from_slice(&hello);
    record
}

/// Whether the server answers `hello` with a ServerHello (rather than an
/// alert or a closed connection).
fn server_hello(port: u16, hello: &[u8]) -> bool {
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    stream.write_all(hello).unwrap();
    let mut head = [0u8; 6];
    match stream.read_exact(&mut head) {
        Ok(()) => head[0] == 0x16 && head[5] == 2,
        Err(_) => false,
    }
}

#[test]
fn serves_the_2023_ipxe_suites_only_when_enabled_and_never_weak_ones() {
    let off = Env::new();
    let on = Env::new();
    enable_legacy(&on);
    let mut fps = Vec::new();
    for env in [&off, &on] {
        fps.push(env.add_machine_with_script("gw1", "#!ipxe\necho hi $machine_name\n"));
    }
    let cert = Some(("machines/gw1/client.crt", "machines/gw1/client.key"));
    let off_server = off.serve();
    let on_server = on.serve();

    for (name, iana) in IPXE_2023_SUITES {
        let (ok, out) = s_client(on.port, &on.data, cert, &["-tls1_2", "-cipher", name]);
        assert!(ok, "{name} refused with legacy_tls on:\n{out}");
        assert!(out.contains(&format!("Cipher is {name}")), "{name}:\n{out}");
        assert!(
            out.contains("HTTP/1.1 200") && out.contains("echo hi gw1"),
            "{name}:\n{out}"
        );
        let (ok, out) = s_client(off.port, &off.data, cert, &["-tls1_2", "-cipher", name]);
        assert!(!ok, "{name} ({iana}) served with legacy_tls off:\n{out}");
        assert!(!out.contains("HTTP/1.1"), "{name}:\n{out}");
    }

    for (port, state) in [(on.port, "on"), (off.port, "off")] {
        for (code, name) in WEAK_SUITES {
            assert!(
                !server_hello(port, &client_hello(0x0303, &[code])),
                "{name} got a ServerHello with legacy_tls {state}"
            );
        }
        // TLS 1.0 and 1.1, with a suite the legacy stack has for 1.2.
        for version in [0x0301, 0x0302] {
            assert!(
                !server_hello(port, &client_hello(version, &[0x002f])),
                "TLS version {version:#06x} got a ServerHello with legacy_tls {state}"
            );
        }
        // The control: the same hello at TLS 1.2 is answered when enabled.
        assert_eq!(
            server_hello(port, &client_hello(0x0303, &[0x002f])),
            state == "on"
        );
    }
    let env = &on;
    for flag in ["-tls1", "-tls1_1"] {
        let (ok, out) = s_client(
            env.port,
            &env.data,
            cert,
            &[flag, "-cipher", "AES128-SHA:@SECLEVEL=0"],
        );
        assert!(!ok, "{flag} accepted:\n{out}");
    }

    // Modern clients still get rustls, with or without the legacy stack.
    let (ok, out) = s_client(on.port, &on.data, cert, &["-tls1_3"]);
    assert!(ok && out.contains("TLSv1.3"), "{out}");
    let (ok, out) = s_client(
        on.port,
        &on.data,
        cert,
        &["-tls1_2", "-cipher", "ECDHE-RSA-AES128-GCM-SHA256"],
    );
    assert!(ok && out.contains("echo hi gw1"), "{out}");

    // What an operator sees: sessions by suite and stack, machines on old suites.
    let (_, metrics) = on_server.admin_get("/metrics");
    for line in [
        "bootgate_tls_sessions_total{version=\"TLSv1.2\",suite=\"TLS_DHE_RSA_WITH_AES_128_GCM_SHA256\",stack=\"legacy\"} 1",
        "bootgate_tls_sessions_total{version=\"TLSv1.2\",suite=\"TLS_RSA_WITH_AES_256_CBC_SHA\",stack=\"legacy\"} 1",
        "bootgate_tls_sessions_total{version=\"TLSv1.2\",suite=\"TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256\",stack=\"modern\"} 1",
        // gw1's latest session was a modern one.
        "bootgate_legacy_tls_machines 0",
    ] {
        assert_has_line(&metrics, line);
    }
    let (ok, _) = s_client(
        on.port,
        &on.data,
        cert,
        &["-tls1_2", "-cipher", "AES128-SHA"],
    );
    assert!(ok);
    let (_, metrics) = on_server.admin_get("/metrics");
    assert_has_line(&metrics, "bootgate_legacy_tls_machines 1");
    let (_, page) = on_server.admin_get("/");
    assert!(page.contains("1 machines on old TLS suites"), "{page}");
    let (_, page) = off_server.admin_get("/");
    assert!(!page.contains("old TLS suites"), "{page}");

    // Every request carries its protocol and suite in the boot history.
    let mut events = Vec::new();
    wait_until("the boot history", Duration::from_secs(10), || {
        events = on
            .ok(&["events", "--json"])
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
            .filter(|e| e["kind"] == "request")
            .collect();
        events.len() >= IPXE_2023_SUITES.len() + 3
    });
    for (_, iana) in IPXE_2023_SUITES {
        let tls = format!("TLSv1.2 {iana}");
        assert!(
            events
                .iter()
                .any(|e| e["tls"] == tls.as_str() && e["machine"] == "gw1"),
            "no request recorded with {tls}"
        );
    }
    assert!(
        events
            .iter()
            .any(|e| e["tls"].as_str().is_some_and(|t| t.starts_with("TLSv1.3 ")))
    );
}

/// The original Makefile's CA and `ca.cnf` (no extensions: v1 certificates).
struct OldCa {
    dir: tempfile::TempDir,
}

impl OldCa {
    fn new(fqdn: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        sh(
            &format!(
                "openssl req -nodes -x509 -newkey rsa:2048 -out ca.crt -keyout ca.key \
                   -subj '/CN={fqdn}' -days 3650 2>/dev/null && \
                 mkdir newcerts && touch index.txt && echo 01 > serial && \
                 printf '[ ca ]\\ndefault_ca = ca_default\\n[ ca_default ]\\n\
certificate = ca.crt\\nprivate_key = ca.key\\nserial = serial\\ndatabase = index.txt\\n\
new_certs_dir = newcerts\\ndefault_md = default\\npolicy = policy_anything\\n\
preserve = yes\\ndefault_days = 3650\\nunique_subject = no\\n\
[ policy_anything ]\\ncommonName = supplied\\n' > ca.cnf"
            ),
            dir.path(),
        );
        Self { dir }
    }

    /// A client certificate made by `openssl ca`; `dates` are extra options.
    fn issue(&self, name: &str, dates: &str) -> std::path::PathBuf {
        sh(
            &format!(
                "openssl req -newkey rsa -nodes -keyout {name}.key -out {name}.req \
                   -subj '/CN={name}' 2>/dev/null && \
                 openssl ca -batch -config ca.cnf -in {name}.req -out {name}.crt {dates} 2>/dev/null"
            ),
            self.dir.path(),
        );
        let text = sh(
            &format!("openssl x509 -in {name}.crt -noout -text"),
            self.dir.path(),
        );
        assert!(text.contains("Version: 1 (0x0)"), "{text}");
        self.dir.path().join(format!("{name}.crt"))
    }

    fn path(&self, file: &str) -> String {
        self.dir.path().join(file).to_str().unwrap().to_string()
    }
}

fn fingerprint(cert: &Path) -> String {
    sh(
        &format!(
            "openssl x509 -in {} -noout -fingerprint -sha1",
            cert.display()
        ),
        Path::new("/"),
    )
    .trim()
    .rsplit('=')
    .next()
    .unwrap()
    .replace(':', "")
    .to_lowercase()
}

#[test]
fn takes_over_v1_certificates_made_by_the_original() {
    // The original CA is named after the server, as `make ca` did.
    let old = OldCa::new("127.0.0.1");
    let gw = old.issue("gw-old", "-days 3650");
    let stray = old.issue("gw-stray", "-days 3650");
    let revoked = old.issue("gw-revoked", "-days 3650");
    let expired = old.issue(
        "gw-expired",
        "-startdate 20200101000000Z -enddate 20210101000000Z",
    );
    let foreign_ca = OldCa::new("127.0.0.1");
    let foreign = foreign_ca.issue("gw-old", "-days 3650");

    let env = Env::with_names(
        &["127.0.0.1", "localhost"],
        &["--import-ca", &old.path("ca.crt"), &old.path("ca.key")],
    );
    let config = std::fs::read_to_string(env.path("bootgate.toml")).unwrap();
    assert!(config.contains("legacy_tls = true"), "{config}");
    // The server certificate bootgate issued for 127.0.0.1 must not look
    // self-signed although the CA is called CN=127.0.0.1 too.
    let names = sh(
        "openssl x509 -in server/server.crt -noout -subject -issuer -nameopt compat",
        &env.data,
    );
    let mut lines = names.lines();
    let subject = lines.next().unwrap().trim_start_matches("subject=");
    let issuer = lines.next().unwrap().trim_start_matches("issuer=");
    assert_ne!(subject, issuer);
    sh(
        "openssl verify -CAfile ca/ca.crt server/server.crt",
        &env.data,
    );

    let fp = env
        .ok(&["machine", "adopt", gw.to_str().unwrap()])
        .trim()
        .to_string();
    assert_eq!(fp, fingerprint(&gw));
    env.ok(&["machine", "adopt", revoked.to_str().unwrap()]);
    // Adopted anyway (--force), so that the handshake is what refuses it.
    env.ok(&["machine", "adopt", expired.to_str().unwrap(), "--force"]);
    env.ok(&["machine", "revoke", "gw-revoked"]);
    // The original's script, unchanged: its own variables and one that
    // bootgate has no data for (the original's S3 scratch space).
    std::fs::create_dir_all(env.files(&fp)).unwrap();
    std::fs::write(
        env.files(&fp).join("boot.ipxe"),
        "#!ipxe\necho ${client_cert_fingerprint} ${client_cert_serial} ${s3_bucket_name} ${netX/mac}\n",
    )
    .unwrap();
    let show = env.ok(&["machine", "show", "gw-old"]);
    assert!(show.contains("unset vars:  s3_bucket_name"), "{show}");
    let shown: serde_json::Value =
        serde_json::from_str(&env.ok(&["machine", "show", "gw-old", "--json"])).unwrap();
    assert_eq!(
        shown["unprovided_variables"],
        serde_json::json!(["s3_bucket_name"])
    );

    let _server = env.serve();
    let old_client = |cert: &Path| {
        let crt = cert.to_str().unwrap().to_string();
        let key = crt.replace(".crt", ".key");
        s_client(
            env.port,
            &env.data,
            Some((&crt, &key)),
            &["-tls1_2", "-cipher", "AES128-GCM-SHA256"],
        )
    };
    let (ok, out) = old_client(&gw);
    assert!(ok, "{out}");
    assert!(out.contains("HTTP/1.1 200"), "{out}");
    assert!(
        out.contains(&format!("echo {fp} 01 ${{s3_bucket_name}} ${{netX/mac}}\n")),
        "{out}"
    );
    // Signed by the CA but not enrolled, or revoked: the handshake succeeds
    // and the request is refused, exactly as for v3 certificates.
    for cert in [&stray, &revoked] {
        let (_, out) = old_client(cert);
        assert!(out.contains("HTTP/1.1 403"), "{out}");
    }
    // Expired, or from another CA of the same name: no handshake.
    for cert in [&expired, &foreign] {
        let (ok, out) = old_client(cert);
        assert!(!ok && !out.contains("HTTP/1.1"), "{out}");
    }

    let mut events = Vec::new();
    wait_until(
        "the refusals in the history",
        Duration::from_secs(10),
        || {
            events = env
                .ok(&["events", "--json"])
                .lines()
                .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
                .collect();
            events.iter().filter(|e| e["kind"] == "handshake").count() >= 2
                && events.iter().filter(|e| e["status"] == 403).count() >= 2
        },
    );
    let find = |pred: &dyn Fn(&serde_json::Value) -> bool| {
        events.iter().find(|e| pred(e)).cloned().unwrap_or_default()
    };
    let ok_event = find(&|e| e["machine"] == "gw-old");
    assert_eq!(ok_event["status"], 200);
    assert_eq!(ok_event["tls"], "TLSv1.2 TLS_RSA_WITH_AES_128_GCM_SHA256");
    let expired_fp = fingerprint(&expired);
    let foreign_fp = fingerprint(&foreign);
    assert_eq!(
        find(&|e| e["fingerprint"] == expired_fp.as_str())["reason"],
        "expired"
    );
    assert_eq!(
        find(&|e| e["fingerprint"] == foreign_fp.as_str())["reason"],
        "foreign-ca"
    );
    assert_eq!(find(&|e| e["machine"] == "gw-revoked")["reason"], "revoked");
    let stray_fp = fingerprint(&stray);
    assert_eq!(
        find(&|e| e["fingerprint"] == stray_fp.as_str())["status"],
        403
    );
}
