//! GUIDs as GPT and UEFI use them: written as text in the usual
//! `8-4-4-4-12` form, stored on disk "mixed-endian" (the first three fields
//! little-endian, the rest as is).

use std::fmt;
use std::str::FromStr;

use anyhow::{Result, bail};

/// A GUID, kept in its textual (big-endian) byte order.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Guid([u8; 16]);

impl Guid {
    /// Builds a GUID from its textual value read as one hex number, so that
    /// constants read like the specification: `0xC12A7328_F81F_11D2_BA4B_00A0C93EC93B`.
    pub const fn from_u128(value: u128) -> Self {
        Self(value.to_be_bytes())
    }

    /// A name-based GUID: 16 bytes of a hash (the caller's choice of hash and
    /// input), marked as an RFC 9562 version 8 ("custom") UUID so it can never
    /// collide with a random (version 4) one.
    pub fn from_hash(bytes: [u8; 16]) -> Self {
        let mut b = bytes;
        b[6] = (b[6] & 0x0f) | 0x80;
        b[8] = (b[8] & 0x3f) | 0x80;
        Self(b)
    }

    /// The 16 bytes in the on-disk order of GPT headers, partition entries and
    /// EFI signature lists.
    pub fn to_mixed_endian(&self) -> [u8; 16] {
        let b = &self.0;
        [
            b[3], b[2], b[1], b[0], b[5], b[4], b[7], b[6], b[8], b[9], b[10], b[11], b[12], b[13],
            b[14], b[15],
        ]
    }

    /// Reads the on-disk (mixed-endian) form.
    pub fn from_mixed_endian(d: [u8; 16]) -> Self {
        Self([
            d[3], d[2], d[1], d[0], d[5], d[4], d[7], d[6], d[8], d[9], d[10], d[11], d[12], d[13],
            d[14], d[15],
        ])
    }
}

impl fmt::Display for Guid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let h = hex::encode(self.0);
        write!(
            f,
            "{}-{}-{}-{}-{}",
            &h[0..8],
            &h[8..12],
            &h[12..16],
            &h[16..20],
            &h[20..32]
        )
    }
}

impl fmt::Debug for Guid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Guid({self})")
    }
}

impl FromStr for Guid {
    type Err = anyhow::Error;

    fn from_str(s: &str) -> Result<Self> {
        let groups: Vec<&str> = s.split('-').collect();
        let lengths: Vec<usize> = groups.iter().map(|g| g.len()).collect();
        if lengths != [8, 4, 4, 4, 12] {
            bail!("invalid GUID {s:?}: expected xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx");
        }
        let mut bytes = [0u8; 16];
        hex::decode_to_slice(groups.concat(), &mut bytes)
            .map_err(|_| anyhow::anyhow!("invalid GUID {s:?}: not hexadecimal"))?;
        Ok(Self(bytes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_and_mixed_endian_forms() {
        let esp: Guid = "c12a7328-f81f-11d2-ba4b-00a0c93ec93b".parse().unwrap();
        assert_eq!(esp, Guid::from_u128(0xC12A7328_F81F_11D2_BA4B_00A0C93EC93B));
        assert_eq!(esp.to_string(), "c12a7328-f81f-11d2-ba4b-00a0c93ec93b");
        // How the ESP type GUID appears in a GPT partition entry.
        assert_eq!(
            hex::encode(esp.to_mixed_endian()),
            "28732ac11ff8d211ba4b00a0c93ec93b"
        );
        assert_eq!(Guid::from_mixed_endian(esp.to_mixed_endian()), esp);
        assert!("c12a7328f81f11d2ba4b00a0c93ec93b".parse::<Guid>().is_err());
        assert!(
            "g12a7328-f81f-11d2-ba4b-00a0c93ec93b"
                .parse::<Guid>()
                .is_err()
        );
    }

    #[test]
    fn hash_guids_are_version_8() {
        let g = Guid::from_hash([0xff; 16]);
        let text = g.to_string();
        assert_eq!(&text[14..15], "8");
        assert!(matches!(&text[19..20], "8" | "9" | "a" | "b"));
    }
}
