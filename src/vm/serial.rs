//! Reading a guest's serial console: what the firmware, iPXE and the kernel
//! print, classified into boot stages and failures. Pure functions of the text
//! seen so far, so they are tested against real console excerpts.

/// How far a boot got, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Stage {
    /// Nothing recognisable yet.
    Firmware,
    /// iPXE is running.
    Ipxe,
    /// iPXE's start-up script asked for an address.
    DhcpStarted,
    /// iPXE has an address.
    Dhcp,
    /// The boot script came back over mTLS.
    Script,
    /// The kernel is running.
    Kernel,
    /// The kernel started init.
    Init,
}

impl Stage {
    pub fn describe(self) -> &'static str {
        match self {
            Stage::Firmware => "firmware",
            Stage::Ipxe => "iPXE started",
            Stage::DhcpStarted => "DHCP started",
            Stage::Dhcp => "DHCP done",
            Stage::Script => "boot script fetched",
            Stage::Kernel => "kernel started",
            Stage::Init => "init started",
        }
    }
}

/// Console strings that mark a stage: the first match moves the boot on.
/// The `bootgate:` lines come from the image's `autoexec.ipxe`.
const STAGE_MARKERS: &[(Stage, &str)] = &[
    (Stage::Ipxe, "iPXE initialising devices"),
    (Stage::Ipxe, "bootgate: machine "),
    (Stage::DhcpStarted, "bootgate: configuring the network"),
    (Stage::Dhcp, "bootgate: fetching the boot script"),
    (Stage::Kernel, "EFI stub: "),
    (Stage::Kernel, "Linux version "),
    (Stage::Kernel, "Booting Linux on physical CPU"),
    (Stage::Init, "Run /init as init process"),
    (Stage::Init, "Run /sbin/init as init process"),
];

/// iPXE prints `URL... ok` when a download completes; for the boot script
/// that is the moment it arrived over mutual TLS.
fn script_fetched(line: &str) -> bool {
    line.contains("/boot/ipxe") && line.trim_end().ends_with(" ok")
}

/// Why a boot failed, as the one-line reason `bootgate try` prints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    NoIpxe,
    Dhcp,
    TlsUntrusted,
    TlsRefused,
    Forbidden,
    NotFound,
    ScriptFailed(String),
    KernelDidNotStart,
    InitNotReached,
    Timeout(Stage),
    Qemu(String),
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::NoIpxe => write!(f, "the firmware did not start iPXE"),
            Failure::Dhcp => write!(f, "DHCP failed: iPXE got no address"),
            Failure::TlsUntrusted => write!(
                f,
                "TLS refused: iPXE does not trust the server certificate (is the CA in TlsCaCertificate?)"
            ),
            Failure::TlsRefused => write!(
                f,
                "TLS refused: the server rejected the handshake (client certificate from another CA?)"
            ),
            Failure::Forbidden => write!(
                f,
                "HTTP 403: the server refused this machine (revoked or not enrolled?)"
            ),
            Failure::NotFound => write!(
                f,
                "HTTP 404: no boot script or file for this machine on the server"
            ),
            Failure::ScriptFailed(line) => write!(f, "the boot script failed: {line}"),
            Failure::KernelDidNotStart => write!(f, "the kernel did not start"),
            Failure::InitNotReached => write!(f, "the kernel did not reach init"),
            Failure::Timeout(stage) => {
                write!(f, "timed out; the boot got as far as: {}", stage.describe())
            }
            Failure::Qemu(why) => write!(f, "QEMU failed: {why}"),
        }
    }
}

/// iPXE's error URLs (`https://ipxe.org/<code>`) that mean a known failure.
/// The code's first four hex digits are the error class and iPXE module, the
/// rest the line: only the prefix is matched, so other iPXE builds match too.
fn failure_of(line: &str) -> Option<Failure> {
    const TABLE: &[(&str, Failure)] = &[
        // "Permission denied": certificate validation in the TLS layer.
        ("ipxe.org/0216", Failure::TlsUntrusted),
        // "Operation not permitted": HTTP 403.
        ("ipxe.org/410c", Failure::Forbidden),
        // "Not found": HTTP 404.
        ("ipxe.org/2d0c", Failure::NotFound),
        // "Connection reset": the server aborted the TLS handshake.
        ("ipxe.org/0f0a", Failure::TlsRefused),
        ("bootgate: DHCP failed", Failure::Dhcp),
    ];
    TABLE
        .iter()
        .find(|(needle, _)| line.contains(needle))
        .map(|(_, failure)| failure.clone())
}

/// The autoexec script's line after any failed fetch or run of the script.
const CHAIN_FAILED: &str = "bootgate: could not fetch or run the boot script";

