//! A seeded user-space UDP impairment proxy for netdump traffic (netem does not exist on the bench machine).
//!
//! The client sends its herald to `--listen`; the proxy forwards it to `--upstream` (the receiver's herald port)
//! from one upstream socket. The receiver acks to that socket's address from a per-session port S; for each S the
//! proxy opens a client-facing socket P(S), so the client learns P(S) as the session port and its data goes
//! P(S) → S. Every datagram, in both directions, is dropped with probability `--loss` percent (one seeded
//! generator per direction) and otherwise delivered `--delay-ms` later (constant delay, so order is kept).
//! Datagrams are read and sent in GRO/GSO batches where the kernel offers them, and each direction's delay line
//! lives in the thread that reads it, so the proxy costs little per datagram (like netem, which it stands in for).
//!
//! Goodput is measured here, where it is seen: bytes of distinct VMCORE messages whose ack reached the client,
//! between the first herald and the last such ack. `--stats FILE` is rewritten every 100 ms.
//!
//! `impair-proxy --listen 127.0.0.1:0 --upstream 127.0.0.1:20023 --delay-ms 1 --loss 1 --seed 7 --stats s.txt`
use std::collections::{HashMap, VecDeque};
use std::io::IoSliceMut;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use quinn_udp::{RecvMeta, Transmit, UdpSocketState};
use rustix::event::{PollFd, PollFlags, Timespec, poll};

struct Args {
    listen: SocketAddr,
    upstream: SocketAddr,
    delay: Duration,
    loss_ppm: u64,
    seed: u64,
    stats: Option<String>,
}

fn parse_args() -> Args {
    let mut args = Args {
        listen: "127.0.0.1:0".parse().unwrap(),
        upstream: "127.0.0.1:20023".parse().unwrap(),
        delay: Duration::ZERO,
        loss_ppm: 0,
        seed: 1,
        stats: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().unwrap_or_else(|| usage(&flag));
        match flag.as_str() {
            "--listen" => args.listen = value.parse().unwrap_or_else(|_| usage(&flag)),
            "--upstream" => args.upstream = value.parse().unwrap_or_else(|_| usage(&flag)),
            "--delay-ms" => {
                let ms: f64 = value.parse().unwrap_or_else(|_| usage(&flag));
                args.delay = Duration::from_secs_f64(ms / 1000.0);
            }
            "--loss" => {
                let pct: f64 = value.parse().unwrap_or_else(|_| usage(&flag));
                args.loss_ppm = (pct * 10_000.0).round() as u64;
            }
            "--seed" => args.seed = value.parse().unwrap_or_else(|_| usage(&flag)),
            "--stats" => args.stats = Some(value),
            _ => usage(&flag),
        }
    }
    args
}

fn usage(flag: &str) -> ! {
    eprintln!(
        "impair-proxy: bad argument {flag}\nusage: impair-proxy --listen ADDR --upstream ADDR [--delay-ms MS] \
         [--loss PERCENT] [--seed N] [--stats FILE]"
    );
    std::process::exit(2)
}

/// splitmix64: tiny, seedable, good enough for loss decisions.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn drop(&mut self, ppm: u64) -> bool {
        ppm > 0 && self.next() % 1_000_000 < ppm
    }
}

fn socket(addr: SocketAddr) -> UdpSocket {
    use socket2::{Domain, Socket, Type};
    let s = Socket::new(Domain::for_address(addr), Type::DGRAM, None).expect("socket");
    // As large as the kernel allows (net.core.rmem_max): the proxy must not be the bottleneck's buffer.
    let _ = s.set_recv_buffer_size(8 << 20);
    let _ = s.set_send_buffer_size(8 << 20);
    s.bind(&addr.into()).expect("bind");
    s.into()
}

/// A proxy socket with UDP GRO and GSO (quinn-udp): batches of datagrams cost one system call, so the proxy
/// forwards at the rate of the stack it imitates (netem works inside the kernel) instead of capping the link.
struct Port {
    sock: UdpSocket,
    state: UdpSocketState,
}

impl Port {
    fn bind(addr: SocketAddr) -> Arc<Port> {
        let sock = socket(addr);
        // Non-blocking (quinn-udp sets it): the wait is in `recv`.
        let state = UdpSocketState::new((&sock).into()).expect("UDP socket state");
        Arc::new(Port { sock, state })
    }

