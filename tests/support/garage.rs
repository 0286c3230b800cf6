//! A real Garage object store for the scratch-space tests: one node on
//! loopback with a throw-away configuration and data folder (sqlite,
//! replication factor 1), its layout assigned and applied, killed on drop.
//! The binary comes from `scripts/build-garage`.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::{free_port, http_get, wait_until};

pub const VERSION: &str = "2.5.0";
pub const REGION: &str = "garage";

/// The cached binary; fails naming the script that builds it.
pub fn binary() -> PathBuf {
    let cache = std::env::var_os("BOOTGATE_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").unwrap()).join(".cache/bootgate")
        });
    let bin = cache.join(format!("garage-{VERSION}/bin/garage"));
    assert!(
        bin.is_file(),
        "{} is missing: run scripts/build-garage (scripts/test does) to build Garage {VERSION}",
        bin.display()
    );
    bin
}

pub struct Garage {
    pub dir: PathBuf,
    pub config: PathBuf,
    pub admin_port: u16,
    pub s3_port: u16,
    pub admin_token: String,
    child: Option<Child>,
}

impl Garage {
    /// A node in `dir` (created), started, with its layout applied.
    pub fn start(dir: &Path) -> Self {
        std::fs::create_dir_all(dir).unwrap();
        let (rpc, s3_port, admin_port) = (free_port(), free_port(), free_port());
        let admin_token = hex(32);
        let config = dir.join("garage.toml");
        std::fs::write(
            &config,
            format!(
                "metadata_dir = \"{meta}\"\n\
                 data_dir = \"{data}\"\n\
                 db_engine = \"sqlite\"\n\
                 replication_factor = 1\n\
                 rpc_bind_addr = \"127.0.0.1:{rpc}\"\n\
                 rpc_public_addr = \"127.0.0.1:{rpc}\"\n\
                 rpc_secret = \"{secret}\"\n\
                 [s3_api]\n\
                 s3_region = \"{REGION}\"\n\
                 api_bind_addr = \"127.0.0.1:{s3_port}\"\n\
                 [admin]\n\
                 api_bind_addr = \"127.0.0.1:{admin_port}\"\n\
                 admin_token = \"{admin_token}\"\n",
                meta = dir.join("meta").display(),
                data = dir.join("data").display(),
                secret = hex(32),
            ),
        )
        .unwrap();
        set_mode(&config, 0o600);
        let mut garage = Self {
            dir: dir.to_path_buf(),
            config,
            admin_port,
            s3_port,
            admin_token,
            child: None,
        };
        garage.run_server();
        let id = garage.cli(&["node", "id", "-q"]);
        let id = id.trim().split('@').next().unwrap().to_string();
        garage.cli(&["layout", "assign", "-z", "dc1", "-c", "1G", &id]);
        garage.cli(&["layout", "apply", "--version", "1"]);
        garage.wait_healthy();
        garage
    }

    fn run_server(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("garage.log"))
            .unwrap();
        let child = Command::new(binary())
            .arg("-c")
            .arg(&self.config)
            .arg("server")
            .env("RUST_LOG", "garage=warn")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        self.child = Some(child);
        let admin = format!("127.0.0.1:{}", self.admin_port);
        wait_until(
            "Garage's admin API to listen",
            Duration::from_secs(60),
            || std::net::TcpStream::connect(&admin).is_ok(),
        );
    }

    fn wait_healthy(&self) {
        let admin = format!("127.0.0.1:{}", self.admin_port).parse().unwrap();
        wait_until("Garage to report healthy", Duration::from_secs(60), || {
            http_get(admin, "/health").0 == 200
        });
    }

    /// Runs the garage CLI against this node; returns stdout.
    pub fn cli(&self, args: &[&str]) -> String {
        let out = Command::new(binary())
            .arg("-c")
            .arg(&self.config)
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "garage {args:?} failed: {}\nserver log:\n{}",
            String::from_utf8_lossy(&out.stderr),
            self.log_text()
        );
        String::from_utf8(out.stdout).unwrap()
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(self.dir.join("garage.log")).unwrap_or_default()
    }

    pub fn admin_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.admin_port)
    }

    pub fn s3_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.s3_port)
    }

    /// Stops the node (the store is "down"); `restart` brings it back.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub fn restart(&mut self) {
        self.stop();
        self.run_server();
        self.wait_healthy();
    }

    /// The `[scratch]` section pointing at this node, its token in a 0600 file.
    pub fn scratch_section(&self, extra: &str) -> String {
        let token = self.dir.join("admin-token");
        std::fs::write(&token, &self.admin_token).unwrap();
        set_mode(&token, 0o600);
        format!(
            "\n[scratch]\nprovider = \"garage\"\nadmin_url = \"{}\"\nadmin_token_file = \"{}\"\n\
             s3_endpoint = \"{}\"\nregion = \"{REGION}\"\n{extra}",
            self.admin_url(),
            token.display(),
            self.s3_url()
        )
    }
}

impl Drop for Garage {
    fn drop(&mut self) {
        self.stop();
    }
}

fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

fn hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut buf))
        .unwrap();
    buf.iter().map(|b| format!("{b:02x}")).collect()
}

/// A real S3 client (Debian's s3cmd) holding one key pair.
pub struct S3Client {
    config: PathBuf,
}

impl S3Client {
    pub fn new(dir: &Path, endpoint: &str, access_key: &str, secret_key: &str) -> Self {
        let host = endpoint.trim_start_matches("http://").trim_end_matches('/');
        let config = dir.join(format!("s3cfg-{access_key}"));
        std::fs::write(
            &config,
            format!(
                "[default]\naccess_key = {access_key}\nsecret_key = {secret_key}\n\
                 host_base = {host}\nhost_bucket = {host}\nuse_https = False\n\
                 bucket_location = {REGION}\nsignature_v2 = False\n"
            ),
        )
        .unwrap();
        set_mode(&config, 0o600);
        Self { config }
    }

    /// Runs s3cmd: Ok(stdout) or Err(stderr).
    pub fn run(&self, args: &[&str]) -> Result<String, String> {
        let out = Command::new("s3cmd")
            .arg("-c")
            .arg(&self.config)
            .args(args)
            .output()
            .expect("s3cmd (Debian package s3cmd, installed by scripts/test)");
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        }
    }
}
