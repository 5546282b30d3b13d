//! The two AEADs of the sealed format, behind one runtime-selected type.
//!
//! Ids are the HPKE registry's (RFC 9180 §7.3), so the header's AEAD id also names the HPKE suite of the X25519
//! stanzas. Encryption is in place with a detached tag (`AeadInOut::encrypt_inout_detached`), so no allocation.

use aes_gcm::Aes256Gcm;
use aes_gcm::aead::{AeadInOut, KeyInit};
use chacha20poly1305::ChaCha20Poly1305;
use zeroize::ZeroizeOnDrop;

use crate::error::{Error, Result};

/// Length of every AEAD tag used here.
pub const TAG_LEN: usize = 16;
/// Length of every AEAD nonce used here.
pub const NONCE_LEN: usize = 12;
/// Length of every AEAD key used here.
pub const KEY_LEN: usize = 32;

/// AEAD identifiers (HPKE registry values).
#[repr(u16)]
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, Default)]
pub enum AeadId {
    /// AES-256-GCM; fast where AES instructions exist.
    Aes256Gcm = 0x0002,
    /// ChaCha20-Poly1305; the default, fast in software (no SIMD at panic time).
    #[default]
    ChaCha20Poly1305 = 0x0003,
}

impl AeadId {
    /// The registry value.
    pub const fn id(self) -> u16 {
        self as u16
    }

    /// Human-readable name, as used in provisioning files.
    pub const fn name(self) -> &'static str {
        match self {
            AeadId::Aes256Gcm => "aes-256-gcm",
            AeadId::ChaCha20Poly1305 => "chacha20-poly1305",
        }
    }

    /// Parses [`AeadId::name`] back.
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "aes-256-gcm" => Some(AeadId::Aes256Gcm),
            "chacha20-poly1305" => Some(AeadId::ChaCha20Poly1305),
            _ => None,
        }
    }
}

impl TryFrom<u16> for AeadId {
    type Error = Error;

    fn try_from(value: u16) -> Result<Self> {
        match value {
            0x0002 => Ok(AeadId::Aes256Gcm),
            0x0003 => Ok(AeadId::ChaCha20Poly1305),
            other => Err(Error::UnsupportedAead(other)),
        }
    }
}

impl core::fmt::Display for AeadId {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.name())
    }
}

/// A keyed AEAD instance; the key schedule is wiped on drop.
pub struct AeadCipher(Inner);

// No allocator to box the larger AES key schedule; one instance per dump, so the size is irrelevant.
#[allow(clippy::large_enum_variant)]
enum Inner {
    Aes(Aes256Gcm),
    ChaCha(ChaCha20Poly1305),
}

impl ZeroizeOnDrop for AeadCipher {}

impl core::fmt::Debug for AeadCipher {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_tuple("AeadCipher").field(&self.id()).finish()
    }
}

impl AeadCipher {
    /// Keys an AEAD.
    pub fn new(id: AeadId, key: &[u8; KEY_LEN]) -> Self {
        match id {
            AeadId::Aes256Gcm => AeadCipher(Inner::Aes(Aes256Gcm::new(key.into()))),
            AeadId::ChaCha20Poly1305 => AeadCipher(Inner::ChaCha(ChaCha20Poly1305::new(key.into()))),
        }
    }

    /// Which AEAD this is.
    pub fn id(&self) -> AeadId {
        match self.0 {
            Inner::Aes(_) => AeadId::Aes256Gcm,
            Inner::ChaCha(_) => AeadId::ChaCha20Poly1305,
        }
    }

    /// Encrypts `buf` in place and returns the tag. `nonce` must be 12 bytes.
    pub fn encrypt_in_place_detached(
        &self,
        nonce: &[u8],
        aad: &[u8],
        buf: &mut [u8],
    ) -> Result<[u8; TAG_LEN]> {
        let nonce: &[u8; NONCE_LEN] = nonce.try_into().map_err(|_| Error::NonceLength)?;
        let tag = match &self.0 {
            Inner::Aes(c) => c.encrypt_inout_detached(nonce.into(), aad, buf.into()),
            Inner::ChaCha(c) => c.encrypt_inout_detached(nonce.into(), aad, buf.into()),
        }
        .map_err(|_| Error::Encrypt)?;
        Ok(tag.into())
    }

    /// Checks the tag and decrypts `buf` in place. On failure `buf` is left unchanged (the tag is checked first).
    pub fn decrypt_in_place_detached(
        &self,
        nonce: &[u8],
        aad: &[u8],
        buf: &mut [u8],
        tag: &[u8],
    ) -> Result<()> {
        let nonce: &[u8; NONCE_LEN] = nonce.try_into().map_err(|_| Error::NonceLength)?;
        let tag: &[u8; TAG_LEN] = tag.try_into().map_err(|_| Error::Decrypt)?;
        match &self.0 {
            Inner::Aes(c) => c.decrypt_inout_detached(nonce.into(), aad, buf.into(), tag.into()),
            Inner::ChaCha(c) => c.decrypt_inout_detached(nonce.into(), aad, buf.into(), tag.into()),
        }
        .map_err(|_| Error::Decrypt)
    }
}
