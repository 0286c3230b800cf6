//! Shared helpers for the integration tests: a data directory driven through
//! the real `bootgate` binary, a running server, and a real TLS client that can
//! present a client certificate.

#![allow(dead_code)]

use std::io::Read;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use http_body_util::BodyExt;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, pem::PemObject};
use tokio::net::TcpStream;

pub mod garage;

/// The `bootgate` binary under test. The load generator's test
/// (`bench/load`), another package, uses the one `cargo build` put beside it.
pub fn bootgate_bin() -> PathBuf {
    let loader = match option_env!("CARGO_BIN_EXE_bootgate") {
        Some(bin) => return PathBuf::from(bin),
        None => option_env!("CARGO_BIN_EXE_bootgate-load"),
    };
    let bin = Path::new(loader.unwrap_or_default()).with_file_name("bootgate");
    assert!(
        bin.is_file(),
        "{} is missing: build it with `cargo build` (scripts/test does)",
        bin.display()
    );
    bin
}

/// A data directory in a temporary folder.
pub struct Env {
    pub tmp: tempfile::TempDir,
    pub data: PathBuf,
    pub port: u16,
}

impl Env {
    /// A data dir initialised for localhost and 127.0.0.1 on a free port.
    pub fn new() -> Self {
        Self::with_init_args(&[])
    }

    pub fn with_init_args(extra: &[&str]) -> Self {
        Self::with_names(&["localhost", "127.0.0.1"], extra)
    }

