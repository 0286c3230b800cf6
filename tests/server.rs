//! The boot server driven end to end: the real `bootgate` binary, a real TLS
//! client presenting real client certificates over loopback, and `curl` and
//! `openssl` where the original deployment used them.

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use crate::support::*;

#[test]
fn renders_the_machine_script_with_its_variables() {
    let env = Env::new();
    let fp = env.add_machine("gw1");
    write(
        &env.files(&fp).join("boot.ipxe"),
        "#!ipxe\necho $machine_name ${client_cert_fingerprint} $server_url\n\
         echo mac=$mac platform=${platform} arch=$buildarch extra=$extra\n\
         echo ${netX/mac} $$HOME $undefined ${undefined} $role\n",
    );
    write(
        &env.files(&fp).join("vars.toml"),
        "role = \"gateway\"\nmachine_name = \"spoofed\"\n",
    );
    let _server = env.serve();
    let id = env.identity("gw1");
    let response = env
        .client()
        .get(
            "/boot/ipxe?mac=52:54:00:12:34:56&platform=efi&buildarch=x86_64&extra=1",
            Some(&id),
        )
        .unwrap();
    assert_eq!(response.status, 200, "{}", response.text());
    let port = env.port;
    assert_eq!(
        response.text(),
        format!(
            "#!ipxe\necho gw1 {fp} https://localhost:{port}\n\
             echo mac=52:54:00:12:34:56 platform=efi arch=x86_64 extra=1\n\
             echo ${{netX/mac}} $HOME $undefined ${{undefined}} gateway\n"
        )
    );

    // A GET of the script is answered without the router; HEAD and other
    // methods go through it, and agree with it.
    let client = env.client();
    let path = "/boot/ipxe?mac=52:54:00:12:34:56&platform=efi&buildarch=x86_64&extra=1";
    let head = client.request("HEAD", path, Some(&id), &[]).unwrap();
    assert_eq!(head.status, 200);
    assert!(head.body.is_empty());
    let length = response.body.len().to_string();
    assert_eq!(head.header("content-length"), Some(length.as_str()));
    assert_eq!(head.header("content-type"), response.header("content-type"));
    let post = client
        .request("POST", "/boot/ipxe", Some(&id), &[])
        .unwrap();
    assert_eq!(post.status, 405);
}

/// Waits until the server's file cache trusts `path` as it is now: it keeps
/// a file only once it has been left alone for a second.
fn settled(path: &std::path::Path) {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(path).unwrap();
    let changed = meta.mtime().max(meta.ctime()) as f64
        + meta.mtime_nsec().max(meta.ctime_nsec()) as f64 / 1e9;
    wait_until("the file to settle", Duration::from_secs(10), || {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64();
        now > changed + 1.5
    });
}

