//! The boot server: one HTTPS listener for machines, and a plain-HTTP admin
//! listener for people and Prometheus ([`admin`]). This module owns sockets
//! and connections; TLS settings live in [`tls`] (rustls) and, for clients
//! that offer only pre-2024 iPXE's suites, [`legacy_tls`] (OpenSSL), chosen
//! per connection by [`hello`]; routes live in [`routes`], the boot history
//! and metrics in [`telemetry`]. Both TLS stacks produce the same [`Peer`].
//!
//! Every connection is bounded in time: the TLS handshake and each request
//! head must arrive within [`HANDSHAKE_TIMEOUT`] (an old client's handshake
//! within [`LEGACY_HANDSHAKE_TIMEOUT`]), and a connection whose response
//! makes no progress for [`IDLE_TIMEOUT`] is dropped, so slow or vanished
//! clients cost nothing lasting. Request bodies are never read (hyper closes
//! a connection whose unread body is not already in), so the head's limit
//! bounds all reading.

mod access_log;
mod admin;
mod assets;
mod boot;
mod error;
mod file_backed;
mod file_body;
mod file_cache;
mod files;
mod handshake;
mod hello;
mod identity;
mod legacy_tls;
mod live_tree;
mod metrics;
mod openssl_signer;
pub(crate) mod paths;
mod poll;
mod record;
mod reload;
mod render_cache;
pub(crate) mod resolve;
mod routes;
mod scratch;
mod secrets;
mod state;
mod telemetry;
mod tls;
mod verifier;

pub use admin::{AdminInfo, announce as announce_admin};
pub use boot::{parse_vars, unprovided_variables};
pub use identity::{Peer, TlsSession};
pub use reload::Reloader;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;

use crate::config::Config;
use crate::datadir::DataDir;
use crate::events::Timestamp;
use crate::events::model::BOOT_SCRIPT_PATH;
use crate::names::Fingerprint;
use handshake::{HandshakeFailure, ReadCount};
use hello::Replay;
use legacy_tls::LegacyTls;
use telemetry::Telemetry;

pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// An old client's handshake, once its ClientHello is in. A pre-2024 iPXE
/// does the 2048-bit DHE exchange and signs with its key in its own slow
/// big-integer code: seconds on real hardware, 107 s measured under QEMU's
/// emulation on a busy 2-core machine (the takeover test), hence the margin.
pub const LEGACY_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(300);
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// Largest request head accepted; iPXE's requests are a few hundred bytes.
pub const MAX_HEADER_BYTES: usize = 16 * 1024;

/// A configured server, ready to bind.
pub struct Server {
    state: Arc<state::AppState>,
    tls: Arc<Stacks>,
    telemetry: Arc<Telemetry>,
    reloader: Arc<Reloader>,
}

/// The TLS stacks of the machine listener.
struct Stacks {
    modern: TlsAcceptor,
    /// Present when `legacy_tls` is on.
    legacy: Option<LegacyTls>,
    /// The suites `modern` serves: a client offering one of them goes there.
    modern_suites: Vec<u16>,
}

impl Server {
    /// Loads everything the server needs (certificates, registry) up front, so
    /// a broken data directory fails before any socket is bound.
    pub fn new(dir: DataDir, config: Config) -> Result<Self> {
        let legacy = match config.legacy_tls {
            true => Some(
                LegacyTls::new(&dir, tls::client_verifier(&dir, &tls::provider())?)
                    .context("setting up TLS for old clients (legacy_tls)")?,
            ),
            false => None,
        };
        let tls = Arc::new(Stacks {
            modern: TlsAcceptor::from(tls::server_config(&dir)?),
            legacy,
            modern_suites: tls::modern_suites(),
        });
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
        let poller = poll::spawn(self.state.clone());
        let result = self.serve_machines(listener, shutdown).await;
        if let Some(admin) = admin {
            admin.abort();
        }
        if let Some(poller) = poller {
            poller.abort();
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
        let answers = Answers {
            router: routes::router(self.state.clone()),
            state: self.state.clone(),
        };
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
            let answers = answers.clone();
            let telemetry = self.telemetry.clone();
            tokio::spawn(async move {
                if let Err(err) = serve_connection(stream, addr, tls, answers, telemetry).await {
                    tracing::debug!(peer = %addr, "connection ended: {err}");
                }
            });
        }
    }
}

/// A connection after its handshake, on whichever stack served it. Moved
/// once, from the handshake to [`serve_http`], never stored: the rustls
/// variant stays unboxed so modern connections pay no extra indirection.
#[allow(clippy::large_enum_variant)]
enum Secured<S> {
    Modern(tokio_rustls::server::TlsStream<S>),
    Legacy(tokio_openssl::SslStream<S>),
}

type Wire = Replay<ReadCount<TcpStream>>;

/// Picks the stack for this client (when there is a choice) and completes the
/// handshake on it, within [`HANDSHAKE_TIMEOUT`] (the ClientHello and a
/// modern handshake) or [`LEGACY_HANDSHAKE_TIMEOUT`] (an old client's).
async fn handshake(
    mut stream: ReadCount<TcpStream>,
    tls: &Stacks,
) -> Result<std::io::Result<Secured<Wire>>, tokio::time::error::Elapsed> {
    let deadline = tokio::time::Instant::now() + HANDSHAKE_TIMEOUT;
    let Some(legacy) = &tls.legacy else {
        let accept = tls.modern.accept(Replay::new(Vec::new(), stream));
        return Ok(tokio::time::timeout_at(deadline, accept)
            .await?
            .map(Secured::Modern));
    };
    let read = tokio::time::timeout_at(deadline, hello::read_first_record(&mut stream)).await?;
    let (hello, offer) = match read {
        Ok(read) => read,
        Err(err) => return Ok(Err(err)),
    };
    let stream = Replay::new(hello, stream);
    match offer {
        Some(offer) if offer.is_legacy_only(&tls.modern_suites) => {
            let accept = legacy.accept(stream);
            Ok(tokio::time::timeout(LEGACY_HANDSHAKE_TIMEOUT, accept)
                .await?
                .map(Secured::Legacy))
        }
        _ => Ok(tokio::time::timeout_at(deadline, tls.modern.accept(stream))
            .await?
            .map(Secured::Modern)),
    }
}

