//! Real boots in QEMU: `bootgate try` and the end-to-end tests start an image
//! under the firmware it is meant for, follow its serial console, and decide
//! pass or fail themselves.
//!
//! - [`qemu`]: the emulator command line per platform.
//! - [`serial`]: console text → boot stages and failure reasons.

pub mod qemu;
pub mod serial;

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

pub use qemu::{Board, Launch};
pub use serial::{Failure, Stage, Verdict, Watcher};

/// The result of one boot.
#[derive(Debug)]
pub struct RunReport {
    /// `Ok` when the boot reached its goal.
    pub result: std::result::Result<(), Failure>,
    /// How far it got.
    pub stage: Stage,
    pub log: PathBuf,
    pub elapsed: Duration,
}

/// Where console output goes besides the log file.
pub enum Echo {
    /// Copy it to this process's stdout (`bootgate try`).
    Stdout,
    Quiet,
}

pub struct Run {
    pub launch: Launch,
    pub timeout: Duration,
    /// Success marker instead of "the kernel started init".
    pub expect: Option<String>,
    pub log: PathBuf,
    pub echo: Echo,
}

/// Kills the emulator when dropped, whatever path the caller takes.
struct Guest(Child);

impl Drop for Guest {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Makes the emulator die with the thread that starts it, even when this
/// process is killed with SIGKILL (no `Drop` runs then): an emulator left
/// behind would keep a core busy for as long as the machine is up.
fn die_with_this_thread(cmd: &mut std::process::Command) {
    use std::os::unix::process::CommandExt;
    // SAFETY: the closure runs in the child between fork and exec and only
    // makes one system call (prctl), which is async-signal-safe.
    unsafe {
        cmd.pre_exec(|| {
            rustix::process::set_parent_process_death_signal(Some(rustix::process::Signal::KILL))
                .map_err(std::io::Error::from)
        });
    }
}

/// Boots and watches until success, a recognised failure, or the timeout.
pub fn boot(run: Run) -> Result<RunReport> {
    let started = Instant::now();
    let mut cmd = qemu::command(&run.launch)?;
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    die_with_this_thread(&mut cmd);
    let mut guest = Guest(
        cmd.spawn()
            .with_context(|| format!("starting {:?}", cmd.get_program()))?,
    );
    let mut log = std::fs::File::create(&run.log)
        .with_context(|| format!("creating {}", run.log.display()))?;

    let (tx, rx) = mpsc::channel::<Vec<u8>>();
    let mut stdout = guest.0.stdout.take().expect("piped");
    let reader = std::thread::spawn(move || {
        let mut buf = [0u8; 8192];
        while let Ok(n) = stdout.read(&mut buf) {
            if n == 0 || tx.send(buf[..n].to_vec()).is_err() {
                break;
            }
        }
    });
    let mut stderr = guest.0.stderr.take().expect("piped");

    let mut watcher = Watcher::new(run.expect.clone());
    if !run.launch.board.has_network() {
        watcher = watcher.without_network();
    }
    let deadline = started + run.timeout;
    let result = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break Err(watcher.timeout_failure());
        }
        match rx.recv_timeout(left.min(Duration::from_millis(500))) {
            Ok(chunk) => {
                log.write_all(&chunk)?;
                if matches!(run.echo, Echo::Stdout) {
                    let mut out = std::io::stdout().lock();
                    let _ = out.write_all(&chunk);
                    let _ = out.flush();
                }
                match watcher.feed(&chunk) {
                    Verdict::Running => {}
                    Verdict::Success => break Ok(()),
                    Verdict::Failed(failure) => break Err(failure),
                }
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                // The emulator exited: success only if the goal was seen.
                let _ = guest.0.wait();
                let mut err = String::new();
                let _ = stderr.read_to_string(&mut err);
                let err = err.lines().rfind(|l| !l.trim().is_empty()).unwrap_or("");
                break match watcher.verdict() {
                    Verdict::Success => Ok(()),
                    Verdict::Failed(failure) => Err(failure),
                    Verdict::Running if !err.is_empty() && watcher.stage() == Stage::Firmware => {
                        Err(Failure::Qemu(err.to_string()))
                    }
                    Verdict::Running => Err(watcher.timeout_failure()),
                };
            }
        }
    };
    drop(guest);
    let _ = reader.join();
    log.flush()?;
    Ok(RunReport {
        result,
        stage: watcher.stage(),
        log: run.log,
        elapsed: started.elapsed(),
    })
}
