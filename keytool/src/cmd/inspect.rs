//! `inspect`: what a key file holds.

use sealdump_crypto::keys::{PublicKey, hex_lower};

use crate::cli::KeyArgs;
use crate::cmd::emit;
use crate::error::Error;
use crate::keyfile::{LoadedKey, load_any};

fn bits(key: &PublicKey) -> String {
    match key {
        // As OpenSSL reports it (EVP_PKEY_get_bits).
        PublicKey::X25519(_) => "253".to_string(),
        other => other
            .describe()
            .strip_prefix("RSA-")
            .unwrap_or_default()
            .to_string(),
    }
}

fn algorithm(key: &PublicKey) -> &'static str {
    match key {
        PublicKey::X25519(_) => "X25519",
        _ => "RSA",
    }
}

/// Runs `inspect`. An encrypted key without a passphrase is described as far as possible.
pub fn run(args: &KeyArgs, out: &mut dyn std::io::Write) -> Result<(), Error> {
    let loaded = load_any(&args.key, args.passphrase_file.as_deref())?;
    let mut text = format!("file:        {}\n", args.key.display());
    let (kind, encrypted) = match &loaded {
        LoadedKey::Private { encrypted, .. } => ("private key", *encrypted),
        LoadedKey::Public(_) => ("public key", false),
        LoadedKey::Locked => ("private key", true),
    };
    match loaded.public_key() {
        Some(public) => {
            text += &format!("type:        {} {kind}\n", public.describe());
            text += &format!("algorithm:   {}\n", algorithm(&public));
            text += &format!("bits:        {}\n", bits(&public));
            text += &format!("key id:      {}\n", hex_lower(&public.key_id()));
            text += &format!("fingerprint: {}\n", hex_lower(&public.fingerprint()));
        }
        None => {
            text += &format!("type:        encrypted {kind}\n");
            text += "key id:      unknown (give the passphrase to see it)\n";
        }
    }
    if kind == "private key" {
        text += &format!("encrypted:   {}\n", if encrypted { "yes" } else { "no" });
    }
    emit(out, &text)
}
