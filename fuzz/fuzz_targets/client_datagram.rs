//! client-core's sans-I/O client (plain or sealed, after a fixed set-up) driven by an arbitrary sequence of
//! datagrams — acks of sent seqnos, arbitrary acks and bytes from the session, the herald address and strangers —
//! plus writes, time jumps, timeouts, finish and abort. Checked besides "never panics": every transmitted datagram
//! is a well-formed netdump message no longer than `datagram_len`, goes to the herald address or the learnt session
//! address, a message sent again (re-read and re-sealed from the dump source if its chunk was no longer buffered)
//! carries the bytes of its first transmission, a dump source that changes makes the client fail rather than send
//! other bytes, and the client reports at most one outcome (Done or Failed).
#![no_main]

use core::time::Duration;

use libfuzzer_sys::fuzz_target;
use rand::SeedableRng;
use std::collections::HashMap;

use sealdump_client_core::{
    Buffers, Client, Config, DumpKey, Event, FailReason, HEADER_BUFFER_LEN, Instant, Mode, PLAIN_CHUNK_SIZE,
    SlotState, SocketAddr, TAG_LEN, chunk_buffers_len, datagram_len, seal,
};
use sealdump_wire::netdump::Packet;

const PAYLOAD: usize = 512;
const SLOTS: usize = 16;

struct Input<'a>(&'a [u8]);

impl Input<'_> {
    fn u8(&mut self) -> u8 {
        match self.0.split_first() {
            Some((&b, rest)) => {
                self.0 = rest;
                b
            }
            None => 0,
        }
    }
    fn u16(&mut self) -> u16 {
        u16::from_be_bytes([self.u8(), self.u8()])
    }
    fn u32(&mut self) -> u32 {
        u32::from_be_bytes([self.u8(), self.u8(), self.u8(), self.u8()])
    }
    fn bytes(&mut self, n: usize) -> &[u8] {
        let n = n.min(self.0.len());
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        head
    }
}

