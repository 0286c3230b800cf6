//! Per-machine scratch space against a real Garage started by the tests:
//! buckets and keys made at boot script render, keys that open their own
//! bucket only (checked with a real S3 client, s3cmd), rotation, revocation,
//! purge, concurrent renders, a store that is down or hangs, and the
//! rendered `secrets` read by boot2container's own parser.

use std::net::TcpListener;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::support::garage::{Garage, S3Client};
use crate::support::*;
use serde_json::Value;

/// What a machine's `secrets` gave it.
#[derive(Debug, Clone)]
struct Scratch {
    endpoint: String,
    key_id: String,
    secret: String,
    bucket: String,
}

fn add_scratch_config(env: &Env, section: &str) {
    let path = env.path("bootgate.toml");
    let mut text = std::fs::read_to_string(&path).unwrap();
    text.push_str(section);
    std::fs::write(&path, text).unwrap();
}

/// A boot2container profile `gw` with a scratch volume.
fn scratch_profile(env: &Env, volume: &str) {
    env.add_asset("vmlinuz", "vmlinuz".as_bytes());
    env.add_asset("initramfs.cpio.xz", "initramfs.cpio.xz".as_bytes());
    env.ok(&[
        "profile",
        "create",
        "gw",
        "--b2c",
        "--kernel",
        "vmlinuz",
        "--initramfs",
        "initramfs.cpio.xz",
        "--run",
        "-ti registry.example.com/gateway:latest",
        "--scratch-volume",
        volume,
    ]);
}

fn add_to_profile(env: &Env, name: &str) -> String {
    env.ok(&["machine", "add", name, "--profile", "gw"])
        .trim()
        .to_string()
}

fn boot(client: &Client, env: &Env, machine: &str) -> String {
    let response = client
        .get("/boot/ipxe", Some(&env.identity(machine)))
        .unwrap();
    assert_eq!(response.status, 200, "{}", response.text());
    response.text()
}

/// Follows `b2c.extra_args_url=` of a script to its one-time secrets.
fn secrets(client: &Client, script: &str) -> String {
    let url = script
        .split_whitespace()
        .find_map(|w| w.strip_prefix("b2c.extra_args_url="))
        .unwrap_or_else(|| panic!("no extra_args_url in:\n{script}"));
    let path = &url[url.find("/secrets/").unwrap()..];
    let response = client.get(path, None).unwrap();
    assert_eq!(response.status, 200);
    response.text()
}

fn parse(secrets: &str) -> Scratch {
    let value = |name: &str| {
        let start = secrets.find(&format!("{name}=\"")).unwrap() + name.len() + 2;
        let rest = &secrets[start..];
        rest[..rest.find('"').unwrap()].to_string()
    };
    let minio = value("b2c.minio");
    let fields: Vec<&str> = minio.split(',').collect();
    assert_eq!(fields.len(), 4, "{minio}");
    assert_eq!(fields[0], "bootgate");
    let volume = value("b2c.volume");
    let bucket = volume
        .split(',')
        .find_map(|o| o.strip_prefix("mirror=bootgate/"))
        .unwrap()
        .to_string();
    Scratch {
        endpoint: fields[1].into(),
        key_id: fields[2].into(),
        secret: fields[3].into(),
        bucket,
    }
}

fn show(env: &Env, machine: &str) -> Value {
    serde_json::from_str(&env.ok(&["machine", "show", machine, "--json"])).unwrap()
}

fn s3(env: &Env, s: &Scratch) -> S3Client {
    S3Client::new(env.tmp.path(), &s.endpoint, &s.key_id, &s.secret)
}