/// The server answers an unchanged request with the script it rendered the
/// last time; each input of the render, changed, shows at the next request:
/// the query, the script, a machine's `vars.toml` (added, edited), the
/// registry (a profile set, a revocation) and the profile's `vars.toml`.
#[test]
fn a_kept_render_follows_each_of_its_inputs() {
    let env = Env::new();
    env.add_script_profile("p", "#!ipxe\necho profile\n", &[]);
    let profile_vars = env.path("profiles/p/vars.toml");
    write(&profile_vars, "role = \"from-profile\"\nsite = \"lab\"\n");
    let fp = env.add_machine("gw1");
    let script = env.files(&fp).join("boot.ipxe");
    let own_vars = env.files(&fp).join("vars.toml");
    write(
        &script,
        "#!ipxe\necho one $machine_name $role $site mac=$mac\n",
    );
    let server = env.serve();
    let id = env.identity("gw1");
    let client = env.client();
    let get = |query: &str| {
        let response = client
            .get(&format!("/boot/ipxe{query}"), Some(&id))
            .unwrap();
        assert_eq!(response.status, 200, "{}", response.text());
        response.text()
    };
    let settled_serves = || {
        let (_, metrics) = server.admin_get("/metrics");
        let line = metrics
            .lines()
            .find(|l| l.starts_with("bootgate_boot_scripts_total{made=\"settled\"}"))
            .unwrap_or_else(|| panic!("no settled count in:\n{metrics}"));
        line.rsplit(' ').next().unwrap().parse::<u64>().unwrap()
    };
    // Asked until the kept render is settled (rendered, kept and watched,
    // kept and covered, settled): the last answers come without a look at
    // the files, so every change below is made to a settled render.
    let until_settled = |query: &str, expected: &str| {
        let before = settled_serves();
        for _ in 0..5 {
            assert_eq!(get(query), expected);
        }
        assert!(settled_serves() > before, "the render never settled");
    };

    settled(&script);
    until_settled("?mac=1", "#!ipxe\necho one gw1 $role $site mac=1\n");
    // The query.
    until_settled("?mac=2", "#!ipxe\necho one gw1 $role $site mac=2\n");
    until_settled("", "#!ipxe\necho one gw1 $role $site mac=$mac\n");
    // The script.
    write(
        &script,
        "#!ipxe\necho two $machine_name $role $site mac=$mac\n",
    );
    assert_eq!(get("?mac=1"), "#!ipxe\necho two gw1 $role $site mac=1\n");
    settled(&script);
    until_settled("?mac=1", "#!ipxe\necho two gw1 $role $site mac=1\n");
    // The machine's vars.toml, added, then edited.
    write(&own_vars, "role = \"own\"\n");
    assert_eq!(get("?mac=1"), "#!ipxe\necho two gw1 own $site mac=1\n");
    settled(&own_vars);
    until_settled("?mac=1", "#!ipxe\necho two gw1 own $site mac=1\n");
    write(&own_vars, "role = \"new\"\n");
    assert_eq!(get("?mac=1"), "#!ipxe\necho two gw1 new $site mac=1\n");
    settled(&own_vars);
    until_settled("?mac=1", "#!ipxe\necho two gw1 new $site mac=1\n");
    // The registry: a profile whose variables apply under the machine's own.
    settled(&profile_vars);
    env.ok(&["machine", "set-profile", "gw1", "p"]);
    assert_eq!(get("?mac=1"), "#!ipxe\necho two gw1 new lab mac=1\n");
    settled(&env.path("registry.json"));
    until_settled("?mac=1", "#!ipxe\necho two gw1 new lab mac=1\n");
    // The profile's vars.toml.
    write(&profile_vars, "site = \"annex\"\n");
    assert_eq!(get("?mac=1"), "#!ipxe\necho two gw1 new annex mac=1\n");
    settled(&profile_vars);
    until_settled("?mac=1", "#!ipxe\necho two gw1 new annex mac=1\n");
    // Rewritten in place within the same second, size and mtime put back.
    let mtime = std::fs::metadata(&script).unwrap().modified().unwrap();
    let same_size = "#!ipxe\necho six $machine_name $role $site mac=$mac\n";
    {
        use std::io::Write as _;
        let mut file = std::fs::File::options().write(true).open(&script).unwrap();
        file.write_all(same_size.as_bytes()).unwrap();
        file.set_modified(mtime).unwrap();
    }
    assert_eq!(get("?mac=1"), "#!ipxe\necho six gw1 new annex mac=1\n");
    settled(&script);
    until_settled("?mac=1", "#!ipxe\necho six gw1 new annex mac=1\n");
    // Replaced by a rename, then removed: the profile's script takes over.
    let copy = script.with_extension("new");
    write(&copy, "#!ipxe\necho ten $machine_name\n");
    std::fs::rename(&copy, &script).unwrap();
    assert_eq!(get("?mac=1"), "#!ipxe\necho ten gw1\n");
    settled(&script);
    until_settled("?mac=1", "#!ipxe\necho ten gw1\n");
    std::fs::remove_file(&script).unwrap();
    until_settled("?mac=1", "#!ipxe\necho profile\n");
    // The registry again: a revoked machine gets nothing, kept or not.
    env.ok(&["machine", "revoke", "gw1"]);
    let revoked = client.get("/boot/ipxe?mac=1", Some(&id)).unwrap();
    assert_eq!(revoked.status, 403, "{}", revoked.text());
}

