//! The platforms bootgate builds images for, as a table: partition table,
//! file system, the firmware files each needs (where they come from and where
//! they go), and the files bootgate generates.

use std::fmt;
use std::str::FromStr;

use crate::disk::{FatPreference, TableKind};

use super::error::ImageError;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Platform {
    X86_64Efi,
    Arm64Efi,
    Rpi3,
    Rpi4,
}

/// A firmware file taken from the distribution.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FirmwareFile {
    /// Path under a firmware folder (laid out like `/usr/lib`); a first
    /// component ending in `*` matches the newest such folder
    /// (`linux-image-*` → `linux-image-6.12.57+deb13-arm64`).
    pub source: &'static str,
    /// The Debian package that ships it.
    pub package: &'static str,
    /// Where it goes on the boot partition.
    pub dest: &'static str,
}

/// A file bootgate writes itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Generated {
    pub dest: &'static str,
    pub what: &'static str,
}

const fn firmware(source: &'static str, package: &'static str, dest: &'static str) -> FirmwareFile {
    FirmwareFile {
        source,
        package,
        dest,
    }
}

/// Where iPXE goes on U-Boot images: outside `EFI/BOOT/`, because U-Boot's EFI
/// boot manager would start `EFI/BOOT/BOOTAA64.EFI` before `boot.scr` could set
/// the CA variable.
pub const UBOOT_IPXE_PATH: &str = "efi/tools/ipxe.efi";
/// The CA as an EFI signature list, at the root of every image.
pub const CA_ESL_PATH: &str = "ca.esl";
/// The CA certificate, DER, for firmware setup screens that enroll a file.
pub const CA_DER_PATH: &str = "ca.cer";
pub const AUTOEXEC_PATH: &str = "autoexec.ipxe";

const IPXE: &str = "ipxe";
const UBOOT: &str = "u-boot-rpi";
const RASPI: &str = "raspi-firmware";
const LINUX: &str = "linux-image-arm64";

/// A Raspberry Pi device tree from the Linux package, under its own name at
/// the root of the boot partition.
macro_rules! broadcom_dtb {
    ($name:literal) => {
        firmware(concat!("linux-image-*/broadcom/", $name), LINUX, $name)
    };
}

const X86_64_FIRMWARE: &[FirmwareFile] = &[firmware(
    "ipxe/ipxe-amd64.efi",
    IPXE,
    "EFI/BOOT/BOOTX64.EFI",
)];
const ARM64_FIRMWARE: &[FirmwareFile] = &[firmware(
    "ipxe/ipxe-arm64.efi",
    IPXE,
    "EFI/BOOT/BOOTAA64.EFI",
)];
const RPI3_FIRMWARE: &[FirmwareFile] = &[
    firmware("raspi-firmware/bootcode.bin", RASPI, "bootcode.bin"),
    firmware("raspi-firmware/start.elf", RASPI, "start.elf"),
    firmware("raspi-firmware/fixup.dat", RASPI, "fixup.dat"),
    firmware("u-boot/rpi_arm64/u-boot.bin", UBOOT, "u-boot.bin"),
    broadcom_dtb!("bcm2837-rpi-3-b.dtb"),
    broadcom_dtb!("bcm2837-rpi-3-b-plus.dtb"),
    firmware("ipxe/ipxe-arm64.efi", IPXE, UBOOT_IPXE_PATH),
];
const RPI4_FIRMWARE: &[FirmwareFile] = &[
    firmware("raspi-firmware/start4.elf", RASPI, "start4.elf"),
    firmware("raspi-firmware/fixup4.dat", RASPI, "fixup4.dat"),
    firmware("u-boot/rpi_arm64/u-boot.bin", UBOOT, "u-boot.bin"),
    broadcom_dtb!("bcm2711-rpi-4-b.dtb"),
    broadcom_dtb!("bcm2711-rpi-400.dtb"),
    broadcom_dtb!("bcm2711-rpi-cm4-io.dtb"),
    firmware("ipxe/ipxe-arm64.efi", IPXE, UBOOT_IPXE_PATH),
];

