//! The hosted send loop: client-core over a std UDP socket, fed with real time.
//!
//! Call order per turn (quinn style): drain received datagrams into `handle_datagram`, fire `handle_timeout` when
//! due, hand the client as many input bytes as it takes (`write` applies back-pressure), send everything
//! `poll_transmit` yields, collect events, then sleep in `poll(2)` until a datagram arrives or the client's next
//! timer, if that turn did nothing. The input is read by a separate thread into a small queue of 1 MiB blocks, so a
//! slow pipe or disk never stalls acks and retransmissions.
//!
//! client-core buffers only two chunks; a retransmission of an older one reads it again ([`Reread`]): a file
//! (and /proc/vmcore) with positional reads, a pipe or stdin from the input blocks kept in memory since the
//! client last said it might need them ([`Client::retained_from`], about a window's worth of bytes).
//!
//! Datagrams leave in UDP GSO batches ([`TxBatch`]: one `sendmsg` for up to 64 KiB of equal-size datagrams) and
//! acks are read with `recvmmsg` and GRO, both through `quinn-udp`: on loopback and on LANs the cost is per
//! system call, and one call per datagram made the kernel, not the crypto, the limit at 1448-byte payloads.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::fs::File;
use std::io::{self, IoSliceMut, Read};
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use quinn_udp::{RecvMeta, Transmit, UdpSocketState};
use sealdump_client_core::{
    self as core, Buffers, Client, Config, DumpSource, Event, FailReason, Mode, SlotState, SourceError,
    Stats, seal,
};
use sealdump_crypto::keys::PublicKey;
use sealdump_crypto::{AeadId, DumpKey};
use socket2::{Domain, Protocol, Socket, Type};

/// Size of one input block handed from the reader thread to the send loop.
const INPUT_BLOCK: usize = 1 << 20;
/// Input blocks queued ahead of the send loop.
const INPUT_QUEUE: usize = 4;
/// Socket buffers: a full window of 8 KiB datagrams fits several times over.
const SOCKET_BUFFER: usize = 8 << 20;
/// Bytes of one GSO send: UDP's 65 507-byte limit for IPv4, less a margin.
const GSO_MAX_BYTES: usize = 65_000;
/// Ring slots per datagram of window (see where the ring is made).
const RING_WINDOWS: usize = 4;
/// Receive buffers per `recvmmsg`; acks are 4 bytes, and a GRO batch of them is at most 64 of those.
const RX_BUFFERS: usize = 16;
/// Size of each receive buffer (anything longer is not an ack; it is cut short and then refused as malformed).
const RX_BUFFER: usize = 4096;

/// How the send loop reads dump bytes again for retransmissions of chunks client-core no longer buffers.
#[derive(Debug)]
pub enum Reread {
    /// Positional reads of this file, whose byte 0 is the dump's byte 0 (a regular file, /proc/vmcore).
    File(File),
    /// Keep the input blocks in memory until the client no longer needs them (stdin, pipes, generators).
    Memory,
}

/// The dump as the client's [`DumpSource`]: a file, or the input blocks still kept.
struct Source {
    file: Option<File>,
    /// Blocks kept, the first starting at dump offset `kept_from`.
    blocks: VecDeque<Vec<u8>>,
    kept_from: u64,
    /// The first read error, for the failure message.
    error: RefCell<Option<io::Error>>,
}

impl Source {
    fn new(reread: Reread) -> Self {
        Self {
            file: match reread {
                Reread::File(file) => Some(file),
                Reread::Memory => None,
            },
            blocks: VecDeque::new(),
            kept_from: 0,
            error: RefCell::new(None),
        }
    }

    /// Keeps a block just read (the last one is the one being written to the client).
    fn push(&mut self, block: Vec<u8>) {
        self.blocks.push_back(block);
    }

    /// Forgets the blocks wholly before `offset` (never the last one).
    fn forget_before(&mut self, offset: u64) {
        while self.blocks.len() > 1 {
            let len = self.blocks[0].len() as u64;
            if self.file.is_none() && self.kept_from + len > offset {
                break;
            }
            self.blocks.pop_front();
            self.kept_from += len;
        }
    }

    /// Why reading failed, for the message.
    fn failure(&self, reason: FailReason) -> String {
        match (reason, self.error.borrow().as_ref()) {
            (FailReason::Source(_), Some(e)) => format!("{reason} ({e})"),
            (FailReason::Source(SourceError::Unavailable), None) => {
                format!("{reason} (the input cannot be read twice and was forgotten)")
            }
            _ => reason.to_string(),
        }
    }
}

