//! Image builder tests against the real tools: `sfdisk --dump`, `sgdisk -v`,
//! `fsck.fat -n`, mtools (`mdir`, `mcopy`), `mkimage -l`, util-linux `blkid`,
//! `fsck.ext4 -n`, `bmaptool` and boot2container's own `init.sh`
//! (`tests/fixtures/boot2container/`). Most use small fake firmware files
//! (what is checked is the layout, not the firmware); one test builds every
//! platform from the real Debian files that `scripts/fetch-firmware` puts in
//! `.cache/firmware`.

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use bootgate::ca::{self, PrivateKey};
use bootgate::datadir::DataDir;
use bootgate::datadir::registry::MachineName;
use bootgate::disk::Size;
use bootgate::image::esl;
use bootgate::image::{BuildOptions, BuildReport, ImageError, Platform, Silent};
use bootgate::manage::init::{CaSource, InitOptions, ServerCertSource};
use sha2::{Digest, Sha256};

use crate::support::{assert_golden, assert_succeeded, bootgate_bin, wait_until};

const MIB: u64 = 1 << 20;
const GIB: u64 = 1 << 30;

/// One data directory for the whole test binary (RSA key generation is the
/// slow part): machine `gw-1`, and `old-1`, revoked.
struct Fixture {
    data: DataDir,
    fake_firmware: PathBuf,
    scratch: PathBuf,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let root = Path::new(env!("CARGO_TARGET_TMPDIR")).join("image-tests");
        let _ = fs::remove_dir_all(&root);
        fs::create_dir_all(&root).unwrap();
        let data_path = root.join("data");
        bootgate::manage::init::create(
            &data_path,
            &InitOptions {
                server_names: vec!["boot.example.com".into()],
                listen: "0.0.0.0:8443".parse().unwrap(),
                ca: CaSource::Generate,
                server_cert: ServerCertSource::Issue,
            },
        )
        .unwrap();
        let data = DataDir::open(&data_path).unwrap();
        for name in ["gw-1", "old-1"] {
            bootgate::manage::enrollment::add(&data, &name.parse::<MachineName>().unwrap(), None)
                .unwrap();
        }
        bootgate::manage::enrollment::revoke(&data, "old-1").unwrap();
        let fake_firmware = root.join("fake-firmware");
        make_fake_firmware(&fake_firmware);
        let scratch = root.join("scratch");
        fs::create_dir_all(&scratch).unwrap();
        Fixture {
            data,
            fake_firmware,
            scratch,
        }
    })
}

/// Pseudo-random bytes, different per name, so a misplaced file is noticed.
fn fake_bytes(name: &str, len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len + 32);
    let mut block: [u8; 32] = Sha256::digest(name.as_bytes()).into();
    while out.len() < len {
        out.extend_from_slice(&block);
        block = Sha256::digest(block).into();
    }
    out.truncate(len);
    out
}

fn make_fake_firmware(root: &Path) {
    let files = [
        ("ipxe/ipxe-amd64.efi", 990_000),
        ("ipxe/ipxe-arm64.efi", 1_010_000),
        ("u-boot/rpi_arm64/u-boot.bin", 640_000),
        ("raspi-firmware/bootcode.bin", 52_000),
        ("raspi-firmware/start.elf", 700_000),
        ("raspi-firmware/fixup.dat", 7_000),
        ("raspi-firmware/start4.elf", 800_000),
        ("raspi-firmware/fixup4.dat", 5_000),
        (
            "linux-image-6.12.0-fake-arm64/broadcom/bcm2837-rpi-3-b.dtb",
            31_000,
        ),
        (
            "linux-image-6.12.0-fake-arm64/broadcom/bcm2837-rpi-3-b-plus.dtb",
            32_000,
        ),
        (
            "linux-image-6.12.0-fake-arm64/broadcom/bcm2711-rpi-4-b.dtb",
            55_000,
        ),
        (
            "linux-image-6.12.0-fake-arm64/broadcom/bcm2711-rpi-400.dtb",
            55_500,
        ),
        (
            "linux-image-6.12.0-fake-arm64/broadcom/bcm2711-rpi-cm4-io.dtb",
            54_000,
        ),
    ];
    for (path, len) in files {
        let path = root.join(path);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(&path, fake_bytes(&path.to_string_lossy(), len)).unwrap();
    }
}

fn real_firmware() -> PathBuf {
    let dir = crate::support::fetched_cache().join("firmware");
    assert!(
        dir.join("ipxe/ipxe-amd64.efi").is_file(),
        "the real firmware files are missing from {}: run scripts/fetch-firmware first",
        dir.display()
    );
    dir
}

fn options(platform: Platform, name: &str) -> BuildOptions {
    let f = fixture();
    BuildOptions {
        machine: "gw-1".into(),
        platform,
        output: f.scratch.join(name),
        firmware_dirs: vec![f.fake_firmware.clone()],
        server_url: None,
        size: None,
        cache_size: None,
        force: true,
        full_sha256: false,
    }
}

fn build(opts: &BuildOptions) -> BuildReport {
    bootgate::image::build(&fixture().data, opts, &mut Silent)
        .unwrap_or_else(|err| panic!("building {}: {err:#}", opts.output.display()))
}

