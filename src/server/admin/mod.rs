//! The admin listener: plain HTTP, for people and Prometheus, never for
//! machines. It has no authentication, so it listens on loopback unless told
//! otherwise (`serve --admin-listen`, `admin_listen` in bootgate.toml).
//!
//! - `GET /`: the status page; `GET /machines/NAME`: a machine's latest boots;
//! - `GET /metrics`: Prometheus text format 0.0.4;
//! - `GET /api/machines`, `GET /api/machines/NAME/boots?limit=N`,
//!   `GET /api/events?machine=&since=&after=&limit=`: the boot history as
//!   JSON, which is how the CLI reads it while the server holds the store;
//! - `POST /config/sync`: the git sync trigger, behind a token ([`trigger`]).
//!
//! Store reads run on the blocking pool; each is one redb snapshot.

pub mod page;
mod trigger;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use anyhow::{Context, Result};
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use http::{StatusCode, header};
use serde::{Deserialize, Serialize};

use super::state::AppState;
use super::telemetry::Telemetry;
use crate::datadir::DataDir;
use crate::events::store::Snapshot;
use crate::events::{EventQuery, Timestamp};
use crate::fsutil;
use page::{MachineRow, PageInfo, Unrecorded};

/// Boots shown on a machine's page, and the API's default.
const BOOTS_SHOWN: usize = 10;
const BOOTS_MAX: usize = 1000;
/// Failures listed on the status page.
const FAILURES_SHOWN: usize = 15;
/// How far back the status page looks for them.
const FAILURES_SCAN: usize = 2000;

#[derive(Clone)]
struct Admin {
    app: Arc<AppState>,
    telemetry: Arc<Telemetry>,
}

pub fn router(app: Arc<AppState>, telemetry: Arc<Telemetry>) -> Router {
    Router::new()
        .route("/", get(status_page))
        .route("/machines/{name}", get(machine_page))
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/api/machines", get(api_machines))
        .route("/api/machines/{name}/boots", get(api_boots))
        .route("/api/events", get(api_events))
        .fallback(|| async { (StatusCode::NOT_FOUND, "not found\n") })
        .with_state(Admin {
            app: app.clone(),
            telemetry,
        })
        .merge(
            Router::new()
                .route("/config/sync", post(trigger::sync))
                .with_state(app),
        )
}

/// What `bootgate serve` writes to `events/admin.json` once its admin
/// listener is up, so CLI commands can reach it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AdminInfo {
    /// Where a process on this machine reaches the admin listener.
    pub url: String,
    pub pid: u32,
}

impl AdminInfo {
    /// What the running server announced; `None` when no admin listener is
    /// announced.
    pub fn load(dir: &DataDir) -> Result<Option<Self>> {
        let path = dir.admin_info_path();
        let Ok(text) = std::fs::read_to_string(&path) else {
            return Ok(None);
        };
        let info =
            serde_json::from_str(&text).with_context(|| format!("reading {}", path.display()))?;
        Ok(Some(info))
    }
}

/// Removes `events/admin.json` when the server stops.
pub struct Announcement(PathBuf);

impl Drop for Announcement {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Tells CLI commands where the admin listener is (`events/admin.json`).
pub fn announce(dir: &DataDir, listening: SocketAddr) -> Result<Announcement> {
    // A wildcard address is reached through loopback.
    let mut reach = listening;
    if reach.ip().is_unspecified() {
        reach.set_ip(match reach {
            SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
            SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
        });
    }
    let info = AdminInfo {
        url: format!("http://{reach}"),
        pid: std::process::id(),
    };
    let path = dir.admin_info_path();
    fsutil::write_atomic(
        &path,
        serde_json::to_string_pretty(&info)?.as_bytes(),
        fsutil::PUBLIC,
    )?;
    Ok(Announcement(path))
}

fn json(value: &impl Serialize) -> Response {
    match serde_json::to_string(value) {
        Ok(text) => ([(header::CONTENT_TYPE, "application/json")], text).into_response(),
        Err(err) => failure(err.into()),
    }
}

fn html(text: String) -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        text,
    )
        .into_response()
}

fn failure(err: anyhow::Error) -> Response {
    tracing::error!("admin listener: {err:#}");
    (
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal error; see the server log\n",
    )
        .into_response()
}

/// Runs `f` on a snapshot of the store, on the blocking pool.
async fn with_snapshot<T: Send + 'static>(
    admin: &Admin,
    f: impl FnOnce(Snapshot) -> Result<T> + Send + 'static,
) -> Result<T> {
    let store = admin.telemetry.store.clone();
    tokio::task::spawn_blocking(move || f(store.snapshot()?)).await?
}

