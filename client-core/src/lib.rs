//! The sans-I/O, allocation-free sealdump client.
//!
//! `Client` speaks FreeBSD's netdump protocol (DESIGN §3) with a sliding window of many packets in flight, and
//! optionally seals the dump (DESIGN §4) on the way. It is a pure state machine in the shape of `quinn-proto`:
//! it never reads a clock and never touches a socket. The caller owns the I/O and the time:
//!
//! ```text
//!  loop {
//!      // 1. feed the dump: write() returns how much it took (0 = window full, come back later)
//!      n = client.write(&data[pos..]);            ... then client.finish(kdh) once all is written
//!      // 2. send everything the client wants to send now
//!      while let Some(t) = client.poll_transmit(now, &mut buf) { socket.send_to(&buf[..t.len], t.destination) }
//!      // 3. wait for a datagram or for client.poll_timeout(), whichever comes first
//!      on datagram:  client.handle_datagram(now, from, bytes)
//!      on deadline:  client.handle_timeout(now)
//!      // 4. drain events; Done / Failed end the dump
//!      while let Some(ev) = client.poll_event() { ... }
//!  }
//! ```
//!
//! # Memory
//! Every buffer is given by the caller ([`Buffers`]) and may live in a `static`. With `W` ring slots,
//! payload size `P` and chunk size `C` (sealed mode) the client needs
//!
//! ```text
//!   W × (24 + P)                 packet slots (each holds one complete netdump message)
//! + W × size_of::<SlotState>()   per-slot bookkeeping (32 bytes)
//! + C + 16                       chunk buffer (sealed mode; 0 in plain mode)
//! + 4096                         seal header buffer (sealed mode; 0 in plain mode)
//! + size_of::<Client>()          the state machine itself (1 920 bytes on x86_64, keys included)
//! ```
//!
//! At W = 256, P = 1448, C = 64 KiB: 376 832 + 8 192 + 65 552 + 4 096 + 1 920 = 456 592 bytes (≈ 446 KiB);
//! [`ram_required`] computes it for any configuration. A 64-slot window with 64 KiB chunks needs ≈ 165 KiB.
//! No stack buffer larger than the 512-byte kernel dump header is used.
//!
//! # Protocol (FreeBSD netdump, DESIGN §3)
//! HERALD (seqno 1, optional path) to the herald address → the first ack's source port is the session port →
//! sealed mode: the seal header as EKCD_KEY at offsets 0, P, 2P… → the record stream as VMCORE at stream
//! offsets → the kernel dump header (KDH, redacted when sealed) → FINISHED once every other message is acked.
//! Each message is acked individually (4-byte big-endian seqno), so a stock netdumpd is a valid receiver.
//!
//! # Transport
//! Up to `window` messages in flight, limited further by an AIMD congestion window that slow-starts from
//! [`INITIAL_CWND`]; RFC 6298 RTT estimation with the RTO floored at [`MIN_RTO`]; a message is resent at once
//! when messages sent 3 transmissions after it are acked, or 9/8 RTT after its send once a later one is acked
//! (RFC 9002's packet and time thresholds, both widened on a path shown to reorder), or when the RTO fires
//! (undone if its acks turn up late); no ack progress for `give_up_after` ends the dump with [`Event::Failed`].
#![no_std]
#![forbid(unsafe_code)]

#[cfg(test)]
extern crate std;

mod client;
mod congestion;
mod rtt;
mod slot;
mod time;

#[cfg(test)]
mod tests;

pub use core::net::SocketAddr;
pub use core::time::Duration;

pub use client::Client;
pub use congestion::{INITIAL_CWND, MIN_CWND};
pub use rtt::{INITIAL_RTO, MAX_RTO, MIN_RTO};
pub use sealdump_crypto::DumpKey;
/// The sealed-format API this crate drives (re-exported for callers building a [`Mode::Sealed`]).
pub use sealdump_crypto::seal;
pub use slot::SlotState;
pub use time::Instant;

use sealdump_wire::netdump::HEADER_LEN;

