//! The sealed dump format v1 and FreeBSD EKCD primitives.
//!
//! The default build is `no_std` without `alloc`, for the panic-time client. The `std` feature adds RSA (which
//! needs an allocator), PEM / PKCS#8 key files and file helpers, for keytool, the decryptor and userland arming.
//!
//! Layout: [`aead`] (the two AEADs), [`kdf`] (HKDF/HMAC and the key schedule), [`hpke_wrap`] (RFC 9180 base mode
//! for X25519 stanzas), [`secret`] (key types and key ids), [`seal`] (header, stanzas, chunks, trailer),
//! [`ekcd`] (FreeBSD `dumpon -k` ciphers). The byte layout is documented in `docs/format.md`.
#![no_std]
#![forbid(unsafe_code)]
#[cfg(feature = "std")]
extern crate std;

// --- no_std core (owned by the sealed-format work) ---
pub mod aead;
pub mod ekcd;
pub mod error;
pub mod hpke_wrap;
pub mod kdf;
pub mod seal;
pub mod secret;

pub use aead::{AeadId, TAG_LEN};
pub use error::{Error, Result};
pub use secret::{DumpKey, X25519Secret, key_id_from_spki_der, x25519_key_id, x25519_spki_der};

// --- std: key files and RSA (owned by the keys work) ---
#[cfg(feature = "std")]
pub mod keys;
#[cfg(feature = "std")]
pub mod rsa_wrap;
