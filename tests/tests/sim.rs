//! Deterministic simulation: client-core against the receiver's pure session logic over a virtual link with
//! virtual time (loss, duplication, reordering, delay, a netdumpd-like 128 KiB socket buffer), in the style of
//! quinn-proto's test `Pair`. Nothing here reads a clock or opens a socket, so every run is reproducible from
//! its seed; a failure message names the seed.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::net::SocketAddr;
use std::time::Duration;

use sealdump_client_core::{
    Buffers, Client, Config, Event, FailReason, Instant, Mode, SlotState, Stats, TAG_LEN, chunk_buffer_len,
    seal, tag_slots,
};
use sealdump_crypto::X25519Secret;
use sealdump_crypto::seal::TrailerStatus;
use sealdump_receiver::session::{self, HeraldDecision, Session, SessionConfig};
use sealdump_tests::sim::{MemoryDump, SimRng, TestCryptoRng, open_sealed};

const CLIENT: &str = "10.0.0.2:20024";
const HERALD: &str = "10.0.0.1:20023";
const SESSION_PORT: &str = "10.0.0.1:41234";
/// Virtual-time cap: any run still going after this is a hang.
const MAX_VIRTUAL_TIME: Duration = Duration::from_secs(3600);

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

#[derive(Clone, Copy, Debug)]
struct Link {
    /// One-way base delay.
    delay: Duration,
    /// Extra uniform random delay per datagram; larger than the packet spacing it reorders.
    jitter: Duration,
    /// Loss probability per datagram, each direction.
    loss: f64,
    /// Probability that a datagram arrives twice.
    duplicate: f64,
}

impl Link {
    const CLEAN: Link = Link {
        delay: Duration::from_micros(100),
        jitter: Duration::ZERO,
        loss: 0.0,
        duplicate: 0.0,
    };
}

struct Datagram {
    from: SocketAddr,
    to: SocketAddr,
    bytes: Vec<u8>,
}

/// The virtual network: datagrams in flight ordered by arrival time (ties by send order).
struct Network {
    link: Link,
    rng: SimRng,
    order: u64,
    queue: BinaryHeap<Reverse<(u64, u64)>>,
    slots: std::collections::HashMap<u64, Datagram>,
    sent: u64,
}

impl Network {
    fn new(link: Link, seed: u64) -> Self {
        Network {
            link,
            rng: SimRng(seed),
            order: 0,
            queue: BinaryHeap::new(),
            slots: Default::default(),
            sent: 0,
        }
    }

    fn send(&mut self, now: u64, from: SocketAddr, to: SocketAddr, bytes: &[u8]) {
        self.sent += 1;
        if self.rng.chance(self.link.loss) {
            return;
        }
        let copies = if self.rng.chance(self.link.duplicate) {
            2
        } else {
            1
        };
        for _ in 0..copies {
            let jitter = self.rng.below(self.link.jitter.as_micros() as u64 + 1);
            let at = now + self.link.delay.as_micros() as u64 + jitter;
            self.order += 1;
            self.queue.push(Reverse((at, self.order)));
            self.slots.insert(
                self.order,
                Datagram {
                    from,
                    to,
                    bytes: bytes.to_vec(),
                },
            );
        }
    }

    fn next_at(&self) -> Option<u64> {
        self.queue.peek().map(|Reverse((at, _))| *at)
    }

    fn pop_due(&mut self, now: u64) -> Option<Datagram> {
        let Reverse((at, order)) = *self.queue.peek()?;
        if at > now {
            return None;
        }
        self.queue.pop();
        self.slots.remove(&order)
    }
}

/// A receiver around `sealdump_receiver::session`, acking like netdumpd from a per-session port, optionally
/// reading through a bounded socket buffer at a fixed service time per datagram.
struct Receiver {
    herald_addr: SocketAddr,
    session_addr: SocketAddr,
    session: Option<Session>,
    herald_path: Option<Vec<u8>>,
    dump: MemoryDump,
    /// Stops answering (and reading) at this virtual time.
    dies_at: Option<u64>,
    /// Socket buffer: capacity in bytes (None = unbounded, no service time).
    buffer_limit: Option<usize>,
    service: Duration,
    backlog: VecDeque<Datagram>,
    backlog_bytes: usize,
    next_service: u64,
    buffer_drops: u64,
    late_heralds: u64,
    /// Stops reading for `.1` every `.0` (a receiver blocked on its disk); needs `buffer_limit`.
    stall: Option<(Duration, Duration)>,
}

impl Receiver {
    fn new(session_addr: SocketAddr) -> Self {
        Receiver {
            herald_addr: addr(HERALD),
            session_addr,
            session: None,
            herald_path: None,
            dump: MemoryDump::default(),
            dies_at: None,
            buffer_limit: None,
            service: Duration::ZERO,
            backlog: VecDeque::new(),
            backlog_bytes: 0,
            next_service: 0,
            buffer_drops: 0,
            late_heralds: 0,
            stall: None,
        }
    }

