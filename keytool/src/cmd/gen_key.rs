//! `gen`: a new key pair, PATH.key (0600) and PATH.pub.

use std::path::{Path, PathBuf};

use sealdump_crypto::keys::{self, PrivateKey, hex_lower};

use crate::cli::GenArgs;
use crate::cmd::emit;
use crate::error::Error;
use crate::keyfile::{passphrase, prompt_passphrase};

/// `PATH` + suffix (PATH.key / PATH.pub), keeping any dots already in PATH.
pub fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_os_string();
    name.push(suffix);
    PathBuf::from(name)
}

/// Runs `gen`; prints the key id on `out` and what was written on `notes`.
pub fn run(
    args: &GenArgs,
    out: &mut dyn std::io::Write,
    notes: &mut dyn std::io::Write,
) -> Result<(), Error> {
    let key_path = with_suffix(&args.path, ".key");
    let pub_path = with_suffix(&args.path, ".pub");
    // Check both before writing either, so a refusal leaves nothing half-made.
    if !args.force {
        for p in [&key_path, &pub_path] {
            if p.symlink_metadata().is_ok() {
                return Err(Error::Exists(p.clone()));
            }
        }
    }
    let mut pass = passphrase(args.passphrase_file.as_deref())?;
    if pass.is_none() && args.encrypt {
        let first = prompt_passphrase("New passphrase: ")?.ok_or_else(|| {
            Error::Input(
                "--encrypt needs a passphrase: --passphrase-file FILE, SEALDUMP_PASSPHRASE or a terminal"
                    .to_string(),
            )
        })?;
        let again = prompt_passphrase("Same passphrase again: ")?;
        if again.as_deref() != Some(&first) {
            return Err(Error::Input("the passphrases differ".to_string()));
        }
        pass = Some(first);
    }
    let key = match args.rsa {
        Some(bits) => PrivateKey::generate_rsa(bits).map_err(|e| Error::key(&key_path, e))?,
        None => PrivateKey::generate_x25519(),
    };
    let public = key.public_key();
    keys::write_private_key_file(&key_path, &key, pass.as_deref().map(|p| &p[..]), args.force)
        .map_err(|e| Error::key(&key_path, e))?;
    keys::write_public_key_file(&pub_path, &public, args.force).map_err(|e| Error::key(&pub_path, e))?;

    let id = hex_lower(&public.key_id());
    let _ = writeln!(
        notes,
        "wrote {} ({} private key, mode 0600{})",
        key_path.display(),
        public.describe(),
        if pass.is_some() {
            ", passphrase-encrypted"
        } else {
            ""
        }
    );
    let _ = writeln!(notes, "wrote {} (public key)", pub_path.display());
    emit(out, &format!("{id}\n"))
}
