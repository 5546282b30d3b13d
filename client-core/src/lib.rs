//! The sans-I/O, allocation-free sealdump client.
//!
//! `Client` speaks FreeBSD's netdump protocol (DESIGN §3) with a sliding window of many packets in flight, and
//! optionally seals the dump (DESIGN §4) on the way. It is a pure state machine in the shape of `quinn-proto`:
//! it never reads a clock and never touches a socket. The caller owns the I/O and the time:
//!
//! ```text
//!  loop {
//!      // 1. feed the dump: write() returns how much it took (0 = pipeline full, come back later)
//!      n = client.write(&data[pos..]);            ... then client.finish(kdh) once all is written
//!      // 2. send everything the client wants to send now
//!      //    `dump` is the whole dump (a DumpSource): retransmissions of older chunks re-read it
//!      while let Some(t) = client.poll_transmit(now, &mut buf, dump) { socket.send_to(&buf[..t.len], t.destination) }
//!      // 3. wait for a datagram or for client.poll_timeout(), whichever comes first
//!      on datagram:  client.handle_datagram(now, from, bytes)
//!      on deadline:  client.handle_timeout(now)
//!      // 4. drain events; Done / Failed end the dump
//!      while let Some(ev) = client.poll_event() { ... }
//!  }
//! ```
//!
//! # Memory
//! Every buffer is given by the caller ([`Buffers`]) and may live in a `static`. No packet bytes are kept: the
//! ring holds per-packet state only, and every message is built straight into the buffer given to
//! [`Client::poll_transmit`] (a first transmission copies its payload once, from the chunk buffer). With `W`
//! ring slots, payload size `P` and chunk size `C` ([`PLAIN_CHUNK_SIZE`] in plain mode) the client needs
//!
//! ```text
//!   W × size_of::<SlotState>()      per-packet state (32 bytes)
//! + N × (C + 16)                    N ≥ 2 chunk buffers: the chunk being written, the one being sent, and
//!                                   spare ones that keep sent chunks for retransmissions (N = 2 below)
//! + 4096                            seal header buffer (sealed mode; 0 in plain mode)
//! + 16 × tag_slots(W, P, C)         tags of the chunks with unacked bytes (sealed mode; 0 in plain mode)
//! + size_of::<Client>()             the state machine itself (3 168 bytes on x86_64, keys included)
//! ```
//!
//! At P = 1448, C = 64 KiB, sealed: W = 256 → 8 192 + 131 104 + 4 096 + 160 + 3 168 = 146 720 bytes (≈ 143 KiB);
//! W = 512 → 155 008 (≈ 151 KiB); W = 1024 → 32 768 + 131 104 + 4 096 + 432 + 3 168 = 171 568 (≈ 168 KiB).
//! [`ram_required`] computes it for any configuration. No stack buffer larger than the 512-byte kernel dump
//! header is used.
//!
//! # Re-reading the dump
//! Only the chunks that fit the chunk buffers are kept, so a retransmission may need bytes of an older chunk. The
//! client then reads that chunk's plaintext again from the [`DumpSource`] given to [`Client::poll_transmit`] (the
//! dump itself: a panicking kernel's memory, a file, a slice) and, sealed, seals it again with the same key and
//! nonce (the chunk index), which gives the same bytes. The tag of every chunk with unacked bytes is kept; a
//! re-sealed chunk whose tag differs means the source changed under the dump, and sending it would reuse an AEAD
//! nonce for other plaintext: it is never sent, and the dump ends with [`FailReason::SourceChanged`]. A source
//! that cannot seek (a pipe) keeps the bytes from [`Client::retained_from`] on.
//!
//! Cost: nothing without loss (a chunk's first transmissions only ever use its buffer). Retransmissions go out
//! oldest first, so lost packets of one chunk share a re-read. With two buffers, one holds the chunk being
//! written, so the chunk being sent usually gives up its buffer and is sealed again after the retransmission: a
//! loss on a window longer than two chunks costs about two chunk seals (2 × 64 KiB at the default chunk size;
//! smaller chunks make a loss cheaper). Spare buffers (up to [`MAX_CHUNK_BUFFERS`]) keep the most recently sent
//! chunks, and a loss is usually found within a round trip of its send, so a client with a few MiB to spare
//! (sealdump-send gives 64) resends from them without reading or sealing anything.
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
/// Chunk size in plain mode (the unit the dump is buffered and re-read in).
pub const PLAIN_CHUNK_SIZE: usize = 1 << 16;
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
    /// Maximum packets in flight; at most the number of ring slots (`Buffers::slot_state.len()`). Each costs
    /// only its 32-byte [`SlotState`], so windows of thousands are cheap.
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
    /// One entry per ring slot (`[SlotState::EMPTY; N]`); N ≥ 2 and ≥ `Config::window`.
    pub slot_state: &'a mut [SlotState],
    /// The chunk buffers, `chunk size + TAG_LEN` bytes each (plain mode: of [`PLAIN_CHUNK_SIZE`]): at least two
    /// ([`chunk_buffer_len`]), at most [`MAX_CHUNK_BUFFERS`] are used ([`chunk_buffers_len`]). Buffers beyond
    /// two keep recently sent chunks, so a retransmission seldom reads and seals its chunk again.
    pub chunks: &'a mut [u8],
    /// Sealed mode: at least [`HEADER_BUFFER_LEN`] bytes. Plain mode: unused, may be empty.
    pub header: &'a mut [u8],
    /// Sealed mode: tags of the chunks still unacked, at least [`min_tag_slots`] entries; fewer than
    /// [`tag_slots`] throttles the window. Plain mode: unused, may be empty.
    pub tags: &'a mut [[u8; TAG_LEN]],
}

