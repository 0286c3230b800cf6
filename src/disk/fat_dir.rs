//! FAT directory entries: short (8.3) names and the long-name entries that
//! carry anything else, as the FAT specification lays them out (32 bytes
//! each, long-name parts in reverse order before their short entry).

use std::collections::HashSet;

use anyhow::{Result, bail};

/// 2000-01-01 00:00 as a DOS date (time is 0): every timestamp in the volume.
pub(super) const DOS_DATE: u16 = (20 << 9) | (1 << 5) | 1;
pub(super) const ATTR_DIRECTORY: u8 = 0x10;
pub(super) const ATTR_VOLUME_ID: u8 = 0x08;
pub(super) const ATTR_ARCHIVE: u8 = 0x20;
pub(super) const ATTR_LFN: u8 = 0x0f;
pub(super) const ENTRY: usize = 32;

/// Characters long names may not contain (FAT specification).
pub(super) fn validate_long_name(name: &str) -> Result<()> {
    if name.is_empty() || name.encode_utf16().count() > 255 || name == "." || name == ".." {
        bail!("invalid FAT file name {name:?}");
    }
    if let Some(c) = name.chars().find(|&c| c < ' ' || "\"*/:<>?\\|".contains(c)) {
        bail!("FAT file name {name:?} contains {c:?}");
    }
    Ok(())
}

/// Characters a short (8.3) name may hold, besides A-Z and 0-9.
const SFN_SPECIAL: &[u8] = b"!#$%&'()-@^_`{}~";

pub(super) fn sfn_char(b: u8) -> bool {
    b.is_ascii_uppercase() || b.is_ascii_digit() || SFN_SPECIAL.contains(&b)
}

/// The 11-byte short name when `name` is already a valid upper-case 8.3
/// name (then no long name entry is needed).
pub(super) fn exact_short_name(name: &str) -> Option<[u8; 11]> {
    let (base, ext) = match name.split_once('.') {
        Some((b, e)) => (b, e),
        None => (name, ""),
    };
    let valid = |part: &str, max: usize| part.len() <= max && part.bytes().all(sfn_char);
    if base.is_empty()
        || !valid(base, 8)
        || !valid(ext, 3)
        || (name.contains('.') && ext.is_empty())
    {
        return None;
    }
    let mut sfn = [b' '; 11];
    sfn[..base.len()].copy_from_slice(base.as_bytes());
    sfn[8..8 + ext.len()].copy_from_slice(ext.as_bytes());
    Some(sfn)
}

/// A short name for a long name, unique among `taken`: the Windows scheme of
/// up to six characters, `~N`, and the first three of the extension.
pub(super) fn generated_short_name(name: &str, taken: &HashSet<[u8; 11]>) -> [u8; 11] {
    let clean = |s: &str| -> Vec<u8> {
        s.bytes()
            .filter(|&b| b != b' ' && b != b'.')
            .map(|b| {
                let b = b.to_ascii_uppercase();
                if sfn_char(b) { b } else { b'_' }
            })
            .collect()
    };
    let trimmed = name.trim_start_matches('.');
    let (stem, ext) = match trimmed.rsplit_once('.') {
        Some((s, e)) if !s.is_empty() => (clean(s), clean(e)),
        _ => (clean(trimmed), Vec::new()),
    };
    let stem = if stem.is_empty() { b"_".to_vec() } else { stem };
    for n in 1u32.. {
        let tail = format!("~{n}");
        let keep = stem.len().min(8 - tail.len());
        let mut sfn = [b' '; 11];
        sfn[..keep].copy_from_slice(&stem[..keep]);
        sfn[keep..keep + tail.len()].copy_from_slice(tail.as_bytes());
        let ext_len = ext.len().min(3);
        sfn[8..8 + ext_len].copy_from_slice(&ext[..ext_len]);
        if !taken.contains(&sfn) {
            return sfn;
        }
    }
    unreachable!("some numeric tail is free")
}

