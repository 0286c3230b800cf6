//! Image builder tests against the real tools: `sfdisk --dump`, `sgdisk -v`,
//! `fsck.fat -n`, mtools (`mdir`, `mcopy`) and `mkimage -l`. Most use small
//! fake firmware files (what is checked is the layout, not the firmware); one
//! test builds every platform from the real Debian files that
//! `scripts/fetch-assets` puts in `.cache/assets`.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use bootgate::ca::{self, PrivateKey};
use bootgate::datadir::DataDir;
use bootgate::disk::Size;
use bootgate::image::esl;
use bootgate::image::{BuildOptions, BuildReport, ImageError, Platform, Silent};
use bootgate::registry::MachineName;
use bootgate::setup::{CaSource, InitOptions, ServerCertSource};
use sha2::{Digest, Sha256};

const MIB: u64 = 1 << 20;
const GIB: u64 = 1 << 30;

/// One data directory for the whole test binary (RSA key generation is the
/// slow part): machine `gw-1`, and `old-1`, revoked.
struct Fixture {
    data: DataDir,
    fake_assets: PathBuf,
    scratch: PathBuf,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let root = Path::new(env!("CARGO_TARGET_TMPDIR")).join("image-tests");
        let _ = fs::remove_dir_all(&root);
        fs::create_dir_all(&root).unwrap();
        let data_path = root.join("data");
        bootgate::setup::init(
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
            bootgate::machines::add(&data, &name.parse::<MachineName>().unwrap(), None).unwrap();
        }
        bootgate::machines::revoke(&data, "old-1").unwrap();
        let fake_assets = root.join("fake-assets");
        make_fake_assets(&fake_assets);
        let scratch = root.join("scratch");
        fs::create_dir_all(&scratch).unwrap();
        Fixture {
            data,
            fake_assets,
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

fn make_fake_assets(root: &Path) {
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

fn real_assets() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join(".cache/assets");
    assert!(
        dir.join("ipxe/ipxe-amd64.efi").is_file(),
        "the real firmware files are missing from {}: run scripts/fetch-assets first",
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
        assets: vec![f.fake_assets.clone()],
        server_url: None,
        size: None,
        cache_size: None,
        force: true,
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
    assert!(
        out.status.success(),
        "mcopy {path}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// Copies the boot partition out and runs `fsck.fat -n` on it.
fn fsck_boot_partition(report: &BuildReport) -> String {
    let boot = &report.partitions[0];
    let bytes = fs::read(&report.output).unwrap();
    let part = report.output.with_extension("boot-partition");
    fs::write(
        &part,
        &bytes[boot.start as usize..(boot.start + boot.len) as usize],
    )
    .unwrap();
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
        fingerprint: ca::sha1_fingerprint(&cert_der),
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
    assert_eq!(report.fingerprint, m.fingerprint);
}

fn check_common(report: &BuildReport) {
    let meta = fs::metadata(&report.output).unwrap();
    assert_eq!(meta.mode() & 0o777, 0o600, "images hold a private key");
    assert_eq!(meta.len(), report.size);
    // Reading a multi-GiB sparse file back costs seconds: the hash of the
    // smaller images checks the same code.
    if report.size < GIB {
        assert_eq!(report.sha256, sha256_file(&report.output));
    }
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
        for line in ["arm_64bit=1", "kernel=u-boot.bin", "enable_uart=1"] {
            assert!(config.lines().any(|l| l == line), "{line} in\n{config}");
        }
        // Every device tree config.txt names is on the partition.
        for dtb in config
            .lines()
            .filter_map(|l| l.strip_prefix("device_tree="))
        {
            assert!(report.files.iter().any(|f| f.path == dtb), "{dtb}");
        }
        assert_eq!(config.contains("core_freq=250"), platform == Platform::Rpi3);
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
        assert!(text.contains("TlsCaCertificate"));
        assert!(!text.contains("mmc 0:1"));
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

    let mut missing = options(Platform::Rpi3, "refusals/missing.img");
    let empty = dir.join("empty-assets");
    fs::create_dir_all(&empty).unwrap();
    missing.assets = vec![empty.clone()];
    // Only meaningful where the host has no Raspberry Pi firmware in /usr/lib.
    if !Path::new("/usr/lib/raspi-firmware/start.elf").exists() {
        let err = build_err(&missing);
        let text = err.to_string();
        assert!(matches!(
            err.downcast_ref::<ImageError>(),
            Some(ImageError::MissingAssets(_))
        ));
        assert!(
            text.contains("raspi-firmware/start.elf (Debian package raspi-firmware)"),
            "{text}"
        );
        assert!(
            text.contains(&empty.join("raspi-firmware/start.elf").display().to_string()),
            "{text}"
        );
        assert!(text.contains("/usr/lib/raspi-firmware/start.elf"), "{text}");
    }

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
        ["empty-assets", "existing.img"],
        "nothing else was written"
    );
}

#[test]
fn images_are_reproducible_and_take_the_server_url() {
    let mut a = options(Platform::Rpi3, "repro-a.img");
    a.server_url = Some("https://10.0.2.2:8443/".into());
    let mut b = a.clone();
    b.output = fixture().scratch.join("repro-b.img");
    let (ra, rb) = (build(&a), build(&b));
    assert_eq!(ra.sha256, rb.sha256);
    assert_eq!(ra.server_url, "https://10.0.2.2:8443");
    check_generated(&ra, "https://10.0.2.2:8443");
    let other = build(&options(Platform::Rpi4, "repro-c.img"));
    assert_ne!(other.disk_id, ra.disk_id, "ids differ per platform");
}

#[test]
fn real_firmware_builds_every_platform() {
    let assets = real_assets();
    for platform in Platform::ALL {
        let mut opts = options(platform, &format!("real-{platform}.img"));
        opts.assets = vec![assets.clone()];
        let report = build(&opts);
        check_common(&report);
        fsck_boot_partition(&report);
        check_files(&report);
        for file in &report.files {
            if let Some(from) = &file.from {
                assert!(
                    from.starts_with(&assets),
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
            .arg("--assets")
            .arg(&f.fake_assets)
            .args(extra)
            .output()
            .unwrap()
    };
    let first = build(&[]);
    let stdout = String::from_utf8_lossy(&first.stdout);
    assert!(
        first.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&first.stderr)
    );
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
    let forced = build(&["--json", "--force"]);
    assert!(forced.status.success());
    let json: serde_json::Value = serde_json::from_slice(&forced.stdout).unwrap();
    assert_eq!(json["sha256"].as_str().unwrap(), sha256_file(&out));
    assert_eq!(json["fingerprint"].as_str().unwrap(), m.fingerprint);

    let list = Command::new(bin)
        .args(["image", "platforms"])
        .env("BOOTGATE_ASSETS", &f.fake_assets)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&list.stdout);
    assert!(list.status.success());
    assert!(text.contains("[u-boot-rpi] found"), "{text}");
    assert!(
        text.contains(&f.fake_assets.display().to_string()),
        "{text}"
    );
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
            .arg("--assets")
            .arg(&f.fake_assets);
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
    }
}
