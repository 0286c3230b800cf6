//! boot2container boot scripts from typed, validated parameters: the pure
//! function behind `bootgate profile create --b2c`.
//!
//! The output is an iPXE script like the one the 2023 project booted its
//! Raspberry Pi gateways with:
//!
//! ```text
//! #!ipxe
//!
//! kernel /files/linux-arm64-6.5.1 initrd=b2c b2c.run="-ti registry.example/gw:aarch64" b2c.ntp_peer=auto b2c.cache_device=auto
//! initrd --name b2c /files/initramfs.linux_arm64.cpio.xz
//! boot
//! ```
//!
//! Three parsers read that `kernel` line, and every value is checked against
//! all three:
//! - **iPXE** splits a line on whitespace with no quoting, then joins the
//!   words after the image with single spaces into the command line. A word
//!   starting with `#` starts a comment; a word `||`, `&&` or `;` ends the
//!   command; `${...}` is expanded from iPXE's settings. Words like those are
//!   refused.
//! - **Linux** splits the command line on spaces outside double quotes. A
//!   value with a space is written in double quotes; a value containing `"`
//!   cannot be written at all and is refused, as are control characters.
//! - **bootgate's renderer** treats the script as a template: `$name` and
//!   `${name}` in a value are bootgate variables, filled in per machine at
//!   each boot (`$machine_name`, `$secrets_url`, `vars.toml` entries), and `$$`
//!   is a literal `$`. A reference to a variable bootgate does not know of is
//!   warned about, since it would reach the machine as written.

use std::fmt;
use std::str::FromStr;

use super::template;
use crate::names::AssetName;

/// boot2container parameters bootgate knows of (names without `b2c.`);
/// others are passed through with a warning.
pub const KNOWN_PARAMS: [&str; 19] = [
    "run",
    "container",
    "post_container",
    "service",
    "cache_device",
    "swap",
    "ntp_peer",
    "pipefail",
    "volume",
    "minio",
    "filesystem",
    "extra_args_url",
    "iface",
    "insmods",
    "hostname",
    "keymap",
    "poweroff_delay",
    "shutdown_cmd",
    "reboot_cmd",
];

/// Longest kernel command line arm64 and x86 kernels accept
/// (`COMMAND_LINE_SIZE`); longer ones are cut.
pub const MAX_CMDLINE: usize = 2048;

/// Why a parameter cannot be put on the kernel line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum B2cError {
    #[error(
        "{0:?} contains a double quote: the kernel command line has no way to escape one; rewrite the value without it"
    )]
    Quote(String),
    #[error(
        "{0:?} contains a control character (newline, tab, NUL, ...): it would break the iPXE line; remove it"
    )]
    Control(String),
    #[error(
        "{value:?} contains the word {word:?}, which iPXE reads as {meaning}; remove it or attach it to the word before"
    )]
    IpxeWord {
        value: String,
        word: String,
        meaning: &'static str,
    },
    #[error("{0:?} has unbalanced double quotes")]
    Unbalanced(String),
    #[error(
        "invalid b2c parameter {0:?}: use NAME=VALUE or NAME, NAME being letters, digits and '_'"
    )]
    ParamName(String),
    #[error("invalid {what} {value:?}: {hint}")]
    Invalid {
        what: &'static str,
        value: String,
        hint: &'static str,
    },
    #[error("b2c.{name} is given twice: once by {flag} and once by --b2c; keep one")]
    Duplicate { name: String, flag: &'static str },
    #[error(
        "boot2container would have nothing to run: give --run 'ARGS' (podman run arguments), or --b2c service=... / --b2c container=..."
    )]
    NothingToRun,
}

/// A value that can sit on the kernel line: no control characters, no double
/// quote, no word iPXE would read as syntax. May contain spaces (it is then
/// written in double quotes) and bootgate variables.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CmdlineValue(String);

impl FromStr for CmdlineValue {
    type Err = B2cError;
    fn from_str(s: &str) -> Result<Self, B2cError> {
        check_text(s)?;
        if s.contains('"') {
            return Err(B2cError::Quote(s.into()));
        }
        Ok(Self(s.into()))
    }
}

impl CmdlineValue {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The value as the kernel needs it: in double quotes when it has a space
    /// or is empty, as is otherwise.
    fn quoted(&self) -> String {
        if self.0.is_empty() || self.0.contains(' ') {
            format!("\"{}\"", self.0)
        } else {
            self.0.clone()
        }
    }
}