fn build_err(opts: &BuildOptions) -> anyhow::Error {
    match bootgate::image::build(&fixture().data, opts, &mut Silent) {
        Ok(_) => panic!("building {} should have failed", opts.output.display()),
        Err(err) => err,
    }
}

/// `bootgate image build` for rpi3 with only `firmware_dir` to search, its
/// stderr.
/// The search ends in `/usr/lib`: the build runs in a mount namespace of its
/// own where the host's Raspberry Pi firmware, if any, is hidden, so the
/// refusal is the same on every host. That needs root, as CI has.
fn missing_firmware_refusal(firmware_dir: &Path, output: &Path) -> String {
    let hide = "if [ -e /usr/lib/raspi-firmware ]; then \
                mount -t tmpfs none /usr/lib/raspi-firmware || exit 99; fi; exec \"$@\"";
    let out = Command::new("unshare")
        .args([
            "--mount",
            "--propagation",
            "private",
            "sh",
            "-c",
            hide,
            "sh",
        ])
        .arg(bootgate_bin())
        .arg("--data")
        .arg(fixture().data.root())
        .args(["image", "build", "--machine", "gw-1", "--platform", "rpi3"])
        .arg("--firmware-dir")
        .arg(firmware_dir)
        .arg("--output")
        .arg(output)
        .env_remove("BOOTGATE_FIRMWARE")
        .env_remove("BOOTGATE_ASSETS")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        !out.status.success() && out.status.code() != Some(99),
        "image build without firmware (needs root for its mount namespace): {stderr}"
    );
    stderr
}

fn run(cmd: &mut Command) -> String {
    let out = cmd
        .env("MTOOLS_SKIP_CHECK", "1")
        .output()
        .unwrap_or_else(|e| panic!("running {cmd:?}: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{cmd:?} failed:\n{text}");
    text
}

/// Reads `path` from the FAT file system at byte `offset` of `image` with mcopy.
fn mcopy(image: &Path, offset: u64, path: &str) -> Vec<u8> {
    let out = Command::new("mcopy")
        .env("MTOOLS_SKIP_CHECK", "1")
        .arg("-n")
        .arg("-i")
        .arg(format!("{}@@{offset}", image.display()))
        .arg(format!("::/{path}"))
        .arg("-")
        .output()
        .unwrap();
    assert_succeeded(&format!("mcopy {path}"), &out);
    out.stdout
}

/// Copies the boot partition out and runs `fsck.fat -n` on it.
fn fsck_boot_partition(report: &BuildReport) -> String {
    use std::os::unix::fs::FileExt;
    let boot = &report.partitions[0];
    let mut bytes = vec![0u8; boot.len as usize];
    fs::File::open(&report.output)
        .unwrap()
        .read_exact_at(&mut bytes, boot.start)
        .unwrap();
    let part = report.output.with_extension("boot-partition");
    fs::write(&part, &bytes).unwrap();
    let text = run(Command::new("fsck.fat").arg("-n").arg("-v").arg(&part));
    fs::remove_file(&part).unwrap();
    assert!(!text.contains("Dirty bit"), "{text}");
    text
}

/// Every file of the report reads back byte for byte from the image.
fn check_files(report: &BuildReport) {
    let boot = report.partitions[0].start;
    let listing = run(Command::new("mdir")
        .arg("-/")
        .arg("-i")
        .arg(format!("{}@@{boot}", report.output.display()))
        .arg("::/"));
    for file in &report.files {
        let name = file.path.rsplit('/').next().unwrap();
        let stem = name.split('.').next().unwrap();
        assert!(listing.contains(stem), "{name} not in\n{listing}");
        let got = mcopy(&report.output, boot, &file.path);
        assert_eq!(got.len() as u64, file.len, "{}", file.path);
        if let Some(from) = &file.from {
            assert!(
                got == fs::read(from).unwrap(),
                "{} differs from {}",
                file.path,
                from.display()
            );
        }
    }
}

struct Machine {
    fingerprint: String,
    cert_der: Vec<u8>,
    key_der: Vec<u8>,
    ca_der: Vec<u8>,
}

fn machine() -> Machine {
    let data = &fixture().data;
    let cert_der =
        ca::der_from_pem(&fs::read_to_string(data.machine_cert_path("gw-1")).unwrap()).unwrap();
    let key =
        PrivateKey::from_pem(&fs::read_to_string(data.machine_key_path("gw-1")).unwrap()).unwrap();
    let ca_der = ca::der_from_pem(&fs::read_to_string(data.ca_cert_path()).unwrap()).unwrap();
    Machine {
        fingerprint: ca::Fingerprint::of_der(&cert_der).to_string(),
        cert_der,
        key_der: key.pkcs8_der().to_vec(),
        ca_der,
    }
}

/// The files bootgate generates carry this machine's identity and the CA.
fn check_generated(report: &BuildReport, server_url: &str) {
    let m = machine();
    let boot = report.partitions[0].start;
    let script = String::from_utf8(mcopy(&report.output, boot, "autoexec.ipxe")).unwrap();
    assert!(script.starts_with("#!ipxe\n"));
    assert!(script.contains(&format!("set cert:hexraw {}\n", hex::encode(&m.cert_der))));
    assert!(script.contains(&format!("set privkey:hexraw {}\n", hex::encode(&m.key_der))));
    assert!(script.contains(&format!(
        "chain {server_url}/boot/ipxe?mac=${{netX/mac}}&platform=${{platform}}&buildarch=${{buildarch}} || goto chain_failed\n"
    )));
    let esl_bytes = mcopy(&report.output, boot, "ca.esl");
    assert_eq!(
        esl_bytes,
        esl::x509_signature_list(&m.ca_der, esl::BOOTGATE_OWNER_GUID).unwrap()
    );
    assert_eq!(report.fingerprint.as_str(), m.fingerprint);
}

fn check_common(report: &BuildReport) {
    let meta = fs::metadata(&report.output).unwrap();
    assert_eq!(meta.mode() & 0o777, 0o600, "images hold a private key");
    assert_eq!(meta.len(), report.size);
    if let Some(sha) = &report.sha256 {
        assert_eq!(*sha, sha256_file(&report.output));
    }
    assert_eq!(
        report.bmap,
        bootgate::image::output::bmap_path(&report.output)
    );
    let bmap = fs::read_to_string(&report.bmap).unwrap();
    assert!(
        bmap.contains(&format!(
            "<BmapFileChecksum> {} </BmapFileChecksum>",
            report.bmap_sha256
        )),
        "{bmap}"
    );
    assert_eq!(
        fs::metadata(&report.bmap).unwrap().mode() & 0o777,
        0o600,
        "the block map lists the image's blocks"
    );
    let prefix = format!(".{}.", report.output.file_name().unwrap().to_string_lossy());
    let leftovers: Vec<_> = fs::read_dir(report.output.parent().unwrap())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix))
        .collect();
    assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");
}

