//! `fingerprint`: "<16-hex key id>  <SHA-256 of the SubjectPublicKeyInfo DER>".

use sealdump_crypto::keys::{PublicKey, hex_lower};

use crate::cli::KeyArgs;
use crate::cmd::emit;
use crate::error::Error;
use crate::keyfile::load_public;

/// The fingerprint line of a key (without newline).
pub fn fingerprint_line(key: &PublicKey) -> String {
    format!("{}  {}", hex_lower(&key.key_id()), hex_lower(&key.fingerprint()))
}

/// Runs `fingerprint`.
pub fn run(args: &KeyArgs, out: &mut dyn std::io::Write) -> Result<(), Error> {
    let key = load_public(&args.key, args.passphrase_file.as_deref())?;
    emit(out, &format!("{}\n", fingerprint_line(&key)))
}
