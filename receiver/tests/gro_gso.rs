#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Session sockets under UDP GSO and GRO (Linux): a client sending its data as GSO batches (which reach the
//! receiver's GRO socket as one buffer per batch) is acked for every datagram and stored byte-exact, and the
//! receiver's batched acks still reach a plain socket as separate 4-byte datagrams.
#![cfg(target_os = "linux")]

mod common;

use std::collections::BTreeSet;
use std::io::IoSliceMut;
use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use common::*;
use quinn_udp::{RecvMeta, Transmit, UdpSocketState};

const HEADER: usize = 24;
const HERALD: u32 = 1;
const FINISHED: u32 = 2;
const VMCORE: u32 = 3;

/// A client socket with GSO and GRO on (quinn-udp), blocking reads with a timeout.
struct GsoClient {
    sock: UdpSocket,
    state: UdpSocketState,
    buf: Vec<u8>,
    /// Some ack buffer held more than one ack: the receiver sent its acks as one GSO batch.
    saw_coalesced_acks: bool,
}

impl GsoClient {
    fn new() -> Self {
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        let state = UdpSocketState::new((&sock).into()).unwrap();
        // quinn-udp made it non-blocking; one buffer per read and a timeout make recvmmsg wait for one batch.
        sock.set_nonblocking(false).unwrap();
        sock.set_read_timeout(Some(Duration::from_millis(100))).unwrap();
        Self {
            sock,
            state,
            buf: vec![0; 65_536],
            saw_coalesced_acks: false,
        }
    }

    /// The acks (seqno, source) of one read, split at the GRO stride; each must be exactly 4 bytes.
    fn recv_acks(&mut self) -> Vec<(u32, SocketAddr)> {
        let mut meta = [RecvMeta::default()];
        let mut bufs = [IoSliceMut::new(&mut self.buf)];
        match self.state.recv((&self.sock).into(), &mut bufs, &mut meta) {
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return Vec::new();
            }
            Err(e) => panic!("recv: {e}"),
        }
        let meta = meta[0];
        if meta.len > meta.stride {
            self.saw_coalesced_acks = true;
        }
        self.buf[..meta.len]
            .chunks(meta.stride)
            .map(|ack| {
                assert_eq!(
                    ack.len(),
                    4,
                    "an ack is a 4-byte datagram (stride {})",
                    meta.stride
                );
                (u32::from_be_bytes(ack.try_into().unwrap()), meta.addr)
            })
            .collect()
    }

    /// Sends `msg` as one datagram until its ack comes; returns the ack's source.
    fn exchange(&mut self, to: SocketAddr, msg: &[u8], seqno: u32) -> SocketAddr {
        for _ in 0..20 {
            self.sock.send_to(msg, to).unwrap();
            let deadline = Instant::now() + Duration::from_millis(300);
            while Instant::now() < deadline {
                if let Some(&(_, from)) = self.recv_acks().iter().find(|(s, _)| *s == seqno) {
                    return from;
                }
            }
        }
        panic!("no ack for seqno {seqno}");
    }

    /// Sends `msgs` (equal sizes, the last may be shorter) as one GSO batch until all of `seqnos` are acked.
    fn send_batch(&mut self, to: SocketAddr, msgs: &[u8], segment: usize, seqnos: &[u32]) {
        let mut unacked: BTreeSet<u32> = seqnos.iter().copied().collect();
        for _ in 0..5 {
            let transmit = Transmit {
                destination: to,
                ecn: None,
                contents: msgs,
                segment_size: Some(segment),
                src_ip: None,
            };
            self.state.try_send((&self.sock).into(), &transmit).unwrap();
            let deadline = Instant::now() + Duration::from_secs(1);
            while !unacked.is_empty() && Instant::now() < deadline {
                for (seqno, _) in self.recv_acks() {
                    unacked.remove(&seqno);
                }
            }
            if unacked.is_empty() {
                return;
            }
        }
        panic!("never acked: {unacked:?}");
    }
}

