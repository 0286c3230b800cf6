//! Profiles, shared assets and boot2container scripts, driven end to end: the
//! real `bootgate` binary makes them, a running server serves them to real
//! TLS clients holding machines' certificates.

use std::io::{Seek, SeekFrom, Write};

use crate::support::*;
use sha2::{Digest, Sha256};

/// The seed's Raspberry Pi gateway script, byte for byte.
const SEED_SCRIPT: &str = "#!ipxe\n\
\n\
kernel /files/linux-arm64-6.5.1 initrd=b2c b2c.run=\"-ti registry.freedesktop.org/mupuf/valve-infra/valve-infra-container:aarch64\" b2c.ntp_peer=auto b2c.cache_device=/dev/mmcblk0p2\n\
initrd --name b2c /files/initramfs.linux_arm64.cpio.xz\n\
boot\n";

const SEED_IMAGE: &str =
    "-ti registry.freedesktop.org/mupuf/valve-infra/valve-infra-container:aarch64";

fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u32).wrapping_mul(2_654_435_761).to_le_bytes()[3] ^ seed)
        .collect()
}

/// Extra helpers for this file's tests.
trait EnvExt {
    fn add_with_profile(&self, machine: &str, profile: &str) -> String;
    fn blobs(&self) -> Vec<String>;
}

impl EnvExt for Env {
    /// Enrolls a machine on a profile; returns its fingerprint.
    fn add_with_profile(&self, machine: &str, profile: &str) -> String {
        let out = self.ok(&["machine", "add", machine, "--profile", profile]);
        out.trim().to_string()
    }

