//! How long `bootgate image build` takes per image, per platform.
//!
//! ```text
//! cargo run --release --example image_bench -- [RUNS] [FIRMWARE_DIR]
//! ```
//! Makes a throw-away data directory with one machine, then builds each
//! platform's image RUNS times (default 20) into a temporary folder, from
//! FIRMWARE_DIR (default: `.cache/firmware`, filled by `scripts/fetch-firmware`).
//! Also times one image with an 8 GiB cache partition (formatted ext4 by
//! mke2fs; the image's holes are not hashed unless asked). The goal is well
//! under a second per image.
//! With `BOOTGATE_BENCH_KEEP=DIR`, the last image of each platform is kept in
//! DIR (e.g. to try it in QEMU), built for `--server-url $BOOTGATE_BENCH_URL`
//! when that is set.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use bootgate::datadir::DataDir;
use bootgate::disk::Size;
use bootgate::image::{BuildOptions, Platform, Silent};
use bootgate::manage::init::{CaSource, InitOptions, ServerCertSource};

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let runs: usize = args.next().map(|a| a.parse()).transpose()?.unwrap_or(20);
    let firmware = args
        .next()
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".cache/firmware"));
    if !firmware.join("ipxe").is_dir() {
        anyhow::bail!(
            "no firmware under {}: run scripts/fetch-firmware or pass a firmware folder",
            firmware.display()
        );
    }

    let tmp = tempfile::tempdir()?;
    let data_path = tmp.path().join("data");
    bootgate::manage::init::create(
        &data_path,
        &InitOptions {
            server_names: vec!["boot.example.com".into()],
            listen: "0.0.0.0:8443".parse()?,
            ca: CaSource::Generate,
            server_cert: ServerCertSource::Issue,
        },
    )?;
    let data = DataDir::open(&data_path)?;
    bootgate::manage::enrollment::add(&data, &"bench-1".parse()?, None)?;

    let keep = std::env::var_os("BOOTGATE_BENCH_KEEP").map(PathBuf::from);
    let out_dir = keep.clone().unwrap_or_else(|| tmp.path().to_path_buf());
    let server_url = std::env::var("BOOTGATE_BENCH_URL").ok();
    let options = |platform: Platform, cache: Option<Size>| BuildOptions {
        machine: "bench-1".into(),
        platform,
        output: out_dir.join(format!("{platform}.img")),
        firmware_dirs: vec![firmware.clone()],
        server_url: server_url.clone(),
        size: None,
        cache_size: cache,
        force: true,
        full_sha256: false,
    };

    println!(
        "{runs} builds per platform, firmware from {}",
        firmware.display()
    );
    println!(
        "{:<11} {:>9} {:>9} {:>9} {:>10}",
        "platform", "min ms", "median", "mean", "image"
    );
    for platform in Platform::ALL {
        let opts = options(platform, None);
        let mut times: Vec<Duration> = Vec::with_capacity(runs);
        let mut size = 0;
        for _ in 0..runs {
            let start = Instant::now();
            let report = bootgate::image::build(&data, &opts, &mut Silent)?;
            times.push(start.elapsed());
            size = report.size;
        }
        times.sort();
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        let mean = times.iter().map(|&d| ms(d)).sum::<f64>() / times.len() as f64;
        println!(
            "{:<11} {:>9.1} {:>9.1} {:>9.1} {:>10}",
            platform.name(),
            ms(times[0]),
            ms(times[times.len() / 2]),
            mean,
            Size(size).to_string()
        );
    }

    let mut opts = options(Platform::X86_64Efi, Some(Size(8 * Size::GIB)));
    opts.output = tmp.path().join("cache.img");
    let start = Instant::now();
    let report = bootgate::image::build(&data, &opts, &mut Silent)?;
    println!(
        "x86_64-efi with an 8 GiB cache: {:.0} ms ({} image, {} of data, {} mapped)",
        start.elapsed().as_secs_f64() * 1000.0,
        Size(report.size),
        Size(report.data_bytes),
        Size(report.mapped_bytes)
    );
    Ok(())
}
