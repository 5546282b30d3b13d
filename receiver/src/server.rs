//! The tokio shell: herald socket, one task + socket per client session, one blocking writer per session.
//!
//! Packet path (per session): `recvmmsg` with UDP GRO (quinn-udp) into reused 64 KiB buffers, batches split at
//! their segment size → [`Session::handle_datagram`] →
//! contiguous VMCORE payloads are copied into a pooled 256 KiB batch buffer (netdumpd buffers 128 KiB) and
//! acked at once (one GSO send per drained batch); full or non-contiguous batches go to the session's writer thread over a bounded channel and
//! come back empty through a return channel, so nothing is allocated per packet. The writer does the
//! positional writes, the key file, the KDH renames, fsync, the info file, the `.last` links, the FINISHED ack
//! (after fsync, like netdumpd) and the handler script.

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use quinn_udp::{RecvMeta, Transmit, UdpSocketState};
use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use tokio::io::Interest;
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::session::{self, Closed, HeraldDecision, Output, Session, SessionConfig};
use crate::store::{self, DumpFiles, Store, StoreConfig, Summary};

/// Bytes per write batch.
const BATCH_CAP: usize = 256 * 1024;
/// Batch buffers per session (bounds memory: 1 MiB per session).
const POOL_BUFFERS: usize = 4;
/// A batch that waited this long with no new packet is written anyway (bounds loss on SIGKILL).
const IDLE_FLUSH: Duration = Duration::from_millis(20);
/// Longest wait for reverse DNS before naming the files after the IP address.
const DNS_TIMEOUT: Duration = Duration::from_secs(2);
/// At the session limit, a session that has received nothing but its herald for this long gives its slot to a
/// new herald: a client sends its key or data within milliseconds of the herald ack, so such a session is a lost
/// client or a flood, and must not lock real clients out for the whole idle timeout. Counted from the herald, so
/// it covers the reverse-DNS wait before the ack ([`DNS_TIMEOUT`]) plus a second.
const SILENT_SESSION_GRACE: Duration = Duration::from_secs(3);
/// Datagrams handled per wake-up of a session task (before the last read's rest), and acks per flush.
const DRAIN_BATCH: usize = 64;
/// Buffers per `recvmmsg(2)` on a session socket.
const RECV_BUFS: usize = 4;
/// Each receive buffer holds one datagram or one GRO batch, which the kernel keeps within 64 KiB.
const RECV_BUF_LEN: usize = 65_536;
/// Receive buffer of session sockets.
const SESSION_RCVBUF: usize = 4 * 1024 * 1024;

/// Everything the daemon needs.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// Herald address; an unspecified IPv6 address listens on IPv4 too.
    pub bind: SocketAddr,
    /// Storage.
    pub store: StoreConfig,
    /// Per-session limits and timers.
    pub session: SessionConfig,
    /// Concurrent sessions; heralds beyond it are not acked.
    pub max_sessions: usize,
    /// Heralds accepted per source IP per second.
    pub heralds_per_second: u32,
    /// Heralds accepted per second from all sources together.
    pub heralds_per_second_total: u32,
    /// A herald is not acked while the dump directory has less free space than this.
    pub min_free: u64,
    /// Handler script (`-i`).
    pub handler: Option<PathBuf>,
    /// Reverse DNS for host names (else the IP is used).
    pub resolve_hostnames: bool,
    /// Prometheus text endpoint.
    pub metrics: Option<SocketAddr>,
}

impl ServerConfig {
    /// Defaults of netdumpd for a dump directory.
    pub fn new(dump_dir: PathBuf) -> Self {
        Self {
            bind: SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), 20023),
            store: StoreConfig {
                dump_dir,
                default_path: ".".into(),
                keep: None,
            },
            session: SessionConfig::default(),
            max_sessions: 64,
            heralds_per_second: 10,
            heralds_per_second_total: 100,
            min_free: 0,
            handler: None,
            resolve_hostnames: true,
            metrics: None,
        }
    }
}

/// Counters exported on the metrics endpoint.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Sessions started.
    pub sessions_started: AtomicU64,
    /// Sessions open now.
    pub sessions_active: AtomicU64,
    /// Datagrams accepted.
    pub packets: AtomicU64,
    /// Distinct bytes stored (core + key).
    pub bytes: AtomicU64,
    /// Duplicate datagrams re-acked.
    pub duplicates: AtomicU64,
    /// Datagrams or heralds dropped.
    pub drops: AtomicU64,
    /// Dumps complete.
    pub dumps_complete: AtomicU64,
    /// Dumps incomplete (timeout, holes, error).
    pub dumps_incomplete: AtomicU64,
}

impl Metrics {
    fn render(&self) -> String {
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let mut s = String::new();
        for (name, kind, help, v) in [
            (
                "sealdump_sessions_started_total",
                "counter",
                "Sessions started",
                g(&self.sessions_started),
            ),
            (
                "sealdump_sessions_active",
                "gauge",
                "Sessions open",
                g(&self.sessions_active),
            ),
            (
                "sealdump_packets_total",
                "counter",
                "Datagrams accepted",
                g(&self.packets),
            ),
            (
                "sealdump_bytes_total",
                "counter",
                "Distinct bytes stored",
                g(&self.bytes),
            ),
            (
                "sealdump_duplicates_total",
                "counter",
                "Retransmitted duplicates re-acked",
                g(&self.duplicates),
            ),
            (
                "sealdump_drops_total",
                "counter",
                "Datagrams and heralds dropped",
                g(&self.drops),
            ),
            (
                "sealdump_dumps_complete_total",
                "counter",
                "Dumps complete",
                g(&self.dumps_complete),
            ),
            (
                "sealdump_dumps_incomplete_total",
                "counter",
                "Dumps incomplete",
                g(&self.dumps_incomplete),
            ),
        ] {
            s.push_str(&format!(
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {v}\n"
            ));
        }
        s
    }
}

