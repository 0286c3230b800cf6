//! `bootgate image build | platforms`: build a machine's boot image, and list
//! what each platform needs. The work is in [`crate::image`]; this file parses
//! arguments, draws progress and prints the report.

use std::io::IsTerminal;
use std::path::PathBuf;

use anyhow::Result;
use clap::{Args, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};

use crate::datadir::DataDir;
use crate::disk::{FatType, Size, TableKind};
use crate::image::PartitionReport;
use crate::image::build::{BOOT_LABEL, CACHE_LABEL, DEFAULT_BOOT_SIZE};
use crate::image::{BuildOptions, BuildReport, FirmwareSearch, Platform, Progress, Role};

#[derive(Debug, Subcommand)]
pub enum ImageCommand {
    /// Build a machine's boot image (it holds the machine's private key: mode 0600).
    Build(BuildArgs),
    /// List the platforms, the firmware files each needs and where they are looked for.
    Platforms,
}

#[derive(Debug, Args)]
pub struct BuildArgs {
    /// The enrolled machine the image is for.
    #[arg(long, value_name = "NAME")]
    pub machine: String,
    /// Target platform: x86_64-efi, arm64-efi, rpi3 or rpi4.
    #[arg(long, value_name = "PLATFORM")]
    pub platform: String,
    /// Image file to write, with its block map FILE.bmap for bmaptool
    /// (refused if either exists, unless --force).
    #[arg(long, short, value_name = "FILE")]
    pub output: PathBuf,
    /// Folder of firmware files laid out like /usr/lib (ipxe/, u-boot/,
    /// raspi-firmware/, linux-image-*/); repeatable, searched before
    /// $BOOTGATE_FIRMWARE and /usr/lib.
    #[arg(long = "firmware-dir", alias = "assets", value_name = "DIR")]
    pub firmware_dirs: Vec<PathBuf>,
    /// URL the machine fetches its boot script from (default: the
    /// configuration's public URL).
    #[arg(long, value_name = "URL")]
    pub server_url: Option<String>,
    /// Total image size, e.g. 256M or 2G; the boot partition takes what the
    /// cache leaves (default: a 64 MiB boot partition plus the cache).
    #[arg(long, value_name = "SIZE")]
    pub size: Option<Size>,
    /// Add a boot2container cache partition of this size, e.g. 8G, formatted
    /// as boot2container does it (ext4 labelled B2C_CACHE, with mke2fs). The
    /// image file stays sparse: the cache takes a few MiB in it.
    #[arg(long, value_name = "SIZE")]
    pub cache_size: Option<Size>,
    /// Replace FILE (and FILE.bmap) if they exist.
    #[arg(long)]
    pub force: bool,
    /// Also print the SHA-256 of the whole image file. It reads every byte,
    /// the sparse zeros included (seconds for a large cache); the block
    /// map's checksum, always printed, identifies the image at no cost.
    #[arg(long)]
    pub sha256: bool,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

pub fn run(data: &DataDir, cmd: ImageCommand) -> Result<()> {
    match cmd {
        ImageCommand::Build(args) => build(data, args),
        ImageCommand::Platforms => {
            print!("{}", platforms_text(&FirmwareSearch::new(&[])));
            Ok(())
        }
    }
}

fn build(data: &DataDir, args: BuildArgs) -> Result<()> {
    let platform: Platform = args.platform.parse()?;
    let opts = BuildOptions {
        machine: args.machine,
        platform,
        output: args.output,
        firmware_dirs: args.firmware_dirs,
        server_url: args.server_url,
        size: args.size,
        cache_size: args.cache_size,
        force: args.force,
        full_sha256: args.sha256,
    };
    crate::image::interrupt::install()?;
    let mut progress = CliProgress::new();
    let report = crate::image::build(data, &opts, &mut progress)?;
    for warning in &report.warnings {
        eprintln!("warning: {warning}");
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report_json(&report))?);
    } else {
        print!("{}", report_text(&report));
    }
    Ok(())
}

/// Steps smaller than this finish too fast to be worth reporting.
const PROGRESS_THRESHOLD: u64 = 256 * Size::MIB;

/// A progress bar on a terminal; plain lines (at each quarter) otherwise.
struct CliProgress {
    tty: bool,
    bar: Option<ProgressBar>,
    plain: Option<PlainStep>,
}

struct PlainStep {
    step: String,
    total: u64,
    done: u64,
    next_quarter: u64,
}

impl CliProgress {
    fn new() -> Self {
        Self {
            tty: std::io::stderr().is_terminal(),
            bar: None,
            plain: None,
        }
    }
}

