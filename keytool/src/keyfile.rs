//! Reading key files and passphrases the way every subcommand does.

use std::path::Path;

use sealdump_crypto::keys::{self, PemKind, PrivateKey, PublicKey};
use zeroize::Zeroizing;

use crate::error::Error;

/// Environment variable holding a passphrase (used when no --passphrase-file is given).
pub const PASSPHRASE_ENV: &str = "SEALDUMP_PASSPHRASE";

/// The passphrase from `--passphrase-file` (its first line), else from `SEALDUMP_PASSPHRASE`, else none.
pub fn passphrase(file: Option<&Path>) -> Result<Option<Zeroizing<Vec<u8>>>, Error> {
    if let Some(file) = file {
        let bytes = read_bounded(file)?;
        let line = bytes.split(|&b| b == b'\n').next().unwrap_or_default();
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            return Err(Error::Input(format!(
                "{}: the passphrase file is empty",
                file.display()
            )));
        }
        return Ok(Some(Zeroizing::new(line.to_vec())));
    }
    match std::env::var_os(PASSPHRASE_ENV) {
        Some(value) if !value.is_empty() => {
            use std::os::unix::ffi::OsStrExt;
            Ok(Some(Zeroizing::new(value.as_bytes().to_vec())))
        }
        _ => Ok(None),
    }
}

/// Asks for a passphrase on the controlling terminal with echo turned off (through `stty`, which needs no
/// extra crate and no `unsafe`). `None` when stdin is not a terminal, so scripts and tests never block.
pub fn prompt_passphrase(prompt: &str) -> Result<Option<Zeroizing<Vec<u8>>>, Error> {
    use std::io::{BufRead, IsTerminal, Write};
    if !std::io::stdin().is_terminal() {
        return Ok(None);
    }
    let Ok(tty) = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/tty")
    else {
        return Ok(None);
    };
    let stty = |arg: &str| -> bool {
        std::fs::File::open("/dev/tty")
            .and_then(|t| std::process::Command::new("stty").arg(arg).stdin(t).status())
            .is_ok_and(|s| s.success())
    };
    if !stty("-echo") {
        // Never read a passphrase with echo on.
        return Ok(None);
    }
    let mut writer = &tty;
    let _ = write!(writer, "{prompt}");
    let _ = writer.flush();
    let mut line = Zeroizing::new(String::new());
    let read = std::io::BufReader::new(&tty).read_line(&mut line);
    stty("echo");
    let _ = writeln!(writer);
    read.map_err(|source| Error::Io {
        path: "/dev/tty".into(),
        source,
    })?;
    let trimmed = line.trim_end_matches(['\n', '\r']);
    if trimmed.is_empty() {
        return Err(Error::Input("empty passphrase".to_string()));
    }
    Ok(Some(Zeroizing::new(trimmed.as_bytes().to_vec())))
}

/// A key file's content.
#[derive(Debug)]
pub enum LoadedKey {
    /// A private key (and whether the file was encrypted).
    Private {
        /// The key.
        key: Box<PrivateKey>,
        /// The file was passphrase-encrypted.
        encrypted: bool,
    },
    /// A public key.
    Public(PublicKey),
    /// An encrypted private key we were given no passphrase for.
    Locked,
}

impl LoadedKey {
    /// The public key, if known.
    pub fn public_key(&self) -> Option<PublicKey> {
        match self {
            LoadedKey::Private { key, .. } => Some(key.public_key()),
            LoadedKey::Public(key) => Some(key.clone()),
            LoadedKey::Locked => None,
        }
    }
}

/// Reads a private or public key file; an encrypted key without a passphrase gives [`LoadedKey::Locked`].
pub fn load_any(path: &Path, passphrase_file: Option<&Path>) -> Result<LoadedKey, Error> {
    let text = read_text(path)?;
    let kind = keys::pem_kind(&text).map_err(|e| Error::key(path, e))?;
    match kind {
        PemKind::PublicKey => Ok(LoadedKey::Public(
            PublicKey::from_pem(&text).map_err(|e| Error::key(path, e))?,
        )),
        PemKind::PrivateKey => Ok(LoadedKey::Private {
            key: Box::new(PrivateKey::from_pem(&text, None).map_err(|e| Error::key(path, e))?),
            encrypted: false,
        }),
        _ => match passphrase(passphrase_file)?.map_or_else(
            || prompt_passphrase(&format!("Passphrase for {}: ", path.display())),
            |p| Ok(Some(p)),
        )? {
            None => Ok(LoadedKey::Locked),
            Some(pass) => Ok(LoadedKey::Private {
                key: Box::new(PrivateKey::from_pem(&text, Some(&pass)).map_err(|e| Error::key(path, e))?),
                encrypted: true,
            }),
        },
    }
}

/// Reads a private key file, asking for the passphrase only when the file is encrypted.
pub fn load_private(path: &Path, passphrase_file: Option<&Path>) -> Result<PrivateKey, Error> {
    match load_any(path, passphrase_file)? {
        LoadedKey::Private { key, .. } => Ok(*key),
        LoadedKey::Locked => Err(Error::PassphraseNeeded(path.to_path_buf())),
        LoadedKey::Public(_) => Err(Error::Input(format!(
            "{}: this is a public key; a private key is needed",
            path.display()
        ))),
    }
}

/// Reads a public key file (or derives the public key from a private key file).
pub fn load_public(path: &Path, passphrase_file: Option<&Path>) -> Result<PublicKey, Error> {
    load_any(path, passphrase_file)?
        .public_key()
        .ok_or_else(|| Error::PassphraseNeeded(path.to_path_buf()))
}

fn read_text(path: &Path) -> Result<Zeroizing<String>, Error> {
    let bytes = read_bounded(path)?;
    let text = std::str::from_utf8(&bytes)
        .map_err(|_| Error::key(path, keys::KeyError::NotPem("not a text file".to_string())))?;
    Ok(Zeroizing::new(text.to_string()))
}

/// A key or passphrase file, read with the key-file size limit (which also holds for FIFOs and devices).
fn read_bounded(path: &Path) -> Result<Zeroizing<Vec<u8>>, Error> {
    keys::read_key_file_bytes(path)
        .map_err(|source| Error::Io {
            path: path.to_path_buf(),
            source,
        })?
        .ok_or_else(|| {
            Error::Input(format!(
                "{}: more than {} bytes is too large for a key file",
                path.display(),
                keys::MAX_KEY_FILE_LEN
            ))
        })
}