/// Payload bytes per message at a 1500-byte MTU (1500 − 20 IP − 8 UDP − 24 netdump).
pub const DEFAULT_PAYLOAD_SIZE: usize = 1448;
/// Default number of packets in flight.
pub const DEFAULT_WINDOW: usize = 256;
/// Default give-up deadline: no ack progress for this long fails the dump.
pub const DEFAULT_GIVE_UP_AFTER: Duration = Duration::from_secs(30);
/// Smallest payload size: the 512-byte kernel dump header must fit one message (netdumpd rejects a split one).
pub const MIN_PAYLOAD_SIZE: usize = 512;
/// Largest payload size (a 65 507-byte UDP payload).
pub const MAX_PAYLOAD_SIZE: usize = sealdump_wire::netdump::MAX_PAYLOAD;
/// Size of the seal header buffer.
pub const HEADER_BUFFER_LEN: usize = 4096;
/// Longest herald path (without its NUL) netdumpd accepts.
pub const MAX_HERALD_PATH: usize = 1023;
/// AEAD tag length appended to each sealed chunk.
pub const TAG_LEN: usize = 16;

/// Where to send the dump and how.
#[derive(Debug)]
pub struct Config<'a> {
    /// The receiver's herald address (port 20023 normally).
    pub server: SocketAddr,
    /// Relative path for the dump on the receiver (sent in the herald); may be empty. No NUL bytes.
    pub herald_path: &'a [u8],
    /// Payload bytes per message: 1448 at MTU 1500; 512 ..= 65 483.
    pub payload_size: usize,
    /// Maximum packets in flight; at most the number of ring slots (`Buffers::slot_state.len()`).
    pub window: usize,
    /// No ack progress for this long ends the dump with [`Event::Failed`].
    pub give_up_after: Duration,
    /// Plain or sealed.
    pub mode: Mode<'a>,
}

impl<'a> Config<'a> {
    /// A config with the defaults: no herald path, 1448-byte payloads, window 256, give up after 30 s.
    pub fn new(server: SocketAddr, mode: Mode<'a>) -> Self {
        Self {
            server,
            herald_path: &[],
            payload_size: DEFAULT_PAYLOAD_SIZE,
            window: DEFAULT_WINDOW,
            give_up_after: DEFAULT_GIVE_UP_AFTER,
            mode,
        }
    }
}

/// What goes on the wire.
pub enum Mode<'a> {
    /// The dump bytes as they are (tests, legacy receivers and analysts without keys). No EKCD_KEY message.
    Plain,
    /// The dump sealed for the recipients (DESIGN §4): seal header as EKCD_KEY, record stream as VMCORE.
    Sealed {
        /// AEAD, chunk size, compression id and time written into the header.
        params: seal::Params,
        /// One to eight recipients.
        recipients: &'a [seal::Recipient<'a>],
        /// A dump key whose RSA stanzas were pre-wrapped when the client was armed (`Recipient::Prewrapped`);
        /// `None` draws a fresh one from the RNG given to [`Client::new`].
        dump_key: Option<DumpKey>,
        /// Sealed metadata; the real kernel dump header never crosses the wire in clear.
        metadata: seal::Metadata<'a>,
    },
}

impl core::fmt::Debug for Mode<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Mode::Plain => f.write_str("Plain"),
            Mode::Sealed {
                params, recipients, ..
            } => f
                .debug_struct("Sealed")
                .field("params", params)
                .field("recipients", &recipients.len())
                .finish_non_exhaustive(),
        }
    }
}

/// The caller-provided memory. See the crate docs and [`ram_required`] for sizes.
#[derive(Debug)]
pub struct Buffers<'a> {
    /// `slot_state.len() × slot_len` bytes of packet slots.
    pub slots: &'a mut [u8],
    /// Bytes per slot: at least `24 + payload_size` ([`slot_len`]).
    pub slot_len: usize,
    /// One entry per ring slot (`[SlotState::EMPTY; N]`); N ≥ 2 and ≥ `Config::window`.
    pub slot_state: &'a mut [SlotState],
    /// Sealed mode: at least chunk size + 16 bytes. Plain mode: unused, may be empty.
    pub chunk: &'a mut [u8],
    /// Sealed mode: at least [`HEADER_BUFFER_LEN`] bytes. Plain mode: unused, may be empty.
    pub header: &'a mut [u8],
}

/// Bytes per packet slot for a payload size.
pub const fn slot_len(payload_size: usize) -> usize {
    HEADER_LEN + payload_size
}