#[test]
fn keys_open_their_own_bucket_only_and_rotate_revoke_and_purge() {
    let env = Env::new();
    let garage = Garage::start(&env.tmp.path().join("garage"));
    // Generous: the test machine is shared and slow; this is no benchmark.
    add_scratch_config(&env, &garage.scratch_section("timeout_ms = 60000\n"));
    scratch_profile(&env, "job");
    let fp1 = add_to_profile(&env, "gw-01");
    add_to_profile(&env, "gw-02");
    let server = env.serve();
    let client = env.client();

    let script = boot(&client, &env, "gw-01");
    let first = parse(&secrets(&client, &script));
    assert!(!script.contains(&first.secret), "secret key in the script");
    assert_eq!(first.bucket, format!("bootgate-{fp1}"));
    assert_eq!(first.endpoint, garage.s3_url());
    let other = parse(&secrets(&client, &boot(&client, &env, "gw-02")));
    assert_ne!(other.bucket, first.bucket);

    // The key reads, writes and lists its own bucket...
    let own = s3(&env, &first);
    let file = env.tmp.path().join("hello.txt");
    std::fs::write(&file, "scratch data\n").unwrap();
    let bucket = format!("s3://{}", first.bucket);
    own.run(&[
        "put",
        file.to_str().unwrap(),
        &format!("{bucket}/hello.txt"),
    ])
    .unwrap();
    let back = env.tmp.path().join("back.txt");
    own.run(&[
        "get",
        &format!("{bucket}/hello.txt"),
        back.to_str().unwrap(),
    ])
    .unwrap();
    assert_eq!(std::fs::read_to_string(&back).unwrap(), "scratch data\n");
    assert!(own.run(&["ls", &bucket]).unwrap().contains("hello.txt"));
    // ... and nothing of another machine's.
    let foreign = format!("s3://{}", other.bucket);
    assert!(own.run(&["ls", &foreign]).is_err());
    assert!(
        own.run(&["put", file.to_str().unwrap(), &format!("{foreign}/x")])
            .is_err()
    );
    assert!(own.run(&["mb", "s3://made-by-a-machine"]).is_err());

    // Each render rotates the key: the previous one stops working.
    let second = parse(&secrets(&client, &boot(&client, &env, "gw-01")));
    assert_eq!(second.bucket, first.bucket);
    assert_ne!(second.key_id, first.key_id);
    assert!(own.run(&["ls", &bucket]).is_err(), "old key still works");
    let current = s3(&env, &second);
    assert!(current.run(&["ls", &bucket]).unwrap().contains("hello.txt"));

    // `machine show`: bucket, live key id, bytes stored; never the secret.
    let shown = env.ok(&["machine", "show", "gw-01"]);
    assert!(shown.contains(&first.bucket) && shown.contains(&second.key_id));
    assert!(!shown.contains(&second.secret));
    wait_until(
        "the store to count the bytes",
        Duration::from_secs(60),
        || show(&env, "gw-01")["scratch"]["bytes"].as_u64() >= Some(13),
    );
    let shown = show(&env, "gw-01");
    assert_eq!(
        shown["scratch"]["key_ids"],
        serde_json::json!([second.key_id])
    );

    // Concurrent renders for one machine leave exactly one live key.
    let port = env.port;
    let ca = env.ca_pem();
    let identity = env.identity("gw-02");
    let threads: Vec<_> = (0..6)
        .map(|_| {
            let (ca, identity) = (ca.clone(), identity.clone());
            std::thread::spawn(move || {
                let client = Client::new(&ca, ([127, 0, 0, 1], port).into());
                let r = client.get("/boot/ipxe", Some(&identity)).unwrap();
                assert_eq!(r.status, 200);
                r.text()
            })
        })
        .collect();
    let scripts: Vec<String> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    let keys = show(&env, "gw-02")["scratch"]["key_ids"].clone();
    assert_eq!(keys.as_array().unwrap().len(), 1, "{keys}");
    let granted: Vec<Scratch> = scripts
        .iter()
        .map(|s| parse(&secrets(&client, s)))
        .collect();
    assert!(
        granted.iter().all(|g| g.key_id.starts_with("GK")),
        "{granted:?}"
    );
    let working: Vec<&Scratch> = granted
        .iter()
        .filter(|s| {
            s3(&env, s)
                .run(&["ls", &format!("s3://{}", s.bucket)])
                .is_ok()
        })
        .collect();
    assert_eq!(working.len(), 1, "live keys: {working:?}");
    assert_eq!(keys[0], working[0].key_id.as_str());

    // Revocation deletes the key at once; the bucket and its data stay.
    let out = env.run(&["machine", "revoke", "gw-01"]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("deleted 1 scratch key"));
    assert!(current.run(&["ls", &bucket]).is_err(), "revoked key works");
    let shown = show(&env, "gw-01");
    assert_eq!(shown["scratch"]["key_ids"], serde_json::json!([]));
    assert_eq!(shown["scratch"]["exists"], true);

    // Purge asks first, then deletes the objects and the bucket.
    let refused = env.fails(&["scratch", "purge", "gw-01"]);
    assert!(refused.contains("nothing deleted"), "{refused}");
    assert_eq!(show(&env, "gw-01")["scratch"]["exists"], true);
    env.ok(&["scratch", "purge", "gw-01", "--yes"]);
    assert_eq!(show(&env, "gw-01")["scratch"]["exists"], false);
    assert_eq!(show(&env, "gw-02")["scratch"]["exists"], true);

    // Key material never reaches the server's log.
    let log = server.log_text();
    for s in granted.iter().chain([&first, &second]) {
        assert!(!log.contains(&s.secret), "secret key in the log");
    }
    assert!(!log.contains(&garage.admin_token), "admin token in the log");
}

