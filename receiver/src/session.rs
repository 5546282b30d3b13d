//! Pure, deterministic netdump session logic: no sockets, no clock, no files.
//!
//! One [`Session`] per client (netdumpd keys clients by IP address). The I/O shell feeds it
//! datagrams that arrived on the session's socket and the current time; the session answers with an
//! [`Output`] telling the shell what to write and which seqno to ack, and *when* (netdumpd's timing:
//! VMCORE acked once buffered, EKCD_KEY after its write, KDH at once, FINISHED after flush + fsync).
//! Nothing here allocates per packet: data is handed back as a borrow of the input datagram.
//!
//! Call order (quinn-proto style):
//! 1. [`parse_herald`] on a datagram from the herald port → [`Session::new`]; ack `herald.seqno`.
//!    A later herald from the same IP goes to [`Session::handle_herald`] (netdumpd's duplicate-herald rule).
//! 2. [`Session::handle_datagram`] for each datagram on the session socket; act on the [`Output`].
//! 3. [`Session::handle_timeout`] when [`Session::poll_timeout`] is reached (idle timeout, linger end).
//! 4. After [`Output::Finished`] (or [`Closed::TimedOut`]) read [`Session::is_complete`],
//!    [`Session::holes`], [`Session::encryption`], [`Session::stats`] for the info file.
//!
//! ```
//! use sealdump_receiver::session::{parse_herald, Instant, Output, Session, SessionConfig};
//! # fn header(t: u32, seq: u32, off: u64, payload: &[u8]) -> Vec<u8> {
//! #     let mut v = Vec::new();
//! #     v.extend_from_slice(&t.to_be_bytes()); v.extend_from_slice(&seq.to_be_bytes());
//! #     v.extend_from_slice(&off.to_be_bytes()); v.extend_from_slice(&(payload.len() as u32).to_be_bytes());
//! #     v.extend_from_slice(&0u32.to_be_bytes()); v.extend_from_slice(payload); v }
//! let client = "127.0.0.1:20024".parse().unwrap();
//! let now = Instant::from_micros(0);
//! let herald_bytes = header(1, 1, 0, b"");
//! let herald = parse_herald(&herald_bytes).unwrap();
//! let mut session = Session::new(SessionConfig::default(), now, client, &herald);
//! let data = header(3, 2, 0, &[0xab; 1448]);
//! match session.handle_datagram(now, client, &data) {
//!     Output::Core { seqno, offset, data } => {
//!         // hand (offset, data) to the writer, then send the 4-byte ack `seqno.to_be_bytes()`
//!         assert_eq!((seqno, offset, data.len()), (2, 0, 1448));
//!     }
//!     other => panic!("unexpected {other:?}"),
//! }
//! let finished = header(2, 3, 0, b"");
//! assert!(matches!(session.handle_datagram(now, client, &finished), Output::Finished { seqno: 3, complete: true }));
//! ```

use core::fmt;
use core::net::SocketAddr;
use core::time::Duration;

// Netdump message header length, the largest payload after it, and the most path bytes (NUL included)
// netdumpd reads from a herald.
pub use sealdump_wire::netdump::{HEADER_LEN, MAX_HERALD_PATH, MAX_PAYLOAD};
/// The sealed-dump magic, first 8 bytes of the key blob.
pub const SEAL_MAGIC: [u8; 8] = *b"SEALDUMP";
/// Bytes of the key blob kept in memory to classify it (netdump key blobs are 4096 bytes; sealed headers ≤ 4096).
pub const KEY_MIRROR_LEN: usize = 4096;
/// Largest key blob accepted (37 + 2048 rounded to 4096 for FreeBSD; 4096 for sealed headers).
pub const MAX_KEY_LEN: u64 = 16 * 1024;
// Size of the kernel dump header.
pub use sealdump_wire::kdh::KDH_LEN;
/// Sealed trailer record on the wire: 32 bytes of plaintext + 16-byte tag.
pub const SEAL_TRAILER_LEN: u64 = 48;
/// AEAD tag length of sealed records.
pub const SEAL_TAG_LEN: u64 = 16;

const TYPE_HERALD: u32 = 1;
const TYPE_FINISHED: u32 = 2;
const TYPE_VMCORE: u32 = 3;
const TYPE_KDH: u32 = 4;
const TYPE_EKCD_KEY: u32 = 5;

/// A point in time, in microseconds since an arbitrary epoch chosen by the caller.
#[derive(Copy, Clone, PartialEq, Eq, PartialOrd, Ord, Debug, Default, Hash)]
pub struct Instant(u64);

impl Instant {
    /// From microseconds since the caller's epoch.
    pub const fn from_micros(us: u64) -> Self {
        Self(us)
    }
    /// From milliseconds since the caller's epoch.
    pub const fn from_millis(ms: u64) -> Self {
        Self(ms.saturating_mul(1000))
    }
    /// Microseconds since the caller's epoch.
    pub const fn as_micros(self) -> u64 {
        self.0
    }
    /// Time elapsed from `earlier` to `self` (zero if `earlier` is later).
    pub fn saturating_since(self, earlier: Instant) -> Duration {
        Duration::from_micros(self.0.saturating_sub(earlier.0))
    }
}

impl core::ops::Add<Duration> for Instant {
    type Output = Instant;
    fn add(self, d: Duration) -> Instant {
        Instant(
            self.0
                .saturating_add(u64::try_from(d.as_micros()).unwrap_or(u64::MAX)),
        )
    }
}

/// Limits and timers of a session.
#[derive(Clone, Debug)]
pub struct SessionConfig {
    /// A session with no valid datagram for this long is timed out (netdumpd: 600 s).
    pub idle_timeout: Duration,
    /// After FINISHED the session stays this long to re-ack a repeated FINISHED whose ack was lost.
    pub linger: Duration,
    /// Largest accepted payload per datagram.
    pub max_payload: usize,
    /// Largest accepted core file (bytes); data beyond it is rejected (not acked).
    pub max_dump_size: u64,
    /// Cap on distinct received ranges (memory bound against a client that scatters tiny writes).
    pub max_ranges: usize,
}

impl Default for SessionConfig {
    fn default() -> Self {
        Self {
            idle_timeout: Duration::from_secs(600),
            linger: Duration::from_secs(30),
            max_payload: MAX_PAYLOAD,
            max_dump_size: u64::MAX,
            max_ranges: 1 << 16,
        }
    }
}

/// How long after a session's last datagram a repeated herald from the same address, port and seqno still counts
/// as a duplicate of the one that opened it rather than a restarted client (netdumpd restarts at once).
pub const DUPLICATE_HERALD_WINDOW: Duration = Duration::from_secs(5);

