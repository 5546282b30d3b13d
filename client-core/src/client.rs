//! The client state machine: ring of per-packet state, transport (RTT, loss detection, AIMD) and the sealing
//! pipeline in front of it.
//!
//! No packet bytes are kept. The record stream is produced chunk by chunk into the chunk buffers; a message is
//! built straight into the caller's transmit buffer from them (VMCORE), from the seal header (EKCD_KEY), the
//! trailer record, or from state (HERALD, KDH, FINISHED). A retransmission whose chunk is no longer buffered
//! reads the chunk's plaintext again from the caller's [`DumpSource`] and seals it again: same key, same nonce
//! (the chunk index), so the same bytes, which is checked against the chunk's tag kept since the first sealing.

use core::time::Duration;

use rand_core::CryptoRng;
use sealdump_wire::kdh;
use sealdump_wire::netdump::{self, HEADER_LEN, MessageType};

use crate::congestion::Aimd;
use crate::rtt::RttEstimator;
use crate::seal::{self, ChunkSealer, Trailer, TrailerStatus};
use crate::slot::{ResendCause, SlotState, Status};
use crate::{
    Buffers, Config, DumpSource, Error, Event, FailReason, HEADER_BUFFER_LEN, Instant, MAX_CHUNK_BUFFERS,
    MAX_HERALD_PATH, MAX_PAYLOAD_SIZE, MIN_PAYLOAD_SIZE, Mode, PLAIN_CHUNK_SIZE, SocketAddr, Stats, TAG_LEN,
    Transmit,
};

/// A packet is lost once a packet sent this many transmissions after it has been acked (fast retransmit after
/// three later acks, as TCP's three duplicate acks and QUIC's packet threshold). Raised when the path proves
/// to reorder more than that (as Linux TCP's reordering metric), up to the window.
const PACKET_THRESHOLD: u64 = 3;
/// Length of a sealed trailer record on the wire.
const TRAILER_RECORD_LEN: usize = seal::TRAILER_PLAINTEXT_LEN + TAG_LEN;
/// Seqno of the herald; the ring starts right after it.
const HERALD_SEQ: u64 = 1;
/// Floor of the tail-loss probe timeout: on loopback two round trips are a few scheduling delays.
const MIN_PROBE_TIMEOUT_US: u64 = 1_000;

/// Where the producer side is.
#[derive(Copy, Clone, PartialEq, Eq, Debug)]
enum Stage {
    /// Sealed mode: cutting the seal header into EKCD_KEY messages; `pos` bytes are queued.
    Key { pos: usize },
    /// Accepting dump bytes.
    Writing,
    /// `finish`/`abort` was called: seal the partial chunk and the trailer.
    SealLast,
    /// Queueing the rest of the record stream, the last message possibly short.
    Flush,
    /// Queueing the (redacted) kernel dump header.
    Kdh,
    /// Queueing FINISHED.
    Fin,
    /// Everything is queued; waiting for acks.
    Drain,
}

#[derive(Copy, Clone, PartialEq, Eq, Debug)]
enum End {
    Finish,
    Abort,
}

/// What one chunk buffer holds.
#[derive(Copy, Clone, PartialEq, Eq, Debug)]
enum Held {
    Empty,
    /// Plaintext of the chunk being written (`Client::chunk_fill` bytes of chunk `Client::chunk_index`); in
    /// plain mode these bytes are already part of the record stream.
    Filling,
    /// The record of this chunk (sealed: ciphertext and tag; plain: the bytes as they are).
    Record(u64),
}

/// The packet ring: per-packet state and the sequence pointers.
///
/// Sequence numbers are 64-bit internally (the wire carries the low 32 bits); seq `s` lives in slot
/// `s % slots`, so at most `slots` packets exist between the oldest unacked one and the newest.
/// `[base, next_send)` were sent at least once, `[next_send, next_alloc)` wait for their first send.
struct Ring<'a> {
    states: &'a mut [SlotState],
    payload_size: usize,
    base: u64,
    next_send: u64,
    next_alloc: u64,
}

impl Ring<'_> {
    fn size(&self) -> u64 {
        self.states.len() as u64
    }

    fn index(&self, seq: u64) -> usize {
        (seq % self.size()) as usize
    }

    fn has_free_slot(&self) -> bool {
        self.next_alloc - self.base < self.size()
    }

    /// Queues one message; `None` if the ring is full.
    fn alloc(&mut self, msg_type: MessageType, offset: u64, len: usize) -> Option<u64> {
        if !self.has_free_slot() || len > self.payload_size {
            return None;
        }
        let seq = self.next_alloc;
        let index = self.index(seq);
        self.states[index] = SlotState {
            status: Status::Queued,
            msg_type: msg_type as u8,
            retransmits: 0,
            resent_by: ResendCause::LaterAcks,
            len: len as u32,
            offset,
            tx: 0,
            sent_at_us: 0,
        };
        self.next_alloc += 1;
        Some(seq)
    }

    /// Nothing queued or unacked.
    fn is_empty(&self) -> bool {
        self.base == self.next_alloc
    }
}