    /// A data dir whose first server name is `names[0]` (the public URL).
    pub fn with_names(names: &[&str], extra: &[&str]) -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let data = tmp.path().join("data");
        let port = free_port();
        let env = Env { tmp, data, port };
        let listen = format!("127.0.0.1:{port}");
        let mut args = vec!["init", "--listen", &listen];
        for name in names {
            args.extend_from_slice(&["--server-name", name]);
        }
        args.extend_from_slice(extra);
        env.ok(&args);
        env
    }

    /// An Env whose data directory does not exist yet.
    pub fn uninitialised() -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let data = tmp.path().join("data");
        Env {
            tmp,
            data,
            port: free_port(),
        }
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(bootgate_bin());
        cmd.arg("--data").arg(&self.data).args(args);
        cmd.env_remove("BOOTGATE_DATA");
        cmd
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().unwrap()
    }

    /// Runs a command that must succeed; returns its stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        succeeded(&format!("bootgate {args:?}"), &self.run(args))
    }

    /// Runs a command that must fail; returns its stderr.
    pub fn fails(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            !out.status.success(),
            "bootgate {args:?} unexpectedly succeeded"
        );
        String::from_utf8(out.stderr).unwrap()
    }

    /// Enrolls a machine; returns its fingerprint.
    pub fn add_machine(&self, name: &str) -> String {
        self.ok(&["machine", "add", name]).trim().to_string()
    }

    /// Enrolls a machine that boots `script`; returns its fingerprint.
    pub fn add_machine_with_script(&self, name: &str, script: &str) -> String {
        let fingerprint = self.add_machine(name);
        write(&self.files(&fingerprint).join("boot.ipxe"), script);
        fingerprint
    }

    /// Stores `data` as the shared asset `name`; returns its SHA-256.
    pub fn add_asset(&self, name: &str, data: &[u8]) -> String {
        let file = self.tmp.path().join(format!("asset-src-{name}"));
        std::fs::write(&file, data).unwrap();
        let out = self.ok(&["asset", "add", file.to_str().unwrap(), "--name", name]);
        out.trim().to_string()
    }

    /// Creates the profile `name` from an iPXE script reading `script`, with
    /// `extra` options for `profile create`.
    pub fn add_script_profile(&self, name: &str, script: &str, extra: &[&str]) {
        let file = self.tmp.path().join(format!("{name}.ipxe"));
        write(&file, script);
        let mut args = vec![
            "profile",
            "create",
            name,
            "--script",
            file.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        self.ok(&args);
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.data.join(rel)
    }

    /// Replaces the setting line `from` of `bootgate.toml`, which must be
    /// there as `init` wrote it, with `to`.
    pub fn edit_config(&self, from: &str, to: &str) {
        let path = self.path("bootgate.toml");
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(
            text.contains(from),
            "{from:?} not in bootgate.toml:\n{text}"
        );
        std::fs::write(&path, text.replace(from, to)).unwrap();
    }

    pub fn files(&self, fingerprint: &str) -> PathBuf {
        self.data.join("files").join(fingerprint)
    }

    pub fn identity(&self, machine: &str) -> Identity {
        Identity::from_files(
            &self.path(&format!("machines/{machine}/client.crt")),
            &self.path(&format!("machines/{machine}/client.key")),
        )
    }

    pub fn ca_pem(&self) -> Vec<u8> {
        std::fs::read(self.path("ca/ca.crt")).unwrap()
    }

    pub fn serve(&self) -> Server {
        Server::start(self, &[])
    }

    pub fn client(&self) -> Client {
        Client::new(
            &self.ca_pem(),
            SocketAddr::from(([127, 0, 0, 1], self.port)),
        )
    }
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A running `bootgate serve`, killed on drop.
pub struct Server {
    pub child: Child,
    pub log: PathBuf,
    pub addr: SocketAddr,
    /// The admin listener (a free port, unless `extra` chose one or `off`).
    pub admin: Option<SocketAddr>,
}

impl Server {
    pub fn start(env: &Env, extra: &[&str]) -> Server {
        Self::start_logging(env, extra, "info")
    }

    /// Started with `BOOTGATE_LOG` set to `filter`.
    pub fn start_logging(env: &Env, extra: &[&str], filter: &str) -> Server {
        let log = env.tmp.path().join(format!("serve-{}.log", free_port()));
        let mut args = vec!["serve"];
        args.extend_from_slice(extra);
        // Tests run side by side: never the default admin port.
        let admin_arg = format!("127.0.0.1:{}", free_port());
        let admin = match extra.iter().position(|a| *a == "--admin-listen") {
            Some(i) => extra[i + 1].parse().ok(),
            None => {
                args.extend_from_slice(&["--admin-listen", &admin_arg]);
                admin_arg.parse().ok()
            }
        };
        let child = env
            .command(&args)
            .env("BOOTGATE_LOG", filter)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let server = Server {
            child,
            log,
            addr: SocketAddr::from(([127, 0, 0, 1], env.port)),
            admin,
        };
        server.wait_ready();
        server
    }

    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        let up = |addr: &SocketAddr| std::net::TcpStream::connect(addr).is_ok();
        while Instant::now() < deadline {
            if up(&self.addr) && self.admin.as_ref().is_none_or(up) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("server did not start; log:\n{}", self.log_text());
    }

    /// GET on the admin listener: (status, body).
    pub fn admin_get(&self, path: &str) -> (u16, String) {
        http_get(self.admin.expect("admin listener on"), path)
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Keeps the server's log under `target/e2e-logs/<name>.server.log`.
    pub fn keep_log(&self, name: &str) {
        let kept = logs_dir().join(format!("{name}.server.log"));
        std::fs::write(kept, self.log_text()).unwrap();
    }

    /// Peak resident memory of the server process, in KiB.
    pub fn peak_rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A client certificate and key.
#[derive(Clone)]
pub struct Identity {
    pub certs: Vec<CertificateDer<'static>>,
    pub key_pem: Vec<u8>,
}

impl Identity {
    pub fn from_files(cert: &Path, key: &Path) -> Self {
        Self::from_pem(&std::fs::read(cert).unwrap(), &std::fs::read(key).unwrap())
    }

    pub fn from_pem(cert: &[u8], key: &[u8]) -> Self {
        let certs = CertificateDer::pem_slice_iter(cert)
            .collect::<Result<Vec<_>, _>>()
            .unwrap();
        Identity {
            certs,
            key_pem: key.to_vec(),
        }
    }

    fn key(&self) -> PrivateKeyDer<'static> {
        PrivateKeyDer::from_pem_slice(&self.key_pem).unwrap()
    }
}

pub struct Response {
    pub status: u16,
    pub headers: http::HeaderMap,
    pub body: Vec<u8>,
}

impl Response {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// A real TLS client (rustls + hyper), one connection per request.
pub struct Client {
    roots: Arc<rustls::RootCertStore>,
    addr: SocketAddr,
    runtime: tokio::runtime::Runtime,
    pub tls12_only: bool,
}

impl Client {
    pub fn new(ca_pem: &[u8], addr: SocketAddr) -> Self {
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(ca_pem) {
            roots.add(cert.unwrap()).unwrap();
        }
        Client {
            roots: Arc::new(roots),
            addr,
            runtime: tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap(),
            tls12_only: false,
        }
    }

    fn tls_config(&self, identity: Option<&Identity>) -> rustls::ClientConfig {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let versions: &[&rustls::SupportedProtocolVersion] = if self.tls12_only {
            &[&rustls::version::TLS12]
        } else {
            &[&rustls::version::TLS13, &rustls::version::TLS12]
        };
        let builder = rustls::ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(versions)
            .unwrap()
            .with_root_certificates(self.roots.clone());
        match identity {
            Some(id) => builder
                .with_client_auth_cert(id.certs.clone(), id.key())
                .unwrap(),
            None => builder.with_no_client_auth(),
        }
    }

    pub fn get(&self, path: &str, identity: Option<&Identity>) -> Result<Response, String> {
        self.request("GET", path, identity, &[])
    }

    /// A GET as `identity` with extra request headers.
    pub fn get_with(&self, path: &str, identity: &Identity, headers: &[(&str, &str)]) -> Response {
        self.request("GET", path, Some(identity), headers).unwrap()
    }

    pub fn request(
        &self,
        method: &str,
        path: &str,
        identity: Option<&Identity>,
        headers: &[(&str, &str)],
    ) -> Result<Response, String> {
        self.request_with(method, path, identity, headers, |body, chunk| {
            body.extend_from_slice(chunk)
        })
    }

    /// Sends a request and hands each body chunk to `sink` (the returned
    /// response's body is whatever `sink` kept).
    pub fn request_with(
        &self,
        method: &str,
        path: &str,
        identity: Option<&Identity>,
        headers: &[(&str, &str)],
        mut sink: impl FnMut(&mut Vec<u8>, &[u8]),
    ) -> Result<Response, String> {
        let config = Arc::new(self.tls_config(identity));
        let addr = self.addr;
        self.runtime.block_on(async move {
            let mut sender = connect(addr, config).await?;
            exchange(&mut sender, method, path, headers, &mut sink).await
        })
    }
}

/// The sending half of one HTTP/1.1 connection.
type Sender = hyper::client::conn::http1::SendRequest<http_body_util::Empty<bytes::Bytes>>;

/// Opens a TLS connection to the server at `addr` (named `localhost`) and
/// starts HTTP/1.1 on it.
async fn connect(addr: SocketAddr, config: Arc<rustls::ClientConfig>) -> Result<Sender, String> {
    let tcp = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    let tls = tokio_rustls::TlsConnector::from(config)
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .map_err(|e| format!("tls: {e}"))?;
    let (sender, conn) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tls))
        .await
        .map_err(|e| format!("http: {e}"))?;
    tokio::spawn(conn);
    Ok(sender)
}

/// Sends one request on `sender` and hands each body chunk to `sink` (the
/// returned response's body is whatever `sink` kept).
async fn exchange(
    sender: &mut Sender,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    sink: &mut impl FnMut(&mut Vec<u8>, &[u8]),
) -> Result<Response, String> {
    let mut builder = http::Request::builder()
        .method(method)
        .uri(path)
        .header("host", "localhost");
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    let request = builder
        .body(http_body_util::Empty::<bytes::Bytes>::new())
        .unwrap();
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| format!("http: {e}"))?;
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let mut body = Vec::new();
    let mut incoming = response.into_body();
    while let Some(frame) = incoming.frame().await {
        let frame = frame.map_err(|e| format!("body: {e}"))?;
        if let Some(data) = frame.data_ref() {
            sink(&mut body, data);
        }
    }
    Ok(Response {
        status,
        headers,
        body,
    })
}