/// Why a datagram was dropped without an ack.
#[non_exhaustive]
#[derive(Copy, Clone, PartialEq, Eq, Debug)]
pub enum Reject {
    /// Shorter than the 24-byte header.
    Undersize,
    /// Length is not exactly 24 + `mh_len` (netdumpd's "Bad packet size").
    BadLength,
    /// Payload larger than the configured maximum.
    Oversize,
    /// Message type outside 1..=5.
    UnknownType(u32),
    /// From an address other than the herald's source.
    ForeignSource,
    /// A HERALD on the session socket.
    UnexpectedHerald,
    /// `mh_offset + mh_len` overflows or exceeds the dump-size limit.
    TooLarge,
    /// Key blob beyond [`MAX_KEY_LEN`].
    KeyTooLarge,
    /// Too many disjoint ranges (hostile scatter).
    TooFragmented,
    /// The session already finished or timed out.
    Closed,
    /// A HERALD with a path longer than 1024 bytes.
    HeraldPathTooLong,
}

impl fmt::Display for Reject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reject::Undersize => f.write_str("datagram shorter than the netdump header"),
            Reject::BadLength => f.write_str("bad packet size (length != 24 + mh_len)"),
            Reject::Oversize => f.write_str("payload larger than the limit"),
            Reject::UnknownType(t) => write!(f, "unknown message type {t}"),
            Reject::ForeignSource => f.write_str("datagram from an address other than the client's"),
            Reject::UnexpectedHerald => f.write_str("herald on a session socket"),
            Reject::TooLarge => f.write_str("data beyond the dump-size limit"),
            Reject::KeyTooLarge => f.write_str("key blob too large"),
            Reject::TooFragmented => f.write_str("too many disjoint ranges"),
            Reject::Closed => f.write_str("session closed"),
            Reject::HeraldPathTooLong => f.write_str("herald path longer than 1024 bytes"),
        }
    }
}

/// The fields of a netdump message header.
#[derive(Copy, Clone, PartialEq, Eq, Debug)]
pub struct Header {
    /// `mh_type`.
    pub msg_type: u32,
    /// `mh_seqno`.
    pub seqno: u32,
    /// `mh_offset`.
    pub offset: u64,
    /// `mh_len`.
    pub len: u32,
    /// `mh_aux2` (13+), `mh__pad` (12.x).
    pub aux2: u32,
}

/// Parses a netdump datagram: exact length (netdumpd's rule), payload ≤ `max_payload`, type 1..=5.
pub fn parse_message(bytes: &[u8], max_payload: usize) -> Result<(Header, &[u8]), Reject> {
    use sealdump_wire::netdump::{MessageType, Packet};
    if bytes.len() < HEADER_LEN {
        return Err(Reject::Undersize);
    }
    if bytes.len() - HEADER_LEN > max_payload {
        return Err(Reject::Oversize);
    }
    let packet = Packet::new_checked(bytes).map_err(|_| Reject::BadLength)?;
    let header = Header {
        msg_type: packet.msg_type(),
        seqno: packet.seqno(),
        offset: packet.offset(),
        len: packet.payload_len(),
        aux2: packet.aux2(),
    };
    if MessageType::try_from(header.msg_type).is_err() {
        return Err(Reject::UnknownType(header.msg_type));
    }
    Ok((header, &bytes[HEADER_LEN..]))
}

/// A parsed HERALD.
#[derive(Copy, Clone, PartialEq, Eq, Debug)]
pub struct Herald<'a> {
    /// Seqno to ack (1 for FreeBSD clients).
    pub seqno: u32,
    /// `mh_aux2` of the herald.
    pub aux2: u32,
    /// The requested path, if the herald carried a NUL-terminated one (raw bytes, not yet checked).
    pub path: Option<&'a [u8]>,
}

/// Parses a datagram that arrived on the herald port. netdumpd's rules: type HERALD, exact length,
/// the path used only if 0 < `mh_len` ≤ 1024 and its last byte is NUL (cut at the first NUL).
pub fn parse_herald(bytes: &[u8]) -> Result<Herald<'_>, Reject> {
    let (header, payload) = parse_message(bytes, MAX_PAYLOAD)?;
    if header.msg_type != TYPE_HERALD {
        return Err(Reject::UnknownType(header.msg_type));
    }
    if payload.len() > MAX_HERALD_PATH {
        return Err(Reject::HeraldPathTooLong);
    }
    let path = match payload.split_last() {
        Some((0, _)) => {
            let end = payload.iter().position(|&b| b == 0).unwrap_or(0);
            let p = &payload[..end];
            (!p.is_empty()).then_some(p)
        }
        _ => None,
    };
    Ok(Herald {
        seqno: header.seqno,
        aux2: header.aux2,
        path,
    })
}

/// Checks a herald path: relative, `[A-Za-z0-9._-]` components separated by '/', no `.`/`..`
/// components, at most 1023 bytes. Returns the cleaned path (a trailing '/' and repeated '/' removed)
/// as components, or `None` if the path must not be used.
pub fn check_herald_path(path: &[u8]) -> Option<impl Iterator<Item = &str> + '_> {
    if path.is_empty() || path.first() == Some(&b'/') || path.len() >= MAX_HERALD_PATH {
        return None;
    }
    let allowed = |b: &u8| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'/');
    if !path.iter().all(allowed) {
        return None;
    }
    let text = core::str::from_utf8(path).ok()?;
    let mut components = text.split('/').filter(|c| !c.is_empty()).peekable();
    components.peek()?;
    if text.split('/').any(|c| c == "." || c == "..") {
        return None;
    }
    Some(components)
}

/// Sorted, disjoint, half-open byte ranges that arrived.
#[derive(Clone, Debug, Default)]
pub struct RangeSet {
    ranges: Vec<(u64, u64)>,
}

impl RangeSet {
    /// An empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `[start, end)`; returns how many bytes were not already present.
    /// In-order arrival extends the last range without allocating.
    pub fn insert(&mut self, start: u64, end: u64) -> u64 {
        if start >= end {
            return 0;
        }
        if let Some(last) = self.ranges.last_mut() {
            if last.1 == start {
                last.1 = end;
                return end - start;
            }
            if last.1 < start {
                self.ranges.push((start, end));
                return end - start;
            }
        } else {
            self.ranges.push((start, end));
            return end - start;
        }
        // First range that ends at or after `start` (touching ranges merge).
        let first = self.ranges.partition_point(|r| r.1 < start);
        let mut covered = 0u64;
        let mut new_start = start;
        let mut new_end = end;
        let mut last = first;
        while let Some(&(s, e)) = self.ranges.get(last) {
            if s > end {
                break;
            }
            covered += e.min(end).saturating_sub(s.max(start));
            new_start = new_start.min(s);
            new_end = new_end.max(e);
            last += 1;
        }
        if first == last {
            self.ranges.insert(first, (start, end));
        } else {
            self.ranges[first] = (new_start, new_end);
            self.ranges.drain(first + 1..last);
        }
        (end - start) - covered
    }

