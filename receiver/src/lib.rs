//! `sealdump-receiver`: a netdumpd-compatible, hardened receiver for FreeBSD netdump and sealdump clients.
//!
//! - [`session`]: pure per-client state machine (no I/O, no clock).
#![forbid(unsafe_code)]

pub mod session;
