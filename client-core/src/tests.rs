//! Unit tests of the client through its public API: handshake, window, loss recovery, back-pressure,
//! header split, deadlines.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::boxed::Box;
use std::string::ToString;
use std::vec;
use std::vec::Vec;

use rand::SeedableRng;
use rand::rngs::StdRng;
use sealdump_wire::netdump::Packet;

use crate::*;

const SERVER: &str = "192.0.2.10:20023";
const SESSION: &str = "192.0.2.10:40000";

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn buffers(slots: usize, chunk_size: usize, tags: usize) -> Buffers<'static> {
    buffers_with_chunks(slots, chunk_size, tags, 2)
}

fn buffers_with_chunks(
    slots: usize,
    chunk_size: usize,
    tags: usize,
    chunk_buffers: usize,
) -> Buffers<'static> {
    Buffers {
        slot_state: Box::leak(vec![SlotState::EMPTY; slots].into_boxed_slice()),
        chunks: Box::leak(vec![0u8; chunk_buffers_len(chunk_buffers, chunk_size)].into_boxed_slice()),
        header: Box::leak(vec![0u8; HEADER_BUFFER_LEN].into_boxed_slice()),
        tags: Box::leak(vec![[0u8; TAG_LEN]; tags].into_boxed_slice()),
    }
}

/// A dump of one repeated byte (what most tests write).
struct Constant(u8);

impl DumpSource for Constant {
    fn read_at(&self, _offset: u64, buf: &mut [u8]) -> Result<(), SourceError> {
        buf.fill(self.0);
        Ok(())
    }
}

/// [`Constant`] with one unreadable 4 KiB range (`Some(k)`: bytes `4096 k ..`): a dump whose memory cannot all be
/// read again.
struct Holey(Constant, Option<u64>);

impl DumpSource for Holey {
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<(), SourceError> {
        let end = offset + buf.len() as u64;
        match self.1 {
            Some(k) if offset < (k + 1) * 4096 && end > k * 4096 => Err(SourceError::Io),
            _ => self.0.read_at(offset, buf),
        }
    }
}

/// A source that has nothing: tests whose retransmissions never leave the two chunk buffers.
const NO_SOURCE: &[u8] = &[];

fn plain_client(slots: usize, window: usize, payload: usize) -> Client<'static> {
    plain_client_with_chunks(slots, window, payload, 2)
}

fn plain_client_with_chunks(
    slots: usize,
    window: usize,
    payload: usize,
    chunk_buffers: usize,
) -> Client<'static> {
    let config = Config {
        payload_size: payload,
        window,
        herald_path: b"crash",
        ..Config::new(addr(SERVER), Mode::Plain)
    };
    Client::new(
        config,
        buffers_with_chunks(slots, PLAIN_CHUNK_SIZE, 0, chunk_buffers),
        &mut StdRng::seed_from_u64(1),
        Instant::from_millis(0),
    )
    .unwrap()
}

/// One sent datagram, decoded.
#[derive(Debug, Clone)]
struct Sent {
    to: SocketAddr,
    msg_type: u32,
    seqno: u32,
    offset: u64,
    payload: Vec<u8>,
}

fn drain(client: &mut Client<'_>, now: Instant) -> Vec<Sent> {
    drain_from(client, now, NO_SOURCE)
}

fn drain_from<S: DumpSource + ?Sized>(client: &mut Client<'_>, now: Instant, source: &S) -> Vec<Sent> {
    let mut out = Vec::new();
    let mut buf = [0u8; 70_000];
    while let Some(t) = client.poll_transmit(now, &mut buf, source) {
        let p = Packet::new_checked(&buf[..t.len]).expect("client sends well-formed messages");
        out.push(Sent {
            to: t.destination,
            msg_type: p.msg_type(),
            seqno: p.seqno(),
            offset: p.offset(),
            payload: p.payload().to_vec(),
        });
    }
    out
}

fn ack(client: &mut Client<'_>, now: Instant, from: &str, seqno: u32) {
    client.handle_datagram(now, addr(from), &seqno.to_be_bytes());
}

/// Herald sent and acked from the session port at t = 1 ms.
fn connect(client: &mut Client<'_>) {
    let sent = drain(client, Instant::from_millis(0));
    assert_eq!(sent.len(), 1);
    ack(client, Instant::from_millis(1), SESSION, 1);
}

fn events(client: &mut Client<'_>) -> Vec<Event> {
    core::iter::from_fn(|| client.poll_event()).collect()
}

#[test]
fn herald_learns_the_session_port() {
    let mut c = plain_client(16, 16, 512);
    let sent = drain(&mut c, Instant::from_millis(0));
    assert_eq!(sent.len(), 1, "only the herald before the ack");
    assert_eq!(
        (sent[0].to, sent[0].msg_type, sent[0].seqno, sent[0].offset),
        (addr(SERVER), 1, 1, 0)
    );
    assert_eq!(sent[0].payload, b"crash\0");
    // Not from the server's IP, or not seqno 1, or not exactly 4 bytes: ignored.
    ack(&mut c, Instant::from_millis(1), "192.0.2.99:40000", 1);
    ack(&mut c, Instant::from_millis(1), SESSION, 2);
    c.handle_datagram(Instant::from_millis(1), addr(SESSION), &[0, 0, 0, 1, 0]);
    assert!(events(&mut c).is_empty());
    ack(&mut c, Instant::from_millis(2), SESSION, 1);
    assert_eq!(
        events(&mut c),
        vec![Event::Connected {
            server: addr(SESSION)
        }]
    );
    assert_eq!(c.stats().srtt_us, 2000, "the herald gives the first RTT sample");

    assert_eq!(c.write(&[7u8; 600]), 600);
    c.finish(None);
    let sent = drain(&mut c, Instant::from_millis(3));
    assert!(sent.iter().all(|s| s.to == addr(SESSION)));
    let kinds: Vec<_> = sent
        .iter()
        .map(|s| (s.msg_type, s.seqno, s.offset, s.payload.len()))
        .collect();
    // 600 bytes = 512 + 88 at offsets 0 and 512, then the KDH; FINISHED waits for every other ack.
    assert_eq!(kinds, vec![(3, 2, 0, 512), (3, 3, 512, 88), (4, 4, 0, 512)]);
    // An ack from the herald port once connected is not the session's.
    ack(&mut c, Instant::from_millis(4), SERVER, 2);
    assert!(drain(&mut c, Instant::from_millis(4)).is_empty());
    for s in [2, 3, 4] {
        ack(&mut c, Instant::from_millis(4), SESSION, s);
    }
    let sent = drain(&mut c, Instant::from_millis(4));
    assert_eq!(sent.len(), 1);
    assert_eq!((sent[0].msg_type, sent[0].seqno), (2, 5));
    ack(&mut c, Instant::from_millis(5), SESSION, 5);
    let evs = events(&mut c);
    let Some(Event::Done(stats)) = evs.last() else {
        panic!("no Done: {evs:?}")
    };
    assert_eq!(stats.bytes_written, 600);
    assert_eq!(stats.bytes_acked, 600);
    assert!(c.is_closed());
    assert_eq!(c.poll_timeout(), None);
}