/// A bound, not yet running server.
pub struct Server {
    config: ServerConfig,
    herald: Arc<UdpSocket>,
    herald_state: UdpSocketState,
    metrics_listener: Option<tokio::net::TcpListener>,
    metrics: Arc<Metrics>,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("config", &self.config)
            .field("herald", &self.herald)
            .finish_non_exhaustive()
    }
}

fn udp_socket(bind: SocketAddr, rcvbuf: Option<usize>) -> io::Result<std::net::UdpSocket> {
    let domain = if bind.is_ipv4() {
        Domain::IPV4
    } else {
        Domain::IPV6
    };
    let sock = Socket::new(domain, Type::DGRAM, Some(Protocol::UDP))?;
    if bind.is_ipv6() && bind.ip().is_unspecified() {
        // Dual stack where the OS allows; IPv6-only otherwise.
        let _ = sock.set_only_v6(false);
    }
    if let Some(size) = rcvbuf {
        let _ = sock.set_recv_buffer_size(size);
    }
    sock.set_nonblocking(true)?;
    sock.bind(&SockAddr::from(bind))?;
    Ok(sock.into())
}

fn canonical(addr: SocketAddr) -> SocketAddr {
    SocketAddr::new(addr.ip().to_canonical(), addr.port())
}

impl Server {
    /// Binds the herald socket (and the metrics listener), so the caller can learn the addresses.
    pub async fn bind(config: ServerConfig) -> io::Result<Self> {
        let herald = match udp_socket(config.bind, Some(1 << 20)) {
            Ok(s) => s,
            // No IPv6 on this host: fall back to IPv4 any.
            Err(_) if config.bind.is_ipv6() && config.bind.ip().is_unspecified() => udp_socket(
                SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), config.bind.port()),
                Some(1 << 20),
            )?,
            Err(e) => return Err(e),
        };
        // IP_PKTINFO / IPV6_RECVPKTINFO: each herald's destination address, so its session socket is bound to it
        // and acks come from the address the client sent to (netdumpd does this with IP_RECVDSTADDR). A FreeBSD
        // client drops acks from any other address, so without this a receiver bound to all addresses fails
        // every client that reaches it by an address other than the one the kernel picks for the reply.
        let herald_state = UdpSocketState::new((&herald).into())?;
        let herald = Arc::new(UdpSocket::from_std(herald)?);
        let metrics_listener = match config.metrics {
            Some(addr) => Some(tokio::net::TcpListener::bind(addr).await?),
            None => None,
        };
        Ok(Self {
            config,
            herald,
            herald_state,
            metrics_listener,
            metrics: Arc::new(Metrics::default()),
        })
    }

    /// The herald socket's address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.herald.local_addr()
    }

    /// The metrics endpoint's address.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_listener.as_ref().and_then(|l| l.local_addr().ok())
    }

    /// Shared counters.
    pub fn metrics(&self) -> Arc<Metrics> {
        self.metrics.clone()
    }

    /// Serves until `shutdown` completes; then every open session is flushed and closed as timed out.
    pub async fn run(self, shutdown: impl Future) -> io::Result<()> {
        let Server {
            config,
            herald,
            herald_state,
            metrics_listener,
            metrics,
        } = self;
        if let Some(listener) = metrics_listener {
            tokio::spawn(serve_metrics(listener, metrics.clone()));
        }
        let ctx = Arc::new(Ctx {
            store: Arc::new(Store::new(config.store.clone())),
            config,
            metrics,
            epoch: std::time::Instant::now(),
        });
        let (events_tx, mut events_rx) = mpsc::unbounded_channel::<Event>();
        let mut d = Dispatcher {
            ctx: ctx.clone(),
            sessions: HashMap::new(),
            next_id: 0,
            tasks: Vec::new(),
            events: events_tx,
            shutdown: tokio::sync::broadcast::channel::<()>(1).0,
            herald_local: herald.local_addr().ok(),
        };
        let mut rate: HashMap<IpAddr, (std::time::Instant, u32)> = HashMap::new();
        let mut global = (std::time::Instant::now(), 0u32);
        let mut buf = vec![0u8; 65_536];
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                _ = &mut shutdown => break,
                Some(event) = events_rx.recv() => d.handle_event(event),
                r = recv_herald(&herald, &herald_state, &mut buf) => {
                    let (n, meta) = match r {
                        Ok(x) => x,
                        Err(e) => {
                            tracing::warn!(error = %e, "herald socket receive error");
                            continue;
                        }
                    };
                    // With UDP GRO, equal-sized datagrams from one source can arrive as one buffer of `stride`-sized
                    // segments.
                    for segment in buf[..n].chunks(meta.stride.max(1)) {
                    let from = meta.addr;
                    let local_ip = meta.dst_ip.map(|ip| ip.to_canonical());
                    let from = canonical(from);
                    let parsed = match session::parse_herald(segment) {
                        Ok(h) => h,
                        Err(reason) => {
                            ctx.metrics.drops.fetch_add(1, Ordering::Relaxed);
                            tracing::debug!(%from, %reason, "ignoring datagram on the herald port");
                            continue;
                        }
                    };
                    // Per-source, then global rate limits (fixed one-second windows). A source over its own limit
                    // does not spend the global budget, so one noisy host cannot starve the others.
                    let now = std::time::Instant::now();
                    if rate.len() > 4096 {
                        rate.retain(|_, (t, _)| now.duration_since(*t) < Duration::from_secs(1));
                    }
                    let entry = rate.entry(from.ip()).or_insert((now, 0));
                    if now.duration_since(entry.0) >= Duration::from_secs(1) {
                        *entry = (now, 0);
                    }
                    entry.1 = entry.1.saturating_add(1);
                    if entry.1 > ctx.config.heralds_per_second {
                        ctx.metrics.drops.fetch_add(1, Ordering::Relaxed);
                        if entry.1 == ctx.config.heralds_per_second.saturating_add(1) {
                            tracing::warn!(%from, "herald rate limit exceeded; dropping heralds from this source");
                        }
                        continue;
                    }
                                        if now.duration_since(global.0) >= Duration::from_secs(1) {
                        global = (now, 0);
                    }
                    global.1 = global.1.saturating_add(1);
                    if global.1 > ctx.config.heralds_per_second_total {
                        ctx.metrics.drops.fetch_add(1, Ordering::Relaxed);
                        if global.1 == ctx.config.heralds_per_second_total.saturating_add(1) {
                            tracing::warn!("global herald rate limit exceeded; dropping heralds");
                        }
                        continue;
                    }
                    let info = HeraldInfo { seqno: parsed.seqno, aux2: parsed.aux2, path: parsed.path.map(<[u8]>::to_vec), local_ip };
                    d.herald(from, info);
                    }
                }
            }
        }
        tracing::info!(
            sessions = d.sessions.len(),
            "shutting down; closing open sessions as timed out"
        );
        let _ = d.shutdown.send(());
        d.sessions.clear();
        for t in std::mem::take(&mut d.tasks) {
            let _ = t.await;
        }
        Ok(())
    }
}

