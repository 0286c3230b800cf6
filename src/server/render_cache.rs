//! The last boot script rendered for each machine, served again while
//! nothing it was rendered from has changed.
//!
//! A render depends on the machine (its registry entry: name, serial,
//! profile), the script text, the `vars.toml` files that apply, the request's
//! query string and the server's URL (fixed while the server runs). The
//! machine comes from the registry index and the files from the server's
//! [`super::file_cache::FileCache`], as shared [`Arc`]s that are replaced the
//! moment their source changes: a reloaded registry builds new machines, a
//! changed file is read into a new value, and a file that changed too
//! recently to be trusted is read afresh on every request. So the inputs of a
//! render are compared by identity ([`Arc::ptr_eq`]), plus the raw query
//! string by value; an entry holds its inputs, so no identity can be reused
//! while it is kept.
//!
//! Renders that differ per request by design are never kept: a script that
//! mints a one-time `$secrets_url`, or one given scratch-space credentials.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use bytes::Bytes;

use crate::bootcfg::template::Vars;
use crate::datadir::registry::Machine;
use crate::names::Fingerprint;

/// Beyond this many machines the cache starts over: a bound, not a policy.
const MAX_ENTRIES: usize = 8192;

/// What one render was made from.
pub struct Inputs {
    pub machine: Arc<Machine>,
    pub script: Arc<String>,
    /// The `vars.toml` of each folder that applies, lowest precedence first
    /// (`None` where a folder has none).
    pub vars: Vec<Option<Arc<Vars>>>,
    pub query: String,
}

impl Inputs {
    fn same_as(&self, other: &Inputs) -> bool {
        let same_vars = self.vars.len() == other.vars.len()
            && self.vars.iter().zip(&other.vars).all(|pair| match pair {
                (Some(a), Some(b)) => Arc::ptr_eq(a, b),
                (None, None) => true,
                _ => false,
            });
        Arc::ptr_eq(&self.machine, &other.machine)
            && Arc::ptr_eq(&self.script, &other.script)
            && same_vars
            && self.query == other.query
    }
}

/// Rendered scripts by machine fingerprint.
#[derive(Default)]
pub struct RenderCache {
    entries: Mutex<HashMap<Fingerprint, (Inputs, Bytes)>>,
}

impl RenderCache {
    /// The script rendered from exactly `inputs`, if it is kept.
    pub fn get(&self, inputs: &Inputs) -> Option<Bytes> {
        let entries = self.lock();
        let (kept, body) = entries.get(&inputs.machine.fingerprint)?;
        kept.same_as(inputs).then(|| body.clone())
    }

    /// Keeps `body` as the render of `inputs`, replacing the machine's
    /// previous one.
    pub fn put(&self, inputs: Inputs, body: Bytes) {
        let mut entries = self.lock();
        if entries.len() >= MAX_ENTRIES && !entries.contains_key(&inputs.machine.fingerprint) {
            entries.clear();
        }
        entries.insert(inputs.machine.fingerprint.clone(), (inputs, body));
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Fingerprint, (Inputs, Bytes)>> {
        // A panic while holding the lock leaves a consistent map.
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn machine() -> Arc<Machine> {
        Arc::new(Machine::sample("gw", &"f".repeat(40)))
    }

    #[test]
    fn an_entry_answers_only_its_very_inputs() {
        let (machine, script) = (machine(), Arc::new("#!ipxe\n".to_string()));
        let vars = Some(Arc::new(Vars::from([("a".into(), "1".into())])));
        let inputs = |machine: &Arc<Machine>, script: &Arc<String>, vars, query: &str| Inputs {
            machine: machine.clone(),
            script: script.clone(),
            vars,
            query: query.into(),
        };
        let cache = RenderCache::default();
        let kept = inputs(&machine, &script, vec![None, vars.clone()], "mac=1");
        assert!(cache.get(&kept).is_none());
        cache.put(kept, Bytes::from_static(b"rendered"));

        let again = inputs(&machine, &script, vec![None, vars.clone()], "mac=1");
        assert_eq!(cache.get(&again).as_deref(), Some(&b"rendered"[..]));

        // Equal values, other identities: a reload happened; not the same.
        let reloaded = Arc::new((*machine).clone());
        let reread = Arc::new((*script).clone());
        let vars_reread = Some(Arc::new(Vars::from([("a".into(), "1".into())])));
        for other in [
            inputs(&reloaded, &script, vec![None, vars.clone()], "mac=1"),
            inputs(&machine, &reread, vec![None, vars.clone()], "mac=1"),
            inputs(&machine, &script, vec![None, vars_reread], "mac=1"),
            inputs(&machine, &script, vec![vars.clone(), None], "mac=1"),
            inputs(&machine, &script, vec![vars.clone()], "mac=1"),
            inputs(&machine, &script, vec![None, vars.clone()], "mac=2"),
        ] {
            assert!(cache.get(&other).is_none());
        }
    }
}