/// Extra kernel command-line text, written as given (`console=ttyAMA0 quiet`,
/// `foo="a b"`): quotes are allowed but must pair up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawCmdline(String);

impl FromStr for RawCmdline {
    type Err = B2cError;
    fn from_str(s: &str) -> Result<Self, B2cError> {
        check_text(s)?;
        if !s.matches('"').count().is_multiple_of(2) {
            return Err(B2cError::Unbalanced(s.into()));
        }
        Ok(Self(s.trim().into()))
    }
}

/// Checks what every piece of the kernel line must satisfy.
fn check_text(s: &str) -> Result<(), B2cError> {
    if s.chars().any(char::is_control) {
        return Err(B2cError::Control(s.into()));
    }
    for word in s.split(' ') {
        let meaning = if word.starts_with('#') {
            "the start of a comment (the rest of the line would be dropped)"
        } else if matches!(word, "||" | "&&" | ";") {
            "the end of the command"
        } else {
            continue;
        };
        return Err(B2cError::IpxeWord {
            value: s.into(),
            word: word.into(),
            meaning,
        });
    }
    Ok(())
}

/// `b2c.NAME=VALUE`, or a bare `b2c.NAME` flag (`pipefail`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct B2cParam {
    pub name: String,
    pub value: Option<CmdlineValue>,
}

impl FromStr for B2cParam {
    type Err = B2cError;
    fn from_str(s: &str) -> Result<Self, B2cError> {
        let (name, value) = match s.split_once('=') {
            Some((name, value)) => (name, Some(value.parse()?)),
            None => (s, None),
        };
        let name = name.strip_prefix("b2c.").unwrap_or(name);
        let valid =
            !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
        if !valid {
            return Err(B2cError::ParamName(s.into()));
        }
        Ok(Self {
            name: name.into(),
            value,
        })
    }
}

impl fmt::Display for B2cParam {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.value {
            Some(value) => write!(f, "b2c.{}={}", self.name, value.quoted()),
            None => write!(f, "b2c.{}", self.name),
        }
    }
}

/// The file system label boot2container's `b2c.cache_device=auto` looks for.
pub const CACHE_LABEL: &str = "B2C_CACHE";

/// `b2c.cache_device`: where boot2container keeps container images.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CacheDevice {
    /// No cache: images are pulled into RAM at every boot.
    None,
    /// The first file system labelled `B2C_CACHE` (what `image build
    /// --cache-size` makes); when there is none, boot2container repartitions
    /// and formats the first disk it finds.
    Auto,
    /// Like `auto`, but the labelled file system is reformatted first.
    Reset,
    /// A block device path (see docs/boot2container.md for how boot2container
    /// treats it).
    Device(String),
}

impl FromStr for CacheDevice {
    type Err = B2cError;
    fn from_str(s: &str) -> Result<Self, B2cError> {
        Ok(match s {
            "none" => Self::None,
            "auto" => Self::Auto,
            "reset" => Self::Reset,
            dev if dev.starts_with("/dev/")
                && dev.len() > 5
                && dev
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"/._-:".contains(&b)) =>
            {
                Self::Device(dev.into())
            }
            _ => {
                return Err(B2cError::Invalid {
                    what: "cache device",
                    value: s.into(),
                    hint: "use auto, none, reset or a device path such as /dev/mmcblk0p2",
                });
            }
        })
    }
}

impl fmt::Display for CacheDevice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::None => "none",
            Self::Auto => "auto",
            Self::Reset => "reset",
            Self::Device(dev) => dev,
        })
    }
}

/// `b2c.ntp_peer`: where boot2container sets its clock from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NtpPeer {
    None,
    /// The NTP server DHCP announced.
    Auto,
    Host(String),
}

impl FromStr for NtpPeer {
    type Err = B2cError;
    fn from_str(s: &str) -> Result<Self, B2cError> {
        Ok(match s {
            "none" => Self::None,
            "auto" => Self::Auto,
            host if !host.is_empty()
                && host
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b".-:".contains(&b)) =>
            {
                Self::Host(host.into())
            }
            _ => {
                return Err(B2cError::Invalid {
                    what: "NTP peer",
                    value: s.into(),
                    hint: "use auto, none, a host name or an IP address",
                });
            }
        })
    }
}