/// A netdump client sending one dump. See the crate docs for the call order.
pub struct Client<'a> {
    server: SocketAddr,
    /// Receiver address and session port, learnt from the herald's ack.
    session: Option<SocketAddr>,
    herald_path: &'a [u8],
    window: usize,
    give_up_after: Duration,
    ring: Ring<'a>,

    // Record stream: chunks of `chunk_size` plaintext bytes, each a record of `chunk_size + overhead` bytes
    // (overhead = the tag when sealed), the last one possibly short, then (sealed) the trailer record.
    sealer: Option<ChunkSealer>,
    chunk_size: usize,
    overhead: usize,
    /// The chunk buffers, `chunk_size + TAG_LEN` bytes each (at least two).
    chunks: &'a mut [u8],
    /// What each chunk buffer holds; only the first `buffer_count` are in use.
    held: [Held; MAX_CHUNK_BUFFERS],
    buffer_count: usize,
    /// Tag of chunk `i` at `tags[i % tags.len()]` while the chunk has unacked bytes (sealed mode).
    tags: &'a mut [[u8; TAG_LEN]],
    header: &'a mut [u8],
    header_len: usize,
    /// Plaintext bytes in the filling chunk buffer.
    chunk_fill: usize,
    /// Index of the chunk being written (= number of chunks completed).
    chunk_index: u64,
    /// Plaintext length of the final, short chunk once the dump has ended.
    last_chunk: Option<(u64, usize)>,
    /// Plaintext bytes completed into records so far.
    sealed_total: u64,
    /// Record-stream bytes produced (complete records and trailer).
    stream_ready: u64,
    /// Record-stream bytes queued as VMCORE messages.
    stream_queued: u64,
    /// Record-stream bytes sent at least once.
    stream_sent: u64,
    /// Record-stream bytes below this are acked, as is every message before them.
    stream_acked: u64,
    /// Stream offset of the trailer record (sealed mode, once sealed).
    trailer_at: Option<u64>,
    trailer: [u8; TRAILER_RECORD_LEN],
    architecture: &'a [u8],
    dump_time: u64,

    stage: Stage,
    end: Option<End>,
    kdh: Option<[u8; kdh::KDH_LEN]>,
    finished_seq: Option<u64>,

    // Transport.
    in_flight: usize,
    lost: usize,
    /// Fast retransmits allowed beyond the congestion window: one per packet declared lost by later acks,
    /// as TCP resends at once on three duplicate acks (the lost packet has left the network).
    rexmit_credit: usize,
    next_tx: u64,
    largest_acked_tx: Option<u64>,
    /// Current packet threshold (starts at [`PACKET_THRESHOLD`]).
    reorder_threshold: u64,
    /// Spurious loss declarations seen (reordering).
    spurious: u64,
    /// The time threshold is scaled by 2^this after reordering was seen.
    reorder_time_shift: u32,
    /// When the next in-flight packet overtaken by an acked one passes the time threshold.
    loss_time: Option<Instant>,
    /// Acks arrived since the last loss detection (at this time): detection runs once per batch of acks, at the
    /// next `poll_transmit` or `handle_timeout`, since each pass walks the window (O(window) per ack made it
    /// 40 % of the sender's CPU at a window of 4096 with 1 % loss).
    loss_check_due: Option<Instant>,
    rtt: RttEstimator,
    cc: Aimd,
    rto_deadline: Option<Instant>,
    /// When the tail-loss probe fires (RACK-TLP, RFC 8985 §7): two round trips without an ack while packets are
    /// in flight. A loss at the tail of what was sent has no later ack to reveal it, so without the probe it
    /// waits for the retransmission timer, which also collapses the window.
    probe_deadline: Option<Instant>,
    /// The packet the fired probe sends again, at the next `poll_transmit`.
    probe_seq: Option<u64>,
    /// A retransmission timeout fired and no ack has come since: no probes then, the backed-off timer paces
    /// the resends of a path that has gone quiet.
    timed_out: bool,
    last_progress: Instant,
    herald_due: Instant,
    herald_sent_at: Instant,
    herald_sends: u32,

    // Events.
    connected_pending: bool,
    progress_pending: bool,
    outcome: Option<Event>,
    outcome_reported: bool,
    stats: Stats,
}

impl core::fmt::Debug for Client<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Client")
            .field("server", &self.server)
            .field("session", &self.session)
            .field("sealed", &self.sealer.is_some())
            .field("stage", &self.stage)
            .field("base", &self.ring.base)
            .field("next_send", &self.ring.next_send)
            .field("next_alloc", &self.ring.next_alloc)
            .field("held", &&self.held[..self.buffer_count])
            .field("in_flight", &self.in_flight)
            .field("lost", &self.lost)
            .field("rto_deadline", &self.rto_deadline)
            .field("probe_deadline", &self.probe_deadline)
            .field("probe_seq", &self.probe_seq)
            .field("timed_out", &self.timed_out)
            .field("ssthresh", &self.cc.ssthresh())
            .field("reorder_threshold", &self.reorder_threshold)
            .field("spurious", &self.spurious)
            .field("stats", &self.stats())
            .field("outcome", &self.outcome)
            .finish_non_exhaustive()
    }
}

impl<'a> Client<'a> {
    /// Starts a dump at `now`: validates the buffers, draws the dump key (unless given) and dump id from
    /// `rng`, writes the seal header and queues it; the herald goes out on the first `poll_transmit`.
    pub fn new<R: CryptoRng>(
        config: Config<'a>,
        buffers: Buffers<'a>,
        rng: &mut R,
        now: Instant,
    ) -> Result<Self, Error> {
        if !(MIN_PAYLOAD_SIZE..=MAX_PAYLOAD_SIZE).contains(&config.payload_size) {
            return Err(Error::PayloadSize);
        }
        let slot_count = buffers.slot_state.len();
        if slot_count < 2 || config.window == 0 || config.window > slot_count {
            return Err(Error::Window);
        }
        if config.herald_path.len() > MAX_HERALD_PATH
            || config.herald_path.len() + 1 > config.payload_size
            || config.herald_path.contains(&0)
        {
            return Err(Error::HeraldPath);
        }
        buffers.slot_state.fill(SlotState::EMPTY);

        let mut sealer = None;
        let mut header_len = 0;
        let mut architecture: &'a [u8] = &[];
        let mut dump_time = 0;
        let mut chunk_size = PLAIN_CHUNK_SIZE;
        if let Mode::Sealed {
            params,
            recipients,
            dump_key,
            metadata,
        } = config.mode
        {
            if buffers.header.len() < HEADER_BUFFER_LEN {
                return Err(Error::HeaderBuffer);
            }
            let dk = match dump_key {
                Some(dk) => dk,
                None => crate::DumpKey::generate(rng),
            };
            let mut dump_id = [0u8; 16];
            rng.fill_bytes(&mut dump_id);
            let (len, s) = seal::write_header(
                &mut buffers.header[..HEADER_BUFFER_LEN],
                &params,
                &dk,
                dump_id,
                recipients,
                &metadata,
                rng,
            )
            .map_err(Error::Crypto)?;
            chunk_size = s.chunk_size();
            if buffers.tags.len() < crate::min_tag_slots(config.payload_size, chunk_size) {
                return Err(Error::TagBuffer);
            }
            header_len = len;
            sealer = Some(s);
            architecture = metadata.architecture;
            dump_time = params.time;
        }
        if buffers.chunks.len() < crate::chunk_buffer_len(chunk_size) {
            return Err(Error::ChunkBuffer);
        }

        let buffer_count = (buffers.chunks.len() / (chunk_size + TAG_LEN)).min(MAX_CHUNK_BUFFERS);
        let window = config.window;
        let mut client = Client {
            server: config.server,
            session: None,
            herald_path: config.herald_path,
            window,
            give_up_after: config.give_up_after,
            ring: Ring {
                states: buffers.slot_state,
                payload_size: config.payload_size,
                base: HERALD_SEQ + 1,
                next_send: HERALD_SEQ + 1,
                next_alloc: HERALD_SEQ + 1,
            },
            stage: if sealer.is_some() {
                Stage::Key { pos: 0 }
            } else {
                Stage::Writing
            },
            overhead: if sealer.is_some() { TAG_LEN } else { 0 },
            sealer,
            chunk_size,
            chunks: buffers.chunks,
            held: [Held::Empty; MAX_CHUNK_BUFFERS],
            buffer_count,
            tags: buffers.tags,
            header: buffers.header,
            header_len,
            chunk_fill: 0,
            chunk_index: 0,
            last_chunk: None,
            sealed_total: 0,
            stream_ready: 0,
            stream_queued: 0,
            stream_sent: 0,
            stream_acked: 0,
            trailer_at: None,
            trailer: [0; TRAILER_RECORD_LEN],
            architecture,
            dump_time,
            end: None,
            kdh: None,
            finished_seq: None,
            in_flight: 0,
            lost: 0,
            rexmit_credit: 0,
            next_tx: 0,
            largest_acked_tx: None,
            reorder_threshold: PACKET_THRESHOLD,
            spurious: 0,
            reorder_time_shift: 0,
            loss_time: None,
            loss_check_due: None,
            rtt: RttEstimator::new(),
            cc: Aimd::new(window as u32),
            rto_deadline: None,
            probe_deadline: None,
            probe_seq: None,
            timed_out: false,
            last_progress: now,
            herald_due: now,
            herald_sent_at: now,
            herald_sends: 0,
            connected_pending: false,
            progress_pending: false,
            outcome: None,
            outcome_reported: false,
            stats: Stats::default(),
        };
        client.pump();
        Ok(client)
    }