    /// Waits up to `timeout` for one datagram or GRO batch; returns it with its stride and source. The wait is a
    /// `ppoll` (nanosecond timeout): SO_RCVTIMEO counts in jiffies, which would stretch a 1 ms delay line.
    fn recv<'b>(&self, buf: &'b mut [u8], timeout: Duration) -> Option<(&'b [u8], usize, SocketAddr)> {
        let mut fds = [PollFd::new(&self.sock, PollFlags::IN)];
        let ts = Timespec {
            tv_sec: timeout.as_secs() as i64,
            tv_nsec: timeout.subsec_nanos() as _,
        };
        let _ = poll(&mut fds, Some(&ts));
        let mut meta = [RecvMeta::default()];
        let n = {
            let mut slices = [IoSliceMut::new(&mut *buf)];
            self.state
                .recv((&self.sock).into(), &mut slices, &mut meta)
                .ok()?
        };
        if n == 0 {
            return None;
        }
        let m = meta[0];
        Some((&buf[..m.len.min(buf.len())], m.stride.max(1), m.addr))
    }

    /// Sends equal-size datagrams (the last may be shorter) to `to` in one GSO call.
    fn send(&self, to: SocketAddr, contents: &[u8], segment: usize) {
        let transmit = Transmit {
            destination: to,
            ecn: None,
            contents,
            segment_size: (contents.len() > segment).then_some(segment),
            src_ip: None,
        };
        let _ = self.state.send((&self.sock).into(), &transmit);
    }

    fn max_segments(&self) -> usize {
        self.state.max_gso_segments()
    }
}

/// A datagram in a delay line.
struct Delayed {
    due: Instant,
    via: Arc<Port>,
    to: SocketAddr,
    bytes: Vec<u8>,
}

/// One direction's FIFO (constant delay keeps it sorted): sends every due datagram, consecutive ones with the same
/// socket, destination and size in one GSO call. Returns how long until the next one is due.
fn send_due(queue: &mut VecDeque<Delayed>, batch: &mut Vec<u8>) -> Duration {
    let now = Instant::now();
    while queue.front().is_some_and(|p| p.due <= now) {
        let Some(first) = queue.pop_front() else { break };
        batch.clear();
        batch.extend_from_slice(&first.bytes);
        let segment = first.bytes.len();
        let limit = first.via.max_segments().min(65_000 / segment.max(1)).max(1);
        let mut count = 1;
        while count < limit
            && let Some(next) = queue.front()
            && next.due <= now
            && next.bytes.len() <= segment
            && next.to == first.to
            && Arc::ptr_eq(&next.via, &first.via)
        {
            let shorter = next.bytes.len() < segment;
            batch.extend_from_slice(&next.bytes);
            queue.pop_front();
            count += 1;
            if shorter {
                break;
            }
        }
        first.via.send(first.to, batch, segment);
    }
    queue.front().map_or(Duration::from_millis(50), |p| {
        p.due.saturating_duration_since(now)
    })
}

struct Stats {
    start: Instant,
    first_herald_us: AtomicU64,
    last_ack_us: AtomicU64,
    acked_bytes: AtomicU64,
    forward: AtomicU64,
    forward_dropped: AtomicU64,
    back: AtomicU64,
    back_dropped: AtomicU64,
    /// VMCORE seqno -> payload length until its first ack reaches the client, then `None`: a datagram sent again
    /// after its ack (a spurious resend) is not counted twice.
    pending: Mutex<HashMap<u32, Option<u64>>>,
}

impl Stats {
    fn us(&self) -> u64 {
        self.start.elapsed().as_micros() as u64
    }
    fn line(&self) -> String {
        let first = self.first_herald_us.load(Ordering::Relaxed);
        let last = self.last_ack_us.load(Ordering::Relaxed);
        format!(
            "acked_bytes={} seconds={:.6} forward={} forward_dropped={} back={} back_dropped={}\n",
            self.acked_bytes.load(Ordering::Relaxed),
            last.saturating_sub(first) as f64 / 1e6,
            self.forward.load(Ordering::Relaxed),
            self.forward_dropped.load(Ordering::Relaxed),
            self.back.load(Ordering::Relaxed),
            self.back_dropped.load(Ordering::Relaxed),
        )
    }
}

const VMCORE: u32 = 3;
const HERALD: u32 = 1;