impl DumpSource for Source {
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<(), SourceError> {
        if let Some(file) = &self.file {
            return file.read_exact_at(buf, offset).map_err(|e| {
                self.error.borrow_mut().get_or_insert(e);
                SourceError::Io
            });
        }
        let mut at = self.kept_from;
        let mut done = 0;
        for block in &self.blocks {
            let end = at + block.len() as u64;
            let pos = offset + done as u64;
            if pos < end && done < buf.len() {
                if pos < at {
                    break;
                }
                let within = (pos - at) as usize;
                let n = (block.len() - within).min(buf.len() - done);
                buf[done..done + n].copy_from_slice(&block[within..within + n]);
                done += n;
            }
            at = end;
        }
        if done == buf.len() {
            Ok(())
        } else {
            Err(SourceError::Unavailable)
        }
    }
}

/// Sealed-dump metadata owned by the caller (copied into the seal header, encrypted).
#[derive(Debug, Clone, Default)]
pub struct OwnedMetadata {
    /// Host name of the crashed machine.
    pub hostname: Vec<u8>,
    /// Kernel version string.
    pub kernel_version: Vec<u8>,
    /// Panic message, if known.
    pub panic_string: Vec<u8>,
    /// Machine architecture (e.g. `amd64`, `x86_64`).
    pub architecture: Vec<u8>,
    /// Expected plaintext length (0 if unknown, e.g. stdin).
    pub expected_length: u64,
    /// Host UUID (e.g. from /etc/machine-id), zeros if unknown.
    pub host_uuid: [u8; 16],
}

/// How the dump is protected.
#[derive(Debug)]
pub enum Security {
    /// Unencrypted netdump (tests, legacy receivers).
    Plain,
    /// Sealed format v1 to these recipients.
    Sealed {
        /// Recipients (1..=8): X25519 keys are HPKE-wrapped at start, RSA keys from a pre-wrapped pool.
        recipients: Vec<PublicKey>,
        /// Chunk AEAD.
        aead: AeadId,
        /// log2 of the chunk size (12..=20).
        chunk_shift: u8,
        /// Sealed metadata.
        metadata: OwnedMetadata,
    },
}

impl Security {
    /// Plaintext bytes per chunk: client-core's fixed plain chunk size, or the sealed dump's.
    pub fn chunk_size(&self) -> usize {
        match self {
            Security::Plain => core::PLAIN_CHUNK_SIZE,
            Security::Sealed { chunk_shift, .. } => 1 << chunk_shift,
        }
    }
}

/// Everything the send loop needs besides the input.
#[derive(Debug)]
pub struct SendConfig {
    /// Receiver herald address.
    pub server: SocketAddr,
    /// Local address to send from (port 20024 normally, 0 in tests).
    pub bind: SocketAddr,
    /// Herald path (may be empty).
    pub herald_path: Vec<u8>,
    /// Dump bytes per datagram.
    pub payload_size: usize,
    /// Datagrams in flight.
    pub window: usize,
    /// Chunk buffers given to client-core (2 to [`core::MAX_CHUNK_BUFFERS`]): the spare ones keep sent chunks
    /// for retransmissions.
    pub chunk_buffers: usize,
    /// No ack progress for this long ends the dump as failed.
    pub give_up_after: Duration,
    /// Plain or sealed.
    pub security: Security,
}

/// How a send ended (errors before or outside the protocol are [`SendError`]s).
#[derive(Debug)]
pub enum Outcome {
    /// The receiver acknowledged everything, FINISHED included.
    Done(Stats),
    /// The protocol gave up (receiver silent past the deadline, ...).
    Failed(String),
    /// Reading the input failed; the dump was aborted (sealed: with an authentic "aborted" trailer).
    InputFailed(io::Error),
}

/// Errors that prevent a send from running.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SendError {
    /// Socket creation, bind or I/O failure.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// Pre-wrapping the dump key for RSA recipients failed.
    #[error("RSA key wrap: {0}")]
    Wrap(String),
    /// client-core refused the configuration.
    #[error("client setup: {0}")]
    Client(String),
}

fn io_err(context: impl Into<String>) -> impl FnOnce(io::Error) -> SendError {
    let context = context.into();
    move |source| SendError::Io { context, source }
}

enum Block {
    Data(Vec<u8>),
    Error(io::Error),
}