/// Follows one boot's console output.
#[derive(Debug)]
pub struct Watcher {
    stage: Stage,
    line: String,
    expect: Option<String>,
    seen_expect: bool,
    failure: Option<Failure>,
    /// The last iPXE error line, for failures without a known code.
    last_error: Option<String>,
    /// Whether the emulated board has a network iPXE can use.
    network: bool,
}

/// What the watcher concluded after some output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Running,
    Success,
    Failed(Failure),
}

impl Watcher {
    /// `expect`: a string whose appearance counts as success (instead of
    /// reaching init).
    pub fn new(expect: Option<String>) -> Self {
        Self {
            stage: Stage::Firmware,
            line: String::new(),
            expect,
            seen_expect: false,
            failure: None,
            last_error: None,
            network: true,
        }
    }

    /// For a board without a network iPXE can drive: without an `expect`ed
    /// marker, the boot has gone as far as it can once iPXE's start-up script
    /// has tried DHCP and failed, and that counts as success.
    pub fn without_network(mut self) -> Self {
        self.network = false;
        self
    }

    pub fn stage(&self) -> Stage {
        self.stage
    }

    /// Feeds console bytes; returns the verdict so far.
    pub fn feed(&mut self, bytes: &[u8]) -> Verdict {
        for &b in bytes {
            match b {
                b'\n' | b'\r' => self.end_line(),
                // Escape sequences and other control bytes carry no text.
                0..=0x1f | 0x7f => self.line.push(' '),
                _ => self.line.push(b as char),
            }
            if self.line.len() > 4096 {
                self.end_line();
            }
            // Markers may arrive without a newline (iPXE prints "... ok").
            self.check_line();
        }
        self.verdict()
    }

    fn end_line(&mut self) {
        self.check_line();
        self.line.clear();
    }

    fn check_line(&mut self) {
        let line = self.line.as_str();
        for (stage, marker) in STAGE_MARKERS {
            if *stage > self.stage && line.contains(marker) {
                self.stage = *stage;
            }
        }
        if self.stage < Stage::Script && script_fetched(line) {
            self.stage = Stage::Script;
        }
        if line.contains("(https://ipxe.org/") {
            self.last_error = Some(line.trim().to_string());
        }
        if let Some(expect) = &self.expect
            && line.contains(expect.as_str())
        {
            self.seen_expect = true;
        }
        if self.failure.is_none() {
            self.failure = failure_of(line).or_else(|| {
                line.contains(CHAIN_FAILED).then(|| {
                    Failure::ScriptFailed(
                        self.last_error
                            .clone()
                            .unwrap_or_else(|| "no error shown".into()),
                    )
                })
            });
        }
    }

    pub fn verdict(&self) -> Verdict {
        if self.seen_expect || (self.expect.is_none() && self.stage == Stage::Init) {
            return Verdict::Success;
        }
        if !self.network
            && self.expect.is_none()
            && self.stage >= Stage::DhcpStarted
            && self.failure == Some(Failure::Dhcp)
        {
            return Verdict::Success;
        }
        match &self.failure {
            Some(failure) => Verdict::Failed(failure.clone()),
            None => Verdict::Running,
        }
    }