/// Client → receiver: read from a client-facing socket, account, drop or delay towards `to` via the upstream socket.
#[allow(clippy::too_many_arguments)]
fn forward_reader(
    from_client: Arc<Port>,
    upstream: Arc<Port>,
    to: SocketAddr,
    client: Arc<Mutex<Option<SocketAddr>>>,
    stats: Arc<Stats>,
    mut rng: Rng,
    delay: Duration,
    loss_ppm: u64,
) {
    let mut buf = vec![0u8; 65_536];
    let mut batch = Vec::with_capacity(65_536);
    let mut queue: VecDeque<Delayed> = VecDeque::new();
    let mut wait = Duration::from_millis(50);
    loop {
        if !wait.is_zero()
            && let Some((data, stride, src)) = from_client.recv(&mut buf, wait)
        {
            let now = Instant::now();
            let mut pending = Vec::new();
            for bytes in data.chunks(stride) {
                if bytes.len() >= 24 {
                    let msg_type = u32::from_be_bytes(bytes[0..4].try_into().unwrap());
                    let seqno = u32::from_be_bytes(bytes[4..8].try_into().unwrap());
                    let len = u32::from_be_bytes(bytes[16..20].try_into().unwrap()) as u64;
                    if msg_type == HERALD {
                        *client.lock().unwrap() = Some(src);
                        let _ = stats.first_herald_us.compare_exchange(
                            0,
                            stats.us().max(1),
                            Ordering::Relaxed,
                            Ordering::Relaxed,
                        );
                    } else if msg_type == VMCORE {
                        pending.push((seqno, len));
                    }
                }
                stats.forward.fetch_add(1, Ordering::Relaxed);
                if rng.drop(loss_ppm) {
                    stats.forward_dropped.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
                queue.push_back(Delayed {
                    due: now + delay,
                    via: upstream.clone(),
                    to,
                    bytes: bytes.to_vec(),
                });
            }
            if !pending.is_empty() {
                let mut map = stats.pending.lock().unwrap();
                for (seqno, len) in pending {
                    map.entry(seqno).or_insert(Some(len));
                }
            }
        }
        wait = send_due(&mut queue, &mut batch);
    }
}

fn main() {
    let args = parse_args();
    let herald = Port::bind(args.listen);
    let upstream_bind: SocketAddr = if args.upstream.is_ipv4() {
        "127.0.0.1:0"
    } else {
        "[::1]:0"
    }
    .parse()
    .unwrap();
    let upstream = Port::bind(upstream_bind);
    let client: Arc<Mutex<Option<SocketAddr>>> = Arc::new(Mutex::new(None));
    let stats = Arc::new(Stats {
        start: Instant::now(),
        first_herald_us: AtomicU64::new(0),
        last_ack_us: AtomicU64::new(0),
        acked_bytes: AtomicU64::new(0),
        forward: AtomicU64::new(0),
        forward_dropped: AtomicU64::new(0),
        back: AtomicU64::new(0),
        back_dropped: AtomicU64::new(0),
        pending: Mutex::new(HashMap::new()),
    });
    let mut reader_seed = args.seed;
    {
        let (h, u, c, st) = (herald.clone(), upstream.clone(), client.clone(), stats.clone());
        let (to, delay, loss) = (args.upstream, args.delay, args.loss_ppm);
        let rng = Rng(reader_seed);
        std::thread::spawn(move || forward_reader(h, u, to, c, st, rng, delay, loss));
    }
    if let Some(path) = args.stats.clone() {
        let st = stats.clone();
        std::thread::spawn(move || {
            loop {
                let _ = std::fs::write(format!("{path}.tmp"), st.line());
                let _ = std::fs::rename(format!("{path}.tmp"), &path);
                std::thread::sleep(Duration::from_millis(100));
            }
        });
    }
    println!("listening on {}", herald.sock.local_addr().unwrap());
    // Receiver → client, on this thread: acks from session port S go out of the client-facing socket P(S).
    let mut sessions: HashMap<SocketAddr, Arc<Port>> = HashMap::new();
    let mut rng = Rng(args.seed ^ 0xac4b_ac4b_ac4b_ac4b);
    let mut buf = vec![0u8; 65_536];
    let mut batch = Vec::with_capacity(65_536);
    let mut queue: VecDeque<Delayed> = VecDeque::new();
    let mut wait = Duration::from_millis(50);
    loop {
        if !wait.is_zero()
            && let Some((data, stride, src)) = upstream.recv(&mut buf, wait)
            && let Some(to) = *client.lock().unwrap()
        {
            let via = sessions
                .entry(src)
                .or_insert_with(|| {
                    let s = Port::bind(SocketAddr::new(args.listen.ip(), 0));
                    reader_seed = reader_seed.wrapping_add(1);
                    let (s2, u, c, st) = (s.clone(), upstream.clone(), client.clone(), stats.clone());
                    let (delay, loss, rng) = (args.delay, args.loss_ppm, Rng(reader_seed));
                    std::thread::spawn(move || forward_reader(s2, u, src, c, st, rng, delay, loss));
                    s
                })
                .clone();
            let now = Instant::now();
            for bytes in data.chunks(stride) {
                stats.back.fetch_add(1, Ordering::Relaxed);
                if rng.drop(args.loss_ppm) {
                    stats.back_dropped.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
                if bytes.len() == 4 {
                    let seqno = u32::from_be_bytes(bytes.try_into().unwrap());
                    let first_ack = stats
                        .pending
                        .lock()
                        .unwrap()
                        .get_mut(&seqno)
                        .and_then(Option::take);
                    if let Some(len) = first_ack {
                        // Counted when the ack leaves the proxy; it reaches the client `delay` later, which the
                        // constant offset does not change for the rate.
                        stats.acked_bytes.fetch_add(len, Ordering::Relaxed);
                        stats.last_ack_us.store(stats.us(), Ordering::Relaxed);
                    }
                }
                queue.push_back(Delayed {
                    due: now + args.delay,
                    via: via.clone(),
                    to,
                    bytes: bytes.to_vec(),
                });
            }
        }
        wait = send_due(&mut queue, &mut batch);
    }
}