    /// Whether `[start, end)` is entirely present.
    pub fn contains(&self, start: u64, end: u64) -> bool {
        let i = self.ranges.partition_point(|r| r.1 < end);
        self.ranges.get(i).is_some_and(|&(s, e)| s <= start && e >= end)
    }

    /// End of the highest range (0 if empty).
    pub fn end(&self) -> u64 {
        self.ranges.last().map_or(0, |r| r.1)
    }

    /// Total bytes present.
    pub fn total(&self) -> u64 {
        self.ranges.iter().map(|r| r.1 - r.0).sum()
    }

    /// Number of disjoint ranges.
    pub fn len(&self) -> usize {
        self.ranges.len()
    }

    /// Whether no byte arrived.
    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }

    /// The ranges present.
    pub fn ranges(&self) -> &[(u64, u64)] {
        &self.ranges
    }

    /// Missing ranges inside `[0, upto)`.
    pub fn holes(&self, upto: u64) -> impl Iterator<Item = (u64, u64)> + '_ {
        let mut cursor = 0u64;
        let mut iter = self.ranges.iter();
        let mut done = false;
        core::iter::from_fn(move || {
            while !done {
                match iter.next() {
                    Some(&(s, e)) => {
                        let hole = (cursor, s.min(upto));
                        cursor = cursor.max(e);
                        if hole.0 < hole.1 {
                            return Some(hole);
                        }
                        if cursor >= upto {
                            done = true;
                        }
                    }
                    None => {
                        done = true;
                        if cursor < upto {
                            return Some((cursor, upto));
                        }
                    }
                }
            }
            None
        })
    }
}

/// How the dump is encrypted, as far as the receiver can tell from the key blob.
#[non_exhaustive]
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum Encryption {
    /// No key blob arrived.
    None,
    /// FreeBSD `dumpon -k` (EKCD); `cipher` is `kdk_encryption` (1 AES-256-CBC, 2 ChaCha20).
    Ekcd {
        /// `kdk_encryption`.
        cipher: u8,
        /// `kdk_encryptedkeysize` (RSA modulus bytes).
        encrypted_key_size: u32,
    },
    /// sealdump format; fields from the header's cleartext part when it parsed.
    Sealed(SealInfo),
    /// A key blob arrived but its start is missing or unrecognised.
    Unknown,
}

impl Encryption {
    /// Whether the dump needs a key to read (decides `vmcore_encrypted.` naming together with the KDH).
    pub fn is_encrypted(&self) -> bool {
        !matches!(self, Encryption::None)
    }
}

/// Cleartext facts of a sealed header.
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct SealInfo {
    /// Format version.
    pub version: u16,
    /// HPKE AEAD id (2 AES-256-GCM, 3 ChaCha20-Poly1305), if the header parsed.
    pub aead: Option<u16>,
    /// Chunk size = 1 << chunk_shift, if the header parsed.
    pub chunk_shift: Option<u8>,
    /// Recipient key ids (at most 8).
    pub key_ids: Vec<[u8; 8]>,
}

/// Parses the cleartext fields of a sealed header as laid out in docs/format.md.
///
/// Layout (big-endian, docs/format.md / `sealdump_crypto::seal`): `magic[8]` "SEALDUMP", version u16,
/// header_len u16, aead u16, kdf u16, chunk_shift u8, compression u8, stanza_count u8, reserved u8,
/// `dump_id[16]`, time u64 (44 bytes), then per stanza kind u16, `key_id[8]`, body_len u16, body. Missing or different layouts give `None` fields; the
/// receiver only uses them for the info file and the structural completeness check.
pub fn parse_seal_info(blob: &[u8]) -> SealInfo {
    let mut info = SealInfo::default();
    if blob.get(..8) != Some(&SEAL_MAGIC[..]) {
        return info;
    }
    info.version = u16::from_be_bytes([
        blob.get(8).copied().unwrap_or(0),
        blob.get(9).copied().unwrap_or(0),
    ]);
    let u16_at = |at: usize| blob.get(at..at + 2).map(|b| u16::from_be_bytes([b[0], b[1]]));
    let aead = u16_at(12);
    let shift = blob.get(16).copied();
    if let (Some(aead), Some(shift)) = (aead, shift)
        && info.version == 1
        && matches!(aead, 2 | 3)
        && (12..=20).contains(&shift)
    {
        info.aead = Some(aead);
        info.chunk_shift = Some(shift);
        let count = blob.get(18).copied().unwrap_or(0).min(8);
        let mut at = 44;
        for _ in 0..count {
            let (Some(id), Some(body_len)) = (blob.get(at + 2..at + 10), u16_at(at + 10)) else {
                break;
            };
            let mut key_id = [0u8; 8];
            key_id.copy_from_slice(id);
            info.key_ids.push(key_id);
            at += 12 + usize::from(body_len);
        }
    }
    info
}

/// Whether a sealed record stream of `len` bytes with chunk size `chunk` can end with a trailer:
/// `len = k·(chunk+16) + [r+16] + 48` with a possibly short last data chunk of 1..=chunk bytes.
/// A chunk shift too large for a `u64` record size fits no stream.
pub fn seal_stream_shape_ok(len: u64, chunk_shift: u8) -> bool {
    let Some(record) = 1u64
        .checked_shl(u32::from(chunk_shift))
        .and_then(|chunk| chunk.checked_add(SEAL_TAG_LEN))
    else {
        return false;
    };
    let Some(data) = len.checked_sub(SEAL_TRAILER_LEN) else {
        return false;
    };
    let rem = data % record;
    rem == 0 || rem > SEAL_TAG_LEN
}