impl fmt::Display for NtpPeer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::None => "none",
            Self::Auto => "auto",
            Self::Host(host) => host,
        })
    }
}

/// Everything a boot2container boot needs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct B2cConfig {
    pub kernel: Option<AssetName>,
    pub initramfs: Option<AssetName>,
    /// A device tree for the kernel (arm64 boards), loaded with iPXE's `fdt`.
    pub dtb: Option<AssetName>,
    /// `b2c.run` values, in order: podman run arguments.
    pub run: Vec<CmdlineValue>,
    pub ntp_peer: Option<NtpPeer>,
    pub cache_device: Option<CacheDevice>,
    /// Other `b2c.*` parameters, in order.
    pub params: Vec<B2cParam>,
    /// Adds `b2c.extra_args_url=$secrets_url`: boot2container fetches the
    /// machine's one-time `secrets` as extra parameters, so credentials never
    /// sit in the script.
    pub secrets_args: bool,
    /// Extra kernel command-line text after the b2c parameters.
    pub cmdline: Vec<RawCmdline>,
}

/// A rendered script and what deserves a second look.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    pub script: String,
    pub warnings: Vec<String>,
}

impl B2cConfig {
    /// Renders the iPXE script. `variables` are the names the script may
    /// reference besides the [standard ones](super::variables::is_standard)
    /// (e.g. the profile's vars).
    pub fn render(&self, variables: &[&str]) -> Result<Rendered, B2cError> {
        let missing = |what: &'static str| B2cError::Invalid {
            what,
            value: String::new(),
            hint: "name a shared asset (bootgate asset add FILE)",
        };
        let kernel = self.kernel.as_ref().ok_or_else(|| missing("kernel"))?;
        let initramfs = self
            .initramfs
            .as_ref()
            .ok_or_else(|| missing("initramfs"))?;
        self.check_duplicates()?;
        let runs_something = !self.run.is_empty()
            || self
                .params
                .iter()
                .any(|p| matches!(p.name.as_str(), "run" | "container" | "service"));
        if !runs_something {
            return Err(B2cError::NothingToRun);
        }

        let mut params: Vec<String> = vec!["initrd=b2c".into()];
        params.extend(self.run.iter().map(|v| format!("b2c.run={}", v.quoted())));
        if let Some(peer) = &self.ntp_peer {
            params.push(format!("b2c.ntp_peer={peer}"));
        }
        if let Some(cache) = &self.cache_device {
            params.push(format!("b2c.cache_device={cache}"));
        }
        params.extend(self.params.iter().map(ToString::to_string));
        if self.secrets_args {
            params.push("b2c.extra_args_url=$secrets_url".into());
        }
        params.extend(self.cmdline.iter().map(|c| c.0.clone()));
        let cmdline = params.join(" ");

        let mut script = format!("#!ipxe\n\nkernel /files/{kernel} {cmdline}\n");
        script.push_str(&format!("initrd --name b2c /files/{initramfs}\n"));
        if let Some(dtb) = &self.dtb {
            script.push_str(&format!("fdt /files/{dtb}\n"));
        }
        script.push_str("boot\n");