#[test]
fn refuses_missing_foreign_and_revoked_certificates() {
    let env = Env::new();
    let fp = env.add_machine("gw1");
    env.add_machine("gw2");
    let server = env.serve();
    let client = env.client();

    let none = client.get("/boot/ipxe", None).unwrap();
    assert_eq!(none.status, 403);
    assert!(none.text().contains("client certificate is required"));

    // A certificate from another CA fails the handshake itself.
    let other = Env::new();
    other.add_machine("gw1");
    let foreign = client.get("/boot/ipxe", Some(&other.identity("gw1")));
    assert!(
        foreign.is_err(),
        "foreign cert accepted: {:?}",
        foreign.map(|r| r.status)
    );
    let mut tls12 = env.client();
    tls12.tls12_only = true;
    assert!(
        tls12
            .get("/boot/ipxe", Some(&other.identity("gw1")))
            .is_err()
    );

    // Revocation takes effect on the running server, without restart.
    let id = env.identity("gw1");
    assert_eq!(client.get("/boot/ipxe", Some(&id)).unwrap().status, 200);
    env.ok(&["machine", "revoke", "gw1"]);
    let revoked = client.get("/boot/ipxe", Some(&id)).unwrap();
    assert_eq!(revoked.status, 403);
    assert!(revoked.text().contains("revoked"));
    assert_eq!(
        client.get("/files/boot.ipxe", Some(&id)).unwrap().status,
        403
    );
    // The other machine is unaffected.
    assert_eq!(
        client
            .get("/boot/ipxe", Some(&env.identity("gw2")))
            .unwrap()
            .status,
        200
    );

    let shown = env.ok(&["machine", "show", "gw1", "--json"]);
    let json: serde_json::Value = serde_json::from_str(&shown).unwrap();
    assert_eq!(json["revoked"], true);
    assert_eq!(json["fingerprint"], fp.as_str());

    let log = server.log_text();
    assert!(log.contains("machine=\"gw1\""), "{log}");
    assert!(log.contains("status=403"), "{log}");
}

/// `registry.json` rewritten by hand with a file of the same size and mtime,
/// in place or renamed over: the revocation is in force at the very next
/// request, also once the server trusts the stamp of the previous version.
#[test]
fn a_revocation_takes_effect_whatever_the_size_and_times_of_the_file() {
    use std::os::unix::fs::MetadataExt;
    use std::time::{SystemTime, UNIX_EPOCH};

    let env = Env::new();
    env.add_machine("gw1");
    env.add_machine("gw2");
    let path = env.path("registry.json");
    let registry: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    let revoking = |names: &[&str]| {
        let mut registry = registry.clone();
        for machine in registry["machines"].as_array_mut().unwrap() {
            if names.contains(&machine["name"].as_str().unwrap()) {
                machine["revoked_at"] = "2026-01-01T00:00:00Z".into();
            }
        }
        serde_json::to_string_pretty(&registry).unwrap()
    };
    // Padded with whitespace to one size.
    let versions = [revoking(&[]), revoking(&["gw1"]), revoking(&["gw1", "gw2"])];
    let len = versions.iter().map(String::len).max().unwrap();
    let [none, gw1_revoked, both_revoked] = versions.map(|text| format!("{text:len$}\n"));
    let mtime = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    let rename_over = |text: &str| {
        let new = env.path(".registry.json.new");
        std::fs::write(&new, text).unwrap();
        let file = std::fs::File::options().write(true).open(&new).unwrap();
        file.set_modified(mtime).unwrap();
        std::fs::rename(&new, &path).unwrap();
    };
    let rewrite_in_place = |text: &str| {
        let mut file = std::fs::File::options().write(true).open(&path).unwrap();
        file.write_all(text.as_bytes()).unwrap();
        file.set_modified(mtime).unwrap();
    };
    // Until a file has been left alone for a while, the server reads it at
    // every request whatever its stamp; wait past that, so that only the
    // stamp can tell the next change.
    let settle = || {
        let meta = std::fs::metadata(&path).unwrap();
        let changed = UNIX_EPOCH + Duration::new(meta.ctime() as u64, meta.ctime_nsec() as u32);
        wait_until("registry.json to settle", Duration::from_secs(30), || {
            SystemTime::now()
                .duration_since(changed)
                .is_ok_and(|age| age > Duration::from_secs(2))
        });
    };

    let _server = env.serve();
    let client = env.client();
    let (gw1, gw2) = (env.identity("gw1"), env.identity("gw2"));
    let status = |id: &Identity| client.get("/boot/ipxe", Some(id)).unwrap().status;

    rename_over(&none);
    settle();
    assert_eq!((status(&gw1), status(&gw2)), (200, 200));
    rewrite_in_place(&gw1_revoked);
    assert_eq!((status(&gw1), status(&gw2)), (403, 200), "in place");
    settle();
    assert_eq!((status(&gw1), status(&gw2)), (403, 200));
    rename_over(&both_revoked);
    assert_eq!((status(&gw1), status(&gw2)), (403, 403), "renamed over");
    assert_eq!(std::fs::metadata(&path).unwrap().len(), len as u64 + 1);
}