#[test]
fn plain_kdh_is_a_valid_v4_header_with_the_stream_length() {
    let mut c = plain_client(16, 16, 1448);
    connect(&mut c);
    c.write(&[1u8; 5000]);
    c.finish(None);
    let sent = drain(&mut c, Instant::from_millis(2));
    let kdh = sent.iter().find(|s| s.msg_type == 4).unwrap();
    let repr = sealdump_wire::kdh::Repr::parse(&kdh.payload).unwrap();
    assert_eq!(
        (
            repr.version,
            repr.dump_length,
            repr.block_size,
            repr.dump_key_size
        ),
        (4, 5000, 4096, 0)
    );
    assert!(repr.parity_ok);
}

#[test]
fn slow_start_opens_the_window_per_ack_and_window_caps_it() {
    let mut c = plain_client(256, 256, 512);
    connect(&mut c);
    assert_eq!(c.write(&vec![0u8; 200 * 512]), 200 * 512);
    let first = drain(&mut c, Instant::from_millis(2));
    assert_eq!(
        first.len(),
        INITIAL_CWND as usize,
        "slow start begins small (stock netdumpd's 128 KiB buffer)"
    );
    for s in &first {
        ack(&mut c, Instant::from_millis(3), SESSION, s.seqno);
    }
    assert_eq!(c.stats().cwnd, 2 * INITIAL_CWND);
    assert_eq!(
        drain(&mut c, Instant::from_millis(3)).len(),
        2 * INITIAL_CWND as usize
    );

    let mut small = plain_client(32, 8, 512);
    connect(&mut small);
    small.write(&vec![0u8; 32 * 512]);
    assert_eq!(
        drain(&mut small, Instant::from_millis(2)).len(),
        8,
        "the configured window bounds the flight"
    );
}

#[test]
fn three_later_acks_trigger_fast_retransmit() {
    let mut c = plain_client(64, 64, 512);
    connect(&mut c);
    c.write(&vec![0u8; 10 * 512]);
    let sent = drain(&mut c, Instant::from_millis(2));
    assert_eq!(sent.len(), 10);
    let lost = sent[0].seqno;
    // Two later acks are tolerated as reordering.
    ack(&mut c, Instant::from_millis(3), SESSION, sent[1].seqno);
    ack(&mut c, Instant::from_millis(3), SESSION, sent[2].seqno);
    assert!(
        drain(&mut c, Instant::from_millis(3))
            .iter()
            .all(|s| s.seqno != lost)
    );
    ack(&mut c, Instant::from_millis(3), SESSION, sent[3].seqno);
    let again = drain(&mut c, Instant::from_millis(3));
    assert_eq!(
        again.first().map(|s| (s.seqno, s.offset)),
        Some((lost, 0)),
        "resent first, same seqno/offset"
    );
    assert_eq!(c.stats().retransmits, 1);
    assert!(
        c.poll_timeout().unwrap() > Instant::from_millis(3),
        "long before the RTO"
    );
}

/// Connects `c` and sends two 512-byte packets at t = 2 ms (srtt 1 ms).
fn two_packets_at_2ms(c: &mut Client<'_>) -> Vec<Sent> {
    connect(c);
    c.write(&[5u8; 1024]);
    let sent = drain(c, Instant::from_millis(2));
    assert_eq!(sent.len(), 2);
    sent
}

/// Lets `c`'s timers fire (sending what each allows) until a retransmission timeout has fired; returns its time,
/// with the packets it expired not yet sent again.
fn timers_until_a_timeout(c: &mut Client<'_>) -> Instant {
    loop {
        let t = c.poll_timeout().unwrap();
        c.handle_timeout(t);
        if c.stats().timeouts > 0 {
            return t;
        }
        drain(c, t);
    }
}

#[test]
fn probes_resume_once_acks_return_after_a_timeout() {
    let mut c = plain_client(64, 64, 512);
    let sent = two_packets_at_2ms(&mut c);
    let now = timers_until_a_timeout(&mut c);
    // The path answers again: both are acked.
    for s in &sent {
        ack(&mut c, now, SESSION, s.seqno);
    }
    c.handle_timeout(now);
    assert!(drain(&mut c, now).is_empty());
    // New data whose acks never come: the probe goes first again, before another timeout.
    c.write(&[2u8; 4 * 512]);
    assert_eq!(drain(&mut c, now).len(), 4);
    let (probes, timeouts) = (c.stats().probes, c.stats().timeouts);
    let t = c.poll_timeout().unwrap();
    c.handle_timeout(t);
    assert_eq!(drain(&mut c, t).len(), 1);
    assert_eq!((c.stats().probes, c.stats().timeouts), (probes + 1, timeouts));
}

#[test]
fn no_datagram_goes_out_after_a_probe_fails_the_dump() {
    let mut c = sealed_client(1448, x25519_recipients(), None);
    connect(&mut c); // srtt 1 ms
    let data = pseudo_random(4 * 4096);
    let t = Instant::from_millis(2);
    assert_eq!(c.write(&data[..8192]), 8192);
    drain_from(&mut c, t, &data[..]);
    assert_eq!(c.write(&data[8192..12_288]), 4096);
    // One more datagram only (the caller's batch was full): the newest packet spans chunks 1 and 2.
    let mut buf = [0u8; 70_000];
    assert!(c.poll_transmit(t, &mut buf, &data[..]).is_some());
    let probe = c.poll_timeout().unwrap();
    c.handle_timeout(probe);
    // Chunk 3 takes chunk 1's buffer, and the source cannot give chunk 1 back: rebuilding the probe fails the
    // dump, and the same call must not send anything else.
    assert_eq!(c.write(&data[12_288..]), 4096);
    assert!(c.poll_transmit(probe, &mut buf, NO_SOURCE).is_none());
    assert!(c.is_closed());
    assert_eq!(
        events(&mut c).last(),
        Some(&Event::Failed(FailReason::Source(SourceError::Unavailable)))
    );
}