    /// Length of the seal header sent as EKCD_KEY (0 in plain mode).
    pub fn header_len(&self) -> usize {
        self.header_len
    }

    /// The seal header sent as EKCD_KEY (empty in plain mode).
    pub fn seal_header(&self) -> &[u8] {
        &self.header[..self.header_len]
    }

    /// Record-stream bytes produced so far (= the receiver's vmcore file length once all is acked).
    pub fn stream_len(&self) -> u64 {
        self.stream_ready
    }

    /// Dump offset below which the client will never ask its [`DumpSource`] again: a source that cannot seek
    /// (a pipe) may forget the bytes before it. Everything from it up to the bytes written may still be asked
    /// for, a whole chunk at a time.
    pub fn retained_from(&self) -> u64 {
        self.chunk_of(self.stream_acked) * self.chunk_size as u64
    }

    /// Current counters.
    pub fn stats(&self) -> Stats {
        Stats {
            srtt_us: self.rtt.srtt_us(),
            cwnd: self.cc.window(),
            ..self.stats
        }
    }

    /// Whether `Done` or `Failed` has happened (nothing more will be sent).
    pub fn is_closed(&self) -> bool {
        self.outcome.is_some()
    }

    /// Takes as many dump bytes as fit now and returns that count; 0 means the pipeline is full until acks
    /// arrive (or `finish`/`abort` was already called). The bytes are the dump from offset
    /// `stats().bytes_written` on; the [`DumpSource`] given to [`Client::poll_transmit`] must return the same
    /// bytes at the same offsets when asked.
    pub fn write(&mut self, data: &[u8]) -> usize {
        if self.outcome.is_some() || self.end.is_some() {
            return 0;
        }
        self.pump();
        if self.stage != Stage::Writing {
            return 0;
        }
        let mut taken = 0;
        while taken < data.len() {
            let Some(b) = self.filling_buffer() else {
                break;
            };
            if self.chunk_fill == 0 && self.sealer.is_some() && data.len() - taken >= self.chunk_size {
                // A whole chunk in the caller's bytes is sealed straight from them into the chunk buffer: one
                // pass over the bytes instead of a copy and then an in-place pass.
                let whole = &data[taken..taken + self.chunk_size];
                self.chunk_fill = self.chunk_size;
                if !self.complete_chunk(b, Some(whole)) {
                    break;
                }
                taken += whole.len();
                continue;
            }
            let n = (self.chunk_size - self.chunk_fill).min(data.len() - taken);
            let at = b * self.buffer_len() + self.chunk_fill;
            self.chunks[at..at + n].copy_from_slice(&data[taken..taken + n]);
            self.chunk_fill += n;
            taken += n;
            if self.sealer.is_none() {
                // Plain bytes are final as written: they can go out before their chunk is complete.
                self.stream_ready += n as u64;
            }
            if self.chunk_fill == self.chunk_size && !self.complete_chunk(b, None) {
                break;
            }
        }
        self.stats.bytes_written += taken as u64;
        self.queue_stream(false);
        taken
    }

    /// Ends the dump: seals the last chunk and the trailer, then queues the kernel dump header and FINISHED.
    /// Sealed mode sends a redacted header built from `kdh` (magic, architecture, dump time kept; lengths of
    /// the record stream; no hostname, version or panic string). Plain mode sends `kdh` unchanged, or a
    /// minimal header if `None`. `Event::Done` follows when FINISHED is acked.
    pub fn finish(&mut self, kdh: Option<&[u8; kdh::KDH_LEN]>) {
        if self.end.is_some() || self.outcome.is_some() {
            return;
        }
        self.kdh = kdh.copied();
        self.end = Some(End::Finish);
        self.pump();
    }

    /// Abandons the dump: sealed mode seals what was written and an authentic "aborted" trailer; everything
    /// queued is delivered, then `Event::Failed(Aborted)`. No kernel dump header, no FINISHED (as FreeBSD
    /// does on a failed dump), so the receiver records an incomplete dump.
    pub fn abort(&mut self) {
        if self.end.is_some() || self.outcome.is_some() {
            return;
        }
        self.end = Some(End::Abort);
        self.pump();
    }

    fn fail(&mut self, reason: FailReason) {
        if self.outcome.is_none() {
            self.outcome = Some(Event::Failed(reason));
            self.rto_deadline = None;
            self.loss_time = None;
            self.probe_deadline = None;
        }
    }

    /// Bytes per chunk buffer.
    fn buffer_len(&self) -> usize {
        self.chunk_size + TAG_LEN
    }

    /// Record size of a full chunk.
    fn record_size(&self) -> u64 {
        (self.chunk_size + self.overhead) as u64
    }

    /// The chunk whose record holds stream offset `offset` (the trailer counts as past the last chunk).
    fn chunk_of(&self, offset: u64) -> u64 {
        offset / self.record_size()
    }

    /// Plaintext length of chunk `index` (every chunk is full but the last).
    fn chunk_len(&self, index: u64) -> usize {
        match self.last_chunk {
            Some((last, len)) if last == index => len,
            _ => self.chunk_size,
        }
    }

    fn record_end(&self, index: u64) -> u64 {
        index * self.record_size() + (self.chunk_len(index) + self.overhead) as u64
    }

