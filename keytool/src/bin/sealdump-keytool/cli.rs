//! Command line of `sealdump-keytool` (clap derive). The library includes this file too, so that
//! `sealdump_keytool::cli_command()` gives xtask the full command for man pages and completions.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

const EXAMPLES: &str = "\
Examples:
  # An X25519 key pair for the analyst (analyst.key 0600, analyst.pub):
  sealdump-keytool gen analyst
  # RSA-4096, private key encrypted with a passphrase read from a file:
  sealdump-keytool gen --rsa 4096 --passphrase-file pass.txt analyst-rsa
  # Key id and SHA-256 fingerprint of any key, ours or OpenSSL's:
  sealdump-keytool fingerprint analyst.pub
  # A provisioning file for clients that send to 192.0.2.10:
  sealdump-keytool provision --receiver 192.0.2.10 --recipient analyst.pub -o provision.toml

Passphrases come from --passphrase-file, the SEALDUMP_PASSPHRASE environment variable, or (for an
encrypted key, or gen --encrypt) a prompt on the terminal.
Exit status: 0 on success, 2 on a usage or environment error (bad file, wrong passphrase, ...).";

/// Key generation, export, fingerprints and client provisioning for sealdump.
#[derive(Debug, Parser)]
#[command(name = "sealdump-keytool", version, after_help = EXAMPLES, propagate_version = true)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Generate a key pair: PATH.key (PKCS#8 PEM, mode 0600) and PATH.pub (SubjectPublicKeyInfo PEM).
    #[command(after_help = "\
Examples:
  sealdump-keytool gen analyst                      # X25519 (default)
  sealdump-keytool gen --rsa 3072 analyst-rsa       # RSA-3072, for sites with FreeBSD dumpon -k keys
  sealdump-keytool gen --encrypt analyst            # encrypted PKCS#8 (scrypt, AES-256-CBC), asks twice
  SEALDUMP_PASSPHRASE=... sealdump-keytool gen k    # encrypted with the passphrase from the environment

Prints the new key's id (16 hex digits) on stdout. Existing files are never replaced without --force.")]
    Gen(GenArgs),
    /// Print the public key (SubjectPublicKeyInfo PEM) of a private key.
    #[command(after_help = "\
Examples:
  sealdump-keytool pub analyst.key > analyst.pub
  sealdump-keytool pub --passphrase-file pass.txt analyst-rsa.key")]
    Pub(KeyArgs),
    /// Print "<16-hex key id>  <SHA-256 fingerprint>" of a private or public key.
    #[command(after_help = "\
Examples:
  sealdump-keytool fingerprint analyst.pub
  sealdump-keytool fingerprint analyst.key

The fingerprint is SHA-256 of the SubjectPublicKeyInfo DER, so it equals
`openssl pkey -pubout -outform DER -in KEY | sha256sum`; the key id is its first 8 bytes.")]
    Fingerprint(KeyArgs),
    /// Describe a key file: type, size, key id, fingerprint, encrypted or not.
    #[command(after_help = "\
Examples:
  sealdump-keytool inspect analyst.key
  sealdump-keytool inspect /etc/dumpon/public.pem")]
    Inspect(KeyArgs),
    /// Write a client provisioning file (TOML): receiver, recipients, AEAD, chunk size. It holds no secret.
    #[command(after_help = "\
Examples:
  sealdump-keytool provision --receiver 192.0.2.10 --recipient analyst.pub
  sealdump-keytool provision --receiver dumps.example.org:20023 --recipient a.pub --recipient b.pub \\
      --aead aes-256-gcm --chunk-shift 14 -o /etc/sealdump/provision.toml")]
    Provision(ProvisionArgs),
}

/// `gen` arguments.
#[derive(Debug, Args)]
pub struct GenArgs {
    /// Make an RSA key of this size (3072 or 4096) instead of X25519.
    #[arg(long, value_name = "BITS", value_parser = parse_rsa_bits)]
    pub rsa: Option<usize>,
    /// Encrypt the private key with the passphrase in this file (first line).
    #[arg(long, value_name = "FILE")]
    pub passphrase_file: Option<PathBuf>,
    /// Encrypt the private key, asking for the passphrase on the terminal (unless --passphrase-file or
    /// SEALDUMP_PASSPHRASE gives it).
    #[arg(long)]
    pub encrypt: bool,
    /// Replace existing PATH.key / PATH.pub.
    #[arg(long)]
    pub force: bool,
    /// Output path prefix: writes PATH.key and PATH.pub.
    #[arg(value_name = "PATH")]
    pub path: PathBuf,
}

/// Arguments of the commands that read one key file.
#[derive(Debug, Args)]
pub struct KeyArgs {
    /// Passphrase file for an encrypted private key (first line).
    #[arg(long, value_name = "FILE")]
    pub passphrase_file: Option<PathBuf>,
    /// Key file (PEM: PKCS#8, encrypted PKCS#8, PKCS#1 RSA, or SubjectPublicKeyInfo).
    #[arg(value_name = "KEY")]
    pub key: PathBuf,
}

/// `provision` arguments.
#[derive(Debug, Args)]
pub struct ProvisionArgs {
    /// Receiver herald address HOST[:PORT] (port 20023 if omitted); repeat for fallbacks, the first is used.
    #[arg(long = "receiver", value_name = "HOST[:PORT]", required = true)]
    pub receivers: Vec<String>,
    /// Recipient public key file; repeat for up to 8 recipients.
    #[arg(long = "recipient", value_name = "PUB", required = true)]
    pub recipients: Vec<PathBuf>,
    /// Payload AEAD.
    #[arg(long, value_name = "AEAD", default_value = "chacha20-poly1305",
          value_parser = ["chacha20-poly1305", "aes-256-gcm"])]
    pub aead: String,
    /// log2 of the plaintext chunk size (12 = 4 KiB … 20 = 1 MiB).
    #[arg(long, value_name = "SHIFT", default_value_t = 16, value_parser = clap::value_parser!(u8).range(12..=20))]
    pub chunk_shift: u8,
    /// UDP port the client sends from.
    #[arg(long, value_name = "PORT", default_value_t = 20024)]
    pub client_port: u16,
    /// Client address/prefix for bare-metal clients, e.g. 192.0.2.20/24.
    #[arg(long, value_name = "ADDR/PREFIX")]
    pub client: Option<String>,
    /// Gateway for bare-metal clients.
    #[arg(long, value_name = "ADDR")]
    pub gateway: Option<String>,
    /// Write to FILE instead of stdout.
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Replace an existing output file.
    #[arg(long)]
    pub force: bool,
}

fn parse_rsa_bits(s: &str) -> Result<usize, String> {
    match s {
        "3072" => Ok(3072),
        "4096" => Ok(4096),
        _ => Err("RSA size must be 3072 or 4096".to_string()),
    }
}
