//! Log output: human-readable lines on stderr, filtered by `BOOTGATE_LOG`
//! (same syntax as `RUST_LOG`; default `info`). rustls is kept to errors by
//! default: it warns on every iPXE connection, which sends an IP address as
//! the TLS server name.

pub fn init() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("BOOTGATE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,rustls=error"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}