/// What the shell must do with a datagram.
#[derive(Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Output<'a> {
    /// Drop it: no ack, nothing written.
    Rejected(Reject),
    /// Only (re-)ack `seqno`: a duplicate whose bytes are already stored, or a repeated KDH/FINISHED.
    Ack {
        /// Seqno to ack.
        seqno: u32,
    },
    /// New core bytes: queue `data` for writing at `offset` of the core file, then ack `seqno`.
    Core {
        /// Seqno to ack.
        seqno: u32,
        /// `mh_offset`.
        offset: u64,
        /// The payload (a borrow of the datagram).
        data: &'a [u8],
    },
    /// Key blob bytes: write at `offset` of the key file (create it 0400 if `first`), and ack `seqno`
    /// only after the write succeeded.
    Key {
        /// Seqno to ack.
        seqno: u32,
        /// `mh_offset`.
        offset: u64,
        /// The payload.
        data: &'a [u8],
        /// The first key packet of the session (create the key file).
        first: bool,
    },
    /// A kernel dump header: ack at once; record its lines in the info file. `header` may be shorter
    /// than 512 bytes (netdumpd: "Bad KDH: packet too small").
    Kdh {
        /// Seqno to ack.
        seqno: u32,
        /// The payload.
        header: &'a [u8],
    },
    /// FINISHED: flush and fsync the files, write the last info line ("Dump complete" if `complete`),
    /// make the `.last` symlinks, then ack `seqno`.
    Finished {
        /// Seqno to ack.
        seqno: u32,
        /// No holes (and, for a sealed dump, a trailer-shaped stream end).
        complete: bool,
    },
}

/// Result of a later herald from the same client.
#[derive(Copy, Clone, PartialEq, Eq, Debug)]
pub enum HeraldDecision {
    /// No KDH or VMCORE yet: re-ack `seqno` from the existing session socket (the peer is updated).
    Reack {
        /// Seqno to ack.
        seqno: u32,
    },
    /// Data already arrived: close this session as timed out and start a new one.
    Restart,
    /// A different herald while data is still flowing: neither acked nor a restart.
    Ignore,
}

/// How a session ended without FINISHED.
#[derive(Copy, Clone, PartialEq, Eq, Debug)]
pub enum Closed {
    /// Idle for `idle_timeout`, aborted by shutdown, or replaced by a new herald.
    TimedOut,
    /// The linger period after FINISHED ended; nothing to do but drop the session.
    Done,
}

/// Lifecycle state.
#[derive(Copy, Clone, PartialEq, Eq, Debug)]
pub enum State {
    /// Receiving.
    Open,
    /// FINISHED arrived; re-acking repeats until the linger ends.
    Finished,
    /// Timed out or aborted.
    TimedOut,
    /// Nothing more to do.
    Done,
}

/// Counters of one session.
#[derive(Copy, Clone, PartialEq, Eq, Debug, Default)]
pub struct Stats {
    /// Valid datagrams (acked or written).
    pub packets: u64,
    /// Distinct core bytes received.
    pub core_bytes: u64,
    /// Distinct key bytes received.
    pub key_bytes: u64,
    /// Datagrams whose bytes were all present already.
    pub duplicates: u64,
    /// Datagrams dropped.
    pub rejected: u64,
}

/// One client's dump.
#[derive(Debug)]
pub struct Session {
    config: SessionConfig,
    peer: SocketAddr,
    herald_seqno: u32,
    state: State,
    last_activity: Instant,
    finished_at: Option<Instant>,
    finished_seqno: Option<u32>,
    core: RangeSet,
    key: RangeSet,
    key_mirror: Box<[u8; KEY_MIRROR_LEN]>,
    kdh: Option<([u8; KDH_LEN], usize)>,
    saw_data: bool,
    stats: Stats,
}

impl Session {
    /// Starts a session for a herald from `peer` (acks and session traffic go to `peer`).
    pub fn new(config: SessionConfig, now: Instant, peer: SocketAddr, herald: &Herald<'_>) -> Self {
        Self {
            config,
            peer,
            herald_seqno: herald.seqno,
            state: State::Open,
            last_activity: now,
            finished_at: None,
            finished_seqno: None,
            core: RangeSet::new(),
            key: RangeSet::new(),
            key_mirror: Box::new([0u8; KEY_MIRROR_LEN]),
            kdh: None,
            saw_data: false,
            stats: Stats::default(),
        }
    }

    /// The client address acks go to.
    pub fn peer(&self) -> SocketAddr {
        self.peer
    }

    /// Current state.
    pub fn state(&self) -> State {
        self.state
    }

    /// Counters.
    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// Received core ranges.
    pub fn core_ranges(&self) -> &RangeSet {
        &self.core
    }

    /// Received key ranges.
    pub fn key_ranges(&self) -> &RangeSet {
        &self.key
    }

    /// The KDH payload, if one arrived (possibly shorter than 512 bytes).
    pub fn kdh(&self) -> Option<&[u8]> {
        self.kdh.as_ref().map(|(b, n)| &b[..*n])
    }

    /// netdumpd's duplicate-herald rule for a herald from the same client IP.
    pub fn handle_herald(&mut self, now: Instant, from: SocketAddr, herald: &Herald<'_>) -> HeraldDecision {
        if self.state == State::Open && !self.saw_data {
            self.peer = from;
            self.herald_seqno = herald.seqno;
            self.last_activity = now;
            HeraldDecision::Reack { seqno: herald.seqno }
        } else if self.is_stray_duplicate_herald(now, from, herald) {
            // Not netdumpd's rule, which restarts here: a re-sent herald (its ack was slow or lost) or a network
            // duplicate arriving after the first data would otherwise kill a healthy dump. A client that really
            // restarted cannot be talking to us this close to its previous session's last datagram.
            self.stats.duplicates += 1;
            HeraldDecision::Reack { seqno: herald.seqno }
        } else if self.state == State::Open
            && now.saturating_since(self.last_activity) < DUPLICATE_HERALD_WINDOW
        {
            // Also not netdumpd's rule: any other herald from this IP while its dump is flowing is a forgery (or
            // a very confused client). Restarting would let anyone who can send from the client's IP kill the
            // dump; a client that really restarted repeats its herald and is heard once this one has gone quiet.
            self.stats.rejected += 1;
            HeraldDecision::Ignore
        } else {
            if self.state == State::Open {
                self.state = State::TimedOut;
            }
            HeraldDecision::Restart
        }
    }

    /// A herald from the session's exact peer address with the session's herald seqno, while data is flowing
    /// (last datagram less than [`DUPLICATE_HERALD_WINDOW`] ago), is a copy of the one that opened it.
    fn is_stray_duplicate_herald(&self, now: Instant, from: SocketAddr, herald: &Herald<'_>) -> bool {
        self.state == State::Open
            && from == self.peer
            && herald.seqno == self.herald_seqno
            && now.saturating_since(self.last_activity) < DUPLICATE_HERALD_WINDOW
    }