#[test]
fn a_probe_then_the_rto_resend_and_back_off() {
    let mut c = plain_client(16, 16, 512);
    let sent = two_packets_at_2ms(&mut c);
    let cwnd = c.stats().cwnd;
    // srtt 1 ms: the tail-loss probe fires after two round trips and sends the newest packet again, without
    // touching the window.
    let probe = c.poll_timeout().unwrap();
    assert_eq!(probe, Instant::from_millis(4));
    c.handle_timeout(probe);
    let again = drain(&mut c, probe);
    assert_eq!(
        again.iter().map(|s| s.seqno).collect::<Vec<_>>(),
        vec![sent[1].seqno]
    );
    assert_eq!((c.stats().probes, c.stats().cwnd), (1, cwnd));
    // rto = 1 ms + 4 * 0.5 ms = 3 ms, floored at MIN_RTO, counted from the first send; the probed packet was sent
    // since, so only the other one expires.
    let t1 = c.poll_timeout().unwrap();
    assert_eq!(t1, Instant::from_millis(2) + MIN_RTO);
    c.handle_timeout(t1);
    let again = drain(&mut c, t1);
    assert_eq!(
        again.iter().map(|s| s.seqno).collect::<Vec<_>>(),
        vec![sent[0].seqno]
    );
    assert_eq!(c.stats().cwnd, MIN_CWND);
    // No probe after a timeout: the backed-off timer paces a path that has gone quiet.
    let t2 = c.poll_timeout().unwrap();
    assert_eq!(t2, probe + MIN_RTO * 2, "backoff doubles the RTO");
    c.handle_timeout(t2);
    let again = drain(&mut c, t2);
    assert_eq!(
        again.iter().map(|s| s.seqno).collect::<Vec<_>>(),
        vec![sent[1].seqno]
    );
    let stats = c.stats();
    assert_eq!((stats.retransmits, stats.probes, stats.timeouts), (3, 1, 2));
}

#[test]
fn a_lost_tail_is_found_by_the_probe_long_before_the_rto() {
    let mut c = plain_client(64, 64, 512);
    connect(&mut c); // srtt 1 ms
    c.write(&vec![0u8; 8 * 512]);
    let t = Instant::from_millis(2);
    let sent = drain(&mut c, t);
    assert_eq!(sent.len(), 8);
    // The last two are lost: no later ack can reveal them.
    let acked_at = t + Duration::from_millis(1);
    for s in &sent[..6] {
        ack(&mut c, acked_at, SESSION, s.seqno);
    }
    c.handle_timeout(acked_at);
    assert!(drain(&mut c, acked_at).is_empty());
    let probe = c.poll_timeout().unwrap();
    assert_eq!(probe, acked_at + Duration::from_millis(2));
    c.handle_timeout(probe);
    let again = drain(&mut c, probe);
    assert_eq!(
        again.iter().map(|s| s.seqno).collect::<Vec<_>>(),
        vec![sent[7].seqno]
    );
    // The probe's ack shows the other one lost: it is resent after the time threshold, still before the RTO.
    let probe_acked = probe + Duration::from_millis(1);
    ack(&mut c, probe_acked, SESSION, sent[7].seqno);
    let mut now = probe_acked;
    let mut resent = Vec::new();
    while resent.is_empty() {
        now = c.poll_timeout().unwrap();
        c.handle_timeout(now);
        resent = drain(&mut c, now);
    }
    assert_eq!(
        resent.iter().map(|s| s.seqno).collect::<Vec<_>>(),
        vec![sent[6].seqno]
    );
    assert!(now < acked_at + MIN_RTO, "resent at {now:?}");
    let stats = c.stats();
    assert_eq!((stats.retransmits, stats.probes, stats.timeouts), (2, 1, 0));
    assert!(stats.cwnd > MIN_CWND, "no timeout, no collapse");
}

#[test]
fn write_is_back_pressured_by_the_chunk_buffers() {
    let mut c = plain_client(4, 4, 512);
    assert_eq!(
        c.write(&vec![1u8; 200_000]),
        2 * PLAIN_CHUNK_SIZE,
        "two chunk buffers, before the herald is even acked"
    );
    assert_eq!(c.write(&[1u8; 10]), 0);
    connect(&mut c);
    let sent = drain(&mut c, Instant::from_millis(2));
    assert_eq!(sent.len(), 4, "the ring holds four packets");
    ack(&mut c, Instant::from_millis(3), SESSION, sent[1].seqno);
    assert!(
        drain(&mut c, Instant::from_millis(3)).is_empty(),
        "a hole at the ring base blocks new packets"
    );
    ack(&mut c, Instant::from_millis(3), SESSION, sent[0].seqno);
    // The third chunk goes into the first buffer once all of the first chunk was sent.
    let mut packets = sent.len();
    let mut now = Instant::from_millis(3);
    let mut pending: Vec<Sent> = sent[2..].to_vec();
    while packets < PLAIN_CHUNK_SIZE / 512 {
        assert_eq!(c.write(&[1u8; 10]), 0, "after {packets} packets");
        for s in pending.drain(..) {
            ack(&mut c, now, SESSION, s.seqno);
        }
        now = now + Duration::from_millis(1);
        pending = drain(&mut c, now);
        packets += pending.len();
    }
    assert_eq!(packets, PLAIN_CHUNK_SIZE / 512);
    assert_eq!(c.write(&vec![1u8; 100_000]), PLAIN_CHUNK_SIZE);
    assert_eq!(c.stats().bytes_written, 3 * PLAIN_CHUNK_SIZE as u64);
    assert_eq!(c.stats().chunks_reread, 0, "no loss, nothing read again");
}

#[test]
fn dead_receiver_fails_at_the_deadline() {
    let mut c = plain_client(8, 8, 512);
    drain(&mut c, Instant::from_millis(0));
    let mut now = Instant::from_millis(0);
    let mut heralds = 1;
    while let Some(t) = c.poll_timeout() {
        now = t;
        c.handle_timeout(now);
        heralds += drain(&mut c, now).len();
    }
    assert_eq!(now, Instant::from_millis(0) + DEFAULT_GIVE_UP_AFTER);
    assert_eq!(events(&mut c), vec![Event::Failed(FailReason::NoServer)]);
    assert!(heralds < 25, "backed-off herald retries: {heralds}");

    let mut c = plain_client(8, 8, 512);
    connect(&mut c);
    c.write(&[0u8; 100]);
    c.finish(None);
    let mut now = Instant::from_millis(1);
    drain(&mut c, now);
    while let Some(t) = c.poll_timeout() {
        now = t;
        c.handle_timeout(now);
        drain(&mut c, now);
    }
    assert_eq!(now, Instant::from_millis(1) + DEFAULT_GIVE_UP_AFTER);
    assert_eq!(events(&mut c).last(), Some(&Event::Failed(FailReason::Timeout)));
}

