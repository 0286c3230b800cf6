//! `bootgate try`: boot an image in QEMU against the server before flashing it.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::Args;

use crate::datadir::DataDir;
use crate::image::{FirmwareSearch, Platform, esl};
use crate::vm::{self, Board, Echo, Launch, Run};

#[derive(Debug, Args)]
pub struct TryArgs {
    /// The image to boot (as written by `bootgate image build`).
    image: PathBuf,
    /// The platform the image was built for.
    #[arg(long)]
    platform: Platform,
    /// The machine QEMU emulates: `virt` (every platform, network and all;
    /// q35 for x86_64)
    /// or `raspi3b` (rpi3 images on the Pi's own U-Boot, from the SD card up
    /// to iPXE's DHCP attempt: that board has no network iPXE can drive).
    #[arg(long, default_value = "virt")]
    board: Board,
    /// U-Boot to run instead of the firmware folders' build (rpi3 and rpi4 images),
    /// e.g. a `qemu_arm64` build from scripts/build-uboot-virtio-fix.
    #[arg(long, value_name = "FILE")]
    firmware: Option<PathBuf>,
    /// Give up after this many seconds.
    #[arg(long, default_value_t = 300)]
    timeout: u64,
    /// Succeed when this text appears on the console, instead of when the
    /// kernel starts init.
    #[arg(long, value_name = "TEXT")]
    expect: Option<String>,
    /// Boot without handing the CA to the UEFI firmware (EFI platforms), to
    /// see what a machine that does not trust the CA does.
    #[arg(long)]
    no_ca: bool,
    /// Where to keep the serial console log (default: a file beside the image).
    #[arg(long)]
    log: Option<PathBuf>,
    /// Extra folders to look for firmware in (like `image build --firmware-dir`).
    #[arg(long = "firmware-dir", alias = "assets", value_name = "DIR")]
    firmware_dirs: Vec<PathBuf>,
    /// Run the guest with KVM (same architecture as the host only) instead of
    /// emulating it.
    #[arg(long)]
    kvm: bool,
    /// Guest memory in MiB.
    #[arg(long, default_value_t = 1024)]
    memory: u32,
    /// Don't copy the console to the terminal.
    #[arg(long, short)]
    quiet: bool,
}

pub fn run(dir: &DataDir, args: TryArgs) -> Result<()> {
    if !args.image.is_file() {
        bail!(
            "{} does not exist; build it with `bootgate image build`",
            args.image.display()
        );
    }
    let work = tempfile::Builder::new()
        .prefix("bootgate-try-")
        .tempdir()
        .context("creating a scratch folder")?;
    args.board.check(args.platform)?;
    let uses_uefi_ca = matches!(args.platform, Platform::X86_64Efi | Platform::Arm64Efi);
    let ca_esl = if uses_uefi_ca && !args.no_ca {
        let dir = DataDir::open(dir.root()).context(
            "the CA for the firmware comes from the data directory (--data); use --no-ca to boot without it",
        )?;
        let pem = std::fs::read_to_string(dir.ca_cert_path())
            .with_context(|| format!("reading {}", dir.ca_cert_path().display()))?;
        let der = crate::ca::der_from_pem(&pem)?;
        let list = esl::x509_signature_list(&der, esl::BOOTGATE_OWNER_GUID)?;
        let path = work.path().join("ca.esl");
        std::fs::write(&path, list).with_context(|| format!("writing {}", path.display()))?;
        Some(path)
    } else {
        None
    };
    let log = args.log.unwrap_or_else(|| {
        let mut name = args.image.clone().into_os_string();
        name.push(".console.log");
        PathBuf::from(name)
    });
    let offline_goal = !args.board.has_network() && args.expect.is_none();
    let run = Run {
        launch: Launch {
            platform: args.platform,
            board: args.board,
            image: args.image.clone(),
            firmware: args.firmware.clone(),
            ca_esl,
            work_dir: work.path().to_path_buf(),
            firmware_search: FirmwareSearch::new(&args.firmware_dirs),
            memory_mib: args.memory,
            kvm: args.kvm,
        },
        timeout: Duration::from_secs(args.timeout),
        expect: args.expect,
        log: log.clone(),
        echo: if args.quiet {
            Echo::Quiet
        } else {
            Echo::Stdout
        },
    };
    eprintln!(
        "bootgate: booting {} as {} on QEMU's {} (console log: {})",
        args.image.display(),
        args.platform,
        args.board.machine(args.platform),
        log.display()
    );
    let report = vm::boot(run)?;
    println!();
    match report.result {
        Ok(()) if offline_goal => {
            eprintln!(
                "bootgate: boot went as far as {} allows in {:.1} s ({}): iPXE ran its \
                 start-up script and tried DHCP; this machine has no network iPXE can drive, \
                 so the network stage (an address, the boot server, TLS, the kernel) cannot be \
                 reached and was not tested: use --board virt for it",
                args.board,
                report.elapsed.as_secs_f64(),
                report.stage.describe(),
            );
            Ok(())
        }
        Ok(()) => {
            eprintln!(
                "bootgate: boot succeeded ({}) in {:.1} s",
                report.stage.describe(),
                report.elapsed.as_secs_f64()
            );
            Ok(())
        }
        Err(failure) => bail!(
            "boot failed after {:.1} s: {failure} (console log: {})",
            report.elapsed.as_secs_f64(),
            log.display()
        ),
    }
}
