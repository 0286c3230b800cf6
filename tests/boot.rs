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
use std::time::Duration;

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

/// A busybox initramfs whose /init prints the `e2e.*` kernel parameters
/// after a marker, then powers off.
fn initramfs(arch: &str, out: &Path) {
    let busybox = std::fs::read(test_asset(&format!("busybox-{arch}"))).unwrap();
    let init = b"#!/bin/busybox sh\n\
        /bin/busybox mount -t proc proc /proc\n\
        set -- $(/bin/busybox cat /proc/cmdline)\n\
        m=\n\
        for a in \"$@\"; do case \"$a\" in e2e.*) m=\"$m $a\";; esac; done\n\
        /bin/busybox echo \"E2E-INIT:$m\"\n\
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
    let out = env
        .command(&args)
        .env("BOOTGATE_ASSETS", cache().join("assets"))
        .output()
        .unwrap();
    // What `bootgate try` said (verdict and duration), beside the console.
    std::fs::write(logs_dir().join(format!("{name}.try.log")), &out.stderr).unwrap();
    out
}

/// The machine's latest boot in the boot history, once `done` holds for it.
fn last_boot(
    env: &Env,
    name: &str,
    done: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let mut boot = serde_json::Value::Null;
    wait_until("the boot history", Duration::from_secs(10), || {
        let shown = env.ok(&["machine", "show", name, "--json", "--boots", "1"]);
        let shown: serde_json::Value = serde_json::from_str(&shown).unwrap();
        boot = shown["boots"][0].clone();
        done(&boot)
    });
    boot
}

fn keep_server_log(name: &str, server: &Server) {
    std::fs::write(
        logs_dir().join(format!("{name}.server.log")),
        server.log_text(),
    )
    .unwrap();
}

/// How the test machine gets its script, kernel and initramfs.
enum Setup {
    /// The original layout: everything in the machine's own folder.
    OwnFolder,
    /// A boot2container profile generated by `profile create --b2c`, with
    /// the kernel and initramfs as shared assets; the machine's own folder
    /// holds only its `vars.toml`.
    SharedProfile,
}

