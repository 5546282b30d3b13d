//! `sealdump-receiver`: a netdumpd-compatible, hardened receiver for FreeBSD netdump and sealdump clients.
//!
//! - [`session`]: pure per-client state machine (no I/O, no clock).
//! - [`store`]: netdumpd file names and rules.
#![forbid(unsafe_code)]

pub mod session;
pub mod store;
