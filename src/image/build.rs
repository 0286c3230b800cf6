//! Building one machine's image: resolve (machine identity, CA, server URL,
//! firmware files), then lay out the partitions, fill the boot partition, write
//! the partition table, and hand the result to [`super::output`].
//!
//! Reproducible: the disk GUID, partition GUIDs, MBR signature, FAT volume
//! id and ext4 UUID are derived from the machine's fingerprint and the
//! platform, and file times are fixed, so the same inputs (and the same
//! e2fsprogs, for a cache) give the same bytes and the same block map.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail};
use fscommon::StreamSlice;
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::bootcfg::autoexec::{self, Autoexec};
use crate::ca::{self, PrivateKey};
use crate::config::Config;
use crate::datadir::DataDir;
use crate::datadir::registry::{Origin, Registry};
use crate::disk::{
    self, Extent, FatFile, FatOptions, FatSummary, GptPartition, Guid, Layout, LayoutError,
    MbrPartition, Size, SparseImage, TableKind, Want,
};
use crate::names::Fingerprint;

use super::cache_fs;
use super::error::ImageError;
use super::firmware::{FirmwareSearch, FoundFirmware};
use super::output::{self, Progress};
use super::platform::{AUTOEXEC_PATH, CA_DER_PATH, CA_ESL_PATH, Platform};
use super::{esl, rpi, uboot_script};

/// Boot partition size when `--size` is not given.
pub const DEFAULT_BOOT_SIZE: u64 = 64 * Size::MIB;
/// Smallest boot partition bootgate makes: below this FAT12 would be needed.
pub const MIN_BOOT_SIZE: u64 = 16 * Size::MIB;
/// Smallest cache partition accepted.
pub const MIN_CACHE_SIZE: u64 = Size::MIB;
/// FAT label of the boot partition.
pub const BOOT_LABEL: &str = "BOOTGATE";
/// GPT name of the EFI system partition.
pub const ESP_NAME: &str = "ESP";
/// boot2container's `b2c.cache_device=auto` looks for a file system with this
/// label; the cache partition's GPT name is the same.
pub const CACHE_LABEL: &str = cache_fs::LABEL;

/// Everything `bootgate image build` takes.
#[derive(Debug, Clone)]
pub struct BuildOptions {
    pub machine: String,
    pub platform: Platform,
    pub output: PathBuf,
    /// `--firmware-dir` folders, searched before `$BOOTGATE_FIRMWARE` and `/usr/lib`.
    pub firmware_dirs: Vec<PathBuf>,
    /// Overrides the configuration's public URL.
    pub server_url: Option<String>,
    /// Total image size; the boot partition takes what the cache leaves.
    pub size: Option<Size>,
    /// Adds a boot2container cache partition of this size, formatted ext4.
    pub cache_size: Option<Size>,
    /// Replace an existing output file (and its block map).
    pub force: bool,
    /// Also compute the SHA-256 of the whole image (reads every zero of it).
    pub full_sha256: bool,
}

/// A machine's certificate and key, checked against the registry.
pub struct MachineIdentity {
    pub name: String,
    pub fingerprint: Fingerprint,
    pub cert_der: Vec<u8>,
    pub key_pkcs8_der: Zeroizing<Vec<u8>>,
}

/// Loads an enrolled, unrevoked machine's certificate and key.
pub fn load_identity(data: &DataDir, name: &str) -> Result<MachineIdentity> {
    let registry = Registry::load(data)?;
    let machine = registry.require(name)?;
    if let Some(since) = &machine.revoked_at {
        return Err(ImageError::Revoked {
            machine: name.to_string(),
            since: since.clone(),
        }
        .into());
    }
    let cert_path = data.machine_cert_path(name);
    let key_path = data.machine_key_path(name);
    let cert_pem = std::fs::read_to_string(&cert_path)
        .with_context(|| format!("reading {}", cert_path.display()))?;
    let cert_der =
        ca::der_from_pem(&cert_pem).with_context(|| format!("reading {}", cert_path.display()))?;
    let fingerprint = Fingerprint::of_der(&cert_der);
    if fingerprint != machine.fingerprint {
        bail!(
            "{} holds certificate {fingerprint}, but {name} is enrolled with {}; the data directory is inconsistent",
            cert_path.display(),
            machine.fingerprint
        );
    }
    let key_pem = match std::fs::read_to_string(&key_path) {
        Ok(text) => Zeroizing::new(text),
        Err(err)
            if err.kind() == std::io::ErrorKind::NotFound && machine.origin == Origin::Adopted =>
        {
            bail!(
                "machine {name} was adopted with its own key, which is not in the data directory ({}); an image must carry the key, so put it there (mode 0600) first",
                key_path.display()
            )
        }
        Err(err) => return Err(err).with_context(|| format!("reading {}", key_path.display())),
    };
    let key = PrivateKey::from_pem(&key_pem)
        .with_context(|| format!("reading {}", key_path.display()))?;
    if !ca::key_matches(&cert_der, &key)? {
        bail!(
            "{} does not belong to the certificate in {}",
            key_path.display(),
            cert_path.display()
        );
    }
    Ok(MachineIdentity {
        name: name.to_string(),
        fingerprint,
        cert_der,
        key_pkcs8_der: Zeroizing::new(key.pkcs8_der().to_vec()),
    })
}