    /// The buffer holding the chunk being written, claiming one if needed; `None` while the pipeline is full:
    /// an older chunk still waits for its first transmission, no buffer is free of unsent bytes, or (sealed)
    /// the tag slot is still taken by a chunk with unacked bytes.
    fn filling_buffer(&mut self) -> Option<usize> {
        if let Some(b) = self.buffer_holding(Held::Filling) {
            return Some(b);
        }
        let index = self.chunk_index;
        // Everything that can be sent was, and the rest is short of a message: only more data moves the dump.
        // (With messages longer than a record, that rest can span both buffers, and one must be given up.)
        let starved = self.stream_sent == self.stream_queued
            && self.stream_ready - self.stream_queued < self.ring.payload_size as u64;
        if index > 0 && self.stream_sent < (index - 1) * self.record_size() && !starved {
            return None;
        }
        if self.sealer.is_some() {
            let slots = self.tags.len() as u64;
            if index >= slots && self.record_end(index - slots) > self.stream_acked {
                return None;
            }
        }
        let b = self.spare_buffer(starved)?;
        self.held[b] = Held::Filling;
        Some(b)
    }

    fn buffer_holding(&self, held: Held) -> Option<usize> {
        self.held[..self.buffer_count].iter().position(|h| *h == held)
    }

    /// The buffer to reuse: a free one, else the one holding the oldest record that was sent whole (records are
    /// kept only for retransmissions, and the newest are the likeliest to need one), else, if `unsent_too`,
    /// the later of those whose first transmissions are still due. Never the chunk being written.
    fn spare_buffer(&self, unsent_too: bool) -> Option<usize> {
        let rank = |h: Held| match h {
            Held::Empty => Some((0, 0)),
            Held::Filling => None,
            Held::Record(i) if self.record_end(i) <= self.stream_sent => Some((1, i)),
            Held::Record(i) => unsent_too.then_some((2, u64::MAX - i)),
        };
        (0..self.buffer_count)
            .filter_map(|b| rank(self.held[b]).map(|r| (r, b)))
            .min()
            .map(|(_, b)| b)
    }

    /// Seals (or, plain, freezes) the filling buffer `b` as chunk `chunk_index` and adds it to the record
    /// stream; sealed from `plain` when given (a whole chunk the caller wrote), else in place. False (and the
    /// dump failed) on error.
    fn complete_chunk(&mut self, b: usize, plain: Option<&[u8]>) -> bool {
        let len = self.chunk_fill;
        let index = self.chunk_index;
        let at = b * self.buffer_len();
        if let Some(sealer) = self.sealer.as_ref() {
            let record = &mut self.chunks[at..at + len];
            let sealed = match plain {
                Some(plain) => sealer.seal_chunk_from(index, plain, record),
                None => sealer.seal_chunk(index, record),
            };
            match sealed {
                Ok(tag) => {
                    self.chunks[at + len..at + len + TAG_LEN].copy_from_slice(&tag);
                    let slot = (index % self.tags.len() as u64) as usize;
                    self.tags[slot] = tag;
                }
                Err(e) => {
                    self.fail(FailReason::Crypto(e));
                    return false;
                }
            }
        }
        self.held[b] = Held::Record(index);
        self.chunk_fill = 0;
        self.chunk_index += 1;
        self.sealed_total += len as u64;
        if self.sealer.is_some() {
            self.stream_ready += (len + TAG_LEN) as u64;
        }
        true
    }

    /// Queues the produced record stream as VMCORE messages of `payload_size` bytes while the ring has room;
    /// with `flush`, the last one may be short.
    fn queue_stream(&mut self, flush: bool) {
        let payload = self.ring.payload_size as u64;
        while self.stream_queued < self.stream_ready {
            let len = (self.stream_ready - self.stream_queued).min(payload);
            if len < payload && !flush {
                return;
            }
            if self
                .ring
                .alloc(MessageType::Vmcore, self.stream_queued, len as usize)
                .is_none()
            {
                return;
            }
            self.stream_queued += len;
        }
    }

    /// Moves pending producer work (header, last chunk, trailer, stream, KDH, FINISHED) into the ring.
    fn pump(&mut self) {
        loop {
            if self.outcome.is_some() {
                return;
            }
            match self.stage {
                Stage::Key { pos } => {
                    if pos >= self.header_len {
                        self.stage = Stage::Writing;
                        continue;
                    }
                    let end = (pos + self.ring.payload_size).min(self.header_len);
                    if self
                        .ring
                        .alloc(MessageType::EkcdKey, pos as u64, end - pos)
                        .is_none()
                    {
                        return;
                    }
                    self.stage = Stage::Key { pos: end };
                }
                Stage::Writing => {
                    self.queue_stream(false);
                    if self.end.is_none() {
                        return;
                    }
                    self.stage = Stage::SealLast;
                }
                Stage::SealLast => {
                    if self.chunk_fill > 0 {
                        let Some(b) = self.buffer_holding(Held::Filling) else {
                            return;
                        };
                        self.last_chunk = Some((self.chunk_index, self.chunk_fill));
                        if !self.complete_chunk(b, None) {
                            return;
                        }
                    }
                    if self.sealer.is_some() {
                        if !self.seal_trailer() {
                            return;
                        }
                        self.trailer_at = Some(self.stream_ready);
                        self.stream_ready += TRAILER_RECORD_LEN as u64;
                    }
                    self.stage = Stage::Flush;
                }
                Stage::Flush => {
                    self.queue_stream(true);
                    if self.stream_queued < self.stream_ready {
                        return;
                    }
                    self.stage = if self.end == Some(End::Abort) {
                        Stage::Drain
                    } else {
                        Stage::Kdh
                    };
                }
                Stage::Kdh => {
                    if self.ring.alloc(MessageType::Kdh, 0, kdh::KDH_LEN).is_none() {
                        return;
                    }
                    self.stage = Stage::Fin;
                }
                Stage::Fin => {
                    let Some(seq) = self.ring.alloc(MessageType::Finished, 0, 0) else {
                        return;
                    };
                    self.finished_seq = Some(seq);
                    self.stage = Stage::Drain;
                }
                Stage::Drain => {
                    if self.end == Some(End::Abort) && self.ring.is_empty() {
                        self.fail(FailReason::Aborted);
                    }
                    return;
                }
            }
        }
    }

