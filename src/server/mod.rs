//! The boot server: one HTTPS listener for machines, and a plain-HTTP admin
//! listener for people and Prometheus ([`admin`]). This module owns sockets
//! and connections; TLS settings live in [`tls`], routes in [`routes`], the
//! boot history and metrics in [`telemetry`].
//!
//! Every connection is bounded in time: the TLS handshake and the request
//! headers must arrive within [`HANDSHAKE_TIMEOUT`], and a connection that
//! makes no progress reading or writing for [`IDLE_TIMEOUT`] is dropped, so
//! slow or vanished clients cost nothing lasting.

mod access_log;
mod admin;
mod assets;
mod boot;
mod error;
mod file_body;
mod file_cache;
mod files;
mod handshake;
mod identity;
mod metrics;
mod paths;
mod record;
mod reload;
mod resolve;
mod routes;
mod scratch;
mod secrets;
mod state;
mod telemetry;
mod tls;
mod verifier;

pub use admin::announce as announce_admin;
pub use boot::{VARS_FILE, parse_vars};
pub use identity::Peer;
pub use reload::Reloader;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;

use crate::ca::sha1_fingerprint;
use crate::config::Config;
use crate::datadir::DataDir;
use crate::events::Timestamp;
use handshake::{HandshakeFailure, ReadCount};
use telemetry::Telemetry;

pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// Largest request head accepted; iPXE's requests are a few hundred bytes.
pub const MAX_HEADER_BYTES: usize = 16 * 1024;

/// A configured server, ready to bind.
pub struct Server {
    state: Arc<state::AppState>,
    tls: TlsAcceptor,
    telemetry: Arc<Telemetry>,
    reloader: Arc<Reloader>,
}

impl Server {
    /// Loads everything the server needs (certificates, registry) up front, so
    /// a broken data directory fails before any socket is bound.
    pub fn new(dir: DataDir, config: Config) -> Result<Self> {
        let tls = TlsAcceptor::from(tls::server_config(&dir)?);
        let events = config.events.clone();
        let state = Arc::new(state::AppState::new(dir.clone(), config.clone())?);
        let telemetry = Arc::new(Telemetry::open(&dir, &events)?);
        let reloader = Arc::new(Reloader::new(state.clone(), config));
        Ok(Self {
            state,
            tls,
            telemetry,
            reloader,
        })
    }

    /// What applies a changed `bootgate.toml` while the server runs.
    pub fn reloader(&self) -> Arc<Reloader> {
        self.reloader.clone()
    }

    pub fn public_url(&self) -> &str {
        &self.state.public_url
    }

    pub fn machine_count(&self) -> usize {
        self.state.machines.current().len()
    }

    pub async fn bind(&self, listen: SocketAddr) -> Result<TcpListener> {
        TcpListener::bind(listen)
            .await
            .with_context(|| format!("listening on {listen}"))
    }

    /// Serves connections until `shutdown` completes, and the admin listener
    /// alongside if given; then writes out the boot history still queued.
    pub async fn run(
        self,
        listener: TcpListener,
        admin: Option<TcpListener>,
        shutdown: impl std::future::Future<Output = ()>,
    ) -> Result<()> {
        let admin = admin.map(|listener| {
            let router = admin::router(self.state.clone(), self.telemetry.clone());
            tokio::spawn(async move {
                if let Err(err) = axum::serve(listener, router).await {
                    tracing::error!("admin listener failed: {err}");
                }
            })
        });
        let result = self.serve_machines(listener, shutdown).await;
        if let Some(admin) = admin {
            admin.abort();
        }
        let telemetry = self.telemetry.clone();
        tokio::task::spawn_blocking(move || telemetry.recorder.close())
            .await
            .context("closing the boot history")?;
        result
    }

    async fn serve_machines(
        &self,
        listener: TcpListener,
        shutdown: impl std::future::Future<Output = ()>,
    ) -> Result<()> {
        let router = routes::router(self.state.clone())
            .layer(axum::middleware::from_fn(access_log::log_request))
            .layer(axum::middleware::from_fn_with_state(
                self.telemetry.clone(),
                record::record_request,
            ));
        tokio::pin!(shutdown);
        loop {
            let (stream, addr) = tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok(pair) => pair,
                    Err(err) => {
                        // Typically EMFILE: back off instead of spinning.
                        tracing::warn!("accept failed: {err}");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                },
                () = &mut shutdown => return Ok(()),
            };
            let tls = self.tls.clone();
            let router = router.clone();
            let telemetry = self.telemetry.clone();
            tokio::spawn(async move {
                if let Err(err) = serve_connection(stream, addr, tls, router, telemetry).await {
                    tracing::debug!(peer = %addr, "connection ended: {err}");
                }
            });
        }
    }
}

async fn serve_connection(
    stream: TcpStream,
    addr: SocketAddr,
    tls: TlsAcceptor,
    router: axum::Router,
    telemetry: Arc<Telemetry>,
) -> Result<()> {
    let _open = telemetry.metrics.connection_opened();
    let (time, began) = (Timestamp::now(), Instant::now());
    stream.set_nodelay(true)?;
    let (stream, client_bytes) = ReadCount::new(stream);
    let accept = tokio::time::timeout(HANDSHAKE_TIMEOUT, tls.accept(stream));
    let tls_stream = match verifier::watch(accept).await {
        (Ok(Ok(s)), _) => s,
        (Ok(Err(err)), presented) => {
            let sent = client_bytes.load(std::sync::atomic::Ordering::Relaxed);
            let failure = HandshakeFailure::of(&err, presented.as_ref(), sent);
            tracing::info!(peer = %addr, reason = failure.reason, "TLS handshake failed: {err}");
            telemetry.handshake_failed(addr, time, began, failure, presented);
            return Ok(());
        }
        (Err(_), _) => {
            tracing::info!(peer = %addr, "TLS handshake timed out");
            let sent = client_bytes.load(std::sync::atomic::Ordering::Relaxed);
            let failure = HandshakeFailure::timeout(sent);
            telemetry.handshake_failed(addr, time, began, failure, None);
            return Ok(());
        }
    };
    let fingerprint = tls_stream
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|certs| certs.first())
        .map(|cert| Arc::<str>::from(sha1_fingerprint(cert)));
    let peer = Peer { addr, fingerprint };

    let mut timed = tokio_io_timeout::TimeoutStream::new(tls_stream);
    timed.set_read_timeout(Some(IDLE_TIMEOUT));
    timed.set_write_timeout(Some(IDLE_TIMEOUT));
    let io = TokioIo::new(Box::pin(timed));

    let service =
        hyper::service::service_fn(move |mut request: hyper::Request<hyper::body::Incoming>| {
            request.extensions_mut().insert(peer.clone());
            router.clone().oneshot(request.map(axum::body::Body::new))
        });
    hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HANDSHAKE_TIMEOUT)
        .max_buf_size(MAX_HEADER_BYTES.max(8192))
        .serve_connection(io, service)
        .await
        .context("serving HTTP")
}

/// The boot script a machine gets (its own, its profile's or the default),
/// if any exists.
pub fn boot_script_of(
    dir: &DataDir,
    machine: &crate::registry::Machine,
) -> Option<std::path::PathBuf> {
    resolve::Roots::of(dir, machine)
        .scripts()
        .into_iter()
        .find(|path| path.is_file())
}
