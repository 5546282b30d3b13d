//! Unit tests of the client through its public API: handshake, window, loss recovery, back-pressure,
//! header split, deadlines.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::boxed::Box;
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

fn buffers(slots: usize, payload: usize, chunk: usize) -> Buffers<'static> {
    Buffers {
        slots: Box::leak(vec![0u8; slots * slot_len(payload)].into_boxed_slice()),
        slot_len: slot_len(payload),
        slot_state: Box::leak(vec![SlotState::EMPTY; slots].into_boxed_slice()),
        chunk: Box::leak(vec![0u8; chunk].into_boxed_slice()),
        header: Box::leak(vec![0u8; HEADER_BUFFER_LEN].into_boxed_slice()),
    }
}

fn plain_client(slots: usize, window: usize, payload: usize) -> Client<'static> {
    let config = Config {
        payload_size: payload,
        window,
        herald_path: b"crash",
        ..Config::new(addr(SERVER), Mode::Plain)
    };
    Client::new(
        config,
        buffers(slots, payload, 0),
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
    let mut out = Vec::new();
    let mut buf = [0u8; 70_000];
    while let Some(t) = client.poll_transmit(now, &mut buf) {
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

#[test]
fn rto_resends_and_backs_off() {
    let mut c = plain_client(16, 16, 512);
    connect(&mut c);
    c.write(&[5u8; 1024]);
    let sent = drain(&mut c, Instant::from_millis(2));
    assert_eq!(sent.len(), 2);
    let t1 = c.poll_timeout().unwrap();
    // srtt 1 ms: rto = 1 ms + 4 * 0.5 ms = 3 ms, floored at MIN_RTO.
    assert_eq!(t1, Instant::from_millis(2) + MIN_RTO);
    c.handle_timeout(t1);
    let again = drain(&mut c, t1);
    assert_eq!(again.len(), 2);
    assert_eq!(again[0].seqno, sent[0].seqno);
    let t2 = c.poll_timeout().unwrap();
    assert_eq!(t2 - t1, MIN_RTO * 2, "backoff doubles the RTO");
    assert_eq!(c.stats().retransmits, 2);
    assert_eq!(c.stats().cwnd, MIN_CWND);
}

#[test]
fn write_is_back_pressured_by_the_ring() {
    let mut c = plain_client(4, 4, 512);
    assert_eq!(
        c.write(&vec![1u8; 10_000]),
        4 * 512,
        "four slots of 512 bytes, before the herald is even acked"
    );
    assert_eq!(c.write(&[1u8; 10]), 0);
    connect(&mut c);
    let sent = drain(&mut c, Instant::from_millis(2));
    assert_eq!(sent.len(), 4);
    ack(&mut c, Instant::from_millis(3), SESSION, sent[1].seqno);
    assert_eq!(
        c.write(&[1u8; 600]),
        0,
        "a hole at the ring base blocks new slots"
    );
    ack(&mut c, Instant::from_millis(3), SESSION, sent[0].seqno);
    assert_eq!(c.write(&[1u8; 2000]), 2 * 512);
    assert_eq!(c.stats().bytes_written, 6 * 512);
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
    assert_eq!(c.poll_timeout().unwrap(), later + MIN_RTO);
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
            buffers(slots, payload.max(512), 0),
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
    let config = Config {
        payload_size: 1448,
        ..Config::new(addr(SERVER), Mode::Plain)
    };
    let small = buffers(256, 512, 0);
    assert_eq!(
        Client::new(
            config,
            small,
            &mut StdRng::seed_from_u64(1),
            Instant::from_millis(0)
        )
        .map(|_| ()),
        Err(Error::SlotBuffer)
    );
}

#[test]
fn ram_formula_matches_the_buffers() {
    let ram = ram_required(256, 1448, 65_536);
    let buffers = 256 * 1472 + 256 * core::mem::size_of::<SlotState>() + 65_552 + 4096;
    assert_eq!(ram, buffers + core::mem::size_of::<Client<'static>>());
    assert_eq!(core::mem::size_of::<SlotState>(), 32);
    assert!(ram < 470 * 1024, "{ram}");
}

impl Instant {
    fn from_secs_for_test(s: u64) -> Instant {
        Instant::from_millis(s * 1000)
    }
}