/// Messages from session tasks to the herald loop.
#[derive(Debug)]
enum Event {
    /// The session task ended.
    Ended { ip: IpAddr, id: u64 },
    /// A herald forwarded to session `id` must start a new session (data had arrived, or it was ending).
    Restart {
        id: u64,
        from: SocketAddr,
        herald: HeraldInfo,
    },
}

/// The herald loop's state: which client IP has which session.
#[derive(Debug)]
struct Dispatcher {
    ctx: Arc<Ctx>,
    sessions: HashMap<IpAddr, SessionHandle>,
    next_id: u64,
    tasks: Vec<JoinHandle<()>>,
    events: mpsc::UnboundedSender<Event>,
    shutdown: tokio::sync::broadcast::Sender<()>,
    herald_local: Option<SocketAddr>,
}

impl Dispatcher {
    fn handle_event(&mut self, event: Event) {
        match event {
            Event::Ended { ip, id } => {
                if self.sessions.get(&ip).is_some_and(|s| s.id == id) {
                    self.sessions.remove(&ip);
                }
                self.tasks.retain(|t| !t.is_finished());
            }
            Event::Restart { id, from, herald } => match self.sessions.get(&from.ip()) {
                // Already replaced by a newer session: the client will repeat its herald.
                Some(s) if s.id != id => {}
                _ => {
                    tracing::info!(%from, "new herald from a client with an earlier session: that session ends, a new one starts");
                    self.sessions.remove(&from.ip());
                    self.start(from, herald);
                }
            },
        }
    }

    /// A valid herald: forward it to the client's session (netdumpd's duplicate rule), or start one.
    /// Never waits on a session, so a slow session cannot stall other clients' heralds.
    fn herald(&mut self, from: SocketAddr, herald: HeraldInfo) {
        if let Some(existing) = self.sessions.get(&from.ip()) {
            let (reply_tx, reply_rx) = oneshot::channel();
            let id = existing.id;
            let _ = existing.ctrl.send(Ctrl::Herald {
                from,
                seqno: herald.seqno,
                reply: reply_tx,
            });
            let events = self.events.clone();
            tokio::spawn(async move {
                if matches!(reply_rx.await, Ok(HeraldDecision::Restart) | Err(_)) {
                    let _ = events.send(Event::Restart { id, from, herald });
                }
            });
            return;
        }
        self.start(from, herald);
    }

    fn start(&mut self, from: SocketAddr, herald: HeraldInfo) {
        // Lingering (finished) sessions do not count.
        if self.ctx.metrics.sessions_active.load(Ordering::Relaxed) >= self.ctx.config.max_sessions as u64
            && !self.evict_silent_session()
        {
            let ctx = &self.ctx;
            ctx.metrics.drops.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(%from, max = ctx.config.max_sessions, "session limit reached; herald not acked");
            return;
        }
        let ctx = &self.ctx;
        if ctx.config.min_free > 0 {
            match store::free_bytes(&ctx.config.store.dump_dir) {
                Ok(free) if free < ctx.config.min_free => {
                    ctx.metrics.drops.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(%from, free, floor = ctx.config.min_free, "free space below the floor; herald not acked");
                    return;
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "cannot read free space"),
            }
        }
        self.next_id += 1;
        ctx.metrics.sessions_active.fetch_add(1, Ordering::Relaxed);
        let slot = Arc::new(Slot {
            metrics: ctx.metrics.clone(),
            held: AtomicBool::new(true),
        });
        let heard_from = Arc::new(AtomicBool::new(false));
        let (ctrl_tx, ctrl_rx) = mpsc::unbounded_channel();
        self.sessions.insert(
            from.ip(),
            SessionHandle {
                id: self.next_id,
                ctrl: ctrl_tx,
                started: std::time::Instant::now(),
                heard_from: heard_from.clone(),
                slot: slot.clone(),
            },
        );
        let task = tokio::spawn(run_session(
            ctx.clone(),
            self.next_id,
            from,
            self.herald_local,
            herald,
            SessionLink {
                ctrl: ctrl_rx,
                active: ActiveGuard(slot),
                heard_from,
            },
            self.shutdown.subscribe(),
            self.events.clone(),
        ));
        self.tasks.push(task);
    }

    /// Frees the slot of the oldest session that has heard nothing since its herald for
    /// [`SILENT_SESSION_GRACE`], and tells it to close (as timed out; its files are kept). False if there is none.
    fn evict_silent_session(&mut self) -> bool {
        let victim = self
            .sessions
            .iter()
            .filter(|(_, s)| {
                !s.heard_from.load(Ordering::Relaxed)
                    && s.slot.is_held()
                    && s.started.elapsed() >= SILENT_SESSION_GRACE
            })
            .min_by_key(|(_, s)| s.started)
            .map(|(ip, _)| *ip);
        let Some(ip) = victim else { return false };
        let Some(handle) = self.sessions.remove(&ip) else {
            return false;
        };
        handle.slot.release();
        let _ = handle.ctrl.send(Ctrl::Evict);
        tracing::warn!(client = %ip, silent_for = ?handle.started.elapsed(),
            "session limit reached; closing a session that sent nothing after its herald");
        true
    }
}