    /// What the blob folder holds, sorted.
    fn blobs(&self) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(self.path("assets/sha256"))
            .map(|d| {
                d.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        names
    }
}

#[test]
fn own_folder_then_profile_then_assets() {
    let env = Env::new();
    let kernel = pattern(300_000, 1);
    let hash = env.add_asset("kernel", &kernel);
    env.add_asset("shared.txt", b"shared by all");
    env.add_script_profile(
        "gw",
        "#!ipxe\nkernel /files/kernel role=$role level=$level name=$machine_name\nboot\n",
        &["--var", "role=profile", "--var", "level=p"],
    );
    write(&env.path("profiles/gw/extra"), "profile file");
    write(&env.path("profiles/gw/secrets"), "token-for-$machine_name");

    // A machine on the profile gets no folder of its own.
    let fp_a = env.add_with_profile("a", "gw");
    assert!(!env.files(&fp_a).exists());
    // Another overrides a variable and a file in its own folder.
    let fp_b = env.add_with_profile("b", "gw");
    write(&env.files(&fp_b).join("vars.toml"), "role = \"own\"\n");
    write(&env.files(&fp_b).join("kernel"), "own kernel");
    // A classic machine: own boot.ipxe, no profile.
    env.add_machine_with_script("c", "#!ipxe\necho classic\n");

    let _server = env.serve();
    let client = env.client();
    let (a, b, c) = (env.identity("a"), env.identity("b"), env.identity("c"));
    let get = |path: &str, id: &Identity| client.get(path, Some(id)).unwrap();

    assert_eq!(
        get("/boot/ipxe", &a).text(),
        "#!ipxe\nkernel /files/kernel role=profile level=p name=a\nboot\n"
    );
    assert_eq!(
        get("/boot/ipxe", &b).text(),
        "#!ipxe\nkernel /files/kernel role=own level=p name=b\nboot\n"
    );
    assert_eq!(get("/boot/ipxe", &c).text(), "#!ipxe\necho classic\n");

    let asset = get("/files/kernel", &a);
    assert_eq!(asset.status, 200);
    assert_eq!(asset.body, kernel);
    assert_eq!(asset.header("etag"), Some(format!("\"{hash}\"").as_str()));
    assert_eq!(get("/files/kernel", &b).text(), "own kernel");
    assert_eq!(get("/files/extra", &a).text(), "profile file");
    assert_eq!(get("/files/extra", &c).status, 404, "not c's profile");
    // Shared assets are there for every machine, profile or not.
    assert_eq!(get("/files/shared.txt", &c).text(), "shared by all");
    assert_eq!(get("/files/missing", &a).status, 404);

    // Private files stay private in every folder; the profile's secrets
    // render for its machines through $secrets_url only.
    for path in ["/files/vars.toml", "/files/secrets"] {
        assert_eq!(get(path, &a).status, 404, "{path}");
        assert_eq!(get(path, &b).status, 404, "{path}");
    }

    // An own boot.ipxe takes over from the profile's.
    write(
        &env.files(&fp_b).join("boot.ipxe"),
        "#!ipxe\necho own $role $level\n",
    );
    assert_eq!(get("/boot/ipxe", &b).text(), "#!ipxe\necho own own p\n");
    // A profile without a script falls back to files/default/boot.ipxe.
    std::fs::remove_file(env.path("profiles/gw/boot.ipxe")).unwrap();
    assert_eq!(get("/boot/ipxe", &a).status, 404);
    write(
        &env.path("files/default/boot.ipxe"),
        "#!ipxe\necho default $machine_name\n",
    );
    assert_eq!(get("/boot/ipxe", &a).text(), "#!ipxe\necho default a\n");
    // ...but files/default/ files are only for machines with neither.
    write(&env.path("files/default/dflt"), "default file");
    assert_eq!(get("/files/dflt", &a).status, 404);
}

#[test]
fn each_folder_keeps_its_walls() {
    let env = Env::new();
    env.add_asset("kernel", b"asset kernel");
    env.add_script_profile("gw", "#!ipxe\n", &[]);
    env.add_script_profile("other", "#!ipxe\n", &[]);
    write(&env.path("profiles/other/private"), "other profile only");
    write(&env.path("outside.txt"), "outside");
    let profile = env.path("profiles/gw");
    std::os::unix::fs::symlink(env.path("outside.txt"), profile.join("escape")).unwrap();
    std::os::unix::fs::symlink("../other/private", profile.join("sideways")).unwrap();
    std::os::unix::fs::symlink("boot.ipxe", profile.join("alias")).unwrap();
    env.add_with_profile("a", "gw");
    let _server = env.serve();
    let client = env.client();
    let id = env.identity("a");

    assert_eq!(
        client.get("/files/alias", Some(&id)).unwrap().text(),
        "#!ipxe\n"
    );
    let hostile = [
        "/files/escape",
        "/files/sideways",
        "/files/../other/private",
        "/files/%2e%2e/other/private",
        "/files/..%2fother%2fprivate",
        "/files/../../outside.txt",
        "/files/../../assets/index.json",
        "/files/%2e%2e%2f%2e%2e%2fassets%2findex.json",
        "/files/kernel/..",
        "/files/index.json",
    ];
    for path in hostile {
        let response = client.get(path, Some(&id)).unwrap();
        assert!(
            matches!(response.status, 400 | 404),
            "{path} answered {} {}",
            response.status,
            response.text()
        );
        let text = response.text();
        assert!(!text.contains("other profile only") && !text.contains("outside"));
    }
    // An asset name never reaches another blob, even by its hash.
    let hash = sha256_hex(b"asset kernel");
    assert_eq!(
        client
            .get(&format!("/files/{hash}"), Some(&id))
            .unwrap()
            .status,
        404
    );
}

#[test]
fn fifty_machines_share_one_kernel() {
    let env = Env::new();
    let kernel = pattern(2 << 20, 7);
    let initramfs = pattern(512 << 10, 9);
    let kernel_hash = env.add_asset("vmlinuz", &kernel);
    env.add_asset("initramfs.cpio.xz", &initramfs);
    let script = env.ok(&[
        "profile",
        "create",
        "farm",
        "--b2c",
        "--kernel",
        "vmlinuz",
        "--initramfs",
        "initramfs.cpio.xz",
        "--run",
        "-ti registry.example.com/gateway:latest",
        "--cache-device",
        "auto",
        "--b2c",
        "hostname=$machine_name",
    ]);
    let names: Vec<String> = (0..50).map(|i| format!("gw-{i:02}")).collect();
    for name in &names {
        env.add_with_profile(name, "farm");
    }
    // One copy of each asset, no per-machine folders.
    assert_eq!(env.blobs().len(), 2, "{:?}", env.blobs());
    assert!(
        !env.path("files").exists() || std::fs::read_dir(env.path("files")).unwrap().count() == 0
    );
    let listed = env.ok(&["profile", "list"]);
    assert!(
        listed.contains("farm") && listed.contains(" 50 "),
        "{listed}"
    );

    let _server = env.serve();
    let client = env.client();
    let etag = format!("\"{kernel_hash}\"");
    for name in &names {
        let id = env.identity(name);
        let rendered = client.get("/boot/ipxe", Some(&id)).unwrap().text();
        assert_eq!(rendered, script.replace("$machine_name", name));
        let got = client.get("/files/vmlinuz", Some(&id)).unwrap();
        assert_eq!(got.status, 200);
        assert_eq!(sha256_hex(&got.body), kernel_hash, "{name}");
        assert_eq!(got.header("etag"), Some(etag.as_str()));
    }
    // The content hash is a validator any machine can revalidate with, and
    // ranges work as for any file.
    let id = env.identity("gw-49");
    let cached = client.get_with("/files/vmlinuz", &id, &[("if-none-match", &etag)]);
    assert_eq!(cached.status, 304);
    let part = client.get_with(
        "/files/vmlinuz",
        &id,
        &[("range", "bytes=100-199"), ("if-range", &etag)],
    );
    assert_eq!(part.status, 206);
    assert_eq!(part.body, &kernel[100..200]);
    let head = client
        .request("HEAD", "/files/vmlinuz", Some(&id), &[])
        .unwrap();
    assert_eq!(
        head.header("content-length"),
        Some((2u64 << 20).to_string().as_str())
    );
}

#[test]
fn b2c_profiles_render_the_seed_script() {
    let env = Env::new();
    env.add_asset("linux-arm64-6.5.1", b"arm64 kernel");
    env.add_asset("initramfs.linux_arm64.cpio.xz", b"b2c initramfs");
    let out = env.ok(&[
        "profile",
        "create",
        "rpi-gw",
        "--b2c",
        "--kernel",
        "linux-arm64-6.5.1",
        "--initramfs",
        "initramfs.linux_arm64.cpio.xz",
        "--run",
        SEED_IMAGE,
        "--ntp-peer",
        "auto",
        "--cache-device",
        "/dev/mmcblk0p2",
    ]);
    assert_eq!(out, SEED_SCRIPT);
    assert_eq!(
        std::fs::read_to_string(env.path("profiles/rpi-gw/boot.ipxe")).unwrap(),
        SEED_SCRIPT
    );

    // The same with a device tree and credentials kept out of the script.
    env.add_asset("bcm2711-rpi-4-b.dtb", b"dtb");
    env.ok(&[
        "profile",
        "create",
        "rpi4",
        "--b2c",
        "--kernel",
        "linux-arm64-6.5.1",
        "--initramfs",
        "initramfs.linux_arm64.cpio.xz",
        "--dtb",
        "bcm2711-rpi-4-b.dtb",
        "--run",
        SEED_IMAGE,
        "--ntp-peer",
        "auto",
        "--cache-device",
        "auto",
        "--secrets-args",
        "--cmdline",
        "console=ttyAMA0,115200",
    ]);
    let fp = env.add_with_profile("pi", "rpi4");
    write(
        &env.files(&fp).join("secrets"),
        "b2c.minio=\"s3,https://s3,$machine_name,key\"\n",
    );
    env.add_with_profile("seed", "rpi-gw");

    let _server = env.serve();
    let client = env.client();
    assert_eq!(
        client
            .get("/boot/ipxe", Some(&env.identity("seed")))
            .unwrap()
            .text(),
        SEED_SCRIPT
    );
    let script = client
        .get("/boot/ipxe", Some(&env.identity("pi")))
        .unwrap()
        .text();
    let prefix = format!("https://localhost:{}/secrets/", env.port);
    let expected_start = format!(
        "#!ipxe\n\nkernel /files/linux-arm64-6.5.1 initrd=b2c b2c.run=\"{SEED_IMAGE}\" \
         b2c.ntp_peer=auto b2c.cache_device=auto b2c.extra_args_url={prefix}"
    );
    assert!(script.starts_with(&expected_start), "{script}");
    assert!(script.ends_with(
        " console=ttyAMA0,115200\n\
         initrd --name b2c /files/initramfs.linux_arm64.cpio.xz\n\
         fdt /files/bcm2711-rpi-4-b.dtb\n\
         boot\n"
    ));
    let url = script.split("extra_args_url=").nth(1).unwrap();
    let path = url
        .split(' ')
        .next()
        .unwrap()
        .strip_prefix("https://localhost:")
        .unwrap();
    let path = &path[path.find('/').unwrap()..];
    let secrets = client.get(path, None).unwrap();
    assert_eq!(secrets.text(), "b2c.minio=\"s3,https://s3,pi,key\"\n");
    assert_eq!(
        client
            .get("/files/bcm2711-rpi-4-b.dtb", Some(&env.identity("pi")))
            .unwrap()
            .text(),
        "dtb"
    );
}

#[test]
fn b2c_values_are_quoted_or_refused() {
    let env = Env::new();
    env.add_asset("k", b"k");
    env.add_asset("i", b"i");
    let create = |name: &str, extra: &[&str]| {
        let mut args = vec![
            "profile",
            "create",
            name,
            "--b2c",
            "--kernel",
            "k",
            "--initramfs",
            "i",
        ];
        args.extend_from_slice(extra);
        env.run(&args)
    };
    let refused = |extra: &[&str], needle: &str| {
        let out = create("bad", extra);
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(!out.status.success(), "{extra:?} was accepted");
        assert!(err.contains(needle), "{extra:?}: {err}");
    };
    refused(&["--run", "-e X=\"y\" img"], "double quote");
    refused(&["--run", "img\nchain http://evil/"], "control character");
    refused(&["--run", "img\x1b[2J"], "control character");
    refused(&["--run", "img #comment"], "start of a comment");
    refused(&["--run", "img || reboot"], "end of the command");
    refused(
        &["--run", "img", "--b2c", "bad-name=1"],
        "invalid b2c parameter",
    );
    refused(&["--run", "img", "--b2c", "swap=1G\n"], "control character");
    refused(
        &["--run", "img", "--cache-device", "sda"],
        "invalid cache device",
    );
    refused(&["--run", "img", "--ntp-peer", "a b"], "invalid NTP peer");
    refused(&["--run", "img", "--cmdline", "x=\"a"], "unbalanced");
    refused(&[], "nothing to run");
    refused(
        &[
            "--run",
            "img",
            "--secrets-args",
            "--b2c",
            "extra_args_url=x",
        ],
        "given twice",
    );
    refused(
        &["--run", "img", "--dtb", "nope"],
        "bootgate asset add FILE --name nope",
    );
    let err = env.fails(&[
        "profile", "create", "bad", "--b2c", "--kernel", "k", "--run", "x",
    ]);
    assert!(err.contains("--initramfs <ASSET>"), "{err}");
    let err = env.fails(&["profile", "create", "bad", "--kernel", "k", "--run", "x"]);
    assert!(err.contains("--b2c"), "{err}");
    assert!(!env.path("profiles/bad").exists());

    let out = create(
        "ok",
        &[
            "--run",
            "--rm -v /cache:/cache img:1",
            "--run",
            "sh -c 'echo $$HOME'",
            "--b2c",
            "b2c.hostname=$machine_name",
            "--b2c",
            "swapp=1G",
            "--b2c",
            "pipefail",
            "--b2c",
            "volume=job",
            "--b2c",
            "iface=",
            "--var",
            "registry=r.example",
            "--cmdline",
            "-- tag=$registry other=$nope",
        ],
    );
    assert_succeeded("profile create", &out);
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        "#!ipxe\n\nkernel /files/k initrd=b2c b2c.run=\"--rm -v /cache:/cache img:1\" \
         b2c.run=\"sh -c 'echo $$HOME'\" b2c.hostname=$machine_name b2c.swapp=1G \
         b2c.pipefail b2c.volume=job b2c.iface=\"\" -- tag=$registry other=$nope\n\
         initrd --name b2c /files/i\nboot\n"
    );
    let warnings = String::from_utf8(out.stderr).unwrap();
    assert!(
        warnings.contains("warning: b2c.swapp is not a boot2container parameter"),
        "{warnings}"
    );
    assert!(
        warnings.contains("warning: $nope is not a bootgate variable"),
        "{warnings}"
    );
    assert!(!warnings.contains("$registry is not"), "{warnings}");
    assert!(!warnings.contains("$machine_name is not"), "{warnings}");