/// One kept-alive connection for many requests in a row (a new TLS
/// handshake per request would make thousands of them slow).
pub struct Session {
    addr: SocketAddr,
    config: Arc<rustls::ClientConfig>,
    runtime: tokio::runtime::Runtime,
    sender: Option<Sender>,
}

impl Session {
    pub fn new(env: &Env, identity: Option<Identity>) -> Self {
        let client = env.client();
        let config = Arc::new(client.tls_config(identity.as_ref()));
        Self {
            addr: client.addr,
            config,
            runtime: tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap(),
            sender: None,
        }
    }

    /// GETs `path`, reconnecting if the server closed the connection.
    pub fn get(&mut self, path: &str) -> Response {
        match self.try_get(path) {
            Ok(response) => response,
            Err(_) => {
                self.sender = None;
                self.try_get(path).unwrap()
            }
        }
    }

    fn try_get(&mut self, path: &str) -> Result<Response, String> {
        let (addr, config) = (self.addr, self.config.clone());
        let sender = &mut self.sender;
        self.runtime.block_on(async move {
            if sender.as_ref().is_none_or(|s| s.is_closed()) {
                *sender = Some(connect(addr, config).await?);
            }
            let sender = sender.as_mut().unwrap();
            sender.ready().await.map_err(|e| format!("http: {e}"))?;
            exchange(sender, "GET", path, &[], &mut |body, chunk| {
                body.extend_from_slice(chunk)
            })
            .await
        })
    }
}