/// Binds and serves until `shutdown` completes (mini-redis style).
pub async fn run(config: ServerConfig, shutdown: impl Future) -> io::Result<()> {
    Server::bind(config).await?.run(shutdown).await
}

#[derive(Debug)]
struct Ctx {
    config: ServerConfig,
    store: Arc<Store>,
    metrics: Arc<Metrics>,
    epoch: std::time::Instant,
}

impl Ctx {
    fn now(&self) -> session::Instant {
        session::Instant::from_micros(u64::try_from(self.epoch.elapsed().as_micros()).unwrap_or(u64::MAX))
    }

    fn deadline(&self, at: session::Instant) -> tokio::time::Instant {
        tokio::time::Instant::from_std(self.epoch + Duration::from_micros(at.as_micros()))
    }
}

#[derive(Debug)]
struct SessionHandle {
    id: u64,
    ctrl: mpsc::UnboundedSender<Ctrl>,
    started: std::time::Instant,
    /// Set by the session once a datagram after the herald was accepted.
    heard_from: Arc<AtomicBool>,
    /// The session's slot under `max_sessions`, shared with its task.
    slot: Arc<Slot>,
}

/// What a session task shares with the herald loop.
#[derive(Debug)]
struct SessionLink {
    ctrl: mpsc::UnboundedReceiver<Ctrl>,
    active: ActiveGuard,
    heard_from: Arc<AtomicBool>,
}

#[derive(Debug)]
enum Ctrl {
    /// Close now as timed out: the slot was given to a new herald.
    Evict,
    Herald {
        from: SocketAddr,
        seqno: u32,
        reply: oneshot::Sender<HeraldDecision>,
    },
}

#[derive(Debug)]
struct HeraldInfo {
    seqno: u32,
    aux2: u32,
    path: Option<Vec<u8>>,
    /// The address the herald was sent to, when the OS told us (IP_PKTINFO).
    local_ip: Option<IpAddr>,
}

/// Reads what is queued on `sock` through quinn-udp (`recvmmsg`, GRO batches, destination addresses) without
/// waiting: WouldBlock if nothing is. Every read of a socket with UDP_GRO must come here, since a plain `recv`
/// would return a batch of datagrams glued together without their size. `try_io` keeps tokio's readiness right.
fn try_recv_udp(
    sock: &UdpSocket,
    state: &UdpSocketState,
    bufs: &mut [io::IoSliceMut<'_>],
    meta: &mut [RecvMeta],
) -> io::Result<usize> {
    sock.try_io(Interest::READABLE, || state.recv(sock.into(), bufs, meta))
}

/// [`try_recv_udp`], waiting until something is queued.
async fn recv_udp(
    sock: &UdpSocket,
    state: &UdpSocketState,
    bufs: &mut [io::IoSliceMut<'_>],
    meta: &mut [RecvMeta],
) -> io::Result<usize> {
    loop {
        sock.readable().await?;
        match try_recv_udp(sock, state, bufs, meta) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            r => return r,
        }
    }
}

/// Receives one herald-socket datagram (or one GRO batch) with its destination address.
async fn recv_herald(
    sock: &UdpSocket,
    state: &UdpSocketState,
    buf: &mut [u8],
) -> io::Result<(usize, RecvMeta)> {
    let mut meta = [RecvMeta::default()];
    recv_udp(sock, state, &mut [io::IoSliceMut::new(buf)], &mut meta).await?;
    Ok((meta[0].len.min(buf.len()), meta[0]))
}

/// Work for the writer thread.
#[derive(Debug)]
enum Cmd {
    Core {
        offset: u64,
        buf: Vec<u8>,
    },
    Key {
        seqno: u32,
        offset: u64,
        data: Vec<u8>,
    },
    Kdh {
        payload: Vec<u8>,
    },
    Close {
        summary: Box<Summary>,
        ack: Option<u32>,
        reason: &'static str,
    },
}

fn session_socket(
    local: Option<SocketAddr>,
    herald_dst: Option<IpAddr>,
    peer: SocketAddr,
) -> io::Result<SessionIo> {
    // Bind to the address the herald was sent to (or the herald socket's IP when it is specific), as netdumpd
    // does, so acks come from the address the client sent its herald to.
    let ip = match herald_dst.or(local.map(|l| l.ip())) {
        Some(ip) if !ip.is_unspecified() && ip.is_ipv4() == peer.is_ipv4() => ip,
        _ if peer.is_ipv4() => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        _ => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
    };
    let std_sock = udp_socket(SocketAddr::new(ip, 0), Some(SESSION_RCVBUF))?;
    std_sock.connect(peer)?;
    // Turns UDP_GRO on where the kernel has it: from here on every read of this socket goes through `state.recv`.
    let state = UdpSocketState::new((&std_sock).into())?;
    Ok(SessionIo {
        sock: Arc::new(UdpSocket::from_std(std_sock)?),
        state,
        peer,
    })
}

/// A session's socket, connected to its client, with the quinn-udp state that reads GRO batches and sends GSO.
#[derive(Debug)]
struct SessionIo {
    sock: Arc<UdpSocket>,
    state: UdpSocketState,
    peer: SocketAddr,
}

/// Reused receive buffers of a session socket: up to [`RECV_BUFS`] datagrams or GRO batches per `recvmmsg(2)`.
struct SessionRx {
    bufs: [Vec<u8>; RECV_BUFS],
    meta: [RecvMeta; RECV_BUFS],
    filled: usize,
}

impl std::fmt::Debug for SessionRx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionRx")
            .field("meta", &self.meta.get(..self.filled))
            .finish_non_exhaustive()
    }
}

