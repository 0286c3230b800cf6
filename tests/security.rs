//! The security guarantees of `docs/security.md`, tried as an attacker would:
//! links swapped in served folders while requests are in flight, a secrets
//! link presented by another machine, data directories made under hostile
//! umasks, and certificates the server would never accept offered for
//! adoption.

use std::os::unix::fs::{PermissionsExt, symlink};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::support::{Env, Session, assert_succeeded, succeeded, write};

/// Requests made by each race test, and the time they may take at most. The
/// check-then-open this replaced leaked the CA key after a few thousand
/// requests on a busy 2-core machine.
const RACE_REQUESTS: usize = 20_000;
const RACE_TIME: Duration = Duration::from_secs(25);

/// Swaps two names atomically, in one system call (`RENAME_EXCHANGE`): the
/// fastest an attacker can flip what a name is.
fn exchange(a: &Path, b: &Path) {
    use std::ffi::CString;
    use std::os::unix::ffi::OsStrExt;
    let (a, b) = (
        CString::new(a.as_os_str().as_bytes()).unwrap(),
        CString::new(b.as_os_str().as_bytes()).unwrap(),
    );
    // SAFETY: two valid NUL-terminated paths.
    let done = unsafe {
        libc::renameat2(
            libc::AT_FDCWD,
            a.as_ptr(),
            libc::AT_FDCWD,
            b.as_ptr(),
            libc::RENAME_EXCHANGE,
        )
    };
    assert_eq!(done, 0, "{}", std::io::Error::last_os_error());
}

/// Runs `swap` in a tight loop on another thread until dropped; counts rounds.
struct Swapper {
    stop: Arc<AtomicBool>,
    rounds: Arc<AtomicU64>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Swapper {
    fn start(mut swap: impl FnMut(u64) + Send + 'static) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let rounds = Arc::new(AtomicU64::new(0));
        let (s, r) = (stop.clone(), rounds.clone());
        let thread = std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                swap(r.fetch_add(1, Ordering::Relaxed));
            }
        });
        Self {
            stop,
            rounds,
            thread: Some(thread),
        }
    }

    fn finish(mut self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.take().unwrap().join().unwrap();
        self.rounds.load(Ordering::Relaxed)
    }
}

/// Requests until `RACE_REQUESTS` were made or `RACE_TIME` passed.
fn hammer(mut request: impl FnMut(usize)) -> usize {
    let began = Instant::now();
    let mut made = 0;
    while made < RACE_REQUESTS && began.elapsed() < RACE_TIME {
        request(made);
        made += 1;
    }
    made
}

fn assert_no_key_material(body: &[u8], ca_key: &[u8], what: &str) {
    let text = String::from_utf8_lossy(body);
    assert!(
        !text.contains("PRIVATE KEY") && !text.contains("LEAKED"),
        "{what} served something from outside its folder:\n{text}"
    );
    // No line of the CA key, not even a partial one.
    for line in String::from_utf8_lossy(ca_key).lines().skip(1).take(5) {
        assert!(
            !text.contains(&line[..16]),
            "{what} served part of the CA key"
        );
    }
}

#[test]
fn files_outside_a_folder_are_never_served_while_links_change() {
    let env = Env::new();
    let fp = env.add_machine("gw1");
    let folder = env.files(&fp);
    let inside = "kernel inside the folder\n";
    write(&folder.join("real"), inside);
    write(&folder.join("sub/kernel"), inside);
    write(&folder.join("kernel"), inside);
    let ca_key = std::fs::read(env.path("ca/ca.key")).unwrap();
    let _server = env.serve();

    // The served file flips between a regular file and a link to the CA key;
    // a served folder between a real one and a link to ca/. Inside,
    // `sub/ca.key` is ordinary; through the link it is the CA key.
    write(&folder.join("sub/ca.key"), inside);
    symlink("../../ca/ca.key", folder.join("kernel-evil")).unwrap();
    symlink("../../ca", folder.join("sub-evil")).unwrap();
    let pairs = [("kernel", "kernel-evil"), ("sub", "sub-evil")]
        .map(|(a, b)| (folder.join(a), folder.join(b)));
    let swapper = Swapper::start(move |_| {
        for (a, b) in &pairs {
            exchange(a, b);
        }
    });

    let mut session = Session::new(&env, Some(env.identity("gw1")));
    let (mut served, mut refused) = (0, 0);
    let made = hammer(|i| {
        let path = if i % 2 == 0 {
            "/files/kernel"
        } else {
            "/files/sub/ca.key"
        };
        let response = session.get(path);
        assert_no_key_material(&response.body, &ca_key, path);
        match response.status {
            200 => {
                assert_eq!(response.text(), inside, "{path}");
                served += 1;
            }
            404 => refused += 1,
            other => panic!("{path}: unexpected status {other}"),
        }
    });
    let rounds = swapper.finish();
    eprintln!("{made} requests ({served} served, {refused} refused), {rounds} swaps");
    assert!(served > 0 && refused > 0, "the race was not exercised");
    assert!(rounds > 100, "the links hardly changed ({rounds} swaps)");
}