    fn seal_trailer(&mut self) -> bool {
        let Some(sealer) = self.sealer.as_ref() else {
            return false;
        };
        let status = if self.end == Some(End::Abort) {
            TrailerStatus::Aborted
        } else {
            TrailerStatus::Complete
        };
        let trailer = Trailer {
            total_len: self.sealed_total,
            chunk_count: self.chunk_index,
            status,
        };
        match sealer.seal_trailer(&trailer, &mut self.trailer) {
            Ok(()) => true,
            Err(e) => {
                self.fail(FailReason::Crypto(e));
                false
            }
        }
    }

    /// The kernel dump header for the KDH message (see [`Client::finish`]).
    fn kdh_to_send(&self) -> [u8; kdh::KDH_LEN] {
        let mut out = [0u8; kdh::KDH_LEN];
        if self.sealer.is_none()
            && let Some(raw) = self.kdh
        {
            return raw;
        }
        let given = self.kdh.as_ref().and_then(|raw| kdh::Repr::parse(&raw[..]).ok());
        let mut repr = kdh::Repr {
            magic: given.as_ref().map_or(kdh::Magic::Kernel, |g| g.magic),
            architecture: given.as_ref().map_or(self.architecture, |g| g.architecture),
            version: kdh::CURRENT_VERSION,
            architecture_version: given.as_ref().map_or(0, |g| g.architecture_version),
            dump_length: self.stream_ready,
            dump_time: given.as_ref().map_or(self.dump_time, |g| g.dump_time),
            dump_key_size: self.header_len as u32,
            block_size: kdh::NETDUMP_BLOCK_SIZE,
            hostname: &[],
            version_string: &[],
            panic_string: &[],
            compression: 0,
            dump_extent: self.stream_ready,
            parity_ok: true,
        };
        if repr.emit(&mut out).is_err() {
            // Only an over-long architecture name can be refused; send the header without it.
            repr.architecture = &[];
            let _ = repr.emit(&mut out);
        }
        out
    }

    /// Copies record-stream bytes `[offset, offset + out.len())` into `out`, bringing back any chunk that is no
    /// longer buffered from `source`.
    fn copy_stream<S: DumpSource + ?Sized>(
        &mut self,
        offset: u64,
        out: &mut [u8],
        source: &S,
    ) -> Result<(), FailReason> {
        let mut done = 0;
        while done < out.len() {
            let pos = offset + done as u64;
            let (from, n) = match self.trailer_at {
                Some(at) if pos >= at => {
                    let within = (pos - at) as usize;
                    let n = (TRAILER_RECORD_LEN - within.min(TRAILER_RECORD_LEN)).min(out.len() - done);
                    out[done..done + n].copy_from_slice(&self.trailer[within..within + n]);
                    (None, n)
                }
                _ => {
                    let index = self.chunk_of(pos);
                    let within = (pos - index * self.record_size()) as usize;
                    let record_len = self.chunk_len(index) + self.overhead;
                    let n = record_len.saturating_sub(within).min(out.len() - done);
                    (Some((index, within)), n)
                }
            };
            if n == 0 {
                // Cannot happen: the ring only holds offsets of produced bytes.
                return Err(FailReason::Source(crate::SourceError::Unavailable));
            }
            if let Some((index, within)) = from {
                let b = self.load_chunk(index, source)?;
                let at = b * self.buffer_len() + within;
                out[done..done + n].copy_from_slice(&self.chunks[at..at + n]);
            }
            done += n;
        }
        Ok(())
    }

    /// The buffer holding chunk `index`'s record, re-reading and re-sealing it into a spare buffer if needed.
    /// A re-sealed chunk whose tag differs from the first sealing means the source changed: those bytes would
    /// reuse the chunk's nonce for other plaintext, so they are never sent and the dump fails.
    fn load_chunk<S: DumpSource + ?Sized>(&mut self, index: u64, source: &S) -> Result<usize, FailReason> {
        if let Some(b) = self.buffer_holding(Held::Record(index)) {
            return Ok(b);
        }
        if self.sealer.is_none()
            && index == self.chunk_index
            && let Some(b) = self.buffer_holding(Held::Filling)
        {
            return Ok(b);
        }
        let Some(b) = self.spare_buffer(true) else {
            return Err(FailReason::Source(crate::SourceError::Unavailable));
        };
        self.held[b] = Held::Empty;
        let len = self.chunk_len(index);
        let at = b * self.buffer_len();
        let plaintext_at = index * self.chunk_size as u64;
        source
            .read_at(plaintext_at, &mut self.chunks[at..at + len])
            .map_err(FailReason::Source)?;
        if let Some(sealer) = self.sealer.as_ref() {
            let tag = sealer
                .seal_chunk(index, &mut self.chunks[at..at + len])
                .map_err(FailReason::Crypto)?;
            let slot = (index % self.tags.len() as u64) as usize;
            if tag != self.tags[slot] {
                // Wipe the ciphertext of the changed plaintext: it must never leave.
                self.chunks[at..at + len].fill(0);
                return Err(FailReason::SourceChanged);
            }
            self.chunks[at + len..at + len + TAG_LEN].copy_from_slice(&tag);
        }
        self.held[b] = Held::Record(index);
        self.stats.chunks_reread += 1;
        Ok(b)
    }

    /// Builds message `slot` (sequence number `seq`) into `out` (header included); its length, or `None` if
    /// `out` is too short. A failure to rebuild its bytes ends the dump.
    fn build<S: DumpSource + ?Sized>(
        &mut self,
        seq: u64,
        slot: SlotState,
        out: &mut [u8],
        source: &S,
    ) -> Option<usize> {
        let len = slot.len as usize;
        let out = out.get_mut(..HEADER_LEN + len)?;
        let payload = &mut out[HEADER_LEN..];
        let msg_type = match slot.msg_type {
            t if t == MessageType::Vmcore as u8 => {
                if let Err(reason) = self.copy_stream(slot.offset, payload, source) {
                    self.fail(reason);
                    return None;
                }
                MessageType::Vmcore
            }
            t if t == MessageType::EkcdKey as u8 => {
                let from = slot.offset as usize;
                payload.copy_from_slice(self.header.get(from..from + len)?);
                MessageType::EkcdKey
            }
            t if t == MessageType::Kdh as u8 => {
                payload.copy_from_slice(&self.kdh_to_send());
                MessageType::Kdh
            }
            _ => MessageType::Finished,
        };
        netdump::emit_header(out, msg_type, seq as u32, slot.offset, len as u32, 0).ok()?;
        Some(HEADER_LEN + len)
    }