fn sha256_file(path: &Path) -> String {
    use std::io::Read;
    let mut file = fs::File::open(path).unwrap();
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    hex::encode(hasher.finalize())
}

fn sfdisk_dump(image: &Path) -> String {
    run(Command::new("sfdisk").arg("--dump").arg(image))
}

#[test]
fn efi_images_are_valid_gpt_and_fat32_with_every_file() {
    for (platform, loader) in [
        (Platform::X86_64Efi, "EFI/BOOT/BOOTX64.EFI"),
        (Platform::Arm64Efi, "EFI/BOOT/BOOTAA64.EFI"),
    ] {
        let report = build(&options(platform, &format!("{platform}.img")));
        check_common(&report);
        assert_eq!(report.size, 66 * MIB);

        let verify = run(Command::new("sgdisk").arg("-v").arg(&report.output));
        assert!(verify.contains("No problems found"), "{verify}");
        let dump = sfdisk_dump(&report.output);
        assert!(dump.contains("label: gpt"), "{dump}");
        assert!(
            dump.contains(&format!("label-id: {}", report.disk_id.to_uppercase())),
            "{dump}"
        );
        assert!(
            dump.contains(
                "start=        2048, size=      131072, type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B"
            ),
            "{dump}"
        );
        assert!(dump.contains("name=\"ESP\""), "{dump}");

        let fsck = fsck_boot_partition(&report);
        assert!(fsck.contains("32 bit entries"), "{fsck}");
        check_files(&report);
        check_generated(&report, "https://boot.example.com:8443");
        let boot = report.partitions[0].start;
        assert_eq!(mcopy(&report.output, boot, "ca.cer"), machine().ca_der);
        let loader_bytes = mcopy(&report.output, boot, loader);
        let source = report.files.iter().find(|f| f.path == loader).unwrap();
        assert_eq!(
            loader_bytes,
            fs::read(source.from.as_ref().unwrap()).unwrap()
        );

        // The volume id is not fatfs's default and the boot sector knows where
        // the partition starts.
        let bytes = fs::read(&report.output).unwrap();
        let bpb = &bytes[boot as usize..boot as usize + 512];
        assert_eq!(
            u32::from_le_bytes(bpb[0x1c..0x20].try_into().unwrap()),
            2048
        );
        assert_ne!(
            u32::from_le_bytes(bpb[0x43..0x47].try_into().unwrap()),
            0x1234_5678
        );
    }
}

