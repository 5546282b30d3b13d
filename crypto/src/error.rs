//! The crate's error type.
//!
//! One flat enum so that no_std callers (the panic-time client) and the std tools share it. Messages are short and
//! never contain secret material.

use core::fmt;

/// Everything that can go wrong while sealing or opening a dump.
#[non_exhaustive]
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Error {
    /// The buffer does not start with the `SEALDUMP` magic.
    BadMagic,
    /// The header names a format version this build does not know.
    UnsupportedVersion,
    /// The header names an AEAD this build does not implement.
    UnsupportedAead(u16),
    /// The header names a KDF this build does not implement.
    UnsupportedKdf(u16),
    /// The chunk shift is outside 12..=20.
    UnsupportedChunkShift(u8),
    /// The input ended before a field it declares.
    Truncated,
    /// A length or field is inconsistent (reserved bits set, bad stanza count, trailing bytes, ...).
    Malformed,
    /// The header MAC does not verify with this dump key (wrong key or tampered header).
    HeaderMac,
    /// No recipient stanza, or more than [`crate::seal::MAX_RECIPIENTS`].
    NoRecipient,
    /// More recipients than [`crate::seal::MAX_RECIPIENTS`].
    TooManyRecipients,
    /// A recipient stanza could not be unwrapped with the given key.
    Unwrap,
    /// HPKE encapsulation failed (e.g. a low-order recipient public key).
    Encap,
    /// The sealed metadata did not authenticate.
    MetadataAuth,
    /// A data chunk failed authentication (tampered, reordered, truncated or from another dump).
    ChunkAuth {
        /// Index of the record that failed.
        index: u64,
    },
    /// The trailer record failed authentication (missing, truncated stream, or tampered).
    TrailerAuth,
    /// The trailer authenticated but its content is inconsistent with its position or chunk size.
    TrailerInconsistent,
    /// A chunk is empty or longer than the chunk size.
    ChunkLength,
    /// A nonce of the wrong length was given.
    NonceLength,
    /// An output buffer is too small (or the header would exceed 4096 bytes).
    BufferTooSmall,
    /// A KDF was asked for more output than it can give.
    KdfOutputTooLong,
    /// The random number generator returned unusable output.
    Rng,
    /// AEAD encryption failed (input too long for the cipher).
    Encrypt,
    /// Decryption failed (generic authentication failure outside the dump format).
    Decrypt,
    /// Block-cipher input is not a multiple of the block size.
    BlockLength,
    /// A stream cipher's keystream is exhausted.
    KeystreamExhausted,
}

/// Result alias for this crate.
pub type Result<T> = core::result::Result<T, Error>;

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::BadMagic => f.write_str("not a sealed dump header (bad magic)"),
            Error::UnsupportedVersion => f.write_str("unsupported sealed format version"),
            Error::UnsupportedAead(id) => write!(f, "unsupported AEAD id 0x{id:04x}"),
            Error::UnsupportedKdf(id) => write!(f, "unsupported KDF id 0x{id:04x}"),
            Error::UnsupportedChunkShift(s) => write!(f, "unsupported chunk shift {s} (must be 12..=20)"),
            Error::Truncated => f.write_str("input truncated"),
            Error::Malformed => f.write_str("malformed input"),
            Error::HeaderMac => f.write_str("header authentication failed (wrong key or tampered header)"),
            Error::NoRecipient => f.write_str("no recipient"),
            Error::TooManyRecipients => f.write_str("too many recipients (at most 8)"),
            Error::Unwrap => f.write_str("recipient stanza could not be unwrapped with this key"),
            Error::Encap => f.write_str("HPKE encapsulation failed"),
            Error::MetadataAuth => f.write_str("sealed metadata authentication failed"),
            Error::ChunkAuth { index } => write!(f, "chunk {index} failed authentication"),
            Error::TrailerAuth => {
                f.write_str("trailer missing or failed authentication (truncated or tampered)")
            }
            Error::TrailerInconsistent => f.write_str("trailer contents inconsistent with the stream"),
            Error::ChunkLength => f.write_str("chunk length out of range"),
            Error::NonceLength => f.write_str("wrong nonce length"),
            Error::BufferTooSmall => f.write_str("buffer too small"),
            Error::KdfOutputTooLong => f.write_str("KDF output too long"),
            Error::Rng => f.write_str("random number generator failure"),
            Error::Encrypt => f.write_str("encryption failed"),
            Error::Decrypt => f.write_str("decryption failed"),
            Error::BlockLength => f.write_str("length is not a multiple of the cipher block size"),
            Error::KeystreamExhausted => f.write_str("keystream exhausted"),
        }
    }
}

impl core::error::Error for Error {}
