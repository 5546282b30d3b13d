//! keytool errors: one line each.

use std::path::PathBuf;

use sealdump_crypto::keys::KeyError;

use crate::provision::ProvisionError;

/// Everything that can stop a keytool command. All are usage or environment errors (exit status 2).
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A key file could not be read, parsed, decrypted or written.
    #[error("{path}: {source}")]
    Key {
        /// The key file.
        path: PathBuf,
        /// What went wrong.
        source: KeyError,
    },
    /// An encrypted private key and no passphrase.
    #[error(
        "{0}: the private key is encrypted: give its passphrase with --passphrase-file FILE or SEALDUMP_PASSPHRASE"
    )]
    PassphraseNeeded(PathBuf),
    /// A file other than a key file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// Refused to replace an existing file.
    #[error("{0}: already exists (use --force to overwrite)")]
    Exists(PathBuf),
    /// A bad provisioning input.
    #[error("provisioning: {0}")]
    Provision(#[from] ProvisionError),
    /// A bad input (passphrase file, wrong kind of key file).
    #[error("{0}")]
    Input(String),
    /// Writing to stdout failed.
    #[error("cannot write output: {0}")]
    Output(std::io::Error),
}

impl Error {
    /// Wraps a key error with the file it concerns (I/O errors already name it).
    pub fn key(path: &std::path::Path, source: KeyError) -> Self {
        match source {
            KeyError::Io { path, source } => Error::Io { path, source },
            KeyError::Exists(path) => Error::Exists(path),
            KeyError::PassphraseRequired => Error::PassphraseNeeded(path.to_path_buf()),
            source => Error::Key {
                path: path.to_path_buf(),
                source,
            },
        }
    }

    /// Process exit status for this error: 2 (usage or environment).
    pub fn exit_code(&self) -> u8 {
        2
    }
}
