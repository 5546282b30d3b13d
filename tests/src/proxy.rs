//! A seeded user-space UDP impairment proxy for loopback tests (the kernel here has no netem).
//!
//! The client sends to [`Proxy::addr`]; the proxy forwards to the receiver's herald address from its own upstream
//! socket. Netdump answers from a *new* port per session, so every distinct upstream source gets its own
//! client-facing socket: the client sees the session port change exactly as it would without the proxy, and
//! what it sends there goes on to that upstream address. One client per proxy.
//!
//! Each datagram, in either direction, is independently dropped, corrupted, duplicated and/or delayed (which
//! reorders it behind later ones), with probabilities from [`Impairment`] and choices from a seeded RNG, so a
//! failing run can be replayed with the same seed (timing still varies, so a replay is close, not exact).
//!
//! Corruption here changes a datagram's length (cut or padded), the kind of damage the netdump framing must
//! detect (the exact-length rule for messages, exactly 4 bytes for acks). A bit flip inside a payload with the
//! length intact is what the UDP checksum catches on a real network (the kernel drops it: that is loss); above
//! UDP only the seal's AEAD can detect it, which `chaos.rs` checks separately.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

/// Per-datagram impairment probabilities (0.0–1.0), applied in both directions.
#[derive(Clone, Debug)]
pub struct Impairment {
    /// Drop the datagram.
    pub loss: f64,
    /// Send it twice (the copy is impaired independently for delay).
    pub duplicate: f64,
    /// Hold it back for a random delay in `reorder_delay`, so later datagrams overtake it.
    pub reorder: f64,
    /// Delay range for held-back datagrams.
    pub reorder_delay: (Duration, Duration),
    /// Cut or pad it (its length no longer matches its framing).
    pub corrupt: f64,
    /// Flip one random bit of a message's payload, keeping its length (models an error the UDP checksum missed);
    /// client → receiver only, messages of at least 25 bytes.
    pub payload_bitflip: f64,
    /// Pass the first herald and its acks (seqno 1) untouched and hold back the client's herald re-sends. A
    /// re-sent herald (after a lost ack, or a receiver slower than the client's 1 s initial RTO) that the receiver
    /// processes after the session's first data makes it restart the session and the dump fails (a known receiver
    /// issue, docs/reliability.md). `false` impairs the herald exchange like everything else.
    pub protect_herald_exchange: bool,
}

impl Impairment {
    /// No impairment: a plain relay.
    pub fn none() -> Self {
        Impairment {
            loss: 0.0,
            duplicate: 0.0,
            reorder: 0.0,
            reorder_delay: (Duration::ZERO, Duration::ZERO),
            corrupt: 0.0,
            payload_bitflip: 0.0,
            protect_herald_exchange: true,
        }
    }
}

/// Counters of what the proxy did.
#[derive(Debug, Default)]
pub struct ProxyStats {
    /// Datagrams received from either side.
    pub received: AtomicU64,
    /// Datagrams dropped.
    pub dropped: AtomicU64,
    /// Extra copies sent.
    pub duplicated: AtomicU64,
    /// Datagrams held back.
    pub reordered: AtomicU64,
    /// Datagrams cut or padded.
    pub corrupted: AtomicU64,
    /// Payload bits flipped.
    pub bitflips: AtomicU64,
}

impl ProxyStats {
    /// (received, dropped, duplicated, reordered, corrupted, bitflips).
    pub fn snapshot(&self) -> [u64; 6] {
        [
            &self.received,
            &self.dropped,
            &self.duplicated,
            &self.reordered,
            &self.corrupted,
            &self.bitflips,
        ]
        .map(|c| c.load(Ordering::Relaxed))
    }
}