fuzz_target!(|data: &[u8]| {
    let mut input = Input(data);
    let server: SocketAddr = "192.0.2.10:20023".parse().expect("addr");
    let session: SocketAddr = "192.0.2.10:40000".parse().expect("addr");
    let stranger: SocketAddr = "198.51.100.7:40000".parse().expect("addr");
    let addrs = [
        session,
        server,
        stranger,
        "192.0.2.10:40001".parse().expect("addr"),
    ];

    let flags = input.u8();
    let sealed = flags & 1 == 1;
    // Sometimes the dump source differs from what was written from some offset on (a changing dump).
    let changed_from = (flags & 2 == 2).then(|| usize::from(flags >> 2) * 1024);
    // A pre-wrapped stanza and a given dump key: sealed mode without an HPKE operation per input (speed).
    let body = [0xaa; 384];
    let recipients = [seal::Recipient::Prewrapped {
        kind: seal::StanzaKind::RsaOaepSha256,
        key_id: [7; 8],
        body: &body,
    }];
    let mode = if sealed {
        Mode::Sealed {
            params: seal::Params {
                chunk_shift: 12,
                ..seal::Params::default()
            },
            recipients: &recipients,
            dump_key: Some(DumpKey::from_bytes([0x11; 32])),
            metadata: seal::Metadata {
                hostname: b"fuzz",
                ..Default::default()
            },
        }
    } else {
        Mode::Plain
    };
    let chunk_size = if sealed { 4096 } else { PLAIN_CHUNK_SIZE };
    let mut slot_state = vec![SlotState::EMPTY; SLOTS];
    // Two to five chunk buffers: the spare ones keep sent chunks for retransmissions.
    let chunk_buffers = 2 + usize::from(input.u8() % 4);
    let mut chunks = vec![0u8; chunk_buffers_len(chunk_buffers, chunk_size)];
    let mut header = vec![0u8; HEADER_BUFFER_LEN];
    // Few tag slots: the throttle on chunks still unacked is exercised too.
    let mut tags = vec![[0u8; TAG_LEN]; 3];
    let config = Config {
        payload_size: PAYLOAD,
        window: SLOTS,
        herald_path: b"fuzz",
        give_up_after: Duration::from_secs(3),
        ..Config::new(server, mode)
    };
    let buffers = Buffers {
        slot_state: &mut slot_state,
        chunks: &mut chunks,
        header: &mut header,
        tags: &mut tags,
    };
    let mut rng = rand::rngs::StdRng::seed_from_u64(3);
    let mut now = Instant::from_millis(0);
    let Ok(mut client) = Client::new(config, buffers, &mut rng, now) else {
        return;
    };

    let mut sent: Vec<u32> = Vec::new();
    // The source the client re-reads: the dump as written, or changed from `changed_from` on.
    let mut source: Vec<u8> = Vec::new();
    let mut first_sends: HashMap<u32, Vec<u8>> = HashMap::new();
    let mut changed_seen = false;
    let mut learnt: Option<SocketAddr> = None;
    let mut outcomes = 0;
    let mut buf = vec![0u8; datagram_len(PAYLOAD)];
    while !input.0.is_empty() {
        let op = input.u8();
        let from = addrs[usize::from(op >> 6)];
        match op & 7 {
            0 => {
                let n = usize::from(input.u16() % 9000);
                let fill = input.u8();
                let data: Vec<u8> = (0..n).map(|i| fill.wrapping_add(i as u8)).collect();
                let taken = client.write(&data);
                for &b in &data[..taken] {
                    let changed = changed_from.is_some_and(|from| source.len() >= from);
                    source.push(if changed { b ^ 0x80 } else { b });
                }
            }
            1 | 2 => {
                if !sent.is_empty() {
                    let seqno = sent[usize::from(input.u16()) % sent.len()];
                    client.handle_datagram(now, from, &seqno.to_be_bytes());
                }
            }
            3 => {
                let seqno = input.u32();
                client.handle_datagram(now, from, &seqno.to_be_bytes());
            }
            4 => {
                let n = usize::from(input.u8() % 40);
                let bytes = input.bytes(n).to_vec();
                client.handle_datagram(now, from, &bytes);
            }
            5 => {
                now = now + Duration::from_micros(u64::from(input.u16()) * 50);
                if let Some(t) = client.poll_timeout()
                    && t <= now
                {
                    client.handle_timeout(now);
                }
            }
            6 => {
                if let Some(t) = client.poll_timeout() {
                    now = now.max(t);
                    client.handle_timeout(now);
                }
            }
            _ => {
                if op & 8 == 0 {
                    client.finish(None);
                } else {
                    client.abort();
                }
            }
        }
        loop {
            let was_closed = client.is_closed();
            let Some(t) = client.poll_transmit(now, &mut buf, &source[..]) else {
                break;
            };
            assert!(!was_closed && !client.is_closed(), "a datagram from a closed client");
            assert!(t.len <= datagram_len(PAYLOAD), "datagram of {} bytes", t.len);
            let packet = Packet::new_checked(&buf[..t.len]).expect("client sends well-formed messages");
            let first = first_sends
                .entry(packet.seqno())
                .or_insert_with(|| buf[..t.len].to_vec());
            // Plain mode sends a changed source's bytes as they are (no nonce to reuse); sealed never does.
            if sealed || changed_from.is_none() {
                assert!(
                    first[..] == buf[..t.len],
                    "seqno {} resent with other bytes",
                    packet.seqno()
                );
            }
            if packet.msg_type() == 1 {
                assert_eq!(t.destination, server, "herald to {}", t.destination);
            } else {
                // Data goes only to the session address the herald's ack came from.
                assert!(t.destination.ip() == server.ip(), "data to {}", t.destination);
                match learnt {
                    None => learnt = Some(t.destination),
                    Some(a) => assert_eq!(a, t.destination, "session address changed"),
                }
            }
            sent.push(packet.seqno());
        }
        while let Some(event) = client.poll_event() {
            if matches!(event, Event::Done(_) | Event::Failed(_)) {
                outcomes += 1;
            }
            if let Event::Failed(FailReason::SourceChanged) = event {
                changed_seen = true;
            }
        }
        assert!(outcomes <= 1, "more than one outcome");
    }
    assert!(
        !changed_seen || changed_from.is_some(),
        "an unchanged source reported as changed"
    );
});