async fn serve_connection(
    stream: TcpStream,
    addr: SocketAddr,
    tls: Arc<Stacks>,
    answers: Answers,
    telemetry: Arc<Telemetry>,
) -> Result<()> {
    let _open = telemetry.metrics.connection_opened();
    let (time, began) = (Timestamp::now(), Instant::now());
    stream.set_nodelay(true)?;
    let (stream, client_bytes) = ReadCount::new(stream);
    let accept = handshake(stream, &tls);
    let secured = match verifier::watch(accept).await {
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
    match secured {
        Secured::Modern(stream) => {
            let conn = stream.get_ref().1;
            let fingerprint = conn
                .peer_certificates()
                .and_then(|certs| certs.first())
                .map(|cert| Fingerprint::of_der(cert));
            let session = TlsSession {
                version: match conn.protocol_version() {
                    Some(rustls::ProtocolVersion::TLSv1_3) => "TLSv1.3".into(),
                    Some(rustls::ProtocolVersion::TLSv1_2) => "TLSv1.2".into(),
                    other => format!("{other:?}"),
                },
                suite: conn
                    .negotiated_cipher_suite()
                    .map(|s| format!("{:?}", s.suite()))
                    .unwrap_or_default(),
                legacy: false,
            };
            let peer = Peer::new(addr, fingerprint, session);
            serve_http(stream, peer, answers, telemetry.clone()).await
        }
        Secured::Legacy(stream) => {
            let negotiated = legacy_tls::negotiated(&stream);
            tracing::info!(
                peer = %addr,
                suite = negotiated.suite.unwrap_or("-"),
                ms = began.elapsed().as_millis() as u64,
                "old TLS client (legacy_tls)"
            );
            let session = TlsSession {
                version: negotiated.version.to_string(),
                suite: negotiated.suite.unwrap_or_default().to_string(),
                legacy: true,
            };
            let peer = Peer::new(addr, legacy_tls::peer_fingerprint(&stream), session);
            serve_http(stream, peer, answers, telemetry.clone()).await
        }
    }
}

/// What answers a machine connection's requests: the router, and the state
/// the boot script is answered from directly.
#[derive(Clone)]
struct Answers {
    router: axum::Router,
    state: Arc<state::AppState>,
}

/// What a request on a machine connection asks for.
// Held in the request's future, not in a collection: boxing the request to
// even out the sizes would cost an allocation per request.
#[allow(clippy::large_enum_variant)]
enum Asked {
    /// `GET /boot/ipxe`, with its query. The request itself is let go of
    /// as soon as it is read: its head shares hyper's read buffer, which
    /// hyper reads into again while the answer is made and would otherwise
    /// allocate anew for every request.
    BootScript { query: String },
    /// Anything else, for the router.
    Other(hyper::Request<hyper::body::Incoming>),
}

impl Asked {
    fn of(request: hyper::Request<hyper::body::Incoming>) -> Self {
        let uri = request.uri();
        if request.method() == http::Method::GET && uri.path() == BOOT_SCRIPT_PATH {
            let query = uri.query().unwrap_or_default().to_owned();
            return Self::BootScript { query };
        }
        Self::Other(request)
    }
}

/// Serves HTTP/1.1 on an established TLS connection.
async fn serve_http<S>(
    stream: S,
    peer: Peer,
    answers: Answers,
    telemetry: Arc<Telemetry>,
) -> Result<()>
where
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    telemetry
        .metrics
        .tls_session(peer.fingerprint.as_ref(), &peer.tls);
    // Reading is bounded by hyper's limit on each request head, which also
    // starts as soon as the previous response is sent; a read timeout here
    // as well cost two timer changes per request.
    let mut timed = tokio_io_timeout::TimeoutStream::new(stream);
    timed.set_write_timeout(Some(IDLE_TIMEOUT));
    let io = TokioIo::new(Box::pin(timed));

    // Every request is recorded and logged around its answer; done here
    // rather than as two router layers, which cost a boxed future and a
    // service clone each per request. The boot script, what every boot
    // starts with, is answered without the router.
    let service =
        hyper::service::service_fn(move |request: hyper::Request<hyper::body::Incoming>| {
            let recording = record::Recording::begin(&telemetry, &peer, &request);
            let answers = answers.clone();
            let peer = peer.clone();
            let asked = Asked::of(request);
            async move {
                let (response, served) = match asked {
                    Asked::BootScript { query } => {
                        let answer = routes::boot_script_for(&answers.state, &peer, &query).await;
                        (answer.response, answer.served)
                    }
                    Asked::Other(request) => {
                        let mut request = request.map(axum::body::Body::new);
                        request.extensions_mut().insert(peer.clone());
                        let mut response = match answers.router.oneshot(request).await {
                            Ok(response) => response,
                            Err(never) => match never {},
                        };
                        let served = response.extensions_mut().remove::<identity::Served>();
                        (response, served)
                    }
                };
                let response = recording.finish(&peer, response, served.as_ref());
                Ok::<_, std::convert::Infallible>(response)
            }
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
    machine: &crate::datadir::registry::Machine,
) -> Option<std::path::PathBuf> {
    resolve::Roots::of(dir, machine)
        .scripts()
        .into_iter()
        .find(|path| path.is_file())
}
