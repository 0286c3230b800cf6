//! EFI signature lists (UEFI spec, `EFI_SIGNATURE_LIST`): the format of the
//! `TlsCaCertificate` variable through which UEFI firmware (and iPXE, which
//! reads it) learns which CAs to trust for HTTPS, and of OVMF's
//! `etc/edk2/https/cacerts` fw_cfg file.
//!
//! ```text
//! EFI_SIGNATURE_LIST  SignatureType (GUID) = EFI_CERT_X509_GUID
//!                     SignatureListSize   u32 LE = 28 + SignatureSize
//!                     SignatureHeaderSize u32 LE = 0
//!                     SignatureSize       u32 LE = 16 + DER length
//! EFI_SIGNATURE_DATA  SignatureOwner (GUID)
//!                     SignatureData = the certificate, DER
//! ```
//! GUIDs are stored mixed-endian, like everywhere in UEFI.

use anyhow::{Result, bail};

use crate::disk::Guid;

/// `EFI_CERT_X509_GUID`: the list holds X.509 certificates (DER).
pub const EFI_CERT_X509_GUID: Guid = Guid::from_u128(0xa5c059a1_94e4_4aa7_87b5_ab155c2bf072);

/// The GUID of the variable vendor iPXE and edk2 read the CA list from
/// (`EFI_TLS_CA_CERTIFICATE_GUID`); the variable is named `TlsCaCertificate`.
pub const TLS_CA_CERTIFICATE_GUID: Guid = Guid::from_u128(0xfd2340d0_3dab_4349_a6c7_3b4f12b48eae);

/// The owner recorded in bootgate's signature lists (informational only).
pub const BOOTGATE_OWNER_GUID: Guid = Guid::from_u128(0xea1a515f_5870_4c52_91d3_92c4d4d04d19);

const LIST_HEADER: usize = 16 + 4 + 4 + 4;
const OWNER: usize = 16;

/// A signature list holding one X.509 certificate.
pub fn x509_signature_list(cert_der: &[u8], owner: Guid) -> Result<Vec<u8>> {
    if cert_der.first() != Some(&0x30) {
        bail!("the CA certificate is not DER (it should start with a SEQUENCE)");
    }
    let signature_size = OWNER + cert_der.len();
    let list_size = LIST_HEADER + signature_size;
    let (Ok(list_size_u32), Ok(signature_size_u32)) =
        (u32::try_from(list_size), u32::try_from(signature_size))
    else {
        bail!("the certificate is too large for an EFI signature list");
    };
    let mut out = Vec::with_capacity(list_size);
    out.extend_from_slice(&EFI_CERT_X509_GUID.to_mixed_endian());
    out.extend_from_slice(&list_size_u32.to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes());
    out.extend_from_slice(&signature_size_u32.to_le_bytes());
    out.extend_from_slice(&owner.to_mixed_endian());
    out.extend_from_slice(cert_der);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_matches_the_uefi_spec() {
        let der = [0x30, 0x03, 0x02, 0x01, 0x05];
        let esl = x509_signature_list(&der, BOOTGATE_OWNER_GUID).unwrap();
        assert_eq!(esl.len(), 28 + 16 + 5);
        // EFI_CERT_X509_GUID as efitools' cert-to-efi-sig-list writes it.
        assert_eq!(hex::encode(&esl[..16]), "a159c0a5e494a74a87b5ab155c2bf072");
        assert_eq!(esl[16..20], 49u32.to_le_bytes());
        assert_eq!(esl[20..24], [0; 4]);
        assert_eq!(esl[24..28], 21u32.to_le_bytes());
        assert_eq!(esl[28..44], BOOTGATE_OWNER_GUID.to_mixed_endian());
        assert_eq!(esl[44..], der);
        assert!(x509_signature_list(b"-----BEGIN", BOOTGATE_OWNER_GUID).is_err());
    }
}