#[test]
fn raspberry_pi_images_are_mbr_fat16_with_firmware_config_and_boot_script() {
    for platform in [Platform::Rpi3, Platform::Rpi4] {
        let report = build(&options(platform, &format!("{platform}.img")));
        check_common(&report);
        assert_eq!(report.size, 65 * MIB);

        let dump = sfdisk_dump(&report.output);
        assert!(dump.contains("label: dos"), "{dump}");
        assert!(
            dump.contains(&format!("label-id: {}", report.disk_id)),
            "{dump}"
        );
        assert!(
            dump.contains("start=        2048, size=      131072, type=e, bootable"),
            "{dump}"
        );
        let fsck = fsck_boot_partition(&report);
        assert!(fsck.contains("16 bit entries"), "{fsck}");
        check_files(&report);
        check_generated(&report, "https://boot.example.com:8443");

        let boot = report.partitions[0].start;
        let config = String::from_utf8(mcopy(&report.output, boot, "config.txt")).unwrap();
        assert_golden(&format!("{platform}/config.txt"), &config);
        // Every device tree config.txt names is on the partition.
        for dtb in config
            .lines()
            .filter_map(|l| l.strip_prefix("device_tree="))
        {
            assert!(report.files.iter().any(|f| f.path == dtb), "{dtb}");
        }
        assert_eq!(
            report.files.iter().any(|f| f.path == "bootcode.bin"),
            platform == Platform::Rpi3
        );
        // iPXE is outside EFI/BOOT, where U-Boot's boot manager would start it
        // before boot.scr.
        assert!(report.files.iter().any(|f| f.path == "efi/tools/ipxe.efi"));
        assert!(!report.files.iter().any(|f| f.path.starts_with("EFI/BOOT")));

        let scr = report.output.with_extension("boot.scr");
        fs::write(&scr, mcopy(&report.output, boot, "boot.scr")).unwrap();
        let listing = run(Command::new("mkimage").arg("-l").arg(&scr));
        assert!(
            listing.contains("AArch64 Linux Script (uncompressed)"),
            "{listing}"
        );
        assert!(listing.contains("Image Name:   bootgate"), "{listing}");
        let script = fs::read(&scr).unwrap();
        let text = String::from_utf8_lossy(&script[72..]);
        assert_golden(&format!("{platform}/boot.scr.txt"), &text);
        fs::remove_file(&scr).unwrap();
    }
}

#[test]
fn cache_partition_costs_nothing_on_disk() {
    let mut gpt = options(Platform::X86_64Efi, "cache-gpt.img");
    gpt.cache_size = Some(Size(8 * GIB));
    let report = build(&gpt);
    check_common(&report);
    assert_eq!(report.size, 65 * MIB + 8 * GIB + MIB);
    let cache = report.cache().expect("a cache partition");
    assert_eq!(
        (cache.number, cache.start, cache.len),
        (2, 65 * MIB, 8 * GIB)
    );
    let meta = fs::metadata(&report.output).unwrap();
    assert!(
        meta.blocks() * 512 < 16 * MIB,
        "{} bytes allocated for a sparse image",
        meta.blocks() * 512
    );
    let dump = sfdisk_dump(&report.output);
    assert!(
        dump.contains(&format!(
            "start=      133120, size=    16777216, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4, uuid={}, name=\"B2C_CACHE\"",
            cache.uuid.to_uppercase()
        )),
        "{dump}"
    );
    let verify = run(Command::new("sgdisk").arg("-v").arg(&report.output));
    assert!(verify.contains("No problems found"), "{verify}");
    fs::remove_file(&report.output).unwrap();

    let mut mbr = options(Platform::Rpi4, "cache-mbr.img");
    mbr.cache_size = Some(Size(GIB));
    let report = build(&mbr);
    assert_eq!(report.size, 65 * MIB + GIB);
    let dump = sfdisk_dump(&report.output);
    assert!(
        dump.contains("start=      133120, size=     2097152, type=83"),
        "{dump}"
    );
    fsck_boot_partition(&report);
    fs::remove_file(&report.output).unwrap();
}

#[test]
fn size_sets_the_total_and_the_boot_partition_takes_the_rest() {
    let mut opts = options(Platform::X86_64Efi, "sized.img");
    opts.size = Some(Size(256 * MIB));
    opts.cache_size = Some(Size(128 * MIB));
    let report = build(&opts);
    assert_eq!(report.size, 256 * MIB);
    let [boot, cache] = &report.partitions[..] else {
        panic!("{:?}", report.partitions)
    };
    assert_eq!(boot.start, MIB);
    assert_eq!(cache.start, boot.start + boot.len);
    assert_eq!(cache.len, 128 * MIB);
    assert!(cache.start + cache.len <= 256 * MIB - 33 * 512);
    let verify = run(Command::new("sgdisk").arg("-v").arg(&report.output));
    assert!(verify.contains("No problems found"), "{verify}");
    fsck_boot_partition(&report);
    check_files(&report);

    opts.size = Some(Size(8 * MIB));
    opts.cache_size = None;
    let err = build_err(&opts);
    match err.downcast_ref::<ImageError>() {
        Some(ImageError::TooSmall { needed, given, .. }) => {
            assert_eq!(*given, 8 * MIB);
            assert!(*needed >= 18 * MIB, "{needed}");
        }
        _ => panic!("expected TooSmall, got {err:#}"),
    }
    assert!(err.to_string().contains("too small"), "{err}");
    opts.size = Some(Size(64 * MIB));
    opts.cache_size = Some(Size(64 * MIB));
    assert!(matches!(
        build_err(&opts).downcast_ref::<ImageError>(),
        Some(ImageError::TooSmall { .. })
    ));
}