/// All messages but the last are `24 + PAYLOAD` bytes, so the GSO batches (and so the receiver's GRO buffers) hold
/// equal-size datagrams; the last batch ends in a shorter one, as GSO allows.
#[test]
fn gso_batches_are_split_acked_and_stored_exactly() {
    const PAYLOAD: usize = 1000;
    const PER_BATCH: usize = 40; // 40 × 1024 bytes: within one 64 KiB GSO send
    let d = Daemon::start(|_| {});
    let core = pattern(239 * PAYLOAD + 500, 21);
    let mut c = GsoClient::new();
    assert!(
        c.state.max_gso_segments() >= PER_BATCH && c.state.gro_segments() > 1,
        "this kernel has no UDP GSO/GRO"
    );
    let session = c.exchange(d.addr, &raw_msg(HERALD, 1, 0, b""), 1);
    assert_ne!(session.port(), d.addr.port());

    let mut seqno = 2u32;
    let mut contents = Vec::new();
    for (b, batch) in core.chunks(PAYLOAD * PER_BATCH).enumerate() {
        contents.clear();
        let mut seqnos = Vec::new();
        for (i, payload) in batch.chunks(PAYLOAD).enumerate() {
            let offset = ((b * PER_BATCH + i) * PAYLOAD) as u64;
            contents.extend_from_slice(&raw_msg(VMCORE, seqno, offset, payload));
            seqnos.push(seqno);
            seqno += 1;
        }
        c.send_batch(session, &contents, HEADER + PAYLOAD, &seqnos);
    }
    c.exchange(session, &raw_msg(FINISHED, seqno, 0, b""), seqno);

    let info = wait_info_closed(d.path().join("info.127.0.0.1.0"));
    assert!(info.ends_with("Dump complete\n"), "{info}");
    assert!(
        info.contains(&format!("Bytes Received: {} core", core.len())),
        "{info}"
    );
    assert_eq!(read(d.path().join("vmcore.127.0.0.1.0")), core);
    // A drained GRO batch of 40 data messages is acked with one GSO send, which the client's GRO socket receives
    // as one buffer (loopback delivers a GSO send intact to a GRO socket, and never coalesces separate sends).
    assert!(c.saw_coalesced_acks, "the receiver sent no ack batch with GSO");
}

/// A plain socket (no GRO, like a FreeBSD kernel) sends a burst the receiver drains at once and acks as one batch:
/// the kernel splits the GSO send, so each ack arrives as its own 4-byte datagram.
#[test]
fn batched_acks_reach_a_plain_socket_as_separate_datagrams() {
    const BURST: u32 = 48;
    let d = Daemon::start(|_| {});
    let c = UdpSocket::bind("127.0.0.1:0").unwrap();
    c.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    c.send_to(&raw_msg(HERALD, 1, 0, b""), d.addr).unwrap();
    let mut b = [0u8; 256];
    let (n, session) = c.recv_from(&mut b).unwrap();
    assert_eq!((n, &b[..4]), (4, &1u32.to_be_bytes()[..]));
    let core = pattern(BURST as usize * 1448, 22);
    for (i, payload) in core.chunks(1448).enumerate() {
        let seqno = 2 + i as u32;
        c.send_to(&raw_msg(VMCORE, seqno, (i * 1448) as u64, payload), session)
            .unwrap();
    }
    let mut acked = BTreeSet::new();
    while acked.len() < BURST as usize {
        let (n, from) = c.recv_from(&mut b).expect("an ack for every datagram");
        assert_eq!(
            (n, from),
            (4, session),
            "each ack is its own 4-byte datagram from the session port"
        );
        acked.insert(u32::from_be_bytes([b[0], b[1], b[2], b[3]]));
    }
    assert_eq!(acked, (2..2 + BURST).collect());
}