impl Progress for CliProgress {
    fn begin(&mut self, step: &str, total: u64) {
        if total < PROGRESS_THRESHOLD {
            return;
        }
        if self.tty {
            let bar = ProgressBar::new(total);
            bar.set_style(
                ProgressStyle::with_template(
                    "{msg:>14} [{bar:40}] {bytes}/{total_bytes} ({bytes_per_sec}, {eta})",
                )
                .expect("valid template")
                .progress_chars("=> "),
            );
            bar.set_message(step.to_string());
            self.bar = Some(bar);
        } else {
            eprintln!("bootgate: {step} ({})", Size(total));
            self.plain = Some(PlainStep {
                step: step.to_string(),
                total,
                done: 0,
                next_quarter: 1,
            });
        }
    }

    fn advance(&mut self, bytes: u64) {
        if let Some(bar) = &self.bar {
            bar.inc(bytes);
        }
        if let Some(p) = &mut self.plain {
            p.done += bytes;
            while p.next_quarter < 4 && p.done >= p.total / 4 * p.next_quarter {
                eprintln!("bootgate: {} {}%", p.step, p.next_quarter * 25);
                p.next_quarter += 1;
            }
        }
    }

    fn end(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
        if let Some(p) = self.plain.take() {
            eprintln!("bootgate: {} done", p.step);
        }
    }
}

fn fat_name(fat: FatType) -> &'static str {
    match fat {
        FatType::Fat12 => "FAT12",
        FatType::Fat16 => "FAT16",
        FatType::Fat32 => "FAT32",
    }
}

fn report_text(r: &BuildReport) -> String {
    use std::fmt::Write;
    let mut s = String::new();
    let path = r.output.display();
    let _ = writeln!(s, "Wrote {path}");
    let _ = writeln!(
        s,
        "  It holds {}'s private key: it was created with mode 0600; keep it (and the card) private.",
        r.machine
    );
    let _ = writeln!(
        s,
        "  platform     {} ({})",
        r.platform,
        r.platform.description()
    );
    let _ = writeln!(s, "  machine      {}", r.machine);
    let _ = writeln!(s, "  fingerprint  {}", r.fingerprint);
    let _ = writeln!(s, "  server       {}", r.server_url);
    let _ = writeln!(
        s,
        "  size         {} ({} bytes; {} of data, the rest is sparse)",
        Size(r.size),
        r.size,
        Size(r.data_bytes)
    );
    let _ = writeln!(
        s,
        "  block map    {} ({} to write to a card)",
        r.bmap.display(),
        Size(r.mapped_bytes)
    );
    let _ = writeln!(s, "  bmap sha256  {} (identifies the image)", r.bmap_sha256);
    if let Some(sha) = &r.sha256 {
        let _ = writeln!(s, "  sha256       {sha}");
    }
    let table = match r.table {
        TableKind::Gpt => "GPT, disk GUID",
        TableKind::Mbr => "MBR, disk id",
    };
    let _ = writeln!(s, "  partitions   {table} {}", r.disk_id);
    for p in &r.partitions {
        let _ = writeln!(s, "    {}", partition_line(r, p));
    }
    if r.cache().is_some() {
        let _ = writeln!(
            s,
            "  boot2container: b2c.cache_device=auto finds and mounts this cache by its file system label {CACHE_LABEL}"
        );
    }
    let bmap = r.bmap.display();
    let _ = writeln!(
        s,
        "Write it to the card or stick (replace sdX; this erases it), writing only the mapped blocks:\n  \
         sudo bmaptool copy --bmap {bmap} {path} /dev/sdX\n\
         or, without bmaptool (writes every byte of the image):\n  \
         sudo dd if={path} of=/dev/sdX bs=4M conv=fsync status=progress"
    );
    s
}

/// One partition in the report: number, size, start, what it holds, its id.
fn partition_line(r: &BuildReport, p: &PartitionReport) -> String {
    let what = match p.role {
        Role::Boot => match r.table {
            TableKind::Gpt => format!(
                "boot, EFI system partition named {}, {} label {BOOT_LABEL}",
                p.name.as_deref().unwrap_or("-"),
                fat_name(r.fat.fat_type)
            ),
            TableKind::Mbr => format!("boot, {} label {BOOT_LABEL}", fat_name(r.fat.fat_type)),
        },
        Role::Cache => {
            let fs = format!(
                "ext4 label {CACHE_LABEL} UUID {}",
                p.fs_uuid.as_deref().unwrap_or("-")
            );
            match r.table {
                TableKind::Gpt => format!("cache, name {CACHE_LABEL}, {fs}"),
                TableKind::Mbr => format!("cache, {fs}"),
            }
        }
    };
    let id = match r.table {
        TableKind::Gpt => "GUID",
        TableKind::Mbr => "PARTUUID",
    };
    format!(
        "{}  {:>9} at {:>7}  {what}  ({id} {})",
        p.number,
        Size(p.len).to_string(),
        Size(p.start).to_string(),
        p.uuid
    )
}

