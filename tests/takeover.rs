//! The takeover of a 2023 ipxe-boot-server deployment, end to end: the
//! gateway is iPXE at fa6221323 (the last commit of 2023) with an X.509 v1
//! client certificate compiled in, made by the original Makefile's openssl
//! commands (`scripts/build-ipxe-2023` builds and caches it). bootgate takes
//! the deployment over with `init --import-ca` and `machine adopt`, serves
//! the gateway's unchanged `files/<fingerprint>/boot.ipxe` on port 443 at
//! 10.0.2.2, as in the gateway's firmware, and the gateway boots to its
//! initramfs in QEMU under OVMF. The same gateway revoked, or facing a
//! bootgate with another client CA, never gets its script.
//!
//! Port 443 is taken inside a private network namespace (one per test
//! thread), where bootgate and QEMU both run, so nothing collides with other
//! tests or the host. That needs root, as CI has.

use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::Duration;

use crate::support::*;
use sha2::{Digest, Sha256};

/// The gateway `scripts/build-ipxe-2023` built: its folder is named after a
/// hash of the script, like the script names it.
fn gateway() -> PathBuf {
    let script = repo().join("scripts/build-ipxe-2023");
    let key = &hex::encode(Sha256::digest(std::fs::read(&script).unwrap()))[..12];
    let cache = std::env::var_os("BOOTGATE_CACHE")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".cache/bootgate")))
        .expect("BOOTGATE_CACHE or HOME is set");
    let dir = cache.join(format!("ipxe-2023-fa6221323-{key}"));
    assert!(
        dir.join("ipxe.efi").is_file(),
        "{} is missing: run scripts/build-ipxe-2023 (scripts/test does)",
        dir.display()
    );
    dir
}

/// One emulated gateway at a time: three TCG guests on two cores would make
/// each one's TLS handshake (slow big-integer code in iPXE) crawl.
static ONE_GUEST: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Moves this test's thread into a new network namespace with only a
/// loopback; every process it starts from now on lives there too.
fn enter_private_network() {
    assert_eq!(
        unsafe { libc::geteuid() },
        0,
        "this test serves on port 443 in a private network namespace: run it as root (CI does)"
    );
    let rc = unsafe { libc::unshare(libc::CLONE_NEWNET) };
    assert_eq!(
        rc,
        0,
        "unshare(CLONE_NEWNET): {}",
        std::io::Error::last_os_error()
    );
    sh("ip link set lo up", Path::new("/"));
}

/// A data directory taken over from the gateway's deployment: `ca` is the
/// client CA bootgate imports, the server chain is the gateway's "public" one.
fn takeover_env(ca_cert: &Path, ca_key: &Path) -> Env {
    let gw = gateway();
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let env = Env {
        tmp,
        data,
        port: 443,
    };
    env.ok(&[
        "init",
        "--listen",
        "127.0.0.1:443",
        "--server-name",
        "10.0.2.2",
        "--import-ca",
        ca_cert.to_str().unwrap(),
        ca_key.to_str().unwrap(),
        "--server-cert",
        gw.join("server.crt").to_str().unwrap(),
        "--server-key",
        gw.join("server.key").to_str().unwrap(),
    ]);
    env
}

/// A GPT disk whose EFI system partition holds the gateway's iPXE as the
/// removable-media boot loader, like the original's USB sticks.
fn gateway_disk(dir: &Path) -> PathBuf {
    let efi = gateway().join("ipxe.efi");
    sh(
        &format!(
            "mformat -C -i esp.img -T 65536 -h 64 -s 32 :: && \
             mmd -i esp.img ::/EFI ::/EFI/BOOT && \
             mcopy -i esp.img {} ::/EFI/BOOT/BOOTX64.EFI && \
             truncate -s 34M disk.img && \
             printf 'label: gpt\\nstart=2048, size=65536, type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B\\n' \
               | sfdisk -q disk.img && \
             dd if=esp.img of=disk.img bs=1M seek=1 conv=notrunc status=none",
            efi.display()
        ),
        dir,
    );
    dir.join("disk.img")
}

/// `bootgate try` on the gateway disk, started in the background.
fn start_gateway(env: &Env, name: &str, expect: &str) -> Child {
    let disk = gateway_disk(env.tmp.path());
    let log = logs_dir().join(format!("{name}.console.log"));
    env.command(&[
        "try",
        disk.to_str().unwrap(),
        "--platform",
        "x86_64-efi",
        "--no-ca",
        "--quiet",
        "--timeout",
        "900",
        "--expect",
        expect,
        "--log",
        log.to_str().unwrap(),
    ])
    .stdout(Stdio::null())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap()
}

