//! `sealdump-decryptor`: see `--help`.
#![forbid(unsafe_code)]

use std::process::ExitCode;

use clap::Parser;
use sealdump_decryptor::cli::Cli;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match sealdump_decryptor::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("sealdump-decryptor: {e}");
            ExitCode::from(u8::try_from(e.exit_code()).unwrap_or(2))
        }
    }
}
