//! Command line of `sealdump-decryptor` (DESIGN §8). Shared by the binary and by `cli_command()` in the library,
//! which xtask uses for man pages and completions.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

const EXAMPLES: &str = "\
Examples:
  # Decrypt a sealed dump stored by sealdump-receiver (key.web1.0 is read from beside it)
  sealdump-decryptor --key analyst.key /var/crash/vmcore_encrypted.web1.0
  # Check that a dump is complete and authentic without writing anything
  sealdump-decryptor --key analyst.key --verify vmcore_encrypted.web1.0
  # Recover every authentic chunk of a damaged dump; missing ranges are zero-filled and listed
  sealdump-decryptor --key-dir ~/.sealdump --salvage --json -o vmcore.web1.0 vmcore_encrypted.web1.0
  # Stream the plaintext into another tool
  sealdump-decryptor --key analyst.key -o - vmcore_encrypted.web1.0 | zstd > vmcore.zst
  # A FreeBSD `dumpon -k` dump (detected from the key blob), like decryptcore(8)
  sealdump-decryptor --key private.pem --keyfile key.0 vmcore_encrypted.0
  # Show the header, recipients and (with a matching key) the sealed metadata
  sealdump-decryptor info --key analyst.key vmcore_encrypted.web1.0

Exit status: 0 success; 1 the dump is not authentic, incomplete or aborted (or salvage recovered only part);
2 usage or environment error.";

/// Verify, decrypt and salvage sealed dumps and FreeBSD `dumpon -k` (EKCD) dumps.
#[derive(Debug, Parser)]
#[command(
    name = "sealdump-decryptor",
    version,
    after_long_help = EXAMPLES,
    args_conflicts_with_subcommands = true,
    subcommand_negates_reqs = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,

    #[command(flatten)]
    pub decrypt: DecryptArgs,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Describe a dump: header, AEAD, chunk size, recipients, which given key matches, sealed metadata, trailer.
    Info(InfoArgs),
}

/// How to find the keys: private keys, the key blob, passphrases.
#[derive(Debug, Args, Clone, Default)]
pub struct KeyArgs {
    /// A private key (PKCS#8 or PKCS#1 PEM; X25519 or RSA). Repeatable.
    #[arg(short = 'k', long = "key", value_name = "PRIVATE_KEY")]
    pub keys: Vec<PathBuf>,

    /// Try every private key file in this directory.
    #[arg(long, value_name = "DIR")]
    pub key_dir: Option<PathBuf>,

    /// The key blob (seal header or FreeBSD key file); default: `key.<host>.N` beside `vmcore_encrypted.<host>.N`.
    #[arg(long, value_name = "KEY_BLOB")]
    pub keyfile: Option<PathBuf>,

    /// Read the passphrase of encrypted private keys from this file (first line). Otherwise the environment
    /// variable SEALDUMP_PASSPHRASE is used, or a prompt when stdin is a terminal.
    #[arg(long, value_name = "FILE")]
    pub passphrase_file: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct DecryptArgs {
    #[command(flatten)]
    pub keys: KeyArgs,

    /// Authenticate every chunk and the trailer; write nothing.
    #[arg(long, conflicts_with_all = ["salvage", "output", "force"])]
    pub verify: bool,

    /// Write every authentic chunk, zero-fill the rest and list the exact missing plaintext ranges.
    #[arg(long)]
    pub salvage: bool,

    /// Print the result (missing ranges, chunk counts) as JSON on stdout.
    #[arg(long)]
    pub json: bool,

    /// Overwrite the output if it exists.
    #[arg(short, long)]
    pub force: bool,

    /// Output file, or `-` for stdout; default: DUMP with `vmcore_encrypted` replaced by `vmcore`.
    /// A file is created exclusively (mode 0600) and removed if the dump turns out not authentic. `-` streams the
    /// plaintext in order as it is authenticated: if a later chunk fails, what was already written stays written
    /// and the exit status is 1.
    #[arg(short, long, value_name = "OUT")]
    pub output: Option<PathBuf>,

    /// Worker threads (default: all cores; at most 1024).
    #[arg(short = 'j', long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=1024))]
    pub threads: Option<u16>,

    /// The stored core, e.g. `vmcore_encrypted.<host>.N`.
    #[arg(required = true, value_name = "DUMP")]
    pub dump: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct InfoArgs {
    #[command(flatten)]
    pub keys: KeyArgs,

    /// Print the description as JSON.
    #[arg(long)]
    pub json: bool,

    /// The stored core, e.g. `vmcore_encrypted.<host>.N`.
    #[arg(value_name = "DUMP")]
    pub dump: PathBuf,
}