/// The `/boot/ipxe` events of a machine, oldest first.
fn script_events(env: &Env, machine: &str) -> Vec<Value> {
    env.ok(&["events", "--json", "--machine", machine])
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|e| e["path"] == "/boot/ipxe")
        .collect()
}

#[test]
fn a_store_down_or_hanging_still_gets_the_script_served() {
    let env = Env::new();
    let mut garage = Garage::start(&env.tmp.path().join("garage"));
    // Generous while the store is up: the test machine is shared and slow.
    add_scratch_config(&env, &garage.scratch_section("timeout_ms = 30000\n"));
    let fp = env.add_machine_with_script(
        "gw-01",
        "#!ipxe\necho bucket=$s3_bucket_name key=$s3_access_key_id\n",
    );
    env.add_machine_with_script(
        "gw-02",
        "#!ipxe\nkernel /files/k b2c.minio=\"s,$s3_endpoint,$s3_access_key_id,$s3_access_key\"\n",
    );
    let server = env.serve();
    let client = env.client();

    let up = boot(&client, &env, "gw-01");
    assert!(up.contains(&format!("bucket=bootgate-{fp} key=GK")), "{up}");

    // A script that carries the secret key itself: warned once in the log,
    // and by `machine show`.
    boot(&client, &env, "gw-02");
    boot(&client, &env, "gw-02");
    let warning = "puts $s3_access_key in the script itself";
    wait_until("the warning in the log", Duration::from_secs(30), || {
        server.log_text().contains(warning)
    });
    assert_eq!(server.log_text().matches(warning).count(), 1);
    let out = env.run(&["machine", "show", "gw-02"]);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("puts $s3_access_key in the boot script")
    );

    // Garage stopped: the script is still served, without scratch space,
    // and the failure is in the history and the metrics.
    garage.stop();
    let down = boot(&client, &env, "gw-01");
    assert!(down.contains("bucket= key=\n"), "{down}");
    wait_until(
        "the failure in the history",
        Duration::from_secs(30),
        || {
            script_events(&env, "gw-01")
                .last()
                .is_some_and(|e| e["reason"] == "scratch-unavailable" && e["status"] == 200)
        },
    );
    let (_, metrics) = server.admin_get("/metrics");
    assert!(
        metrics.contains("reason=\"scratch-unavailable\""),
        "{metrics}"
    );

    // The next boot retries.
    garage.restart();
    let back = boot(&client, &env, "gw-01");
    assert!(
        back.contains(&format!("bucket=bootgate-{fp} key=GK")),
        "{back}"
    );
    drop(server);

    // A store that accepts connections and never answers costs a boot at
    // most `timeout_ms`, not the client's patience.
    let hanging = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = hanging.local_addr().unwrap();
    let path = env.path("bootgate.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(
        &path,
        text.replace(&garage.admin_url(), &format!("http://{address}"))
            .replace("timeout_ms = 30000", "timeout_ms = 2000"),
    )
    .unwrap();
    let held = std::thread::spawn(move || {
        let mut open = Vec::new();
        for stream in hanging.incoming().take(2) {
            open.push(stream.unwrap());
        }
        std::thread::sleep(Duration::from_secs(30));
    });
    let server = env.serve();
    let stalled = boot(&client, &env, "gw-01");
    assert!(stalled.contains("bucket= key=\n"), "{stalled}");
    wait_until("the timeout in the log", Duration::from_secs(30), || {
        server.log_text().contains("did not answer within")
    });
    drop(server);
    drop(held);
}

