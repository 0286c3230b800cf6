//! The `autoexec.ipxe` script baked into every image: it hands iPXE the
//! machine's client certificate and key, then loops forever — configure the
//! network, fetch the machine's boot script from the server over mutual TLS,
//! and on any failure say so, wait, and try again.
//!
//! iPXE (trixie's 1.21.1+git20250501) details this relies on:
//! - `set cert:hexraw` / `set privkey:hexraw` install the client certificate
//!   and its PKCS#8 key from the script; nothing needs rebuilding per machine.
//! - A failing command ends the script unless it is followed by `|| ...`, so
//!   every command that can fail (`dhcp`, `chain`) has its `||` branch.
//! - `||`, `&&` and `;` are operators only as separate words, and `${...}` is
//!   expanded everywhere, so the server URL is checked for characters that
//!   would change the script's meaning ([`check_server_url`]).
//! - There is no `ntp` command in this build: certificates the board checks
//!   are valid from 1970 instead (see [`crate::ca`]).

use anyhow::{Result, bail};
use zeroize::Zeroizing;

/// What the script needs to know about the machine and the server.
pub struct Autoexec<'a> {
    pub machine: &'a str,
    pub fingerprint: &'a str,
    /// `https://host[:port][/prefix]`, without a trailing slash.
    pub server_url: &'a str,
    /// The client certificate, DER.
    pub cert_der: &'a [u8],
    /// The client key, PKCS#8 DER.
    pub key_pkcs8_der: &'a [u8],
}

/// Seconds between DHCP attempts.
pub const DHCP_RETRY_SECS: u32 = 5;
/// Seconds between attempts to fetch the boot script.
pub const CHAIN_RETRY_SECS: u32 = 10;

/// Checks and normalises a server URL for use in the script: `https://`, a
/// host, no trailing slash, and none of the characters iPXE's script syntax or
/// our query string would trip over.
pub fn check_server_url(url: &str) -> Result<String> {
    let url = url.trim().trim_end_matches('/');
    let Some(rest) = url.strip_prefix("https://") else {
        bail!(
            "server URL {url:?} must start with https:// (iPXE presents the client certificate only over TLS)"
        );
    };
    if rest.is_empty() || rest.starts_with('/') {
        bail!("server URL {url:?} has no host name");
    }
    if let Some(bad) = rest
        .chars()
        .find(|c| c.is_whitespace() || c.is_control() || "$&|;?#\"'\\<>{}^`".contains(*c))
    {
        bail!("server URL {url:?} contains {bad:?}, which cannot be used in an iPXE script URL");
    }
    Ok(url.to_string())
}

/// The URL iPXE chains to: the server's `/boot/ipxe` with the query the
/// original deployment used (iPXE expands the `${...}` at run time).
pub fn chain_url(server_url: &str) -> String {
    format!(
        "{server_url}/boot/ipxe?mac=${{netX/mac}}&platform=${{platform}}&buildarch=${{buildarch}}"
    )
}

/// Renders the script. It contains the private key, hence `Zeroizing`.
pub fn render(a: &Autoexec<'_>) -> Zeroizing<String> {
    let Autoexec {
        machine,
        fingerprint,
        server_url,
        ..
    } = a;
    let chain = chain_url(server_url);
    let cert = hex::encode(a.cert_der);
    let key = Zeroizing::new(hex::encode(a.key_pkcs8_der));
    let key: &str = &key;
    Zeroizing::new(format!(
        "#!ipxe
# bootgate start-up script for machine {machine}
# (client certificate fingerprint {fingerprint}).
# It holds the machine's private key: keep it and the image it is on private.

echo bootgate: machine {machine}, boot server {server_url}
set cert:hexraw {cert}
set privkey:hexraw {key}

:dhcp
echo bootgate: configuring the network (DHCP)
dhcp || goto dhcp_failed
goto chain
:dhcp_failed
echo bootgate: DHCP failed, retrying in {DHCP_RETRY_SECS} seconds
sleep {DHCP_RETRY_SECS}
goto dhcp

:chain
echo bootgate: fetching the boot script from {server_url}/boot/ipxe
chain {chain} || goto chain_failed
echo bootgate: the boot script returned without booting, retrying in {CHAIN_RETRY_SECS} seconds
sleep {CHAIN_RETRY_SECS}
goto dhcp
:chain_failed
echo bootgate: could not fetch or run the boot script (error above), retrying in {CHAIN_RETRY_SECS} seconds
sleep {CHAIN_RETRY_SECS}
goto dhcp
"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn golden_script() {
        let script = render(&Autoexec {
            machine: "gw-1",
            fingerprint: "0123456789abcdef0123456789abcdef01234567",
            server_url: "https://boot.example.com:8443",
            cert_der: &[0x30, 0x82, 0x01, 0xff],
            key_pkcs8_der: &[0x30, 0x82, 0x04, 0xbe, 0x02],
        });
        let expected = r#"#!ipxe
# bootgate start-up script for machine gw-1
# (client certificate fingerprint 0123456789abcdef0123456789abcdef01234567).
# It holds the machine's private key: keep it and the image it is on private.

echo bootgate: machine gw-1, boot server https://boot.example.com:8443
set cert:hexraw 308201ff
set privkey:hexraw 308204be02

:dhcp
echo bootgate: configuring the network (DHCP)
dhcp || goto dhcp_failed
goto chain
:dhcp_failed
echo bootgate: DHCP failed, retrying in 5 seconds
sleep 5
goto dhcp

:chain
echo bootgate: fetching the boot script from https://boot.example.com:8443/boot/ipxe
chain https://boot.example.com:8443/boot/ipxe?mac=${netX/mac}&platform=${platform}&buildarch=${buildarch} || goto chain_failed
echo bootgate: the boot script returned without booting, retrying in 10 seconds
sleep 10
goto dhcp
:chain_failed
echo bootgate: could not fetch or run the boot script (error above), retrying in 10 seconds
sleep 10
goto dhcp
"#;
        assert_eq!(script.as_str(), expected);
    }

    #[test]
    fn every_goto_has_its_label() {
        let script = render(&Autoexec {
            machine: "m",
            fingerprint: "f",
            server_url: "https://h",
            cert_der: &[1],
            key_pkcs8_der: &[2],
        });
        let labels: Vec<&str> = script.lines().filter_map(|l| l.strip_prefix(':')).collect();
        for line in script.lines() {
            if let Some((_, target)) = line.split_once("goto ") {
                assert!(labels.contains(&target), "goto {target} has no label");
            }
        }
        assert!(!script.contains("ntp"), "this iPXE has no ntp command");
    }

    #[test]
    fn server_urls_are_checked() {
        assert_eq!(
            check_server_url("https://boot.example.com:8443/").unwrap(),
            "https://boot.example.com:8443"
        );
        assert_eq!(
            check_server_url("https://[fd00::1]/prefix").unwrap(),
            "https://[fd00::1]/prefix"
        );
        for bad in [
            "http://boot.example.com",
            "https://",
            "https:///x",
            "https://a b",
            "https://host/${x}",
            "https://host/a?b=c",
            "https://host/||",
        ] {
            assert!(check_server_url(bad).is_err(), "{bad}");
        }
    }
}
