//! The render-time hook that hands a machine its scratch space: when
//! `[scratch]` is configured and the boot script (or the `secrets` it points
//! to through `$secrets_url`) uses `$s3_*` variables, the machine's bucket
//! and key come from [`crate::scratch`]. A store that is down or slow does
//! not stop the boot: the variables render empty, and the request is
//! recorded with reason `scratch-unavailable`.

use super::error::Refusal;
use super::resolve::Roots;
use super::routes::first_script;
use super::state::AppState;
use crate::bootcfg::template::{self, Vars};
use crate::bootcfg::variables;
use crate::datadir::registry::Machine;
use crate::scratch::{VARIABLES, uses_scratch, uses_secret};

/// The boot history's reason for a script served without its scratch space.
pub const UNAVAILABLE: &str = "scratch-unavailable";

/// What a boot script got of the machine's scratch space.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Provision {
    NotUsed,
    Granted,
    Unavailable,
}

pub async fn provide(
    state: &AppState,
    machine: &Machine,
    roots: &Roots,
    script: &str,
    vars: &mut Vars,
) -> Result<Provision, Refusal> {
    let Some(scratch) = &state.scratch else {
        return Ok(Provision::NotUsed);
    };
    let in_script = template::referenced_names(script);
    let mut wanted = uses_scratch(&in_script);
    if !wanted
        && in_script.contains(&variables::SECRETS_URL)
        && let Some(secrets) = first_script(state, &roots.secrets())?
    {
        wanted = uses_scratch(&template::referenced_names(&secrets));
    }
    if !wanted {
        return Ok(Provision::NotUsed);
    }
    if uses_secret(&in_script) && scratch.first_warning(machine.name.as_ref()) {
        tracing::warn!(
            machine = %machine.name,
            "boot.ipxe puts $s3_access_key in the script itself, which iPXE shows and the log keeps; \
             move it to `secrets` and pass $secrets_url"
        );
    }
    let index = state.machines.clone();
    let fingerprint = machine.fingerprint.clone();
    let still_active = move || {
        index
            .current()
            .get(&fingerprint)
            .is_some_and(|m| !m.is_revoked())
    };
    match scratch.grant(&machine.fingerprint, still_active).await {
        Ok(grant) => {
            for (name, value) in grant.vars() {
                vars.insert(name.into(), value);
            }
            Ok(Provision::Granted)
        }
        Err(err) => {
            tracing::warn!(
                machine = %machine.name,
                "scratch space unavailable, serving the boot script without it: {err:#}"
            );
            for name in VARIABLES {
                vars.insert(name.into(), String::new());
            }
            Ok(Provision::Unavailable)
        }
    }
}
