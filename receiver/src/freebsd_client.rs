//! A test client that behaves like FreeBSD's netdump (spec §1.6-§1.8), over a blocking std UDP socket.
//!
//! Herald (seqno 1) to the server's herald port, server port learnt from the first ack's source port; 13+
//! order sends the EKCD key right after the herald, 12.x after the KDH; data goes in bursts of one 64 KiB
//! chunk (1448-byte payloads at MTU 1500), then the client waits for every ack of the burst and resends
//! only the unacked packets after ~1 s, giving up after 10 retransmissions. Deterministic fault knobs
//! (drop, duplicate, reorder, stop early) exercise the receiver.

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

/// Which FreeBSD generation's message order to follow.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Order {
    /// 12.x: HERALD, VMCORE…, KDH, EKCD_KEY, FINISHED.
    FreeBsd12,
    /// 13+: HERALD, EKCD_KEY, VMCORE…, KDH, FINISHED.
    FreeBsd13,
}

/// Deterministic faults injected by the client.
#[derive(Clone, Debug, Default)]
pub struct Faults {
    /// Drop the first transmission of every seqno divisible by this.
    pub drop_every: Option<u32>,
    /// Send every seqno divisible by this twice.
    pub duplicate_every: Option<u32>,
    /// Send each burst's packets in reverse order.
    pub reverse_bursts: bool,
    /// Stop (like a client that crashed or failed) after this many core bytes were acked: no KDH, no FINISHED.
    pub stop_after: Option<u64>,
}

/// Client settings.
#[derive(Clone, Debug)]
pub struct ClientConfig {
    /// The receiver's herald address (port 20023 normally).
    pub server: SocketAddr,
    /// Local address; FreeBSD always uses port 20024 (tests use port 0).
    pub bind: SocketAddr,
    /// `net.netdump.path` (sent NUL-terminated when Some).
    pub path: Option<Vec<u8>>,
    /// Message order.
    pub order: Order,
    /// Payload per packet (1448 at MTU 1500).
    pub payload: usize,
    /// Bytes per burst (64 KiB).
    pub burst: usize,
    /// Resend unacked packets after this long (~1 s in the kernel).
    pub retransmit_after: Duration,
    /// Retransmissions before giving up (10).
    pub retries: u32,
    /// How the client waits for a burst's acks. `Some(d)`: as the kernel does, a loop of "all acked? else poll the
    /// NIC for whatever arrived, then `DELAY(d)`" (d = 500 µs in FreeBSD 12-15's netdump/debugnet), so an ack is
    /// only seen after the delay that follows the poll which took it in. `None`: wake on each ack (faster than
    /// any kernel: the default for tests).
    pub poll_delay: Option<Duration>,
    /// Fault injection.
    pub faults: Faults,
}

impl ClientConfig {
    /// FreeBSD defaults towards `server`, bound to port 20024 on all addresses.
    pub fn new(server: SocketAddr) -> Self {
        let any: SocketAddr = if server.is_ipv4() {
            SocketAddr::from(([0, 0, 0, 0], 20024))
        } else {
            SocketAddr::from(([0u16; 8], 20024))
        };
        Self {
            server,
            bind: any,
            path: None,
            order: Order::FreeBsd13,
            payload: 1448,
            burst: 64 * 1024,
            retransmit_after: Duration::from_secs(1),
            retries: 10,
            poll_delay: None,
            faults: Faults::default(),
        }
    }
}

/// What to send.
#[derive(Clone, Copy, Debug, Default)]
pub struct Dump<'a> {
    /// VMCORE bytes (sent from offset 0).
    pub core: &'a [u8],
    /// KDH payload (512 bytes normally).
    pub kdh: Option<&'a [u8]>,
    /// EKCD key blob.
    pub key: Option<&'a [u8]>,
}

/// Counters of a run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Report {
    /// Datagrams sent, retransmissions included.
    pub sent: u64,
    /// Retransmitted datagrams.
    pub retransmits: u64,
    /// The session port learnt from the first ack.
    pub server_port: u16,
    /// FINISHED was acked.
    pub finished: bool,
}

const HERALD: u32 = 1;
const FINISHED: u32 = 2;
const VMCORE: u32 = 3;
const KDH: u32 = 4;
const EKCD_KEY: u32 = 5;

