//! `sealdump-keytool`: key generation, export, fingerprints and client provisioning (DESIGN §5, §8).
//!
//! The logic lives here so it can be tested and reused; the binary only parses arguments and prints
//! errors. [`provision`] is the provisioning-file format, shared with the sender.
#![forbid(unsafe_code)]

#[path = "bin/sealdump-keytool/cli.rs"]
pub mod cli;
pub mod cmd;
pub mod error;
pub mod keyfile;
pub mod provision;

pub use error::Error;

/// The full clap command of `sealdump-keytool`, for man pages and shell completions.
pub fn cli_command() -> clap::Command {
    <cli::Cli as clap::CommandFactory>::command()
}

/// Runs a parsed command line, writing results to `out` and notes to `notes`.
pub fn run(cli: cli::Cli, out: &mut dyn std::io::Write, notes: &mut dyn std::io::Write) -> Result<(), Error> {
    match cli.command {
        cli::Command::Gen(args) => cmd::gen_key::run(&args, out, notes),
        cli::Command::Pub(args) => cmd::pub_key::run(&args, out),
        cli::Command::Fingerprint(args) => cmd::fingerprint::run(&args, out),
        cli::Command::Inspect(args) => cmd::inspect::run(&args, out),
        cli::Command::Provision(args) => cmd::provision::run(&args, out, notes),
    }
}
