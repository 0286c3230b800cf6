//! Real boots: a real `bootgate serve`, a real image from `bootgate image
//! build`, booted by `bootgate try` in QEMU under the firmware each platform
//! has in the field (OVMF, AAVMF, U-Boot), with trixie's stock iPXE.
//!
//! Needs the system packages and fetched assets that `scripts/test` installs;
//! a missing piece fails the test with a message naming it. Console and server
//! logs are kept under `target/e2e-logs/` for inspection after a failure.

mod support;

use std::path::{Path, PathBuf};
use std::process::Output;

use support::*;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn cache() -> PathBuf {
    std::env::var_os("BOOTGATE_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join(".cache"))
}

fn test_asset(name: &str) -> PathBuf {
    let path = cache().join("test-assets").join(name);
    assert!(
        path.is_file(),
        "{} is missing: run scripts/fetch-assets (scripts/test does)",
        path.display()
    );
    path
}

fn logs_dir() -> PathBuf {
    let dir = repo().join("target/e2e-logs");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A busybox initramfs whose /init prints the kernel command line after a
/// marker, then powers off.
fn initramfs(arch: &str, out: &Path) {
    let busybox = std::fs::read(test_asset(&format!("busybox-{arch}"))).unwrap();
    let init = b"#!/bin/busybox sh\n\
        /bin/busybox mount -t proc proc /proc\n\
        /bin/busybox echo \"E2E-INIT:$(/bin/busybox cat /proc/cmdline)\"\n\
        /bin/busybox poweroff -f\n";
    use cpio::newc::Builder;
    let entries: Vec<(Builder, std::io::Cursor<Vec<u8>>)> = vec![
        (
            Builder::new("bin").mode(0o040755).nlink(2),
            Default::default(),
        ),
        (
            Builder::new("dev").mode(0o040755).nlink(2),
            Default::default(),
        ),
        (
            Builder::new("proc").mode(0o040755).nlink(2),
            Default::default(),
        ),
        (
            Builder::new("dev/console")
                .mode(0o020600)
                .rdev_major(5)
                .rdev_minor(1),
            Default::default(),
        ),
        (
            Builder::new("bin/busybox").mode(0o100755),
            std::io::Cursor::new(busybox),
        ),
        (
            Builder::new("init").mode(0o100755),
            std::io::Cursor::new(init.to_vec()),
        ),
    ];
    let file = std::fs::File::create(out).unwrap();
    cpio::write_cpio(entries.into_iter(), file).unwrap();
}

/// A data dir the guest reaches at 10.0.2.2 (QEMU's address for the host).
fn qemu_env() -> Env {
    Env::with_names(&["10.0.2.2", "127.0.0.1", "localhost"], &[])
}

fn build_image(env: &Env, machine: &str, platform: &str) -> PathBuf {
    let image = env.tmp.path().join(format!("{machine}.img"));
    let out = env
        .command(&[
            "image",
            "build",
            "--machine",
            machine,
            "--platform",
            platform,
            "--output",
            image.to_str().unwrap(),
        ])
        .env("BOOTGATE_ASSETS", cache().join("assets"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "image build failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    image
}

fn try_boot(env: &Env, name: &str, image: &Path, platform: &str, extra: &[&str]) -> Output {
    let log = logs_dir().join(format!("{name}.console.log"));
    let mut args = vec![
        "try",
        image.to_str().unwrap(),
        "--platform",
        platform,
        "--quiet",
        "--timeout",
        "420",
        "--log",
        log.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    env.command(&args)
        .env("BOOTGATE_ASSETS", cache().join("assets"))
        .output()
        .unwrap()
}

/// The machine's latest boot in the boot history, once `done` holds for it.
fn last_boot(
    env: &Env,
    name: &str,
    done: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let mut boot = serde_json::Value::Null;
    wait_until(
        "the boot history",
        std::time::Duration::from_secs(10),
        || {
            let shown = env.ok(&["machine", "show", name, "--json", "--boots", "1"]);
            let shown: serde_json::Value = serde_json::from_str(&shown).unwrap();
            boot = shown["boots"][0].clone();
            done(&boot)
        },
    );
    boot
}

fn keep_server_log(name: &str, server: &Server) {
    std::fs::write(
        logs_dir().join(format!("{name}.server.log")),
        server.log_text(),
    )
    .unwrap();
}

/// Enrolls a machine whose script boots the test kernel with a command-line
/// value only this machine's script has.
fn kernel_boot(name: &str, platform: &str, arch: &str, kernel: &str, console: &str) {
    let env = qemu_env();
    let fp = env.add_machine(name);
    let files = env.files(&fp);
    std::fs::copy(test_asset(kernel), files.join("vmlinuz")).unwrap();
    initramfs(arch, &files.join("initrd.img"));
    std::fs::write(
        files.join("vars.toml"),
        "token = \"t0k3n-for-this-machine\"\n",
    )
    .unwrap();
    std::fs::write(
        files.join("boot.ipxe"),
        format!(
            "#!ipxe\n\
             kernel /files/vmlinuz initrd=initrd.img console={console} panic=-1 \
             e2e.machine=${{machine_name}} e2e.token=${{token}}\n\
             initrd --name initrd.img /files/initrd.img\n\
             boot\n"
        ),
    )
    .unwrap();
    let image = build_image(&env, name, platform);
    let server = env.serve();
    // Only init prints this: the kernel's own echo of its command line has
    // no "E2E-INIT:" before it.
    let expect = format!(
        "E2E-INIT:vmlinuz initrd=initrd.img console={console} panic=-1 \
         e2e.machine={name} e2e.token=t0k3n-for-this-machine"
    );
    let out = try_boot(&env, name, &image, platform, &["--expect", &expect]);
    keep_server_log(name, &server);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{name}: {stderr}");
    let console = std::fs::read_to_string(logs_dir().join(format!("{name}.console.log"))).unwrap();
    assert!(console.contains(&expect), "init's marker missing");
    let log = server.log_text();
    for path in ["/boot/ipxe", "/files/vmlinuz", "/files/initrd.img"] {
        assert!(
            log.lines().any(|l| l.contains(&format!("path=\"{path}\""))
                && l.contains("status=200")
                && l.contains(&format!("machine=\"{name}\""))),
            "{path} not served to {name}:\n{log}"
        );
    }
    // The boot history saw real iPXE's boot: script, kernel and initrd, with
    // the chain URL's parameters.
    let boot = last_boot(&env, name, |b| b["boot"]["files"].as_u64() >= Some(2));
    assert_eq!(boot["boot"]["outcome"], "files-served", "{boot:#}");
    assert_eq!(boot["boot"]["platform"], "efi", "{boot:#}");
    assert_eq!(boot["boot"]["buildarch"], arch_of(platform), "{boot:#}");
    assert_eq!(boot["boot"]["mac"], "52:54:00:12:34:56", "{boot:#}");
}

/// iPXE's `${buildarch}` on each EFI platform.
fn arch_of(platform: &str) -> &'static str {
    match platform {
        "x86_64-efi" => "x86_64",
        "arm64-efi" => "arm64",
        other => panic!("no build architecture known for {other}"),
    }
}

#[test]
fn x86_64_efi_boots_to_the_initramfs() {
    kernel_boot("e2e-x86", "x86_64-efi", "amd64", "vmlinuz-amd64", "ttyS0");
}

#[test]
fn arm64_efi_boots_to_the_initramfs() {
    kernel_boot(
        "e2e-arm64",
        "arm64-efi",
        "arm64",
        "vmlinuz-arm64",
        "ttyAMA0",
    );
}

#[test]
fn rpi4_image_boots_its_script_under_uboot() {
    let name = "e2e-rpi4";
    let env = qemu_env();
    let fp = env.add_machine(name);
    let files = env.files(&fp);
    std::fs::write(files.join("note.txt"), vec![b'x'; 64 * 1024]).unwrap();
    std::fs::write(
        files.join("boot.ipxe"),
        "#!ipxe\n\
         imgfetch --name note /files/note.txt && echo E2E-RPI ${machine_name} fetched-note || echo E2E-RPI-FETCH-FAILED\n\
         sleep 600\n",
    )
    .unwrap();
    let image = build_image(&env, name, "rpi4");
    let server = env.serve();
    let out = try_boot(
        &env,
        name,
        &image,
        "rpi4",
        &["--expect", &format!("E2E-RPI {name} fetched-note")],
    );
    keep_server_log(name, &server);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let log = server.log_text();
    assert!(
        log.lines()
            .any(|l| l.contains("path=\"/files/note.txt\"") && l.contains("status=200")),
        "{log}"
    );
}

#[test]
fn a_revoked_machine_never_reaches_the_kernel() {
    let name = "e2e-revoked";
    let env = qemu_env();
    let fp = env.add_machine(name);
    std::fs::write(
        env.files(&fp).join("boot.ipxe"),
        "#!ipxe\necho E2E-SHOULD-NOT-RUN\n",
    )
    .unwrap();
    let image = build_image(&env, name, "x86_64-efi");
    env.ok(&["machine", "revoke", name]);
    let server = env.serve();
    let out = try_boot(
        &env,
        name,
        &image,
        "x86_64-efi",
        &["--expect", "E2E-SHOULD-NOT-RUN"],
    );
    keep_server_log(name, &server);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("HTTP 403"), "{stderr}");
    let log = server.log_text();
    assert!(
        log.lines()
            .any(|l| l.contains(&format!("machine=\"{name}\"")) && l.contains("status=403")),
        "{log}"
    );
    let boot = last_boot(&env, name, |b| !b.is_null());
    assert_eq!(boot["boot"]["outcome"], "failed", "{boot:#}");
    assert_eq!(boot["boot"]["reason"], "revoked", "{boot:#}");
}

#[test]
fn without_the_ca_variable_tls_fails() {
    let name = "e2e-noca";
    let env = qemu_env();
    env.add_machine(name);
    let image = build_image(&env, name, "x86_64-efi");
    let server = env.serve();
    let out = try_boot(&env, name, &image, "x86_64-efi", &["--no-ca"]);
    keep_server_log(name, &server);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("TLS refused"), "{stderr}");
    assert!(
        !server.log_text().contains("/boot/ipxe"),
        "no request may get through"
    );
    // What the server saw: iPXE sends its hello, then hangs up without an
    // alert when it does not trust the server certificate.
    let mut events = String::new();
    let mut refused: Vec<serde_json::Value> = Vec::new();
    wait_until(
        "a failed handshake in the history",
        std::time::Duration::from_secs(10),
        || {
            events = env.ok(&["events", "--json"]);
            refused = events
                .lines()
                .map(|l| serde_json::from_str(l).unwrap())
                .filter(|e: &serde_json::Value| e["kind"] == "handshake")
                .collect();
            !refused.is_empty()
        },
    );
    assert!(
        !refused.is_empty(),
        "no failed handshake recorded:\n{events}"
    );
    assert!(
        refused.iter().all(|e| e["reason"] == "client-hung-up"),
        "{events}"
    );
}
