//! U-Boot legacy script images (`boot.scr`): a 64-byte big-endian header
//! (`struct legacy_img_hdr`) followed by a "multi-file" payload holding one
//! file — the script. Byte for byte what
//! `mkimage -A arm64 -O linux -T script -C none -n NAME -d SCRIPT` writes with
//! `SOURCE_DATE_EPOCH=0`, which `mkimage -l` checks.
//!
//! ```text
//! 0  ih_magic 0x27051956   4  ih_hcrc (CRC32 of the header, this field 0)
//! 8  ih_time              12  ih_size (payload bytes)
//! 16 ih_load              20  ih_ep
//! 24 ih_dcrc (CRC32 of the payload)
//! 28 ih_os=5 (Linux)  29 ih_arch=22 (ARM64)  30 ih_type=6 (script)  31 ih_comp=0
//! 32 ih_name[32]
//! 64 payload: u32 BE script length, u32 0 (end of the length list), script
//! ```
//! mkimage pads every file but the last to 4 bytes; a script is the only
//! (last) file, so nothing follows it. bootgate's scripts are themselves a
//! multiple of 4 bytes long (see [`super::rpi::boot_script`]).

use anyhow::{Result, bail};

pub const IH_MAGIC: u32 = 0x2705_1956;
pub const IH_OS_LINUX: u8 = 5;
pub const IH_ARCH_ARM64: u8 = 22;
pub const IH_TYPE_SCRIPT: u8 = 6;
pub const IH_COMP_NONE: u8 = 0;
const HEADER_LEN: usize = 64;
const NAME_LEN: usize = 32;

/// Wraps `script` in a legacy image. The timestamp is 0 so that images are
/// reproducible; `name` (at most 31 bytes) is what `mkimage -l` shows.
pub fn script_image(script: &[u8], name: &str) -> Result<Vec<u8>> {
    if name.len() >= NAME_LEN {
        bail!(
            "U-Boot image name {name:?} is longer than {} bytes",
            NAME_LEN - 1
        );
    }
    let Ok(script_len) = u32::try_from(script.len()) else {
        bail!("the script is too large for a U-Boot image");
    };
    let mut payload = Vec::with_capacity(8 + script.len());
    payload.extend_from_slice(&script_len.to_be_bytes());
    payload.extend_from_slice(&0u32.to_be_bytes());
    payload.extend_from_slice(script);

    let mut header = [0u8; HEADER_LEN];
    header[0..4].copy_from_slice(&IH_MAGIC.to_be_bytes());
    // ih_time (8..12), ih_load (16..20) and ih_ep (20..24) stay 0.
    header[12..16].copy_from_slice(&(payload.len() as u32).to_be_bytes());
    header[24..28].copy_from_slice(&crc32fast::hash(&payload).to_be_bytes());
    header[28] = IH_OS_LINUX;
    header[29] = IH_ARCH_ARM64;
    header[30] = IH_TYPE_SCRIPT;
    header[31] = IH_COMP_NONE;
    header[32..32 + name.len()].copy_from_slice(name.as_bytes());
    let header_crc = crc32fast::hash(&header);
    header[4..8].copy_from_slice(&header_crc.to_be_bytes());

    let mut image = header.to_vec();
    image.extend_from_slice(&payload);
    Ok(image)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_mkimage_output() {
        // SOURCE_DATE_EPOCH=0 mkimage -A arm64 -O linux -T script -C none -n bootgate -d s.txt
        // with s.txt = "echo1" (mkimage 2023.01, Debian bookworm u-boot-tools).
        let expected = hex::decode(concat!(
            "27051956e31ffa1f000000000000000d",
            "00000000000000006463c0dc05160600",
            "626f6f74676174650000000000000000",
            "00000000000000000000000000000000",
            "0000000500000000",
            "6563686f31",
        ))
        .unwrap();
        assert_eq!(script_image(b"echo1", "bootgate").unwrap(), expected);
        assert!(script_image(b"x", &"n".repeat(32)).is_err());
    }
}
