//! Zero-copy views of the FreeBSD netdump wire protocol, the kernel dump header and the EKCD key blob.
//!
//! Every format has two halves, in the style of smoltcp's `wire` module:
//!
//! * a `Packet<T: AsRef<[u8]>>` — a thin wrapper around a byte buffer with field accessors (and, for
//!   `T: AsMut<[u8]>`, setters). It performs no validation by itself.
//! * a `Repr` — a high-level, owned-or-borrowed description of the same data, with `parse` (bytes in,
//!   validated value out), `emit` (value in, bytes out) and `buffer_len`.
//!
//! All multi-byte integers are **big-endian** ("dump byte order"), as FreeBSD writes them.
//!
//! # The no-panic promise
//!
//! The bytes handed to this crate come from the network or from files an attacker may have written, so:
//!
//! * `Packet::new_checked` and `Repr::parse` never panic, for **any** input; they return an [`Error`].
//! * Once `new_checked` (or `check_len`) has succeeded, no accessor of that packet panics.
//! * Accessors on a packet made with `new_unchecked` do not panic either: a field that lies outside a too-short
//!   buffer reads as zero (or as an empty slice). Its value is then meaningless, which is why untrusted input
//!   must go through `new_checked`.
//! * Setters and the infallible `emit` methods panic if the *caller's* buffer is shorter than
//!   `Repr::buffer_len()` (as smoltcp's do): that is a programming error, never a property of the input.
//!   Where the contract allows it, `emit` returns [`Error::BufferTooSmall`] instead.
//!
//! The fuzz targets in `fuzz/` and the property tests of every module check this promise.
#![no_std]
#![forbid(unsafe_code)]

#[cfg(test)]
extern crate std;

pub mod ack;
pub mod ekcd;
mod field;
pub mod kdh;
pub mod netdump;

use core::fmt;

/// Why a buffer could not be parsed or emitted.
#[non_exhaustive]
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum Error {
    /// The buffer is shorter than the format requires.
    Truncated,
    /// A length or field is inconsistent (e.g. a datagram whose size is not `24 + mh_len`, a string with an
    /// embedded NUL, a field too long for its slot).
    Malformed,
    /// The netdump message type is not one of 1-5.
    UnknownType(u32),
    /// The kernel dump header carries none of the three known magics.
    BadMagic,
    /// The kernel dump header version is not 1-4.
    UnsupportedVersion(u32),
    /// The EKCD cipher id is not 0 (none), 1 (AES-256-CBC) or 2 (ChaCha20).
    UnknownCipher(u8),
    /// The caller's output buffer is too small for what is to be emitted.
    BufferTooSmall,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Truncated => f.write_str("buffer too short"),
            Error::Malformed => f.write_str("malformed length or field"),
            Error::UnknownType(t) => write!(f, "unknown netdump message type {t}"),
            Error::BadMagic => f.write_str("not a FreeBSD kernel dump header (bad magic)"),
            Error::UnsupportedVersion(v) => write!(f, "unsupported kernel dump header version {v}"),
            Error::UnknownCipher(c) => write!(f, "unknown EKCD cipher {c}"),
            Error::BufferTooSmall => f.write_str("output buffer too small"),
        }
    }
}

impl core::error::Error for Error {}

/// The result type of this crate.
pub type Result<T> = core::result::Result<T, Error>;