/// A plain-HTTP/1.0 GET: (status, body).
pub fn http_get(addr: SocketAddr, path: &str) -> (u16, String) {
    use std::io::Write;
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    write!(stream, "GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").unwrap();
    let answer = read_to_string(stream);
    let (head, body) = answer.split_once("\r\n\r\n").unwrap();
    let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    (status, body.to_string())
}

/// Writes a file, making its folder first.
pub fn write(path: &Path, contents: impl AsRef<[u8]>) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, contents).unwrap();
}

/// Compares `actual` with the golden file `tests/golden/<name>`, the whole
/// output a reader can review. `BOOTGATE_BLESS=1` (re)writes the file instead;
/// review the diff before committing it.
#[track_caller]
pub fn assert_golden(name: &str, actual: &str) {
    let path = repo().join("tests/golden").join(name);
    if std::env::var_os("BOOTGATE_BLESS").is_some_and(|v| v == "1") {
        write(&path, actual);
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_else(|err| {
        panic!(
            "reading {}: {err} (BOOTGATE_BLESS=1 writes it)",
            path.display()
        )
    });
    if expected != actual {
        let first = expected
            .lines()
            .zip(actual.lines())
            .position(|(e, a)| e != a)
            .unwrap_or_else(|| expected.lines().count().min(actual.lines().count()));
        panic!(
            "{} differs from the output, first at line {}; \
             BOOTGATE_BLESS=1 rewrites it (then review the diff). Output:\n{actual}",
            path.display(),
            first + 1
        );
    }
}

/// Polls `condition` until it holds, or fails naming `what`.
pub fn wait_until(what: &str, timeout: Duration, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Runs the `#[ignore]`d test `name` (its full path, e.g. `topic::test`) in
/// a process of its own, for what is measured per process (resident memory),
/// and asserts that it ran and passed.
pub fn run_in_own_process(name: &str) {
    let out = Command::new(std::env::current_exe().unwrap())
        .args([
            name,
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(OWN_PROCESS, name)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprint!("{stderr}");
    assert!(
        out.status.success() && stdout.contains("test result: ok. 1 passed"),
        "{name} in its own process failed:\n{stdout}\n{stderr}"
    );
}

/// Set by `run_in_own_process` to the name of the test it runs.
const OWN_PROCESS: &str = "BOOTGATE_TEST_OWN_PROCESS";

/// Whether this is the process `run_in_own_process` started for `name`.
pub fn in_own_process(name: &str) -> bool {
    std::env::var(OWN_PROCESS).is_ok_and(|v| v == name)
}

/// Asserts that a finished command succeeded; otherwise fails naming it
/// `what` and showing its output.
pub fn assert_succeeded(what: &str, out: &Output) {
    assert!(
        out.status.success(),
        "{what} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The stdout of a finished command that must have succeeded.
pub fn succeeded(what: &str, out: &Output) -> String {
    assert_succeeded(what, out);
    String::from_utf8(out.stdout.clone()).unwrap()
}

/// Asserts that `text` (a `/metrics` answer, say) has a line reading
/// exactly `line`.
pub fn assert_has_line(text: &str, line: &str) {
    assert!(text.lines().any(|l| l == line), "{line} missing:\n{text}");
}

/// Runs a shell command line, asserting success; returns stdout.
pub fn sh(cmd: &str, dir: &Path) -> String {
    let out = Command::new("sh")
        .arg("-c")
        .arg(cmd)
        .current_dir(dir)
        .output()
        .unwrap();
    succeeded(&format!("`{cmd}`"), &out)
}

pub fn read_to_string(mut r: impl Read) -> String {
    let mut s = String::new();
    r.read_to_string(&mut s).unwrap();
    s
}

/// The repository's root.
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Where `scripts/fetch-firmware` puts what it fetches (`$BOOTGATE_CACHE` or
/// the clone's `.cache/`).
pub fn fetched_cache() -> PathBuf {
    std::env::var_os("BOOTGATE_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join(".cache"))
}

/// A test kernel or busybox that `scripts/fetch-firmware` fetched.
pub fn test_boot_file(name: &str) -> PathBuf {
    let path = fetched_cache().join("test-boot").join(name);
    assert!(
        path.is_file(),
        "{} is missing: run scripts/fetch-firmware (scripts/test does)",
        path.display()
    );
    path
}

/// A busybox initramfs (`busybox-<arch>` from `test_boot_file`) whose /init
/// prints the `e2e.*` kernel parameters after a marker, then powers off.
pub fn busybox_initramfs(arch: &str, out: &Path) {
    let busybox = std::fs::read(test_boot_file(&format!("busybox-{arch}"))).unwrap();
    let init = b"#!/bin/busybox sh\n\
        /bin/busybox mount -t proc proc /proc\n\
        set -- $(/bin/busybox cat /proc/cmdline)\n\
        m=\n\
        for a in \"$@\"; do case \"$a\" in e2e.*) m=\"$m $a\";; esac; done\n\
        /bin/busybox echo \"E2E-INIT:$m\"\n\
        /bin/busybox poweroff -f\n";
    use cpio::newc::Builder;
    let dir = |name: &str| (Builder::new(name).mode(0o040755).nlink(2), Vec::new());
    let entries = vec![
        dir("bin"),
        dir("dev"),
        dir("proc"),
        (
            Builder::new("dev/console")
                .mode(0o020600)
                .rdev_major(5)
                .rdev_minor(1),
            Vec::new(),
        ),
        (Builder::new("bin/busybox").mode(0o100755), busybox),
        (Builder::new("init").mode(0o100755), init.to_vec()),
    ];
    let file = std::fs::File::create(out).unwrap();
    cpio::write_cpio(
        entries
            .into_iter()
            .map(|(b, data)| (b, std::io::Cursor::new(data))),
        file,
    )
    .unwrap();
}

/// Where end-to-end tests keep console and server logs.
pub fn logs_dir() -> PathBuf {
    let dir = repo().join("target/e2e-logs");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