    /// Feeds a received datagram. Only exactly-4-byte acks from the receiver count; anything else is ignored.
    pub fn handle_datagram(&mut self, now: Instant, from: SocketAddr, data: &[u8]) {
        if self.outcome.is_some() {
            return;
        }
        let Ok(ack) = sealdump_wire::ack::Repr::parse(data) else {
            return;
        };
        match self.session {
            None => {
                // The first ack of the herald names the session port (netdumpd answers from a new socket).
                if from.ip() != self.server.ip()
                    || u64::from(ack.seqno) != HERALD_SEQ
                    || self.herald_sends == 0
                {
                    return;
                }
                self.session = Some(from);
                self.connected_pending = true;
                if self.herald_sends == 1 {
                    self.rtt.on_sample(now.as_micros(), now - self.herald_sent_at);
                }
                self.last_progress = now;
            }
            Some(session) if session == from => self.on_ack(now, ack.seqno),
            Some(_) => {}
        }
    }

    fn on_ack(&mut self, now: Instant, seqno: u32) {
        let seq = self.ring.base + u64::from(seqno.wrapping_sub(self.ring.base as u32));
        if seq >= self.ring.next_send {
            return;
        }
        let index = self.ring.index(seq);
        // Every seq in [base, next_send) has its own slot: the ring never holds more than its size.
        let slot = self.ring.states[index];
        match slot.status {
            Status::InFlight => {
                self.in_flight -= 1;
                // Acked sooner after a fast resend than any round trip allows: the ack is for the first copy,
                // which the path delayed behind later packets.
                if slot.retransmits > 0
                    && slot.resent_by == ResendCause::LaterAcks
                    && now.as_micros().saturating_sub(slot.sent_at_us) < self.rtt.min_rtt_us() / 2
                {
                    self.on_spurious_loss(self.reorder_threshold.saturating_mul(2));
                }
            }
            Status::Lost => {
                // Declared lost by later acks, then acked before the resend: the path reorders by this many
                // sends, so wait for that many from now on.
                self.lost -= 1;
                let distance = self.largest_acked_tx.map_or(0, |l| l.saturating_sub(slot.tx));
                self.on_spurious_loss(distance + 1);
            }
            // A late ack after a timeout is a delay, not reordering, and the timeout was spurious.
            Status::Expired => {
                self.lost -= 1;
                self.cc.undo_timeout();
            }
            _ => return,
        }
        self.ring.states[index].status = Status::Acked;
        if slot.status == Status::Expired {
            self.unexpire();
        }
        let ring = &mut self.ring;
        // Karn: only packets sent once give an unambiguous RTT and order. A probe went out as the newest packet in
        // flight, so whichever copy its ack is for, every packet still in flight was sent before it: loss detection
        // may judge them against it. (An ack sooner than any round trip after the probe is the first copy's, which
        // says nothing new: RFC 8985 §6.2.)
        let sent_once = slot.retransmits == 0;
        if sent_once {
            self.rtt
                .on_sample(now.as_micros(), now - Instant::from_micros(slot.sent_at_us));
        }
        let probe_answered = slot.resent_by == ResendCause::Probe
            && now.as_micros().saturating_sub(slot.sent_at_us) >= self.rtt.min_rtt_us() / 2;
        if sent_once || probe_answered {
            self.largest_acked_tx = Some(self.largest_acked_tx.map_or(slot.tx, |t| t.max(slot.tx)));
        }
        self.cc.on_ack(slot.tx);
        self.cc.on_delivery(now.as_micros(), self.rtt.min_rtt_us());
        if slot.msg_type == MessageType::Vmcore as u8 {
            self.stats.bytes_acked += u64::from(slot.len);
        }
        self.last_progress = now;
        self.progress_pending = true;
        while ring.base < ring.next_send {
            let i = ring.index(ring.base);
            let done = ring.states[i];
            if done.status != Status::Acked {
                break;
            }
            if done.msg_type == MessageType::Vmcore as u8 {
                self.stream_acked = done.offset + u64::from(done.len);
            }
            ring.states[i] = SlotState::EMPTY;
            ring.base += 1;
        }
        // RFC 6298 §5.3: restart the timer when new data is acked.
        self.rto_deadline = (self.in_flight > 0).then(|| now + self.rtt.rto());
        self.timed_out = false;
        self.probe_deadline = (self.in_flight > 0).then(|| now + self.probe_timeout());
        self.probe_seq = None;
        self.loss_check_due.get_or_insert(now);
        if Some(seq) == self.finished_seq {
            self.outcome = Some(Event::Done(self.stats()));
            self.rto_deadline = None;
            self.probe_deadline = None;
            return;
        }
        self.pump();
    }

    /// After a spurious timeout (F-RTO, RFC 5682): the packets it expired and that were not sent again yet are
    /// still on their way, so they count as in flight again instead of all being sent a second time (a queue
    /// that grew faster than the RTO estimate cost thousands of needless resends per dump).
    fn unexpire(&mut self) {
        let ring = &mut self.ring;
        for seq in ring.base..ring.next_send {
            let index = ring.index(seq);
            if ring.states[index].status == Status::Expired {
                ring.states[index].status = Status::InFlight;
                self.in_flight += 1;
                self.lost -= 1;
            }
        }
    }

    fn on_spurious_loss(&mut self, threshold: u64) {
        self.spurious += 1;
        self.reorder_time_shift = (self.reorder_time_shift + 1).min(4);
        self.reorder_threshold = self
            .reorder_threshold
            .max(threshold)
            .min(self.window.max(3) as u64);
    }

    /// How long after its send a packet overtaken by an acked one counts as lost: 9/8 of the RTT (QUIC's
    /// time threshold, RFC 9002 §6.1.2), doubled for each reordering seen up to 16x, at least 1 ms.
    fn loss_delay(&self) -> u64 {
        let rtt = self.rtt.srtt_us().max(self.rtt.latest_rtt_us());
        (rtt * 9 / 8).max(1_000) << self.reorder_time_shift
    }

    /// Marks as lost every in-flight packet sent before the newest acked one that is either
    /// `reorder_threshold` transmissions older or [`Client::loss_delay`] old; arms `loss_time` for the rest.
    fn detect_losses(&mut self, now: Instant) {
        self.loss_time = None;
        self.loss_check_due = None;
        let Some(largest) = self.largest_acked_tx else {
            return;
        };
        let loss_delay = self.loss_delay();
        // Judged once per detection pass, on the smallest RTT of the last round trips: a queue that stands
        // delays every packet, while scheduling jitter (large on a loaded host) delays only some, and halving on
        // such a spike kept a 1 % lossy 2 ms path near 100 packets in flight.
        let path = crate::congestion::PathDelay::of(self.rtt.recent_min_rtt_us(), self.rtt.min_rtt_us());
        let ring = &mut self.ring;
        let mut seq = ring.base;
        while seq < ring.next_send {
            let index = ring.index(seq);
            let slot = ring.states[index];
            seq += 1;
            if slot.status != Status::InFlight {
                continue;
            }
            if slot.tx > largest {
                if slot.retransmits == 0 {
                    // First transmissions go out in seq order, so every later one is newer still.
                    break;
                }
                continue;
            }
            let lost_at = slot.sent_at_us.saturating_add(loss_delay);
            if slot.tx + self.reorder_threshold <= largest || lost_at <= now.as_micros() {
                ring.states[index].status = Status::Lost;
                self.in_flight -= 1;
                self.lost += 1;
                self.rexmit_credit += 1;
                self.cc.on_loss(slot.tx, self.next_tx, path);
            } else {
                let at = Instant::from_micros(lost_at);
                self.loss_time = Some(self.loss_time.map_or(at, |t| t.min(at)));
            }
        }
    }