    /// Handles one datagram from the session socket.
    pub fn handle_datagram<'a>(&mut self, now: Instant, from: SocketAddr, bytes: &'a [u8]) -> Output<'a> {
        let out = self.classify(now, from, bytes);
        match out {
            Output::Rejected(_) => self.stats.rejected += 1,
            _ => {
                self.stats.packets += 1;
                self.last_activity = now;
            }
        }
        out
    }

    fn classify<'a>(&mut self, now: Instant, from: SocketAddr, bytes: &'a [u8]) -> Output<'a> {
        if from.ip() != self.peer.ip() {
            return Output::Rejected(Reject::ForeignSource);
        }
        let (header, payload) = match parse_message(bytes, self.config.max_payload) {
            Ok(m) => m,
            Err(r) => return Output::Rejected(r),
        };
        let seqno = header.seqno;
        match self.state {
            State::Open => {}
            State::Finished if header.msg_type == TYPE_FINISHED && Some(seqno) == self.finished_seqno => {
                self.stats.duplicates += 1;
                return Output::Ack { seqno };
            }
            _ => return Output::Rejected(Reject::Closed),
        }
        let Some(end) = header.offset.checked_add(payload.len() as u64) else {
            return Output::Rejected(Reject::TooLarge);
        };
        match header.msg_type {
            TYPE_HERALD => {
                if seqno == self.herald_seqno && !self.saw_data {
                    self.stats.duplicates += 1;
                    Output::Ack { seqno }
                } else {
                    Output::Rejected(Reject::UnexpectedHerald)
                }
            }
            TYPE_VMCORE => {
                if end > self.config.max_dump_size {
                    return Output::Rejected(Reject::TooLarge);
                }
                self.saw_data = true;
                if self.core.contains(header.offset, end) {
                    self.stats.duplicates += 1;
                    return Output::Ack { seqno };
                }
                if self.core.len() >= self.config.max_ranges && !self.touches(header.offset, end) {
                    return Output::Rejected(Reject::TooFragmented);
                }
                self.stats.core_bytes += self.core.insert(header.offset, end);
                Output::Core {
                    seqno,
                    offset: header.offset,
                    data: payload,
                }
            }
            TYPE_EKCD_KEY => {
                if end > MAX_KEY_LEN {
                    return Output::Rejected(Reject::KeyTooLarge);
                }
                if self.key.contains(header.offset, end) {
                    self.stats.duplicates += 1;
                    return Output::Ack { seqno };
                }
                if self.key.len() >= self.config.max_ranges {
                    return Output::Rejected(Reject::TooFragmented);
                }
                let first = self.key.is_empty();
                self.stats.key_bytes += self.key.insert(header.offset, end);
                // Keep the blob's start for classification.
                if let Ok(start) = usize::try_from(header.offset)
                    && start < KEY_MIRROR_LEN
                {
                    let n = payload.len().min(KEY_MIRROR_LEN - start);
                    self.key_mirror[start..start + n].copy_from_slice(&payload[..n]);
                }
                Output::Key {
                    seqno,
                    offset: header.offset,
                    data: payload,
                    first,
                }
            }
            TYPE_KDH => {
                self.saw_data = true;
                let mut buf = [0u8; KDH_LEN];
                let n = payload.len().min(KDH_LEN);
                buf[..n].copy_from_slice(&payload[..n]);
                let repeated = self.kdh.is_some_and(|(b, m)| m == n && b == buf);
                self.kdh = Some((buf, n));
                if repeated {
                    self.stats.duplicates += 1;
                    Output::Ack { seqno }
                } else {
                    Output::Kdh {
                        seqno,
                        header: payload,
                    }
                }
            }
            TYPE_FINISHED => {
                self.state = State::Finished;
                self.finished_at = Some(now);
                self.finished_seqno = Some(seqno);
                Output::Finished {
                    seqno,
                    complete: self.is_complete(),
                }
            }
            other => Output::Rejected(Reject::UnknownType(other)),
        }
    }

    fn touches(&self, start: u64, end: u64) -> bool {
        let i = self.core.ranges.partition_point(|r| r.1 < start);
        self.core.ranges.get(i).is_some_and(|&(s, _)| s <= end)
    }

    /// Advances timers: idle timeout while open, end of the linger after FINISHED.
    pub fn handle_timeout(&mut self, now: Instant) -> Option<Closed> {
        match self.state {
            State::Open if now >= self.last_activity + self.config.idle_timeout => {
                self.state = State::TimedOut;
                Some(Closed::TimedOut)
            }
            State::Finished if self.finished_at.is_some_and(|t| now >= t + self.config.linger) => {
                self.state = State::Done;
                Some(Closed::Done)
            }
            _ => None,
        }
    }

    /// When [`Session::handle_timeout`] next has something to do.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match self.state {
            State::Open => Some(self.last_activity + self.config.idle_timeout),
            State::Finished => self.finished_at.map(|t| t + self.config.linger),
            _ => None,
        }
    }

    /// Ends an open session as timed out (shutdown, or replaced by a new herald). Returns whether it was open.
    pub fn abort(&mut self) -> bool {
        let was_open = self.state == State::Open;
        if was_open {
            self.state = State::TimedOut;
        }
        was_open
    }

    /// How the dump is encrypted (from the key blob's first bytes).
    pub fn encryption(&self) -> Encryption {
        if self.key.is_empty() {
            return Encryption::None;
        }
        if !self.key.contains(0, 37) {
            return Encryption::Unknown;
        }
        let blob = &self.key_mirror[..];
        if blob[..8] == SEAL_MAGIC {
            let have = usize::try_from(self.key.ranges[0].1)
                .unwrap_or(KEY_MIRROR_LEN)
                .min(KEY_MIRROR_LEN);
            return Encryption::Sealed(parse_seal_info(&blob[..have]));
        }
        let ekcd = sealdump_wire::ekcd::Packet::new_unchecked(blob);
        match ekcd.cipher() {
            cipher @ (1 | 2) => Encryption::Ekcd {
                cipher,
                encrypted_key_size: ekcd.encrypted_key_size(),
            },
            _ => Encryption::Unknown,
        }
    }

    /// Size the core must reach: the received end, or the KDH's dump length if that is larger.
    pub fn expected_core_len(&self) -> u64 {
        let from_kdh = self
            .kdh
            .as_ref()
            .and_then(|(b, n)| kdh_dump_length(&b[..*n]))
            .unwrap_or(0);
        self.core.end().max(from_kdh)
    }

    /// Missing core ranges up to [`Session::expected_core_len`].
    pub fn holes(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        self.core.holes(self.expected_core_len())
    }

    /// Missing key ranges (inside the key's received extent; with 12.x-style padding the blob is whole).
    pub fn key_holes(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        self.key.holes(self.key.end())
    }

    /// FINISHED arrived, no core or key holes, and for a sealed dump a stream that ends in a trailer.
    pub fn is_complete(&self) -> bool {
        if self.state != State::Finished && self.state != State::Done {
            return false;
        }
        self.is_whole()
    }

    /// No holes (regardless of FINISHED).
    pub fn is_whole(&self) -> bool {
        if self.holes().next().is_some() || self.key_holes().next().is_some() {
            return false;
        }
        match self.encryption() {
            Encryption::Sealed(info) => match info.chunk_shift {
                Some(shift) => seal_stream_shape_ok(self.core.end(), shift),
                None => self.core.end() >= SEAL_TRAILER_LEN,
            },
            Encryption::Unknown => false,
            _ => true,
        }
    }
}