    // What a machine receives: variables filled in, $$ turned into $.
    env.add_with_profile("m", "ok");
    let _server = env.serve();
    let text = env
        .client()
        .get("/boot/ipxe", Some(&env.identity("m")))
        .unwrap()
        .text();
    assert!(
        text.contains("b2c.run=\"sh -c 'echo $HOME'\" b2c.hostname=m "),
        "{text}"
    );
    assert!(text.contains("-- tag=r.example other=$nope\n"), "{text}");

    let again = [
        "profile",
        "create",
        "ok",
        "--b2c",
        "--kernel",
        "k",
        "--initramfs",
        "i",
        "--run",
        "x",
    ];
    let err = env.fails(&again);
    assert!(
        err.contains("already exists") && err.contains("--replace"),
        "{err}"
    );
    env.ok(&[&again[..], &["--replace"]].concat());
    let vars = std::fs::read_to_string(env.path("profiles/ok/vars.toml")).unwrap();
    assert!(
        vars.contains("registry"),
        "--replace without --var keeps vars.toml: {vars}"
    );
}

#[test]
fn machines_move_between_profiles() {
    let env = Env::new();
    env.add_script_profile("p", "#!ipxe\necho profile $machine_name\n", &[]);

    let err = env.fails(&["machine", "add", "x", "--profile", "nope"]);
    assert!(err.contains("no profile named \"nope\""), "{err}");
    assert!(!env.path("machines/x").exists());
    let err = env.fails(&["machine", "add", "x", "--profile", "../p"]);
    assert!(err.contains("invalid profile name"), "{err}");

    // An existing machine still holds machine add's placeholder script: it
    // goes, so the profile's applies.
    let fp = env.add_machine("old");
    let placeholder = env.files(&fp).join("boot.ipxe");
    assert!(placeholder.is_file());
    let out = env.run(&["machine", "set-profile", "old", "p"]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("placeholder"));
    assert!(!placeholder.exists());
    // One that was edited keeps its script, and is told.
    env.add_machine_with_script("edited", "#!ipxe\necho mine\n");
    let out = env.run(&["machine", "set-profile", "edited", "p"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("served instead of the profile's"));

    let shown: serde_json::Value =
        serde_json::from_str(&env.ok(&["machine", "show", "old", "--json"])).unwrap();
    assert_eq!(shown["profile"], "p");
    assert!(env.ok(&["machine", "list"]).contains("PROFILE"));
    let err = env.fails(&["profile", "rm", "p"]);
    assert!(err.contains("used by old, edited"), "{err}");
    env.fails(&["machine", "set-profile", "old"]);
    env.fails(&["machine", "set-profile", "old", "p", "--none"]);
    env.fails(&["machine", "set-profile", "ghost", "p"]);

    let server = env.serve();
    let client = env.client();
    let get = |m: &str| client.get("/boot/ipxe", Some(&env.identity(m))).unwrap();
    assert_eq!(get("old").text(), "#!ipxe\necho profile old\n");
    assert_eq!(get("edited").text(), "#!ipxe\necho mine\n");
    // Changes reach the running server at the next request.
    env.ok(&["machine", "set-profile", "old", "--none"]);
    assert_eq!(get("old").status, 404, "no profile, no script left");
    env.ok(&["machine", "set-profile", "edited", "--none"]);
    env.ok(&["profile", "rm", "p"]);
    assert!(!env.path("profiles/p").exists());
    assert!(server.log_text().contains("registry changed"));
}

#[test]
fn assets_in_use_are_not_removed() {
    let env = Env::new();
    let k_hash = env.add_asset("kernel", b"kernel v1");
    env.add_asset("initrd", b"initrd");
    env.add_asset("alias", b"initrd");
    env.add_asset("spare", b"spare");
    env.ok(&[
        "profile",
        "create",
        "p",
        "--b2c",
        "--kernel",
        "kernel",
        "--initramfs",
        "initrd",
        "--run",
        "x",
    ]);
    env.add_machine_with_script("own", "#!ipxe\nchain ${server_url}/files/spare\n");

    let err = env.fails(&["asset", "rm", "kernel"]);
    assert!(
        err.contains("used by profile p") && err.contains("--force"),
        "{err}"
    );
    let err = env.fails(&["asset", "rm", "spare"]);
    assert!(err.contains("used by machine own"), "{err}");
    let err = env.fails(&["asset", "rm", "ghost"]);
    assert!(err.contains("no asset named \"ghost\""), "{err}");
    let listed: serde_json::Value =
        serde_json::from_str(&env.ok(&["asset", "list", "--json"])).unwrap();
    let kernel = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["name"] == "kernel")
        .unwrap();
    assert_eq!(kernel["used_by"], serde_json::json!(["profile p"]));
    assert_eq!(kernel["sha256"], k_hash.as_str());

    // Two names, one blob: removing one name keeps the content.
    assert_eq!(env.blobs().len(), 3);
    env.ok(&["asset", "rm", "alias"]);
    assert_eq!(env.blobs().len(), 3);
    // Same name, new content: refused unless --replace, which drops the old blob.
    let v2 = env.tmp.path().join("v2");
    write(&v2, "kernel v2");
    let err = env.fails(&["asset", "add", v2.to_str().unwrap(), "--name", "kernel"]);
    assert!(err.contains("--replace"), "{err}");
    env.ok(&[
        "asset",
        "add",
        v2.to_str().unwrap(),
        "--name",
        "kernel",
        "--replace",
    ]);
    assert!(!env.blobs().contains(&k_hash));
    assert_eq!(env.blobs().len(), 3);

    let out = env.run(&["asset", "rm", "spare", "--force"]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("will get 404"));
    assert_eq!(env.blobs().len(), 2);
    let err = env.fails(&["asset", "add", v2.to_str().unwrap(), "--name", "secrets"]);
    assert!(err.contains("never served"), "{err}");
}

