//! `bootgate serve`.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::{Context, Result};
use clap::Args;

use crate::config::{AdminListen, Config};
use crate::datadir::DataDir;
use crate::manage::init::{self, CaSource, InitOptions, ServerCertSource};
use crate::server::{Reloader, Server};
use crate::service::logging::LogFormat;
use crate::service::notify;

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on (default: `listen` from bootgate.toml).
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// Address of the plain-HTTP admin listener (status page, /metrics, boot
    /// history API), or `off` (default: `admin_listen` from bootgate.toml,
    /// 127.0.0.1:8444). It has no authentication: keep it on loopback or a
    /// management network.
    #[arg(long, value_name = "ADDR|off")]
    admin_listen: Option<AdminListen>,
    /// Log lines as text (with syslog priorities when stderr is the journal)
    /// or as one JSON object per line.
    #[arg(long, value_enum, env = "BOOTGATE_LOG_FORMAT", default_value_t = LogFormat::Text)]
    log_format: LogFormat,
}

/// Where a first `bootgate serve` without a data directory listens.
const FIRST_RUN_LISTEN: &str = "127.0.0.1:8443";

pub fn run(dir: &DataDir, args: ServeArgs) -> Result<()> {
    crate::service::logging::init_with(args.log_format);
    if !dir.is_initialised() && !dir.root().exists() {
        let opts = InitOptions {
            server_names: vec!["localhost".into(), "127.0.0.1".into()],
            listen: FIRST_RUN_LISTEN.parse().expect("valid address"),
            ca: CaSource::Generate,
            server_cert: ServerCertSource::Issue,
        };
        init::create(dir.root(), &opts)?;
        tracing::info!(
            "no data directory yet: initialised {} for localhost and 127.0.0.1; enroll a machine with `bootgate machine add NAME`",
            dir.root().display()
        );
    }
    let dir = DataDir::open(dir.root())?;
    if let Some(warning) = crate::datadir::permcheck::check(&dir)? {
        tracing::warn!("{warning}");
    }
    let config = Config::load(&dir)?;
    let listen = args.listen.unwrap_or(config.listen);
    let admin_listen = args.admin_listen.unwrap_or(config.admin_listen);
    let server = Server::new(dir.clone(), config)?;

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async move {
        let listener = server.bind(listen).await?;
        let admin = match admin_listen {
            AdminListen::Off => None,
            AdminListen::At(addr) => Some(
                tokio::net::TcpListener::bind(addr)
                    .await
                    .with_context(|| {
                        format!("listening on {addr} (admin; choose another with --admin-listen ADDR, or off)")
                    })?,
            ),
        };
        let status = format!(
            "serving {} machine(s) from {} on https://{} (public URL {})",
            server.machine_count(),
            dir.root().display(),
            listener.local_addr()?,
            server.public_url()
        );
        tracing::info!("{status}");
        let _announced = match &admin {
            Some(admin) => {
                let addr = admin.local_addr()?;
                if !addr.ip().is_loopback() {
                    tracing::warn!(
                        "the admin listener on {addr} has no authentication and is reachable from other hosts"
                    );
                }
                tracing::info!("status page and metrics on http://{addr}/ (admin listener)");
                Some(crate::server::announce_admin(&dir, addr)?)
            }
            None => {
                // A stale file from a killed server must not send readers astray.
                let _ = std::fs::remove_file(dir.admin_info_path());
                None
            }
        };
        // Before telling the service manager: a reload request must never
        // meet the default SIGHUP action, which ends the process.
        let hangup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
            .context("installing a SIGHUP handler")?;
        tokio::spawn(reload_on_hangup(hangup, server.reloader(), status.clone()));
        // The listener is bound and the TLS settings are loaded: connections
        // queue from here and are handshaken as soon as `run` accepts them.
        warn_unless_sent(notify::ready(&status));
        server.run(listener, admin, shutdown_signal()).await
    })
}

/// Reloads `bootgate.toml` on every SIGHUP, telling the service manager when
/// the reload begins and ends.
async fn reload_on_hangup(
    mut hangup: tokio::signal::unix::Signal,
    reloader: Arc<Reloader>,
    status: String,
) {
    while hangup.recv().await.is_some() {
        warn_unless_sent(notify::reloading());
        let reloading = reloader.clone();
        match tokio::task::spawn_blocking(move || reloading.reload()).await {
            Ok(Ok(())) => {}
            Ok(Err(err)) => {
                tracing::error!(
                    "reloading the configuration failed, keeping the settings in force: {err:#}"
                )
            }
            Err(err) => tracing::error!("reloading the configuration failed: {err}"),
        }
        warn_unless_sent(notify::ready(&status));
    }
}

fn warn_unless_sent(sent: Result<()>) {
    if let Err(err) = sent {
        tracing::warn!("{err:#}");
    }
}

async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("installing a SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    tracing::info!("shutting down");
    warn_unless_sent(notify::stopping());
}