/// `dumplength` of a well-formed KDH (known magic, version 1-4).
pub fn kdh_dump_length(kdh: &[u8]) -> Option<u64> {
    sealdump_wire::kdh::Repr::parse(kdh).ok().map(|r| r.dump_length)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn msg(t: u32, seq: u32, off: u64, payload: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        v.extend_from_slice(&t.to_be_bytes());
        v.extend_from_slice(&seq.to_be_bytes());
        v.extend_from_slice(&off.to_be_bytes());
        v.extend_from_slice(&(payload.len() as u32).to_be_bytes());
        v.extend_from_slice(&0u32.to_be_bytes());
        v.extend_from_slice(payload);
        v
    }

    fn peer() -> SocketAddr {
        "127.0.0.1:20024".parse().unwrap()
    }

    fn session(config: SessionConfig) -> Session {
        let h = msg(1, 1, 0, b"");
        Session::new(
            config,
            Instant::from_micros(0),
            peer(),
            &parse_herald(&h).unwrap(),
        )
    }

    #[test]
    fn rangeset_merges_and_reports_holes() {
        let mut r = RangeSet::new();
        assert_eq!(r.insert(0, 10), 10);
        assert_eq!(r.insert(20, 30), 10);
        assert_eq!(r.insert(5, 25), 10);
        assert_eq!(r.ranges(), &[(0, 30)]);
        assert_eq!(r.insert(40, 50), 10);
        assert_eq!(r.insert(35, 36), 1);
        assert_eq!(
            r.holes(60).collect::<Vec<_>>(),
            vec![(30, 35), (36, 40), (50, 60)]
        );
        assert_eq!(r.insert(0, 60), 60 - 41);
        assert_eq!(r.ranges(), &[(0, 60)]);
        assert!(r.contains(10, 60));
        assert!(!r.contains(10, 61));
        assert_eq!(r.holes(60).count(), 0);
        let empty = RangeSet::new();
        assert_eq!(empty.holes(5).collect::<Vec<_>>(), vec![(0, 5)]);
    }

    #[test]
    fn rangeset_matches_a_bitmap() {
        // Deterministic pseudo-random inserts compared with a byte map.
        let mut seed = 0x1234_5678u64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for _ in 0..200 {
            let mut r = RangeSet::new();
            let mut map = [false; 256];
            for _ in 0..20 {
                let a = next() % 256;
                let b = (a + next() % 40).min(256);
                let before = map.iter().filter(|x| **x).count() as u64;
                let added = r.insert(a, b);
                for m in &mut map[a as usize..b as usize] {
                    *m = true;
                }
                let after = map.iter().filter(|x| **x).count() as u64;
                assert_eq!(added, after - before);
                assert_eq!(r.total(), after);
            }
            let holes: Vec<_> = r.holes(256).collect();
            for (i, present) in map.iter().enumerate() {
                let in_hole = holes.iter().any(|&(s, e)| (s..e).contains(&(i as u64)));
                assert_eq!(*present, !in_hole, "byte {i}");
            }
        }
    }

    #[test]
    fn plain_dump_in_order() {
        let mut s = session(SessionConfig::default());
        let now = Instant::from_micros(1);
        for i in 0..4u32 {
            let m = msg(3, 2 + i, u64::from(i) * 1000, &[i as u8; 1000]);
            match s.handle_datagram(now, peer(), &m) {
                Output::Core { seqno, offset, data } => {
                    assert_eq!((seqno, offset, data.len()), (2 + i, u64::from(i) * 1000, 1000));
                }
                o => panic!("{o:?}"),
            }
        }
        // Duplicate is re-acked, not rewritten.
        let dup = msg(3, 3, 1000, &[1; 1000]);
        assert_eq!(s.handle_datagram(now, peer(), &dup), Output::Ack { seqno: 3 });
        let kdh = msg(4, 6, 0, &[0; 512]);
        assert!(matches!(
            s.handle_datagram(now, peer(), &kdh),
            Output::Kdh { seqno: 6, .. }
        ));
        assert_eq!(s.handle_datagram(now, peer(), &kdh), Output::Ack { seqno: 6 });
        let fin = msg(2, 7, 0, b"");
        assert_eq!(
            s.handle_datagram(now, peer(), &fin),
            Output::Finished {
                seqno: 7,
                complete: true
            }
        );
        assert_eq!(s.handle_datagram(now, peer(), &fin), Output::Ack { seqno: 7 });
        assert_eq!(
            s.handle_datagram(now, peer(), &dup),
            Output::Rejected(Reject::Closed)
        );
        assert_eq!(s.stats().core_bytes, 4000);
        assert_eq!(s.stats().duplicates, 3);
        assert_eq!(s.encryption(), Encryption::None);
    }

    #[test]
    fn hole_makes_incomplete() {
        let mut s = session(SessionConfig::default());
        let now = Instant::from_micros(1);
        s.handle_datagram(now, peer(), &msg(3, 2, 0, &[0; 100]));
        s.handle_datagram(now, peer(), &msg(3, 3, 200, &[0; 100]));
        assert_eq!(
            s.handle_datagram(now, peer(), &msg(2, 4, 0, b"")),
            Output::Finished {
                seqno: 4,
                complete: false
            }
        );
        assert_eq!(s.holes().collect::<Vec<_>>(), vec![(100, 200)]);
    }

    #[test]
    fn kdh_dump_length_beyond_data_is_a_hole() {
        let mut s = session(SessionConfig::default());
        let now = Instant::from_micros(1);
        s.handle_datagram(now, peer(), &msg(3, 2, 0, &[0; 4096]));
        let mut kdh = [0u8; 512];
        kdh[..19].copy_from_slice(b"FreeBSD Kernel Dump");
        kdh[32..36].copy_from_slice(&4u32.to_be_bytes());
        kdh[40..48].copy_from_slice(&8192u64.to_be_bytes());
        s.handle_datagram(now, peer(), &msg(4, 3, 0, &kdh));
        s.handle_datagram(now, peer(), &msg(2, 4, 0, b""));
        assert!(!s.is_complete());
        assert_eq!(s.holes().collect::<Vec<_>>(), vec![(4096, 8192)]);
    }

    #[test]
    fn rejects_hostile_datagrams() {
        let mut s = session(SessionConfig {
            max_dump_size: 1 << 20,
            ..SessionConfig::default()
        });
        let now = Instant::from_micros(1);
        let other: SocketAddr = "127.0.0.2:20024".parse().unwrap();
        assert_eq!(
            s.handle_datagram(now, peer(), &[0; 10]),
            Output::Rejected(Reject::Undersize)
        );
        let mut bad = msg(3, 2, 0, &[0; 10]);
        bad.push(0);
        assert_eq!(
            s.handle_datagram(now, peer(), &bad),
            Output::Rejected(Reject::BadLength)
        );
        assert_eq!(
            s.handle_datagram(now, peer(), &msg(9, 2, 0, b"")),
            Output::Rejected(Reject::UnknownType(9))
        );
        assert_eq!(
            s.handle_datagram(now, other, &msg(3, 2, 0, b"x")),
            Output::Rejected(Reject::ForeignSource)
        );
        assert_eq!(
            s.handle_datagram(now, peer(), &msg(3, 2, 1 << 20, b"x")),
            Output::Rejected(Reject::TooLarge)
        );
        assert_eq!(
            s.handle_datagram(now, peer(), &msg(3, 2, u64::MAX, b"xx")),
            Output::Rejected(Reject::TooLarge)
        );
        assert_eq!(
            s.handle_datagram(now, peer(), &msg(5, 2, MAX_KEY_LEN, b"x")),
            Output::Rejected(Reject::KeyTooLarge)
        );
        let big = vec![0u8; MAX_PAYLOAD + 1 + HEADER_LEN];
        assert_eq!(
            s.handle_datagram(now, peer(), &big),
            Output::Rejected(Reject::Oversize)
        );
        assert_eq!(s.stats().rejected, 8);
        assert_eq!(s.stats().packets, 0);
    }

    #[test]
    fn duplicate_herald_rule() {
        let mut s = session(SessionConfig::default());
        let now = Instant::from_micros(1);
        let h = msg(1, 1, 0, b"");
        let herald = parse_herald(&h).unwrap();
        assert_eq!(
            s.handle_herald(now, peer(), &herald),
            HeraldDecision::Reack { seqno: 1 }
        );
        assert_eq!(s.handle_datagram(now, peer(), &h), Output::Ack { seqno: 1 });
        // Key bytes do not count as data (13+ sends the key right after the herald).
        s.handle_datagram(now, peer(), &msg(5, 2, 0, &[2; 64]));
        assert_eq!(
            s.handle_herald(now, peer(), &herald),
            HeraldDecision::Reack { seqno: 1 }
        );
        s.handle_datagram(now, peer(), &msg(3, 3, 0, &[0; 64]));
        // After data, a copy of the opening herald (same address, port and seqno, data still flowing) is a
        // duplicate: re-acked, the session lives on.
        let soon = now + (DUPLICATE_HERALD_WINDOW - Duration::from_millis(1));
        assert_eq!(
            s.handle_herald(soon, peer(), &herald),
            HeraldDecision::Reack { seqno: 1 }
        );
        assert_eq!(s.state(), State::Open);
        // Once the session has been quiet for the window, the same herald is a restarted client (netdumpd's rule).
        let later = now + DUPLICATE_HERALD_WINDOW;
        assert_eq!(s.handle_herald(later, peer(), &herald), HeraldDecision::Restart);
        assert_eq!(s.state(), State::TimedOut);
    }

    #[test]
    fn another_herald_while_data_flows_is_ignored_then_restarts() {
        let now = Instant::from_micros(1);
        let h = msg(1, 1, 0, b"");
        let herald = parse_herald(&h).unwrap();
        let other_port = SocketAddr::new(peer().ip(), peer().port().wrapping_add(1));
        let h7 = msg(1, 7, 0, b"");
        let herald7 = parse_herald(&h7).unwrap();
        for (from, herald) in [(other_port, &herald), (peer(), &herald7)] {
            let mut s = session(SessionConfig::default());
            s.handle_datagram(now, peer(), &h);
            s.handle_datagram(now, peer(), &msg(3, 2, 0, &[0; 64]));
            // While data flows, a forged herald from the client's IP can neither restart nor hijack the dump.
            let soon = now + (DUPLICATE_HERALD_WINDOW - Duration::from_millis(1));
            assert_eq!(s.handle_herald(soon, from, herald), HeraldDecision::Ignore);
            assert_eq!(s.state(), State::Open);
            assert_eq!(s.peer(), peer());
            // Once the session has been quiet for the window, it is a restarted client.
            let later = now + DUPLICATE_HERALD_WINDOW;
            assert_eq!(s.handle_herald(later, from, herald), HeraldDecision::Restart);
            assert_eq!(s.state(), State::TimedOut);
        }
    }

    #[test]
    fn idle_timeout_and_linger() {
        let cfg = SessionConfig {
            idle_timeout: Duration::from_secs(5),
            linger: Duration::from_secs(1),
            ..SessionConfig::default()
        };
        let mut s = session(cfg.clone());
        assert_eq!(s.poll_timeout(), Some(Instant::from_micros(5_000_000)));
        assert_eq!(s.handle_timeout(Instant::from_micros(4_999_999)), None);
        s.handle_datagram(Instant::from_micros(4_000_000), peer(), &msg(3, 2, 0, b"abc"));
        assert_eq!(s.handle_timeout(Instant::from_micros(8_999_999)), None);
        assert_eq!(
            s.handle_timeout(Instant::from_micros(9_000_000)),
            Some(Closed::TimedOut)
        );
        assert!(!s.is_complete());

        let mut s = session(cfg);
        s.handle_datagram(Instant::from_micros(10), peer(), &msg(2, 2, 0, b""));
        assert_eq!(s.poll_timeout(), Some(Instant::from_micros(1_000_010)));
        assert_eq!(
            s.handle_timeout(Instant::from_micros(1_000_010)),
            Some(Closed::Done)
        );
        assert_eq!(s.poll_timeout(), None);
    }

    #[test]
    fn ekcd_key_after_kdh_12x_order() {
        let mut s = session(SessionConfig::default());
        let now = Instant::from_micros(1);
        let mut blob = [0u8; 4096];
        blob[0] = 2;
        blob[33..37].copy_from_slice(&256u32.to_be_bytes());
        s.handle_datagram(now, peer(), &msg(3, 2, 0, &[7; 4096]));
        s.handle_datagram(now, peer(), &msg(4, 3, 0, &[0; 512]));
        let mut first = true;
        for (i, part) in blob.chunks(1448).enumerate() {
            let off = (i * 1448) as u64;
            match s.handle_datagram(now, peer(), &msg(5, 4 + i as u32, off, part)) {
                Output::Key { offset, first: f, .. } => {
                    assert_eq!((offset, f), (off, first));
                    first = false;
                }
                o => panic!("{o:?}"),
            }
        }
        assert_eq!(
            s.encryption(),
            Encryption::Ekcd {
                cipher: 2,
                encrypted_key_size: 256
            }
        );
        assert!(matches!(
            s.handle_datagram(now, peer(), &msg(2, 9, 0, b"")),
            Output::Finished { complete: true, .. }
        ));
    }

    fn seal_header(shift: u8) -> Vec<u8> {
        let mut h = Vec::new();
        h.extend_from_slice(b"SEALDUMP");
        h.extend_from_slice(&1u16.to_be_bytes());
        h.extend_from_slice(&200u16.to_be_bytes());
        h.extend_from_slice(&3u16.to_be_bytes());
        h.extend_from_slice(&1u16.to_be_bytes());
        h.push(shift);
        h.push(0);
        h.extend_from_slice(&[1, 0]);
        h.extend_from_slice(&[9; 16]);
        h.extend_from_slice(&0u64.to_be_bytes());
        h.extend_from_slice(&1u16.to_be_bytes());
        h.extend_from_slice(&[0xaa; 8]);
        h.extend_from_slice(&80u16.to_be_bytes());
        h.extend_from_slice(&[1; 80]);
        h
    }

    #[test]
    fn sealed_dump_recognised_and_shape_checked() {
        let now = Instant::from_micros(1);
        let header = seal_header(12);
        let record = 4096 + 16;
        for (len, complete) in [
            (record * 2 + 48, true),
            (record + 100 + 16 + 48, true),
            (record + 8 + 48, false),
        ] {
            let mut s = session(SessionConfig::default());
            s.handle_datagram(now, peer(), &msg(5, 2, 0, &header));
            let stream = vec![0u8; len];
            for (i, part) in stream.chunks(1448).enumerate() {
                s.handle_datagram(now, peer(), &msg(3, 3 + i as u32, (i * 1448) as u64, part));
            }
            assert!(matches!(
                s.handle_datagram(now, peer(), &msg(2, 999, 0, b"")),
                Output::Finished { .. }
            ));
            assert_eq!(s.is_complete(), complete, "len {len}");
            match s.encryption() {
                Encryption::Sealed(info) => {
                    assert_eq!(info.aead, Some(3));
                    assert_eq!(info.chunk_shift, Some(12));
                    assert_eq!(info.key_ids, vec![[0xaa; 8]]);
                }
                e => panic!("{e:?}"),
            }
        }
    }

    #[test]
    fn stream_shape_never_panics_on_any_shift() {
        let record = (1u64 << 16) + 16;
        assert!(seal_stream_shape_ok(record + 48, 16));
        assert!(!seal_stream_shape_ok(16 + 48, 16));
        // Out-of-format shifts (the public function takes any u8) are refused, not an overflow panic.
        for shift in [64u8, 200, u8::MAX] {
            assert!(!seal_stream_shape_ok(u64::MAX, shift), "shift {shift}");
        }
        // The largest shift that fits still computes (2^63 + 16-byte records).
        assert!(seal_stream_shape_ok((1 << 63) + 16 + 48, 63));
    }

    #[test]
    fn ekcd_blob_is_classified_with_its_key_size() {
        let now = Instant::from_micros(1);
        let mut blob = [0u8; 4096];
        blob[0] = 2;
        blob[33..37].copy_from_slice(&256u32.to_be_bytes());
        let mut s = session(SessionConfig::default());
        s.handle_datagram(now, peer(), &msg(5, 2, 0, &blob[..1448]));
        assert_eq!(
            s.encryption(),
            Encryption::Ekcd {
                cipher: 2,
                encrypted_key_size: 256
            }
        );
        blob[0] = 7;
        let mut s = session(SessionConfig::default());
        s.handle_datagram(now, peer(), &msg(5, 2, 0, &blob[..1448]));
        assert_eq!(s.encryption(), Encryption::Unknown);
    }

    #[test]
    fn herald_paths() {
        let ok = |p: &[u8]| check_herald_path(p).map(|c| c.collect::<Vec<_>>().join("/"));
        assert_eq!(ok(b"hosts/a"), Some("hosts/a".into()));
        assert_eq!(ok(b"a//b/"), Some("a/b".into()));
        assert_eq!(ok(b"../etc"), None);
        assert_eq!(ok(b"a/../../b"), None);
        assert_eq!(ok(b"/etc"), None);
        assert_eq!(ok(b"./x"), None);
        assert_eq!(ok(b"a b"), None);
        assert_eq!(ok(b"/"), None);
        assert_eq!(ok(b""), None);
        let h = msg(1, 1, 0, b"crash\0");
        assert_eq!(parse_herald(&h).unwrap().path, Some(&b"crash"[..]));
        let h = msg(1, 1, 0, b"crash");
        assert_eq!(parse_herald(&h).unwrap().path, None);
        let h = msg(1, 1, 0, &[b'a'; 1025]);
        assert_eq!(parse_herald(&h), Err(Reject::HeraldPathTooLong));
        assert_eq!(parse_herald(&msg(3, 1, 0, b"")), Err(Reject::UnknownType(3)));
    }

    proptest::proptest! {
        /// Arbitrary datagrams (raw or header-shaped) never panic, and the ranges stay sorted, disjoint and
        /// consistent with the byte counter.
        #[test]
        fn arbitrary_datagrams_keep_invariants(
            msgs in proptest::collection::vec(
                (0u32..8, 0u32..100, 0u64..200_000, proptest::collection::vec(proptest::prelude::any::<u8>(), 0..600), proptest::prelude::any::<bool>()),
                0..60,
            )
        ) {
            let mut s = session(SessionConfig { max_ranges: 16, ..SessionConfig::default() });
            for (t, seq, off, payload, raw) in msgs {
                let bytes = if raw { payload.clone() } else { msg(t, seq, off, &payload) };
                let _ = s.handle_datagram(Instant::from_micros(u64::from(seq)), peer(), &bytes);
                let r = s.core_ranges().ranges();
                proptest::prop_assert!(r.windows(2).all(|w| w[0].1 < w[1].0));
                proptest::prop_assert!(r.iter().all(|(a, b)| a < b));
                proptest::prop_assert_eq!(s.core_ranges().total(), s.stats().core_bytes);
                proptest::prop_assert!(s.core_ranges().len() <= 17);
                if s.is_complete() {
                    proptest::prop_assert_eq!(s.holes().count(), 0);
                }
            }
        }
    }
}