#[test]
fn refuses_bad_input_and_loses_nothing() {
    let f = fixture();
    let dir = f.scratch.join("refusals");
    fs::create_dir_all(&dir).unwrap();
    let existing = dir.join("existing.img");
    fs::write(&existing, b"keep me").unwrap();

    let mut opts = options(Platform::Rpi4, "unused");
    opts.output = existing.clone();
    opts.force = false;
    let err = build_err(&opts);
    assert!(
        matches!(
            err.downcast_ref::<ImageError>(),
            Some(ImageError::OutputExists { .. })
        ),
        "{err:#}"
    );
    assert!(err.to_string().contains("--force"), "{err}");
    assert_eq!(fs::read(&existing).unwrap(), b"keep me");

    opts.force = true;
    build(&opts);
    assert_ne!(fs::read(&existing).unwrap(), b"keep me", "--force replaces");

    let mut revoked = options(Platform::Rpi4, "refusals/revoked.img");
    revoked.machine = "old-1".into();
    let err = build_err(&revoked);
    assert!(
        matches!(
            err.downcast_ref::<ImageError>(),
            Some(ImageError::Revoked { .. })
        ),
        "{err:#}"
    );

    let mut unknown = options(Platform::Rpi4, "refusals/unknown.img");
    unknown.machine = "nobody".into();
    let err = build_err(&unknown);
    assert!(format!("{err:#}").contains("nobody"), "{err:#}");

    let err = "rpi5".parse::<Platform>().unwrap_err();
    assert!(matches!(err, ImageError::UnknownPlatform { .. }));

    let empty = dir.join("empty-firmware");
    fs::create_dir_all(&empty).unwrap();
    let text = missing_firmware_refusal(&empty, &dir.join("missing.img"));
    assert!(
        text.contains("raspi-firmware/start.elf (Debian package raspi-firmware)"),
        "{text}"
    );
    assert!(
        text.contains(&empty.join("raspi-firmware/start.elf").display().to_string()),
        "{text}"
    );
    assert!(text.contains("/usr/lib/raspi-firmware/start.elf"), "{text}");

    let mut bad_url = options(Platform::X86_64Efi, "refusals/bad-url.img");
    bad_url.server_url = Some("http://boot.example.com".into());
    assert!(format!("{:#}", build_err(&bad_url)).contains("https://"));

    let names: Vec<String> = fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    let mut names = names;
    names.sort();
    assert_eq!(
        names,
        ["empty-firmware", "existing.img", "existing.img.bmap"],
        "nothing else was written"
    );
}

#[test]
fn images_are_reproducible_and_take_the_server_url() {
    let mut a = options(Platform::Rpi3, "repro-a.img");
    a.server_url = Some("https://10.0.2.2:8443/".into());
    a.cache_size = Some(Size(256 * MIB));
    a.full_sha256 = true;
    let mut b = a.clone();
    b.output = fixture().scratch.join("repro-b.img");
    let (ra, rb) = (build(&a), build(&b));
    assert!(ra.sha256.is_some());
    assert_eq!(ra.sha256, rb.sha256);
    assert_eq!(ra.bmap_sha256, rb.bmap_sha256);
    check_common(&ra);
    assert_eq!(ra.server_url, "https://10.0.2.2:8443");
    check_generated(&ra, "https://10.0.2.2:8443");
    let other = build(&options(Platform::Rpi4, "repro-c.img"));
    assert_ne!(other.disk_id, ra.disk_id, "ids differ per platform");
}

#[test]
fn real_firmware_builds_every_platform() {
    let firmware = real_firmware();
    for platform in Platform::ALL {
        let mut opts = options(platform, &format!("real-{platform}.img"));
        opts.firmware_dirs = vec![firmware.clone()];
        let report = build(&opts);
        check_common(&report);
        fsck_boot_partition(&report);
        check_files(&report);
        for file in &report.files {
            if let Some(from) = &file.from {
                assert!(
                    from.starts_with(&firmware),
                    "{} came from {}",
                    file.path,
                    from.display()
                );
            }
        }
        fs::remove_file(&report.output).unwrap();
    }
}

#[test]
fn command_line_builds_and_lists() {
    let f = fixture();
    let bin = env!("CARGO_BIN_EXE_bootgate");
    let out = f.scratch.join("cli.img");
    let _ = fs::remove_file(&out);
    let build = |extra: &[&str]| {
        Command::new(bin)
            .arg("--data")
            .arg(f.data.root())
            .args(["image", "build", "--machine", "gw-1", "--platform", "rpi3"])
            .arg("--output")
            .arg(&out)
            .arg("--firmware-dir")
            .arg(&f.fake_firmware)
            .args(extra)
            .output()
            .unwrap()
    };
    let first = build(&[]);
    let stdout = String::from_utf8_lossy(&first.stdout);
    assert_succeeded("image build", &first);
    let m = machine();
    for needle in [
        "mode 0600",
        "private key",
        &m.fingerprint,
        "rpi3",
        "sha256",
        &out.display().to_string(),
    ] {
        assert!(stdout.contains(needle), "{needle} in\n{stdout}");
    }
    assert_eq!(fs::metadata(&out).unwrap().mode() & 0o777, 0o600);

    let again = build(&["--json"]);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("--force"));
    let forced = build(&["--json", "--force", "--sha256"]);
    assert!(forced.status.success());
    let json: serde_json::Value = serde_json::from_slice(&forced.stdout).unwrap();
    assert_eq!(json["sha256"].as_str().unwrap(), sha256_file(&out));
    let bmap = fs::read_to_string(json["bmap"].as_str().unwrap()).unwrap();
    assert!(bmap.contains(json["bmap_sha256"].as_str().unwrap()));
    assert!(
        String::from_utf8_lossy(&first.stdout).contains("bmaptool copy"),
        "{stdout}"
    );
    assert_eq!(json["fingerprint"].as_str().unwrap(), m.fingerprint);

    // The former variable name is still read, after the current one.
    let old_name = f.scratch.join("firmware-by-old-name");
    let list = Command::new(bin)
        .args(["image", "platforms"])
        .env("BOOTGATE_FIRMWARE", &f.fake_firmware)
        .env("BOOTGATE_ASSETS", &old_name)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&list.stdout);
    assert!(list.status.success());
    assert!(text.contains("[u-boot-rpi] found"), "{text}");
    let searched = format!(
        "Searched here: {}, {}, /usr/lib",
        f.fake_firmware.display(),
        old_name.display()
    );
    assert!(text.contains(&searched), "{searched} in\n{text}");
}