/// Generated on every platform.
const AUTOEXEC_GENERATED: Generated = Generated {
    dest: AUTOEXEC_PATH,
    what: "iPXE start-up script with the machine's certificate and key",
};
const CA_ESL_GENERATED: Generated = Generated {
    dest: CA_ESL_PATH,
    what: "the CA as an EFI signature list, for the TlsCaCertificate variable",
};
const EFI_GENERATED: &[Generated] = &[
    AUTOEXEC_GENERATED,
    CA_ESL_GENERATED,
    Generated {
        dest: CA_DER_PATH,
        what: "the CA certificate (DER), for firmware setup screens",
    },
];
const RPI_GENERATED: &[Generated] = &[
    Generated {
        dest: "config.txt",
        what: "Raspberry Pi firmware settings: 64-bit, start U-Boot, UART, device tree",
    },
    Generated {
        dest: "boot.scr",
        what: "U-Boot script: set TlsCaCertificate from ca.esl, start iPXE",
    },
    AUTOEXEC_GENERATED,
    CA_ESL_GENERATED,
];

impl Platform {
    pub const ALL: [Platform; 4] = [
        Platform::X86_64Efi,
        Platform::Arm64Efi,
        Platform::Rpi3,
        Platform::Rpi4,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Platform::X86_64Efi => "x86_64-efi",
            Platform::Arm64Efi => "arm64-efi",
            Platform::Rpi3 => "rpi3",
            Platform::Rpi4 => "rpi4",
        }
    }

    pub fn description(self) -> &'static str {
        match self {
            Platform::X86_64Efi => "PCs and VMs with x86-64 UEFI firmware (USB stick or disk)",
            Platform::Arm64Efi => "arm64 machines with UEFI firmware (servers, AAVMF/QEMU virt)",
            Platform::Rpi3 => "Raspberry Pi 3 Model B and B+ (SD card), via U-Boot",
            Platform::Rpi4 => "Raspberry Pi 4 Model B, Pi 400, CM4 (SD card), via U-Boot",
        }
    }

    pub fn table(self) -> TableKind {
        match self {
            Platform::X86_64Efi | Platform::Arm64Efi => TableKind::Gpt,
            Platform::Rpi3 | Platform::Rpi4 => TableKind::Mbr,
        }
    }

    pub fn fat_preference(self) -> FatPreference {
        match self {
            Platform::X86_64Efi | Platform::Arm64Efi => FatPreference::Fat32,
            Platform::Rpi3 | Platform::Rpi4 => FatPreference::Fat16,
        }
    }

    /// True for the Raspberry Pi platforms (U-Boot runs `boot.scr`).
    pub fn uses_uboot(self) -> bool {
        matches!(self, Platform::Rpi3 | Platform::Rpi4)
    }

    /// The firmware files this platform's images carry.
    pub fn firmware(self) -> &'static [FirmwareFile] {
        match self {
            Platform::X86_64Efi => X86_64_FIRMWARE,
            Platform::Arm64Efi => ARM64_FIRMWARE,
            Platform::Rpi3 => RPI3_FIRMWARE,
            Platform::Rpi4 => RPI4_FIRMWARE,
        }
    }

    pub fn generated(self) -> &'static [Generated] {
        if self.uses_uboot() {
            RPI_GENERATED
        } else {
            EFI_GENERATED
        }
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Platform {
    type Err = ImageError;

    fn from_str(s: &str) -> Result<Self, ImageError> {
        Platform::ALL
            .into_iter()
            .find(|p| p.name() == s)
            .ok_or_else(|| ImageError::UnknownPlatform {
                name: s.to_string(),
                known: Platform::ALL.map(Platform::name).join(", "),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_unknown_ones_list_the_known() {
        for p in Platform::ALL {
            assert_eq!(p.name().parse::<Platform>().unwrap(), p);
        }
        let err = "rpi5".parse::<Platform>().unwrap_err().to_string();
        assert!(err.contains("x86_64-efi, arm64-efi, rpi3, rpi4"), "{err}");
    }

    #[test]
    fn uboot_images_keep_ipxe_out_of_the_removable_path() {
        for p in Platform::ALL {
            let dests: Vec<&str> = p.firmware().iter().map(|a| a.dest).collect();
            let removable = dests.iter().any(|d| d.starts_with("EFI/BOOT/"));
            assert_eq!(removable, !p.uses_uboot(), "{p}");
            let mut unique = dests.clone();
            unique.extend(p.generated().iter().map(|g| g.dest));
            let n = unique.len();
            unique.sort_unstable();
            unique.dedup();
            assert_eq!(unique.len(), n, "{p}: two files with the same destination");
        }
    }
}