#[test]
fn idle_writer_does_not_trip_the_deadline() {
    let mut c = plain_client(8, 8, 512);
    connect(&mut c);
    assert_eq!(c.poll_timeout(), None, "nothing outstanding, nothing to wait for");
    c.write(&[0u8; 512]);
    let later = Instant::from_secs_for_test(100);
    let sent = drain(&mut c, later);
    assert_eq!(sent.len(), 1);
    // The first timer is the tail-loss probe's: two round trips (srtt 1 ms) after the send.
    assert_eq!(c.poll_timeout().unwrap(), later + Duration::from_millis(2));
}

#[test]
fn abort_delivers_what_was_written_without_finished() {
    let mut c = plain_client(8, 8, 512);
    connect(&mut c);
    c.write(&[3u8; 700]);
    c.abort();
    assert_eq!(c.write(&[3u8; 10]), 0);
    let sent = drain(&mut c, Instant::from_millis(2));
    assert_eq!(sent.iter().map(|s| s.msg_type).collect::<Vec<_>>(), vec![3, 3]);
    for s in &sent {
        ack(&mut c, Instant::from_millis(3), SESSION, s.seqno);
    }
    assert_eq!(events(&mut c).last(), Some(&Event::Failed(FailReason::Aborted)));
}

#[test]
fn rejects_bad_configs() {
    let mk = |payload: usize, window: usize, slots: usize, path: &'static [u8]| {
        let config = Config {
            payload_size: payload,
            window,
            herald_path: path,
            ..Config::new(addr(SERVER), Mode::Plain)
        };
        Client::new(
            config,
            buffers(slots, PLAIN_CHUNK_SIZE, 0),
            &mut StdRng::seed_from_u64(1),
            Instant::from_millis(0),
        )
        .map(|_| ())
    };
    assert_eq!(mk(511, 4, 4, b""), Err(Error::PayloadSize));
    assert_eq!(mk(512, 5, 4, b""), Err(Error::Window));
    assert_eq!(mk(512, 0, 4, b""), Err(Error::Window));
    assert_eq!(mk(512, 1, 1, b""), Err(Error::Window));
    assert_eq!(mk(512, 4, 4, b"a\0b"), Err(Error::HeraldPath));
    assert_eq!(mk(512, 4, 4, b"ok/path"), Ok(()));
    let plain = |buffers| {
        Client::new(
            Config::new(addr(SERVER), Mode::Plain),
            buffers,
            &mut StdRng::seed_from_u64(1),
            Instant::from_millis(0),
        )
        .map(|_| ())
    };
    assert_eq!(
        plain(buffers(256, 4096, 0)),
        Err(Error::ChunkBuffer),
        "plain chunks are 64 KiB"
    );
    let sealed = |buffers| {
        let mode = sealed_4k_chunks();
        Client::new(
            Config::new(addr(SERVER), mode),
            buffers,
            &mut StdRng::seed_from_u64(1),
            Instant::from_millis(0),
        )
        .map(|_| ())
    };
    assert_eq!(sealed(buffers(256, 4095, 8)), Err(Error::ChunkBuffer));
    let long_messages = |tags| {
        let mode = sealed_4k_chunks();
        let config = Config {
            payload_size: 8192,
            ..Config::new(addr(SERVER), mode)
        };
        Client::new(
            config,
            buffers(256, 4096, tags),
            &mut StdRng::seed_from_u64(1),
            Instant::from_millis(0),
        )
        .map(|_| ())
    };
    assert_eq!(long_messages(2), Err(Error::TagBuffer));
    assert_eq!(long_messages(3), Ok(()));
    assert_eq!(sealed(buffers(256, 4096, 1)), Err(Error::TagBuffer));
    assert_eq!(sealed(buffers(256, 4096, 2)), Ok(()));
}

#[test]
fn ram_formula_matches_the_buffers() {
    let client = core::mem::size_of::<Client<'static>>();
    assert_eq!(core::mem::size_of::<SlotState>(), 32);
    for (window, tags) in [(256, 10), (512, 16), (1024, 27)] {
        assert_eq!(tag_slots(window, 1448, 65_536), tags);
        let ram = ram_required(window, 1448, 65_536);
        let buffers = window * 32 + 2 * 65_552 + 4096 + tags * 16;
        assert_eq!(ram, buffers + client);
        std::eprintln!("ram_required({window}, 1448, 65536) = {ram}");
    }
    assert!(ram_required(1024, 1448, 65_536) < 200 * 1024);
    assert!(ram_required(4096, 1448, 65_536) < 300 * 1024);
    std::eprintln!("Client = {client}");
}

impl Instant {
    fn from_secs_for_test(s: u64) -> Instant {
        Instant::from_millis(s * 1000)
    }
}

fn sealed_client(
    payload: usize,
    recipients: &'static [seal::Recipient<'static>],
    dump_key: Option<DumpKey>,
) -> Client<'static> {
    sealed_client_with_chunks(payload, recipients, dump_key, 2)
}

fn sealed_client_with_chunks(
    payload: usize,
    recipients: &'static [seal::Recipient<'static>],
    dump_key: Option<DumpKey>,
    chunk_buffers: usize,
) -> Client<'static> {
    let mode = Mode::Sealed {
        params: seal::Params {
            chunk_shift: 12,
            ..seal::Params::default()
        },
        recipients,
        dump_key,
        metadata: seal::Metadata {
            hostname: b"secret-host",
            architecture: b"arm64",
            ..Default::default()
        },
    };
    let config = Config {
        payload_size: payload,
        window: 64,
        ..Config::new(addr(SERVER), mode)
    };
    Client::new(
        config,
        buffers_with_chunks(64, 4096, tag_slots(64, payload, 4096), chunk_buffers),
        &mut StdRng::seed_from_u64(9),
        Instant::from_millis(0),
    )
    .unwrap()
}

/// Sealed mode for [`x25519_recipients`], 4 KiB chunks, no metadata.
fn sealed_4k_chunks() -> Mode<'static> {
    Mode::Sealed {
        params: seal::Params {
            chunk_shift: 12,
            ..seal::Params::default()
        },
        recipients: x25519_recipients(),
        dump_key: None,
        metadata: seal::Metadata::default(),
    }
}

fn x25519_recipients() -> &'static [seal::Recipient<'static>] {
    let public = sealdump_crypto::X25519Secret::from_bytes([3; 32]).public_key();
    Box::leak(Box::new([seal::Recipient::X25519 { public }]))
}

