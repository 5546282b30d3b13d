//! CPU cost of the client state machine alone: a dump pushed through `Client` with every message acked at
//! once in memory (no sockets, no loss). Prints MB/s of dump bytes for plain and sealed modes and the RAM the
//! configuration needs.
//!
//! `cargo run --release -p sealdump-client-core --example throughput [MiB]`
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Instant as WallClock;

use sealdump_client_core::{
    Buffers, Client, Config, DumpSource, Event, Instant, Mode, SlotState, SourceError, TAG_LEN,
    chunk_buffer_len, datagram_len, ram_required, seal, tag_slots,
};
use sealdump_wire::netdump::Packet;

/// The dump: one block repeated (offset `o` is `block[o % len]`).
struct Repeated<'a>(&'a [u8]);

impl DumpSource for Repeated<'_> {
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<(), SourceError> {
        for (i, b) in buf.iter_mut().enumerate() {
            *b = self.0[((offset + i as u64) % self.0.len() as u64) as usize];
        }
        Ok(())
    }
}

fn main() {
    let mib: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(256);
    let data: Vec<u8> = (0..1 << 20)
        .map(|i: u32| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let public = sealdump_crypto::X25519Secret::from_bytes([5; 32]).public_key();
    let recipients = [seal::Recipient::X25519 { public }];
    let server = "127.0.0.1:20023".parse().unwrap();
    for window in [256, 1024] {
        println!(
            "RAM for window {window}, payload 1448, chunk 64 KiB: {} bytes (Client itself: {} bytes)",
            ram_required(window, 1448, 65_536),
            core::mem::size_of::<Client<'static>>()
        );
    }
    for (name, aead) in [
        ("plain", None),
        (
            "sealed chacha20-poly1305",
            Some(sealdump_crypto::AeadId::ChaCha20Poly1305),
        ),
        ("sealed aes-256-gcm", Some(sealdump_crypto::AeadId::Aes256Gcm)),
    ] {
        for payload in [1448, 8192] {
            let mode = match aead {
                None => Mode::Plain,
                Some(aead) => Mode::Sealed {
                    params: seal::Params {
                        aead,
                        ..seal::Params::default()
                    },
                    recipients: &recipients,
                    dump_key: None,
                    metadata: seal::Metadata::default(),
                },
            };
            let mut states = vec![SlotState::EMPTY; 256];
            let mut chunks = vec![0u8; chunk_buffer_len(65_536)];
            let mut header = vec![0u8; 4096];
            let mut tags = vec![[0u8; TAG_LEN]; tag_slots(256, payload, 65_536)];
            let buffers = Buffers {
                slot_state: &mut states,
                chunks: &mut chunks,
                header: &mut header,
                tags: &mut tags,
            };
            let config = Config {
                payload_size: payload,
                ..Config::new(server, mode)
            };
            let mut rng = rand::rng();
            let mut client = Client::new(config, buffers, &mut rng, Instant::from_micros(0)).unwrap();
            let mut buf = vec![0u8; datagram_len(payload)];
            let started = WallClock::now();
            let mut now = 0u64;
            let mut remaining = mib;
            let mut pos = 0;
            let mut finished = false;
            let stats = loop {
                now += 1;
                let t = Instant::from_micros(now);
                while remaining > 0 {
                    let n = client.write(&data[pos..]);
                    if n == 0 {
                        break;
                    }
                    pos += n;
                    if pos == data.len() {
                        pos = 0;
                        remaining -= 1;
                    }
                }
                if remaining == 0 && !finished {
                    client.finish(None);
                    finished = true;
                }
                let mut acks = Vec::new();
                while let Some(tx) = client.poll_transmit(t, &mut buf, &Repeated(&data)) {
                    acks.push(Packet::new_unchecked(&buf[..tx.len]).seqno());
                }
                for seqno in acks {
                    client.handle_datagram(t, server, &seqno.to_be_bytes());
                }
                match std::iter::from_fn(|| client.poll_event()).find(|e| !matches!(e, Event::Progress(_))) {
                    Some(Event::Done(stats)) => break stats,
                    Some(Event::Failed(r)) => panic!("{r}"),
                    _ => {}
                }
            };
            let secs = started.elapsed().as_secs_f64();
            println!(
                "{name:<26} payload {payload:>5}: {:>7.0} MB/s ({} packets)",
                stats.bytes_written as f64 / secs / 1e6,
                stats.packets_sent
            );
        }
    }
}