    /// Feeds the passage of time; call when [`Client::poll_timeout`] is reached.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.outcome.is_some() {
            return;
        }
        self.check_give_up(now);
        if (self.loss_check_due.is_some() || self.loss_time.is_some_and(|t| now >= t))
            && self.outcome.is_none()
        {
            self.detect_losses(now);
        }
        if let Some(deadline) = self.rto_deadline
            && now >= deadline
            && self.outcome.is_none()
        {
            self.on_rto(now);
        }
        if let Some(deadline) = self.probe_deadline
            && now >= deadline
            && self.outcome.is_none()
        {
            self.on_probe_timeout();
        }
    }

    /// Two round trips (at least [`MIN_PROBE_TIMEOUT_US`]) after the last ack or send; never later than the
    /// retransmission timeout, which then comes first.
    fn probe_timeout(&self) -> Duration {
        let srtt = self.rtt.srtt_us();
        if srtt == 0 {
            return self.rtt.rto();
        }
        Duration::from_micros(srtt.saturating_mul(2).max(MIN_PROBE_TIMEOUT_US)).min(self.rtt.rto())
    }

    /// The probe timer fired: the newest packet in flight goes out again at the next `poll_transmit`, beyond
    /// the window and without a window reduction. Its ack lets loss detection find the earlier losses.
    fn on_probe_timeout(&mut self) {
        self.probe_deadline = None;
        let ring = &self.ring;
        self.probe_seq = (ring.base..ring.next_send)
            .filter(|&seq| ring.states[ring.index(seq)].status == Status::InFlight)
            .max_by_key(|&seq| ring.states[ring.index(seq)].tx);
    }

    fn on_rto(&mut self, now: Instant) {
        let rto_us = self.rtt.rto().as_micros() as u64;
        let ring = &mut self.ring;
        let mut marked = false;
        let mut earliest: Option<u64> = None;
        for seq in ring.base..ring.next_send {
            let index = ring.index(seq);
            let slot = ring.states[index];
            if slot.status != Status::InFlight {
                continue;
            }
            if slot.sent_at_us.saturating_add(rto_us) <= now.as_micros() {
                ring.states[index].status = Status::Expired;
                self.in_flight -= 1;
                self.lost += 1;
                marked = true;
            } else {
                earliest = Some(earliest.map_or(slot.sent_at_us, |e| e.min(slot.sent_at_us)));
            }
        }
        if marked {
            self.probe_seq = None;
            self.probe_deadline = None;
            self.timed_out = true;
            self.stats.timeouts += 1;
            self.rexmit_credit = 0;
            self.cc.on_timeout(self.next_tx);
            self.rtt.backoff();
        }
        // Restarted by the next send if nothing is left in flight.
        self.rto_deadline = earliest.map(|t| Instant::from_micros(t) + self.rtt.rto());
    }

    /// Whether the give-up deadline is armed: the herald is unanswered or sent packets wait for acks.
    /// (Packets only queued wait for the caller or the window, not for the receiver.)
    fn awaiting_acks(&self) -> bool {
        self.session.is_none() || self.ring.base < self.ring.next_send
    }

    fn check_give_up(&mut self, now: Instant) {
        if self.awaiting_acks() && now >= self.last_progress + self.give_up_after {
            let reason = if self.session.is_none() {
                FailReason::NoServer
            } else {
                FailReason::Timeout
            };
            self.fail(reason);
        }
    }

    /// The next instant at which [`Client::handle_timeout`] must be called (then `poll_transmit`); `None`
    /// when the client waits only for the caller (more data) or has ended.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.outcome.is_some() {
            return None;
        }
        let mut next = [
            self.rto_deadline,
            self.loss_time,
            self.loss_check_due,
            self.probe_deadline,
        ]
        .into_iter()
        .flatten()
        .min();
        if self.session.is_none() {
            next = Some(next.map_or(self.herald_due, |t| t.min(self.herald_due)));
        }
        if self.awaiting_acks() {
            let give_up = self.last_progress + self.give_up_after;
            next = Some(next.map_or(give_up, |t| t.min(give_up)));
        }
        next
    }

    /// Writes the next datagram to send into `buf` (which must hold `24 + payload_size` bytes) and says where
    /// it goes; `None` when nothing may be sent now. Call repeatedly until `None`.
    ///
    /// `source` is the whole dump (the bytes given to [`Client::write`], at their offsets): a retransmission
    /// whose chunk is no longer buffered reads that chunk again from it. A source that cannot supply the
    /// bytes, or (sealed) whose bytes changed since they were written, ends the dump with [`Event::Failed`].
    pub fn poll_transmit<S: DumpSource + ?Sized>(
        &mut self,
        now: Instant,
        buf: &mut [u8],
        source: &S,
    ) -> Option<Transmit> {
        if self.outcome.is_some() {
            return None;
        }
        self.check_give_up(now);
        if self.outcome.is_some() {
            return None;
        }
        if self.loss_check_due.is_some() {
            self.detect_losses(now);
        }
        let Some(session) = self.session else {
            return self.transmit_herald(now, buf);
        };
        if let Some(probe) = self.probe_seq.take()
            && let Some(transmit) = self.transmit_probe(now, probe, session, buf, source)
        {
            return Some(transmit);
        }
        // Rebuilding the probe can end the dump (its chunk could not be read again): nothing more goes out then.
        if self.outcome.is_some() {
            return None;
        }
        let limit = (self.cc.window() as usize).min(self.window);
        let use_credit = self.in_flight >= limit;
        if use_credit && (self.rexmit_credit == 0 || self.lost == 0) {
            return None;
        }
        let seq = self.next_to_send(use_credit)?;
        let index = self.ring.index(seq);
        let slot = self.ring.states[index];
        let len = self.build(seq, slot, buf, source)?;

        let pipe_was_empty = self.in_flight == 0 && self.lost == 0;
        let resent_by = match slot.status {
            Status::Expired => Some(ResendCause::Timeout),
            Status::Lost => Some(ResendCause::LaterAcks),
            _ => None,
        };
        if resent_by.is_some() {
            self.lost -= 1;
            self.rexmit_credit = self.rexmit_credit.saturating_sub(1);
        } else {
            self.ring.next_send = seq + 1;
            if slot.msg_type == MessageType::Vmcore as u8 {
                self.stream_sent = slot.offset + u64::from(slot.len);
            }
        }
        self.mark_sent(index, slot, resent_by, now);
        self.in_flight += 1;
        if pipe_was_empty {
            // Waiting for the caller's data is not the receiver's fault: the deadline counts from here.
            self.last_progress = now;
        }
        if self.rto_deadline.is_none() {
            self.rto_deadline = Some(now + self.rtt.rto());
        }
        if !self.timed_out {
            self.probe_deadline = Some(now + self.probe_timeout());
        }
        Some(Transmit {
            destination: session,
            len,
        })
    }

    /// Sends packet `seq` again as a tail-loss probe if it is still in flight.
    fn transmit_probe<S: DumpSource + ?Sized>(
        &mut self,
        now: Instant,
        seq: u64,
        session: SocketAddr,
        buf: &mut [u8],
        source: &S,
    ) -> Option<Transmit> {
        if seq < self.ring.base || seq >= self.ring.next_send {
            return None;
        }
        let index = self.ring.index(seq);
        let slot = self.ring.states[index];
        if slot.status != Status::InFlight {
            return None;
        }
        let len = self.build(seq, slot, buf, source)?;
        self.mark_sent(index, slot, Some(ResendCause::Probe), now);
        self.stats.probes += 1;
        Some(Transmit {
            destination: session,
            len,
        })
    }

    /// Records that the packet in ring slot `index` (state `slot`) went out at `now` as the next transmission:
    /// a first send, or a resend for `resent_by`. It is in flight from then on.
    fn mark_sent(&mut self, index: usize, slot: SlotState, resent_by: Option<ResendCause>, now: Instant) {
        self.ring.states[index] = SlotState {
            status: Status::InFlight,
            retransmits: slot.retransmits.saturating_add(u8::from(resent_by.is_some())),
            resent_by: resent_by.unwrap_or(ResendCause::LaterAcks),
            tx: self.next_tx,
            sent_at_us: now.as_micros(),
            ..slot
        };
        self.next_tx += 1;
        self.stats.packets_sent += 1;
        if resent_by.is_some() {
            self.stats.retransmits += 1;
        }
    }

    /// Lost packets first (oldest first), then new ones in order; FINISHED only once all else is acked, so
    /// a receiver never closes the session while data is still missing.
    fn next_to_send(&self, lost_only: bool) -> Option<u64> {
        let ring = &self.ring;
        if self.lost > 0 {
            let lost = (ring.base..ring.next_send).find(|&s| ring.states[ring.index(s)].status.is_lost());
            if lost.is_some() || lost_only {
                return lost;
            }
        }
        if lost_only {
            return None;
        }
        if ring.next_send >= ring.next_alloc {
            return None;
        }
        if Some(ring.next_send) == self.finished_seq && ring.base != ring.next_send {
            return None;
        }
        Some(ring.next_send)
    }

    fn transmit_herald(&mut self, now: Instant, buf: &mut [u8]) -> Option<Transmit> {
        if now < self.herald_due {
            return None;
        }
        let path = self.herald_path;
        let payload_len = if path.is_empty() { 0 } else { path.len() + 1 };
        let out = buf.get_mut(..HEADER_LEN + payload_len)?;
        netdump::emit_header(
            out,
            MessageType::Herald,
            HERALD_SEQ as u32,
            0,
            payload_len as u32,
            0,
        )
        .ok()?;
        if payload_len > 0 {
            out[HEADER_LEN..HEADER_LEN + path.len()].copy_from_slice(path);
            out[HEADER_LEN + path.len()] = 0;
        }
        if self.herald_sends > 0 {
            self.rtt.backoff();
            self.stats.retransmits += 1;
        }
        self.herald_sends += 1;
        self.herald_sent_at = now;
        self.herald_due = now + self.rtt.rto();
        self.stats.packets_sent += 1;
        Some(Transmit {
            destination: self.server,
            len: HEADER_LEN + payload_len,
        })
    }

    /// The next event, if any: `Connected`, then coalesced `Progress`, then once `Done` or `Failed`.
    pub fn poll_event(&mut self) -> Option<Event> {
        if self.connected_pending {
            self.connected_pending = false;
            return self.session.map(|server| Event::Connected { server });
        }
        if self.progress_pending {
            self.progress_pending = false;
            return Some(Event::Progress(self.stats()));
        }
        if !self.outcome_reported && self.outcome.is_some() {
            self.outcome_reported = true;
            return self.outcome;
        }
        None
    }
}