#[test]
fn seal_header_is_split_across_ekcd_key_messages_at_offsets() {
    // An RSA-4096 pre-wrapped body (512 bytes) and two X25519 stanzas: a header over two 512-byte payloads.
    let body: &'static [u8] = Box::leak(vec![0xaa; 512].into_boxed_slice());
    let x = |b: u8| seal::Recipient::X25519 {
        public: sealdump_crypto::X25519Secret::from_bytes([b; 32]).public_key(),
    };
    let recipients: &'static [seal::Recipient<'static>] = Box::leak(Box::new([
        x(3),
        seal::Recipient::Prewrapped {
            kind: seal::StanzaKind::RsaOaepSha256,
            key_id: [1; 8],
            body,
        },
        x(4),
    ]));
    let mut c = sealed_client(512, recipients, None);
    let header = c.seal_header().to_vec();
    assert!(header.len() > 512, "header of {} bytes", header.len());
    assert!(header.starts_with(b"SEALDUMP"));
    connect(&mut c);
    let sent = drain(&mut c, Instant::from_millis(2));
    let keys: Vec<_> = sent.iter().filter(|s| s.msg_type == 5).collect();
    assert_eq!(keys.len(), header.len().div_ceil(512));
    let mut joined = Vec::new();
    for (i, k) in keys.iter().enumerate() {
        assert_eq!(k.offset, (i * 512) as u64);
        assert_eq!(k.seqno, 2 + i as u32, "the key follows the herald directly");
        joined.extend_from_slice(&k.payload);
    }
    assert_eq!(joined, header);
    // The header parses and names the recipient; the metadata is not in clear.
    let view = seal::HeaderView::parse(&joined).unwrap();
    assert_eq!(view.stanzas().count(), 3);
    assert!(!joined.windows(11).any(|w| w == b"secret-host"));
}

#[test]
fn sealed_stream_is_chunk_records_then_trailer_and_kdh_is_redacted() {
    let mut c = sealed_client(1448, x25519_recipients(), None);
    connect(&mut c);
    let plain = vec![0x42u8; 4096 + 100];
    assert_eq!(c.write(&plain), plain.len());
    let mut kdh = [0u8; 512];
    sealdump_wire::kdh::Repr {
        magic: sealdump_wire::kdh::Magic::Kernel,
        architecture: b"amd64",
        version: 4,
        architecture_version: 2,
        dump_length: plain.len() as u64,
        dump_time: 123,
        dump_key_size: 0,
        block_size: 4096,
        hostname: b"secret-host",
        version_string: b"FreeBSD 15.0\n",
        panic_string: b"page fault",
        compression: 0,
        dump_extent: plain.len() as u64,
        parity_ok: true,
    }
    .emit(&mut kdh)
    .unwrap();
    c.finish(Some(&kdh));
    let mut now = Instant::from_millis(2);
    let mut core = Vec::new();
    let mut kdh_sent = None;
    let mut done = false;
    for _ in 0..100 {
        for s in drain(&mut c, now) {
            match s.msg_type {
                3 => {
                    let end = s.offset as usize + s.payload.len();
                    core.resize(core.len().max(end), 0);
                    core[s.offset as usize..end].copy_from_slice(&s.payload);
                }
                4 => kdh_sent = Some(s.payload.clone()),
                _ => {}
            }
            ack(&mut c, now, SESSION, s.seqno);
        }
        if events(&mut c).iter().any(|e| matches!(e, Event::Done(_))) {
            done = true;
            break;
        }
        now = now + Duration::from_millis(1);
    }
    assert!(done);
    // Two data records (4096 + 16, 100 + 16) and the 48-byte trailer.
    assert_eq!(core.len(), 4112 + 116 + 48);
    assert_eq!(c.stream_len(), core.len() as u64);
    assert_eq!(c.stats().bytes_acked, core.len() as u64);
    let secret = sealdump_crypto::X25519Secret::from_bytes([3; 32]);
    let header = c.seal_header().to_vec();
    let view = seal::HeaderView::parse(&header).unwrap();
    let stanza = view.stanzas().next().unwrap();
    let opener = view
        .open(&seal::unwrap_x25519(&secret, &stanza, &view).unwrap())
        .unwrap();
    let trailer = opener.open_trailer(2, &core[4112 + 116..]).unwrap();
    assert_eq!((trailer.total_len, trailer.chunk_count), (4196, 2));
    assert_eq!(trailer.status, seal::TrailerStatus::Complete);
    let mut rec = core[4112..4112 + 116].to_vec();
    assert_eq!(opener.open_chunk(1, &mut rec).unwrap(), 100);
    assert_eq!(&rec[..100], &plain[4096..]);
    assert_eq!(opener.metadata().hostname(), b"secret-host");

    let kdh = sealdump_wire::kdh::Repr::parse(kdh_sent.as_deref().unwrap()).unwrap();
    assert_eq!(kdh.architecture, b"amd64");
    assert_eq!((kdh.version, kdh.block_size, kdh.dump_time), (4, 4096, 123));
    assert_eq!(
        (kdh.dump_length, kdh.dump_extent),
        (core.len() as u64, core.len() as u64)
    );
    assert_eq!(kdh.dump_key_size as usize, header.len());
    assert!(kdh.hostname.is_empty() && kdh.version_string.is_empty() && kdh.panic_string.is_empty());
    assert!(kdh.parity_ok);
}

#[test]
fn a_prewrapped_dump_key_is_the_one_sealed_with() {
    let body: &'static [u8] = Box::leak(vec![0xaa; 384].into_boxed_slice());
    let public = sealdump_crypto::X25519Secret::from_bytes([3; 32]).public_key();
    let recipients: &'static [seal::Recipient<'static>] = Box::leak(Box::new([
        seal::Recipient::Prewrapped {
            kind: seal::StanzaKind::RsaOaepSha256,
            key_id: [1; 8],
            body,
        },
        seal::Recipient::X25519 { public },
    ]));
    let dk = DumpKey::from_bytes([0x11; 32]);
    let c = sealed_client(1448, recipients, Some(dk.clone()));
    let view = seal::HeaderView::parse(c.seal_header()).unwrap();
    assert_eq!(view.stanzas().count(), 2);
    assert_eq!(view.stanzas().next().unwrap().body, body);
    assert!(view.open(&dk).is_ok(), "the pool's key seals the dump");
    assert!(view.open(&DumpKey::from_bytes([0x12; 32])).is_err());
}