impl SessionRx {
    fn new() -> Self {
        Self {
            bufs: std::array::from_fn(|_| vec![0; RECV_BUF_LEN]),
            meta: [RecvMeta::default(); RECV_BUFS],
            filled: 0,
        }
    }

    /// Waits for the socket and reads what is queued.
    async fn recv(&mut self, io: &SessionIo) -> io::Result<()> {
        self.filled = 0;
        let mut slices = self.bufs.each_mut().map(|b| io::IoSliceMut::new(b));
        let n = recv_udp(&io.sock, &io.state, &mut slices, &mut self.meta).await?;
        self.filled = n.min(RECV_BUFS);
        Ok(())
    }

    /// Reads what is queued without waiting (WouldBlock if nothing is).
    fn try_recv(&mut self, io: &SessionIo) -> io::Result<()> {
        self.filled = 0;
        let mut slices = self.bufs.each_mut().map(|b| io::IoSliceMut::new(b));
        let n = try_recv_udp(&io.sock, &io.state, &mut slices, &mut self.meta)?;
        self.filled = n.min(RECV_BUFS);
        Ok(())
    }

    /// The datagrams of the last read with their sources; a GRO batch is split at its stride (its last datagram
    /// may be shorter). An empty datagram is passed on too, to be rejected and counted.
    fn datagrams(&self) -> impl Iterator<Item = (SocketAddr, &[u8])> {
        self.bufs
            .iter()
            .zip(&self.meta)
            .take(self.filled)
            .flat_map(|(buf, meta)| {
                let data = buf.get(..meta.len).unwrap_or_default();
                let empty = data.is_empty().then_some(data);
                data.chunks(meta.stride.max(1))
                    .chain(empty)
                    .map(move |d| (meta.addr, d))
            })
    }
}

#[allow(clippy::too_many_arguments)]
async fn run_session(
    ctx: Arc<Ctx>,
    id: u64,
    peer: SocketAddr,
    herald_local: Option<SocketAddr>,
    herald: HeraldInfo,
    mut link: SessionLink,
    mut shutdown: tokio::sync::broadcast::Receiver<()>,
    events: mpsc::UnboundedSender<Event>,
) {
    let ip = peer.ip();
    if let Err(e) = session_main(&ctx, peer, herald_local, herald, &mut link, &mut shutdown).await {
        tracing::error!(%peer, error = %e, "session failed");
    }
    let _ = events.send(Event::Ended { ip, id });
}