/// A running proxy; stopped on drop.
#[derive(Debug)]
pub struct Proxy {
    /// Where the client should send its herald.
    pub addr: SocketAddr,
    /// Counters.
    pub stats: Arc<ProxyStats>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Proxy {
    /// Starts a proxy in front of `upstream` (the receiver's herald address). The proxy listens on
    /// `127.0.0.1:0` and sends upstream from `upstream_ip:0`.
    pub fn start(upstream: SocketAddr, upstream_ip: IpAddr, impairment: Impairment, seed: u64) -> Proxy {
        let front = UdpSocket::bind("127.0.0.1:0").unwrap();
        front.set_nonblocking(true).unwrap();
        let back = UdpSocket::bind(SocketAddr::new(upstream_ip, 0)).unwrap();
        back.set_nonblocking(true).unwrap();
        let addr = front.local_addr().unwrap();
        let stats = Arc::new(ProxyStats::default());
        let stop = Arc::new(AtomicBool::new(false));
        let mut relay = Relay {
            fronts: vec![(upstream, front)],
            by_upstream: HashMap::from([(upstream, 0)]),
            back,
            client: None,
            pending: Vec::new(),
            herald_forwarded: false,
            rng: StdRng::seed_from_u64(seed),
            impairment,
            stats: stats.clone(),
        };
        let stop2 = stop.clone();
        let thread = std::thread::spawn(move || relay.run(&stop2));
        Proxy {
            addr,
            stats,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[derive(Clone, Copy)]
enum Route {
    /// To this upstream address, from the upstream socket.
    Up(SocketAddr),
    /// To the client, from the client-facing socket with this index.
    Down(usize),
}

struct Relay {
    /// Client-facing sockets, each paired with the upstream address it stands for.
    fronts: Vec<(SocketAddr, UdpSocket)>,
    by_upstream: HashMap<SocketAddr, usize>,
    back: UdpSocket,
    client: Option<SocketAddr>,
    pending: Vec<(Instant, Route, Vec<u8>)>,
    herald_forwarded: bool,
    rng: StdRng,
    impairment: Impairment,
    stats: Arc<ProxyStats>,
}

impl Relay {
    fn run(&mut self, stop: &AtomicBool) {
        let mut buf = vec![0u8; 70_000];
        while !stop.load(Ordering::Relaxed) {
            let mut busy = false;
            for i in 0..self.fronts.len() {
                while let Ok((n, from)) = self.fronts[i].1.recv_from(&mut buf) {
                    busy = true;
                    self.client = Some(from);
                    let upstream = self.fronts[i].0;
                    self.impair(Route::Up(upstream), buf[..n].to_vec());
                }
            }
            while let Ok((n, from)) = self.back.recv_from(&mut buf) {
                busy = true;
                let index = match self.by_upstream.get(&from) {
                    Some(&i) => i,
                    None => {
                        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
                        socket.set_nonblocking(true).unwrap();
                        self.fronts.push((from, socket));
                        self.by_upstream.insert(from, self.fronts.len() - 1);
                        self.fronts.len() - 1
                    }
                };
                self.impair(Route::Down(index), buf[..n].to_vec());
            }
            let now = Instant::now();
            let mut i = 0;
            while i < self.pending.len() {
                if self.pending[i].0 <= now {
                    let (_, route, data) = self.pending.swap_remove(i);
                    self.deliver(route, &data);
                    busy = true;
                } else {
                    i += 1;
                }
            }
            if !busy {
                std::thread::sleep(Duration::from_micros(100));
            }
        }
    }

    fn impair(&mut self, route: Route, mut data: Vec<u8>) {
        let imp = &self.impairment;
        self.stats.received.fetch_add(1, Ordering::Relaxed);
        let herald_exchange = match route {
            Route::Up(_) => data.len() >= 24 && data[..4] == 1u32.to_be_bytes(),
            Route::Down(_) => data[..] == 1u32.to_be_bytes(),
        };
        if herald_exchange && imp.protect_herald_exchange {
            // The client's own herald re-sends (its RTO fired before a slow receiver answered) are held back too:
            // the receiver would restart the session on them.
            let resend = matches!(route, Route::Up(_)) && std::mem::replace(&mut self.herald_forwarded, true);
            if !resend {
                self.deliver(route, &data);
            }
            return;
        }
        if self.rng.random_bool(imp.loss) {
            self.stats.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        if self.rng.random_bool(imp.corrupt) {
            self.stats.corrupted.fetch_add(1, Ordering::Relaxed);
            if self.rng.random_bool(0.5) && !data.is_empty() {
                let cut = self.rng.random_range(1..=data.len().min(16));
                data.truncate(data.len() - cut);
            } else {
                let extra = self.rng.random_range(1..=16);
                data.extend((0..extra).map(|_| self.rng.random::<u8>()));
            }
        }
        if matches!(route, Route::Up(_)) && data.len() > 24 && self.rng.random_bool(imp.payload_bitflip) {
            self.stats.bitflips.fetch_add(1, Ordering::Relaxed);
            let bit = self.rng.random_range(24 * 8..data.len() * 8);
            data[bit / 8] ^= 1 << (bit % 8);
        }
        let copies = if self.rng.random_bool(imp.duplicate) {
            self.stats.duplicated.fetch_add(1, Ordering::Relaxed);
            2
        } else {
            1
        };
        for _ in 0..copies {
            if self.rng.random_bool(imp.reorder) {
                self.stats.reordered.fetch_add(1, Ordering::Relaxed);
                let (lo, hi) = imp.reorder_delay;
                let delay = if hi > lo {
                    self.rng.random_range(lo..hi)
                } else {
                    lo
                };
                self.pending.push((Instant::now() + delay, route, data.clone()));
            } else {
                self.deliver(route, &data);
            }
        }
    }

    fn deliver(&self, route: Route, data: &[u8]) {
        // Send errors (a port that went away, a full buffer) are just more loss.
        match route {
            Route::Up(to) => {
                let _ = self.back.send_to(data, to);
            }
            Route::Down(index) => {
                if let Some(client) = self.client {
                    let _ = self.fronts[index].1.send_to(data, client);
                }
            }
        }
    }
}
