//! `pub`: the public key of a private key, as SubjectPublicKeyInfo PEM.

use crate::cli::KeyArgs;
use crate::cmd::emit;
use crate::error::Error;
use crate::keyfile::load_private;

/// Runs `pub`.
pub fn run(args: &KeyArgs, out: &mut dyn std::io::Write) -> Result<(), Error> {
    let key = load_private(&args.key, args.passphrase_file.as_deref())?;
    emit(out, &key.public_key().to_pem())
}