/// A system tool, found in `$PATH` or the sbin folders.
fn tool(name: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin".into(), "/sbin".into()])
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| panic!("{name} not found: scripts/test installs it"))
}

/// The real `blkid`, low-level probing one byte range of `image`.
fn blkid_range(image: &Path, start: u64, len: u64) -> String {
    run(Command::new(tool("blkid"))
        .arg("-p")
        .arg("--offset")
        .arg(start.to_string())
        .arg("--size")
        .arg(len.to_string())
        .arg(image))
}

/// `fsck.ext4 -fn` on the file system at `start` of `image`.
fn fsck_ext4(image: &Path, start: u64) -> String {
    run(Command::new(tool("fsck.ext4"))
        .arg("-fn")
        .arg(format!("{}?offset={start}", image.display())))
}

fn init_sh() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/boot2container/init.sh")
}

/// Runs boot2container's own `find_container_partition` (from its init.sh,
/// by bash) with a `blkid` that sees only `image`: the real blkid probes the
/// disk and each partition at its offset, reported as /dev/mmcblk0 and
/// /dev/mmcblk0pN. Returns the device it picks.
fn b2c_find_container_partition(image: &Path, report: &BuildReport) -> Option<String> {
    let bin = image.with_extension("bin");
    fs::create_dir_all(&bin).unwrap();
    let mut script = format!(
        "#!/bin/bash\n\
         # blkid as boot2container runs it, over the devices of one disk image\n\
         real={real:?}\nimg={img:?}\n\
         emit() {{ local name=$1 out; shift; out=$(\"$real\" -p \"$@\" \"$img\") || return 0; printf '%s%s\\n' \"$name\" \"${{out#\"$img\"}}\"; }}\n\
         emit /dev/mmcblk0\n",
        real = tool("blkid"),
        img = image,
    );
    for p in &report.partitions {
        script.push_str(&format!(
            "emit /dev/mmcblk0p{} --offset {} --size {}\n",
            p.number, p.start, p.len
        ));
    }
    let wrapper = bin.join("blkid");
    fs::write(&wrapper, script).unwrap();
    fs::set_permissions(&wrapper, fs::Permissions::from_mode(0o755)).unwrap();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = Command::new("bash")
        .arg("-c")
        .arg("UNITTEST=1 . \"$1\"; find_container_partition")
        .arg("find")
        .arg(init_sh())
        .env("PATH", path)
        .output()
        .unwrap();
    fs::remove_dir_all(&bin).unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).trim().to_string();
    match out.status.code() {
        Some(0) => Some(stdout),
        Some(1) if stdout.is_empty() => None,
        _ => panic!(
            "find_container_partition: {:?}\n{stdout}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ),
    }
}

fn allocated(path: &Path) -> u64 {
    fs::metadata(path).unwrap().blocks() * 512
}

#[test]
fn cache_partition_is_the_file_system_boot2container_looks_for() {
    for (platform, cache) in [
        (Platform::X86_64Efi, 8 * GIB),
        (Platform::Arm64Efi, GIB),
        (Platform::Rpi3, 64 * MIB),
        (Platform::Rpi4, 8 * GIB),
    ] {
        let mut opts = options(platform, &format!("b2c-{platform}.img"));
        opts.cache_size = Some(Size(cache));
        let report = build(&opts);
        check_common(&report);
        fsck_boot_partition(&report);
        let part = report.cache().expect("a cache partition").clone();
        assert_eq!(part.len, cache);

        let probe = blkid_range(&report.output, part.start, part.len);
        let fs_uuid = part.fs_uuid.clone().expect("an ext4 UUID");
        for needle in [
            "TYPE=\"ext4\"".to_string(),
            "LABEL=\"B2C_CACHE\"".to_string(),
            format!("UUID=\"{fs_uuid}\""),
        ] {
            assert!(probe.contains(&needle), "{platform}: {needle} in {probe}");
        }
        fsck_ext4(&report.output, part.start);
        let features = run(Command::new(tool("dumpe2fs")).arg("-h").arg(format!(
            "{}?offset={}",
            report.output.display(),
            part.start
        )));
        assert!(
            features
                .lines()
                .any(|l| l.starts_with("Filesystem features:") && l.contains(" encrypt")),
            "boot2container formats with -O encrypt:\n{features}"
        );

        assert_eq!(
            b2c_find_container_partition(&report.output, &report).as_deref(),
            Some(format!("/dev/mmcblk0p{}", part.number).as_str()),
            "{platform}"
        );
        assert!(
            allocated(&report.output) < 16 * MIB && report.mapped_bytes < 16 * MIB,
            "{platform}: {} allocated, {} mapped",
            allocated(&report.output),
            report.mapped_bytes
        );
        fs::remove_file(&report.output).unwrap();
        fs::remove_file(&report.bmap).unwrap();
    }

    // Without a cache partition boot2container finds nothing (and `auto`
    // would repartition the first disk).
    let report = build(&options(Platform::Rpi4, "b2c-none.img"));
    assert_eq!(b2c_find_container_partition(&report.output, &report), None);
}