    fn dead(&self, now: u64) -> bool {
        self.dies_at.is_some_and(|t| now >= t)
    }

    fn arrive(&mut self, now: u64, d: Datagram, net: &mut Network) {
        if self.dead(now) {
            return;
        }
        match self.buffer_limit {
            None => self.process(now, d, net),
            Some(limit) => {
                // Kernel socket buffers count a whole mbuf cluster per small datagram.
                let cost = d.bytes.len().max(2048);
                if self.backlog_bytes + cost > limit {
                    self.buffer_drops += 1;
                    return;
                }
                if self.backlog.is_empty() {
                    self.next_service = self.next_service.max(now) + self.service.as_micros() as u64;
                }
                self.backlog_bytes += cost;
                self.backlog.push_back(d);
            }
        }
    }

    fn next_at(&self) -> Option<u64> {
        (!self.backlog.is_empty()).then_some(self.next_service)
    }

    fn serve(&mut self, now: u64, net: &mut Network) {
        while !self.backlog.is_empty() && self.next_service <= now && !self.dead(now) {
            if let Some((every, length)) = self.stall {
                let (every, length) = (every.as_micros() as u64, length.as_micros() as u64);
                if self.next_service % every < length {
                    self.next_service += length - self.next_service % every;
                    continue;
                }
            }
            let d = self.backlog.pop_front().unwrap();
            self.backlog_bytes -= d.bytes.len().max(2048);
            let at = self.next_service;
            self.process(at, d, net);
            self.next_service = at + self.service.as_micros() as u64;
        }
    }

    fn ack(&self, now: u64, net: &mut Network, from: SocketAddr, to: SocketAddr, seqno: u32) {
        net.send(now, from, to, &seqno.to_be_bytes());
    }

    fn process(&mut self, now: u64, d: Datagram, net: &mut Network) {
        let t = session::Instant::from_micros(now);
        if d.to == self.herald_addr
            && let Ok(herald) = session::parse_herald(&d.bytes)
        {
            match self.session.as_mut() {
                None => {
                    self.herald_path = herald.path.map(<[u8]>::to_vec);
                    self.session = Some(Session::new(SessionConfig::default(), t, d.from, &herald));
                    self.ack(now, net, self.session_addr, d.from, herald.seqno);
                }
                // The client sends nothing but heralds before the herald's ack, so a herald behind session
                // traffic is the link's duplicate (netdumpd would restart the session; the model ignores it).
                Some(s) if s.stats().packets > 0 => self.late_heralds += 1,
                Some(s) => match s.handle_herald(t, d.from, &herald) {
                    HeraldDecision::Reack { seqno } => self.ack(now, net, self.session_addr, d.from, seqno),
                    HeraldDecision::Restart | HeraldDecision::Ignore => {
                        panic!("restart without session traffic")
                    }
                },
            }
            return;
        }
        if d.to != self.session_addr {
            return;
        }
        let Some(s) = self.session.as_mut() else { return };
        let seqno = self.dump.apply(s.handle_datagram(t, d.from, &d.bytes));
        self.ack(now, net, self.session_addr, d.from, seqno);
    }
}

/// A dump-like payload: pseudo-random pages, text-like pages and zero pages.
fn dump_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut rng = SimRng(seed);
    let mut out = Vec::with_capacity(len);
    while out.len() < len {
        let page: Vec<u8> = match rng.below(3) {
            0 => (0..4096).map(|_| rng.next_u64() as u8).collect(),
            1 => b"panic: sealdump simulation; "
                .iter()
                .cycle()
                .take(4096)
                .copied()
                .collect(),
            _ => vec![0; 4096],
        };
        out.extend_from_slice(&page);
    }
    out.truncate(len);
    out
}

struct Recipient {
    secret: X25519Secret,
    public: [u8; 32],
}

fn recipient(byte: u8) -> Recipient {
    let secret = X25519Secret::from_bytes([byte; 32]);
    let public = secret.public_key();
    Recipient { secret, public }
}

#[derive(Clone, Copy)]
struct Scenario {
    seed: u64,
    link: Link,
    len: usize,
    sealed: bool,
    window: usize,
    payload: usize,
    chunk_shift: u8,
    give_up_after: Duration,
    /// The dump source given to the client differs from the bytes written (every byte flipped): a re-read must
    /// end the dump rather than send them.
    changed_source: bool,
}

impl Scenario {
    fn new(seed: u64, link: Link) -> Self {
        Scenario {
            seed,
            link,
            len: 1_000_000 + 123,
            sealed: true,
            window: 256,
            payload: 1448,
            chunk_shift: 16,
            give_up_after: Duration::from_secs(10),
            changed_source: false,
        }
    }
}