    /// The reason to give when time runs out.
    pub fn timeout_failure(&self) -> Failure {
        match self.stage {
            Stage::Firmware => Failure::NoIpxe,
            Stage::Script => Failure::KernelDidNotStart,
            Stage::Kernel => Failure::InitNotReached,
            stage => Failure::Timeout(stage),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Console excerpts from real boots (trixie iPXE under OVMF).
    const GOOD_BOOT: &str = "BdsDxe: starting Boot0001 \"UEFI Misc Device\" from PciRoot(0x0)/Pci(0x2,0x0)\r\n\
iPXE initialising devices...\r\n\
file:/autoexec.ipxe... ok\r\n\
bootgate: machine gw1, boot server https://10.0.2.2:8443\r\n\
bootgate: configuring the network (DHCP)\r\n\
Configuring (net0 52:54:00:12:34:56)...... ok\r\n\
bootgate: fetching the boot script from https://10.0.2.2:8443/boot/ipxe\r\n\
https://10.0.2.2:8443/boot/ipxe... ok\r\n\
https://10.0.2.2:8443/files/vmlinuz... 36%     64%     96%     ok\r\n\
EFI stub: Loaded initrd from LINUX_EFI_INITRD_MEDIA_GUID device path\r\n\
[    0.000000] Linux version 6.12.117+deb13-amd64\r\n\
[   10.948704] Run /init as init process\r\n";

    fn watch(text: &str, expect: Option<&str>) -> (Verdict, Stage) {
        let mut w = Watcher::new(expect.map(str::to_string));
        // Feed in awkward pieces, as a pipe delivers them.
        let mut verdict = Verdict::Running;
        for chunk in text.as_bytes().chunks(7) {
            verdict = w.feed(chunk);
            if verdict != Verdict::Running {
                break;
            }
        }
        (verdict, w.stage())
    }

    #[test]
    fn a_good_boot_reaches_init() {
        assert_eq!(watch(GOOD_BOOT, None), (Verdict::Success, Stage::Init));
        let cut = &GOOD_BOOT[..GOOD_BOOT.find("EFI stub").unwrap()];
        let (verdict, stage) = watch(cut, None);
        assert_eq!(verdict, Verdict::Running);
        assert_eq!(stage, Stage::Script);
        let w = {
            let mut w = Watcher::new(None);
            w.feed(cut.as_bytes());
            w
        };
        assert_eq!(w.timeout_failure(), Failure::KernelDidNotStart);
    }

    /// From a real boot of an rpi3 image on QEMU's raspi3b (U-Boot rpi_arm64).
    const RASPI3B_BOOT: &str = "** Booting bootflow 'mmc@7e202000.bootdev.part_1' with script\r\n\
bootgate: boot partition mmc 0:1\r\n\
bootgate: CA installed in TlsCaCertificate\r\n\
bootgate: starting iPXE\r\n\
Booting /\\efi\\tools\\ipxe.efi\r\n\
iPXE initialising devices...\r\n\
file:/autoexec.ipxe... ok\r\n\
bootgate: machine e2e-raspi3b, boot server https://10.0.2.2:8443\r\n\
bootgate: configuring the network (DHCP)\r\n\
bootgate: DHCP failed, retrying in 5 seconds\r\n";

    #[test]
    fn without_network_a_dhcp_attempt_is_as_far_as_it_goes() {
        let offline = |text: &str| {
            let mut w = Watcher::new(None).without_network();
            (w.feed(text.as_bytes()), w.stage())
        };
        assert_eq!(
            offline(RASPI3B_BOOT),
            (Verdict::Success, Stage::DhcpStarted)
        );
        // DHCP failing before iPXE's script asked for it is no such proof.
        let early = "bootgate: DHCP failed, retrying in 5 seconds\r\n";
        assert_eq!(offline(early).0, Verdict::Failed(Failure::Dhcp));
        let cut = &RASPI3B_BOOT[..RASPI3B_BOOT.find("bootgate: DHCP failed").unwrap()];
        assert_eq!(offline(cut), (Verdict::Running, Stage::DhcpStarted));
        // With a network, the same console is a failure.
        assert_eq!(
            watch(RASPI3B_BOOT, None),
            (Verdict::Failed(Failure::Dhcp), Stage::DhcpStarted)
        );
    }

    #[test]
    fn an_expected_marker_is_success() {
        let text = "bootgate: machine a\nMARKER-42 here\n";
        assert_eq!(watch(text, Some("MARKER-42")).0, Verdict::Success);
    }

    #[test]
    fn failures_are_named() {
        let cases = [
            (
                "https://10.0.2.2:8443/boot/ipxe?mac=... Permission denied (https://ipxe.org/0216eb8f)",
                Failure::TlsUntrusted,
            ),
            (
                "https://10.0.2.2:8443/boot/ipxe?mac=... Operation not permitted (https://ipxe.org/410c618f)",
                Failure::Forbidden,
            ),
            (
                "https://10.0.2.2:8443/boot/ipxe?mac=... Not found (https://ipxe.org/2d0c618e)",
                Failure::NotFound,
            ),
            (
                "https://10.0.2.2:8443/boot/ipxe... Connection reset (https://ipxe.org/0f0a6095)",
                Failure::TlsRefused,
            ),
            (
                "bootgate: DHCP failed, retrying in 5 seconds",
                Failure::Dhcp,
            ),
        ];
        for (line, failure) in cases {
            let text = format!("bootgate: machine a\r\n{line}\r\n");
            assert_eq!(watch(&text, None).0, Verdict::Failed(failure), "{line}");
        }
        let text = "x... Client Error (https://ipxe.org/1d0c6498)\r\n\
            bootgate: could not fetch or run the boot script (error above)\r\n";
        match watch(text, None).0 {
            Verdict::Failed(Failure::ScriptFailed(line)) => assert!(line.contains("Client Error")),
            other => panic!("{other:?}"),
        }
        let w = Watcher::new(None);
        assert_eq!(w.timeout_failure(), Failure::NoIpxe);
    }
}