/// Largest datagram the client sends for a payload size: the length of the buffer given to
/// [`Client::poll_transmit`].
pub const fn datagram_len(payload_size: usize) -> usize {
    HEADER_LEN + payload_size
}

/// Bytes of the two chunk buffers a client needs at least, for a chunk size.
pub const fn chunk_buffer_len(chunk_size: usize) -> usize {
    chunk_buffers_len(2, chunk_size)
}

/// Bytes of `count` chunk buffers for a chunk size.
pub const fn chunk_buffers_len(count: usize, chunk_size: usize) -> usize {
    count * (chunk_size + TAG_LEN)
}

/// Most chunk buffers a client uses (the rest of a longer [`Buffers::chunks`] is left alone).
pub const MAX_CHUNK_BUFFERS: usize = 64;

/// Tag slots that never throttle a window of `window` packets: every chunk a window of stream bytes can
/// touch, plus the two buffered ones and the one being written.
pub const fn tag_slots(window: usize, payload_size: usize, chunk_size: usize) -> usize {
    (window * payload_size).div_ceil(chunk_size + TAG_LEN) + 4
}

/// Fewest tag slots a sealed client works with: the chunks that the bytes short of a whole message (waiting for
/// the next chunk) can span, plus the one being written. 2 unless messages are longer than a record.
pub const fn min_tag_slots(payload_size: usize, chunk_size: usize) -> usize {
    1 + payload_size.saturating_sub(1).div_ceil(chunk_size + TAG_LEN)
}

/// Total RAM for a sealed client with `window` ring slots, `payload_size`-byte payloads and `chunk_size`-byte
/// chunks: the caller's [`Buffers`] (with [`tag_slots`] tags) plus the `Client` value itself.
pub const fn ram_required(window: usize, payload_size: usize, chunk_size: usize) -> usize {
    window * core::mem::size_of::<SlotState>()
        + chunk_buffer_len(chunk_size)
        + HEADER_BUFFER_LEN
        + tag_slots(window, payload_size, chunk_size) * TAG_LEN
        + core::mem::size_of::<Client<'static>>()
}

/// The dump being sent, for re-reading chunks the client no longer buffers.
///
/// `read_at(offset, buf)` must fill `buf` with the dump bytes at `offset`: exactly the bytes given to
/// [`Client::write`] when `stats().bytes_written` was `offset`. The client asks only for bytes it was given
/// and at or after [`Client::retained_from`]. Implemented for byte slices (`&[u8]`: a dump in memory).
pub trait DumpSource {
    /// Fills all of `buf` with the dump bytes at `offset`.
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<(), SourceError>;
}

impl DumpSource for [u8] {
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<(), SourceError> {
        let start = usize::try_from(offset).map_err(|_| SourceError::Unavailable)?;
        let bytes = start
            .checked_add(buf.len())
            .and_then(|end| self.get(start..end))
            .ok_or(SourceError::Unavailable)?;
        buf.copy_from_slice(bytes);
        Ok(())
    }
}

impl<T: DumpSource + ?Sized> DumpSource for &T {
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<(), SourceError> {
        (**self).read_at(offset, buf)
    }
}

/// Why a [`DumpSource`] could not give bytes back.
#[non_exhaustive]
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum SourceError {
    /// The bytes are not (or no longer) available: outside the dump, or forgotten by a source that cannot
    /// seek.
    Unavailable,
    /// Reading them failed.
    Io,
}

impl core::fmt::Display for SourceError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            SourceError::Unavailable => "the dump bytes are no longer available",
            SourceError::Io => "reading the dump failed",
        })
    }
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
    /// Datagrams sent again (tail-loss probes included).
    pub retransmits: u64,
    /// Retransmission timeouts that declared packets lost.
    pub timeouts: u64,
    /// Tail-loss probes sent.
    pub probes: u64,
    /// Smoothed round-trip time in microseconds (0 before the first sample).
    pub srtt_us: u64,
    /// Congestion window in packets.
    pub cwnd: u32,
    /// Chunks read again from the [`DumpSource`] (and, sealed, sealed again) to be retransmitted.
    pub chunks_reread: u64,
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
    /// The [`DumpSource`] could not give back a chunk needed for a retransmission.
    Source(SourceError),
    /// A chunk read again from the [`DumpSource`] differs from the bytes written: the dump source changed
    /// during the dump. Its new bytes were not sent (sealed, that would reuse an AEAD nonce).
    SourceChanged,
}

impl core::fmt::Display for FailReason {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            FailReason::NoServer => f.write_str("the receiver never answered the herald"),
            FailReason::Timeout => f.write_str("the receiver stopped acknowledging"),
            FailReason::Aborted => f.write_str("the dump was aborted by the client"),
            FailReason::Crypto(e) => write!(f, "sealing failed: {e}"),
            FailReason::Source(e) => write!(f, "cannot re-read the dump for a retransmission: {e}"),
            FailReason::SourceChanged => f.write_str("dump source changed during the dump"),
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
    /// The chunk buffers are shorter than [`chunk_buffer_len`]`(chunk size)`.
    ChunkBuffer,
    /// Fewer than [`min_tag_slots`] tag slots (sealed mode).
    TagBuffer,
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
            Error::ChunkBuffer => f.write_str("chunk buffers must hold 2 × (chunk size + 16) bytes"),
            Error::TagBuffer => {
                f.write_str("too few tag slots for the payload and chunk size (min_tag_slots)")
            }
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