/// One boot of the test kernel and initramfs.
struct KernelBoot {
    name: &'static str,
    platform: &'static str,
    arch: &'static str,
    kernel: &'static str,
    console: &'static str,
    setup: Setup,
    /// U-Boot to run instead of the assets' one (Pi images under QEMU).
    firmware: Option<PathBuf>,
    /// A device tree for the profile's `--dtb` (shared profiles only), and
    /// the model it names, which the kernel must report.
    dtb: Option<(PathBuf, &'static str)>,
}

impl KernelBoot {
    fn new(
        name: &'static str,
        platform: &'static str,
        kernel: &'static str,
        console: &'static str,
        setup: Setup,
    ) -> Self {
        let arch = if kernel.ends_with("amd64") {
            "amd64"
        } else {
            "arm64"
        };
        Self {
            name,
            platform,
            arch,
            kernel,
            console,
            setup,
            firmware: None,
            dtb: None,
        }
    }
}

/// Boots the test kernel and initramfs; /init must print a value that only
/// this machine's variables put on the kernel command line. Returns the
/// console log.
fn kernel_boot(run: KernelBoot) -> String {
    let KernelBoot {
        name,
        platform,
        arch,
        kernel,
        console,
        setup,
        ..
    } = run;
    let env = qemu_env();
    let token = format!("t0k3n-of-{name}");
    let initrd = env.tmp.path().join("initrd.img");
    initramfs(arch, &initrd);
    let mut served = vec!["/boot/ipxe", "/files/vmlinuz", "/files/initrd.img"];
    let fp = match setup {
        Setup::OwnFolder => {
            assert!(run.dtb.is_none(), "a device tree needs a shared profile");
            let fp = env.add_machine(name);
            let files = env.files(&fp);
            std::fs::copy(test_asset(kernel), files.join("vmlinuz")).unwrap();
            std::fs::copy(&initrd, files.join("initrd.img")).unwrap();
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
            fp
        }
        Setup::SharedProfile => {
            env.ok(&[
                "asset",
                "add",
                test_asset(kernel).to_str().unwrap(),
                "--name",
                "vmlinuz",
            ]);
            env.ok(&[
                "asset",
                "add",
                initrd.to_str().unwrap(),
                "--name",
                "initrd.img",
            ]);
            let cmdline = format!(
                "console={console} panic=-1 e2e.machine=${{machine_name}} e2e.token=${{token}}"
            );
            let mut args = vec![
                "profile",
                "create",
                "gateways",
                "--b2c",
                "--kernel",
                "vmlinuz",
                "--initramfs",
                "initrd.img",
                "--run",
                "-ti registry.example.com/gateway:latest",
                "--cmdline",
                cmdline.as_str(),
                "--var",
                "token=the-profile-default",
            ];
            if let Some((dtb, _)) = &run.dtb {
                env.ok(&[
                    "asset",
                    "add",
                    dtb.to_str().unwrap(),
                    "--name",
                    "e2e-board.dtb",
                ]);
                args.extend(["--dtb", "e2e-board.dtb"]);
                served.push("/files/e2e-board.dtb");
            }
            env.ok(&args);
            let fp = env
                .ok(&["machine", "add", name, "--profile", "gateways"])
                .trim()
                .to_string();
            assert!(!env.files(&fp).join("boot.ipxe").exists());
            std::fs::create_dir_all(env.files(&fp)).unwrap();
            fp
        }
    };
    std::fs::write(
        env.files(&fp).join("vars.toml"),
        format!("token = \"{token}\"\n"),
    )
    .unwrap();
    let image = build_image(&env, name, platform);
    let server = env.serve();
    // Only init prints this marker: the kernel's own echo of its command line
    // has no "E2E-INIT:" before it.
    let expect = format!("E2E-INIT: e2e.machine={name} e2e.token={token}");
    let mut extra = vec!["--expect", expect.as_str()];
    if let Some(firmware) = &run.firmware {
        extra.extend(["--firmware", firmware.to_str().unwrap()]);
    }
    let out = try_boot(&env, name, &image, platform, &extra);
    keep_server_log(name, &server);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{name}: {stderr}");
    let console = std::fs::read_to_string(logs_dir().join(format!("{name}.console.log"))).unwrap();
    assert!(console.contains(&expect), "init's marker missing");
    if let Some((_, model)) = &run.dtb {
        // The kernel names the device tree it runs on: bootgate's, not the
        // firmware's.
        assert!(
            console.contains(&format!("Machine model: {model}")),
            "the kernel did not get the profile's device tree"
        );
    }
    let log = server.log_text();
    for path in served {
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
    console
}

/// iPXE's `${buildarch}` on each EFI platform.
fn arch_of(platform: &str) -> &'static str {
    match platform {
        "x86_64-efi" => "x86_64",
        "arm64-efi" | "rpi3" | "rpi4" => "arm64",
        other => panic!("no build architecture known for {other}"),
    }
}

#[test]
fn x86_64_efi_boots_to_the_initramfs() {
    kernel_boot(KernelBoot::new(
        "e2e-x86",
        "x86_64-efi",
        "vmlinuz-amd64",
        "ttyS0",
        Setup::OwnFolder,
    ));
}

#[test]
fn arm64_efi_boots_a_shared_boot2container_profile() {
    kernel_boot(KernelBoot::new(
        "e2e-arm64",
        "arm64-efi",
        "vmlinuz-arm64",
        "ttyAMA0",
        Setup::SharedProfile,
    ));
}

/// Where scripts that build heavy test dependencies keep them.
fn build_cache() -> PathBuf {
    std::env::var_os("BOOTGATE_CACHE")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/bootgate")))
        .expect("neither BOOTGATE_CACHE nor HOME is set")
}

/// U-Boot `qemu_arm64` with the virtio-net receive fix, built from the same
/// Debian source version as the stock one (docs/qemu.md).
fn fixed_uboot() -> PathBuf {
    let stamp = cache().join("versions");
    let versions = std::fs::read_to_string(&stamp).unwrap_or_else(|e| {
        panic!(
            "{}: {e}: run scripts/fetch-assets (scripts/test does)",
            stamp.display()
        )
    });
    let version = versions
        .lines()
        .find_map(|l| l.strip_prefix("u-boot-qemu all "))
        .unwrap_or_else(|| panic!("no u-boot-qemu in {}", stamp.display()));
    let path = build_cache()
        .join(format!("u-boot-qemu_arm64-{version}-virtio-kick"))
        .join("u-boot.bin");
    assert!(
        path.is_file(),
        "{} is missing: run scripts/build-uboot-virtio-fix (scripts/test does)",
        path.display()
    );
    path
}

/// The device tree of the `virt` machine `bootgate try` starts (same memory,
/// CPU and firmware), as QEMU dumps it, with its root `model` changed to
/// `model`. The firmware matters: with one loaded, QEMU swaps the PL061 GPIO
/// for an ACPI event device, and a kernel given the tree of a machine without
/// firmware dies probing a PL061 that is not there.
fn virt_dtb_with_model(out: &Path, firmware: &Path, model: &str) {
    let dumped = std::process::Command::new("qemu-system-aarch64")
        .arg("-machine")
        .arg(format!("virt,dumpdtb={}", out.display()))
        .args(["-cpu", "max", "-m", "1024", "-smp", "1", "-nodefaults"])
        .arg("-bios")
        .arg(firmware)
        .args(["-display", "none"])
        .stdin(std::process::Stdio::null())
        .output()
        .expect("qemu-system-aarch64 (install qemu-system-arm)");
    assert!(
        out.is_file(),
        "QEMU dumped no device tree: {}",
        String::from_utf8_lossy(&dumped.stderr)
    );
    let mut dtb = std::fs::read(out).unwrap();
    set_root_model(&mut dtb, model);
    std::fs::write(out, dtb).unwrap();
}

/// Rewrites the root node's `model` property of a flattened device tree in
/// place (the new value must fit in the old one's length).
fn set_root_model(dtb: &mut [u8], model: &str) {
    let be32 = |d: &[u8], at: usize| u32::from_be_bytes(d[at..at + 4].try_into().unwrap());
    assert_eq!(be32(dtb, 0), 0xd00d_feed, "not a flattened device tree");
    let structs = be32(dtb, 8) as usize;
    let strings = be32(dtb, 12) as usize;
    let align = |n: usize| (n + 3) & !3;
    let (mut at, mut depth) = (structs, 0);
    loop {
        let token = be32(dtb, at);
        at += 4;
        match token {
            1 => {
                let end = at + dtb[at..].iter().position(|&b| b == 0).unwrap();
                at = align(end + 1);
                depth += 1;
            }
            2 => depth -= 1,
            3 => {
                let len = be32(dtb, at) as usize;
                let name_at = strings + be32(dtb, at + 4) as usize;
                let value = at + 8;
                let name_end = name_at + dtb[name_at..].iter().position(|&b| b == 0).unwrap();
                if depth == 1 && &dtb[name_at..name_end] == b"model" {
                    assert!(model.len() < len, "model {model:?} longer than the old one");
                    dtb[value..value + len].fill(0);
                    dtb[value..value + model.len()].copy_from_slice(model.as_bytes());
                    return;
                }
                at = align(value + len);
            }
            4 => {}
            _ => panic!("no model property in the device tree's root node"),
        }
    }
}

#[test]
fn rpi4_image_boots_the_kernel_under_fixed_uboot() {
    let mut run = KernelBoot::new(
        "e2e-rpi4-kernel",
        "rpi4",
        "vmlinuz-arm64",
        "ttyAMA0",
        Setup::OwnFolder,
    );
    run.firmware = Some(fixed_uboot());
    let console = kernel_boot(run);
    assert!(
        console.contains("-virtio-kick"),
        "not the fixed U-Boot's banner"
    );
    // Without a profile device tree the kernel runs on the firmware's.
    assert!(console.contains("Machine model: linux,dummy-virt"));
}

#[test]
fn rpi3_profile_device_tree_reaches_the_kernel_under_fixed_uboot() {
    let scratch = tempfile::tempdir().unwrap();
    let dtb = scratch.path().join("virt.dtb");
    let firmware = fixed_uboot();
    virt_dtb_with_model(&dtb, &firmware, "bootgate-e2e-dtb");
    let mut run = KernelBoot::new(
        "e2e-rpi3-dtb",
        "rpi3",
        "vmlinuz-arm64",
        "ttyAMA0",
        Setup::SharedProfile,
    );
    run.firmware = Some(firmware);
    run.dtb = Some((dtb, "bootgate-e2e-dtb"));
    let console = kernel_boot(run);
    assert!(console.contains("-virtio-kick"));
}

#[test]
fn rpi3_image_runs_the_pis_own_uboot_on_raspi3b() {
    let name = "e2e-raspi3b";
    let env = qemu_env();
    env.add_machine(name);
    let image = build_image(&env, name, "rpi3");
    let out = try_boot(&env, name, &image, "rpi3", &["--board", "raspi3b"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("as far as raspi3b allows")
            && stderr.contains("tried DHCP")
            && stderr.contains("cannot be reached and was not tested"),
        "{stderr}"
    );
    let console = std::fs::read_to_string(logs_dir().join(format!("{name}.console.log"))).unwrap();
    // Each stage, in order: the Pi's U-Boot, the image's boot.scr from the SD
    // card, the CA variable, iPXE, its autoexec.ipxe, the DHCP attempt.
    let stages = [
        "U-Boot 2025.01",
        "RPI 3 Model B",
        "Booting bootflow 'mmc@7e202000.bootdev.part_1' with script",
        "bootgate: boot partition mmc 0:1",
        "bootgate: CA installed in TlsCaCertificate",
        "bootgate: starting iPXE",
        "iPXE initialising devices",
        "file:/autoexec.ipxe... ok",
        "bootgate: machine e2e-raspi3b, boot server https://10.0.2.2:",
        "bootgate: configuring the network (DHCP)",
        "bootgate: DHCP failed",
    ];
    let mut from = 0;
    for stage in stages {
        let found = console[from..]
            .find(stage)
            .unwrap_or_else(|| panic!("{stage:?} missing (after byte {from}) in the console"));
        from += found + stage.len();
    }
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
        Duration::from_secs(10),
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

/// The emulator's process id: the one child of `bootgate try`.
fn emulator_of(try_pid: u32) -> Option<u32> {
    let tasks = std::fs::read_dir(format!("/proc/{try_pid}/task")).ok()?;
    tasks
        .flatten()
        .filter_map(|t| std::fs::read_to_string(t.path().join("children")).ok())
        .flat_map(|c| {
            c.split_whitespace()
                .filter_map(|p| p.parse().ok())
                .collect::<Vec<u32>>()
        })
        .next()
}

#[test]
fn killing_bootgate_try_stops_its_emulator() {
    let env = qemu_env();
    env.add_machine("gw-kill");
    let image = build_image(&env, "gw-kill", "x86_64-efi");
    let mut child = env
        .command(&[
            "try",
            image.to_str().unwrap(),
            "--platform",
            "x86_64-efi",
            "--quiet",
            "--timeout",
            "300",
        ])
        .env("BOOTGATE_ASSETS", cache().join("assets"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut emulator = None;
    wait_until("bootgate try starts QEMU", Duration::from_secs(60), || {
        emulator = emulator_of(child.id());
        emulator.is_some()
    });
    let emulator = emulator.unwrap();
    // SIGKILL: no destructor of `bootgate try` runs.
    child.kill().unwrap();
    child.wait().unwrap();
    wait_until(
        "the emulator goes with bootgate try",
        Duration::from_secs(30),
        || {
            // Gone, or a zombie waiting for its new parent to reap it.
            std::fs::read_to_string(format!("/proc/{emulator}/stat"))
                .map(|s| s.split(") ").nth(1).is_some_and(|r| r.starts_with('Z')))
                .unwrap_or(true)
        },
    );
}