async fn session_main(
    ctx: &Arc<Ctx>,
    peer: SocketAddr,
    herald_local: Option<SocketAddr>,
    herald: HeraldInfo,
    link: &mut SessionLink,
    shutdown: &mut tokio::sync::broadcast::Receiver<()>,
) -> io::Result<()> {
    let ip = peer.ip();
    let resolve = ctx.config.resolve_hostnames;
    let name = if resolve {
        // A dead resolver must not delay the herald ack past the client's ~1 s retransmit for long.
        tokio::time::timeout(
            DNS_TIMEOUT,
            tokio::task::spawn_blocking(move || store::reverse_dns(ip)),
        )
        .await
        .ok()
        .and_then(Result::ok)
        .flatten()
    } else {
        None
    };
    let host = store::sanitize_host(name.as_deref(), ip);
    let store = ctx.store.clone();
    let (h, path) = (host.clone(), herald.path.clone());
    let files = tokio::task::spawn_blocking(move || store.open_dump(&h, ip, path.as_deref()))
        .await
        .map_err(io::Error::other)??;
    let io = session_socket(herald_local, herald.local_ip, peer)?;
    let sock = io.sock.clone();
    tracing::info!(host = %host, %peer, file = %files.dir().join(files.core_name()).display(),
        port = sock.local_addr().map(|a| a.port()).unwrap_or(0), aux2 = herald.aux2, "new dump from client");

    let herald_bytes = herald_datagram(herald.seqno, herald.aux2);
    let parsed = session::parse_herald(&herald_bytes).map_err(|r| io::Error::other(r.to_string()))?;
    let mut sess = Session::new(ctx.config.session.clone(), ctx.now(), peer, &parsed);
    ctx.metrics.sessions_started.fetch_add(1, Ordering::Relaxed);
    let _ = sock.send(&herald.seqno.to_be_bytes()).await;

    // Writer thread and buffer pool.
    let (cmd_tx, cmd_rx) = mpsc::channel::<Cmd>(POOL_BUFFERS + 8);
    let (pool_tx, mut pool_rx) = mpsc::channel::<Vec<u8>>(POOL_BUFFERS);
    for _ in 0..POOL_BUFFERS {
        let _ = pool_tx.try_send(Vec::with_capacity(BATCH_CAP));
    }
    let failed = Arc::new(AtomicBool::new(false));
    let closed = Arc::new(AtomicBool::new(false));
    let writer = {
        let (sock, failed, closed, ctx) = (sock.clone(), failed.clone(), closed.clone(), ctx.clone());
        let peer_ip = ip;
        tokio::task::spawn_blocking(move || {
            writer_loop(files, cmd_rx, pool_tx, sock, failed, closed, &ctx, peer_ip)
        })
    };

    let mut rx = SessionRx::new();
    let mut acks = AckBatch::new();
    let mut batch: Option<(u64, Vec<u8>)> = None;
    let mut flush_at: Option<tokio::time::Instant> = None;
    let mut outcome: Option<(&'static str, Option<u32>)> = None;

    'outer: loop {
        if failed.load(Ordering::Relaxed) {
            break;
        }
        let timer = sess.poll_timeout().map(|t| ctx.deadline(t));
        let wake = match (timer, flush_at) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        tokio::select! {
            _ = shutdown.recv() => {
                if sess.abort() {
                    outcome = Some(("timeout", None));
                }
                break;
            }
            Some(ctrl) = link.ctrl.recv() => {
                let Ctrl::Herald { from, seqno, reply } = ctrl else {
                    tracing::info!(%peer, "closing as timed out: nothing after the herald, and its slot was needed");
                    outcome = Some(("timeout", None));
                    break;
                };
                let p = herald_datagram(seqno, 0);
                let decision = match session::parse_herald(&p) {
                    Ok(h) => sess.handle_herald(ctx.now(), from, &h),
                    Err(_) => HeraldDecision::Restart,
                };
                if let HeraldDecision::Reack { seqno } = decision {
                    let _ = sock.send(&seqno.to_be_bytes()).await;
                }
                let _ = reply.send(decision);
                if decision == HeraldDecision::Restart {
                    if sess.state() == session::State::TimedOut {
                        outcome = Some(("timeout", None));
                    }
                    break;
                }
            }
            _ = sleep_until_opt(wake) => {
                if flush_at.is_some_and(|t| t <= tokio::time::Instant::now()) {
                    flush_at = None;
                    if let Some((off, b)) = batch.take() && cmd_tx.send(Cmd::Core { offset: off, buf: b }).await.is_err() {
                        break;
                    }
                }
                match sess.handle_timeout(ctx.now()) {
                    Some(Closed::TimedOut) => {
                        tracing::info!(%peer, "client timed out");
                        outcome = Some(("timeout", None));
                        break;
                    }
                    Some(Closed::Done) => break,
                    None => {}
                }
            }
            r = rx.recv(&io) => {
                // ICMP port unreachable from the client surfaces here on a connected socket.
                if r.is_err() {
                    continue;
                }
                let mut drained = 0;
                // Drain what is queued without going back through the reactor, bounded for fairness in datagrams,
                // not reads. Whatever a read returned is handled in full (it has left the kernel), so one read's
                // worth may pass the bound.
                loop {
                    for (from, datagram) in rx.datagrams() {
                        drained += 1;
                        // The socket is connected, so only the peer can be here.
                        if from.ip().to_canonical() != peer.ip() || from.port() != peer.port() {
                            ctx.metrics.drops.fetch_add(1, Ordering::Relaxed);
                            tracing::debug!(%peer, %from, "dropped datagram from another source");
                            continue;
                        }
                        let now = ctx.now();
                        let out = sess.handle_datagram(now, peer, datagram);
                        if !matches!(out, Output::Rejected(_)) {
                            link.heard_from.store(true, Ordering::Relaxed);
                        }
                        match out {
                            Output::Rejected(reason) => {
                                ctx.metrics.drops.fetch_add(1, Ordering::Relaxed);
                                tracing::debug!(%peer, %reason, "dropped datagram");
                            }
                            Output::Ack { seqno } => {
                                ctx.metrics.duplicates.fetch_add(1, Ordering::Relaxed);
                                // A repeated FINISHED is re-acked only once the first one's fsync is done.
                                if sess.state() != session::State::Finished || closed.load(Ordering::Acquire) {
                                    acks.push(&io, seqno).await;
                                }
                            }
                            Output::Core { seqno, offset, data } => {
                                if failed.load(Ordering::Relaxed) {
                                    break 'outer;
                                }
                                ctx.metrics.packets.fetch_add(1, Ordering::Relaxed);
                                ctx.metrics.bytes.fetch_add(data.len() as u64, Ordering::Relaxed);
                                let contiguous = batch.as_ref().is_some_and(|(o, b)| o + b.len() as u64 == offset && b.len() + data.len() <= BATCH_CAP);
                                if !contiguous {
                                    // The writer channel and the pool can make us wait: acks already due go out first.
                                    acks.flush(&io).await;
                                    if let Some((off, b)) = batch.take() && cmd_tx.send(Cmd::Core { offset: off, buf: b }).await.is_err() {
                                        break 'outer;
                                    }
                                    if data.len() > BATCH_CAP {
                                        if cmd_tx.send(Cmd::Core { offset, buf: data.to_vec() }).await.is_err() {
                                            break 'outer;
                                        }
                                    } else {
                                        let Some(mut b) = pool_rx.recv().await else { break 'outer };
                                        b.clear();
                                        b.extend_from_slice(data);
                                        batch = Some((offset, b));
                                    }
                                } else if let Some((_, b)) = batch.as_mut() {
                                    b.extend_from_slice(data);
                                }
                                acks.push(&io, seqno).await;
                                if batch.as_ref().is_some_and(|(_, b)| b.len() + 1448 > BATCH_CAP) {
                                    acks.flush(&io).await;
                                    if let Some((off, b)) = batch.take() && cmd_tx.send(Cmd::Core { offset: off, buf: b }).await.is_err() {
                                        break 'outer;
                                    }
                                    flush_at = None;
                                } else {
                                    flush_at = Some(tokio::time::Instant::now() + IDLE_FLUSH);
                                }
                            }
                            Output::Key { seqno, offset, data, .. } => {
                                ctx.metrics.packets.fetch_add(1, Ordering::Relaxed);
                                ctx.metrics.bytes.fetch_add(data.len() as u64, Ordering::Relaxed);
                                acks.flush(&io).await;
                                if cmd_tx.send(Cmd::Key { seqno, offset, data: data.to_vec() }).await.is_err() {
                                    break 'outer;
                                }
                            }
                            Output::Kdh { seqno, header } => {
                                ctx.metrics.packets.fetch_add(1, Ordering::Relaxed);
                                tracing::info!(%peer, "KDH from client");
                                acks.push(&io, seqno).await;
                                acks.flush(&io).await;
                                if let Some((off, b)) = batch.take() && cmd_tx.send(Cmd::Core { offset: off, buf: b }).await.is_err() {
                                    break 'outer;
                                }
                                if cmd_tx.send(Cmd::Kdh { payload: header.to_vec() }).await.is_err() {
                                    break 'outer;
                                }
                            }
                            Output::Finished { seqno, complete } => {
                                ctx.metrics.packets.fetch_add(1, Ordering::Relaxed);
                                acks.flush(&io).await;
                                if let Some((off, b)) = batch.take() && cmd_tx.send(Cmd::Core { offset: off, buf: b }).await.is_err() {
                                    break 'outer;
                                }
                                link.active.release();
                                let reason = if complete { "success" } else { "error" };
                                let summary = Box::new(Summary::of(&sess));
                                if cmd_tx.send(Cmd::Close { summary, ack: Some(seqno), reason }).await.is_err() {
                                    break 'outer;
                                }
                                // Stay to re-ack a repeated FINISHED until the linger ends.
                            }
                        }
                    }
                    if drained >= DRAIN_BATCH || sess.state() != session::State::Open {
                        break;
                    }
                    // WouldBlock ends the drain, and so does an ICMP error (reported once, by this read).
                    if rx.try_recv(&io).is_err() {
                        break;
                    }
                }
                acks.flush(&io).await;
            }
        }
    }
    if let Some((off, b)) = batch.take() {
        let _ = cmd_tx.send(Cmd::Core { offset: off, buf: b }).await;
    }
    if let Some((reason, ack)) = outcome {
        let summary = Box::new(Summary::of(&sess));
        let _ = cmd_tx.send(Cmd::Close { summary, ack, reason }).await;
    }
    drop(cmd_tx);
    let _ = writer.await;
    Ok(())
}

/// One slot under `max_sessions`. Whoever releases it first (the session when it finishes, or the herald loop
/// when it evicts a silent session) gives it back, exactly once.
#[derive(Debug)]
struct Slot {
    metrics: Arc<Metrics>,
    held: AtomicBool,
}

impl Slot {
    fn release(&self) {
        if self.held.swap(false, Ordering::AcqRel) {
            self.metrics.sessions_active.fetch_sub(1, Ordering::Relaxed);
        }
    }

    fn is_held(&self) -> bool {
        self.held.load(Ordering::Acquire)
    }
}

/// The session task's hold on its slot: released on drop at the latest.
#[derive(Debug)]
struct ActiveGuard(Arc<Slot>);

impl ActiveGuard {
    fn release(&self) {
        self.0.release();
    }
}

impl Drop for ActiveGuard {
    fn drop(&mut self) {
        self.0.release();
    }
}

async fn sleep_until_opt(at: Option<tokio::time::Instant>) {
    match at {
        Some(t) => tokio::time::sleep_until(t).await,
        None => std::future::pending().await,
    }
}

/// The acks due after one drained batch of datagrams, sent together before the session task waits: one GSO
/// `sendmsg(2)` (UDP_SEGMENT of 4 bytes) where the kernel has it, else one `sendmmsg(2)` on Linux, instead of a
/// `send` per datagram. Either way each ack leaves as its own 4-byte datagram. Fixed storage, so nothing is
/// allocated per packet.
#[derive(Debug)]
struct AckBatch {
    seqnos: [[u8; 4]; DRAIN_BATCH],
    len: usize,
}

impl AckBatch {
    fn new() -> Self {
        Self {
            seqnos: [[0; 4]; DRAIN_BATCH],
            len: 0,
        }
    }

    /// Queues the ack of `seqno` (a full batch is sent first).
    async fn push(&mut self, io: &SessionIo, seqno: u32) {
        if self.len == DRAIN_BATCH {
            self.flush(io).await;
        }
        if let Some(slot) = self.seqnos.get_mut(self.len) {
            *slot = seqno.to_be_bytes();
            self.len += 1;
        }
    }

    /// Sends the queued acks (lost acks are repaired by the client's retransmission, as with `send`).
    async fn flush(&mut self, io: &SessionIo) {
        let queued = self.seqnos.get(..self.len).unwrap_or_default();
        let unsent = send_segmented(io, queued);
        let sent = send_many(&io.sock, unsent);
        for ack in unsent.get(sent..).unwrap_or_default() {
            let _ = io.sock.send(ack).await;
        }
        self.len = 0;
    }
}

/// Sends `acks` as GSO transmits of up to `max_gso_segments()` acks each; returns those not sent (all of them
/// without GSO, the rest after a WouldBlock or a failed send) for the fallback.
fn send_segmented<'a>(io: &SessionIo, acks: &'a [[u8; 4]]) -> &'a [[u8; 4]] {
    let max_segments = io.state.max_gso_segments();
    let mut rest = acks;
    while rest.len() >= 2 && max_segments >= 2 {
        let (now, later) = rest.split_at(rest.len().min(max_segments));
        let transmit = Transmit {
            destination: io.peer,
            ecn: None,
            contents: now.as_flattened(),
            segment_size: Some(4),
            src_ip: None,
        };
        // try_send, not send: quinn-udp's send logs and swallows errors, and these acks must go by the fallback
        // then. After EIO or EINVAL quinn-udp also turns GSO off for this socket.
        let sent = io.sock.try_io(Interest::WRITABLE, || {
            io.state.try_send((&*io.sock).into(), &transmit)
        });
        if sent.is_err() {
            break;
        }
        rest = later;
    }
    rest
}

