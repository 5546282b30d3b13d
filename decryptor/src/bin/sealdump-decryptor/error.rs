//! The decryptor's one error type: every variant prints as one line and maps to an exit status
//! (1 = not authentic / incomplete, 2 = usage or environment).

use std::io;
use std::path::PathBuf;

/// Why decrypting, verifying or describing a dump failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The command line is wrong (a missing key, an output that cannot be derived, ...).
    #[error("{0}")]
    Usage(String),

    /// A file could not be read, created or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file concerned.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },

    /// The output exists and `--force` was not given.
    #[error("{}: output exists (use --force to overwrite)", path.display())]
    OutputExists {
        /// The output file.
        path: PathBuf,
    },

    /// A private key file could not be loaded.
    #[error("{}: {message}", path.display())]
    Key {
        /// The key file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },

    /// The key blob is neither a seal header nor a FreeBSD key blob.
    #[error("{}: {message}", path.display())]
    KeyBlob {
        /// The key blob.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },

    /// None of the given private keys is a recipient of the dump.
    #[error("no given key opens this dump: it is sealed to key id(s) {present}; given key id(s): {given}")]
    WrongKey {
        /// Key ids of the recipient stanzas, comma separated.
        present: String,
        /// Key ids of the keys given, comma separated (or "none").
        given: String,
    },

    /// A FreeBSD EKCD key blob could not be unwrapped by any given RSA key.
    #[error("no given key unwraps this FreeBSD dump key: {0}")]
    EkcdWrongKey(String),

    /// The seal header failed authentication or could not be parsed.
    #[error("seal header is not authentic: {0}")]
    HeaderTampered(String),

    /// A data chunk failed authentication.
    #[error(
        "chunk {index} is not authentic (ciphertext bytes {ct_start}..{ct_end}, plaintext bytes {pt_start}..{pt_end}){}",
        if *others > 0 { format!("; {others} more chunk(s) failed") } else { String::new() }
    )]
    ChunkFailed {
        /// Chunk index.
        index: u64,
        /// Ciphertext byte range in the stored core.
        ct_start: u64,
        /// End (exclusive) of the ciphertext range.
        ct_end: u64,
        /// Plaintext byte range in the vmcore.
        pt_start: u64,
        /// End (exclusive) of the plaintext range.
        pt_end: u64,
        /// Failed chunks besides this one (known only when every chunk was checked).
        others: u64,
    },

    /// The stream has no authentic trailer at its end.
    #[error("dump is truncated or its end is damaged: no authentic trailer in the last bytes of {len}-byte stream{}",
        if *salvageable { " (try --salvage)" } else { "" })]
    Truncated {
        /// Length of the stored stream.
        len: u64,
        /// Whether to suggest --salvage.
        salvageable: bool,
    },

    /// The trailer is authentic but does not agree with the stream's length.
    #[error("trailer says {chunks} chunks / {total} bytes but the stream is {len} bytes long")]
    TrailerMismatch {
        /// Chunk count in the trailer.
        chunks: u64,
        /// Plaintext length in the trailer.
        total: u64,
        /// Stream length.
        len: u64,
    },

    /// The client aborted the dump; what was sent is authentic.
    #[error("dump was aborted by the client: only its first {total} bytes were sent (authentic partial dump{})",
        if *written { ", written" } else { "" })]
    Aborted {
        /// Authentic plaintext bytes.
        total: u64,
        /// Whether the partial plaintext was written.
        written: bool,
    },

    /// Salvage finished but parts are missing.
    #[error("salvage incomplete: {missing_bytes} plaintext byte(s) missing in {ranges} range(s){}",
        if *unknown_tail { " and the end of the dump is unknown" } else { "" })]
    Incomplete {
        /// Missing plaintext bytes (known ranges).
        missing_bytes: u64,
        /// Number of missing ranges.
        ranges: usize,
        /// The stream was truncated and its real length is unknown.
        unknown_tail: bool,
    },

    /// The FreeBSD dump cannot be decrypted as stored (size, cipher, ...).
    #[error("{0}")]
    Ekcd(String),
}

impl Error {
    /// Process exit status for this error.
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::WrongKey { .. }
            | Error::EkcdWrongKey(_)
            | Error::HeaderTampered(_)
            | Error::ChunkFailed { .. }
            | Error::Truncated { .. }
            | Error::TrailerMismatch { .. }
            | Error::Aborted { .. }
            | Error::Incomplete { .. }
            | Error::KeyBlob { .. }
            | Error::Ekcd(_) => 1,
            Error::Usage(_) | Error::Io { .. } | Error::OutputExists { .. } | Error::Key { .. } => 2,
        }
    }

    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(io::Error) -> Error {
        let path = path.into();
        move |source| Error::Io { path, source }
    }
}

/// Result with the decryptor's error.
pub type Result<T, E = Error> = std::result::Result<T, E>;