/// The memory-measuring test's path in the suite: a child's peak memory
/// starts from its parent's resident memory at the spawn, which other tests
/// in a shared process would inflate.
const ASSET_ADD_ALONE: &str =
    "profiles::adding_an_asset_streams_and_is_atomic_in_a_process_of_its_own";

#[test]
fn adding_an_asset_streams_and_is_atomic() {
    run_in_own_process(ASSET_ADD_ALONE);
}

#[test]
#[ignore = "run in a process of its own by adding_an_asset_streams_and_is_atomic"]
fn adding_an_asset_streams_and_is_atomic_in_a_process_of_its_own() {
    assert!(
        in_own_process(ASSET_ADD_ALONE),
        "shares its process with other tests: run it through adding_an_asset_streams_and_is_atomic"
    );
    let env = Env::new();
    // 100 MiB, sparse, with recognisable bytes at both ends.
    let big = env.tmp.path().join("big.img");
    let mut file = std::fs::File::create(&big).unwrap();
    file.write_all(b"START").unwrap();
    file.set_len(100 << 20).unwrap();
    file.seek(SeekFrom::End(-4)).unwrap();
    file.write_all(b"END!").unwrap();
    drop(file);
    let mut hasher = Sha256::new();
    std::io::copy(&mut std::fs::File::open(&big).unwrap(), &mut hasher).unwrap();
    let expected = hex::encode(hasher.finalize());

    // A wrong checksum is refused and leaves nothing behind.
    let wrong = "0".repeat(64);
    let err = env.fails(&["asset", "add", big.to_str().unwrap(), "--sha256", &wrong]);
    assert!(err.contains("not the expected"), "{err}");
    assert!(env.blobs().is_empty(), "{:?}", env.blobs());
    assert!(!env.path("assets/index.json").exists());

    let _ = std::fs::write("/proc/self/clear_refs", "5");
    #[allow(clippy::zombie_processes, reason = "reaped by wait4 below")]
    let mut child = env
        .command(&["asset", "add", big.to_str().unwrap(), "--sha256", &expected])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let (status, peak_kib) = wait_with_peak_rss(&child);
    assert_eq!(status, 0);
    assert!(
        peak_kib < 48 * 1024,
        "`asset add` peaked at {peak_kib} KiB: adding a 100 MiB asset must not buffer it"
    );
    let stdout = read_to_string(child.stdout.take().unwrap());
    assert_eq!(stdout.trim(), expected);
    assert_eq!(
        env.blobs(),
        std::slice::from_ref(&expected),
        "one blob, no temporary file left"
    );
    let stored = env.path(&format!("assets/sha256/{expected}"));
    let mut hasher = Sha256::new();
    std::io::copy(&mut std::fs::File::open(&stored).unwrap(), &mut hasher).unwrap();
    assert_eq!(hex::encode(hasher.finalize()), expected);
    let index: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(env.path("assets/index.json")).unwrap())
            .unwrap();
    assert_eq!(index["assets"]["big.img"]["size"], 100u64 << 20);

    // Adding it again stores nothing new.
    env.ok(&["asset", "add", big.to_str().unwrap(), "--name", "again"]);
    assert_eq!(env.blobs(), [expected]);
}

