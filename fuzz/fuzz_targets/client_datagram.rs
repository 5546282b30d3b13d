//! client-core's sans-I/O client (plain or sealed, after a fixed set-up) driven by an arbitrary sequence of
//! datagrams — acks of sent seqnos, arbitrary acks and bytes from the session, the herald address and strangers —
//! plus writes, time jumps, timeouts, finish and abort. Checked besides "never panics": every transmitted datagram
//! is a well-formed netdump message no longer than a slot, goes to the herald address or the learnt session
//! address, and the client reports at most one outcome (Done or Failed).
#![no_main]

use core::time::Duration;

use libfuzzer_sys::fuzz_target;
use rand::SeedableRng;
use sealdump_client_core::{
    Buffers, Client, Config, DumpKey, Event, HEADER_BUFFER_LEN, Instant, Mode, SlotState, SocketAddr, seal,
    slot_len,
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

    let sealed = input.u8() & 1 == 1;
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
    let mut slots = vec![0u8; SLOTS * slot_len(PAYLOAD)];
    let mut slot_state = vec![SlotState::EMPTY; SLOTS];
    let mut chunk = vec![0u8; 4096 + 16];
    let mut header = vec![0u8; HEADER_BUFFER_LEN];
    let config = Config {
        payload_size: PAYLOAD,
        window: SLOTS,
        herald_path: b"fuzz",
        give_up_after: Duration::from_secs(3),
        ..Config::new(server, mode)
    };
    let buffers = Buffers {
        slots: &mut slots,
        slot_len: slot_len(PAYLOAD),
        slot_state: &mut slot_state,
        chunk: &mut chunk,
        header: &mut header,
    };
    let mut rng = rand::rngs::StdRng::seed_from_u64(3);
    let mut now = Instant::from_millis(0);
    let Ok(mut client) = Client::new(config, buffers, &mut rng, now) else {
        return;
    };

    let mut sent: Vec<u32> = Vec::new();
    let mut learnt: Option<SocketAddr> = None;
    let mut outcomes = 0;
    let mut buf = vec![0u8; slot_len(PAYLOAD) + 64];
    while !input.0.is_empty() {
        let op = input.u8();
        let from = addrs[usize::from(op >> 6)];
        match op & 7 {
            0 => {
                let n = usize::from(input.u16() % 9000);
                client.write(&vec![0x5a; n]);
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
        while let Some(t) = client.poll_transmit(now, &mut buf) {
            assert!(t.len <= slot_len(PAYLOAD), "datagram of {} bytes", t.len);
            let packet = Packet::new_checked(&buf[..t.len]).expect("client sends well-formed messages");
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
        }
        assert!(outcomes <= 1, "more than one outcome");
    }
});