/// Reads `input` into full blocks (short only at EOF) on a thread; the channel closes at EOF.
fn spawn_reader(mut input: Box<dyn Read + Send>) -> mpsc::Receiver<Block> {
    let (tx, rx) = mpsc::sync_channel(INPUT_QUEUE);
    thread::spawn(move || {
        loop {
            let mut block = vec![0u8; INPUT_BLOCK];
            let mut filled = 0;
            while filled < block.len() {
                match input.read(&mut block[filled..]) {
                    Ok(0) => break,
                    Ok(n) => filled += n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => {
                        let _ = tx.send(Block::Error(e));
                        return;
                    }
                }
            }
            if filled == 0 {
                return;
            }
            block.truncate(filled);
            let eof = filled < INPUT_BLOCK;
            if tx.send(Block::Data(block)).is_err() || eof {
                return;
            }
        }
    });
    rx
}

/// Binds the client socket: non-blocking, large buffers.
pub fn bind_socket(bind: SocketAddr) -> Result<UdpSocket, SendError> {
    let socket = Socket::new(Domain::for_address(bind), Type::DGRAM, Some(Protocol::UDP))
        .map_err(io_err("cannot create UDP socket"))?;
    // Best effort: the OS may cap these; a smaller buffer only costs speed.
    let _ = socket.set_send_buffer_size(SOCKET_BUFFER);
    let _ = socket.set_recv_buffer_size(SOCKET_BUFFER);
    socket
        .bind(&bind.into())
        .map_err(io_err(format!("cannot bind UDP {bind}")))?;
    socket
        .set_nonblocking(true)
        .map_err(io_err("cannot make the socket non-blocking"))?;
    Ok(socket.into())
}

/// Waits until the socket is readable (or writable, if `want_write`) or `timeout` passes.
#[allow(unsafe_code)] // poll(2): std has no way to wait for readability with a timeout on a non-blocking socket
fn wait(socket: &UdpSocket, want_write: bool, timeout: Duration) -> Result<(), SendError> {
    let events = libc::POLLIN | if want_write { libc::POLLOUT } else { 0 };
    let mut fds = [libc::pollfd {
        fd: socket.as_raw_fd(),
        events,
        revents: 0,
    }];
    // Round up: waking a little late is fine, spinning on a 0 ms timeout is not.
    let millis = timeout.as_micros().div_ceil(1000).min(1000) as libc::c_int;
    // SAFETY: `fds` is a valid, exclusively borrowed array of one initialised pollfd for the whole call, and the
    // length passed is its length; the fd stays open because `socket` is borrowed for the call.
    let r = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, millis) };
    if r < 0 {
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(SendError::Io {
                context: "poll".into(),
                source: e,
            });
        }
    }
    Ok(())
}

/// Datagrams from `poll_transmit` gathered for one UDP GSO send: equal-size datagrams to one destination, the last
/// possibly shorter, at most `max_segments` of them and [`GSO_MAX_BYTES`] in all. A datagram that cannot join (another
/// destination, or longer) is kept after the batch and starts the next one once the batch is sent.
struct TxBatch {
    buf: Vec<u8>,
    /// Room for one datagram.
    datagram_room: usize,
    /// The batch is `buf[..len]`.
    len: usize,
    /// Length of its datagrams (the first one's).
    segment: usize,
    count: usize,
    to: Option<SocketAddr>,
    /// A shorter datagram ended it.
    closed: bool,
    /// A datagram at `buf[len..]` waiting for the next batch: (length, destination).
    carry: Option<(usize, SocketAddr)>,
}

impl TxBatch {
    fn new(datagram_room: usize) -> Self {
        let max_segments = (GSO_MAX_BYTES / datagram_room).max(1);
        Self {
            buf: vec![0u8; (max_segments + 1) * datagram_room],
            datagram_room,
            len: 0,
            segment: 0,
            count: 0,
            to: None,
            closed: false,
            carry: None,
        }
    }

    /// Most datagrams a batch may hold, given how many segments the socket takes (1 without GSO).
    fn max_segments(&self, socket_segments: usize) -> usize {
        socket_segments.min(GSO_MAX_BYTES / self.datagram_room).max(1)
    }

    /// Where the next datagram is to be written.
    fn room(&mut self) -> &mut [u8] {
        let start = self.len;
        &mut self.buf[start..start + self.datagram_room]
    }

    /// Takes the datagram just written into [`Self::room`]; returns whether the batch must go out before another.
    fn commit(&mut self, len: usize, to: SocketAddr, max_segments: usize) -> bool {
        if self.count == 0 {
            (self.len, self.segment, self.count, self.to) = (len, len, 1, Some(to));
        } else if self.to == Some(to) && len <= self.segment {
            self.len += len;
            self.count += 1;
            self.closed = len < self.segment;
        } else {
            self.carry = Some((len, to));
        }
        self.full(max_segments)
    }