/// Where a file of the boot partition comes from.
pub enum Source {
    Generated(Zeroizing<Vec<u8>>),
    Firmware(FoundFirmware),
}

/// One file of the boot partition.
pub struct BootFile {
    /// Path on the FAT file system, `/`-separated.
    pub path: String,
    pub source: Source,
}

impl BootFile {
    fn generated(path: &str, bytes: Vec<u8>) -> Self {
        Self {
            path: path.to_string(),
            source: Source::Generated(Zeroizing::new(bytes)),
        }
    }

    pub fn len(&self) -> u64 {
        match &self.source {
            Source::Generated(bytes) => bytes.len() as u64,
            Source::Firmware(found) => found.len,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The resolved inputs of one image.
pub struct Inputs {
    pub platform: Platform,
    pub identity: MachineIdentity,
    pub ca_der: Vec<u8>,
    /// Checked with [`autoexec::check_server_url`].
    pub server_url: String,
    pub firmware: Vec<FoundFirmware>,
}

/// The files of the boot partition, firmware first, in a fixed order.
pub fn boot_files(inputs: &Inputs) -> Result<Vec<BootFile>> {
    let mut files: Vec<BootFile> = inputs
        .firmware
        .iter()
        .map(|found| BootFile {
            path: found.file.dest.to_string(),
            source: Source::Firmware(found.clone()),
        })
        .collect();
    let id = &inputs.identity;
    let script = autoexec::render(&Autoexec {
        machine: &id.name,
        fingerprint: id.fingerprint.as_str(),
        server_url: &inputs.server_url,
        cert_der: &id.cert_der,
        key_pkcs8_der: &id.key_pkcs8_der,
    });
    files.push(BootFile::generated(
        AUTOEXEC_PATH,
        script.as_bytes().to_vec(),
    ));
    files.push(BootFile::generated(
        CA_ESL_PATH,
        esl::x509_signature_list(&inputs.ca_der, esl::BOOTGATE_OWNER_GUID)?,
    ));
    if inputs.platform.uses_uboot() {
        files.push(BootFile::generated(
            "config.txt",
            rpi::config_txt(inputs.platform).into_bytes(),
        ));
        files.push(BootFile::generated(
            "boot.scr",
            uboot_script::script_image(rpi::boot_script().as_bytes(), "bootgate")?,
        ));
    } else {
        files.push(BootFile::generated(CA_DER_PATH, inputs.ca_der.clone()));
    }
    Ok(files)
}

/// Smallest boot partition that holds `files` with room for FAT overhead.
pub fn min_boot_size(files: &[BootFile]) -> u64 {
    let content: u64 = files
        .iter()
        .map(|f| f.len().div_ceil(4096) * 4096 + 4096)
        .sum();
    let with_overhead = content + content / 20 + 2 * Size::MIB;
    (with_overhead.div_ceil(Size::MIB) * Size::MIB).max(MIN_BOOT_SIZE)
}

/// What a partition is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Boot,
    Cache,
}

#[derive(Debug, Clone)]
pub struct PartitionReport {
    pub number: usize,
    pub role: Role,
    pub start: u64,
    pub len: u64,
    /// GPT partition name, or (MBR) the FAT label / nothing for the cache.
    pub name: Option<String>,
    /// GPT: the partition GUID. MBR: the PARTUUID Linux derives.
    pub uuid: String,
    /// The file system's UUID, for the ext4 cache (the FAT's is its volume id).
    pub fs_uuid: Option<String>,
}

/// An image laid out and filled in memory.
pub struct Assembled {
    pub image: SparseImage,
    pub layout: Layout,
    pub fat: FatSummary,
    /// GPT disk GUID, or MBR disk signature as `0x%08x`.
    pub disk_id: String,
    pub partitions: Vec<PartitionReport>,
}

/// A name-based value tied to this machine and platform.
fn derived(fingerprint: &str, platform: Platform, purpose: &str) -> [u8; 32] {
    let mut h = Sha256::new();
    for part in ["bootgate image v1", fingerprint, platform.name(), purpose] {
        h.update(part.as_bytes());
        h.update([0]);
    }
    h.finalize().into()
}

fn derived_guid(fingerprint: &str, platform: Platform, purpose: &str) -> Guid {
    let d = derived(fingerprint, platform, purpose);
    Guid::from_hash(d[..16].try_into().expect("16 bytes"))
}

fn derived_u32(fingerprint: &str, platform: Platform, purpose: &str) -> u32 {
    let d = derived(fingerprint, platform, purpose);
    u32::from_le_bytes(d[..4].try_into().expect("4 bytes")).max(1)
}

/// Lays out the disk and fills it: FAT boot partition with `files`, optional
/// ext4 cache partition (formatted with a scratch file in `scratch_dir`),
/// partition table.
pub fn assemble(
    platform: Platform,
    fingerprint: &str,
    files: &[BootFile],
    size: Option<Size>,
    cache_size: Option<Size>,
    scratch_dir: &Path,
    progress: &mut dyn Progress,
) -> Result<Assembled> {
    let layout = plan_layout(platform, files, size, cache_size)?;
    let boot = layout.partitions[0];
    let cache = layout.partitions.get(1).copied();

    let mut image = SparseImage::new(layout.disk_size);
    let fat = write_boot_fs(&mut image, platform, fingerprint, boot, files, progress)?;
    let cache_fs_uuid = match cache {
        Some(extent) => Some(
            cache_fs::format(
                &mut image,
                extent,
                derived_guid(fingerprint, platform, "cache file system uuid"),
                derived_guid(fingerprint, platform, "cache file system hash seed"),
                scratch_dir,
            )?
            .uuid
            .to_string(),
        ),
        None => None,
    };
    let table = Table {
        platform,
        fingerprint,
        boot,
        cache,
        cache_fs_uuid,
    };
    let (disk_id, partitions) = match platform.table() {
        TableKind::Gpt => table.write_gpt(&mut image)?,
        TableKind::Mbr => table.write_mbr(&mut image, &fat)?,
    };
    Ok(Assembled {
        image,
        layout,
        fat,
        disk_id,
        partitions,
    })
}

/// The partitions: a boot partition that grows into what is left, and the
/// cache partition when one is asked for.
fn plan_layout(
    platform: Platform,
    files: &[BootFile],
    size: Option<Size>,
    cache_size: Option<Size>,
) -> Result<Layout> {
    if let Some(cache) = cache_size
        && cache.bytes() < MIN_CACHE_SIZE
    {
        bail!(
            "--cache-size {cache} is too small: give at least {}",
            Size(MIN_CACHE_SIZE)
        );
    }
    let min_boot = min_boot_size(files);
    let mut wants = vec![Want::Grow {
        min: min_boot,
        default: DEFAULT_BOOT_SIZE,
    }];
    wants.extend(cache_size.map(|c| Want::Exactly(c.bytes())));
    disk::plan(platform.table(), &wants, size.map(Size::bytes)).map_err(|err| match err {
        LayoutError::TooSmall { needed, given } => ImageError::TooSmall {
            needed,
            given,
            detail: match cache_size {
                Some(cache) => format!(
                    "a boot partition of at least {}, the {cache} cache and the partition table",
                    Size(min_boot)
                ),
                None => format!(
                    "a boot partition of at least {} and the partition table",
                    Size(min_boot)
                ),
            },
        }
        .into(),
        other => anyhow!(other).context("laying out the partitions"),
    })
}

/// Formats the boot partition and copies `files` onto it.
fn write_boot_fs(
    image: &mut SparseImage,
    platform: Platform,
    fingerprint: &str,
    boot: Extent,
    files: &[BootFile],
    progress: &mut dyn Progress,
) -> Result<FatSummary> {
    let fat_options = FatOptions {
        preference: platform.fat_preference(),
        volume_id: derived_u32(fingerprint, platform, "fat volume id"),
        label: BOOT_LABEL.to_string(),
        hidden_sectors: u32::try_from(boot.first_lba()).context("boot partition start")?,
    };
    let slice = StreamSlice::new(image, boot.start, boot.end())?;
    let mut fat_files = Vec::with_capacity(files.len());
    for file in files {
        let reader: Box<dyn Read + '_> = match &file.source {
            Source::Generated(bytes) => Box::new(&bytes[..]),
            Source::Firmware(found) => Box::new(
                File::open(&found.path)
                    .with_context(|| format!("reading {}", found.path.display()))?,
            ),
        };
        fat_files.push(FatFile {
            path: file.path.clone(),
            len: file.len(),
            reader,
        });
    }
    progress.begin("adding files", files.iter().map(BootFile::len).sum());
    let summary = disk::write_fat(slice, &fat_options, fat_files, &mut |n| progress.advance(n))?;
    progress.end();
    Ok(summary)
}

/// What the partition table records: the boot partition, then the cache.
struct Table<'a> {
    platform: Platform,
    fingerprint: &'a str,
    boot: Extent,
    cache: Option<Extent>,
    cache_fs_uuid: Option<String>,
}

