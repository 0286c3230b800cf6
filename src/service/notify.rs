//! Readiness notifications to the service manager (the `sd_notify` protocol):
//! one datagram of `KEY=VALUE` lines to the Unix socket named by
//! `$NOTIFY_SOCKET`, a path or (leading `@`) an abstract address. Without that
//! variable, as when run from a terminal, nothing is sent.

use std::os::unix::net::UnixDatagram;

use anyhow::{Context, Result};

/// The server accepts connections (`READY=1`).
pub fn ready(status: &str) -> Result<()> {
    send(&format!("READY=1\nSTATUS={status}"))
}

/// A configuration reload has begun; [`ready`] ends it.
pub fn reloading() -> Result<()> {
    send(&format!("RELOADING=1\nMONOTONIC_USEC={}", monotonic_usec()))
}

/// The server is shutting down.
pub fn stopping() -> Result<()> {
    send("STOPPING=1")
}

fn send(message: &str) -> Result<()> {
    match std::env::var_os("NOTIFY_SOCKET") {
        Some(target) => send_to(&target, message),
        None => Ok(()),
    }
}

fn send_to(target: &std::ffi::OsStr, message: &str) -> Result<()> {
    let socket = UnixDatagram::unbound().context("creating the notification socket")?;
    let bytes = target.as_encoded_bytes();
    let sent = match bytes.strip_prefix(b"@") {
        Some(name) => {
            use std::os::linux::net::SocketAddrExt;
            let addr = std::os::unix::net::SocketAddr::from_abstract_name(name)
                .context("reading NOTIFY_SOCKET")?;
            socket.send_to_addr(message.as_bytes(), &addr)
        }
        None => socket.send_to(message.as_bytes(), target),
    };
    sent.with_context(|| {
        format!(
            "notifying the service manager on {}",
            target.to_string_lossy()
        )
    })?;
    Ok(())
}

/// `CLOCK_MONOTONIC` in microseconds, the clock the service manager reads.
fn monotonic_usec() -> u64 {
    let now = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
    u64::try_from(now.tv_sec).unwrap_or(0) * 1_000_000
        + u64::try_from(now.tv_nsec).unwrap_or(0) / 1_000
}

#[cfg(test)]
mod tests {
    use super::*;

    fn receive(listener: &UnixDatagram) -> String {
        let mut buf = [0u8; 256];
        let n = listener.recv(&mut buf).unwrap();
        String::from_utf8(buf[..n].to_vec()).unwrap()
    }

    #[test]
    fn sends_to_a_path_socket() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify");
        let listener = UnixDatagram::bind(&path).unwrap();
        send_to(path.as_os_str(), "READY=1").unwrap();
        assert_eq!(receive(&listener), "READY=1");
    }

    #[test]
    fn sends_to_an_abstract_socket() {
        use std::os::linux::net::SocketAddrExt;
        let name = format!("bootgate-notify-test-{}", std::process::id());
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(&name).unwrap();
        let listener = UnixDatagram::bind_addr(&addr).unwrap();
        send_to(format!("@{name}").as_ref(), "STOPPING=1").unwrap();
        assert_eq!(receive(&listener), "STOPPING=1");
    }

    #[test]
    fn reload_carries_the_monotonic_clock() {
        let before = monotonic_usec();
        assert!(before > 0);
        assert!(monotonic_usec() >= before);
    }
}