    fn full(&self, max_segments: usize) -> bool {
        self.carry.is_some() || self.closed || self.count >= max_segments
    }

    fn is_empty(&self) -> bool {
        self.count == 0
    }

    fn transmit(&self) -> Option<Transmit<'_>> {
        Some(Transmit {
            destination: self.to?,
            ecn: None,
            contents: &self.buf[..self.len],
            segment_size: (self.count > 1).then_some(self.segment),
            src_ip: None,
        })
    }

    /// The batch went out (or was lost): the carried datagram, if any, starts the next one.
    fn sent(&mut self) {
        let carry = self.carry.take();
        let start = self.len;
        (self.len, self.segment, self.count, self.to, self.closed) = (0, 0, 0, None, false);
        if let Some((len, to)) = carry {
            self.buf.copy_within(start..start + len, 0);
            (self.len, self.segment, self.count, self.to) = (len, len, 1, Some(to));
        }
    }
}

/// Sends `batch` in one system call. `Ok(false)`: the socket buffer is full, try again when writable. Sets
/// `gso_refused` when the path refuses segmentation offload, after sending the batch one datagram per call.
fn send_batch(
    udp: &UdpSocketState,
    socket: &UdpSocket,
    batch: &TxBatch,
    gso_refused: &mut bool,
) -> Result<bool, SendError> {
    let Some(transmit) = batch.transmit() else {
        return Ok(true);
    };
    match udp.try_send(socket.into(), &transmit) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(false),
        // Lost like any datagram; retransmission recovers it.
        Err(e) if transient(&e) => Ok(true),
        // The path refused segmentation offload: a segment larger than the path MTU (EMSGSIZE, or EINVAL on
        // older kernels), which plain sends fragment; an IPsec route or no checksum offload (EIO, EINVAL). This
        // batch goes out now one datagram per call, so nothing waits for a retransmission timeout, and so do the
        // later ones.
        Err(e)
            if batch.count > 1
                && matches!(e.raw_os_error(), Some(libc::EIO | libc::EINVAL | libc::EMSGSIZE)) =>
        {
            tracing::debug!(error = %e, "UDP segmentation offload refused; sending one datagram per call");
            *gso_refused = true;
            send_one_by_one(socket, transmit.contents, batch.segment, transmit.destination)?;
            Ok(true)
        }
        Err(e) => Err(SendError::Io {
            context: format!("send to {}", transmit.destination),
            source: e,
        }),
    }
}

/// Sends `contents` as datagrams of `segment` bytes (the last may be shorter), waiting while the socket is full.
fn send_one_by_one(
    socket: &UdpSocket,
    contents: &[u8],
    segment: usize,
    to: SocketAddr,
) -> Result<(), SendError> {
    for datagram in contents.chunks(segment.max(1)) {
        loop {
            match socket.send_to(datagram, to) {
                Ok(_) => break,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    wait(socket, true, Duration::from_millis(50))?
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                // Lost like any datagram; retransmission recovers it.
                Err(e) if transient(&e) => break,
                Err(e) => {
                    return Err(SendError::Io {
                        context: format!("send to {to}"),
                        source: e,
                    });
                }
            }
        }
    }
    Ok(())
}