#[test]
fn stray_and_duplicate_acks_are_ignored() {
    let mut c = plain_client(16, 16, 512);
    connect(&mut c);
    c.write(&[0u8; 1024]);
    let sent = drain(&mut c, Instant::from_millis(2));
    for seqno in [0, 1, 99, u32::MAX] {
        ack(&mut c, Instant::from_millis(3), SESSION, seqno);
    }
    assert_eq!(c.stats().bytes_acked, 0);
    ack(&mut c, Instant::from_millis(3), SESSION, sent[0].seqno);
    ack(&mut c, Instant::from_millis(3), SESSION, sent[0].seqno);
    assert_eq!(c.stats().bytes_acked, 512);
    // Not an ack at all.
    c.handle_datagram(Instant::from_millis(3), addr(SESSION), &[0, 0, 0]);
    c.handle_datagram(Instant::from_millis(3), addr(SESSION), &[]);
    assert_eq!(c.stats().bytes_acked, 512);
}

mod prop {
    use proptest::prelude::*;

    use super::*;

    #[derive(Clone, Debug)]
    enum Op {
        Write(usize),
        AckSent(usize),
        AckAny(u32),
        AckFromElsewhere(u32),
        Garbage(Vec<u8>),
        Advance(u64),
        Timeout,
        Finish,
        Abort,
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => (0usize..5000).prop_map(Op::Write),
            8 => any::<usize>().prop_map(Op::AckSent),
            1 => any::<u32>().prop_map(Op::AckAny),
            1 => any::<u32>().prop_map(Op::AckFromElsewhere),
            1 => proptest::collection::vec(any::<u8>(), 0..10).prop_map(Op::Garbage),
            3 => (0u64..20_000).prop_map(Op::Advance),
            2 => Just(Op::Timeout),
            1 => Just(Op::Finish),
            1 => Just(Op::Abort),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

        /// Any sequence of inputs (acks in any order, duplicates, strays, garbage, time jumps), with any number
        /// of chunk buffers and a dump that may not be readable again, keeps the ring consistent, never panics,
        /// never sends beyond the payload size or after the outcome, keeps a timer while packets are out, and
        /// events end with at most one outcome.
        #[test]
        fn arbitrary_inputs_keep_the_ring_consistent(
            sealed in any::<bool>(),
            chunk_buffers in 2usize..6,
            hole in proptest::option::of(0u64..8),
            ops in proptest::collection::vec(op(), 1..200),
        ) {
            let mut c = if sealed {
                sealed_client_with_chunks(512, x25519_recipients(), None, chunk_buffers)
            } else {
                plain_client_with_chunks(8, 8, 512, chunk_buffers)
            };
            let source = Holey(Constant(0x5a), hole);
            let mut now = Instant::from_millis(0);
            let mut sent: Vec<u32> = Vec::new();
            let mut outcomes = 0;
            for op in ops {
                match op {
                    Op::Write(n) => { c.write(&vec![0x5a; n]); }
                    Op::AckSent(i) if !sent.is_empty() => {
                        ack(&mut c, now, SESSION, sent[i % sent.len()]);
                    }
                    Op::AckSent(_) => {}
                    Op::AckAny(s) => ack(&mut c, now, SESSION, s),
                    Op::AckFromElsewhere(s) => ack(&mut c, now, "192.0.2.77:40000", s),
                    Op::Garbage(bytes) => c.handle_datagram(now, addr(SESSION), &bytes),
                    Op::Advance(us) => now = now + Duration::from_micros(us),
                    Op::Timeout => {
                        if let Some(t) = c.poll_timeout() {
                            now = now.max(t);
                            c.handle_timeout(now);
                        }
                    }
                    Op::Finish => c.finish(None),
                    Op::Abort => c.abort(),
                }
                let mut buf = [0u8; 2048];
                loop {
                    let was_closed = c.is_closed();
                    let Some(t) = c.poll_transmit(now, &mut buf, &source) else { break };
                    prop_assert!(!was_closed && !c.is_closed(), "a datagram from a closed client: {c:?}");
                    prop_assert!(t.len <= datagram_len(512));
                    let p = Packet::new_checked(&buf[..t.len]).unwrap();
                    sent.push(p.seqno());
                }
                for ev in events(&mut c) {
                    match ev {
                        Event::Failed(FailReason::Source(_)) if hole.is_some() => outcomes += 1,
                        Event::Failed(FailReason::SourceChanged | FailReason::Source(_)) => {
                            prop_assert!(false, "a re-read of the unchanged dump failed: {ev:?}");
                        }
                        Event::Done(_) | Event::Failed(_) => outcomes += 1,
                        Event::Connected { .. } | Event::Progress(_) => {}
                    }
                }
                c.check_invariants();
                if let Some(t) = c.poll_timeout() {
                    prop_assert!(t >= Instant::from_millis(0));
                } else {
                    prop_assert!(c.is_closed() || !c.packets_out(), "packets out and no timer: {c:?}");
                }
            }
            prop_assert!(outcomes <= 1);
        }
    }
}

#[test]
fn late_acks_after_a_timeout_are_not_taken_for_reordering() {
    let mut c = plain_client(64, 64, 512);
    connect(&mut c);
    c.write(&vec![0u8; 8 * 512]);
    let first = drain(&mut c, Instant::from_millis(2));
    assert_eq!(first.len(), 8);
    // The receiver stalls past the RTO (the tail-loss probe goes first); the packets expire, then all the acks
    // arrive late.
    let cwnd = c.stats().cwnd;
    let t = timers_until_a_timeout(&mut c);
    assert_eq!(c.stats().cwnd, MIN_CWND);
    let probes = c.stats().probes;
    assert_eq!(probes, 1);
    // The first late ack proves the timeout spurious: the other expired packets are still on their way, so
    // none is sent again (F-RTO), though the window was collapsed only a moment ago.
    ack(&mut c, t, SESSION, first[0].seqno);
    assert!(
        drain(&mut c, t).is_empty(),
        "the rest of a spuriously expired flight is not resent"
    );
    for s in &first[1..] {
        ack(&mut c, t, SESSION, s.seqno);
    }
    assert!(
        drain(&mut c, t).is_empty(),
        "acked before the resend: nothing to resend"
    );
    assert_eq!(c.stats().retransmits, probes);
    assert!(
        c.stats().cwnd >= cwnd,
        "the spurious timeout's window collapse is undone"
    );
    // A real loss afterwards is still repaired after three later acks, not after another RTO.
    c.write(&vec![0u8; 8 * 512]);
    let t = t + Duration::from_millis(1);
    let sent = drain(&mut c, t);
    assert!(sent.len() >= 4, "{}", sent.len());
    for s in &sent[1..4] {
        ack(&mut c, t, SESSION, s.seqno);
    }
    let again = drain(&mut c, t);
    assert_eq!(again.first().map(|s| s.seqno), Some(sent[0].seqno));
}

