//! HKDF-SHA256 (RFC 5869) and HMAC-SHA256 helpers, and the key schedule of the sealed format.

use hkdf::Hkdf;
use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::aead::AeadId;
use crate::error::{Error, Result};

/// HKDF / HMAC identifier in the header (HPKE registry: HKDF-SHA256).
pub const KDF_HKDF_SHA256: u16 = 0x0001;

/// HKDF-Expand info for the header MAC key.
pub const LABEL_HEADER_MAC: &[u8] = b"sealdump v1 header mac";
/// HKDF-Expand info for the metadata key.
pub const LABEL_METADATA: &[u8] = b"sealdump v1 metadata";
/// HKDF-Expand info prefix for the payload key; followed by the AEAD id (u16 BE) and the chunk shift (u8).
pub const LABEL_PAYLOAD: &[u8] = b"sealdump v1 payload";

/// One-call HKDF-SHA256: extract with `salt` (empty = none), expand `info` into `okm`.
/// Errors if `okm` is longer than 255 × 32 bytes.
pub fn hkdf_sha256(salt: &[u8], ikm: &[u8], info: &[u8], okm: &mut [u8]) -> Result<()> {
    Hkdf::<Sha256>::new(Some(salt), ikm)
        .expand(info, okm)
        .map_err(|_| Error::KdfOutputTooLong)
}

/// HMAC-SHA256 of the concatenation of `parts`.
pub fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(key).unwrap_or_else(|_| unreachable_hmac());
    for p in parts {
        mac.update(p);
    }
    mac.finalize().into_bytes().into()
}

/// Constant-time HMAC-SHA256 verification.
pub fn hmac_sha256_verify(key: &[u8], parts: &[&[u8]], tag: &[u8]) -> bool {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(key).unwrap_or_else(|_| unreachable_hmac());
    for p in parts {
        mac.update(p);
    }
    mac.verify_slice(tag).is_ok()
}

// HMAC accepts keys of any length, so `new_from_slice` cannot fail; this keeps clippy's unwrap lint honest.
#[cold]
fn unreachable_hmac() -> Hmac<Sha256> {
    <Hmac<Sha256> as KeyInit>::new(&Default::default())
}

/// SHA-256 of `data`.
pub fn sha256(data: &[u8]) -> [u8; 32] {
    Sha256::digest(data).into()
}

/// The three per-dump keys derived from the dump key and dump id (DESIGN §4).
pub(crate) struct DumpKeys {
    pub(crate) header_mac: Zeroizing<[u8; 32]>,
    pub(crate) metadata: Zeroizing<[u8; 32]>,
    pub(crate) payload: Zeroizing<[u8; 32]>,
}

/// PRK = HKDF-Extract(salt = dump_id, DK); then one HKDF-Expand per label.
pub(crate) fn derive_dump_keys(dk: &[u8; 32], dump_id: &[u8; 16], aead: AeadId, chunk_shift: u8) -> DumpKeys {
    let hk = Hkdf::<Sha256>::new(Some(dump_id), dk);
    let mut keys = DumpKeys {
        header_mac: Zeroizing::new([0; 32]),
        metadata: Zeroizing::new([0; 32]),
        payload: Zeroizing::new([0; 32]),
    };
    // 32 bytes is far below HKDF's 8160-byte limit, so these cannot fail.
    let aead_id = aead.id().to_be_bytes();
    let shift = [chunk_shift];
    let _ = hk.expand(LABEL_HEADER_MAC, keys.header_mac.as_mut_slice());
    let _ = hk.expand(LABEL_METADATA, keys.metadata.as_mut_slice());
    let _ = hk.expand_multi_info(&[LABEL_PAYLOAD, &aead_id, &shift], keys.payload.as_mut_slice());
    keys
}