fn report_json(r: &BuildReport) -> serde_json::Value {
    serde_json::json!({
        "output": r.output,
        "mode": "0600",
        "platform": r.platform.name(),
        "machine": r.machine,
        "fingerprint": r.fingerprint,
        "server_url": r.server_url,
        "size": r.size,
        "data_bytes": r.data_bytes,
        "mapped_bytes": r.mapped_bytes,
        "bmap": r.bmap,
        "bmap_sha256": r.bmap_sha256,
        "sha256": r.sha256,
        "table": match r.table { TableKind::Gpt => "gpt", TableKind::Mbr => "mbr" },
        "disk_id": r.disk_id,
        "boot_filesystem": fat_name(r.fat.fat_type),
        "partitions": r.partitions.iter().map(|p| serde_json::json!({
            "number": p.number,
            "role": match p.role { Role::Boot => "boot", Role::Cache => "cache" },
            "start": p.start,
            "size": p.len,
            "name": p.name,
            "uuid": p.uuid,
            "fs_uuid": p.fs_uuid,
        })).collect::<Vec<_>>(),
        "warnings": r.warnings,
        "files": r.files.iter().map(|f| serde_json::json!({
            "path": f.path,
            "size": f.len,
            "from": f.from,
        })).collect::<Vec<_>>(),
    })
}

/// `bootgate image platforms`: each platform, its disk layout, the firmware it
/// needs (found or not) and the files bootgate generates.
pub fn platforms_text(search: &FirmwareSearch) -> String {
    use std::fmt::Write;
    let mut s = String::new();
    for platform in Platform::ALL {
        let _ = writeln!(s, "{:<11} {}", platform.name(), platform.description());
        let disk = match platform.table() {
            TableKind::Gpt => "GPT; FAT32 EFI system partition",
            TableKind::Mbr => "MBR; FAT16 boot partition",
        };
        let _ = writeln!(
            s,
            "  disk:       {disk} ({} by default); optional ext4 {CACHE_LABEL} cache partition",
            Size(DEFAULT_BOOT_SIZE)
        );
        let _ = writeln!(s, "  firmware:");
        for file in platform.firmware() {
            let status = match search.find(file.source) {
                Ok(path) => format!("found {}", path.display()),
                Err(_) => "MISSING".to_string(),
            };
            let _ = writeln!(
                s,
                "    {:<46} -> {:<24} [{}] {status}",
                file.source, file.dest, file.package
            );
        }
        let _ = writeln!(s, "  generated:");
        for generated in platform.generated() {
            let _ = writeln!(s, "    {:<14} {}", generated.dest, generated.what);
        }
        let _ = writeln!(s);
    }
    let roots: Vec<String> = search
        .roots()
        .iter()
        .map(|r| r.display().to_string())
        .collect();
    let _ = writeln!(
        s,
        "Firmware files are looked up under each `image build --firmware-dir DIR`, then ${} \
         (colon-separated), then /usr/lib. Searched here: {}",
        crate::image::FIRMWARE_ENV,
        roots.join(", ")
    );
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{CommandFactory, Parser};

    #[derive(Debug, Parser)]
    struct Harness {
        #[command(subcommand)]
        image: ImageCommand,
    }

    #[test]
    fn arguments_parse() {
        Harness::command().debug_assert();
        let h = Harness::try_parse_from([
            "x",
            "build",
            "--machine",
            "gw-1",
            "--platform",
            "rpi4",
            "-o",
            "gw.img",
            "--firmware-dir",
            "a",
            "--assets",
            "b",
            "--cache-size",
            "8G",
        ])
        .unwrap();
        let ImageCommand::Build(args) = h.image else {
            panic!()
        };
        assert_eq!(args.firmware_dirs, [PathBuf::from("a"), PathBuf::from("b")]);
        let help = Harness::command()
            .find_subcommand_mut("build")
            .unwrap()
            .render_long_help()
            .to_string();
        assert!(help.contains("--firmware-dir <DIR>"), "{help}");
        assert!(
            !help.contains("--assets"),
            "the old name stays hidden: {help}"
        );
        assert_eq!(args.cache_size, Some(Size(8 << 30)));
        assert!(
            Harness::try_parse_from([
                "x",
                "build",
                "--machine",
                "m",
                "--platform",
                "p",
                "-o",
                "f",
                "--size",
                "12Q"
            ])
            .is_err()
        );
    }

    #[test]
    fn platforms_listing_names_packages_and_search_path() {
        let text = platforms_text(&FirmwareSearch::from_roots(vec![PathBuf::from(
            "/nonexistent",
        )]));
        for needle in [
            "x86_64-efi",
            "arm64-efi",
            "rpi3",
            "rpi4",
            "[u-boot-rpi] MISSING",
            "/nonexistent",
            "boot.scr",
        ] {
            assert!(text.contains(needle), "{needle}\n{text}");
        }
    }
}