#[test]
fn scripts_variables_and_secrets_never_come_from_outside_while_links_change() {
    let env = Env::new();
    let fp = env.add_machine("gw1");
    let folder = env.files(&fp);
    write(
        &folder.join("boot.ipxe"),
        "#!ipxe\necho role=$role\nkernel /files/k b2c.extra_args_url=$secrets_url\n",
    );
    write(&folder.join("vars.toml"), "role = \"inside\"\n");
    write(&folder.join("secrets"), "password=inside\n");
    write(&env.path("leak.toml"), "role = \"LEAKED\"\n");
    symlink("../../leak.toml", folder.join("vars-evil")).unwrap();
    symlink("../../ca/ca.key", folder.join("secrets-evil")).unwrap();

    env.add_script_profile("rack", "#!ipxe\necho profile inside\n", &[]);
    env.ok(&["machine", "add", "gw2", "--profile", "rack"]);
    let profile = env.path("profiles/rack");
    symlink("../../ca/ca.key", profile.join("script-evil")).unwrap();
    let ca_key = std::fs::read(env.path("ca/ca.key")).unwrap();
    let _server = env.serve();

    let pairs = [
        (folder.join("vars.toml"), folder.join("vars-evil")),
        (folder.join("secrets"), folder.join("secrets-evil")),
        (profile.join("boot.ipxe"), profile.join("script-evil")),
    ];
    let swapper = Swapper::start(move |_| {
        for (a, b) in &pairs {
            exchange(a, b);
        }
    });

    let mut gw1 = Session::new(&env, Some(env.identity("gw1")));
    let mut gw2 = Session::new(&env, Some(env.identity("gw2")));
    let mut anonymous = Session::new(&env, None);
    let (mut scripts, mut secrets_served, mut profiles) = (0, 0, 0);
    let made = hammer(|i| match i % 2 {
        0 => {
            let response = gw1.get("/boot/ipxe");
            assert_no_key_material(&response.body, &ca_key, "boot.ipxe with vars.toml");
            if response.status != 200 {
                return;
            }
            let text = response.text();
            assert!(text.contains("echo role=inside"), "{text}");
            scripts += 1;
            let url = text.split("extra_args_url=").nth(1).unwrap().trim();
            let path = &url[url.find("/secrets/").unwrap()..];
            let secret = anonymous.get(path);
            assert_no_key_material(&secret.body, &ca_key, "secrets");
            if secret.status == 200 {
                assert_eq!(secret.text(), "password=inside\n");
                secrets_served += 1;
            }
        }
        _ => {
            let response = gw2.get("/boot/ipxe");
            assert_no_key_material(&response.body, &ca_key, "the profile's boot.ipxe");
            if response.status == 200 {
                assert_eq!(response.text(), "#!ipxe\necho profile inside\n");
                profiles += 1;
            }
        }
    });
    let rounds = swapper.finish();
    eprintln!(
        "{made} requests ({scripts} scripts, {secrets_served} secrets, {profiles} profile scripts), {rounds} swaps"
    );
    assert!(
        scripts > 0 && secrets_served > 0 && profiles > 0,
        "the race was not exercised"
    );
    assert!(rounds > 100, "the links hardly changed ({rounds} swaps)");
}