struct RunResult {
    outcome: Event,
    end_time: u64,
    stats: Stats,
    receiver: Receiver,
    data: Vec<u8>,
}

fn run(sc: Scenario, mut receiver: Receiver) -> RunResult {
    let data = dump_bytes(sc.len, sc.seed ^ 0xd00d);
    let rcpt = recipient(7);
    let recipients = [seal::Recipient::X25519 { public: rcpt.public }];
    let mode = if sc.sealed {
        Mode::Sealed {
            params: seal::Params {
                chunk_shift: sc.chunk_shift,
                time: 1_700_000_000,
                ..seal::Params::default()
            },
            recipients: &recipients,
            dump_key: None,
            metadata: seal::Metadata {
                hostname: b"simhost",
                kernel_version: b"FreeBSD 14.1-RELEASE\n",
                panic_string: b"sim panic",
                architecture: b"amd64",
                expected_length: sc.len as u64,
                host_uuid: [0x5a; 16],
            },
        }
    } else {
        Mode::Plain
    };
    let chunk_size = if sc.sealed {
        1usize << sc.chunk_shift
    } else {
        sealdump_client_core::PLAIN_CHUNK_SIZE
    };
    let mut slot_state = vec![SlotState::EMPTY; sc.window];
    let mut chunks = vec![0u8; chunk_buffer_len(chunk_size)];
    let mut header = vec![0u8; 4096];
    let mut tags = vec![[0u8; TAG_LEN]; tag_slots(sc.window, sc.payload, chunk_size)];
    let buffers = Buffers {
        slot_state: &mut slot_state,
        chunks: &mut chunks,
        header: &mut header,
        tags: &mut tags,
    };
    let source: Vec<u8> = if sc.changed_source {
        data.iter().map(|b| b ^ 1).collect()
    } else {
        data.clone()
    };
    let config = Config {
        herald_path: b"sim/dumps",
        payload_size: sc.payload,
        window: sc.window,
        give_up_after: sc.give_up_after,
        ..Config::new(addr(HERALD), mode)
    };
    let mut rng = TestCryptoRng(SimRng(sc.seed));
    let mut client = Client::new(config, buffers, &mut rng, Instant::from_micros(0)).unwrap();
    let mut net = Network::new(sc.link, sc.seed.wrapping_mul(31) + 1);
    let client_addr = addr(CLIENT);
    let mut kdh = [0u8; 512];
    sealdump_wire::kdh::Repr {
        magic: sealdump_wire::kdh::Magic::Kernel,
        architecture: b"amd64",
        version: 4,
        architecture_version: 2,
        dump_length: sc.len as u64,
        dump_time: 1_700_000_000,
        dump_key_size: 0,
        block_size: 4096,
        hostname: b"simhost",
        version_string: b"FreeBSD 14.1-RELEASE\n",
        panic_string: b"sim panic",
        compression: 0,
        dump_extent: sc.len as u64,
        parity_ok: true,
    }
    .emit(&mut kdh)
    .unwrap();

    let mut now = 0u64;
    let mut written = 0;
    let mut finished = false;
    let mut buf = vec![0u8; 70_000];
    // Every resend must repeat its first transmission byte for byte (re-read and re-sealed chunks included).
    let mut first_sends: std::collections::HashMap<u32, Vec<u8>> = Default::default();
    let mut steps = 0u64;
    loop {
        steps += 1;
        assert!(steps < 50_000_000, "seed {}: runaway loop", sc.seed);
        // Feed and send until neither moves, as a real sender does between waits: sending frees chunk buffers
        // for more data at the same instant (with no serialization delay, waiting for the next event instead
        // would cap a lossless run at two chunks per round trip).
        let t = Instant::from_micros(now);
        loop {
            let mut progress = false;
            while written < data.len() {
                let n = client.write(&data[written..]);
                if n == 0 {
                    break;
                }
                written += n;
                progress = true;
            }
            if written == data.len() && !finished {
                client.finish(Some(&kdh));
                finished = true;
                progress = true;
            }
            while let Some(tx) = client.poll_transmit(t, &mut buf, &source[..]) {
                let packet = &buf[..tx.len];
                let seqno = u32::from_be_bytes([packet[4], packet[5], packet[6], packet[7]]);
                let first = first_sends.entry(seqno).or_insert_with(|| packet.to_vec());
                assert!(
                    first == packet,
                    "seed {}: seqno {seqno} resent with other bytes",
                    sc.seed
                );
                net.send(now, client_addr, tx.destination, packet);
                progress = true;
            }
            if !progress {
                break;
            }
        }
        while let Some(ev) = client.poll_event() {
            match ev {
                Event::Connected { server } => assert_eq!(server, receiver.session_addr, "seed {}", sc.seed),
                Event::Done(_) | Event::Failed(_) => {
                    let stats = if let Event::Done(s) = ev {
                        s
                    } else {
                        client.stats()
                    };
                    return RunResult {
                        outcome: ev,
                        end_time: now,
                        stats,
                        receiver,
                        data,
                    };
                }
                _ => {}
            }
        }
        let next = [
            client.poll_timeout().map(Instant::as_micros),
            net.next_at(),
            receiver.next_at(),
        ]
        .into_iter()
        .flatten()
        .min();
        let Some(next) = next else {
            panic!(
                "seed {}: nothing scheduled and no outcome: the client hangs ({client:?})",
                sc.seed
            )
        };
        now = now.max(next);
        assert!(
            now < MAX_VIRTUAL_TIME.as_micros() as u64,
            "seed {}: no outcome after an hour of virtual time",
            sc.seed
        );
        let t = Instant::from_micros(now);
        while let Some(d) = net.pop_due(now) {
            if d.to == client_addr {
                client.handle_datagram(t, d.from, &d.bytes);
            } else {
                receiver.arrive(now, d, &mut net);
            }
        }
        receiver.serve(now, &mut net);
        if client.poll_timeout().is_some_and(|deadline| deadline <= t) {
            client.handle_timeout(t);
        }
    }
}