/// Total RAM for a sealed client with `window` ring slots, `payload_size`-byte payloads and `chunk_size`-byte
/// chunks: the caller's [`Buffers`] plus the `Client` value itself (see the crate docs for the formula).
pub const fn ram_required(window: usize, payload_size: usize, chunk_size: usize) -> usize {
    window * slot_len(payload_size)
        + window * core::mem::size_of::<SlotState>()
        + chunk_size
        + TAG_LEN
        + HEADER_BUFFER_LEN
        + core::mem::size_of::<Client<'static>>()
}

/// A datagram to send: `buf[..len]` (the buffer given to [`Client::poll_transmit`]) to `destination`.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Transmit {
    /// Where to send it: the herald address, then the session address learnt from the first ack.
    pub destination: SocketAddr,
    /// Datagram length.
    pub len: usize,
}

/// Something the caller should know.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// The herald was acked; `server` is the session address all later messages go to.
    Connected {
        /// Receiver address and session port.
        server: SocketAddr,
    },
    /// Acks advanced (coalesced: one event however many acks came in since the last poll).
    Progress(Stats),
    /// FINISHED was acked: the receiver has the whole dump.
    Done(Stats),
    /// The dump ended without FINISHED being acked.
    Failed(FailReason),
}

/// Counters, for progress bars and benchmarks.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Dump bytes accepted by [`Client::write`] (plaintext).
    pub bytes_written: u64,
    /// VMCORE payload bytes acked (the record stream: sealed chunks with their tags and the trailer).
    pub bytes_acked: u64,
    /// Datagrams sent, retransmissions and the herald included.
    pub packets_sent: u64,
    /// Datagrams sent again.
    pub retransmits: u64,
    /// Smoothed round-trip time in microseconds (0 before the first sample).
    pub srtt_us: u64,
    /// Congestion window in packets.
    pub cwnd: u32,
}

/// Why a dump failed.
#[non_exhaustive]
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum FailReason {
    /// The herald was never acked within `give_up_after`.
    NoServer,
    /// No ack progress for `give_up_after` after the receiver had answered.
    Timeout,
    /// [`Client::abort`] was called; the data sent so far (and, sealed, an authentic "aborted" trailer) was
    /// delivered, FINISHED was not sent.
    Aborted,
    /// Sealing a chunk or the trailer failed (cannot happen with a consistent configuration).
    Crypto(sealdump_crypto::error::Error),
}

impl core::fmt::Display for FailReason {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            FailReason::NoServer => f.write_str("the receiver never answered the herald"),
            FailReason::Timeout => f.write_str("the receiver stopped acknowledging"),
            FailReason::Aborted => f.write_str("the dump was aborted by the client"),
            FailReason::Crypto(e) => write!(f, "sealing failed: {e}"),
        }
    }
}

/// Why [`Client::new`] refused a configuration.
#[non_exhaustive]
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Error {
    /// `payload_size` is outside [`MIN_PAYLOAD_SIZE`]..=[`MAX_PAYLOAD_SIZE`].
    PayloadSize,
    /// `window` is 0 or larger than the number of ring slots, or fewer than 2 slots.
    Window,
    /// `slot_len` < 24 + `payload_size`, or `slots` is shorter than slots × `slot_len`.
    SlotBuffer,
    /// The chunk buffer is shorter than chunk size + 16 (sealed mode).
    ChunkBuffer,
    /// The header buffer is shorter than [`HEADER_BUFFER_LEN`] (sealed mode).
    HeaderBuffer,
    /// The herald path is too long or contains a NUL byte.
    HeraldPath,
    /// Writing the seal header failed (no or too many recipients, bad parameters, ...).
    Crypto(sealdump_crypto::error::Error),
}

impl core::fmt::Display for Error {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Error::PayloadSize => write!(
                f,
                "payload size must be {MIN_PAYLOAD_SIZE}..={MAX_PAYLOAD_SIZE} bytes"
            ),
            Error::Window => f.write_str("window must be 1..=number of slots, with at least 2 slots"),
            Error::SlotBuffer => f.write_str("slot buffer too small for the slot count and payload size"),
            Error::ChunkBuffer => f.write_str("chunk buffer must hold chunk size + 16 bytes"),
            Error::HeaderBuffer => write!(f, "header buffer must hold {HEADER_BUFFER_LEN} bytes"),
            Error::HeraldPath => write!(
                f,
                "herald path must be at most {MAX_HERALD_PATH} bytes without NUL"
            ),
            Error::Crypto(e) => write!(f, "cannot write the seal header: {e}"),
        }
    }
}

impl core::error::Error for Error {}
