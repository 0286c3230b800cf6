//! Boot configuration from git, end to end: real `git`, bare remotes on
//! disk (and an HTTP remote that never answers), the real `bootgate` binary
//! syncing, and a running server answering real TLS clients.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::support::*;

/// A bare remote and a clone to commit in.
struct Remote {
    bare: PathBuf,
    work: PathBuf,
}

impl Remote {
    fn new(tmp: &Path) -> Self {
        let bare = tmp.join("remote.git");
        let work = tmp.join("work");
        git(
            tmp,
            &[
                "init",
                "--quiet",
                "--bare",
                "-b",
                "main",
                bare.to_str().unwrap(),
            ],
        );
        git(
            tmp,
            &["init", "--quiet", "-b", "main", work.to_str().unwrap()],
        );
        Remote { bare, work }
    }

    fn url(&self) -> String {
        format!("file://{}", self.bare.display())
    }

    fn write(&self, rel: &str, text: impl AsRef<[u8]>) {
        let path = self.work.join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    fn symlink(&self, rel: &str, target: &str) {
        let path = self.work.join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::os::unix::fs::symlink(target, path).unwrap();
    }

    fn remove(&self, rel: &str) {
        std::fs::remove_file(self.work.join(rel)).unwrap();
    }

    /// Commits everything and pushes; returns the commit id.
    fn commit(&self, subject: &str) -> String {
        git(&self.work, &["add", "-A"]);
        git(&self.work, &["commit", "--quiet", "-m", subject]);
        git(
            &self.work,
            &["push", "--quiet", "--force", &self.url(), "main"],
        );
        git(&self.work, &["rev-parse", "HEAD"]).trim().to_string()
    }
}

fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args([
            "-c",
            "user.name=Ada Operator",
            "-c",
            "user.email=ada@example.com",
        ])
        .args(args)
        .current_dir(dir)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .output()
        .expect("running git (install Debian's git package)");
    succeeded(&format!("git {args:?}"), &out)
}

fn script(version: &str) -> String {
    format!(
        "#!ipxe\necho {version} for ${{machine_name}} on ${{mac}}\nkernel /files/vmlinuz\ninitrd /files/initrd.img\nboot\n",
    )
}

/// A machine's script as served now.
fn served_script(env: &Env, machine: &str) -> String {
    let response = env
        .client()
        .get(
            "/boot/ipxe?mac=52:54:00:00:00:01",
            Some(&env.identity(machine)),
        )
        .unwrap();
    assert_eq!(response.status, 200, "{}", response.text());
    response.text()
}

fn served_file(env: &Env, machine: &str, path: &str) -> (u16, String) {
    let response = env
        .client()
        .get(path, Some(&env.identity(machine)))
        .unwrap();
    (response.status, response.text())
}

/// A data directory with gw-01 enrolled, whose configuration comes from a
/// remote holding a first good commit (already synced).
fn setup() -> (Env, Remote, String) {
    let env = Env::new();
    let fp = env.add_machine("gw-01");
    let remote = Remote::new(env.tmp.path());
    remote.write(&format!("files/{fp}/boot.ipxe"), script("v1"));
    remote.write(&format!("files/{fp}/vmlinuz"), "kernel v1");
    remote.write("profiles/.keep", "");
    remote.write("files/default/initrd.img", "not for gw-01");
    remote.write(&format!("files/{fp}/initrd.img"), "initrd v1");
    remote.write("README.md", "boot configuration of the lab\n");
    remote.commit("first configuration");
    let out = env.ok(&["config", "init", "--remote", &remote.url()]);
    assert!(out.contains("applied"), "{out}");
    (env, remote, fp)
}

/// What a bad commit is, how to make it, and the problem it must be rejected for.
type BadCommit<'a> = (&'a str, Box<dyn Fn() + 'a>, &'a str);

