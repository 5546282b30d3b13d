//! `sealdump-receiver`: a netdumpd-compatible, hardened receiver for FreeBSD netdump and sealdump clients.
//!
//! - [`session`]: pure per-client state machine (no I/O, no clock).
//! - [`store`]: netdumpd file names and rules.
//! - [`server`]: the tokio shell ([`server::run`]).
//! - [`cli`]: command line and TOML configuration.
//! - [`freebsd_client`]: a blocking client that behaves like FreeBSD's netdump (tests, benchmarks).
#![forbid(unsafe_code)]

pub mod cli;
pub mod freebsd_client;
pub mod server;
pub mod session;
pub mod store;

/// The full clap command of the `sealdump-receiver` binary (for man pages and completions).
pub fn cli_command() -> clap::Command {
    <cli::Cli as clap::CommandFactory>::command()
}
