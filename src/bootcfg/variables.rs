//! The template variables bootgate provides, named once: those it fills in
//! for every machine, and the query parameters its boot images send
//! (`docs/templates.md`). Whoever renders a script for a machine — the server,
//! the checks of a git-managed configuration — fills them in through
//! [`MachineVars`]; whoever warns about unknown names asks [`is_standard`].

use super::template::Vars;
use crate::datadir::registry::Machine;

pub const MACHINE_NAME: &str = "machine_name";
pub const CLIENT_CERT_FINGERPRINT: &str = "client_cert_fingerprint";
pub const CLIENT_CERT_SERIAL: &str = "client_cert_serial";
pub const SERVER_URL: &str = "server_url";
/// Filled in only when a script uses it: rendering mints a one-time token.
pub const SECRETS_URL: &str = "secrets_url";

/// Names bootgate fills in itself; neither a `vars.toml` nor the query
/// overrides them.
pub const OWN: [&str; 5] = [
    MACHINE_NAME,
    CLIENT_CERT_FINGERPRINT,
    CLIENT_CERT_SERIAL,
    SERVER_URL,
    SECRETS_URL,
];

/// Query parameters boot images send: `mac` (every original gateway),
/// `platform` and `buildarch` (images bootgate builds).
pub const QUERY: [&str; 3] = ["mac", "platform", "buildarch"];

/// Whether every machine's script can count on `name` without a `vars.toml`.
pub fn is_standard(name: &str) -> bool {
    OWN.contains(&name) || QUERY.contains(&name)
}

/// What bootgate fills in for one machine, but `secrets_url` ([`secrets_url`]).
pub struct MachineVars<'a> {
    pub name: &'a str,
    pub fingerprint: &'a str,
    /// Hex, as the registry stores it.
    pub serial: &'a str,
    pub server_url: &'a str,
}

impl<'a> MachineVars<'a> {
    /// What bootgate fills in for `machine`, served from `server_url`.
    pub fn of(machine: &'a Machine, server_url: &'a str) -> Self {
        Self {
            name: machine.name.as_ref(),
            fingerprint: machine.fingerprint.as_str(),
            serial: &machine.serial,
            server_url,
        }
    }

    /// Sets the machine's variables in `vars`, over any of the same name.
    pub fn insert_into(&self, vars: &mut Vars) {
        vars.insert(MACHINE_NAME.into(), self.name.to_string());
        vars.insert(CLIENT_CERT_FINGERPRINT.into(), self.fingerprint.to_string());
        vars.insert(CLIENT_CERT_SERIAL.into(), nginx_serial(self.serial));
        vars.insert(SERVER_URL.into(), self.server_url.to_string());
    }
}

/// The value of `secrets_url` for a minted token.
pub fn secrets_url(server_url: &str, token: &str) -> String {
    format!("{server_url}/secrets/{token}")
}

/// A certificate serial (hex, as stored in the registry) written the way
/// nginx's `$ssl_client_serial` is, which the original passed to its
/// templates: uppercase hex, without DER's leading zero byte.
pub fn nginx_serial(serial_hex: &str) -> String {
    let mut s = serial_hex;
    while s.len() > 2 && s.starts_with("00") {
        s = &s[2..];
    }
    s.to_ascii_uppercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serials_read_like_nginx() {
        assert_eq!(nginx_serial("01"), "01");
        assert_eq!(nginx_serial("00c4ff"), "C4FF");
        assert_eq!(nginx_serial("00"), "00");
    }

    #[test]
    fn machine_vars_fill_every_own_name_but_the_minted_one() {
        let mut vars = Vars::new();
        vars.insert(MACHINE_NAME.into(), "from vars.toml".into());
        MachineVars {
            name: "gw",
            fingerprint: "ab",
            serial: "00c4",
            server_url: "https://boot.example.com",
        }
        .insert_into(&mut vars);
        let filled: Vec<&str> = OWN.into_iter().filter(|n| vars.contains_key(*n)).collect();
        assert_eq!(
            filled,
            [
                MACHINE_NAME,
                CLIENT_CERT_FINGERPRINT,
                CLIENT_CERT_SERIAL,
                SERVER_URL
            ]
        );
        assert_eq!(vars[MACHINE_NAME], "gw");
        assert_eq!(vars[CLIENT_CERT_SERIAL], "C4");
        assert!(is_standard("buildarch") && is_standard(SECRETS_URL) && !is_standard("role"));
    }
}
