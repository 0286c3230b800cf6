//! The QEMU command line for each platform and emulated board: which
//! emulator, which firmware, how the disk, the network and the CA reach the
//! guest. Firmware comes from the distribution (OVMF, AAVMF), from the firmware
//! folders images are built from (U-Boot), or from a file given on the command line.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Result, bail};

use crate::image::{FirmwareSearch, Platform};

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
/// U-Boot built for QEMU's `virt` machine, looked up like image firmware.
const UBOOT_QEMU_ARM64: &str = "u-boot/qemu_arm64/u-boot.bin";
/// The U-Boot the Raspberry Pi images carry, run on QEMU's `raspi3b`.
const UBOOT_RPI_ARM64: &str = "u-boot/rpi_arm64/u-boot.bin";
/// The Raspberry Pi 3 Model B device tree, which QEMU's `raspi3b` emulates.
const DTB_RPI_3_B: &str = "linux-image-*/broadcom/bcm2837-rpi-3-b.dtb";

/// The machine QEMU emulates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Board {
    /// QEMU's generic `virt` (arm64) or `q35` (x86_64) machine, with a
    /// virtio disk and network: every platform, up to the kernel.
    Virt,
    /// QEMU's Raspberry Pi 3 Model B: the Pi's own U-Boot (`rpi_arm64`) from
    /// an SD card. No network that U-Boot or iPXE can drive, so a boot there
    /// ends at iPXE's DHCP attempt.
    Raspi3b,
}

impl Board {
    pub const ALL: [Board; 2] = [Board::Virt, Board::Raspi3b];

    pub fn name(self) -> &'static str {
        match self {
            Board::Virt => "virt",
            Board::Raspi3b => "raspi3b",
        }
    }

    /// QEMU's name of the machine this board means for a platform.
    pub fn machine(self, platform: Platform) -> &'static str {
        match (self, platform) {
            (Board::Virt, Platform::X86_64Efi) => "q35",
            (Board::Virt, _) => "virt",
            (Board::Raspi3b, _) => "raspi3b",
        }
    }

    /// Whether iPXE can reach the boot server from this board.
    pub fn has_network(self) -> bool {
        self == Board::Virt
    }

    /// Refuses combinations QEMU cannot boot.
    pub fn check(self, platform: Platform) -> Result<()> {
        if self == Board::Raspi3b && platform != Platform::Rpi3 {
            bail!(
                "the raspi3b board boots rpi3 images only (this one is {platform}); use --board virt"
            );
        }
        Ok(())
    }
}

impl std::fmt::Display for Board {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Board {
    type Err = anyhow::Error;

    fn from_str(s: &str) -> Result<Self> {
        Board::ALL
            .into_iter()
            .find(|b| b.name() == s)
            .ok_or_else(|| anyhow::anyhow!("unknown board {s:?}; known: virt, raspi3b"))
    }
}

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
    pub board: Board,
    pub image: PathBuf,
    /// U-Boot to run instead of the firmware folders' build for the board (`None`:
    /// `u-boot/qemu_arm64` on `virt`, `u-boot/rpi_arm64` on `raspi3b`).
    pub firmware: Option<PathBuf>,
    /// The CA as an EFI signature list, handed to OVMF/AAVMF through fw_cfg.
    /// `None` boots without it (U-Boot images set it from `boot.scr`).
    pub ca_esl: Option<PathBuf>,
    /// A scratch folder for the firmware's variable store.
    pub work_dir: PathBuf,
    /// Where the U-Boot and DTBs of the Pi boards are looked up.
    pub firmware_search: FirmwareSearch,
    pub memory_mib: u32,
    /// Use KVM instead of emulation. Not automatic: a `/dev/kvm` that exists
    /// can still be unusable (nested virtualisation), and QEMU then aborts.
    pub kvm: bool,
}

/// Builds the QEMU command. The disk is opened `snapshot=on` (or copied, for
/// an SD card): the guest's writes never reach the image file.
pub fn command(launch: &Launch) -> Result<Command> {
    launch.board.check(launch.platform)?;
    if launch.firmware.is_some() && !matches!(launch.platform, Platform::Rpi3 | Platform::Rpi4) {
        bail!("--firmware replaces U-Boot: it applies to rpi3 and rpi4 images only");
    }
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
        Platform::Rpi3 | Platform::Rpi4 if launch.board == Board::Raspi3b => {
            return raspi3b_command(launch);
        }
        Platform::Rpi3 | Platform::Rpi4 => {
            // The Pi images' FAT partition and boot.scr are what U-Boot runs;
            // the Pi GPU firmware on it is simply not used under QEMU.
            cmd = Command::new(emulator("qemu-system-aarch64", "qemu-system-arm")?);
            let uboot = firmware(launch, UBOOT_QEMU_ARM64, "u-boot-qemu")?;
            cmd.args(["-machine", "virt", "-cpu", "max", "-bios"]);
            cmd.arg(uboot);
            cmd.args(["-drive", &disk, "-device", "virtio-blk-pci,drive=disk0"]);
        }
    }
    cmd.args(["-m", &launch.memory_mib.to_string()]);
    cmd.args(["-smp", "1", "-no-reboot", "-nodefaults"]);
    cmd.args(["-display", "none", "-monitor", "none", "-serial", "stdio"]);
    accel(&mut cmd, launch)?;
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