impl Table<'_> {
    fn guid(&self, purpose: &str) -> Guid {
        derived_guid(self.fingerprint, self.platform, purpose)
    }

    /// The report of partition `index` (0: boot, 1: cache).
    fn report(&self, index: usize, extent: Extent, name: &str, uuid: String) -> PartitionReport {
        let boot = index == 0;
        PartitionReport {
            number: index + 1,
            role: if boot { Role::Boot } else { Role::Cache },
            start: extent.start,
            len: extent.len,
            name: Some(name.to_string()),
            uuid,
            fs_uuid: if boot {
                None
            } else {
                self.cache_fs_uuid.clone()
            },
        }
    }

    /// Writes a GPT; returns the disk GUID and the partitions.
    fn write_gpt(&self, image: &mut SparseImage) -> Result<(String, Vec<PartitionReport>)> {
        let disk_guid = self.guid("disk guid");
        let mut parts = vec![GptPartition {
            type_guid: disk::types::ESP,
            guid: self.guid("boot partition guid"),
            name: ESP_NAME.to_string(),
            extent: self.boot,
        }];
        if let Some(extent) = self.cache {
            parts.push(GptPartition {
                type_guid: disk::types::LINUX_DATA,
                guid: self.guid("cache partition guid"),
                name: CACHE_LABEL.to_string(),
                extent,
            });
        }
        disk::write_gpt(image, disk_guid, &parts)?;
        let reports = parts
            .iter()
            .enumerate()
            .map(|(i, p)| self.report(i, p.extent, &p.name, p.guid.to_string()))
            .collect();
        Ok((disk_guid.to_string(), reports))
    }

    /// Writes an MBR; returns the disk signature and the partitions.
    fn write_mbr(
        &self,
        image: &mut SparseImage,
        fat: &FatSummary,
    ) -> Result<(String, Vec<PartitionReport>)> {
        let signature = derived_u32(self.fingerprint, self.platform, "mbr signature");
        let mut parts = vec![MbrPartition {
            kind: disk::mbr_type_for(fat.fat_type),
            bootable: true,
            extent: self.boot,
        }];
        if let Some(extent) = self.cache {
            parts.push(MbrPartition {
                kind: 0x83,
                bootable: false,
                extent,
            });
        }
        disk::write_mbr(image, signature, &parts)?;
        let reports = parts
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let name = if i == 0 { BOOT_LABEL } else { CACHE_LABEL };
                self.report(i, p.extent, name, format!("{signature:08x}-{:02x}", i + 1))
            })
            .collect();
        Ok((format!("0x{signature:08x}"), reports))
    }
}