/// Sends as many of `acks` as the socket takes in one `sendmmsg(2)`; returns how many went out (0 when the
/// socket buffer is full, for the caller to fall back on awaiting `send`).
#[cfg(target_os = "linux")]
fn send_many(sock: &UdpSocket, acks: &[[u8; 4]]) -> usize {
    use rustix::net::{MMsgHdr, SendAncillaryBuffer, SendFlags, sendmmsg};
    use std::io::IoSlice;
    if acks.len() < 2 {
        return 0;
    }
    let mut parts: [([IoSlice<'_>; 1], SendAncillaryBuffer<'_, '_, '_>); DRAIN_BATCH] =
        std::array::from_fn(|i| {
            let ack = acks.get(i).map_or(&[][..], |a| &a[..]);
            ([IoSlice::new(ack)], SendAncillaryBuffer::default())
        });
    let mut msgs = parts
        .each_mut()
        .map(|(iov, control)| MMsgHdr::new(&iov[..], control));
    let Some(msgs) = msgs.get_mut(..acks.len()) else {
        return 0;
    };
    // try_io keeps tokio's readiness right: a WouldBlock clears it, like a failed try_send.
    sock.try_io(tokio::io::Interest::WRITABLE, || {
        sendmmsg(sock, msgs, SendFlags::empty()).map_err(std::io::Error::from)
    })
    .unwrap_or(0)
}

/// Elsewhere each ack is sent on its own.
#[cfg(not(target_os = "linux"))]
fn send_many(_sock: &UdpSocket, _acks: &[[u8; 4]]) -> usize {
    0
}

fn herald_datagram(seqno: u32, aux2: u32) -> [u8; session::HEADER_LEN] {
    use sealdump_wire::netdump::{MessageType, emit_header};
    let mut h = [0u8; session::HEADER_LEN];
    // A 24-byte buffer holds a header with an empty payload, so this cannot fail.
    let _ = emit_header(&mut h, MessageType::Herald, seqno, 0, 0, aux2);
    h
}

#[allow(clippy::too_many_arguments)]
fn writer_loop(
    mut files: DumpFiles,
    mut rx: mpsc::Receiver<Cmd>,
    pool: mpsc::Sender<Vec<u8>>,
    sock: Arc<UdpSocket>,
    failed: Arc<AtomicBool>,
    closed: Arc<AtomicBool>,
    ctx: &Ctx,
    ip: IpAddr,
) {
    let mut error: Option<(u64, io::Error)> = None;
    let mut closed_once = false;
    while let Some(cmd) = rx.blocking_recv() {
        if error.is_some() {
            if let Cmd::Core { buf, .. } = cmd {
                let _ = pool.try_send(buf);
            }
            continue;
        }
        match cmd {
            Cmd::Core { offset, buf } => {
                if let Err(e) = files.write_core(offset, &buf) {
                    // Tell the session at once: it stops acking, so the client sees the failure.
                    failed.store(true, Ordering::Relaxed);
                    error = Some((offset, e));
                }
                let _ = pool.try_send(buf);
            }
            Cmd::Key { seqno, offset, data } => match files.write_key(offset, &data) {
                Ok(()) => {
                    let _ = sock.try_send(&seqno.to_be_bytes());
                }
                Err(e) => tracing::error!(%ip, error = %e, "key file write failed"),
            },
            Cmd::Kdh { payload } => {
                if let Err(e) = files.record_kdh(&payload) {
                    tracing::error!(%ip, error = %e, "recording the KDH failed");
                }
            }
            Cmd::Close { summary, ack, reason } => {
                if closed_once {
                    continue;
                }
                closed_once = true;
                let result = files.close(&summary);
                closed.store(true, Ordering::Release);
                match &result {
                    Ok(()) => {
                        if let Some(seqno) = ack {
                            let _ = sock.try_send(&seqno.to_be_bytes());
                        }
                    }
                    Err(e) => tracing::error!(%ip, error = %e, "closing dump files failed"),
                }
                if summary.complete {
                    ctx.metrics.dumps_complete.fetch_add(1, Ordering::Relaxed);
                    tracing::info!(host = %files.host(), %ip, "completed dump from client");
                } else {
                    ctx.metrics.dumps_incomplete.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(host = %files.host(), %ip, last = summary.last_line().trim_end(), "dump incomplete");
                }
                if let Some(keep) = ctx.config.store.keep
                    && let Err(e) = files.prune(keep)
                {
                    tracing::warn!(error = %e, "pruning old dumps failed");
                }
                run_handler(ctx, reason, ip, &files);
            }
        }
    }
    if let Some((offset, e)) = error {
        tracing::error!(%ip, offset, error = %e, "write error");
        let _ = files.append_info(&format!(
            "Dump unsuccessful: write error @ offset {offset:08x}: {e}\n"
        ));
        ctx.metrics.dumps_incomplete.fetch_add(1, Ordering::Relaxed);
        run_handler(ctx, "error", ip, &files);
    }
}

/// `script <reason> <ip> <host> <infofile> <corefile>` in the dump dir with an empty environment (netdumpd).
fn run_handler(ctx: &Ctx, reason: &str, ip: IpAddr, files: &DumpFiles) {
    let Some(script) = &ctx.config.handler else { return };
    let child = std::process::Command::new(script)
        .arg(reason)
        .arg(ip.to_string())
        .arg(files.host())
        .arg(files.info_rel())
        .arg(files.core_rel())
        .current_dir(&ctx.config.store.dump_dir)
        .env_clear()
        .stdin(std::process::Stdio::null())
        .spawn();
    match child {
        // Reaped on its own thread: a slow or hanging handler must not hold the session open.
        Ok(mut c) => {
            let spawned = std::thread::Builder::new()
                .name("handler-reaper".into())
                .spawn(move || match c.wait() {
                    Ok(status) if status.success() => {
                        tracing::info!(pid = c.id(), "handler exited with status 0")
                    }
                    Ok(status) => tracing::warn!(pid = c.id(), %status, "handler failed"),
                    Err(e) => tracing::warn!(error = %e, "waiting for the handler failed"),
                });
            if let Err(e) = spawned {
                tracing::warn!(error = %e, "cannot start a thread to reap the handler");
            }
        }
        Err(e) => tracing::error!(script = %script.display(), error = %e, "cannot run the handler"),
    }
}

async fn serve_metrics(listener: tokio::net::TcpListener, metrics: Arc<Metrics>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    loop {
        let Ok((mut stream, _)) = listener.accept().await else {
            continue;
        };
        let metrics = metrics.clone();
        tokio::spawn(async move {
            let mut req = [0u8; 1024];
            let _ = tokio::time::timeout(Duration::from_secs(2), stream.read(&mut req)).await;
            let body = metrics.render();
            let resp = format!(
                "HTTP/1.0 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            );
            let _ = stream.write_all(resp.as_bytes()).await;
        });
    }
}