/// Writes `image` onto `card` (a file already full of other data, like a
/// used SD card) with bmaptool's own copy code, which writes only the mapped
/// blocks and verifies their checksums.
fn bmap_copy_onto(image: &Path, bmap: &Path, card: &Path) {
    // The Python bmaptool runs with (its bmaptools module is installed for).
    let bmaptool = fs::read_to_string(tool("bmaptool")).unwrap();
    let python = bmaptool
        .lines()
        .next()
        .and_then(|l| l.strip_prefix("#!"))
        .and_then(|l| l.split_whitespace().next())
        .expect("bmaptool starts with #!python")
        .to_string();
    run(Command::new(python)
        .arg("-c")
        .arg(
            "import os, sys\n\
             from bmaptools.BmapCopy import BmapCopy\n\
             image, card, bmap = sys.argv[1:4]\n\
             with open(image, 'rb') as i, open(card, 'r+b') as d, open(bmap) as b:\n    \
             BmapCopy(i, d, b, os.path.getsize(image)).copy(False, True)\n",
        )
        .arg(image)
        .arg(card)
        .arg(bmap));
}

#[test]
fn bmaptool_writes_the_image_and_verifies_it() {
    use std::io::Write;
    use std::os::unix::fs::FileExt;
    let scratch = &fixture().scratch;
    for platform in [Platform::X86_64Efi, Platform::Rpi4] {
        let mut opts = options(platform, &format!("bmap-{platform}.img"));
        opts.cache_size = Some(Size(64 * MIB));
        opts.full_sha256 = true;
        let report = build(&opts);
        check_common(&report);

        let copy = scratch.join(format!("bmap-{platform}.copy"));
        let _ = fs::remove_file(&copy);
        let out = run(Command::new("bmaptool")
            .arg("copy")
            .arg("--bmap")
            .arg(&report.bmap)
            .arg(&report.output)
            .arg(&copy));
        assert!(!out.contains("WARNING"), "{out}");
        assert_eq!(
            Some(sha256_file(&copy)),
            report.sha256,
            "{platform}: the copy is the image"
        );
        fs::remove_file(&copy).unwrap();

        // A used card: every block it is not given keeps old bytes, yet the
        // partition table and both file systems check.
        let card = scratch.join(format!("bmap-{platform}.card"));
        {
            let mut file = fs::File::create(&card).unwrap();
            let junk = vec![0xA5u8; MIB as usize];
            for _ in 0..report.size / MIB {
                file.write_all(&junk).unwrap();
            }
        }
        bmap_copy_onto(&report.output, &report.bmap, &card);
        let mut on_card = report.clone();
        on_card.output = card.clone();
        fsck_boot_partition(&on_card);
        check_files(&on_card);
        let dump = |path: &Path| sfdisk_dump(path).replace(&path.display().to_string(), "DISK");
        assert_eq!(dump(&card), dump(&report.output));
        if platform == Platform::X86_64Efi {
            let verify = run(Command::new("sgdisk").arg("-v").arg(&card));
            assert!(verify.contains("No problems found"), "{verify}");
        }
        let cache = report.cache().unwrap();
        fsck_ext4(&card, cache.start);
        let probe = blkid_range(&card, cache.start, cache.len);
        assert!(probe.contains("LABEL=\"B2C_CACHE\""), "{probe}");
        fs::remove_file(&card).unwrap();

        // bmaptool checks what it copies against the block map.
        let boot = report.partitions[0].start;
        fs::OpenOptions::new()
            .write(true)
            .open(&report.output)
            .unwrap()
            .write_all_at(b"X", boot + 3)
            .unwrap();
        let refused = Command::new("bmaptool")
            .arg("copy")
            .arg("--bmap")
            .arg(&report.bmap)
            .arg(&report.output)
            .arg(&copy)
            .output()
            .unwrap();
        assert!(!refused.status.success());
        assert!(
            String::from_utf8_lossy(&refused.stderr).contains("checksum mismatch"),
            "{}",
            String::from_utf8_lossy(&refused.stderr)
        );
        let _ = fs::remove_file(&copy);
        fs::remove_file(&report.output).unwrap();
        fs::remove_file(&report.bmap).unwrap();
    }
}

/// Runs `script` with `bash` as root of a new user and mount namespace, so
/// that it can mount small tmpfs file systems; `$1` is the bootgate binary,
/// `$2` the data directory, `$3` the fake firmware.
fn in_namespace(script: &str) -> std::process::Output {
    let f = fixture();
    Command::new("unshare")
        .args(["--user", "--map-root-user", "--mount", "bash", "-c"])
        .arg(script)
        .arg("ns")
        .arg(env!("CARGO_BIN_EXE_bootgate"))
        .arg(f.data.root())
        .arg(&f.fake_firmware)
        .output()
        .expect("unshare (util-linux) runs")
}