#[test]
fn a_reordering_path_raises_the_fast_retransmit_threshold() {
    let mut c = plain_client(64, 64, 512);
    connect(&mut c);
    c.write(&vec![0u8; 20 * 512]);
    let t = Instant::from_millis(21);
    let sent = drain(&mut c, t);
    assert!(sent.len() >= 8);
    // Packet 0 overtaken by 3 others: resent...
    for s in &sent[1..4] {
        ack(&mut c, t + Duration::from_millis(10), SESSION, s.seqno);
    }
    let t2 = t + Duration::from_millis(10);
    assert_eq!(drain(&mut c, t2).first().map(|s| s.seqno), Some(sent[0].seqno));
    // ...but its first copy's ack arrives 0.2 ms later, far below the 1 ms minimum RTT: that was reordering.
    let t3 = t2 + Duration::from_micros(200);
    ack(&mut c, t3, SESSION, sent[0].seqno);
    let retransmits = c.stats().retransmits;
    // Now three later acks are not enough to call packet 4 lost.
    for s in &sent[5..8] {
        ack(&mut c, t3, SESSION, s.seqno);
    }
    let resent = drain(&mut c, t3);
    assert!(resent.iter().all(|s| s.seqno != sent[4].seqno));
    assert_eq!(c.stats().retransmits, retransmits);
}

#[test]
fn an_overtaken_packet_is_resent_after_the_time_threshold_before_the_rto() {
    let mut c = plain_client(16, 16, 512);
    connect(&mut c); // RTT sample: 1 ms
    c.write(&[0u8; 1024]);
    let t = Instant::from_millis(2);
    let sent = drain(&mut c, t);
    assert_eq!(sent.len(), 2);
    // Only one later ack: the packet threshold (3) cannot fire, the time threshold (9/8 RTT) does.
    let acked_at = t + Duration::from_micros(1000);
    ack(&mut c, acked_at, SESSION, sent[1].seqno);
    // Loss detection runs once per batch of acks: it is due at once, and then arms the time threshold.
    assert_eq!(c.poll_timeout(), Some(acked_at));
    c.handle_timeout(acked_at);
    let deadline = c.poll_timeout().unwrap();
    assert_eq!(deadline, t + Duration::from_micros(1125));
    assert!(deadline < t + MIN_RTO);
    assert!(drain(&mut c, deadline - Duration::from_micros(1)).is_empty());
    c.handle_timeout(deadline);
    let again = drain(&mut c, deadline);
    assert_eq!(
        again.iter().map(|s| s.seqno).collect::<Vec<_>>(),
        vec![sent[0].seqno]
    );
}

/// Runs a dump of `data` to its end, acking every message at once except every copy of the first VMCORE message
/// sent while the dump has not moved more than two chunks past it (so its chunk has left the buffers when it is
/// finally resent). Checks that every resend repeats its first transmission byte for byte; returns the
/// record stream received and the outcome.
fn run_losing_the_first_chunk<S: DumpSource + ?Sized>(
    c: &mut Client<'_>,
    data: &[u8],
    source: &S,
    chunk_size: usize,
) -> (Vec<u8>, Event) {
    let mut now = Instant::from_millis(2);
    let (mut pos, mut finished) = (0, false);
    let mut stream = Vec::new();
    let mut first_sends = std::collections::HashMap::new();
    let mut target = None;
    for _ in 0..20_000 {
        while pos < data.len() {
            let n = c.write(&data[pos..]);
            if n == 0 {
                break;
            }
            pos += n;
        }
        if pos == data.len() && !finished {
            c.finish(None);
            finished = true;
        }
        for s in drain_from(c, now, source) {
            if s.msg_type == 3 {
                let first = first_sends.entry(s.seqno).or_insert_with(|| s.payload.clone());
                assert_eq!(first, &s.payload, "seqno {} resent with other bytes", s.seqno);
                let end = s.offset as usize + s.payload.len();
                stream.resize(stream.len().max(end), 0);
                stream[s.offset as usize..end].copy_from_slice(&s.payload);
                target.get_or_insert(s.seqno);
            }
            if target == Some(s.seqno) && c.stats().bytes_written <= 2 * chunk_size as u64 {
                continue;
            }
            ack(c, now, SESSION, s.seqno);
        }
        if let Some(outcome) = events(c)
            .into_iter()
            .find(|e| matches!(e, Event::Done(_) | Event::Failed(_)))
        {
            return (stream, outcome);
        }
        now = now + Duration::from_millis(1);
        if c.poll_timeout().is_some_and(|t| t <= now) {
            c.handle_timeout(now);
        }
    }
    panic!("the dump did not end: {c:?}");
}

