//! `sealdump-keytool`: key generation, export, fingerprints and client provisioning.
#![forbid(unsafe_code)]

mod error;

use std::process::ExitCode;

use clap::Parser;
use sealdump_keytool::cli::Cli;

fn main() -> ExitCode {
    // clap prints its own usage errors and exits 2 (0 for --help / --version).
    let cli = Cli::parse();
    let mut stdout = std::io::stdout().lock();
    let mut stderr = std::io::stderr();
    match sealdump_keytool::run(cli, &mut stdout, &mut stderr) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => error::report(&err),
    }
}
