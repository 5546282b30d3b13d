//! Secret key types (wiped on drop, never printed) and key-id helpers.

use rand_core::CryptoRng;
use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::kdf::sha256;

/// Length of a dump key.
pub const DUMP_KEY_LEN: usize = 32;
/// Length of a key id.
pub const KEY_ID_LEN: usize = 8;
/// DER prefix of an X25519 SubjectPublicKeyInfo (RFC 8410): SEQUENCE { SEQUENCE { OID 1.3.101.110 }, BIT STRING }.
pub const X25519_SPKI_PREFIX: [u8; 12] = [
    0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x6e, 0x03, 0x21, 0x00,
];

/// The per-dump symmetric key (DK). Every other key of a dump is derived from it.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct DumpKey([u8; DUMP_KEY_LEN]);

impl DumpKey {
    /// Wraps existing key bytes (e.g. from a pre-wrapped pool or an unwrapped stanza).
    pub fn from_bytes(bytes: [u8; DUMP_KEY_LEN]) -> Self {
        DumpKey(bytes)
    }

    /// The key bytes.
    pub fn as_bytes(&self) -> &[u8; DUMP_KEY_LEN] {
        &self.0
    }

    /// A fresh random dump key.
    pub fn generate<R: CryptoRng + ?Sized>(rng: &mut R) -> Self {
        let mut k = [0u8; DUMP_KEY_LEN];
        rng.fill_bytes(&mut k);
        DumpKey(k)
    }
}

impl core::fmt::Debug for DumpKey {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("DumpKey(..)")
    }
}

/// An X25519 private key (the raw 32-byte scalar as stored in PKCS#8; clamped when used).
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct X25519Secret([u8; 32]);

impl X25519Secret {
    /// Wraps raw private-key bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        X25519Secret(bytes)
    }

    /// The raw private-key bytes (for serialising to PKCS#8).
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// A fresh random key.
    pub fn generate<R: CryptoRng + ?Sized>(rng: &mut R) -> Self {
        let mut k = [0u8; 32];
        rng.fill_bytes(&mut k);
        X25519Secret(k)
    }

    /// The matching public key.
    pub fn public_key(&self) -> [u8; 32] {
        let secret = x25519_dalek::StaticSecret::from(self.0);
        x25519_dalek::PublicKey::from(&secret).to_bytes()
    }

    /// The key id of the matching public key.
    pub fn key_id(&self) -> [u8; KEY_ID_LEN] {
        x25519_key_id(&self.public_key())
    }

    /// X25519 with a peer public key; `None` when the result is all zero (low-order peer, RFC 9180 §7.1.4).
    pub fn diffie_hellman(&self, peer_public: &[u8; 32]) -> Option<[u8; 32]> {
        let secret = x25519_dalek::StaticSecret::from(self.0);
        let shared = secret.diffie_hellman(&x25519_dalek::PublicKey::from(*peer_public));
        if shared.was_contributory() {
            Some(shared.to_bytes())
        } else {
            None
        }
    }
}

impl core::fmt::Debug for X25519Secret {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("X25519Secret(..)")
    }
}

/// The raw X25519 function (RFC 7748 §5): clamps `scalar`, returns the u-coordinate. No zero check.
pub fn x25519(scalar: [u8; 32], u: [u8; 32]) -> [u8; 32] {
    x25519_dalek::x25519(scalar, u)
}

/// Key id of any public key: the first 8 bytes of SHA-256 of its SubjectPublicKeyInfo DER.
pub fn key_id_from_spki_der(spki_der: &[u8]) -> [u8; KEY_ID_LEN] {
    let digest = sha256(spki_der);
    let mut id = [0u8; KEY_ID_LEN];
    id.copy_from_slice(&digest[..KEY_ID_LEN]);
    id
}

/// Fingerprint of any public key: SHA-256 of its SubjectPublicKeyInfo DER.
pub fn fingerprint_from_spki_der(spki_der: &[u8]) -> [u8; 32] {
    sha256(spki_der)
}

/// The SubjectPublicKeyInfo DER of an X25519 public key (fixed 12-byte prefix ‖ key).
pub fn x25519_spki_der(public: &[u8; 32]) -> [u8; 44] {
    let mut der = [0u8; 44];
    der[..12].copy_from_slice(&X25519_SPKI_PREFIX);
    der[12..].copy_from_slice(public);
    der
}

/// Key id of an X25519 public key.
pub fn x25519_key_id(public: &[u8; 32]) -> [u8; KEY_ID_LEN] {
    key_id_from_spki_der(&x25519_spki_der(public))
}