/// Reads every datagram queued on the socket (GRO batches split at their stride) into `client`; returns whether
/// there was any.
fn receive_all(
    udp: &UdpSocketState,
    socket: &UdpSocket,
    rx: &mut [Vec<u8>],
    client: &mut Client<'_>,
    now: &dyn Fn() -> core::Instant,
) -> Result<bool, SendError> {
    let mut any = false;
    loop {
        let mut meta = [RecvMeta::default(); RX_BUFFERS];
        let received = {
            let mut buffers = rx.iter_mut();
            let mut slices: [IoSliceMut<'_>; RX_BUFFERS] =
                std::array::from_fn(|_| IoSliceMut::new(buffers.next().map_or(&mut [][..], |b| &mut b[..])));
            udp.recv(socket.into(), &mut slices, &mut meta)
        };
        match received {
            Ok(n) => {
                // One read's datagrams arrived together: one clock reading serves them all.
                let t = now();
                for (m, buf) in meta.iter().zip(rx.iter()).take(n) {
                    let data = &buf[..m.len.min(buf.len())];
                    for datagram in data.chunks(m.stride.max(1)) {
                        client.handle_datagram(t, m.addr, datagram);
                    }
                }
                any = true;
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(any),
            Err(e) if e.kind() == io::ErrorKind::Interrupted || transient(&e) => {}
            Err(e) => {
                return Err(SendError::Io {
                    context: "receive".into(),
                    source: e,
                });
            }
        }
    }
}

/// quinn-udp sets "don't fragment, ignore path MTU" (`IP_PMTUDISC_PROBE`) for QUIC's own MTU probing; a dump keeps
/// the kernel's default, path MTU discovery with local fragmentation, so a datagram bigger than a tunnel's MTU
/// still arrives. Best effort: the default only matters on such paths.
fn keep_default_pmtu_discovery(socket: &UdpSocket, ipv6: bool) {
    let mut options = vec![(libc::IPPROTO_IP, libc::IP_MTU_DISCOVER, libc::IP_PMTUDISC_WANT)];
    if ipv6 {
        options.push((
            libc::IPPROTO_IPV6,
            libc::IPV6_MTU_DISCOVER,
            libc::IPV6_PMTUDISC_WANT,
        ));
        options.push((libc::IPPROTO_IPV6, libc::IPV6_DONTFRAG, 0));
    }
    for (level, name, value) in options {
        if let Err(e) = set_int_option(socket, level, name, value) {
            tracing::debug!(level, name, error = %e, "cannot restore path MTU discovery");
        }
    }
}

/// `setsockopt(2)` of an `int` option, for those neither std nor socket2 sets.
#[allow(unsafe_code)]
fn set_int_option(
    socket: &UdpSocket,
    level: libc::c_int,
    name: libc::c_int,
    value: libc::c_int,
) -> io::Result<()> {
    // SAFETY: the fd is open for the call (`socket` is borrowed), and the option value points to a live c_int
    // whose size is passed with it.
    let r = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            level,
            name,
            (&raw const value).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Recoverable send/receive errors on a UDP socket: ICMP port unreachable from an earlier datagram (the receiver
/// is not up yet, or restarted) and transient buffer shortage. The protocol's retransmission handles them.
fn transient(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused | io::ErrorKind::ConnectionReset
    ) || e.raw_os_error() == Some(libc::ENOBUFS)
}

/// The first 512 bytes of `block`, if they are a FreeBSD kernel dump header with good parity.
pub fn leading_kdh(block: &[u8]) -> Option<[u8; 512]> {
    let hdr: [u8; 512] = block.get(..512)?.try_into().ok()?;
    let repr = sealdump_wire::kdh::Repr::parse(&hdr).ok()?;
    repr.parity_ok.then_some(hdr)
}

/// Runs one dump: reads `input` to EOF and sends it, keeping the input in memory for retransmissions as long as
/// needed ([`Reread::Memory`]). `on_progress` sees every progress report.
pub fn send(
    config: &SendConfig,
    input: Box<dyn Read + Send>,
    kdh: Option<[u8; 512]>,
    on_progress: &mut dyn FnMut(&Stats),
) -> Result<Outcome, SendError> {
    send_with(config, input, Reread::Memory, kdh, on_progress)
}

/// [`send`], re-reading the dump for retransmissions as `reread` says.
pub fn send_with(
    config: &SendConfig,
    input: Box<dyn Read + Send>,
    reread: Reread,
    kdh: Option<[u8; 512]>,
    on_progress: &mut dyn FnMut(&Stats),
) -> Result<Outcome, SendError> {
    let socket = bind_socket(config.bind)?;
    send_on(
        &socket,
        config,
        spawn_reader(input),
        Source::new(reread),
        kdh,
        on_progress,
    )
}

/// Builds the sealed-mode recipients: HPKE for X25519 keys (done by client-core), one pre-wrapped RSA-OAEP body per
/// RSA key, all around the same dump key.
fn rsa_pool(recipients: &[PublicKey]) -> Result<Option<sealdump_crypto::rsa_wrap::PrewrappedKey>, SendError> {
    if !recipients.iter().any(|k| matches!(k, PublicKey::Rsa(_))) {
        return Ok(None);
    }
    let mut pool =
        sealdump_crypto::rsa_wrap::prewrap_pool(recipients, 1).map_err(|e| SendError::Wrap(e.to_string()))?;
    pool.pop()
        .map(Some)
        .ok_or_else(|| SendError::Wrap("empty pre-wrapped pool".into()))
}

fn send_on(
    socket: &UdpSocket,
    config: &SendConfig,
    input: mpsc::Receiver<Block>,
    mut source: Source,
    kdh: Option<[u8; 512]>,
    on_progress: &mut dyn FnMut(&Stats),
) -> Result<Outcome, SendError> {
    // Sealed-mode material must outlive the client, which borrows it.
    let prewrapped = match &config.security {
        Security::Sealed { recipients, .. } => rsa_pool(recipients)?,
        Security::Plain => None,
    };
    let mut seal_recipients: Vec<seal::Recipient<'_>> = Vec::new();
    if let Security::Sealed { recipients, .. } = &config.security {
        for key in recipients {
            match key {
                PublicKey::X25519(public) => {
                    seal_recipients.push(seal::Recipient::X25519 { public: *public })
                }
                PublicKey::Rsa(_) => {
                    let key_id = key.key_id();
                    let (kind, id, body) = prewrapped
                        .as_ref()
                        .and_then(|p| p.stanzas.iter().find(|(_, id, _)| *id == key_id))
                        .ok_or_else(|| {
                            SendError::Wrap(format!("no pre-wrapped stanza for {}", hex::encode(key_id)))
                        })?;
                    seal_recipients.push(seal::Recipient::Prewrapped {
                        kind: *kind,
                        key_id: *id,
                        body,
                    });
                }
            }
        }
    }
    let mode = match &config.security {
        Security::Plain => Mode::Plain,
        Security::Sealed {
            aead,
            chunk_shift,
            metadata,
            ..
        } => {
            let params = seal::Params {
                aead: *aead,
                chunk_shift: *chunk_shift,
                compression: 0,
                time: unix_time(),
            };
            let metadata = seal::Metadata {
                hostname: &metadata.hostname,
                kernel_version: &metadata.kernel_version,
                panic_string: &metadata.panic_string,
                architecture: &metadata.architecture,
                expected_length: metadata.expected_length,
                host_uuid: metadata.host_uuid,
            };
            let dump_key = prewrapped.as_ref().map(|p| DumpKey::from_bytes(*p.dk.as_bytes()));
            Mode::Sealed {
                params,
                recipients: &seal_recipients,
                dump_key,
                metadata,
            }
        }
    };

    let chunk_size = config.security.chunk_size();
    // Per-packet state only (32 bytes a packet): large rings cost little memory. The ring holds four windows: a
    // lost datagram keeps its slot for two or three round trips (detection, resend, ack) while the flight moves
    // on, and a ring of one window stalled on it (1 % loss at +10 ms: 80 MB/s with one window, 105-135 with four).
    let ring = config.window * RING_WINDOWS;
    let mut slot_state = vec![SlotState::EMPTY; ring];
    let chunk_buffers = config.chunk_buffers.clamp(2, core::MAX_CHUNK_BUFFERS);
    let mut chunks = vec![0u8; core::chunk_buffers_len(chunk_buffers, chunk_size)];
    let mut header = vec![0u8; core::HEADER_BUFFER_LEN];
    let mut tags = vec![[0u8; core::TAG_LEN]; core::tag_slots(ring, config.payload_size, chunk_size)];
    let buffers = Buffers {
        slot_state: &mut slot_state,
        chunks: &mut chunks,
        header: &mut header,
        tags: &mut tags,
    };
    let client_config = Config {
        server: config.server,
        herald_path: &config.herald_path,
        payload_size: config.payload_size,
        window: config.window,
        give_up_after: config.give_up_after,
        mode,
    };

    let clock = std::time::Instant::now();
    let now = || core::Instant::from_micros(clock.elapsed().as_micros() as u64);
    let mut rng = rand::rng();
    let mut client =
        Client::new(client_config, buffers, &mut rng, now()).map_err(|e| SendError::Client(e.to_string()))?;

    let udp = UdpSocketState::new(socket.into()).map_err(io_err("cannot set up the UDP socket"))?;
    keep_default_pmtu_discovery(socket, config.bind.is_ipv6());
    let mut batch = TxBatch::new(core::datagram_len(config.payload_size));
    let mut rx: Vec<Vec<u8>> = (0..RX_BUFFERS).map(|_| vec![0u8; RX_BUFFER]).collect();
    // The path refused a GSO batch: one datagram per call from then on.
    let mut gso_refused = false;
    // Bytes of the newest input block (the last one `source` keeps) already written to the client; `None` when
    // it is all written and the next block is due.
    let mut pending: Option<usize> = None;
    let mut input_open = true;
    let mut read_error: Option<io::Error> = None;

    loop {
        let mut busy = receive_all(&udp, socket, &mut rx, &mut client, &now)?;

        let t = now();
        if client.poll_timeout().is_some_and(|deadline| deadline <= t) {
            client.handle_timeout(t);
            busy = true;
        }

        while input_open {
            if pending.is_none() {
                match input.try_recv() {
                    Ok(Block::Data(block)) => {
                        source.push(block);
                        pending = Some(0);
                    }
                    Ok(Block::Error(e)) => {
                        read_error = Some(e);
                        input_open = false;
                        client.abort();
                        busy = true;
                    }
                    Err(mpsc::TryRecvError::Empty) => break,
                    Err(mpsc::TryRecvError::Disconnected) => {
                        input_open = false;
                        client.finish(kdh.as_ref());
                        busy = true;
                    }
                }
            }
            let (Some(pos), Some(block)) = (pending.as_mut(), source.blocks.back()) else {
                continue;
            };
            let taken = client.write(&block[*pos..]);
            *pos += taken;
            if *pos == block.len() {
                pending = None;
            }
            if taken == 0 {
                break;
            }
            busy = true;
        }

        source.forget_before(client.retained_from());
        let t = now();
        // Whether the socket would not take the last batch (then wait until it is writable).
        let mut stalled = false;
        loop {
            let max_segments = batch.max_segments(if gso_refused { 1 } else { udp.max_gso_segments() });
            let mut full = batch.full(max_segments);
            while !full {
                let Some(transmit) = client.poll_transmit(t, batch.room(), &source) else {
                    break;
                };
                busy = true;
                full = batch.commit(transmit.len, transmit.destination, max_segments);
            }
            if batch.is_empty() {
                break;
            }
            if !send_batch(&udp, socket, &batch, &mut gso_refused)? {
                stalled = true;
                break;
            }
            batch.sent();
            if !full && batch.is_empty() {
                break;
            }
        }

        while let Some(event) = client.poll_event() {
            match event {
                Event::Connected { .. } => {}
                Event::Progress(stats) => on_progress(&stats),
                Event::Done(stats) => {
                    on_progress(&stats);
                    return Ok(match read_error {
                        Some(e) => Outcome::InputFailed(e),
                        None => Outcome::Done(stats),
                    });
                }
                Event::Failed(reason) => {
                    return Ok(match read_error {
                        Some(e) => Outcome::InputFailed(e),
                        None => Outcome::Failed(source.failure(reason)),
                    });
                }
            }
        }

        if !busy {
            let t = now().as_micros();
            let until_timer = client.poll_timeout().map_or(Duration::from_millis(50), |d| {
                Duration::from_micros(d.as_micros().saturating_sub(t))
            });
            // While waiting for input that has not arrived yet, look again soon.
            let cap = if input_open && pending.is_none() {
                Duration::from_millis(1)
            } else {
                Duration::from_millis(50)
            };
            wait(socket, stalled, until_timer.min(cap))?;
        }
    }
}

fn unix_time() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    fn write(batch: &mut TxBatch, byte: u8, len: usize) {
        batch.room()[..len].fill(byte);
    }

    #[test]
    fn equal_datagrams_batch_up_to_the_limit_and_a_shorter_one_ends_the_batch() {
        let to: SocketAddr = "127.0.0.1:9".parse().unwrap();
        let mut batch = TxBatch::new(1472);
        let max = batch.max_segments(64);
        assert_eq!(max, 44, "64 KiB of 1472-byte datagrams");
        assert_eq!(batch.max_segments(1), 1, "no GSO: one datagram a call");
        for i in 0..3 {
            write(&mut batch, i, 1472);
            assert!(!batch.commit(1472, to, max));
        }
        write(&mut batch, 9, 100);
        assert!(
            batch.commit(100, to, max),
            "a shorter datagram is the last of its batch"
        );
        let t = batch.transmit().unwrap();
        assert_eq!(
            (t.contents.len(), t.segment_size, t.destination),
            (3 * 1472 + 100, Some(1472), to)
        );
        assert_eq!(t.contents[1472], 1);
        assert_eq!(t.contents[3 * 1472], 9);
        batch.sent();
        assert!(batch.is_empty());
        for i in 0..44 {
            write(&mut batch, 0, 1472);
            assert_eq!(batch.commit(1472, to, max), i == 43);
        }
    }

    #[test]
    fn a_datagram_for_another_destination_or_longer_starts_the_next_batch() {
        let herald: SocketAddr = "127.0.0.1:20023".parse().unwrap();
        let session: SocketAddr = "127.0.0.1:40000".parse().unwrap();
        let mut batch = TxBatch::new(1472);
        write(&mut batch, 1, 60);
        assert!(!batch.commit(60, herald, 44));
        write(&mut batch, 2, 1472);
        assert!(
            batch.commit(1472, session, 44),
            "another destination: send what is batched first"
        );
        let t = batch.transmit().unwrap();
        assert_eq!(
            (t.contents.len(), t.segment_size, t.destination),
            (60, None, herald)
        );
        batch.sent();
        let t = batch.transmit().unwrap();
        assert_eq!(
            (t.contents, t.destination),
            (&[2u8; 1472][..], session),
            "the carried datagram leads"
        );
        write(&mut batch, 3, 1000);
        assert!(batch.commit(1000, session, 44));
        let t = batch.transmit().unwrap();
        assert_eq!((t.contents.len(), t.segment_size), (2472, Some(1472)));
        batch.sent();
        assert!(batch.is_empty() && batch.transmit().is_none());
        // Longer than the segment size: carried to a batch of its own.
        let mut batch = TxBatch::new(1472);
        write(&mut batch, 5, 500);
        assert!(!batch.commit(500, session, 44));
        write(&mut batch, 6, 1472);
        assert!(batch.commit(1472, session, 44));
        assert_eq!(batch.transmit().unwrap().contents, &[5u8; 500][..]);
        batch.sent();
        assert_eq!(batch.transmit().unwrap().contents, &[6u8; 1472][..]);
    }

    #[test]
    fn a_refused_gso_batch_goes_out_one_datagram_per_call() {
        let receiver = UdpSocket::bind("127.0.0.1:0").unwrap();
        receiver.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let to = receiver.local_addr().unwrap();
        let socket = bind_socket("127.0.0.1:0".parse().unwrap()).unwrap();
        let udp = UdpSocketState::new((&socket).into()).unwrap();
        // Linux refuses UDP GSO (EINVAL) on a socket without transmit checksums, as it would a segment larger
        // than the path MTU; plain sends still work.
        set_int_option(&socket, libc::SOL_SOCKET, libc::SO_NO_CHECK, 1).unwrap();
        let mut batch = TxBatch::new(1472);
        for (i, len) in [(1u8, 1472), (2, 1472), (3, 700)] {
            write(&mut batch, i, len);
            batch.commit(len, to, 44);
        }
        let mut gso_refused = false;
        assert!(send_batch(&udp, &socket, &batch, &mut gso_refused).unwrap());
        assert!(gso_refused);
        let mut buf = [0u8; 2048];
        for (i, len) in [(1u8, 1472), (2, 1472), (3, 700)] {
            let (n, _) = receiver.recv_from(&mut buf).unwrap();
            assert_eq!(n, len, "datagram {i}");
            assert!(buf[..n].iter().all(|&b| b == i));
        }
        if udp.max_gso_segments() > 1 {
            panic!("GSO should be off after the refusal");
        }
    }

    #[test]
    fn kept_blocks_are_read_across_their_boundaries_until_forgotten() {
        let mut source = Source::new(Reread::Memory);
        source.push((0..10).collect());
        source.push((10..20).collect());
        source.push((20..25).collect());
        let mut buf = [0u8; 12];
        source.read_at(4, &mut buf).unwrap();
        assert_eq!(buf.to_vec(), (4..16).collect::<Vec<u8>>());
        let mut tail = [0u8; 5];
        assert_eq!(
            source.read_at(21, &mut tail),
            Err(SourceError::Unavailable),
            "past the end"
        );
        source.forget_before(15);
        assert_eq!(source.kept_from, 10, "a block partly needed is kept");
        assert_eq!(source.read_at(4, &mut buf), Err(SourceError::Unavailable));
        source.read_at(10, &mut buf).unwrap();
        assert_eq!(buf.to_vec(), (10..22).collect::<Vec<u8>>());
        source.forget_before(1000);
        assert_eq!(source.blocks.len(), 1, "the block being written stays");
        assert!(
            source
                .failure(FailReason::Source(SourceError::Unavailable))
                .contains("cannot be read twice")
        );
    }

    #[test]
    fn a_file_is_read_again_at_offsets_and_its_errors_are_reported() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("dump");
        std::fs::write(&path, (0..=255u8).collect::<Vec<_>>()).unwrap();
        let mut source = Source::new(Reread::File(File::open(&path).unwrap()));
        source.push(vec![0; 4]);
        source.push(vec![0; 4]);
        source.forget_before(0);
        assert_eq!(source.blocks.len(), 1, "a file source keeps no history");
        let mut buf = [0u8; 3];
        source.read_at(200, &mut buf).unwrap();
        assert_eq!(buf, [200, 201, 202]);
        assert_eq!(source.read_at(255, &mut buf), Err(SourceError::Io));
        assert!(source.failure(FailReason::Source(SourceError::Io)).contains('('));
    }
}