#[test]
fn another_machines_certificate_cannot_redeem_a_secrets_link() {
    let env = Env::new();
    let fp = env.add_machine("gw1");
    env.add_machine("gw2");
    write(
        &env.files(&fp).join("boot.ipxe"),
        "#!ipxe\nkernel /files/k b2c.extra_args_url=$secrets_url\n",
    );
    write(&env.files(&fp).join("secrets"), "password=$machine_name\n");
    let server = env.serve();
    let client = env.client();
    let script = client
        .get("/boot/ipxe", Some(&env.identity("gw1")))
        .unwrap()
        .text();
    let url = script.split("extra_args_url=").nth(1).unwrap().trim();
    let path = url[url.find("/secrets/").unwrap()..].to_string();

    let stolen = client.get(&path, Some(&env.identity("gw2"))).unwrap();
    assert_eq!(stolen.status, 403);
    assert!(
        stolen.text().contains("another machine"),
        "{}",
        stolen.text()
    );
    // The owner still can, once.
    let own = client.get(&path, Some(&env.identity("gw1"))).unwrap();
    assert_eq!(own.status, 200);
    assert_eq!(own.text(), "password=gw1\n");
    assert_eq!(client.get(&path, None).unwrap().status, 404);

    // Without a certificate (boot2container under Linux) it works as before.
    let script = client
        .get("/boot/ipxe", Some(&env.identity("gw1")))
        .unwrap()
        .text();
    let url = script.split("extra_args_url=").nth(1).unwrap().trim();
    let path2 = &url[url.find("/secrets/").unwrap()..];
    assert_eq!(client.get(path2, None).unwrap().status, 200);

    // The attempt is in gw2's boot history.
    crate::support::wait_until(
        "the refused attempt in the history",
        Duration::from_secs(30),
        || {
            let out = env.run(&["events", "--machine", "gw2", "--json"]);
            String::from_utf8_lossy(&out.stdout).contains("not-the-owner")
        },
    );
    assert!(
        server.log_text().contains("another machine's certificate"),
        "{}",
        server.log_text()
    );
}

/// Runs `bootgate` under `umask`.
fn with_umask(env: &Env, mask: u32, args: &[&str]) -> String {
    let mut cmd = env.command(args);
    // SAFETY: umask is async-signal-safe and touches no memory.
    unsafe {
        cmd.pre_exec(move || {
            libc::umask(mask);
            Ok(())
        });
    }
    let out = cmd.output().unwrap();
    succeeded(&format!("bootgate {args:?} under umask {mask:03o}"), &out)
}

/// The mode bootgate gives each kind of entry, whatever the umask.
fn expected_mode(rel: &Path, is_dir: bool) -> u32 {
    let text = rel.to_string_lossy();
    let first = text.split('/').next().unwrap();
    if is_dir {
        return if matches!(first, "ca" | "server" | "machines") {
            0o700
        } else {
            0o750
        };
    }
    if text.ends_with(".key") || text == ".lock" {
        0o600
    } else if text.starts_with("assets/sha256/") {
        0o440
    } else {
        0o640
    }
}

fn check_modes(root: &Path, mask: u32) -> usize {
    let mut checked = 0;
    let mut stack = vec![root.to_path_buf()];
    while let Some(path) = stack.pop() {
        let meta = std::fs::symlink_metadata(&path).unwrap();
        let rel = path.strip_prefix(root).unwrap();
        let mode = meta.permissions().mode() & 0o7777;
        let expected = expected_mode(rel, meta.is_dir());
        assert_eq!(
            mode,
            expected,
            "{} under umask {mask:03o} is {mode:o}, not {expected:o}",
            path.display()
        );
        checked += 1;
        if meta.is_dir() {
            for entry in std::fs::read_dir(&path).unwrap() {
                stack.push(entry.unwrap().path());
            }
        }
    }
    checked
}

#[test]
fn modes_do_not_depend_on_the_umask() {
    for mask in [0o000, 0o077] {
        let env = Env::uninitialised();
        let listen = format!("127.0.0.1:{}", env.port);
        with_umask(
            &env,
            mask,
            &["init", "--listen", &listen, "--server-name", "localhost"],
        );
        with_umask(&env, mask, &["machine", "add", "gw1"]);
        let script = env.tmp.path().join("p.ipxe");
        write(&script, "#!ipxe\necho hi\n");
        with_umask(
            &env,
            mask,
            &[
                "profile",
                "create",
                "rack",
                "--script",
                script.to_str().unwrap(),
                "--var",
                "role=x",
            ],
        );
        let kernel = env.tmp.path().join("kernel");
        write(&kernel, "kernel bytes");
        with_umask(&env, mask, &["asset", "add", kernel.to_str().unwrap()]);
        let checked = check_modes(&env.data, mask);
        assert!(checked >= 20, "only {checked} entries");
        // `serve`'s own check agrees.
        let findings =
            bootgate::datadir::permcheck::inspect(&bootgate::datadir::DataDir::new(&env.data))
                .unwrap();
        assert!(findings.refused.is_empty() && findings.group_writable_content.is_empty());
    }
}