/// QEMU's Raspberry Pi 3 Model B: U-Boot as the kernel QEMU loads (there is
/// no GPU firmware stage: no `bootcode.bin`, `start.elf` or `config.txt`),
/// the board's device tree from the kernel package, the image as the SD card.
/// The machine has 1 GiB and four cores, fixed. Its PL011 UART (where U-Boot
/// starts) and mini UART (where the device tree sends U-Boot's console once
/// it is up) share the console.
fn raspi3b_command(launch: &Launch) -> Result<Command> {
    let mut cmd = Command::new(emulator("qemu-system-aarch64", "qemu-system-arm")?);
    let uboot = firmware(launch, UBOOT_RPI_ARM64, "u-boot-rpi")?;
    let dtb = find_firmware(launch, DTB_RPI_3_B, "linux-image-arm64")?;
    let card = sd_card_copy(&launch.image, &launch.work_dir)?;
    cmd.args(raspi3b_args(&uboot, &dtb, &card));
    accel(&mut cmd, launch)?;
    Ok(cmd)
}

fn raspi3b_args(uboot: &Path, dtb: &Path, card: &Path) -> Vec<String> {
    let mut args: Vec<String> = ["-machine", "raspi3b", "-kernel"].map(String::from).into();
    args.push(uboot.display().to_string());
    args.push("-dtb".into());
    args.push(dtb.display().to_string());
    args.push("-drive".into());
    args.push(format!("if=sd,format=raw,file={}", card.display()));
    args.extend(
        [
            "-no-reboot",
            "-nodefaults",
            "-display",
            "none",
            "-monitor",
            "none",
            "-chardev",
            "stdio,id=console,mux=on",
            "-serial",
            "chardev:console",
            "-serial",
            "chardev:console",
        ]
        .map(String::from),
    );
    args
}

/// QEMU's SD card model wants a power-of-two size: boot a copy, grown to the
/// next one (the image's partitions stay where they are).
fn sd_card_copy(image: &Path, work_dir: &Path) -> Result<PathBuf> {
    let copy = work_dir.join("sd-card.img");
    std::fs::copy(image, &copy)
        .map_err(|e| anyhow::anyhow!("copying {} to {}: {e}", image.display(), copy.display()))?;
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(&copy)
        .map_err(|e| anyhow::anyhow!("opening {}: {e}", copy.display()))?;
    let len = file.metadata()?.len();
    file.set_len(len.next_power_of_two())
        .map_err(|e| anyhow::anyhow!("growing {}: {e}", copy.display()))?;
    Ok(copy)
}

fn accel(cmd: &mut Command, launch: &Launch) -> Result<()> {
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
    Ok(())
}

/// The U-Boot to run: the one given, or the firmware folders' build.
fn firmware(launch: &Launch, source: &str, package: &str) -> Result<PathBuf> {
    match &launch.firmware {
        Some(path) if path.is_file() => Ok(path.clone()),
        Some(path) => bail!("firmware {} does not exist", path.display()),
        None => find_firmware(launch, source, package),
    }
}

fn find_firmware(launch: &Launch, source: &str, package: &str) -> Result<PathBuf> {
    launch.firmware_search.find(source).map_err(|searched| {
        anyhow::anyhow!(
            "{source} not found (searched {}); install the Debian package {package} or run scripts/fetch-firmware",
            searched
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        )
    })
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boards_by_name_and_what_they_boot() {
        assert_eq!("raspi3b".parse::<Board>().unwrap(), Board::Raspi3b);
        assert_eq!("virt".parse::<Board>().unwrap(), Board::Virt);
        let err = "raspi4b".parse::<Board>().unwrap_err().to_string();
        assert!(err.contains("virt, raspi3b"), "{err}");
        assert!(Board::Raspi3b.check(Platform::Rpi3).is_ok());
        let err = Board::Raspi3b
            .check(Platform::Rpi4)
            .unwrap_err()
            .to_string();
        assert!(err.contains("rpi3 images only"), "{err}");
        for platform in Platform::ALL {
            assert!(Board::Virt.check(platform).is_ok());
        }
        assert!(Board::Virt.has_network() && !Board::Raspi3b.has_network());
        assert_eq!(Board::Virt.machine(Platform::X86_64Efi), "q35");
        assert_eq!(Board::Virt.machine(Platform::Rpi4), "virt");
    }

    #[test]
    fn the_sd_card_is_a_power_of_two_copy() {
        let dir = tempfile::tempdir().unwrap();
        let work = dir.path();
        let image = dir.path().join("pi.img");
        for (size, card_size) in [(65u64 << 20, 128u64 << 20), (64 << 20, 64 << 20)] {
            std::fs::write(&image, b"MBR").unwrap();
            let file = std::fs::OpenOptions::new()
                .write(true)
                .open(&image)
                .unwrap();
            file.set_len(size).unwrap();
            drop(file);
            let card = sd_card_copy(&image, work).unwrap();
            assert_eq!(std::fs::metadata(&card).unwrap().len(), card_size);
            assert_eq!(&std::fs::read(&card).unwrap()[..3], b"MBR");
            assert_eq!(
                std::fs::metadata(&image).unwrap().len(),
                size,
                "image untouched"
            );
        }
    }

    #[test]
    fn raspi3b_runs_uboot_as_the_kernel_with_both_uarts_on_the_console() {
        let args = raspi3b_args(
            Path::new("/a/u-boot.bin"),
            Path::new("/a/pi3.dtb"),
            Path::new("/w/sd-card.img"),
        );
        let joined = args.join(" ");
        for part in [
            "-machine raspi3b -kernel /a/u-boot.bin -dtb /a/pi3.dtb",
            "-drive if=sd,format=raw,file=/w/sd-card.img",
            "-serial chardev:console -serial chardev:console",
        ] {
            assert!(joined.contains(part), "{part} missing from {joined}");
        }
        // No network device: the board has none iPXE can drive.
        assert!(!joined.contains("netdev"), "{joined}");
    }
}