#[test]
fn boot2container_reads_the_rendered_secrets() {
    let init = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/boot2container/init.sh");
    assert!(init.is_file(), "{} is missing", init.display());

    let env = Env::new();
    let garage = Garage::start(&env.tmp.path().join("garage"));
    // Generous: the test machine is shared and slow; this is no benchmark.
    add_scratch_config(&env, &garage.scratch_section("timeout_ms = 60000\n"));
    scratch_profile(
        &env,
        "job:pull_on=pipeline_start,push_on=changes,overwrite,preserve,remove,expiration=pipeline_end",
    );
    add_to_profile(&env, "gw-01");
    let _server = env.serve();
    let client = env.client();
    let text = secrets(&client, &boot(&client, &env, "gw-01"));
    let granted = parse(&text);

    let work = env.tmp.path().join("b2c");
    std::fs::create_dir_all(work.join("vol")).unwrap();
    std::fs::write(work.join("secrets"), &text).unwrap();
    let harness = r#"
        UNITTEST=1 . "$INIT"
        # The rest of the machine, stubbed: podman, mcli, fscrypt, logging.
        podman() {
            case "$1 $2" in
                "volume exists") return 1 ;;
                "volume inspect") echo "$WORK/vol" ;;
                *) echo "podman $*" >> "$WORK/calls" ;;
            esac
        }
        mcli() { echo "mcli $*" >> "$WORK/calls"; }
        fscryptctl() { return 1; }
        log() { :; }
        parse_cmdline "$(cat "$WORK/secrets")"
        printf 'MINIO=%s\n' "$ARG_MINIO"
        printf 'VOLUME=%s\n' "$ARG_VOLUME"
        setup_volumes || echo SETUP_FAILED
        printf 'START=%b\n' "$B2C_HOOK_PIPELINE_START"
    "#;
    // Run from a file, as init.sh itself is: under `bash -c`, `$-` holds
    // `c`, and init.sh's `set "-$prev_shell_config"` would then fail.
    let harness_file = work.join("harness.sh");
    std::fs::write(&harness_file, harness).unwrap();
    let out = Command::new("bash")
        .arg(&harness_file)
        .env("INIT", &init)
        .env("WORK", &work)
        .output()
        .unwrap();
    let stdout = succeeded("the init.sh harness", &out);
    assert!(!stdout.contains("B2C_WARNING"), "{stdout}");
    assert!(!stdout.contains("SETUP_FAILED"), "{stdout}");
    assert!(
        stdout.contains(&format!(
            "MINIO=bootgate,{},{},{}\\n",
            granted.endpoint, granted.key_id, granted.secret
        )),
        "{stdout}"
    );
    let mirror = format!("bootgate/{}", granted.bucket);
    assert!(stdout.contains(&format!(
        "VOLUME=job,mirror={mirror},pull_on=pipeline_start,push_on=changes,overwrite,preserve,remove,expiration=pipeline_end\\n"
    )), "{stdout}");
    let calls = std::fs::read_to_string(work.join("calls")).unwrap();
    assert!(
        calls.contains(&format!(
            "mcli --no-color alias set bootgate {} {} {}\n",
            granted.endpoint, granted.key_id, granted.secret
        )),
        "{calls}"
    );
    assert!(
        calls.contains("podman volume create --label expiration=pipeline_end job"),
        "{calls}"
    );
    let vol = work.join("vol");
    let args = format!(
        "-r {} -q --no-color  --overwrite -a --remove",
        vol.display()
    );
    // Pulled at pipeline start; every change pushed (a watcher, then a last sync).
    assert!(
        stdout.contains(&format!("mcli mirror {args} {mirror} .")),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!(
            "start_daemon_cmd mcli mirror --watch {args} . {mirror}"
        )),
        "{stdout}"
    );
}

#[test]
fn scratch_volume_profiles_write_secrets_and_refuse_bad_options() {
    let env = Env::new();
    scratch_profile(
        &env,
        "job:pull_on=pipeline_start,push_on=pipeline_end,preserve",
    );
    let folder = env.path("profiles/gw");
    let script = std::fs::read_to_string(folder.join("boot.ipxe")).unwrap();
    assert!(
        script.contains("b2c.extra_args_url=$secrets_url"),
        "{script}"
    );
    assert!(
        !script.contains("s3_"),
        "credentials in the script: {script}"
    );
    let secrets = std::fs::read_to_string(folder.join("secrets")).unwrap();
    assert_eq!(
        secrets,
        "b2c.minio=\"bootgate,$s3_endpoint,$s3_access_key_id,$s3_access_key\" \
         b2c.volume=\"job,mirror=bootgate/$s3_bucket_name,pull_on=pipeline_start,push_on=pipeline_end,preserve\"\n"
    );
    for bad in [
        "job:push_on=always",
        "job:mirror=x/y,push_on=changes",
        "job:push_on=changes,zip",
    ] {
        let err = env.fails(&[
            "profile",
            "create",
            "gw",
            "--replace",
            "--b2c",
            "--kernel",
            "vmlinuz",
            "--initramfs",
            "initramfs.cpio.xz",
            "--scratch-volume",
            bad,
        ]);
        assert!(err.contains("--scratch-volume"), "{err}");
    }
    // A refused option leaves the profile as it was.
    assert_eq!(
        std::fs::read_to_string(folder.join("secrets")).unwrap(),
        secrets
    );
}