#[test]
fn machines_without_a_folder_get_the_default_script() {
    let env = Env::new();
    let fp = env.add_machine("gw1");
    std::fs::remove_dir_all(env.files(&fp)).unwrap();
    let _server = env.serve();
    let client = env.client();
    let id = env.identity("gw1");
    assert_eq!(client.get("/boot/ipxe", Some(&id)).unwrap().status, 404);

    write(
        &env.path("files/default/boot.ipxe"),
        "#!ipxe\necho default for $machine_name\n",
    );
    write(&env.path("files/default/kernel"), "shared kernel");
    let response = client.get("/boot/ipxe", Some(&id)).unwrap();
    assert_eq!(response.status, 200);
    assert_eq!(response.text(), "#!ipxe\necho default for gw1\n");
    assert_eq!(
        client.get("/files/kernel", Some(&id)).unwrap().text(),
        "shared kernel"
    );
}

#[test]
fn files_never_leave_the_machine_folder() {
    let env = Env::new();
    let fp1 = env.add_machine("gw1");
    let fp2 = env.add_machine("gw2");
    write(&env.files(&fp1).join("sub/kernel"), "gw1 kernel");
    write(&env.files(&fp1).join("secrets"), "password=1");
    write(&env.files(&fp2).join("private"), "gw2 only");
    write(&env.path("outside.txt"), "outside");
    std::os::unix::fs::symlink(env.path("outside.txt"), env.files(&fp1).join("escape")).unwrap();
    std::os::unix::fs::symlink("sub/kernel", env.files(&fp1).join("alias")).unwrap();
    let _server = env.serve();
    let client = env.client();
    let id = env.identity("gw1");

    assert_eq!(
        client.get("/files/sub/kernel", Some(&id)).unwrap().text(),
        "gw1 kernel"
    );
    assert_eq!(
        client.get("/files/alias", Some(&id)).unwrap().text(),
        "gw1 kernel"
    );
    let hostile = [
        format!("/files/../{fp2}/private"),
        format!("/files/%2e%2e/{fp2}/private"),
        format!("/files/%2E%2E%2F{fp2}%2Fprivate"),
        format!("/files/sub/../../{fp2}/private"),
        format!("/files/..%2f{fp2}%2fprivate"),
        format!("/files/sub%2f..%2f..%2f{fp2}%2fprivate"),
        "/files//etc/passwd".to_string(),
        "/files/%2fetc%2fpasswd".to_string(),
        "/files/..%5c..%5coutside.txt".to_string(),
        "/files/escape".to_string(),
        "/files/secrets".to_string(),
        "/files/vars.toml".to_string(),
        "/files/sub".to_string(),
        "/files/".to_string(),
        "/files/%00".to_string(),
        "/files/../../outside.txt".to_string(),
    ];
    for path in &hostile {
        let response = client.get(path, Some(&id)).unwrap();
        assert!(
            matches!(response.status, 400 | 404),
            "{path} answered {} {}",
            response.status,
            response.text()
        );
        assert!(!response.text().contains("gw2 only") && !response.text().contains("outside"));
    }
    // gw2 reads its own file under the same name gw1 was refused.
    assert_eq!(
        client
            .get("/files/private", Some(&env.identity("gw2")))
            .unwrap()
            .text(),
        "gw2 only"
    );
    assert_eq!(client.get("/files/private", Some(&id)).unwrap().status, 404);
}

