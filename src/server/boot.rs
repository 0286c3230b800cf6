//! What a machine boots: which script it gets and with which variables. The
//! rendering itself is the pure [`crate::bootcfg::template`]; this module only
//! finds the inputs on disk.
//!
//! Variables, later ones overriding earlier ones:
//! 1. the query parameters of `/boot/ipxe` (`mac`, `platform`, `buildarch`, ...);
//! 2. the `vars.toml` of the machine's profile (flat `name = "value"` pairs);
//! 3. the machine's own `vars.toml`;
//! 4. bootgate's own ([`crate::bootcfg::variables`]): `machine_name`,
//!    `client_cert_fingerprint`, `client_cert_serial`, `server_url`, and
//!    `secrets_url` when the template uses it.
//!
//! [`unprovided_variables`] tells an operator which names a machine's script
//! uses that none of these provide (they stay in the script as written).
//!
//! Which folders those files come from is [`super::resolve`]'s business.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use super::error::{Refusal, internal};
use super::file_cache::FileCache;
use crate::bootcfg::template::Vars;
use crate::bootcfg::variables;
use crate::datadir::VARS_FILE;

/// Checks query parameters before they become template variables: names are
/// identifiers, values hold nothing that could break an iPXE or kernel command
/// line (no spaces, quotes, `$`, `;` or newlines).
pub fn query_vars(query: &HashMap<String, String>) -> Result<Vars, Refusal> {
    let mut vars = Vars::new();
    for (name, value) in query {
        let name_ok = is_identifier(name) && name.len() <= 64;
        let value_ok = value.len() <= 256
            && value
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._:+,@/-".contains(&b));
        if !name_ok || !value_ok {
            return Err(Refusal::BadRequest(format!(
                "query parameter {name:?} has characters bootgate does not put into scripts"
            )));
        }
        vars.insert(name.clone(), value.clone());
    }
    Ok(vars)
}

fn is_identifier(s: &str) -> bool {
    let mut bytes = s.bytes();
    bytes
        .next()
        .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// The variables of `vars.toml` in a machine's folder; `None` without one.
pub fn file_vars(cache: &FileCache<Vars>, root: &Path) -> Result<Option<Arc<Vars>>, Refusal> {
    let path = root.join(VARS_FILE);
    let Some((folder, name)) = super::resolve::open_parent(&path)? else {
        return Ok(None);
    };
    cache
        .get(&folder, name)
        .map_err(|err| internal("boot variables", format!("{err:#}")))
}

/// The script `machine` is served and the names it references that nothing
/// provides: not bootgate, not the usual query parameters, not a `vars.toml`.
/// `None` when no script applies.
pub fn unprovided_variables(
    dir: &crate::datadir::DataDir,
    machine: &crate::datadir::registry::Machine,
) -> anyhow::Result<Option<(std::path::PathBuf, Vec<String>)>> {
    use anyhow::Context as _;
    let roots = super::resolve::Roots::of(dir, machine);
    let Some(script) = roots.scripts().into_iter().find(|p| p.is_file()) else {
        return Ok(None);
    };
    let text = std::fs::read_to_string(&script)
        .with_context(|| format!("reading {}", script.display()))?;
    let mut provided = Vars::new();
    for folder in roots.vars_folders() {
        let path = folder.join(VARS_FILE);
        if path.is_file() {
            let text = std::fs::read_to_string(&path)
                .with_context(|| format!("reading {}", path.display()))?;
            provided
                .extend(parse_vars(&text).with_context(|| format!("parsing {}", path.display()))?);
        }
    }
    let missing = crate::bootcfg::template::referenced_names(&text)
        .into_iter()
        .filter(|name| !variables::is_standard(name) && !provided.contains_key(*name))
        .map(str::to_string)
        .collect();
    Ok(Some((script, missing)))
}

/// Parses a vars file: a flat TOML table of strings, integers or booleans.
pub fn parse_vars(text: &str) -> anyhow::Result<Vars> {
    let table: toml::Table = toml::from_str(text)?;
    let mut vars = Vars::new();
    for (name, value) in table {
        if !is_identifier(&name) {
            anyhow::bail!("{name:?} is not a valid variable name ([A-Za-z_][A-Za-z0-9_]*)");
        }
        let value = match value {
            toml::Value::String(s) => s,
            toml::Value::Integer(i) => i.to_string(),
            toml::Value::Boolean(b) => b.to_string(),
            other => anyhow::bail!(
                "{name} is a {}; only strings, integers and booleans are allowed",
                other.type_str()
            ),
        };
        vars.insert(name, value);
    }
    Ok(vars)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vars_files() {
        let vars = parse_vars("role = \"gateway\"\nslot = 3\nfast = true\n").unwrap();
        assert_eq!(vars["role"], "gateway");
        assert_eq!(vars["slot"], "3");
        assert_eq!(vars["fast"], "true");
        assert!(parse_vars("[table]\nx = 1\n").is_err());
        assert!(parse_vars("\"bad-name\" = 1\n").is_err());
        assert!(parse_vars("not toml").is_err());
    }

    #[test]
    fn query_values_are_checked() {
        let q = |k: &str, v: &str| HashMap::from([(k.to_string(), v.to_string())]);
        assert!(query_vars(&q("mac", "52:54:00:12:34:56")).is_ok());
        assert!(query_vars(&q("buildarch", "x86_64")).is_ok());
        assert!(query_vars(&q("mac", "")).is_ok());
        assert!(query_vars(&q("mac", "a b")).is_err());
        assert!(query_vars(&q("mac", "x\nchain http://evil")).is_err());
        assert!(query_vars(&q("mac", "$x")).is_err());
        assert!(query_vars(&q("bad-name", "x")).is_err());
    }
}