#[cfg(test)]
impl Client<'_> {
    /// Whether packets are sent and unacked, or wait to be sent again.
    pub(crate) fn packets_out(&self) -> bool {
        self.in_flight > 0 || self.lost > 0
    }

    /// Recounts the ring and checks the bookkeeping (used by the property tests).
    pub(crate) fn check_invariants(&self) {
        let ring = &self.ring;
        assert!(ring.base <= ring.next_send && ring.next_send <= ring.next_alloc);
        assert!(ring.next_alloc - ring.base <= ring.size());
        assert!(self.stream_acked <= self.stream_sent && self.stream_sent <= self.stream_queued);
        assert!(self.stream_queued <= self.stream_ready);
        assert!(
            self.held[..self.buffer_count]
                .iter()
                .filter(|h| **h == Held::Filling)
                .count()
                <= 1
        );
        assert!(self.held[self.buffer_count..].iter().all(|h| *h == Held::Empty));
        let (mut in_flight, mut lost) = (0, 0);
        for seq in ring.base..ring.next_alloc {
            let slot = ring.states[ring.index(seq)];
            match slot.status {
                Status::InFlight => in_flight += 1,
                Status::Lost | Status::Expired => lost += 1,
                Status::Acked => assert!(seq > ring.base, "acked base slot not freed"),
                Status::Queued => assert!(seq >= ring.next_send),
                Status::Free => panic!("free slot inside the ring"),
            }
            if seq >= ring.next_send {
                assert_eq!(slot.status, Status::Queued);
            }
        }
        assert_eq!((in_flight, lost), (self.in_flight, self.lost));
        assert!(self.cc.window() >= 1 && self.cc.window() as usize <= self.window);
    }
}