#[test]
fn full_disks_and_other_file_systems_leave_no_partial_output() {
    let root = fixture().scratch.join("mounts");
    let _ = fs::remove_dir_all(&root);
    fs::create_dir_all(&root).unwrap();
    let script = format!(
        r#"set -u
root={root:?}
build() {{ "$1" --data "$2" image build --machine gw-1 --platform rpi4 --firmware-dir "$3" --cache-size 8G "${{@:4}}"; }}
for size in 1m 5m 12m; do
    mkdir -p "$root/$size"
    mount -t tmpfs -o size=$size tmpfs "$root/$size" || exit 99
done
echo "== 1m"; build "$@" --output "$root/1m/gw.img" 2>&1; echo "status $?"; ls -A "$root/1m"
echo "== 5m"; build "$@" --output "$root/5m/gw.img" 2>&1; echo "status $?"; ls -A "$root/5m"
echo "== 12m"; build "$@" --output "$root/12m/gw.img" >/dev/null 2>&1; echo "status $?"
# The same files (inode, size, time) and the same block map, which lists
# the image's checksums.
snap() {{ stat -c '%n %i %s %Y' "$root/12m/gw.img" "$root/12m/gw.img.bmap"; sha256sum "$root/12m/gw.img.bmap"; }}
snap >"$root/12m.before"
echo "== 12m again"; build "$@" --output "$root/12m/gw.img" --force 2>&1; echo "status $?"; ls -A "$root/12m"
snap | cmp -s - "$root/12m.before" && echo "kept intact"
"#
    );
    let out = in_namespace(&script);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_succeeded("the namespace script", &out);
    let sections: Vec<&str> = text.split("== ").skip(1).collect();
    assert_eq!(sections.len(), 4, "{text}");
    // 1m: even mke2fs's scratch file does not fit; 5m: the image does not.
    for section in &sections[..2] {
        assert!(section.contains("is full"), "{section}");
        assert!(section.contains("nothing was written"), "{section}");
        let listing = section.split("status ").nth(1).unwrap().trim();
        assert!(
            listing.starts_with(|c: char| c.is_ascii_digit() && c != '0'),
            "{section}"
        );
        assert_eq!(listing.lines().count(), 1, "files left behind: {section}");
    }
    // 12m: built (on a file system other than the data directory's), then a
    // second build with --force finds no room and keeps the first.
    assert!(sections[2].contains("status 0"), "{}", sections[2]);
    assert!(sections[3].contains("is full"), "{}", sections[3]);
    let listing: Vec<&str> = sections[3]
        .split("status ")
        .nth(1)
        .unwrap()
        .lines()
        .skip(1)
        .collect();
    assert_eq!(listing, ["gw.img", "gw.img.bmap", "kept intact"], "{text}");
}

#[test]
fn ctrl_c_stops_the_build_and_removes_its_files() {
    let f = fixture();
    let dir = f.scratch.join("interrupted");
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    // Hashing 64 GiB of zeros (--sha256) takes long enough to be interrupted.
    let child = Command::new(env!("CARGO_BIN_EXE_bootgate"))
        .arg("--data")
        .arg(f.data.root())
        .args(["image", "build", "--machine", "gw-1", "--platform", "rpi4"])
        .arg("--firmware-dir")
        .arg(&f.fake_firmware)
        .args(["--cache-size", "64G", "--sha256", "--output"])
        .arg(dir.join("gw.img"))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    wait_until(
        "the image's temporary file",
        std::time::Duration::from_secs(120),
        || {
            fs::read_dir(&dir)
                .unwrap()
                .filter_map(|e| e.ok())
                .any(|e| e.file_name().to_string_lossy().ends_with(".partial"))
        },
    );
    let pid = i32::try_from(child.id()).unwrap();
    assert_eq!(unsafe { libc::kill(pid, libc::SIGINT) }, 0);
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(stderr.contains("interrupted"), "{stderr}");
    let left: Vec<_> = fs::read_dir(&dir).unwrap().collect();
    assert!(left.is_empty(), "left behind: {left:?}");
}

#[test]
fn image_files_do_not_depend_on_the_umask() {
    use std::os::unix::process::CommandExt;
    let f = fixture();
    for mask in [0o000, 0o077] {
        let out = f.scratch.join(format!("umask-{mask:03o}.img"));
        let _ = fs::remove_file(&out);
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_bootgate"));
        cmd.arg("--data")
            .arg(f.data.root())
            .args(["image", "build", "--machine", "gw-1", "--platform", "rpi3"])
            .arg("--output")
            .arg(&out)
            .arg("--firmware-dir")
            .arg(&f.fake_firmware);
        // SAFETY: umask is async-signal-safe and touches no memory.
        unsafe {
            cmd.pre_exec(move || {
                libc::umask(mask);
                Ok(())
            });
        }
        run(&mut cmd);
        assert_eq!(
            fs::metadata(&out).unwrap().mode() & 0o7777,
            0o600,
            "image under umask {mask:03o}"
        );
        assert_eq!(
            fs::metadata(bootgate::image::output::bmap_path(&out))
                .unwrap()
                .mode()
                & 0o7777,
            0o600,
            "block map under umask {mask:03o}"
        );
    }
}