/// A file as it went onto the boot partition.
#[derive(Debug, Clone)]
pub struct FileReport {
    pub path: String,
    pub len: u64,
    /// The firmware file it was copied from; `None` when bootgate made it.
    pub from: Option<PathBuf>,
}

/// What `build` made.
#[derive(Debug, Clone)]
pub struct BuildReport {
    pub output: PathBuf,
    pub platform: Platform,
    pub machine: String,
    pub fingerprint: Fingerprint,
    pub server_url: String,
    pub size: u64,
    /// Bytes actually holding data (the rest are holes in the file).
    pub data_bytes: u64,
    /// Bytes in the blocks the block map lists (data, and zeros that matter).
    pub mapped_bytes: u64,
    /// SHA-256 of the whole image, if [`BuildOptions::full_sha256`].
    pub sha256: Option<String>,
    /// `<output>.bmap`, and its `BmapFileChecksum` (which, with the size,
    /// identifies the image).
    pub bmap: PathBuf,
    pub bmap_sha256: String,
    pub table: TableKind,
    pub disk_id: String,
    pub fat: FatSummary,
    pub partitions: Vec<PartitionReport>,
    pub files: Vec<FileReport>,
    /// Things the user should know (printed on stderr by the CLI).
    pub warnings: Vec<String>,
}

