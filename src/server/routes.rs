//! The machine-facing routes, compatible with ipxe-boot-server:
//! `GET /boot/ipxe`, `GET|HEAD /files/<path>`, `GET /secrets/<token>`,
//! `GET /healthz`. See `docs/api-http.md`.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Extension, Path, Request, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use bytes::Bytes;
use http::header;

use super::boot;
use super::error::{EventReason, Refusal, internal};
use super::identity::{Answer, Peer};
use super::paths;
use super::render_cache::{Inputs, Made};
use super::resolve::{self, Found, Roots};
use super::scratch;
use super::secrets::{Redemption, SecretsGrant};
use super::state::AppState;
use crate::bootcfg::template::{self, Vars};
use crate::bootcfg::variables::{self, MachineVars};
use crate::datadir::DataDir;
use crate::datadir::registry::Machine;
use crate::events::model::BOOT_SCRIPT_PATH;
use crate::fsutil::beneath::Dir;
use crate::fsutil::watch::{self, Seen};
use crate::names::Fingerprint;

pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route(BOOT_SCRIPT_PATH, get(boot_script))
        .route("/files/{*path}", get(file))
        .route("/secrets/{token}", get(secret))
        .fallback(|| async { Refusal::NotFound })
        .with_state(state)
}

async fn healthz() -> &'static str {
    "ok\n"
}

/// A refusal of the request's identity, naming the machine when it is known
/// (a revoked one) so the access log shows who was refused.
struct IdentityRefusal {
    refusal: Refusal,
    machine: Option<Arc<Machine>>,
}

impl From<Refusal> for IdentityRefusal {
    fn from(refusal: Refusal) -> Self {
        Self {
            refusal,
            machine: None,
        }
    }
}

impl From<IdentityRefusal> for Answer {
    fn from(refused: IdentityRefusal) -> Self {
        match refused.machine {
            Some(machine) => Answer::to(&machine, refused.refusal),
            None => Answer::anonymous(refused.refusal),
        }
    }
}

/// The enrolled, unrevoked machine behind this request's certificate, as of
/// `seen` when the caller looked at the change watch.
fn identify(
    state: &AppState,
    peer: &Peer,
    seen: Option<Seen>,
) -> Result<Arc<Machine>, IdentityRefusal> {
    let fingerprint = peer.fingerprint.as_ref().ok_or(Refusal::NoCertificate)?;
    let index = state.machines.current_as_of(seen);
    let machine = index
        .get(fingerprint)
        .cloned()
        .ok_or(Refusal::UnknownCertificate)?;
    if machine.is_revoked() {
        return Err(IdentityRefusal {
            refusal: Refusal::Revoked(machine.name.to_string()),
            machine: Some(machine),
        });
    }
    Ok(machine)
}

async fn boot_script(
    State(state): State<Arc<AppState>>,
    Extension(peer): Extension<Peer>,
    uri: http::Uri,
) -> Answer {
    boot_script_for(&state, &peer, uri.query().unwrap_or_default()).await
}

/// `GET /boot/ipxe` for `peer`. The connection calls this directly for a
/// `GET` of that path, without the router (see `serve_http`); the route
/// above serves the same through the router (`HEAD`).
pub(super) async fn boot_script_for(state: &AppState, peer: &Peer, query: &str) -> Answer {
    let seen = state.watch.as_ref().map(|watch| watch.observe());
    let machine = match identify(state, peer, seen) {
        Ok(machine) => machine,
        Err(refused) => return refused.into(),
    };
    if let Some(seen) = seen
        && let Some(body) = state.rendered.settled(&machine, query, seen.generation)
    {
        state.rendered.count(Made::Settled);
        return Answer::to(&machine, script_response(body));
    }
    let result = render_boot_script(state, &machine, query, seen).await;
    Answer::to(&machine, result)
}

/// The machine's script rendered for this request, or the same bytes as the
/// last time when nothing it is made from has changed
/// ([`super::render_cache`]).
async fn render_boot_script(
    state: &AppState,
    machine: &Arc<Machine>,
    query: &str,
    seen: Option<Seen>,
) -> Result<Response, Refusal> {
    let tree = state.tree.current_as_of(seen);
    let roots = Roots::of(&tree, machine);
    let text = first_script(state, &roots.scripts())?.ok_or(Refusal::NotFound)?;
    let mut file_vars = Vec::with_capacity(2);
    for folder in roots.vars_folders() {
        file_vars.push(boot::file_vars(&state.vars, folder)?);
    }
    let inputs = Inputs {
        machine: machine.clone(),
        script: text,
        vars: file_vars,
        query: query.to_string(),
    };
    if let Some(body) = state.rendered.get(&inputs) {
        if let (Some(watch), Some(seen)) = (&state.watch, seen)
            && watch.covered(seen, &render_dependencies(state, &tree, machine))
        {
            state.rendered.settle(&inputs, seen.generation);
        }
        state.rendered.count(Made::Kept);
        return Ok(script_response(body));
    }
    // Decoded as axum's `Query` would: a repeated name keeps its last value.
    let query: HashMap<String, String> = form_urlencoded::parse(query.as_bytes())
        .into_owned()
        .collect();
    let text = &inputs.script;
    let mut vars = boot::query_vars(&query)?;
    for file_vars in inputs.vars.iter().flatten() {
        vars.extend(file_vars.iter().map(|(k, v)| (k.clone(), v.clone())));
    }
    MachineVars::of(machine, &state.public_url).insert_into(&mut vars);
    let scratch = scratch::provide(state, machine, &roots, text, &mut vars).await?;
    let mints_secret = template::referenced_names(text).contains(&variables::SECRETS_URL);
    if mints_secret {
        let token = state.secrets.mint(SecretsGrant {
            fingerprint: machine.fingerprint.clone(),
            vars: vars.clone(),
        });
        vars.insert(
            variables::SECRETS_URL.into(),
            variables::secrets_url(&state.public_url, &token),
        );
    }
    let body = Bytes::from(template::safe_substitute(text, &vars));
    state.rendered.count(Made::Rendered);
    if scratch == scratch::Provision::NotUsed && !mints_secret {
        state.rendered.put(inputs, body.clone());
    }
    let mut response = script_response(body);
    if scratch == scratch::Provision::Unavailable {
        response
            .extensions_mut()
            .insert(EventReason(scratch::UNAVAILABLE));
    }
    Ok(response)
}

