//! What the Raspberry Pi images add on top of the firmware files: the
//! firmware's `config.txt` and U-Boot's `boot.scr` script text.
//!
//! Boot chain: boot ROM → `bootcode.bin` (Pi 3; the Pi 4 has it in EEPROM) →
//! `start*.elf` reads `config.txt`, loads the board's device tree and
//! `u-boot.bin` (Debian's `rpi_arm64` build, one binary for the Pi 3 and 4: it
//! takes the board's device tree from the firmware) → U-Boot's boot flow finds
//! `boot.scr` → the script puts the CA into the `TlsCaCertificate` UEFI
//! variable and starts iPXE with `bootefi` → iPXE runs `autoexec.ipxe`.

use super::esl::TLS_CA_CERTIFICATE_GUID;
use super::platform::{CA_ESL_PATH, Platform, UBOOT_IPXE_PATH};

/// `config.txt` for the Raspberry Pi firmware.
///
/// Debian ships device trees under their upstream names, which the firmware
/// would not pick by itself (it looks for `bcm2710-rpi-3-b-plus.dtb` and the
/// like), hence `device_tree=` per board, selected with the firmware's
/// `[pi3]`/`[pi3+]`/`[pi4]`... filters (later sections override earlier ones).
pub fn config_txt(platform: Platform) -> String {
    let common = "\
# Raspberry Pi firmware settings, written by bootgate.
# The firmware starts U-Boot in 64-bit mode; U-Boot runs boot.scr, which
# starts iPXE. Serial console on the GPIO UART (pins 8/10), 115200 baud.
arm_64bit=1
kernel=u-boot.bin
enable_uart=1
";
    let boards = match platform {
        Platform::Rpi3 => {
            "\
# The mini UART's clock follows the core clock: pin it for a stable console.
core_freq=250

# Device trees, upstream names as Debian ships them.
[pi3]
device_tree=bcm2837-rpi-3-b.dtb
[pi3+]
device_tree=bcm2837-rpi-3-b-plus.dtb
[all]
"
        }
        Platform::Rpi4 => {
            "\
# Device trees, upstream names as Debian ships them.
[pi4]
device_tree=bcm2711-rpi-4-b.dtb
[pi400]
device_tree=bcm2711-rpi-400.dtb
[cm4]
device_tree=bcm2711-rpi-cm4-io.dtb
[all]
"
        }
        Platform::X86_64Efi | Platform::Arm64Efi => "",
    };
    format!("{common}\n{boards}")
}

/// The U-Boot (hush) script in `boot.scr`, padded with newlines to a multiple
/// of 4 bytes.
///
/// - The partition comes from the variables U-Boot's boot flow sets before it
///   runs a script (`devtype`, `devnum`, `distro_bootpart`), never a
///   hard-coded `mmc 0:1`, so the same image boots from an SD card, USB, or a
///   virtio disk under QEMU.
/// - Files are loaded at `${kernel_addr_r}`, away from `${scriptaddr}` where
///   this script itself sits (on `qemu_arm64`, `loadaddr` == `scriptaddr`).
/// - `setenv -e -i addr:size` (U-Boot 2025.01) takes hex numbers, which is
///   how `${kernel_addr_r}` and `${filesize}` are written.
/// - `bootefi ADDR` without `:size`: U-Boot then starts the image it just
///   loaded with the file's device path, so iPXE finds `autoexec.ipxe` on the
///   same partition (with `ADDR:size` it drops the path: seen under QEMU).
/// - iPXE gets U-Boot's own device tree (`${fdtcontroladdr}`), the one the
///   firmware loaded and patched.
/// - Every failure is announced with `echo`; nothing falls through silently.
pub fn boot_script() -> String {
    let guid = TLS_CA_CERTIFICATE_GUID;
    let mut script = format!(
        r#"# bootgate boot script: trust the bootgate CA, then start iPXE.
# Written by bootgate; iPXE then runs autoexec.ipxe from this partition.
setenv bootgate_part "${{devtype}} ${{devnum}}:${{distro_bootpart}}"
echo "bootgate: boot partition ${{bootgate_part}}"
if load ${{devtype}} ${{devnum}}:${{distro_bootpart}} ${{kernel_addr_r}} {CA_ESL_PATH}; then
  if setenv -e -guid {guid} -bs -rt -i ${{kernel_addr_r}}:${{filesize}} TlsCaCertificate; then
    echo "bootgate: CA installed in TlsCaCertificate"
    if load ${{devtype}} ${{devnum}}:${{distro_bootpart}} ${{kernel_addr_r}} {UBOOT_IPXE_PATH}; then
      echo "bootgate: starting iPXE"
      bootefi ${{kernel_addr_r}} ${{fdtcontroladdr}}
      echo "bootgate: ERROR: iPXE returned or could not start"
    else
      echo "bootgate: ERROR: cannot read {UBOOT_IPXE_PATH} from ${{bootgate_part}}"
    fi
  else
    echo "bootgate: ERROR: cannot set the TlsCaCertificate EFI variable (U-Boot without setenv -e?); iPXE would refuse the server"
  fi
else
  echo "bootgate: ERROR: cannot read {CA_ESL_PATH} from ${{bootgate_part}}"
fi
echo "bootgate: boot failed, see the messages above"
"#
    );
    while !script.len().is_multiple_of(4) {
        script.push('\n');
    }
    script
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_txt_per_board() {
        let pi3 = config_txt(Platform::Rpi3);
        for line in [
            "arm_64bit=1",
            "kernel=u-boot.bin",
            "enable_uart=1",
            "core_freq=250",
            "device_tree=bcm2837-rpi-3-b-plus.dtb",
        ] {
            assert!(pi3.lines().any(|l| l == line), "{line}");
        }
        let pi4 = config_txt(Platform::Rpi4);
        assert!(pi4.lines().any(|l| l == "device_tree=bcm2711-rpi-4-b.dtb"));
        assert!(!pi4.contains("core_freq"));
        assert!(pi4.ends_with("[all]\n"));
    }

    #[test]
    fn boot_script_uses_the_boot_flow_partition() {
        let script = boot_script();
        assert_eq!(script.len() % 4, 0);
        assert!(!script.contains("mmc 0:1"));
        assert!(script.contains(
            "setenv -e -guid fd2340d0-3dab-4349-a6c7-3b4f12b48eae -bs -rt -i ${kernel_addr_r}:${filesize} TlsCaCertificate"
        ));
        assert!(script.contains(
            "load ${devtype} ${devnum}:${distro_bootpart} ${kernel_addr_r} efi/tools/ipxe.efi"
        ));
        // Without `:size`: with it, U-Boot forgets the file's device path and
        // iPXE could not find autoexec.ipxe next to itself.
        assert!(script.contains("bootefi ${kernel_addr_r} ${fdtcontroladdr}\n"));
        let opens = script
            .lines()
            .filter(|l| l.trim_start().starts_with("if "))
            .count();
        let closes = script.lines().filter(|l| l.trim() == "fi").count();
        assert_eq!(opens, closes);
    }
}
