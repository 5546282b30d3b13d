//! Loading the analyst's private keys (`--key`, `--key-dir`) and their passphrases (file, environment, prompt).

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use sealdump_crypto::keys::{self, PrivateKey};
use zeroize::Zeroizing;

use crate::cli::KeyArgs;
use crate::error::{Error, Result};

/// Environment variable holding the passphrase of encrypted private keys.
pub const PASSPHRASE_ENV: &str = "SEALDUMP_PASSPHRASE";

/// Largest file `--key-dir` considers (an RSA-16384 PKCS#8 PEM is about 13 KiB).
const MAX_KEY_FILE: u64 = 64 << 10;

/// A private key and where it came from.
#[derive(Debug)]
pub struct LoadedKey {
    /// The file it was read from.
    pub path: PathBuf,
    /// The key (its Debug prints no secret).
    pub key: PrivateKey,
    /// Its key id (first 8 bytes of SHA-256 of the public key's SPKI DER).
    pub key_id: [u8; 8],
}

/// Hex of a key id, as keytool prints it.
pub fn key_id_hex(id: &[u8; 8]) -> String {
    hex::encode(id)
}

/// Finds the passphrase once, from the first source that has one.
struct PassphraseSource<'a> {
    file: Option<&'a Path>,
    cached: Option<Zeroizing<Vec<u8>>>,
}

impl PassphraseSource<'_> {
    fn get(&mut self, for_key: &Path) -> Result<Option<&[u8]>> {
        if self.cached.is_none() {
            self.cached = self.find(for_key)?;
        }
        Ok(self.cached.as_ref().map(|p| p.as_slice()))
    }

    fn find(&self, for_key: &Path) -> Result<Option<Zeroizing<Vec<u8>>>> {
        if let Some(file) = self.file {
            let text = Zeroizing::new(std::fs::read(file).map_err(Error::io(file))?);
            let line = text.split(|b| *b == b'\n').next().unwrap_or_default();
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            return Ok(Some(Zeroizing::new(line.to_vec())));
        }
        if let Some(value) = std::env::var_os(PASSPHRASE_ENV) {
            return Ok(Some(Zeroizing::new(value.into_encoded_bytes())));
        }
        if std::io::stdin().is_terminal() {
            let term = console::Term::stderr();
            term.write_str(&format!("Passphrase for {}: ", for_key.display()))
                .map_err(Error::io("<terminal>"))?;
            let line = Zeroizing::new(term.read_secure_line().map_err(Error::io("<terminal>"))?);
            return Ok(Some(Zeroizing::new(line.as_bytes().to_vec())));
        }
        Ok(None)
    }
}

/// Loads every key named by `--key` (any failure is an error) and every private key file in `--key-dir`
/// (files that are not private keys are skipped; keys that cannot be opened are skipped with a warning).
pub fn load_keys(args: &KeyArgs) -> Result<Vec<LoadedKey>> {
    let mut pass = PassphraseSource {
        file: args.passphrase_file.as_deref(),
        cached: None,
    };
    let mut loaded = Vec::new();
    for path in &args.keys {
        loaded.push(load_one(path, &mut pass)?);
    }
    if let Some(dir) = &args.key_dir {
        let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
            .map_err(Error::io(dir))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            // Key files are small; never slurp a vmcore that happens to sit in the directory.
            .filter(|p| std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.len() <= MAX_KEY_FILE))
            .collect();
        paths.sort();
        for path in paths {
            let Ok(text) = std::fs::read_to_string(&path) else {
                continue;
            };
            let text = Zeroizing::new(text);
            if !text.contains("PRIVATE KEY-----") {
                continue;
            }
            match load_one(&path, &mut pass) {
                Ok(k) => loaded.push(k),
                Err(e) => eprintln!("warning: skipping {e}"),
            }
        }
    }
    Ok(loaded)
}

fn load_one(path: &Path, pass: &mut PassphraseSource<'_>) -> Result<LoadedKey> {
    let pem = Zeroizing::new(std::fs::read_to_string(path).map_err(Error::io(path))?);
    let passphrase = if keys::is_encrypted_pem(&pem) {
        match pass.get(path)? {
            Some(p) => Some(p),
            None => {
                return Err(Error::Key {
                    path: path.to_path_buf(),
                    message: format!(
                        "key is encrypted: give its passphrase with --passphrase-file, {PASSPHRASE_ENV} or a terminal"
                    ),
                });
            }
        }
    } else {
        None
    };
    let key = PrivateKey::from_pem(&pem, passphrase).map_err(|e| Error::Key {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    let key_id = key.public_key().key_id();
    Ok(LoadedKey {
        path: path.to_path_buf(),
        key,
        key_id,
    })
}