/// Every file and folder a machine's script render is made from, as chains
/// from the served tree down ([`Roots::render_inputs`]), and `live.json`,
/// which picks the tree. The registry entry is watched by the machine index.
fn render_dependencies(state: &AppState, tree: &DataDir, machine: &Machine) -> Vec<Vec<PathBuf>> {
    let live = watch::chain(state.dir.root(), &state.dir.gitcfg_live_path());
    let inputs = Roots::render_inputs(tree, machine);
    std::iter::once(live)
        .chain(inputs.iter().map(|file| watch::chain(tree.root(), file)))
        .collect()
}

/// The first of `candidates` that exists, through the server's file cache.
pub(super) fn first_script(
    state: &AppState,
    candidates: &[std::path::PathBuf],
) -> Result<Option<Arc<String>>, Refusal> {
    for path in candidates {
        let Some((folder, name)) = resolve::open_parent(path)? else {
            continue;
        };
        match state.scripts.get(&folder, name) {
            Ok(Some(text)) => return Ok(Some(text)),
            Ok(None) => continue,
            Err(err) => return Err(internal("boot script", format!("{err:#}"))),
        }
    }
    Ok(None)
}

fn script_response(text: impl Into<Bytes>) -> Response {
    let text: Bytes = text.into();
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
) -> Answer {
    let machine = match identify(&state, &peer, None) {
        Ok(machine) => machine,
        Err(refused) => return refused.into(),
    };
    let (parts, _body) = request.into_parts();
    let result = serve_file(&state, &machine, &parts).await;
    Answer::to(&machine, result)
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
    let (method, headers) = (&request.method, &request.headers);
    let roots = Roots::of(&state.tree.current(), machine);
    match roots.find_file(&segments, |name| state.assets.lookup(name))? {
        Some(Found::File(opened)) => super::files::respond(opened, method, headers, None),
        Some(Found::Asset(digest)) => {
            let blobs = Dir::open(&state.dir.asset_blobs_dir()).map_err(|_| Refusal::NotFound)?;
            let blob = paths::open_within(&blobs, &[digest.to_string()])?;
            let etag = format!("\"{digest}\"");
            super::files::respond(blob, method, headers, Some(etag))
        }
        None => Err(Refusal::NotFound),
    }
}

async fn secret(
    State(state): State<Arc<AppState>>,
    Extension(peer): Extension<Peer>,
    Path(token): Path<String>,
) -> Answer {
    let index = state.machines.current();
    let grant = match state.secrets.redeem(&token, peer.fingerprint.as_ref()) {
        Redemption::Granted(grant) => grant,
        Redemption::Unknown => return Answer::anonymous(Refusal::NotFound),
        Redemption::NotTheOwner { owner } => {
            // A copied script or a leaked link: worth the operator's eye.
            let name_of = |fp: &Fingerprint| {
                index
                    .get(fp)
                    .map_or_else(|| fp.to_string(), |m| m.name.to_string())
            };
            let Some(presenter) = &peer.fingerprint else {
                return Answer::anonymous(Refusal::NotTheOwner);
            };
            tracing::warn!(
                presenter = name_of(presenter),
                owner = name_of(&owner),
                "refused a secrets link presented by another machine's certificate; the link stays valid for its owner"
            );
            return match index.get(presenter) {
                Some(machine) => Answer::to(machine, Refusal::NotTheOwner),
                None => Answer::anonymous(Refusal::NotTheOwner),
            };
        }
    };
    let Some(machine) = index.get(&grant.fingerprint).cloned() else {
        return Answer::anonymous(Refusal::NotFound);
    };
    let result = render_secrets(&state, &machine, &grant.vars);
    Answer::to(&machine, result)
}

fn render_secrets(state: &AppState, machine: &Machine, vars: &Vars) -> Result<Response, Refusal> {
    if machine.is_revoked() {
        return Err(Refusal::Revoked(machine.name.to_string()));
    }
    let roots = Roots::of(&state.tree.current(), machine);
    let text = resolve::read_first(&roots.secrets())?.ok_or(Refusal::NotFound)?;
    Ok(script_response(template::safe_substitute(&text, vars)))
}
