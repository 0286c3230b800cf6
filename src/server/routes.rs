//! The machine-facing routes, compatible with ipxe-boot-server:
//! `GET /boot/ipxe`, `GET|HEAD /files/<path>`, `GET /secrets/<token>`,
//! `GET /healthz`. See `docs/api-http.md`.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Extension, Path, Query, Request, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use http::header;

use super::boot;
use super::error::{Refusal, internal};
use super::identity::{Peer, Served};
use super::paths;
use super::secrets::Grant;
use super::state::AppState;
use crate::bootcfg::template::{self, Vars};
use crate::registry::Machine;

pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/boot/ipxe", get(boot_script))
        .route("/files/{*path}", get(file))
        .route("/secrets/{token}", get(secret))
        .fallback(|| async { Refusal::NotFound })
        .with_state(state)
}

async fn healthz() -> &'static str {
    "ok\n"
}

/// The enrolled, unrevoked machine behind this request's certificate.
fn identify(state: &AppState, peer: &Peer) -> Result<Arc<Machine>, Refusal> {
    let fingerprint = peer.fingerprint.as_deref().ok_or(Refusal::NoCertificate)?;
    let index = state.machines.current();
    let machine = index
        .get(fingerprint)
        .cloned()
        .ok_or(Refusal::UnknownCertificate)?;
    if machine.is_revoked() {
        return Err(Refusal::Revoked(machine.name.to_string()));
    }
    Ok(machine)
}

/// Attaches the machine to a response (or refusal) for the access log.
fn for_machine(machine: &Machine, result: Result<Response, Refusal>) -> Response {
    let mut response = result.into_response();
    response.extensions_mut().insert(Served::of(machine));
    response
}

async fn boot_script(
    State(state): State<Arc<AppState>>,
    Extension(peer): Extension<Peer>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let machine = match identify(&state, &peer) {
        Ok(machine) => machine,
        Err(refusal) => return refusal.into_response(),
    };
    let result = render_boot_script(&state, &machine, &query);
    for_machine(&machine, result)
}

fn render_boot_script(
    state: &AppState,
    machine: &Machine,
    query: &HashMap<String, String>,
) -> Result<Response, Refusal> {
    let root = boot::machine_root(&state.dir, machine);
    let path = root.join("boot.ipxe");
    let text = match state.scripts.get(&path) {
        Ok(Some(text)) => text,
        Ok(None) => return Err(Refusal::NotFound),
        Err(err) => return Err(internal("boot script", format!("{err:#}"))),
    };
    let mut vars = boot::query_vars(query)?;
    if let Some(file_vars) = boot::file_vars(&state.vars, &root)? {
        vars.extend(file_vars.iter().map(|(k, v)| (k.clone(), v.clone())));
    }
    vars.insert("machine_name".into(), machine.name.to_string());
    vars.insert(
        "client_cert_fingerprint".into(),
        machine.fingerprint.clone(),
    );
    vars.insert("server_url".into(), state.public_url.clone());
    if template::referenced_names(&text).contains(&"secrets_url") {
        let token = state.secrets.mint(Grant {
            fingerprint: Arc::from(machine.fingerprint.as_str()),
            vars: vars.clone(),
        });
        vars.insert(
            "secrets_url".into(),
            format!("{}/secrets/{token}", state.public_url),
        );
    }
    Ok(script_response(template::safe_substitute(&text, &vars)))
}

fn script_response(text: String) -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        text,
    )
        .into_response()
}

async fn file(
    State(state): State<Arc<AppState>>,
    Extension(peer): Extension<Peer>,
    request: Request,
) -> Response {
    let machine = match identify(&state, &peer) {
        Ok(machine) => machine,
        Err(refusal) => return refusal.into_response(),
    };
    let (parts, _body) = request.into_parts();
    let result = serve_file(&state, &machine, &parts).await;
    for_machine(&machine, result)
}

async fn serve_file(
    state: &AppState,
    machine: &Machine,
    request: &http::request::Parts,
) -> Result<Response, Refusal> {
    // The raw path, not axum's decoded capture: percent-encoded slashes and
    // dots must be judged after decoding each segment on its own.
    let raw = request
        .uri
        .path()
        .strip_prefix("/files/")
        .ok_or(Refusal::NotFound)?;
    let segments = paths::decode_segments(raw)?;
    let root = boot::machine_root(&state.dir, machine);
    let path = paths::resolve_within(&root, &segments)?;
    super::files::respond(&path, &request.method, &request.headers).await
}

async fn secret(State(state): State<Arc<AppState>>, Path(token): Path<String>) -> Response {
    let grant = match state.secrets.redeem(&token) {
        Some(grant) => grant,
        None => return Refusal::NotFound.into_response(),
    };
    let index = state.machines.current();
    let Some(machine) = index.get(&grant.fingerprint).cloned() else {
        return Refusal::NotFound.into_response();
    };
    let result = render_secrets(&state, &machine, &grant.vars);
    for_machine(&machine, result)
}

fn render_secrets(state: &AppState, machine: &Machine, vars: &Vars) -> Result<Response, Refusal> {
    if machine.is_revoked() {
        return Err(Refusal::Revoked(machine.name.to_string()));
    }
    let path = boot::machine_root(&state.dir, machine).join("secrets");
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Err(Refusal::NotFound),
        Err(err) => return Err(internal(&format!("reading {}", path.display()), err)),
    };
    Ok(script_response(template::safe_substitute(&text, vars)))
}
