//! RFC 9180 HPKE base mode, DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, with the header's AEAD — via the `hpke` crate
//! (no allocation: single-shot seal/open in place with a detached tag).

use hpke::aead::{AeadTag, AesGcm256, ChaCha20Poly1305};
use hpke::kdf::HkdfSha256;
use hpke::kem::X25519HkdfSha256;
use hpke::{Deserializable, HpkeError, Kem, OpModeR, OpModeS, Serializable};
use rand_core::CryptoRng;

use crate::aead::{AeadId, TAG_LEN};
use crate::error::{Error, Result};
use crate::secret::{DUMP_KEY_LEN, DumpKey, X25519Secret};

/// HPKE KEM id of DHKEM(X25519, HKDF-SHA256).
pub const KEM_X25519_HKDF_SHA256: u16 = 0x0020;
/// Length of the encapsulated key (the ephemeral X25519 public key).
pub const ENC_LEN: usize = 32;
/// Length of an X25519 stanza body: enc ‖ sealed DK ‖ tag.
pub const WRAPPED_KEY_LEN: usize = ENC_LEN + DUMP_KEY_LEN + TAG_LEN;
/// Prefix of the HPKE `info` for dump-key wrapping; the dump id follows.
pub const INFO_PREFIX: &[u8] = b"sealdump v1";

type KemT = X25519HkdfSha256;

/// HPKE SealBase (single shot, sequence number 0) of `buf` in place; returns (enc, tag).
///
/// The ephemeral key is derived from 32 bytes of `rng` (DeriveKeyPair), so a fixed-output rng reproduces the RFC
/// 9180 vectors.
pub fn seal_in_place<R: CryptoRng>(
    aead: AeadId,
    recipient_public: &[u8; 32],
    info: &[u8],
    aad: &[u8],
    buf: &mut [u8],
    rng: &mut R,
) -> Result<([u8; ENC_LEN], [u8; TAG_LEN])> {
    match aead {
        AeadId::Aes256Gcm => seal_generic::<AesGcm256, R>(recipient_public, info, aad, buf, rng),
        AeadId::ChaCha20Poly1305 => {
            seal_generic::<ChaCha20Poly1305, R>(recipient_public, info, aad, buf, rng)
        }
    }
}

/// HPKE OpenBase (single shot, sequence number 0) of `buf` in place.
pub fn open_in_place(
    aead: AeadId,
    secret: &X25519Secret,
    enc: &[u8],
    info: &[u8],
    aad: &[u8],
    buf: &mut [u8],
    tag: &[u8],
) -> Result<()> {
    match aead {
        AeadId::Aes256Gcm => open_generic::<AesGcm256>(secret, enc, info, aad, buf, tag),
        AeadId::ChaCha20Poly1305 => open_generic::<ChaCha20Poly1305>(secret, enc, info, aad, buf, tag),
    }
}

/// The HPKE `info` for wrapping the dump key of dump `dump_id`: "sealdump v1" ‖ dump_id.
pub fn dump_key_info(dump_id: &[u8; 16]) -> [u8; 27] {
    let mut info = [0u8; 27];
    info[..INFO_PREFIX.len()].copy_from_slice(INFO_PREFIX);
    info[INFO_PREFIX.len()..].copy_from_slice(dump_id);
    info
}

/// Wraps a dump key for one X25519 recipient: body = enc (32) ‖ HPKE ciphertext of DK (32) ‖ tag (16).
pub fn wrap_dump_key<R: CryptoRng>(
    aead: AeadId,
    recipient_public: &[u8; 32],
    dump_id: &[u8; 16],
    dk: &DumpKey,
    rng: &mut R,
) -> Result<[u8; WRAPPED_KEY_LEN]> {
    let mut body = [0u8; WRAPPED_KEY_LEN];
    let (enc_out, rest) = body.split_at_mut(ENC_LEN);
    let (ct, tag_out) = rest.split_at_mut(DUMP_KEY_LEN);
    ct.copy_from_slice(dk.as_bytes());
    let (enc, tag) = seal_in_place(aead, recipient_public, &dump_key_info(dump_id), &[], ct, rng)?;
    enc_out.copy_from_slice(&enc);
    tag_out.copy_from_slice(&tag);
    Ok(body)
}

/// Unwraps an X25519 stanza body made by [`wrap_dump_key`].
pub fn unwrap_dump_key(
    aead: AeadId,
    secret: &X25519Secret,
    dump_id: &[u8; 16],
    body: &[u8],
) -> Result<DumpKey> {
    if body.len() != WRAPPED_KEY_LEN {
        return Err(Error::Unwrap);
    }
    let (enc, rest) = body.split_at(ENC_LEN);
    let (ct, tag) = rest.split_at(DUMP_KEY_LEN);
    let mut plain = zeroize::Zeroizing::new([0u8; DUMP_KEY_LEN]);
    plain.copy_from_slice(ct);
    open_in_place(
        aead,
        secret,
        enc,
        &dump_key_info(dump_id),
        &[],
        plain.as_mut_slice(),
        tag,
    )
    .map_err(|_| Error::Unwrap)?;
    Ok(DumpKey::from_bytes(*plain))
}

fn seal_generic<A: hpke::aead::Aead, R: CryptoRng>(
    recipient_public: &[u8; 32],
    info: &[u8],
    aad: &[u8],
    buf: &mut [u8],
    rng: &mut R,
) -> Result<([u8; ENC_LEN], [u8; TAG_LEN])> {
    let pk = <KemT as Kem>::PublicKey::from_bytes(recipient_public).map_err(|_| Error::Encap)?;
    let (enc, tag) = hpke::single_shot_seal_inout_detached_with_rng::<A, HkdfSha256, KemT>(
        &OpModeS::Base,
        &pk,
        info,
        buf.into(),
        aad,
        rng,
    )
    .map_err(|e| match e {
        HpkeError::EncapError => Error::Encap,
        _ => Error::Encrypt,
    })?;
    let mut enc_out = [0u8; ENC_LEN];
    enc_out.copy_from_slice(&enc.to_bytes());
    let mut tag_out = [0u8; TAG_LEN];
    let tag_bytes = tag.to_bytes();
    if tag_bytes.len() != TAG_LEN {
        return Err(Error::Encrypt);
    }
    tag_out.copy_from_slice(&tag_bytes);
    Ok((enc_out, tag_out))
}

fn open_generic<A: hpke::aead::Aead>(
    secret: &X25519Secret,
    enc: &[u8],
    info: &[u8],
    aad: &[u8],
    buf: &mut [u8],
    tag: &[u8],
) -> Result<()> {
    let sk = <KemT as Kem>::PrivateKey::from_bytes(secret.as_bytes()).map_err(|_| Error::Unwrap)?;
    let enc = <KemT as Kem>::EncappedKey::from_bytes(enc).map_err(|_| Error::Unwrap)?;
    let tag = AeadTag::<A>::from_bytes(tag).map_err(|_| Error::Decrypt)?;
    hpke::single_shot_open_inout_detached::<A, HkdfSha256, KemT>(
        &OpModeR::Base,
        &sk,
        &enc,
        info,
        buf.into(),
        aad,
        &tag,
    )
    .map_err(|e| match e {
        HpkeError::DecapError => Error::Unwrap,
        _ => Error::Decrypt,
    })
}
