//! The sealed dump format v1 and FreeBSD EKCD primitives.
//!
//! The default build is `no_std` without `alloc`, for the panic-time client. The `std` feature adds RSA (which
//! needs an allocator), PEM / PKCS#8 key files and file helpers, for keytool, the decryptor and userland arming.
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

// --- std: key files and RSA (owned by the keys work) ---
#[cfg(feature = "std")]
pub mod keys;
#[cfg(feature = "std")]
pub mod rsa_wrap;