        let warnings = self.warnings(&cmdline, variables);
        Ok(Rendered { script, warnings })
    }

    fn check_duplicates(&self) -> Result<(), B2cError> {
        let dedicated = [
            ("ntp_peer", "--ntp-peer", self.ntp_peer.is_some()),
            (
                "cache_device",
                "--cache-device",
                self.cache_device.is_some(),
            ),
            ("extra_args_url", "--secrets-args", self.secrets_args),
        ];
        for (name, flag, given) in dedicated {
            if given && self.params.iter().any(|p| p.name == name) {
                return Err(B2cError::Duplicate {
                    name: name.into(),
                    flag,
                });
            }
        }
        Ok(())
    }

    /// `auto` or `reset`, from `--cache-device` or a raw `--b2c cache_device=`.
    fn searches_for_cache(&self) -> Option<String> {
        let raw = self
            .params
            .iter()
            .filter(|p| p.name == "cache_device")
            .filter_map(|p| p.value.as_ref().map(|v| v.as_str().to_string()));
        let flag = self.cache_device.iter().map(|c| c.to_string());
        flag.chain(raw).find(|v| v == "auto" || v == "reset")
    }

    fn warnings(&self, cmdline: &str, variables: &[&str]) -> Vec<String> {
        let mut warnings = Vec::new();
        // A profile does not know its machines' platforms or images: say
        // what `auto` needs every time it is used.
        if let Some(mode) = self.searches_for_cache() {
            warnings.push(format!(
                "b2c.cache_device={mode}: boot2container uses the file system labelled {CACHE_LABEL}, and on a machine without one it repartitions and formats the first disk it finds (on a Raspberry Pi, the SD card it booted from); build the image of every machine of this profile with `bootgate image build --cache-size SIZE`, which makes that file system, or use --cache-device none"
            ));
        }
        for param in &self.params {
            if !KNOWN_PARAMS.contains(&param.name.as_str()) {
                warnings.push(format!(
                    "b2c.{} is not a boot2container parameter bootgate knows of (known: {}); it is passed as written, check its spelling",
                    param.name,
                    KNOWN_PARAMS.join(", ")
                ));
            }
        }
        for name in template::referenced_names(cmdline) {
            if !super::variables::is_standard(name) && !variables.contains(&name) {
                warnings.push(format!(
                    "${name} is not a bootgate variable: it reaches machines as written unless their vars.toml defines {name}; write $$ for a literal $"
                ));
            }
        }
        if cmdline.contains("  ") {
            warnings.push(
                "the command line has consecutive spaces: iPXE joins words with single spaces"
                    .into(),
            );
        }
        if cmdline.len() > MAX_CMDLINE {
            warnings.push(format!(
                "the kernel command line is {} bytes, over the {MAX_CMDLINE} kernels accept: the end would be cut",
                cmdline.len()
            ));
        }
        warnings
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(kernel: &str, initramfs: &str, run: &[&str]) -> B2cConfig {
        B2cConfig {
            kernel: Some(kernel.parse().unwrap()),
            initramfs: Some(initramfs.parse().unwrap()),
            run: run.iter().map(|r| r.parse().unwrap()).collect(),
            ..B2cConfig::default()
        }
    }

    /// The script of the 2023 project's Raspberry Pi gateway, byte for byte.
    #[test]
    fn renders_the_seed_example_exactly() {
        let mut c = config(
            "linux-arm64-6.5.1",
            "initramfs.linux_arm64.cpio.xz",
            &["-ti registry.freedesktop.org/mupuf/valve-infra/valve-infra-container:aarch64"],
        );
        c.ntp_peer = Some("auto".parse().unwrap());
        c.cache_device = Some("/dev/mmcblk0p2".parse().unwrap());
        let rendered = c.render(&[]).unwrap();
        assert_eq!(
            rendered.script,
            "#!ipxe\n\
             \n\
             kernel /files/linux-arm64-6.5.1 initrd=b2c b2c.run=\"-ti registry.freedesktop.org/mupuf/valve-infra/valve-infra-container:aarch64\" b2c.ntp_peer=auto b2c.cache_device=/dev/mmcblk0p2\n\
             initrd --name b2c /files/initramfs.linux_arm64.cpio.xz\n\
             boot\n"
        );
        assert!(rendered.warnings.is_empty(), "{:?}", rendered.warnings);
    }

    #[test]
    fn renders_every_option() {
        let mut c = config(
            "vmlinuz",
            "initramfs.cpio.xz",
            &["-ti img:1", "--rm alpine echo done"],
        );
        c.dtb = Some("bcm2711-rpi-4-b.dtb".parse().unwrap());
        c.ntp_peer = Some("pool.ntp.org".parse().unwrap());
        c.cache_device = Some("auto".parse().unwrap());
        c.params = vec![
            "swap=1G".parse().unwrap(),
            "b2c.hostname=$machine_name".parse().unwrap(),
            "pipefail".parse().unwrap(),
            "volume=job,mirror=x y".parse().unwrap(),
        ];
        c.secrets_args = true;
        c.cmdline = vec![
            "console=ttyS0,115200 quiet".parse().unwrap(),
            "foo=\"a b\"".parse().unwrap(),
        ];
        let rendered = c.render(&[]).unwrap();
        assert_eq!(
            rendered.script,
            "#!ipxe\n\n\
             kernel /files/vmlinuz initrd=b2c b2c.run=\"-ti img:1\" b2c.run=\"--rm alpine echo done\" \
             b2c.ntp_peer=pool.ntp.org b2c.cache_device=auto b2c.swap=1G b2c.hostname=$machine_name \
             b2c.pipefail b2c.volume=\"job,mirror=x y\" b2c.extra_args_url=$secrets_url \
             console=ttyS0,115200 quiet foo=\"a b\"\n\
             initrd --name b2c /files/initramfs.cpio.xz\n\
             fdt /files/bcm2711-rpi-4-b.dtb\n\
             boot\n"
        );
        assert_eq!(rendered.warnings.len(), 1, "{:?}", rendered.warnings);
        assert!(
            rendered.warnings[0].contains("b2c.cache_device=auto")
                && rendered.warnings[0].contains("--cache-size"),
            "{:?}",
            rendered.warnings
        );
    }

    #[test]
    fn warns_that_auto_needs_a_cache_file_system() {
        let mut c = config("k", "i", &["x"]);
        for (flag, raw, warned) in [
            (Some("auto"), None, true),
            (Some("reset"), None, true),
            (Some("none"), None, false),
            (Some("/dev/mmcblk0p2"), None, false),
            (None, Some("cache_device=auto"), true),
            (None, Some("cache_device=none"), false),
        ] {
            c.cache_device = flag.map(|f| f.parse().unwrap());
            c.params = raw.iter().map(|r| r.parse().unwrap()).collect();
            let warnings = c.render(&[]).unwrap().warnings;
            let found = warnings.iter().any(|w| w.contains("repartitions"));
            assert_eq!(found, warned, "{flag:?} {raw:?}: {warnings:?}");
        }
    }

    #[test]
    fn refuses_what_cannot_be_expressed() {
        let value = |s: &str| s.parse::<CmdlineValue>();
        assert!(matches!(value("-e X=\"y\""), Err(B2cError::Quote(_))));
        assert!(matches!(
            value("a\nchain http://x"),
            Err(B2cError::Control(_))
        ));
        assert!(matches!(value("a\tb"), Err(B2cError::Control(_))));
        assert!(matches!(value("a\0"), Err(B2cError::Control(_))));
        assert!(matches!(
            value("img #latest"),
            Err(B2cError::IpxeWord { .. })
        ));
        assert!(matches!(
            value("img || reboot"),
            Err(B2cError::IpxeWord { .. })
        ));
        assert!(matches!(value("img ; x"), Err(B2cError::IpxeWord { .. })));
        assert!(value("img:tag#1 a;b a&&b").is_ok());
        assert!(value("sh -c 'echo $$HOME'").is_ok());

        assert!(matches!(
            "foo=\"a".parse::<RawCmdline>(),
            Err(B2cError::Unbalanced(_))
        ));
        assert!("x=1 # y".parse::<RawCmdline>().is_err());
        for bad in ["", "=1", "a-b=1", "b2c.=1", "a b=1"] {
            assert!(bad.parse::<B2cParam>().is_err(), "{bad:?}");
        }
        for bad in ["", "/dev/", "sda", "/dev/sd a", "/dev/x\"y"] {
            assert!(bad.parse::<CacheDevice>().is_err(), "{bad:?}");
        }
        assert!("ntp server".parse::<NtpPeer>().is_err());
        assert!("10.0.0.1".parse::<NtpPeer>().is_ok());
    }

    #[test]
    fn refuses_conflicts_and_empty_configs() {
        let mut c = config("k", "i", &[]);
        assert_eq!(c.render(&[]), Err(B2cError::NothingToRun));
        c.params = vec!["service=podman".parse().unwrap()];
        assert!(c.render(&[]).is_ok());
        c.secrets_args = true;
        c.params.push("extra_args_url=https://x".parse().unwrap());
        assert!(matches!(c.render(&[]), Err(B2cError::Duplicate { .. })));
        let mut c = config("k", "i", &["x"]);
        c.kernel = None;
        assert!(c.render(&[]).is_err());
    }

    #[test]
    fn warns_about_unknown_names_and_variables() {
        let mut c = config("k", "i", &["-ti $registry/gw:$tag"]);
        c.params = vec!["cache_dev=auto".parse().unwrap()];
        c.cmdline = vec![format!("x={}", "y".repeat(MAX_CMDLINE)).parse().unwrap()];
        let warnings = c.render(&["registry"]).unwrap().warnings;
        assert_eq!(warnings.len(), 3, "{warnings:?}");
        assert!(warnings[0].contains("b2c.cache_dev is not"));
        assert!(warnings[1].contains("$tag is not a bootgate variable"));
        assert!(warnings[2].contains("bytes, over the 2048"));
    }
}
