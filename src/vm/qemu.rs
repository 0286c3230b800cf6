//! The QEMU command line for each platform: which emulator, which firmware,
//! how the disk, the network and the CA reach the guest. Firmware comes from
//! the distribution (OVMF, AAVMF) or from the image assets (U-Boot).

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Result, bail};

use crate::image::{AssetSearch, Platform};

/// A firmware file and the package that ships it, for error messages.
struct Wanted {
    candidates: &'static [&'static str],
    package: &'static str,
}

const OVMF_CODE: Wanted = Wanted {
    candidates: &[
        "/usr/share/OVMF/OVMF_CODE_4M.fd",
        "/usr/share/OVMF/OVMF_CODE.fd",
    ],
    package: "ovmf",
};
const OVMF_VARS: Wanted = Wanted {
    candidates: &[
        "/usr/share/OVMF/OVMF_VARS_4M.fd",
        "/usr/share/OVMF/OVMF_VARS.fd",
    ],
    package: "ovmf",
};
const AAVMF_CODE: Wanted = Wanted {
    candidates: &["/usr/share/AAVMF/AAVMF_CODE.fd"],
    package: "qemu-efi-aarch64",
};
const AAVMF_VARS: Wanted = Wanted {
    candidates: &["/usr/share/AAVMF/AAVMF_VARS.fd"],
    package: "qemu-efi-aarch64",
};
/// U-Boot built for QEMU's `virt` machine, looked up like image assets.
const UBOOT_QEMU_ARM64: &str = "u-boot/qemu_arm64/u-boot.bin";

fn locate(wanted: &Wanted) -> Result<PathBuf> {
    for candidate in wanted.candidates {
        let path = Path::new(candidate);
        if path.is_file() {
            return Ok(path.to_path_buf());
        }
    }
    bail!(
        "firmware {} not found; install the Debian package {} (`apt install {}`)",
        wanted.candidates[0],
        wanted.package,
        wanted.package
    )
}

fn emulator(name: &str, package: &str) -> Result<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    for dir in std::env::split_paths(&path) {
        let candidate = dir.join(name);
        if candidate.is_file() {
            return Ok(candidate);
        }
    }
    bail!("{name} not found; install the Debian package {package} (`apt install {package}`)")
}

/// Everything needed to start one boot.
pub struct Launch {
    pub platform: Platform,
    pub image: PathBuf,
    /// The CA as an EFI signature list, handed to OVMF/AAVMF through fw_cfg.
    /// `None` boots without it (U-Boot images set it from `boot.scr`).
    pub ca_esl: Option<PathBuf>,
    /// A scratch folder for the firmware's variable store.
    pub work_dir: PathBuf,
    pub assets: AssetSearch,
    pub memory_mib: u32,
    /// Use KVM instead of emulation. Not automatic: a `/dev/kvm` that exists
    /// can still be unusable (nested virtualisation), and QEMU then aborts.
    pub kvm: bool,
}

/// Builds the QEMU command. The disk is opened `snapshot=on`: the guest's
/// writes never reach the image file.
pub fn command(launch: &Launch) -> Result<Command> {
    let disk = format!(
        "if=none,id=disk0,format=raw,snapshot=on,file={}",
        launch.image.display()
    );
    let mut cmd;
    match launch.platform {
        Platform::X86_64Efi | Platform::Arm64Efi => {
            let (qemu, package, machine, code, vars) = if launch.platform == Platform::X86_64Efi {
                (
                    "qemu-system-x86_64",
                    "qemu-system-x86",
                    "q35",
                    &OVMF_CODE,
                    &OVMF_VARS,
                )
            } else {
                (
                    "qemu-system-aarch64",
                    "qemu-system-arm",
                    "virt",
                    &AAVMF_CODE,
                    &AAVMF_VARS,
                )
            };
            cmd = Command::new(emulator(qemu, package)?);
            let code = locate(code)?;
            let vars = copy_vars(&locate(vars)?, &launch.work_dir)?;
            cmd.args(["-machine", machine, "-cpu", "max"]);
            cmd.args(pflash(&code, &vars));
            cmd.args([
                "-drive",
                &disk,
                "-device",
                "virtio-blk-pci,drive=disk0,bootindex=1",
            ]);
        }
        Platform::Rpi3 | Platform::Rpi4 => {
            // The Pi images' FAT partition and boot.scr are what U-Boot runs;
            // the Pi GPU firmware on it is simply not used under QEMU.
            cmd = Command::new(emulator("qemu-system-aarch64", "qemu-system-arm")?);
            let uboot = launch.assets.find(UBOOT_QEMU_ARM64).map_err(|searched| {
                anyhow::anyhow!(
                    "{UBOOT_QEMU_ARM64} not found (searched {}); install the Debian package u-boot-qemu or run scripts/fetch-assets",
                    searched
                        .iter()
                        .map(|p| p.display().to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            })?;
            cmd.args(["-machine", "virt", "-cpu", "max", "-bios"]);
            cmd.arg(uboot);
            cmd.args(["-drive", &disk, "-device", "virtio-blk-pci,drive=disk0"]);
        }
    }
    cmd.args(["-m", &launch.memory_mib.to_string()]);
    cmd.args(["-smp", "1", "-no-reboot", "-nodefaults"]);
    cmd.args(["-display", "none", "-monitor", "none", "-serial", "stdio"]);
    if launch.kvm {
        if !kvm_matches(launch.platform) {
            bail!(
                "KVM cannot run a {} guest on this host's architecture",
                launch.platform
            );
        }
        cmd.args(["-accel", "kvm"]);
    } else {
        cmd.args(["-accel", "tcg"]);
    }
    // User-mode networking: the host's loopback is 10.0.2.2 to the guest.
    // romfile= keeps QEMU's own iPXE option ROM out of the way.
    cmd.args([
        "-netdev",
        "user,id=net0",
        "-device",
        "virtio-net-pci,netdev=net0,romfile=",
    ]);
    if let Some(esl) = &launch.ca_esl {
        cmd.arg("-fw_cfg");
        cmd.arg(format!(
            "name=etc/edk2/https/cacerts,file={}",
            esl.display()
        ));
    }
    Ok(cmd)
}

fn kvm_matches(platform: Platform) -> bool {
    let guest_is_x86 = platform == Platform::X86_64Efi;
    (guest_is_x86 && cfg!(target_arch = "x86_64"))
        || (!guest_is_x86 && cfg!(target_arch = "aarch64"))
}

fn pflash(code: &Path, vars: &Path) -> Vec<String> {
    vec![
        "-drive".into(),
        format!(
            "if=pflash,format=raw,unit=0,readonly=on,file={}",
            code.display()
        ),
        "-drive".into(),
        format!("if=pflash,format=raw,unit=1,file={}", vars.display()),
    ]
}

/// The firmware writes its variables: give it a private copy.
fn copy_vars(template: &Path, work_dir: &Path) -> Result<PathBuf> {
    let copy = work_dir.join("efivars.fd");
    std::fs::copy(template, &copy).map_err(|e| {
        anyhow::anyhow!("copying {} to {}: {e}", template.display(), copy.display())
    })?;
    Ok(copy)
}