fn events(env: &Env) -> Vec<serde_json::Value> {
    env.ok(&["events", "--json"])
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// The original's layout: the script, kernel and initramfs in the
/// gateway's own folder; the script as an operator of the original wrote it.
fn original_files(env: &Env, fingerprint: &str) {
    let files = env.files(fingerprint);
    std::fs::create_dir_all(&files).unwrap();
    std::fs::copy(test_boot_file("vmlinuz-amd64"), files.join("kernel")).unwrap();
    busybox_initramfs("amd64", &files.join("initrd"));
    std::fs::write(
        files.join("boot.ipxe"),
        "#!ipxe\n\n\
         kernel /files/kernel console=ttyS0 panic=-1 e2e.fp=${client_cert_fingerprint}\n\
         initrd /files/initrd\n\
         boot\n",
    )
    .unwrap();
}

/// A takeover of the cached gateway: its CA imported, its certificate
/// adopted, its original `files/<fingerprint>/` in place.
fn adopted_gateway() -> (Env, String) {
    let gw = gateway();
    let env = takeover_env(&gw.join("ca.crt"), &gw.join("ca.key"));
    let fp = env
        .ok(&["machine", "adopt", gw.join("gateway.crt").to_str().unwrap()])
        .trim()
        .to_string();
    original_files(&env, &fp);
    (env, fp)
}

#[test]
fn a_2023_gateway_boots_from_bootgate_unchanged() {
    let _one = ONE_GUEST.lock().unwrap_or_else(|e| e.into_inner());
    enter_private_network();
    let (env, fp) = adopted_gateway();
    let server = env.serve();
    let expect = format!("E2E-INIT: e2e.fp={fp}");
    let out = start_gateway(&env, "takeover-2023", &expect)
        .wait_with_output()
        .unwrap();
    server.keep_log("takeover-2023");
    assert_succeeded("the 2023 gateway's boot", &out);
    let served: Vec<_> = events(&env)
        .into_iter()
        .filter(|e| e["machine"] == "gateway" && e["status"] == 200)
        .collect();
    for path in ["/boot/ipxe", "/files/kernel", "/files/initrd"] {
        let event = served
            .iter()
            .find(|e| e["path"] == path)
            .unwrap_or_else(|| panic!("{path} not served: {served:#?}"));
        let tls = event["tls"].as_str().unwrap();
        assert!(
            tls.starts_with("TLSv1.2 TLS_DHE_RSA_WITH_")
                || tls.starts_with("TLSv1.2 TLS_RSA_WITH_"),
            "{tls}"
        );
    }
    let (_, metrics) = server.admin_get("/metrics");
    assert_has_line(&metrics, "bootgate_legacy_tls_machines 1");
}

/// Starts the gateway and waits until the history shows `refused`; the
/// gateway, which retries forever, is then stopped. It must never have
/// been served its script.
fn gateway_is_refused(env: &Env, name: &str, refused: impl Fn(&serde_json::Value) -> bool) {
    let server = env.serve();
    let mut guest = start_gateway(env, name, "E2E-INIT:");
    let mut seen = Vec::new();
    wait_until(
        "the gateway's refusal in the history",
        Duration::from_secs(900),
        || {
            seen = events(env);
            seen.iter().any(&refused)
        },
    );
    let _ = guest.kill();
    let _ = guest.wait();
    server.keep_log(name);
    assert!(
        !seen
            .iter()
            .any(|e| e["path"] == "/boot/ipxe" && e["status"] == 200),
        "{seen:#?}"
    );
}

#[test]
fn a_revoked_2023_gateway_gets_nothing() {
    let _one = ONE_GUEST.lock().unwrap_or_else(|e| e.into_inner());
    enter_private_network();
    let (env, _) = adopted_gateway();
    env.ok(&["machine", "revoke", "gateway"]);
    gateway_is_refused(&env, "takeover-2023-revoked", |e| {
        e["machine"] == "gateway" && e["reason"] == "revoked" && e["status"] == 403
    });
}

#[test]
fn a_2023_gateway_of_another_ca_gets_nothing() {
    let _one = ONE_GUEST.lock().unwrap_or_else(|e| e.into_inner());
    enter_private_network();
    // Another deployment's CA, made the original's way, with the same name.
    let other = tempfile::tempdir().unwrap();
    sh(
        "openssl req -nodes -x509 -newkey rsa:2048 -out ca.crt -keyout ca.key \
           -subj /CN=10.0.2.2 -days 3650 2>/dev/null",
        other.path(),
    );
    let env = takeover_env(&other.path().join("ca.crt"), &other.path().join("ca.key"));
    let gateway_fp = {
        let text = sh(
            &format!(
                "openssl x509 -in {} -noout -fingerprint -sha1",
                gateway().join("gateway.crt").display()
            ),
            Path::new("/"),
        );
        text.trim()
            .rsplit('=')
            .next()
            .unwrap()
            .replace(':', "")
            .to_lowercase()
    };
    gateway_is_refused(&env, "takeover-2023-foreign", |e| {
        e["kind"] == "handshake"
            && e["reason"] == "foreign-ca"
            && e["fingerprint"] == gateway_fp.as_str()
    });
}