fn pseudo_random(len: usize) -> Vec<u8> {
    (0..len as u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect()
}

#[test]
fn a_sealed_chunk_no_longer_buffered_is_read_again_and_sealed_to_the_same_bytes() {
    let stats = lose_the_first_chunk_with(2);
    assert!(stats.chunks_reread >= 1, "{stats:?}");
    assert!(stats.retransmits >= 1);
}

#[test]
fn spare_chunk_buffers_keep_sent_chunks_for_their_resends() {
    // The same loss with eight buffers: the first chunk is still held when its resend is due.
    let stats = lose_the_first_chunk_with(8);
    assert_eq!(stats.chunks_reread, 0, "{stats:?}");
    assert!(stats.retransmits >= 1);
}

/// A sealed 64 KiB + 1000-byte dump of 4 KiB chunks through [`run_losing_the_first_chunk`] with `chunk_buffers`
/// buffers: it ends `Done` and its stream opens to the dump. Returns the client's counters.
fn lose_the_first_chunk_with(chunk_buffers: usize) -> Stats {
    let mut c = sealed_client_with_chunks(1448, x25519_recipients(), None, chunk_buffers);
    connect(&mut c);
    let data = pseudo_random(16 * 4096 + 1000);
    let (stream, outcome) = run_losing_the_first_chunk(&mut c, &data, &data[..], 4096);
    assert!(matches!(outcome, Event::Done(_)), "{outcome:?}");
    assert_eq!(open_16_chunks_and_a_part(&c, &stream), data);
    c.stats()
}

#[test]
fn a_new_chunk_takes_the_buffer_of_the_oldest_sent_chunk() {
    // 1028-byte payloads: four datagrams per 4 KiB chunk record. Three buffers: two keep sent chunks.
    let mut c = sealed_client_with_chunks(1028, x25519_recipients(), None, 3);
    connect(&mut c);
    let data = pseudo_random(4 * 4096);
    let t = Instant::from_millis(2);
    assert_eq!(c.write(&data[..8192]), 8192);
    let sent = drain_from(&mut c, t, &data[..]);
    let vmcore: Vec<&Sent> = sent.iter().filter(|s| s.msg_type == 3).collect();
    assert_eq!(vmcore.len(), 8, "chunks 0 and 1");
    // Chunk 1's first datagram is lost; everything else is acked.
    let lost = vmcore[4];
    assert_eq!(lost.offset, 4112);
    for s in sent.iter().filter(|s| s.seqno != lost.seqno) {
        ack(&mut c, t + Duration::from_millis(1), SESSION, s.seqno);
    }
    // Chunks 2 and 3 are written: chunk 3 needs a buffer, and takes chunk 0's (the older sent one).
    let t = t + Duration::from_millis(1);
    assert_eq!(c.write(&data[8192..]), 8192);
    let mut resent = Vec::new();
    for s in drain_from(&mut c, t, &data[..]) {
        if s.offset == lost.offset {
            resent.push(s);
        }
    }
    assert_eq!(resent.len(), 1, "resent after three later acks");
    assert_eq!(resent[0].payload, lost.payload);
    assert_eq!(c.stats().chunks_reread, 0, "chunk 1 was still held");
}

/// Opens the record stream of a 64 KiB + 1000-byte dump of 4 KiB chunks sealed to [`x25519_recipients`], checks
/// its trailer, and returns the plaintext.
fn open_16_chunks_and_a_part(c: &Client<'_>, stream: &[u8]) -> Vec<u8> {
    let secret = sealdump_crypto::X25519Secret::from_bytes([3; 32]);
    let header = c.seal_header().to_vec();
    let view = seal::HeaderView::parse(&header).unwrap();
    let stanza = view.stanzas().next().unwrap();
    let opener = view
        .open(&seal::unwrap_x25519(&secret, &stanza, &view).unwrap())
        .unwrap();
    let mut plain = Vec::new();
    let records = stream[..16 * 4112]
        .chunks(4112)
        .chain([&stream[16 * 4112..16 * 4112 + 1016]]);
    for (i, record) in records.enumerate() {
        let mut record = record.to_vec();
        let n = opener.open_chunk(i as u64, &mut record).unwrap();
        plain.extend_from_slice(&record[..n]);
    }
    let trailer = opener.open_trailer(17, &stream[16 * 4112 + 1016..]).unwrap();
    assert_eq!(trailer.status, seal::TrailerStatus::Complete);
    plain
}

#[test]
fn a_changed_source_ends_the_dump_without_sending_the_changed_chunk() {
    let mut c = sealed_client(1448, x25519_recipients(), None);
    connect(&mut c);
    let data = pseudo_random(16 * 4096);
    let mut changed = data.clone();
    changed[100] ^= 1;
    // Every resend is checked against its first transmission inside the run: none may carry other bytes.
    let (_, outcome) = run_losing_the_first_chunk(&mut c, &data, &changed[..], 4096);
    assert_eq!(outcome, Event::Failed(FailReason::SourceChanged));
    assert_eq!(
        FailReason::SourceChanged.to_string(),
        "dump source changed during the dump"
    );
    assert_eq!(c.stats().chunks_reread, 0, "the changed chunk was never used");
    assert!(c.is_closed());
    assert!(drain_from(&mut c, Instant::from_secs_for_test(100), &data[..]).is_empty());
}

#[test]
fn a_plain_chunk_no_longer_buffered_is_read_again_as_is() {
    let mut c = plain_client(128, 128, 1448);
    connect(&mut c);
    let data = pseudo_random(5 * PLAIN_CHUNK_SIZE + 77);
    let (stream, outcome) = run_losing_the_first_chunk(&mut c, &data, &data[..], PLAIN_CHUNK_SIZE);
    assert!(matches!(outcome, Event::Done(_)), "{outcome:?}");
    assert!(c.stats().chunks_reread >= 1);
    assert_eq!(stream, data);
    assert!(c.retained_from() >= 5 * PLAIN_CHUNK_SIZE as u64, "all acked");
}

#[test]
fn a_source_without_the_bytes_ends_the_dump() {
    let mut c = plain_client(128, 128, 1448);
    connect(&mut c);
    let data = pseudo_random(5 * PLAIN_CHUNK_SIZE);
    let (_, outcome) = run_losing_the_first_chunk(&mut c, &data, NO_SOURCE, PLAIN_CHUNK_SIZE);
    assert_eq!(
        outcome,
        Event::Failed(FailReason::Source(SourceError::Unavailable))
    );
}

#[test]
fn retained_from_follows_the_oldest_unacked_chunk() {
    let mut c = plain_client(128, 128, 1448);
    connect(&mut c);
    assert_eq!(c.retained_from(), 0);
    let data = pseudo_random(2 * PLAIN_CHUNK_SIZE);
    assert_eq!(c.write(&data), data.len());
    let now = Instant::from_millis(2);
    let mut all = Vec::new();
    for _ in 0..50 {
        let sent = drain(&mut c, now);
        if sent.is_empty() {
            break;
        }
        for s in &sent {
            ack(&mut c, now, SESSION, s.seqno);
        }
        all.extend(sent);
    }
    // Everything up to the last full packet of the second chunk is acked: the first chunk is forgotten.
    assert_eq!(c.retained_from(), PLAIN_CHUNK_SIZE as u64);
    assert!(
        all.iter()
            .all(|s| s.offset + s.payload.len() as u64 <= data.len() as u64)
    );
}

#[test]
fn messages_longer_than_a_record_and_the_fewest_tag_slots_still_finish() {
    // 8 KiB messages over 4 KiB chunks: the short rest waiting for more data spans both buffers, one of which
    // must be given up (and its chunk read again for the first transmission). The fewest tag slots (3 here)
    // throttle writing to the acked chunks. Every message is acked at once.
    let mode = sealed_4k_chunks();
    let config = Config {
        payload_size: 8192,
        window: 16,
        ..Config::new(addr(SERVER), mode)
    };
    assert_eq!(min_tag_slots(8192, 4096), 3);
    assert_eq!(min_tag_slots(1448, 4096), 2);
    assert_eq!(min_tag_slots(4112, 4096), 2);
    let mut c = Client::new(
        config,
        buffers(16, 4096, 3),
        &mut StdRng::seed_from_u64(4),
        Instant::from_millis(0),
    )
    .unwrap();
    connect(&mut c);
    let data = pseudo_random(40 * 4096 + 123);
    // Chunk size 0 for the harness: no copy of the first message is lost.
    let (stream, outcome) = run_losing_the_first_chunk(&mut c, &data, &data[..], 0);
    assert!(matches!(outcome, Event::Done(_)), "{outcome:?}");
    assert_eq!(stream.len() as u64, c.stream_len());
    assert_eq!(stream.len(), 41 * 4112 + 48 - 4096 + 123);
}
