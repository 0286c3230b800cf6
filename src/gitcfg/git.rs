//! Running Debian's `git` command on the bare repository bootgate fetches into.
//!
//! Every run gets a clean environment: no user or system configuration
//! (`HOME` points into the data directory, `GIT_CONFIG_NOSYSTEM`,
//! `GIT_CONFIG_GLOBAL=/dev/null`), never a password prompt
//! (`GIT_TERMINAL_PROMPT=0`, `ssh -o BatchMode=yes`), and a deadline: a git
//! that has not finished by then is killed with its whole process group, so a
//! hanging remote cannot hold a sync (and its lock) forever.

use std::ffi::OsString;
use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::config::GitConfig;

/// The bare repository and how to reach the remote.
pub struct Git {
    git_dir: PathBuf,
    home: PathBuf,
    timeout: Duration,
    ssh_key: Option<PathBuf>,
    credentials_file: Option<PathBuf>,
}

impl Git {
    pub fn new(git_dir: PathBuf, home: PathBuf, config: &GitConfig) -> Self {
        Self {
            git_dir,
            home,
            timeout: Duration::from_secs(config.timeout_secs),
            ssh_key: config.ssh_key.clone(),
            credentials_file: config.credentials_file.clone(),
        }
    }

    /// Creates the bare repository unless it is there (`git init` is idempotent).
    pub fn init(&self) -> Result<()> {
        std::fs::create_dir_all(&self.git_dir)
            .with_context(|| format!("creating {}", self.git_dir.display()))?;
        self.run(&["init", "--quiet", "--bare"])?;
        Ok(())
    }

    /// Fetches `branch` of `remote` into `refs/remotes/origin/<branch>`,
    /// accepting rewritten history (a force-push), and returns its commit.
    pub fn fetch(&self, remote: &str, branch: &str) -> Result<String> {
        let refspec = format!("+refs/heads/{branch}:{}", tracking_ref(branch));
        self.run(&["fetch", "--quiet", "--no-tags", "--", remote, &refspec])
            .with_context(|| format!("fetching branch {branch} of {remote}"))?;
        self.commit_of(&tracking_ref(branch))
    }

    /// The full commit id `rev` names, if it names a commit here.
    pub fn commit_of(&self, rev: &str) -> Result<String> {
        let out = self
            .run(&[
                "rev-parse",
                "--verify",
                "--quiet",
                &format!("{rev}^{{commit}}"),
            ])
            .with_context(|| {
                format!(
                    "{rev} is not a commit bootgate has fetched; run `bootgate config sync` first"
                )
            })?;
        Ok(String::from_utf8_lossy(&out).trim().to_string())
    }

    /// Author, subject and commit time of a commit.
    pub fn describe(&self, commit: &str) -> Result<CommitInfo> {
        let out = self.run(&["log", "-1", "--format=%an <%ae>%x00%s%x00%ct", commit])?;
        let text = String::from_utf8_lossy(&out);
        let mut parts = text.trim_end_matches('\n').splitn(3, '\0');
        let author = parts.next().unwrap_or_default().to_string();
        let subject = parts.next().unwrap_or_default().to_string();
        let time = parts.next().unwrap_or_default().trim().parse().unwrap_or(0);
        Ok(CommitInfo {
            commit: commit.to_string(),
            author,
            subject,
            time,
        })
    }

    /// Every entry of a commit's tree, recursively, with blob sizes.
    pub fn list_tree(&self, commit: &str) -> Result<Vec<TreeEntry>> {
        let out = self.run(&["ls-tree", "-r", "-l", "-z", "--full-tree", commit])?;
        out.split(|b| *b == 0)
            .filter(|line| !line.is_empty())
            .map(TreeEntry::parse)
            .collect()
    }

    /// Writes a commit's files (and symlinks) under `dir`, which need not exist.
    pub fn checkout(&self, commit: &str, dir: &Path) -> Result<()> {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let index = tempfile::Builder::new()
            .prefix(".index-")
            .tempfile_in(&self.home)
            .context("creating a temporary git index")?;
        let checkout = Checkout {
            index: index.path(),
            work_tree: dir,
        };
        self.run_with(&["read-tree".into(), commit.into()], Some(&checkout))?;
        self.run_with(
            &["checkout-index".into(), "--all".into(), "--force".into()],
            Some(&checkout),
        )?;
        Ok(())
    }

    fn run(&self, args: &[&str]) -> Result<Vec<u8>> {
        let args: Vec<OsString> = args.iter().map(OsString::from).collect();
        self.run_with(&args, None)
    }