/// Builds one netdump datagram into `out` (cleared first).
pub fn encode(out: &mut Vec<u8>, msg_type: u32, seqno: u32, offset: u64, payload: &[u8]) {
    out.clear();
    out.extend_from_slice(&msg_type.to_be_bytes());
    out.extend_from_slice(&seqno.to_be_bytes());
    out.extend_from_slice(&offset.to_be_bytes());
    out.extend_from_slice(&u32::try_from(payload.len()).unwrap_or(u32::MAX).to_be_bytes());
    out.extend_from_slice(&0u32.to_be_bytes());
    out.extend_from_slice(payload);
}

/// A FreeBSD-like netdump client.
#[derive(Debug)]
pub struct Client {
    cfg: ClientConfig,
    sock: UdpSocket,
    dest: SocketAddr,
    seqno: u32,
    report: Report,
    buf: Vec<u8>,
}

struct Msg<'a> {
    msg_type: u32,
    offset: u64,
    payload: &'a [u8],
}

impl Client {
    /// Binds the client socket.
    pub fn new(cfg: ClientConfig) -> io::Result<Self> {
        let sock = UdpSocket::bind(cfg.bind)?;
        let dest = cfg.server;
        Ok(Self {
            cfg,
            sock,
            dest,
            seqno: 1,
            report: Report::default(),
            buf: Vec::with_capacity(65_536),
        })
    }