fn check_delivered(sc: &Scenario, r: &RunResult) {
    let seed = sc.seed;
    assert!(
        matches!(r.outcome, Event::Done(_)),
        "seed {seed}: {:?}",
        r.outcome
    );
    let rx = &r.receiver;
    assert_eq!(
        rx.dump.finished,
        Some(true),
        "seed {seed}: receiver saw FINISHED with no holes"
    );
    assert_eq!(rx.herald_path.as_deref(), Some(&b"sim/dumps"[..]));
    let kdh = sealdump_wire::kdh::Repr::parse(rx.dump.kdh.as_deref().expect("KDH arrived")).unwrap();
    assert_eq!(
        kdh.dump_length,
        rx.dump.core.len() as u64,
        "seed {seed}: KDH names the stored length"
    );
    if sc.sealed {
        assert!(kdh.hostname.is_empty() && kdh.panic_string.is_empty() && kdh.version_string.is_empty());
        assert_eq!(kdh.architecture, b"amd64");
        assert_eq!(kdh.dump_key_size as usize, rx.dump.key.len());
        let (plain, status) = open_sealed(&rx.dump.key, &rx.dump.core, &recipient(7).secret);
        assert_eq!(status, TrailerStatus::Complete);
        assert!(plain == r.data, "seed {seed}: decrypted dump differs");
        // The real header stayed secret: the hostname appears nowhere in clear.
        assert!(!contains(&rx.dump.core, b"simhost") && !contains(&rx.dump.key, b"simhost"));
    } else {
        assert!(rx.dump.key.is_empty());
        assert!(rx.dump.core == r.data, "seed {seed}: plain dump differs");
    }
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// Retransmissions a loss rate can explain: each datagram (and each ack) is lost with p, so a packet needs
/// about 1/(1-p)^2 - 1 resends; allow twice that plus slack for spurious ones (reordering, duplicates).
fn retransmit_budget(first_sends: u64, loss: f64) -> u64 {
    let expected = first_sends as f64 * (1.0 / ((1.0 - loss) * (1.0 - loss)) - 1.0);
    (2.0 * expected) as u64 + first_sends / 20 + 20
}

#[test]
fn clean_link_sealed_and_plain() {
    for sealed in [true, false] {
        let sc = Scenario {
            sealed,
            ..Scenario::new(1, Link::CLEAN)
        };
        let r = run(sc, Receiver::new(addr(SESSION_PORT)));
        check_delivered(&sc, &r);
        assert_eq!(r.stats.retransmits, 0, "no loss, no resend");
        // 1 MB over a 200 µs RTT: the window must keep many packets in flight (stop-and-wait would need
        // ~700 round trips = 140 ms).
        assert!(r.end_time < 60_000, "took {} µs of virtual time", r.end_time);
    }
}

#[test]
fn lossy_links_deliver_byte_identical_dumps() {
    let mut seed = 100;
    for loss in [0.0, 0.01, 0.05, 0.1, 0.2] {
        for (jitter_us, duplicate) in [(0, 0.0), (300, 0.02), (2_000, 0.05)] {
            seed += 1;
            let link = Link {
                delay: Duration::from_micros(200),
                jitter: Duration::from_micros(jitter_us),
                loss,
                duplicate,
            };
            let sc = Scenario {
                len: 400_000 + (seed as usize * 977) % 65_536,
                ..Scenario::new(seed, link)
            };
            let r = run(sc, Receiver::new(addr(SESSION_PORT)));
            check_delivered(&sc, &r);
            let first = r.stats.packets_sent - r.stats.retransmits;
            let budget = retransmit_budget(first, loss);
            assert!(
                r.stats.retransmits <= budget,
                "seed {seed} loss {loss} jitter {jitter_us}: {} retransmits for {first} packets (budget {budget})",
                r.stats.retransmits
            );
            eprintln!(
                "seed {seed} loss {loss:.2} jitter {jitter_us:>4}µs dup {duplicate:.2}: {first} packets, {} resent, \
                 {:.1} ms virtual",
                r.stats.retransmits,
                r.end_time as f64 / 1000.0
            );
        }
    }
}

#[test]
fn small_windows_payloads_and_chunks() {
    let link = Link {
        delay: Duration::from_micros(50),
        jitter: Duration::from_micros(100),
        loss: 0.05,
        duplicate: 0.01,
    };
    for (i, (window, payload, shift, len)) in [
        (2, 512, 12, 50_000),
        (8, 512, 12, 4096 * 5),
        (16, 8192, 16, 300_000),
        (64, 1448, 20, 1 << 20),
        (32, 1448, 16, 0),
    ]
    .into_iter()
    .enumerate()
    {
        let sc = Scenario {
            window,
            payload,
            chunk_shift: shift,
            len,
            ..Scenario::new(500 + i as u64, link)
        };
        let r = run(sc, Receiver::new(addr(SESSION_PORT)));
        check_delivered(&sc, &r);
    }
}

#[test]
fn large_windows_lose_old_chunks_and_read_them_again() {
    // 1024 packets in flight are ~1.5 MB: most losses hit chunks the client no longer buffers, which are read
    // again from the dump and sealed again to the same bytes.
    let mut seed = 1500;
    for (sealed, shift, loss) in [(true, 16, 0.02), (true, 12, 0.05), (false, 16, 0.03)] {
        seed += 1;
        let link = Link {
            delay: Duration::from_millis(2),
            jitter: Duration::from_micros(200),
            loss,
            duplicate: 0.01,
        };
        let sc = Scenario {
            len: 6_000_000 + 4321,
            sealed,
            window: 1024,
            chunk_shift: shift,
            ..Scenario::new(seed, link)
        };
        let r = run(sc, Receiver::new(addr(SESSION_PORT)));
        check_delivered(&sc, &r);
        let first = r.stats.packets_sent - r.stats.retransmits;
        eprintln!(
            "window 1024 sealed {sealed} chunk 2^{shift} loss {loss}: {first} packets, {} resent, {} chunks read \
             again, {:.1} ms virtual",
            r.stats.retransmits,
            r.stats.chunks_reread,
            r.end_time as f64 / 1000.0
        );
        assert!(r.stats.chunks_reread > 0, "seed {seed}: no loss hit an old chunk");
        assert!(r.stats.retransmits <= retransmit_budget(first, loss));
    }
}

#[test]
fn a_dump_source_that_changed_ends_the_dump_before_reusing_a_nonce() {
    let link = Link {
        delay: Duration::from_millis(1),
        loss: 0.05,
        ..Link::CLEAN
    };
    let sc = Scenario {
        len: 3_000_000,
        window: 1024,
        changed_source: true,
        ..Scenario::new(1600, link)
    };
    let r = run(sc, Receiver::new(addr(SESSION_PORT)));
    assert_eq!(r.outcome, Event::Failed(FailReason::SourceChanged));
    assert_eq!(r.stats.chunks_reread, 0, "no changed chunk was used");
    // What the receiver holds authenticates chunk by chunk: nothing sealed from the changed bytes got out.
    let rcpt = recipient(7);
    let view = seal::HeaderView::parse(&r.receiver.dump.key).unwrap();
    let stanza = view.stanzas().next().unwrap();
    let opener = view
        .open(&seal::unwrap_x25519(&rcpt.secret, &stanza, &view).unwrap())
        .unwrap();
    let record = 65_536 + 16;
    let whole = r.receiver.dump.core.len() / record;
    assert!(whole > 0);
    for i in 0..whole {
        let mut chunk = r.receiver.dump.core[i * record..(i + 1) * record].to_vec();
        if chunk.iter().all(|&b| b == 0) {
            continue; // a hole the lost packets left
        }
        if let Ok(n) = opener.open_chunk(i as u64, &mut chunk) {
            assert_eq!(&chunk[..n], &r.data[i * 65_536..i * 65_536 + n], "chunk {i}");
        }
    }
}

/// A 4 MB dump at window `window` over a clean link to a receiver that reads one datagram every 40 µs (~36 MB/s
/// at 1448 bytes, slower than the client sends) through a socket buffer of `buffer` bytes. Returns the run and
/// its first transmissions.
fn run_to_a_slow_receiver(seed: u64, window: usize, buffer: usize) -> (RunResult, u64) {
    let sc = Scenario {
        len: 4_000_000,
        window,
        ..Scenario::new(seed, Link::CLEAN)
    };
    run_to_a_bottleneck(sc, buffer, Duration::from_micros(40))
}

/// Runs `sc` to a receiver that reads one datagram per `service` through a socket buffer of `buffer` bytes.
/// Returns the run and its first transmissions.
fn run_to_a_bottleneck(sc: Scenario, buffer: usize, service: Duration) -> (RunResult, u64) {
    let mut rx = Receiver::new(addr(SESSION_PORT));
    rx.buffer_limit = Some(buffer);
    rx.service = service;
    let r = run(sc, rx);
    check_delivered(&sc, &r);
    let first = r.stats.packets_sent - r.stats.retransmits;
    eprintln!(
        "bottleneck, buffer {buffer}, window {}: {first} packets, {} resent, {} buffer drops, {:.1} ms \
         (ideal {:.1} ms)",
        sc.window,
        r.stats.retransmits,
        r.receiver.buffer_drops,
        r.end_time as f64 / 1000.0,
        first as f64 * service.as_secs_f64() * 1000.0
    );
    (r, first)
}

#[test]
fn stock_netdumpd_buffer_is_not_overrun_into_collapse() {
    // netdumpd reads its per-session socket (128 KiB SO_RCVBUF) at its own pace, slower than the client can send.
    // A window of 1024 (1.5 MB) is far beyond that buffer: congestion control, not the window, must keep the
    // losses small.
    for window in [256, 1024] {
        let (r, first) = run_to_a_slow_receiver(900, window, 128 * 1024);
        let label = format!("window {window}");
        assert_few_resends_and_busy(&label, &r, first, 10, Duration::from_micros(40), 1.5);
    }
}

#[test]
fn a_receiver_stalling_on_its_disk_is_waited_for_not_flooded() {
    // Every 50 ms the receiver stops reading for 20 ms (well above the RTO): the client's timer fires
    // spuriously, the late acks undo the collapse, and the socket buffer absorbs the rest.
    let sc = Scenario {
        len: 3_000_000,
        ..Scenario::new(901, Link::CLEAN)
    };
    let mut rx = Receiver::new(addr(SESSION_PORT));
    rx.buffer_limit = Some(256 * 1024);
    rx.service = Duration::from_micros(10);
    rx.stall = Some((Duration::from_millis(50), Duration::from_millis(20)));
    let r = run(sc, rx);
    check_delivered(&sc, &r);
    let first = r.stats.packets_sent - r.stats.retransmits;
    eprintln!(
        "stalling receiver: {first} packets, {} resent, {} buffer drops, {:.1} ms",
        r.stats.retransmits,
        r.receiver.buffer_drops,
        r.end_time as f64 / 1000.0
    );
    assert!(
        r.stats.retransmits <= first / 5,
        "{} resends for {first} packets",
        r.stats.retransmits
    );
    // ~21 ms of reading at 10 µs per datagram plus the stall at t = 0: ideal ~41 ms.
    assert!(r.end_time < 80_000, "took {} µs", r.end_time);
}

#[test]
fn acks_from_the_herald_port_work_too() {
    // Some receivers answer from 20023 itself; the client then keeps using it.
    let sc = Scenario {
        len: 200_000,
        ..Scenario::new(42, Link::CLEAN)
    };
    let r = run(sc, Receiver::new(addr(HERALD)));
    check_delivered(&sc, &r);
}

#[test]
fn dead_receiver_fails_at_the_deadline() {
    let give_up = Duration::from_secs(5);
    // Never answers: NoServer exactly when the deadline passes.
    let sc = Scenario {
        give_up_after: give_up,
        ..Scenario::new(7, Link::CLEAN)
    };
    let mut rx = Receiver::new(addr(SESSION_PORT));
    rx.dies_at = Some(0);
    let r = run(sc, rx);
    assert_eq!(r.outcome, Event::Failed(FailReason::NoServer));
    assert_eq!(r.end_time, give_up.as_micros() as u64);
    assert!(
        r.stats.packets_sent < 20,
        "herald retries back off: {}",
        r.stats.packets_sent
    );

    // Dies mid-dump (lossy link): Timeout within give_up of the last ack, resends bounded meanwhile.
    let link = Link {
        delay: Duration::from_micros(200),
        jitter: Duration::from_micros(200),
        loss: 0.05,
        duplicate: 0.0,
    };
    let sc = Scenario {
        give_up_after: give_up,
        len: 2_000_000,
        ..Scenario::new(8, link)
    };
    let mut rx = Receiver::new(addr(SESSION_PORT));
    let death = 5_000;
    rx.dies_at = Some(death);
    let r = run(sc, rx);
    assert_eq!(r.outcome, Event::Failed(FailReason::Timeout));
    let limit = death + give_up.as_micros() as u64 + 1_000;
    assert!(
        r.end_time >= give_up.as_micros() as u64 && r.end_time <= limit,
        "failed at {} µs",
        r.end_time
    );
    assert!(
        r.stats.retransmits < 2_000,
        "{} resends while the receiver was dead",
        r.stats.retransmits
    );
}

#[test]
fn abort_leaves_an_authentic_aborted_dump() {
    // Drive by hand: write part of the dump, abort, let the link drain.
    let sc = Scenario::new(
        77,
        Link {
            loss: 0.05,
            ..Link::CLEAN
        },
    );
    let rcpt = recipient(7);
    let recipients = [seal::Recipient::X25519 { public: rcpt.public }];
    let mode = Mode::Sealed {
        params: seal::Params::default(),
        recipients: &recipients,
        dump_key: None,
        metadata: seal::Metadata::default(),
    };
    let mut slot_state = vec![SlotState::EMPTY; 64];
    let mut chunks = vec![0u8; chunk_buffer_len(65_536)];
    let mut header = vec![0u8; 4096];
    let mut tags = vec![[0u8; TAG_LEN]; tag_slots(64, 1448, 65_536)];
    let buffers = Buffers {
        slot_state: &mut slot_state,
        chunks: &mut chunks,
        header: &mut header,
        tags: &mut tags,
    };
    let config = Config {
        window: 64,
        ..Config::new(addr(HERALD), mode)
    };
    let mut client = Client::new(
        config,
        buffers,
        &mut TestCryptoRng(SimRng(1)),
        Instant::from_micros(0),
    )
    .unwrap();
    let data = dump_bytes(150_000, 3);
    let mut written = 0;
    let mut rx = Receiver::new(addr(SESSION_PORT));
    let mut net = Network::new(sc.link, 5);
    let mut now = 0u64;
    let mut buf = vec![0u8; 2000];
    let outcome = loop {
        while written < data.len() {
            let n = client.write(&data[written..]);
            if n == 0 {
                break;
            }
            written += n;
        }
        if written == data.len() {
            client.abort();
        }
        while let Some(tx) = client.poll_transmit(Instant::from_micros(now), &mut buf, &data[..]) {
            net.send(now, addr(CLIENT), tx.destination, &buf[..tx.len]);
        }
        if let Some(ev) = std::iter::from_fn(|| client.poll_event())
            .find(|e| matches!(e, Event::Done(_) | Event::Failed(_)))
        {
            break ev;
        }
        let next = [client.poll_timeout().map(Instant::as_micros), net.next_at()]
            .into_iter()
            .flatten()
            .min()
            .unwrap();
        now = now.max(next);
        while let Some(d) = net.pop_due(now) {
            if d.to == addr(CLIENT) {
                client.handle_datagram(Instant::from_micros(now), d.from, &d.bytes);
            } else {
                rx.arrive(now, d, &mut net);
            }
        }
        if client.poll_timeout().is_some_and(|t| t.as_micros() <= now) {
            client.handle_timeout(Instant::from_micros(now));
        }
    };
    assert_eq!(outcome, Event::Failed(FailReason::Aborted));
    assert_eq!(rx.dump.finished, None, "no FINISHED after an abort");
    assert!(rx.dump.kdh.is_none());
    let (plain, status) = open_sealed(&rx.dump.key, &rx.dump.core, &rcpt.secret);
    assert_eq!(status, TrailerStatus::Aborted);
    assert!(
        plain == data,
        "everything written before the abort is delivered and authentic"
    );
}

#[test]
fn random_scenarios_from_many_seeds() {
    // Each seed draws its own link, window, payload, chunk size and dump length.
    for seed in 1000..1024u64 {
        let mut r = SimRng(seed);
        let link = Link {
            delay: Duration::from_micros(10 + r.below(2_000)),
            jitter: Duration::from_micros(r.below(1_000)),
            loss: r.below(21) as f64 / 100.0,
            duplicate: r.below(6) as f64 / 100.0,
        };
        let payload = [512, 1448, 4096, 8192][r.below(4) as usize];
        let sc = Scenario {
            len: r.below(300_000) as usize,
            sealed: r.below(4) != 0,
            window: [2, 3, 16, 64, 256][r.below(5) as usize],
            payload,
            chunk_shift: 12 + r.below(5) as u8,
            ..Scenario::new(seed, link)
        };
        let result = run(sc, Receiver::new(addr(SESSION_PORT)));
        check_delivered(&sc, &result);
        let first = result.stats.packets_sent - result.stats.retransmits;
        let budget = retransmit_budget(first, link.loss);
        assert!(
            result.stats.retransmits <= budget,
            "seed {seed} {link:?}: {} retransmits for {first} packets (budget {budget})",
            result.stats.retransmits
        );
    }
}

/// Rates in MB/s of virtual time of a `len`-byte dump over a 1 ms (each way) link, lossless and then with `loss` in
/// each direction, at window `window`.
fn lossless_and_lossy_rates(seed: u64, window: usize, loss: f64, len: usize) -> [f64; 2] {
    [0.0, loss].map(|loss| {
        let link = Link {
            delay: Duration::from_millis(1),
            jitter: Duration::ZERO,
            loss,
            duplicate: 0.0,
        };
        let sc = Scenario {
            len,
            window,
            give_up_after: Duration::from_secs(60),
            ..Scenario::new(seed, link)
        };
        let r = run(sc, Receiver::new(addr(SESSION_PORT)));
        check_delivered(&sc, &r);
        let rate = sc.len as f64 / r.end_time as f64;
        eprintln!(
            "window {window}, loss {loss} each way: {rate:.1} MB/s in virtual time, {} resent, {} chunks read \
             again, cwnd {}",
            r.stats.retransmits, r.stats.chunks_reread, r.stats.cwnd
        );
        rate
    })
}

/// The loss response, free of CPU limits: on a 1 ms (each way) link with 1 % random loss in each direction, a
/// window-1024 dump keeps at least half its lossless rate in virtual time (docs/performance.md measures the same
/// on real sockets, where the CPUs of the proxy and both ends also count).
#[test]
fn one_percent_random_loss_keeps_half_the_lossless_rate() {
    let rates = lossless_and_lossy_rates(7, 1024, 0.01, 8 << 20);
    assert!(
        rates[1] >= 0.5 * rates[0],
        "1 % loss: {:.1} MB/s against {:.1} lossless",
        rates[1],
        rates[0]
    );
}

/// A bottleneck whose buffer is too shallow to show in the RTT (16 KiB, drained at 40 µs a datagram): its losses
/// look random, and the controller must still keep them few rather than take them for a lossy link. This is why
/// the random-loss limit is 5 % and not higher (at 15 % a real 5 %-lossy link ran 25× faster, but here the
/// resends went from about 9 % of the packets to 22 %, each one a chunk sealed again).
#[test]
fn a_shallow_buffer_bottleneck_is_not_flooded() {
    let (r, first) = run_to_a_slow_receiver(902, 4096, 16 * 1024);
    assert_few_resends_and_busy("16 KiB", &r, first, 15, Duration::from_micros(40), 1.2);
}

/// Run `label`: at most `resend_percent` % of the `first` transmissions were sent again, and the bottleneck,
/// which takes `service` per datagram, was kept busy: the run took less than `slack` times its ideal time.
fn assert_few_resends_and_busy(
    label: &str,
    r: &RunResult,
    first: u64,
    resend_percent: u64,
    service: Duration,
    slack: f64,
) {
    assert!(
        r.stats.retransmits <= first * resend_percent / 100,
        "{label}: {} resends for {first} packets",
        r.stats.retransmits
    );
    let ideal_us = first as f64 * service.as_micros() as f64;
    assert!(
        (r.end_time as f64) < ideal_us * slack,
        "{label}: keeps the bottleneck busy: {} µs",
        r.end_time
    );
}

/// A bottleneck with a shallow buffer (16 KiB, 100 packets in flight) on a link that also loses 2 % each way: the
/// loss-response test must not take it for a lossy link and flood the buffer (a first draft, whose long-run loss
/// average could not fall below 3.1 %, dropped 1.6-5.8 % of the packets at the buffer; 0.3-0.5 % before the test
/// existed, and now).
#[test]
fn a_shallow_bottleneck_on_a_lossy_link_is_not_flooded() {
    let link = Link {
        delay: Duration::from_micros(500),
        loss: 0.02,
        ..Link::CLEAN
    };
    for seed in 70..74 {
        let sc = Scenario {
            len: 32 << 20,
            window: 4096,
            ..Scenario::new(seed, link)
        };
        let (r, first) = run_to_a_bottleneck(sc, 16 * 1024, Duration::from_micros(10));
        assert!(
            r.receiver.buffer_drops <= first / 100,
            "seed {seed}: {} buffer drops",
            r.receiver.buffer_drops
        );
        // (Its time varies with the seed, 1.4-3.9× the ideal, before and after the test existed.)
        assert!(
            r.stats.retransmits <= first * 8 / 100,
            "seed {seed}: {} resends for {first} packets",
            r.stats.retransmits
        );
    }
}

/// 5 % random loss each way (10 % of datagrams or their acks) over a 64 MiB dump: the window must not ratchet
/// down to its floor. Gentle cuts, even floored at the delivered rate, took it there (14.6 MB/s against 1 525
/// lossless, 1 %); the loss-response test tells the lossy link from a bottleneck and keeps the window (150 MB/s).
#[test]
fn five_percent_random_loss_each_way_keeps_a_useful_rate() {
    let rates = lossless_and_lossy_rates(8, 4096, 0.05, 64 << 20);
    assert!(
        rates[1] >= 0.05 * rates[0],
        "5 % loss: {:.1} MB/s against {:.1} lossless",
        rates[1],
        rates[0]
    );
}