#[test]
fn serve_refuses_a_data_directory_others_can_write() {
    let env = Env::new();
    let config = env.path("bootgate.toml");
    std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o660)).unwrap();
    let err = env.fails(&["serve"]);
    assert!(
        err.contains("bootgate.toml") && err.contains("chmod"),
        "{err}"
    );
    // Group-writable editor content is only worth a warning.
    std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o640)).unwrap();
    let fp = env.add_machine("gw1");
    std::fs::set_permissions(env.files(&fp), std::fs::Permissions::from_mode(0o770)).unwrap();
    let server = env.serve();
    assert!(
        server
            .log_text()
            .contains("can be written by the data directory's group"),
        "{}",
        server.log_text()
    );
}

#[test]
fn interrupted_commands_leave_nothing_behind_for_long() {
    let env = Env::new();
    // What a killed `machine add` and a killed `init` leave.
    let add_leftover = env.path("machines/.bootgate-add-XYZ");
    write(&add_leftover.join("client.key"), "half a key");
    let init_leftover = env.tmp.path().join(".bootgate-init-XYZ");
    write(&init_leftover.join("ca/ca.key"), "half a key");

    env.add_machine("gw1");
    assert!(!add_leftover.exists(), "machine add cleaned up");
    let other = env.tmp.path().join("other");
    let listen = format!("127.0.0.1:{}", env.port);
    Command::new(crate::support::bootgate_bin())
        .arg("--data")
        .arg(&other)
        .args(["init", "--listen", &listen, "--server-name", "localhost"])
        .output()
        .unwrap();
    assert!(other.join("bootgate.toml").is_file());
    assert!(!init_leftover.exists(), "init cleaned up");
}

/// A client certificate made by this data directory's CA with `edit` applied.
fn issue(env: &Env, edit: impl FnOnce(&mut rcgen::CertificateParams)) -> std::path::PathBuf {
    let ca_pem = std::fs::read_to_string(env.path("ca/ca.crt")).unwrap();
    let key_pem = std::fs::read_to_string(env.path("ca/ca.key")).unwrap();
    let ca_key = bootgate::ca::PrivateKey::from_pem(&key_pem)
        .unwrap()
        .key_pair()
        .unwrap();
    let issuer = rcgen::Issuer::from_ca_cert_pem(&ca_pem, ca_key).unwrap();
    let mut params = rcgen::CertificateParams::default();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "adopted");
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
    params.not_before = time::OffsetDateTime::now_utc() - time::Duration::days(1);
    params.not_after = time::OffsetDateTime::now_utc() + time::Duration::days(365);
    edit(&mut params);
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = params.signed_by(&key, &issuer).unwrap();
    let path = env
        .tmp
        .path()
        .join(format!("cert-{}.pem", short_id(cert.der())));
    std::fs::write(&path, cert.pem()).unwrap();
    path
}

fn short_id(der: &[u8]) -> String {
    bootgate::ca::Fingerprint::of_der(der).as_str()[..8].to_string()
}

#[test]
fn adopt_refuses_certificates_the_server_would_refuse() {
    let env = Env::new();
    let adopt = |cert: &Path, extra: &[&str]| {
        let mut args = vec!["machine", "adopt", cert.to_str().unwrap()];
        args.extend_from_slice(extra);
        env.run(&args)
    };
    let refused = |cert: &Path, needle: &str| {
        let out = adopt(cert, &[]);
        let err = String::from_utf8_lossy(&out.stderr).to_string();
        assert!(!out.status.success(), "{} was adopted", cert.display());
        assert!(err.contains(needle), "{needle} in {err}");
        assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
    };
    let day = time::Duration::days(1);
    let now = time::OffsetDateTime::now_utc();

    let expired = issue(&env, |p| {
        p.not_before = now - day * 400;
        p.not_after = now - day;
    });
    refused(&expired, "expired");
    let early = issue(&env, |p| {
        p.not_before = now + day;
    });
    refused(&early, "not valid before");
    let server_only = issue(&env, |p| {
        p.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
    });
    refused(&server_only, "clientAuth");
    refused(&env.path("server/server.crt"), "server's own certificate");
    assert!(
        !env.ok(&["machine", "list", "--json"]).contains("adopted"),
        "nothing was registered"
    );

    // --force is for validity dates only.
    let out = adopt(&server_only, &["--force", "--name", "forced"]);
    assert!(!out.status.success());
    let out = adopt(&early, &["--force", "--name", "early"]);
    assert_succeeded("machine adopt --force", &out);

    // Without an extended key usage extension at all: accepted, as TLS does.
    let any_use = issue(&env, |p| p.extended_key_usages.clear());
    let out = adopt(&any_use, &["--name", "any-use"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let good = issue(&env, |_| {});
    let out = adopt(&good, &["--name", "good"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