    /// The local address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.sock.local_addr()
    }

    /// Sends a whole dump; returns after FINISHED is acked, or with an error when the receiver stops acking.
    pub fn send_dump(mut self, dump: &Dump<'_>) -> io::Result<Report> {
        self.herald()?;
        if self.cfg.order == Order::FreeBsd13
            && let Some(key) = dump.key
        {
            self.send_chunked(EKCD_KEY, key)?;
        }
        let burst = self.cfg.burst.max(1);
        let mut sent_core = 0u64;
        for (i, chunk) in dump.core.chunks(burst).enumerate() {
            if let Some(stop) = self.cfg.faults.stop_after
                && sent_core >= stop
            {
                return Ok(self.report);
            }
            let base = (i * burst) as u64;
            let payload = self.cfg.payload.max(1);
            let msgs: Vec<Msg<'_>> = chunk
                .chunks(payload)
                .enumerate()
                .map(|(j, p)| Msg {
                    msg_type: VMCORE,
                    offset: base + (j * payload) as u64,
                    payload: p,
                })
                .collect();
            self.send_burst(&msgs)?;
            sent_core += chunk.len() as u64;
        }
        if let Some(stop) = self.cfg.faults.stop_after
            && sent_core >= stop
        {
            return Ok(self.report);
        }
        if let Some(kdh) = dump.kdh {
            self.send_burst(&[Msg {
                msg_type: KDH,
                offset: 0,
                payload: kdh,
            }])?;
        }
        if self.cfg.order == Order::FreeBsd12
            && let Some(key) = dump.key
        {
            self.send_chunked(EKCD_KEY, key)?;
        }
        self.send_burst(&[Msg {
            msg_type: FINISHED,
            offset: 0,
            payload: &[],
        }])?;
        self.report.finished = true;
        Ok(self.report)
    }

    /// Sends only the herald (and learns the session port).
    pub fn herald(&mut self) -> io::Result<u16> {
        let path: Vec<u8> = match &self.cfg.path {
            Some(p) => p.iter().copied().chain(Some(0)).collect(),
            None => Vec::new(),
        };
        self.seqno = 1;
        let mut tries = 0;
        loop {
            let mut out = std::mem::take(&mut self.buf);
            encode(&mut out, HERALD, 1, 0, &path);
            self.sock.send_to(&out, self.cfg.server)?;
            self.buf = out;
            self.report.sent += 1;
            let deadline = Instant::now() + self.cfg.retransmit_after;
            while let Some((seqno, from)) = self.recv_ack(deadline)? {
                if seqno == 1 {
                    self.dest = SocketAddr::new(self.cfg.server.ip(), from.port());
                    self.report.server_port = from.port();
                    self.seqno = 2;
                    return Ok(from.port());
                }
            }
            tries += 1;
            if tries > self.cfg.retries {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "failed to contact netdump server",
                ));
            }
            self.report.retransmits += 1;
        }
    }

    fn recv_ack(&mut self, deadline: Instant) -> io::Result<Option<(u32, SocketAddr)>> {
        let mut ack = [0u8; 64];
        loop {
            let now = Instant::now();
            if now >= deadline {
                return Ok(None);
            }
            self.sock.set_read_timeout(Some(deadline - now))?;
            match self.sock.recv_from(&mut ack) {
                // 13+ takes exactly 4-byte payloads from the server's IP.
                Ok((4, from)) if from.ip() == self.cfg.server.ip() => {
                    return Ok(Some((u32::from_be_bytes([ack[0], ack[1], ack[2], ack[3]]), from)));
                }
                Ok(_) => continue,
                Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {
                    return Ok(None);
                }
                // ICMP errors from a previous send: keep waiting.
                Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => continue,
                Err(e) => return Err(e),
            }
        }
    }

    /// The kernel's `debugnet_network_poll`: takes in every ack already queued, without waiting.
    fn poll_acks(&mut self, mut on_ack: impl FnMut(u32)) -> io::Result<()> {
        self.sock.set_nonblocking(true)?;
        let mut ack = [0u8; 64];
        let result = loop {
            match self.sock.recv_from(&mut ack) {
                Ok((4, from)) if from.ip() == self.cfg.server.ip() => {
                    on_ack(u32::from_be_bytes([ack[0], ack[1], ack[2], ack[3]]));
                }
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break Ok(()),
                Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {}
                Err(e) => break Err(e),
            }
        };
        self.sock.set_nonblocking(false)?;
        result
    }

    fn send_chunked(&mut self, msg_type: u32, data: &[u8]) -> io::Result<()> {
        let payload = self.cfg.payload.max(1);
        let msgs: Vec<Msg<'_>> = data
            .chunks(payload)
            .enumerate()
            .map(|(j, p)| Msg {
                msg_type,
                offset: (j * payload) as u64,
                payload: p,
            })
            .collect();
        for burst in msgs.chunks(64) {
            self.send_burst(burst)?;
        }
        Ok(())
    }

    fn transmit(&mut self, m: &Msg<'_>, seqno: u32, first: bool) -> io::Result<()> {
        let f = &self.cfg.faults;
        if first && f.drop_every.is_some_and(|n| n > 0 && seqno.is_multiple_of(n)) {
            return Ok(());
        }
        let copies = if f
            .duplicate_every
            .is_some_and(|n| n > 0 && seqno.is_multiple_of(n))
        {
            2
        } else {
            1
        };
        let mut out = std::mem::take(&mut self.buf);
        encode(&mut out, m.msg_type, seqno, m.offset, m.payload);
        for _ in 0..copies {
            self.sock.send_to(&out, self.dest)?;
            self.report.sent += 1;
        }
        self.buf = out;
        Ok(())
    }

    fn send_burst(&mut self, msgs: &[Msg<'_>]) -> io::Result<()> {
        let base = self.seqno;
        let n = msgs.len();
        let mut acked = vec![false; n];
        let mut order: Vec<usize> = (0..n).collect();
        if self.cfg.faults.reverse_bursts {
            order.reverse();
        }
        for &i in &order {
            self.transmit(&msgs[i], base + i as u32, true)?;
        }
        let mut retries = 0;
        loop {
            let deadline = Instant::now() + self.cfg.retransmit_after;
            if let Some(delay) = self.cfg.poll_delay {
                // debugnet_send: `while (rcvd_acks != want_acks) { if (polls++ > npolls) retransmit;
                // debugnet_network_poll(); DELAY(500); }`.
                while acked.iter().any(|a| !a) && Instant::now() < deadline {
                    self.poll_acks(|seqno| {
                        if let Some(i) = seqno.checked_sub(base).map(|d| d as usize)
                            && let Some(a) = acked.get_mut(i)
                        {
                            *a = true;
                        }
                    })?;
                    busy_delay(delay);
                }
            }
            while acked.iter().any(|a| !a) {
                match self.recv_ack(deadline)? {
                    Some((seqno, _)) => {
                        if let Some(i) = seqno.checked_sub(base).map(|d| d as usize)
                            && i < n
                        {
                            acked[i] = true;
                        }
                    }
                    None => break,
                }
            }
            if acked.iter().all(|a| *a) {
                self.seqno = base + n as u32;
                return Ok(());
            }
            retries += 1;
            if retries > self.cfg.retries {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "netdump: no ack from the server",
                ));
            }
            for &i in &order {
                if !acked[i] {
                    self.report.retransmits += 1;
                    self.transmit(&msgs[i], base + i as u32, false)?;
                }
            }
        }
    }
}

/// The kernel's `DELAY(d)`, a busy wait: sleeps through most of it (a user-space spin would take the CPU the
/// receiver needs on a small machine) and spins the last stretch, which the sleep's timer slack would overshoot.
fn busy_delay(d: Duration) {
    let until = Instant::now() + d;
    let slack = Duration::from_micros(100);
    if d > slack {
        std::thread::sleep(d - slack);
    }
    while Instant::now() < until {
        std::hint::spin_loop();
    }
}