#[test]
fn ranges_head_and_validators() {
    let env = Env::new();
    let fp = env.add_machine("gw1");
    let data: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(env.files(&fp).join("initrd"), &data).unwrap();
    let _server = env.serve();
    let client = env.client();
    let id = env.identity("gw1");

    let full = client.get("/files/initrd", Some(&id)).unwrap();
    assert_eq!(full.status, 200);
    assert_eq!(full.body, data);
    assert_eq!(full.header("content-length"), Some("100000"));
    assert_eq!(full.header("accept-ranges"), Some("bytes"));
    let etag = full.header("etag").unwrap().to_string();
    let modified = full.header("last-modified").unwrap().to_string();

    let head = client
        .request("HEAD", "/files/initrd", Some(&id), &[])
        .unwrap();
    assert_eq!(head.status, 200);
    assert_eq!(head.header("content-length"), Some("100000"));
    assert!(head.body.is_empty());
    assert_eq!(head.header("etag"), Some(etag.as_str()));

    let part = client.get_with("/files/initrd", &id, &[("range", "bytes=1000-1999")]);
    assert_eq!(part.status, 206);
    assert_eq!(part.header("content-range"), Some("bytes 1000-1999/100000"));
    assert_eq!(part.body, &data[1000..2000]);

    let tail = client.get_with("/files/initrd", &id, &[("range", "bytes=-10")]);
    assert_eq!(tail.status, 206);
    assert_eq!(tail.body, &data[99_990..]);

    let beyond = client.get_with("/files/initrd", &id, &[("range", "bytes=200000-")]);
    assert_eq!(beyond.status, 416);
    assert_eq!(beyond.header("content-range"), Some("bytes */100000"));

    let stale_if_range = client.get_with(
        "/files/initrd",
        &id,
        &[("range", "bytes=0-9"), ("if-range", "\"old\"")],
    );
    assert_eq!(stale_if_range.status, 200);
    assert_eq!(stale_if_range.body.len(), 100_000);

    let cached = client.get_with("/files/initrd", &id, &[("if-none-match", &etag)]);
    assert_eq!(cached.status, 304);
    let cached = client.get_with("/files/initrd", &id, &[("if-modified-since", &modified)]);
    assert_eq!(cached.status, 304);

    // An edit is seen by the next request, with a new validator.
    std::thread::sleep(Duration::from_millis(20));
    std::fs::write(env.files(&fp).join("initrd"), b"new").unwrap();
    let fresh = client.get_with("/files/initrd", &id, &[("if-none-match", &etag)]);
    assert_eq!(fresh.status, 200);
    assert_eq!(fresh.body, b"new");
}

#[test]
fn streams_a_200_mib_file_with_flat_memory() {
    let env = Env::new();
    let fp = env.add_machine("gw1");
    let path = env.files(&fp).join("big.img");
    let file = std::fs::File::create(&path).unwrap();
    file.set_len(200 * 1024 * 1024).unwrap();
    drop(file);
    let mut tail = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    use std::io::Seek;
    tail.seek(std::io::SeekFrom::End(-4)).unwrap();
    tail.write_all(b"END!").unwrap();
    drop(tail);

    let server = env.serve();
    let id = env.identity("gw1");
    let baseline = server.peak_rss_kib();
    let mut received = 0u64;
    let mut last = Vec::new();
    let response = env
        .client()
        .request_with("GET", "/files/big.img", Some(&id), &[], |_, chunk| {
            received += chunk.len() as u64;
            last = chunk.to_vec();
        })
        .unwrap();
    assert_eq!(response.status, 200);
    assert_eq!(received, 200 * 1024 * 1024);
    assert!(last.ends_with(b"END!"));
    let peak = server.peak_rss_kib();
    assert!(
        peak < baseline + 32 * 1024,
        "server memory grew from {baseline} KiB to {peak} KiB while streaming 200 MiB"
    );
}

#[test]
fn secrets_work_once_and_expire() {
    let env = Env::new();
    let fp = env.add_machine_with_script(
        "gw1",
        "#!ipxe\nkernel /files/k b2c.extra_args_url=$secrets_url\n",
    );
    write(
        &env.files(&fp).join("secrets"),
        "b2c.minio=\"s3,key-of-$machine_name\"\n",
    );
    env.edit_config("secrets_ttl_secs = 60", "secrets_ttl_secs = 2");
    let _server = env.serve();
    let client = env.client();
    let id = env.identity("gw1");

    let url_of = |script: &str| -> String {
        let start = script.find("extra_args_url=").unwrap() + "extra_args_url=".len();
        let url = script[start..].trim().to_string();
        let prefix = format!("https://localhost:{}", env.port);
        assert!(url.starts_with(&prefix), "{url}");
        url[prefix.len()..].to_string()
    };
    let script = client.get("/boot/ipxe", Some(&id)).unwrap().text();
    let path = url_of(&script);
    assert!(path.starts_with("/secrets/"));

    // No client certificate is needed, and it works exactly once.
    let first = client.get(&path, None).unwrap();
    assert_eq!(first.status, 200);
    assert_eq!(first.text(), "b2c.minio=\"s3,key-of-gw1\"\n");
    assert_eq!(client.get(&path, None).unwrap().status, 404);

    // Each render mints a new token, also once the script is settled (a
    // script with a secrets link is never served from the kept renders); an
    // unused token expires.
    settled(&env.files(&fp).join("boot.ipxe"));
    let path2 = url_of(&client.get("/boot/ipxe", Some(&id)).unwrap().text());
    let path3 = url_of(&client.get("/boot/ipxe", Some(&id)).unwrap().text());
    assert_ne!(path, path2);
    assert_ne!(path2, path3);
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(client.get(&path2, None).unwrap().status, 404);
    assert_eq!(
        client.get("/secrets/not-a-token", None).unwrap().status,
        404
    );
}