pub(super) fn lfn_checksum(sfn: &[u8; 11]) -> u8 {
    sfn.iter().fold(0u8, |sum, &b| {
        (sum >> 1).wrapping_add(sum << 7).wrapping_add(b)
    })
}

/// A short (8.3) directory entry.
pub(super) fn short_entry(sfn: &[u8; 11], attr: u8, cluster: u32, size: u32) -> [u8; ENTRY] {
    let mut e = [0u8; ENTRY];
    e[..11].copy_from_slice(sfn);
    e[11] = attr;
    let date = DOS_DATE.to_le_bytes();
    for at in [16, 18, 24] {
        e[at..at + 2].copy_from_slice(&date);
    }
    e[20..22].copy_from_slice(&((cluster >> 16) as u16).to_le_bytes());
    e[26..28].copy_from_slice(&(cluster as u16).to_le_bytes());
    e[28..32].copy_from_slice(&size.to_le_bytes());
    e
}

/// The long name entries for `name`, in on-disk order (last part first).
pub(super) fn long_entries(name: &str, sfn: &[u8; 11]) -> Vec<[u8; ENTRY]> {
    let units: Vec<u16> = name.encode_utf16().collect();
    let parts: Vec<&[u16]> = units.chunks(13).collect();
    let checksum = lfn_checksum(sfn);
    let mut entries = Vec::with_capacity(parts.len());
    for (i, part) in parts.iter().enumerate().rev() {
        let mut chars = [0xffffu16; 13];
        chars[..part.len()].copy_from_slice(part);
        if part.len() < 13 {
            chars[part.len()] = 0;
        }
        let mut e = [0u8; ENTRY];
        e[0] = (i as u8 + 1) | if i == parts.len() - 1 { 0x40 } else { 0 };
        e[11] = ATTR_LFN;
        e[13] = checksum;
        let offsets = (1..11)
            .step_by(2)
            .chain((14..26).step_by(2))
            .chain((28..32).step_by(2));
        for (c, at) in chars.iter().zip(offsets) {
            e[at..at + 2].copy_from_slice(&c.to_le_bytes());
        }
        entries.push(e);
    }
    entries
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_names() {
        assert_eq!(&exact_short_name("BOOTX64.EFI").unwrap(), b"BOOTX64 EFI");
        assert_eq!(&exact_short_name("EFI").unwrap(), b"EFI        ");
        assert!(
            exact_short_name("config.txt").is_none(),
            "lower case needs a long name"
        );
        assert!(exact_short_name("A.B.C").is_none());
        assert!(exact_short_name("TOOLONGNAME").is_none());
        let mut taken = HashSet::new();
        let a = generated_short_name("bcm2837-rpi-3-b.dtb", &taken);
        assert_eq!(&a, b"BCM283~1DTB");
        taken.insert(a);
        assert_eq!(
            &generated_short_name("bcm2837-rpi-3-b-plus.dtb", &taken),
            b"BCM283~2DTB"
        );
        assert_eq!(
            &generated_short_name("autoexec.ipxe", &HashSet::new()),
            b"AUTOEX~1IPX"
        );
        assert_eq!(
            &generated_short_name(".hidden", &HashSet::new()),
            b"HIDDEN~1   "
        );
    }

    #[test]
    fn long_entries_follow_the_spec() {
        let sfn = *b"AUTOEX~1IPX";
        let entries = long_entries("autoexec.ipxe", &sfn);
        assert_eq!(entries.len(), 1);
        let e = entries[0];
        assert_eq!(e[0], 0x41);
        assert_eq!(e[11], ATTR_LFN);
        assert_eq!(e[13], lfn_checksum(&sfn));
        assert_eq!(
            &e[1..11],
            "autoe"
                .encode_utf16()
                .flat_map(u16::to_le_bytes)
                .collect::<Vec<_>>()
        );
        // 13 characters exactly: no terminator, and the rest of the name in entry 2.
        let two = long_entries("0123456789abcd", &sfn);
        assert_eq!((two[0][0], two[1][0]), (0x42, 0x01));
        assert_eq!(&two[0][1..5], &[b'd', 0, 0, 0]);
    }
}
