//! `sealdump-decryptor`: offline verify, decrypt and salvage of sealed dumps (DESIGN §4, §7) and of FreeBSD
//! `dumpon -k` (EKCD) dumps, whose output is identical to `decryptcore(8)`'s.
//!
//! The binary is a thin shell over [`run`]; [`cli_command`] gives xtask the full clap command.
#![forbid(unsafe_code)]

#[path = "bin/sealdump-decryptor/cli.rs"]
pub mod cli;
pub mod ekcd;
pub mod engine;
#[path = "bin/sealdump-decryptor/error.rs"]
pub mod error;
pub mod info;
pub mod job;
pub mod keyload;
pub mod locate;
pub mod output;
pub mod progress;
pub mod sealed;

use std::path::Path;

use clap::CommandFactory;

use crate::cli::{Cli, Command};
use crate::error::{Error, Result};
use crate::job::Job;

/// Largest key blob accepted (a seal header is at most 4 KiB; a FreeBSD blob at most 37 + 2048, padded).
const MAX_KEY_BLOB: u64 = 1 << 16;

/// The full clap command of the `sealdump-decryptor` binary (for man pages and completions).
pub fn cli_command() -> clap::Command {
    Cli::command()
}

/// Runs a parsed command line.
pub fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Some(Command::Info(args)) => info::run(&args),
        None => decrypt(&cli.decrypt),
    }
}

/// Reads a key blob (bounded: it is small, and a wrong path to a vmcore must not be slurped).
pub fn read_key_blob(path: &Path) -> Result<Vec<u8>> {
    let len = std::fs::metadata(path).map_err(Error::io(path))?.len();
    if len > MAX_KEY_BLOB {
        return Err(Error::KeyBlob {
            path: path.to_path_buf(),
            message: format!("{len} bytes is too large for a key blob (a dump given as --keyfile?)"),
        });
    }
    std::fs::read(path).map_err(Error::io(path))
}

fn decrypt(args: &cli::DecryptArgs) -> Result<()> {
    let job = Job::from_args(args)?;
    let blob = read_key_blob(&job.key_blob)?;
    // The blob is parsed before any key is loaded, so a wrong file fails before a passphrase prompt.
    if sealed::looks_sealed(&blob) {
        sealed::run(&job, &blob, &args.keys)
    } else {
        ekcd::run(&job, &blob, &args.keys)
    }
}