#[test]
fn bad_requests_are_answered_and_the_server_keeps_serving() {
    let env = Env::new();
    env.add_machine("gw1");
    let server = env.serve();
    let client = env.client();
    let id = env.identity("gw1");

    assert_eq!(client.get("/nope", Some(&id)).unwrap().status, 404);
    assert_eq!(client.get("/healthz", None).unwrap().text(), "ok\n");
    let bad_query = client
        .get("/boot/ipxe?mac=%0Achain%20http://x", Some(&id))
        .unwrap();
    assert_eq!(bad_query.status, 400);
    let huge = "x".repeat(64 * 1024);
    let oversized = client.request("GET", "/boot/ipxe", Some(&id), &[("x-big", &huge)]);
    assert!(
        oversized.as_ref().map_or(true, |r| r.status == 431),
        "oversized header answered {:?}",
        oversized.map(|r| r.status)
    );

    // Plain-text HTTP and garbage on the TLS port, and a client that
    // connects and says nothing: dropped, others unaffected.
    let mut plain = std::net::TcpStream::connect(server.addr).unwrap();
    plain
        .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut garbage = std::net::TcpStream::connect(server.addr).unwrap();
    garbage
        .write_all(&[0x16, 0x03, 0x01, 0xff, 0xff, 0, 1, 2, 3])
        .unwrap();
    let _silent = std::net::TcpStream::connect(server.addr).unwrap();

    // A client that vanishes mid-download.
    let fp = env.ok(&["machine", "show", "gw1", "--json"]);
    let fp: serde_json::Value = serde_json::from_str(&fp).unwrap();
    let big = env.files(fp["fingerprint"].as_str().unwrap()).join("big");
    std::fs::File::create(&big)
        .unwrap()
        .set_len(64 << 20)
        .unwrap();
    let mut seen = 0usize;
    let aborted = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        client.request_with("GET", "/files/big", Some(&id), &[], |_, chunk| {
            seen += chunk.len();
            if seen > 1 << 20 {
                panic!("vanish");
            }
        })
    }));
    assert!(aborted.is_err());

    assert_eq!(client.get("/boot/ipxe", Some(&id)).unwrap().status, 200);
    assert!(server.child.id() > 0);
}

#[test]
fn curl_fetches_the_script_as_the_readme_shows() {
    let env = Env::new();
    env.add_machine_with_script("gw1", "#!ipxe\necho hello $machine_name\n");
    let _server = env.serve();
    let out = sh(
        &format!(
            "curl -sS --fail --cert machines/gw1/client.crt --key machines/gw1/client.key \
             --cacert ca/ca.crt https://127.0.0.1:{}/boot/ipxe",
            env.port
        ),
        &env.data,
    );
    assert_eq!(out, "#!ipxe\necho hello gw1\n");
    // TLS 1.2 with the suite iPXE negotiates.
    let out = sh(
        &format!(
            "curl -sS --fail --tlsv1.2 --tls-max 1.2 --ciphers ECDHE-RSA-AES128-GCM-SHA256 \
             --cert machines/gw1/client.crt --key machines/gw1/client.key \
             --cacert ca/ca.crt https://localhost:{}/boot/ipxe",
            env.port
        ),
        &env.data,
    );
    assert_eq!(out, "#!ipxe\necho hello gw1\n");
}