fn sync_rejected(env: &Env) -> String {
    let out = env.run(&["config", "sync"]);
    assert!(!out.status.success(), "sync of a bad commit succeeded");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(text.contains("rejected"), "{text}");
    text
}

#[test]
fn good_commits_go_live_and_bad_ones_are_rejected() {
    let (env, remote, fp) = setup();
    let _server = env.serve();
    assert!(served_script(&env, "gw-01").contains("echo v1 for gw-01 on 52:54:00:00:00:01"));
    assert_eq!(
        served_file(&env, "gw-01", "/files/vmlinuz"),
        (200, "kernel v1".into())
    );
    // The repository's other files are not served, nor kept beside the tree.
    assert_eq!(served_file(&env, "gw-01", "/files/README.md").0, 404);

    // A good commit is served from the next request on, without restart.
    remote.write(&format!("files/{fp}/boot.ipxe"), script("v2"));
    remote.write(&format!("files/{fp}/vmlinuz"), "kernel v2");
    let v2 = remote.commit("kernel v2");
    assert!(env.ok(&["config", "sync"]).contains("applied"));
    assert!(served_script(&env, "gw-01").contains("echo v2"));
    assert_eq!(
        served_file(&env, "gw-01", "/files/vmlinuz"),
        (200, "kernel v2".into())
    );
    assert!(env.ok(&["config", "sync"]).contains("unchanged"));

    // Each bad commit is rejected with what is wrong, and v2 stays served.
    let cases: Vec<BadCommit> = vec![
        (
            "broken template",
            Box::new(|| remote.write(&format!("files/{fp}/boot.ipxe"), "echo no signature\n")),
            "does not start with #!ipxe",
        ),
        (
            "missing file",
            Box::new(|| remote.remove(&format!("files/{fp}/initrd.img"))),
            "/files/initrd.img is in none of its folders",
        ),
        (
            "symlink to /etc/shadow",
            Box::new(|| remote.symlink(&format!("files/{fp}/shadow"), "/etc/shadow")),
            "points to an absolute path",
        ),
        (
            "symlink into another folder",
            Box::new(|| remote.symlink(&format!("files/{fp}/other"), "../default/initrd.img")),
            "points outside its folder",
        ),
        (
            "broken vars.toml",
            Box::new(|| remote.write(&format!("files/{fp}/vars.toml"), "x = [1,")),
            "vars.toml: does not parse",
        ),
    ];
    for (what, break_it, problem) in &cases {
        git(&remote.work, &["reset", "--quiet", "--hard", &v2]);
        break_it();
        remote.commit(what);
        let out = sync_rejected(&env);
        assert!(out.contains(problem), "{what}: {out}");
        assert!(served_script(&env, "gw-01").contains("echo v2"), "{what}");
        assert_eq!(served_file(&env, "gw-01", "/files/shadow").0, 404);
    }

    // A file over the size limit is refused before it is written out.
    env.edit_config("max_file_mib = 1024", "max_file_mib = 1");
    git(&remote.work, &["reset", "--quiet", "--hard", &v2]);
    remote.write(
        &format!("files/{fp}/huge.img"),
        vec![7u8; 2 * 1024 * 1024 + 1],
    );
    remote.commit("a huge image");
    assert!(sync_rejected(&env).contains("huge.img: is 2 MiB, more than max_file_mib = 1"));

    // History records both kinds, newest first, with the problems.
    let log = env.ok(&["config", "log"]);
    let first = log.lines().next().unwrap();
    assert!(
        first.contains("rejected") && first.contains("a huge image"),
        "{log}"
    );
    assert!(
        log.contains("applied") && log.contains("kernel v2"),
        "{log}"
    );
    assert!(log.contains("points to an absolute path"), "{log}");
    let status = env.ok(&["config", "status"]);
    assert!(
        status.contains(&v2) && status.contains("rejected:"),
        "{status}"
    );

    // A force-push that rewrites history is followed.
    git(&remote.work, &["reset", "--quiet", "--hard", &v2]);
    git(&remote.work, &["reset", "--quiet", "--hard", "HEAD~1"]);
    remote.write(&format!("files/{fp}/boot.ipxe"), script("v3"));
    let v3 = remote.commit("rewritten history");
    assert!(env.ok(&["config", "sync"]).contains("applied"));
    assert!(served_script(&env, "gw-01").contains("echo v3"));

    // Pin an earlier commit: served until unpin, syncs do not move it.
    assert!(env.ok(&["config", "pin", &v2]).contains("applied"));
    assert!(served_script(&env, "gw-01").contains("echo v2"));
    assert!(env.ok(&["config", "sync"]).contains("pinned"));
    assert!(served_script(&env, "gw-01").contains("echo v2"));
    assert!(env.ok(&["config", "status"]).contains("(pinned)"));
    env.ok(&["config", "unpin"]);
    assert!(served_script(&env, "gw-01").contains("echo v3"));
    let status = env.ok(&["config", "status"]);
    assert!(
        status.contains(&v3) && !status.contains("(pinned)"),
        "{status}"
    );
    assert!(
        env.fails(&["config", "pin", "0123456789abcdef"])
            .contains("not a commit")
    );
}

