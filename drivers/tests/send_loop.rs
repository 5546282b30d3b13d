//! The hosted send loop (`sealdump_drivers::hosted::sender`) over real loopback sockets against a minimal
//! netdumpd-like peer written here: acks from a per-session port like netdumpd, optional deterministic loss.
#![cfg(feature = "std")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashSet;
use std::net::{SocketAddr, UdpSocket};
use std::thread;
use std::time::{Duration, Instant};

use sealdump_drivers::hosted::sender::{self, Outcome, Security, SendConfig};
use sealdump_drivers::hosted::synthetic::{SyntheticSpec, write_synthetic};

/// What the peer saw.
#[derive(Debug, Default)]
struct Received {
    vmcore: Vec<u8>,
    kdh: Option<Vec<u8>>,
    herald_path: Vec<u8>,
    finished: bool,
    dropped: usize,
}

/// A netdumpd-like peer: herald on `herald`, then a session socket on a fresh port acking every message.
/// Drops the first transmission of every `drop_every`-th data message (0 = no loss).
fn peer(herald: UdpSocket, drop_every: u32) -> thread::JoinHandle<Received> {
    thread::spawn(move || {
        let mut buf = vec![0u8; 65_536];
        herald.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let (n, client) = herald.recv_from(&mut buf).unwrap();
        let mut got = Received::default();
        assert!(n >= 24);
        assert_eq!(
            u32::from_be_bytes(buf[0..4].try_into().unwrap()),
            1,
            "herald first"
        );
        let len = u32::from_be_bytes(buf[16..20].try_into().unwrap()) as usize;
        got.herald_path = buf[24..24 + len]
            .iter()
            .copied()
            .take_while(|&b| b != 0)
            .collect();
        let session = UdpSocket::bind("127.0.0.1:0").unwrap();
        session.send_to(&buf[4..8], client).unwrap();
        session.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        let mut seen_once = HashSet::new();
        while let Ok((n, from)) = session.recv_from(&mut buf) {
            assert_eq!(from, client);
            let msg_type = u32::from_be_bytes(buf[0..4].try_into().unwrap());
            let seqno = u32::from_be_bytes(buf[4..8].try_into().unwrap());
            let offset = u64::from_be_bytes(buf[8..16].try_into().unwrap()) as usize;
            let len = u32::from_be_bytes(buf[16..20].try_into().unwrap()) as usize;
            assert_eq!(n, 24 + len, "exact length rule");
            if drop_every != 0 && msg_type == 3 && seqno % drop_every == 0 && seen_once.insert(seqno) {
                got.dropped += 1;
                continue;
            }
            let payload = &buf[24..n];
            match msg_type {
                3 => {
                    if got.vmcore.len() < offset + len {
                        got.vmcore.resize(offset + len, 0);
                    }
                    got.vmcore[offset..offset + len].copy_from_slice(payload);
                }
                4 => got.kdh = Some(payload.to_vec()),
                2 => got.finished = true,
                _ => {}
            }
            session.send_to(&seqno.to_be_bytes(), client).unwrap();
            if got.finished {
                // Keep acking retransmitted FINISHED messages for a moment, as netdumpd's session lingers.
                session
                    .set_read_timeout(Some(Duration::from_millis(300)))
                    .unwrap();
            }
        }
        got
    })
}

fn dump(mib: u64) -> Vec<u8> {
    let mut out = Vec::new();
    write_synthetic(
        &SyntheticSpec {
            total_len: mib << 20,
            ..SyntheticSpec::default()
        },
        &mut out,
    )
    .unwrap();
    out
}

fn config(server: SocketAddr, payload_size: usize, give_up: Duration) -> SendConfig {
    SendConfig {
        server,
        bind: "127.0.0.1:0".parse().unwrap(),
        herald_path: b"lab/host1".to_vec(),
        payload_size,
        window: 256,
        chunk_buffers: 2,
        give_up_after: give_up,
        security: Security::Plain,
    }
}

fn cursor(data: &[u8]) -> Box<dyn std::io::Read + Send> {
    Box::new(std::io::Cursor::new(data.to_vec()))
}

#[test]
fn plain_dump_arrives_intact_with_kdh_and_finished() {
    let herald = UdpSocket::bind("127.0.0.1:0").unwrap();
    let server = herald.local_addr().unwrap();
    let handle = peer(herald, 0);
    let data = dump(4);
    let kdh = sender::leading_kdh(&data);
    assert!(kdh.is_some(), "synthetic dump starts with a valid header");
    let mut progress = 0;
    let outcome = sender::send(
        &config(server, 8192, Duration::from_secs(5)),
        cursor(&data),
        kdh,
        &mut |_| progress += 1,
    )
    .unwrap();
    let Outcome::Done(stats) = outcome else {
        panic!("{outcome:?}")
    };
    assert_eq!(stats.bytes_written, data.len() as u64);
    assert!(progress > 0);
    let got = handle.join().unwrap();
    assert!(got.finished);
    assert_eq!(got.herald_path, b"lab/host1");
    assert!(got.vmcore == data, "vmcore differs");
    assert_eq!(got.kdh.as_deref(), Some(&data[..512]));
}

#[test]
fn lost_datagrams_are_retransmitted() {
    let herald = UdpSocket::bind("127.0.0.1:0").unwrap();
    let server = herald.local_addr().unwrap();
    let handle = peer(herald, 7);
    let data = dump(2);
    let outcome = sender::send(
        &config(server, 1448, Duration::from_secs(5)),
        cursor(&data),
        None,
        &mut |_| {},
    )
    .unwrap();
    let Outcome::Done(stats) = outcome else {
        panic!("{outcome:?}")
    };
    let got = handle.join().unwrap();
    assert!(got.dropped > 100, "dropped {}", got.dropped);
    assert!(
        stats.retransmits >= got.dropped as u64,
        "{stats:?} vs {} dropped",
        got.dropped
    );
    // Bounded: no retransmission storm.
    assert!(
        stats.retransmits < 4 * got.dropped as u64,
        "{stats:?} vs {} dropped",
        got.dropped
    );
    assert!(got.vmcore == data, "vmcore differs");
}

#[test]
fn silent_receiver_fails_at_the_deadline() {
    let silent = UdpSocket::bind("127.0.0.1:0").unwrap();
    let started = Instant::now();
    let outcome = sender::send(
        &config(silent.local_addr().unwrap(), 1448, Duration::from_millis(500)),
        cursor(&[0u8; 100_000]),
        None,
        &mut |_| {},
    )
    .unwrap();
    assert!(matches!(outcome, Outcome::Failed(_)), "{outcome:?}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn read_error_aborts_the_dump() {
    struct Failing(usize);
    impl std::io::Read for Failing {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            if self.0 == 0 {
                return Err(std::io::Error::other("disk on fire"));
            }
            let n = buf.len().min(self.0);
            buf[..n].fill(0xab);
            self.0 -= n;
            Ok(n)
        }
    }
    let herald = UdpSocket::bind("127.0.0.1:0").unwrap();
    let server = herald.local_addr().unwrap();
    let handle = peer(herald, 0);
    let outcome = sender::send(
        &config(server, 1448, Duration::from_secs(2)),
        Box::new(Failing(3 << 20)),
        None,
        &mut |_| {},
    )
    .unwrap();
    let Outcome::InputFailed(e) = outcome else {
        panic!("{outcome:?}")
    };
    assert_eq!(e.to_string(), "disk on fire");
    let got = handle.join().unwrap();
    assert!(!got.finished, "an aborted dump must not be FINISHED");
}