/// Takes over an ipxe-boot-server deployment: its CA and client certificate
/// were made with the openssl command line, and its files/<fp>/ tree is kept.
#[test]
fn takes_over_an_openssl_made_deployment() {
    let old = tempfile::tempdir().unwrap();
    let dir = old.path();
    sh(
        "openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.crt -days 3650 \
           -subj '/CN=ipxe-boot-server CA' 2>/dev/null && \
         openssl genrsa -out client.key 2048 2>/dev/null && \
         openssl req -new -key client.key -out client.csr -subj '/CN=gateway-7' && \
         printf 'basicConstraints=CA:FALSE\nextendedKeyUsage=clientAuth\n' > client.ext && \
         openssl x509 -req -in client.csr -CA ca.crt -CAkey ca.key -CAcreateserial \
           -extfile client.ext -out client.crt -days 3650 2>/dev/null && \
         openssl x509 -req -in client.csr -CA ca.crt -CAkey ca.key -CAcreateserial \
           -out client-v1.crt -days 3650 2>/dev/null",
        dir,
    );
    let expected_fp = sh("openssl x509 -in client.crt -noout -fingerprint -sha1", dir)
        .trim()
        .rsplit('=')
        .next()
        .unwrap()
        .replace(':', "")
        .to_lowercase();

    let env = Env::with_init_args(&[
        "--import-ca",
        dir.join("ca.crt").to_str().unwrap(),
        dir.join("ca.key").to_str().unwrap(),
    ]);
    assert_eq!(
        std::fs::read(env.path("ca/ca.crt")).unwrap(),
        std::fs::read(dir.join("ca.crt")).unwrap()
    );
    let fp = env.ok(&["machine", "adopt", dir.join("client.crt").to_str().unwrap()]);
    assert_eq!(fp.trim(), expected_fp);
    let listed = env.ok(&["machine", "list", "--json"]);
    assert!(listed.contains("\"gateway-7\""));
    write(
        &env.files(&expected_fp).join("boot.ipxe"),
        "#!ipxe\nkernel /files/linux initrd=b2c b2c.run=\"-ti img\" fp=${client_cert_fingerprint}\n",
    );

    // An X.509 v1 certificate (openssl x509 -req without extensions) is
    // adopted too; the import turned on the legacy TLS stack that serves it.
    let out = env
        .command(&[
            "machine",
            "adopt",
            dir.join("client-v1.crt").to_str().unwrap(),
            "--name",
            "v1",
        ])
        .output()
        .unwrap();
    assert!(out.status.success());
    let note = String::from_utf8_lossy(&out.stderr);
    assert!(note.contains("X.509 v1"), "{note}");
    assert!(!note.contains("legacy_tls is off"), "{note}");

    // A certificate from another CA cannot be adopted.
    let stranger = Env::new();
    stranger.add_machine("x");
    let err = env.fails(&[
        "machine",
        "adopt",
        stranger.path("machines/x/client.crt").to_str().unwrap(),
    ]);
    assert!(
        err.contains("not issued by this data directory's CA"),
        "{err}"
    );

    let _server = env.serve();
    let id = Identity::from_files(&dir.join("client.crt"), &dir.join("client.key"));
    let response = env.client().get("/boot/ipxe", Some(&id)).unwrap();
    assert_eq!(response.status, 200);
    assert_eq!(
        response.text(),
        format!("#!ipxe\nkernel /files/linux initrd=b2c b2c.run=\"-ti img\" fp={expected_fp}\n")
    );
    // A machine enrolled by bootgate under the imported CA works too.
    env.add_machine("new-one");
    assert_eq!(
        env.client()
            .get("/boot/ipxe", Some(&env.identity("new-one")))
            .unwrap()
            .status,
        200
    );
}

#[test]
fn first_serve_initialises_a_localhost_data_dir() {
    let env = Env::uninitialised();
    // The first run listens on 127.0.0.1:8443 by design; here another port is
    // given so tests can run side by side.
    let listen = format!("127.0.0.1:{}", env.port);
    let server = Server::start(&env, &["--listen", &listen]);
    assert!(env.path("bootgate.toml").is_file());
    let config = std::fs::read_to_string(env.path("bootgate.toml")).unwrap();
    assert!(config.contains("\"localhost\"") && config.contains("\"127.0.0.1\""));
    assert!(config.contains("127.0.0.1:8443"));
    assert!(server.log_text().contains("initialised"));
    assert_eq!(env.client().get("/healthz", None).unwrap().status, 200);
}