/// POST on the admin listener: (status, body).
fn admin_post(addr: std::net::SocketAddr, path: &str, token: Option<&str>) -> (u16, String) {
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(120)))
        .unwrap();
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    write!(
        stream,
        "POST {path} HTTP/1.0\r\nHost: localhost\r\n{auth}Content-Length: 0\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    let (head, body) = answer.split_once("\r\n\r\n").unwrap();
    (
        head.split_whitespace().nth(1).unwrap().parse().unwrap(),
        body.to_string(),
    )
}

#[test]
fn http_trigger_needs_the_token_and_reports_what_happened() {
    let (env, remote, fp) = setup();
    let token = env.tmp.path().join("sync.token");
    std::fs::write(&token, "tr1gger-t0ken\n").unwrap();
    env.ok(&[
        "config",
        "init",
        "--remote",
        &remote.url(),
        "--trigger-token-file",
        token.to_str().unwrap(),
        "--no-sync",
    ]);
    let server = env.serve();
    let admin = server.admin.unwrap();
    remote.write(&format!("files/{fp}/boot.ipxe"), script("v2"));
    let v2 = remote.commit("v2 through the pipeline");

    assert_eq!(admin_post(admin, "/config/sync", None).0, 401);
    assert_eq!(
        admin_post(admin, "/config/sync", Some("tr1gger-t0kem")).0,
        401
    );
    assert!(served_script(&env, "gw-01").contains("echo v1"));

    let (status, body) = admin_post(admin, "/config/sync", Some("tr1gger-t0ken"));
    assert_eq!(status, 200, "{body}");
    assert!(
        body.contains("applied") && body.contains(&v2[..12]),
        "{body}"
    );
    assert!(served_script(&env, "gw-01").contains("echo v2"));

    remote.write(&format!("files/{fp}/boot.ipxe"), "not a script\n");
    remote.commit("oops");
    let (status, body) = admin_post(admin, "/config/sync", Some("tr1gger-t0ken"));
    assert_eq!(status, 422, "{body}");
    assert!(body.contains("does not start with #!ipxe"), "{body}");
    assert!(served_script(&env, "gw-01").contains("echo v2"));

    let (_, page) = server.admin_get("/");
    assert!(
        page.contains(&v2[..12]) && page.contains("last rejected"),
        "{page}"
    );
    let (_, metrics) = server.admin_get("/metrics");
    assert!(
        metrics.contains("bootgate_config_rejections_total 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("bootgate_config_live_commit_age_seconds "),
        "{metrics}"
    );
}

#[test]
fn concurrent_syncs_apply_once() {
    let (env, remote, fp) = setup();
    remote.write(&format!("files/{fp}/boot.ipxe"), script("v2"));
    let v2 = remote.commit("v2");
    let children: Vec<_> = (0..4)
        .map(|_| {
            env.command(&["config", "sync"])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let mut applied = 0;
    for child in children {
        let out = child.wait_with_output().unwrap();
        let text = succeeded("config sync", &out);
        applied += usize::from(text.contains("applied"));
    }
    assert_eq!(applied, 1, "exactly one sync applies the commit");
    let live = std::fs::read_to_string(env.path("config/live.json")).unwrap();
    assert!(live.contains(&v2), "{live}");
    let log = env.ok(&["config", "log"]);
    assert_eq!(log.matches(&v2[..12]).count(), 1, "{log}");
}

/// What `config/trees` holds besides finished trees.
fn leftovers(env: &Env) -> Vec<String> {
    std::fs::read_dir(env.path("config/trees"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.'))
        .collect()
}

#[test]
fn killed_sync_and_server_leave_a_complete_tree() {
    let (env, remote, fp) = setup();
    let served_version = |env: &Env| -> String {
        let text = served_script(env, "gw-01");
        text.split_whitespace().nth(2).unwrap().to_string()
    };
    for (round, delay_ms) in [0u64, 30, 80, 150, 300, 600].into_iter().enumerate() {
        // Enough files that a sync takes a while to write out, all
        // stamped with the commit's version.
        let version = format!("r{round}");
        for i in 0..300 {
            remote.write(
                &format!("files/{fp}/many/{i}.txt"),
                format!("{version} file {i}"),
            );
        }
        remote.write(&format!("files/{fp}/boot.ipxe"), script(&version));
        remote.commit(&format!("round {round}"));

        let mut server = env.serve();
        let mut sync = env
            .command(&["config", "sync"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(delay_ms));
        sync.kill().unwrap();
        sync.wait().unwrap();
        server.child.kill().unwrap();
        server.child.wait().unwrap();
        drop(server);

        // Whatever the moment of the kill, a restart serves one whole
        // commit: the script and every file of the same version.
        let server = env.serve();
        let served = served_version(&env);
        if served != "v1" {
            for i in [0, 150, 299] {
                let (status, body) = served_file(&env, "gw-01", &format!("/files/many/{i}.txt"));
                assert_eq!(
                    (status, body),
                    (200, format!("{served} file {i}")),
                    "after {delay_ms} ms"
                );
            }
        }
        // The next sync finishes the job and cleans up.
        env.ok(&["config", "sync"]);
        assert_eq!(served_version(&env), version);
        assert_eq!(leftovers(&env), Vec::<String>::new());
        drop(server);
    }
}

#[test]
fn vanished_or_hanging_remote_keeps_the_last_good_tree() {
    let (env, remote, _fp) = setup();
    let _server = env.serve();

    // The remote disappears: a clear error, the same script.
    let moved = env.tmp.path().join("moved.git");
    std::fs::rename(&remote.bare, &moved).unwrap();
    let err = env.fails(&["config", "sync"]);
    assert!(err.contains("fetching branch main"), "{err}");
    assert!(served_script(&env, "gw-01").contains("echo v1"));
    std::fs::rename(&moved, &remote.bare).unwrap();
    assert!(env.ok(&["config", "sync"]).contains("unchanged"));

    // A remote that accepts the connection and never answers is given up on.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let _holder = std::thread::spawn(move || {
        let held: Vec<_> = listener.incoming().take(4).collect();
        std::thread::sleep(Duration::from_secs(600));
        drop(held);
    });
    let toml = env.path("bootgate.toml");
    let text = std::fs::read_to_string(&toml).unwrap();
    let text = text
        .replace(
            &remote.url(),
            &format!("http://127.0.0.1:{port}/config.git"),
        )
        .replace("timeout_secs = 300", "timeout_secs = 3");
    std::fs::write(&toml, text).unwrap();
    let err = env.fails(&["config", "sync"]);
    assert!(err.contains("did not finish within 3s"), "{err}");
    assert!(served_script(&env, "gw-01").contains("echo v1"));
}

/// The seed's Raspberry Pi gateway script, as the 2023 server had it.
const ORIGINAL_SCRIPT: &str = "#!ipxe\n\
\n\
kernel /files/linux-arm64-6.5.1 initrd=b2c b2c.run=\"-ti registry.freedesktop.org/mupuf/valve-infra/valve-infra-container:aarch64\" b2c.ntp_peer=auto b2c.cache_device=/dev/mmcblk0p2\n\
initrd --name b2c /files/initramfs.linux_arm64.cpio.xz\n\
boot\n";

#[test]
fn original_files_repository_is_served_unchanged() {
    let env = Env::new();
    let fp = env.add_machine("gw-01");
    env.add_machine("newcomer");
    // The 2023 deployment's files/ folder was itself the repository.
    let remote = Remote::new(env.tmp.path());
    remote.write(&format!("{fp}/boot.ipxe"), ORIGINAL_SCRIPT);
    remote.write(&format!("{fp}/linux-arm64-6.5.1"), "arm64 kernel");
    remote.write(&format!("{fp}/initramfs.linux_arm64.cpio.xz"), "initramfs");
    remote.write(
        "default/boot.ipxe",
        "#!ipxe\necho unknown machine ${client_cert_fingerprint}\nshell\n",
    );
    remote.commit("gateway gw-01");
    env.ok(&[
        "config",
        "init",
        "--remote",
        remote.bare.to_str().unwrap(),
        "--branch",
        "main",
    ]);
    let _server = env.serve();

    assert_eq!(served_script(&env, "gw-01"), ORIGINAL_SCRIPT);
    assert_eq!(
        served_file(&env, "gw-01", "/files/linux-arm64-6.5.1"),
        (200, "arm64 kernel".into())
    );
    let newcomer = served_script(&env, "newcomer");
    assert!(
        newcomer.starts_with("#!ipxe\necho unknown machine "),
        "{newcomer}"
    );
    assert!(
        !newcomer.contains("${client_cert_fingerprint}"),
        "{newcomer}"
    );
    assert_eq!(
        served_file(&env, "newcomer", "/files/linux-arm64-6.5.1").0,
        404
    );
}

/// `git daemon` on loopback, killed on drop.
struct Daemon(std::process::Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn syncs_from_a_git_daemon() {
    let env = Env::new();
    let fp = env.add_machine("gw-01");
    let remote = Remote::new(env.tmp.path());
    remote.write(
        &format!("files/{fp}/boot.ipxe"),
        "#!ipxe\necho over git://\n",
    );
    remote.commit("over the git protocol");
    let port = free_port().to_string();
    let base = env.tmp.path().to_str().unwrap().to_string();
    // `git daemon` would run `git-daemon` as a child of its own, which
    // killing `git` leaves behind: start the daemon itself.
    let exec_path = Command::new("git").arg("--exec-path").output().unwrap();
    let exec_path = String::from_utf8(exec_path.stdout).unwrap();
    let _daemon = Daemon(
        Command::new(Path::new(exec_path.trim()).join("git-daemon"))
            .args(["--reuseaddr", "--listen=127.0.0.1", "--export-all"])
            .arg(format!("--port={port}"))
            .arg(format!("--base-path={base}"))
            .arg(&base)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("running git-daemon (Debian's git package)"),
    );
    wait_until("git daemon listening", Duration::from_secs(30), || {
        std::net::TcpStream::connect(format!("127.0.0.1:{port}")).is_ok()
    });
    let url = format!("git://127.0.0.1:{port}/remote.git");
    assert!(
        env.ok(&["config", "init", "--remote", &url])
            .contains("applied")
    );
    let _server = env.serve();
    assert_eq!(served_script(&env, "gw-01"), "#!ipxe\necho over git://\n");
}