/// Waits for `child`; returns its exit code and peak resident set in KiB.
///
/// A spawned child starts out sharing this process's memory until it execs,
/// and Linux counts that in the child's peak: the test process's own peak is
/// reset first (`clear_refs` 5), so a large test process (one that printed a
/// backtrace, say) does not make `bootgate` look large.
fn wait_with_peak_rss(child: &std::process::Child) -> (i32, i64) {
    let mut status = 0;
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    let pid = child.id() as libc::pid_t;
    // SAFETY: wait4 fills `status` and `usage`; the child is ours and not
    // waited for elsewhere.
    let rc = unsafe { libc::wait4(pid, &mut status, 0, usage.as_mut_ptr()) };
    assert_eq!(rc, pid);
    // SAFETY: initialised by the successful call above.
    let usage = unsafe { usage.assume_init() };
    (libc::WEXITSTATUS(status), usage.ru_maxrss)
}

/// `b2c.cache_device=auto` repartitions a disk when no B2C_CACHE file system
/// exists: `profile create` says so, and `image build` warns when the
/// machine's script asks for it and the image has no cache partition.
#[test]
fn auto_cache_is_warned_about_where_it_can_wipe_a_card() {
    let env = Env::new();
    env.add_asset("vmlinuz", b"kernel");
    env.add_asset("initramfs.cpio.xz", b"initramfs");
    let create = |name: &str, cache: &str| {
        env.run(&[
            "profile",
            "create",
            name,
            "--b2c",
            "--kernel",
            "vmlinuz",
            "--initramfs",
            "initramfs.cpio.xz",
            "--run",
            "img",
            "--cache-device",
            cache,
        ])
    };
    let auto = create("gw", "auto");
    assert!(auto.status.success());
    let stderr = String::from_utf8_lossy(&auto.stderr);
    assert!(
        stderr.contains("warning: b2c.cache_device=auto") && stderr.contains("--cache-size"),
        "{stderr}"
    );
    let none = create("lab", "none");
    assert!(!String::from_utf8_lossy(&none.stderr).contains("warning"));

    env.add_with_profile("gw-1", "gw");
    env.add_with_profile("lab-1", "lab");
    let firmware = env.tmp.path().join("firmware");
    write(&firmware.join("ipxe/ipxe-amd64.efi"), b"MZ fake ipxe");
    let build = |machine: &str, extra: &[&str]| {
        let out_file = env
            .tmp
            .path()
            .join(format!("{machine}-{}.img", extra.len()));
        let mut args = vec![
            "image",
            "build",
            "--machine",
            machine,
            "--platform",
            "x86_64-efi",
            "--firmware-dir",
            firmware.to_str().unwrap(),
            "--output",
            out_file.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        let out = env.run(&args);
        assert_succeeded("image build", &out);
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let warned = build("gw-1", &[]);
    assert!(
        warned.contains("b2c.cache_device=auto, but this image has no cache partition"),
        "{warned}"
    );
    assert!(!build("gw-1", &["--cache-size", "16M"]).contains("warning"));
    assert!(!build("lab-1", &[]).contains("warning"));
}