async fn metrics(State(admin): State<Admin>) -> Response {
    let index = admin.app.machines.current();
    let revoked = index.iter().filter(|m| m.is_revoked()).count();
    let legacy = admin
        .telemetry
        .metrics
        .legacy_tls_machines(index.iter().map(|m| &m.fingerprint));
    let mut text = admin.telemetry.metrics.render(
        admin.telemetry.recorder.stats(),
        admin.telemetry.store.usage(),
        (index.len() - revoked, revoked),
        legacy,
    );
    text.push_str(&super::metrics::render_scripts(
        &admin.app.rendered.served(),
    ));
    if admin.app.config.git.is_some() {
        match crate::gitcfg::status::Status::load(&admin.app.dir) {
            Ok(status) => text.push_str(&status.metrics(crate::gitcfg::now())),
            Err(err) => tracing::error!("reading the configuration status: {err:#}"),
        }
    }
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
        .into_response()
}

fn page_info(admin: &Admin, events: u64) -> PageInfo {
    let stats = admin.telemetry.recorder.stats();
    let legacy_tls_machines = admin.app.config.legacy_tls.then(|| {
        let index = admin.app.machines.current();
        admin
            .telemetry
            .metrics
            .legacy_tls_machines(index.iter().map(|m| &m.fingerprint))
    });
    PageInfo {
        public_url: admin.app.public_url.clone(),
        started: admin.telemetry.started,
        events,
        config: admin
            .app
            .config
            .git
            .as_ref()
            .and_then(|_| crate::gitcfg::status::Status::load(&admin.app.dir).ok())
            .map(|status| status.summary()),
        unrecorded: Unrecorded {
            dropped: stats.dropped.load(Ordering::Relaxed),
            lost: stats.lost.load(Ordering::Relaxed),
            last_failure: stats.last_failure(),
            read_error: None,
        },
        legacy_tls_machines,
    }
}

async fn status_page(State(admin): State<Admin>) -> Response {
    let history = with_snapshot(&admin, |r| {
        let seen = r.machines()?;
        let recent = r.events(&EventQuery {
            limit: Some(FAILURES_SCAN),
            ..Default::default()
        })?;
        let mut failures: Vec<_> = recent
            .into_iter()
            .rev()
            .filter(|e| e.failure_reason().is_some())
            .take(FAILURES_SHOWN)
            .collect();
        failures.shrink_to_fit();
        Ok((seen, failures, r.event_count()?))
    })
    .await;
    // Machines are listed even when the history cannot be read (a full
    // disk): the page says why their history is missing.
    let (seen, failures, count, read_error) = match history {
        Ok((seen, failures, count)) => (seen, failures, count, None),
        Err(err) => (Vec::new(), Vec::new(), 0, Some(format!("{err:#}"))),
    };
    let index = admin.app.machines.current();
    let mut machines: Vec<_> = index.iter().collect();
    machines.sort_by(|a, b| a.name.as_ref().cmp(b.name.as_ref()));
    let rows: Vec<_> = machines
        .iter()
        .map(|m| MachineRow {
            name: m.name.as_ref(),
            fingerprint: m.fingerprint.as_str(),
            profile: m.profile.as_ref().map(AsRef::as_ref),
            revoked: m.is_revoked(),
            seen: seen.iter().find(|s| *s.machine == *m.name.as_ref()),
        })
        .collect();
    let mut info = page_info(&admin, count);
    info.unrecorded.read_error = read_error;
    html(page::status_page(Timestamp::now(), &info, &rows, &failures))
}

async fn machine_page(State(admin): State<Admin>, Path(name): Path<String>) -> Response {
    let index = admin.app.machines.current();
    let Some(machine) = index.iter().find(|m| m.name.as_ref() == name).cloned() else {
        return (StatusCode::NOT_FOUND, "no such machine\n").into_response();
    };
    let key = name.clone();
    let history = with_snapshot(&admin, move |r| {
        Ok((
            r.machine(&key)?,
            r.boots(&key, BOOTS_SHOWN)?,
            r.event_count()?,
        ))
    })
    .await;
    let (seen, boots, count) = match history {
        Ok(h) => h,
        Err(err) => return failure(err),
    };
    let row = MachineRow {
        name: machine.name.as_ref(),
        fingerprint: machine.fingerprint.as_str(),
        profile: machine.profile.as_ref().map(AsRef::as_ref),
        revoked: machine.is_revoked(),
        seen: seen.as_ref(),
    };
    html(page::machine_page(
        Timestamp::now(),
        &page_info(&admin, count),
        &row,
        &boots,
    ))
}

async fn api_machines(State(admin): State<Admin>) -> Response {
    match with_snapshot(&admin, |r| r.machines()).await {
        Ok(machines) => json(&machines),
        Err(err) => failure(err),
    }
}

#[derive(Debug, Deserialize)]
struct BootsQuery {
    limit: Option<usize>,
}

async fn api_boots(
    State(admin): State<Admin>,
    Path(name): Path<String>,
    Query(query): Query<BootsQuery>,
) -> Response {
    let limit = query.limit.unwrap_or(BOOTS_SHOWN).min(BOOTS_MAX);
    match with_snapshot(&admin, move |r| r.boots(&name, limit)).await {
        Ok(boots) => json(&boots),
        Err(err) => failure(err),
    }
}

async fn api_events(State(admin): State<Admin>, Query(query): Query<EventQuery>) -> Response {
    match with_snapshot(&admin, move |r| r.events(&query)).await {
        Ok(events) => json(&events),
        Err(err) => failure(err),
    }
}
