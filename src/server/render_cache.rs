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
//!
//! Telling that the inputs are the same still means looking at each file. An
//! entry found the same again while the server's
//! [`ChangeWatch`](crate::fsutil::watch::ChangeWatch) covers every file and
//! folder it was made from is *settled* in that generation of changes: until
//! the watch reports any change, the next request of the same machine (the
//! same registry entry) with the same query string gets it without a look at
//! the files.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
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
    entries: Mutex<HashMap<Fingerprint, Entry>>,
    /// Scripts served, by how they were made ([`Made`] as index).
    served: [AtomicU64; 3],
}

/// How a served script was made, for the metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Made {
    /// Rendered for this request.
    Rendered,
    /// Kept, after a look at every file it was made from.
    Kept,
    /// Kept and settled: served without a look at the files.
    Settled,
}

impl Made {
    pub const ALL: [Made; 3] = [Made::Rendered, Made::Kept, Made::Settled];

    pub fn label(self) -> &'static str {
        match self {
            Made::Rendered => "rendered",
            Made::Kept => "kept",
            Made::Settled => "settled",
        }
    }
}

struct Entry {
    inputs: Inputs,
    body: Bytes,
    /// The generation of changes it is settled in (0: not settled).
    settled_in: u64,
}

impl RenderCache {
    /// The script rendered from exactly `inputs`, if it is kept.
    pub fn get(&self, inputs: &Inputs) -> Option<Bytes> {
        let entries = self.lock();
        let entry = entries.get(&inputs.machine.fingerprint)?;
        entry.inputs.same_as(inputs).then(|| entry.body.clone())
    }

    /// Marks the entry of exactly `inputs` settled in `generation`: the
    /// caller found every input unchanged after `generation` began, with all
    /// of them watched since before.
    pub fn settle(&self, inputs: &Inputs, generation: u64) {
        let mut entries = self.lock();
        if let Some(entry) = entries.get_mut(&inputs.machine.fingerprint)
            && entry.inputs.same_as(inputs)
        {
            entry.settled_in = generation;
        }
    }

    /// The script kept for `machine` and `query` if it is settled in
    /// `generation`: nothing changed since it was last found the same.
    pub fn settled(&self, machine: &Arc<Machine>, query: &str, generation: u64) -> Option<Bytes> {
        let entries = self.lock();
        let entry = entries.get(&machine.fingerprint)?;
        (entry.settled_in == generation
            && Arc::ptr_eq(&entry.inputs.machine, machine)
            && entry.inputs.query == query)
            .then(|| entry.body.clone())
    }

    /// Keeps `body` as the render of `inputs`, replacing the machine's
    /// previous one.
    pub fn put(&self, inputs: Inputs, body: Bytes) {
        let mut entries = self.lock();
        if entries.len() >= MAX_ENTRIES && !entries.contains_key(&inputs.machine.fingerprint) {
            entries.clear();
        }
        let entry = Entry {
            inputs,
            body,
            settled_in: 0,
        };
        entries.insert(entry.inputs.machine.fingerprint.clone(), entry);
    }

    /// Counts one script served.
    pub fn count(&self, made: Made) {
        self.served[made as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// Scripts served so far, by how they were made.
    pub fn served(&self) -> [(Made, u64); 3] {
        Made::ALL.map(|made| (made, self.served[made as usize].load(Ordering::Relaxed)))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Fingerprint, Entry>> {
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