    fn run_with(&self, args: &[OsString], checkout: Option<&Checkout>) -> Result<Vec<u8>> {
        let mut cmd = Command::new("git");
        cmd.env_clear();
        if let Some(path) = std::env::var_os("PATH") {
            cmd.env("PATH", path);
        }
        cmd.env("HOME", &self.home)
            .env("LC_ALL", "C")
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .env("GIT_TERMINAL_PROMPT", "0")
            .env("GIT_SSH_COMMAND", self.ssh_command());
        cmd.arg("--git-dir").arg(&self.git_dir);
        if let Some(checkout) = checkout {
            cmd.env("GIT_INDEX_FILE", checkout.index)
                .arg("--work-tree")
                .arg(checkout.work_tree);
        }
        cmd.args(["-c", "core.symlinks=true", "-c", "core.hooksPath=/dev/null"])
            // A remote that trickles bytes is as stuck as one that sends none.
            .args([
                "-c",
                "http.lowSpeedLimit=1000",
                "-c",
                "http.lowSpeedTime=60",
            ]);
        if let Some(file) = &self.credentials_file {
            let mut helper = OsString::from("credential.helper=store --file=");
            helper.push(file);
            cmd.arg("-c").arg(helper);
        }
        cmd.args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0);
        let what = args
            .first()
            .map(|a| a.to_string_lossy().into_owned())
            .unwrap_or_default();
        let mut child = cmd
            .spawn()
            .context("running git (install Debian's git package)")?;
        let stdout = drain(child.stdout.take().expect("piped stdout"));
        let stderr = drain(child.stderr.take().expect("piped stderr"));
        let deadline = Instant::now() + self.timeout;
        let status = loop {
            if let Some(status) = child.try_wait().context("waiting for git")? {
                break status;
            }
            if Instant::now() >= deadline {
                let group = rustix::process::Pid::from_child(&child);
                let _ = rustix::process::kill_process_group(group, rustix::process::Signal::KILL);
                let _ = child.wait();
                bail!(
                    "git {what} did not finish within {}s and was stopped (is the remote reachable?)",
                    self.timeout.as_secs()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let out = stdout.join().unwrap_or_default();
        let err = stderr.join().unwrap_or_default();
        if !status.success() {
            let err = String::from_utf8_lossy(&err);
            bail!("git {what} failed ({status}): {}", err.trim());
        }
        Ok(out)
    }

    fn ssh_command(&self) -> OsString {
        let mut ssh = OsString::from(
            "ssh -o BatchMode=yes -o ConnectTimeout=30 -o ServerAliveInterval=15 -o StrictHostKeyChecking=accept-new",
        );
        if let Some(key) = &self.ssh_key {
            ssh.push(" -o IdentitiesOnly=yes -i '");
            ssh.push(key);
            ssh.push("'");
        }
        ssh
    }
}

/// A temporary index and the folder a commit is written into.
struct Checkout<'a> {
    index: &'a Path,
    work_tree: &'a Path,
}

fn drain(mut pipe: impl Read + Send + 'static) -> std::thread::JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = pipe.read_to_end(&mut buf);
        buf
    })
}

/// Where a fetched branch is kept in the bare repository.
pub fn tracking_ref(branch: &str) -> String {
    format!("refs/remotes/origin/{branch}")
}

/// Who made a commit and why.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize, PartialEq)]
pub struct CommitInfo {
    pub commit: String,
    pub author: String,
    pub subject: String,
    /// Commit time, seconds since the epoch.
    pub time: i64,
}

/// One line of `git ls-tree -r -l`.
#[derive(Debug, Clone)]
pub struct TreeEntry {
    pub mode: String,
    /// Blob size; `None` for submodules.
    pub size: Option<u64>,
    pub path: String,
}

impl TreeEntry {
    fn parse(line: &[u8]) -> Result<Self> {
        let line = String::from_utf8_lossy(line);
        let (meta, path) = line
            .split_once('\t')
            .with_context(|| format!("reading git ls-tree output {line:?}"))?;
        let fields: Vec<&str> = meta.split_whitespace().collect();
        let [mode, _kind, _id, size] = fields.as_slice() else {
            bail!("reading git ls-tree output {line:?}");
        };
        Ok(Self {
            mode: mode.to_string(),
            size: size.parse().ok(),
            path: path.to_string(),
        })
    }

    pub fn is_symlink(&self) -> bool {
        self.mode == "120000"
    }

    pub fn is_submodule(&self) -> bool {
        self.mode == "160000"
    }
}