#[test]
fn keys_are_private_and_state_survives_bad_commands() {
    let env = Env::new();
    for key in ["ca/ca.key", "server/server.key"] {
        let mode = std::fs::metadata(env.path(key))
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o600, "{key}");
    }
    let fp = env.add_machine("gw1");
    let mode = std::fs::metadata(env.path("machines/gw1/client.key"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    assert_eq!(fp.len(), 40);
    let cert_fp = sh(
        "openssl x509 -in machines/gw1/client.crt -noout -fingerprint -sha1",
        &env.data,
    );
    assert_eq!(
        cert_fp
            .trim()
            .rsplit('=')
            .next()
            .unwrap()
            .replace(':', "")
            .to_lowercase(),
        fp
    );
    assert!(
        sh(
            "openssl pkey -in machines/gw1/client.key -noout -text",
            &env.data
        )
        .contains("2048 bit")
    );
    let enddate = sh("openssl x509 -in ca/ca.crt -noout -startdate", &env.data);
    assert!(enddate.contains("Jan  1 00:00:00 1970 GMT"), "{enddate}");

    let registry = std::fs::read(env.path("registry.json")).unwrap();
    let snapshot = || {
        let mut names: Vec<_> = walk(&env.data);
        names.sort();
        names
    };
    let before = snapshot();

    let err = env.fails(&["machine", "add", "gw1"]);
    assert!(
        err.contains("already exists") && err.lines().count() == 1,
        "{err}"
    );
    let err = env.fails(&["machine", "show", "ghost"]);
    assert!(err.contains("no machine named \"ghost\""), "{err}");
    env.fails(&["machine", "revoke", "ghost"]);
    let err = env.fails(&["machine", "add", "../evil"]);
    assert!(err.contains("invalid machine name"), "{err}");
    let err = env.fails(&["init", "--server-name", "x"]);
    assert!(err.contains("refusing to overwrite"), "{err}");
    let err = env.fails(&["init", "--server-name", "bad name!"]);
    assert!(err.contains("refusing") || err.contains("invalid"), "{err}");

    // An unreadable CA key: a one-line error, nothing changed.
    let key = std::fs::read(env.path("ca/ca.key")).unwrap();
    std::fs::write(env.path("ca/ca.key"), "garbage").unwrap();
    let err = env.fails(&["machine", "add", "gw2"]);
    assert!(err.contains("CA key") && err.lines().count() == 1, "{err}");
    std::fs::write(env.path("ca/ca.key"), &key).unwrap();

    assert_eq!(std::fs::read(env.path("registry.json")).unwrap(), registry);
    assert_eq!(snapshot(), before);
    assert!(!env.path("machines/gw2").exists());
}

#[test]
fn init_validates_its_arguments_and_leaves_nothing_on_failure() {
    let env = Env::uninitialised();
    let err = env.fails(&["init", "--server-name", "not a name"]);
    assert!(err.contains("invalid --server-name"), "{err}");
    let err = env.fails(&[
        "init",
        "--server-name",
        "x",
        "--import-ca",
        "/nonexistent/ca.crt",
        "/nonexistent/ca.key",
    ]);
    assert!(err.contains("/nonexistent/ca.crt"), "{err}");
    let err = env.fails(&["init"]);
    assert!(err.contains("--server-name"), "{err}");
    assert!(!env.data.exists());
    let leftovers: Vec<_> = std::fs::read_dir(env.tmp.path()).unwrap().collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

fn walk(root: &std::path::Path) -> Vec<String> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(root).unwrap() {
        let entry = entry.unwrap();
        let path = entry.path();
        if entry.file_type().unwrap().is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path.strip_prefix(root).unwrap().display().to_string());
        }
    }
    out
}

/// A request that announces a body and never sends it: the server answers,
/// reads no body, and closes the connection at once instead of waiting for
/// it (nothing but the request head's limit bounds reading).
#[test]
fn a_body_that_never_comes_does_not_hold_the_connection() {
    let env = Env::new();
    env.add_machine_with_script("gw1", "#!ipxe\necho hello\n");
    let _server = env.serve();
    let mut client = std::process::Command::new("openssl")
        .args(["s_client", "-quiet", "-connect"])
        .arg(format!("127.0.0.1:{}", env.port))
        .args([
            "-cert",
            "machines/gw1/client.crt",
            "-key",
            "machines/gw1/client.key",
        ])
        .args(["-CAfile", "ca/ca.crt"])
        .current_dir(&env.data)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut stdin = client.stdin.take().unwrap();
    stdin
        .write_all(
            b"GET /boot/ipxe HTTP/1.1\r\nHost: localhost\r\n\
              Content-Length: 1000000\r\n\r\nonly this much",
        )
        .unwrap();
    stdin.flush().unwrap();
    // stdin stays open: the client neither sends the rest nor hangs up.
    wait_until(
        "the server to close the connection",
        Duration::from_secs(8),
        || client.try_wait().unwrap().is_some(),
    );
    let mut answer = String::new();
    std::io::Read::read_to_string(&mut client.stdout.take().unwrap(), &mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.ends_with("echo hello\n"), "{answer}");
    drop(stdin);
}