impl BuildReport {
    pub fn cache(&self) -> Option<&PartitionReport> {
        self.partitions.iter().find(|p| p.role == Role::Cache)
    }
}

/// Resolves everything `opts` names (refusing bad input before writing
/// anything): the machine must be enrolled and not revoked, the output must
/// not exist unless `force`, every firmware file must be found.
pub fn resolve(data: &DataDir, opts: &BuildOptions) -> Result<Inputs> {
    output::check_output(&opts.output, opts.force)?;
    let data = DataDir::open(data.root())?;
    let identity = load_identity(&data, &opts.machine)?;
    let ca_path = data.ca_cert_path();
    let ca_pem = std::fs::read_to_string(&ca_path)
        .with_context(|| format!("reading {}", ca_path.display()))?;
    let ca_der =
        ca::der_from_pem(&ca_pem).with_context(|| format!("reading {}", ca_path.display()))?;
    let server_url = match &opts.server_url {
        Some(url) => autoexec::check_server_url(url)?,
        None => autoexec::check_server_url(&Config::load(&data)?.public_url())
            .context("the configuration's public URL cannot be used; pass --server-url")?,
    };
    let firmware = FirmwareSearch::new(&opts.firmware_dirs).resolve(opts.platform)?;
    Ok(Inputs {
        platform: opts.platform,
        identity,
        ca_der,
        server_url,
        firmware,
    })
}

/// The boot script the server would send `machine` (its own, its
/// profile's, or the default one), when it asks boot2container to search for
/// its cache (`b2c.cache_device=auto` or `reset`): then an image without a
/// cache partition would have its first disk repartitioned.
fn cache_search_warning(data: &DataDir, machine: &str) -> Option<String> {
    let registry = Registry::load(data).ok()?;
    let path = crate::server::boot_script_of(data, registry.get(machine)?)?;
    let script = std::fs::read_to_string(&path).ok()?;
    let mode = ["auto", "reset"].into_iter().find(|mode| {
        script
            .split_whitespace()
            .any(|word| word == format!("b2c.cache_device={mode}"))
    })?;
    Some(format!(
        "{} sets b2c.cache_device={mode}, but this image has no cache partition: boot2container will repartition and format the first disk it finds (on a Raspberry Pi, this card); add --cache-size SIZE",
        path.display()
    ))
}

/// Builds the image `opts` describes and writes it (mode 0600, atomically).
pub fn build(
    data: &DataDir,
    opts: &BuildOptions,
    progress: &mut dyn Progress,
) -> Result<BuildReport> {
    let inputs = resolve(data, opts)?;
    let files = boot_files(&inputs)?;
    let fingerprint = inputs.identity.fingerprint.clone();
    let warnings = match opts.cache_size {
        Some(_) => Vec::new(),
        None => cache_search_warning(data, &inputs.identity.name)
            .into_iter()
            .collect(),
    };
    let assembled = assemble(
        opts.platform,
        fingerprint.as_str(),
        &files,
        opts.size,
        opts.cache_size,
        crate::fsutil::parent_of(&opts.output),
        progress,
    )
    .map_err(|err| output::explain_full(err, crate::fsutil::parent_of(&opts.output), None))?;
    let written = output::write_image(
        &assembled.image,
        &opts.output,
        opts.force,
        opts.full_sha256,
        progress,
    )?;
    Ok(BuildReport {
        output: opts.output.clone(),
        platform: opts.platform,
        machine: inputs.identity.name.clone(),
        fingerprint,
        server_url: inputs.server_url.clone(),
        size: written.len,
        data_bytes: assembled.image.stored_bytes(),
        mapped_bytes: written.bmap.mapped_bytes,
        sha256: written.sha256,
        bmap: written.bmap_path,
        bmap_sha256: written.bmap.checksum,
        table: assembled.layout.table,
        disk_id: assembled.disk_id,
        fat: assembled.fat,
        partitions: assembled.partitions,
        files: files
            .iter()
            .map(|f| FileReport {
                path: f.path.clone(),
                len: f.len(),
                from: match &f.source {
                    Source::Firmware(found) => Some(found.path.clone()),
                    Source::Generated(_) => None,
                },
            })
            .collect(),
        warnings,
    })
}
