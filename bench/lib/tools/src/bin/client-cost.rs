//! Bench-only programs for the client-cost and memory sections of bench/run.
//!
//! `client-cost client MIB AEAD [PAYLOAD [WINDOW]]`  push MIB MiB through a sealed `sealdump_client_core::Client`
//!                                          (X25519 recipient, window 256 unless given, every message acked at
//!                                          once in memory)
//! `client-cost aead MIB AEAD`              the raw AEAD alone: MIB MiB encrypted in place in 64 KiB chunks
//! `client-cost ram`                        `ram_required` at the defaults and a few other configurations
//!
//! Run the first two under `valgrind --tool=callgrind` at two sizes; the difference of the instruction counts
//! divided by the difference of the bytes is the per-byte cost without the fixed set-up (HPKE, key schedule).
//! AEAD is `chacha20-poly1305` or `aes-256-gcm`.
use aes_gcm::Aes256Gcm;
use chacha20poly1305::ChaCha20Poly1305;
use chacha20poly1305::aead::{AeadInOut, KeyInit};
use sealdump_client_core::{
    Buffers, Client, Config, DumpSource, Event, Instant, Mode, SlotState, SourceError, TAG_LEN,
    chunk_buffer_len, datagram_len, ram_required, seal, tag_slots,
};
use sealdump_crypto::AeadId;
use sealdump_wire::netdump::Packet;

const CHUNK: usize = 65_536;
const WINDOW: usize = 256;

fn aead_id(name: &str) -> AeadId {
    AeadId::from_name(name).unwrap_or_else(|| {
        eprintln!("unknown AEAD {name}");
        std::process::exit(2)
    })
}

fn dump_data() -> Vec<u8> {
    // Incompressible-looking bytes; the content does not change the cost of either path.
    (0..CHUNK as u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect()
}

/// The dump the client is fed: `dump_data()` over and over (offset `o` is `block[o % len]`).
struct Repeated<'a>(&'a [u8]);

impl DumpSource for Repeated<'_> {
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<(), SourceError> {
        for (i, b) in buf.iter_mut().enumerate() {
            *b = self.0[((offset + i as u64) % self.0.len() as u64) as usize];
        }
        Ok(())
    }
}

fn run_client(mib: usize, aead: AeadId, payload: usize, window: usize) -> u64 {
    let data = dump_data();
    let public = sealdump_crypto::X25519Secret::from_bytes([5; 32]).public_key();
    let recipients = [seal::Recipient::X25519 { public }];
    let server = "127.0.0.1:20023".parse().unwrap();
    let mode = Mode::Sealed {
        params: seal::Params {
            aead,
            ..seal::Params::default()
        },
        recipients: &recipients,
        dump_key: None,
        metadata: seal::Metadata::default(),
    };
    let mut states = vec![SlotState::EMPTY; window];
    let mut chunks = vec![0u8; chunk_buffer_len(CHUNK)];
    let mut header = vec![0u8; 4096];
    let mut tags = vec![[0u8; TAG_LEN]; tag_slots(window, payload, CHUNK)];
    let buffers = Buffers {
        slot_state: &mut states,
        chunks: &mut chunks,
        header: &mut header,
        tags: &mut tags,
    };
    let config = Config {
        payload_size: payload,
        window,
        ..Config::new(server, mode)
    };
    let mut rng = rand::rng();
    let mut client = Client::new(config, buffers, &mut rng, Instant::from_micros(0)).unwrap();
    let mut buf = vec![0u8; datagram_len(payload)];
    let mut acks = Vec::with_capacity(window);
    let (mut now, mut left, mut pos, mut finished) = (0u64, mib * (1 << 20), 0usize, false);
    loop {
        now += 1;
        let t = Instant::from_micros(now);
        while left > 0 {
            let end = data.len().min(pos + left);
            let n = client.write(&data[pos..end]);
            if n == 0 {
                break;
            }
            left -= n;
            pos = (pos + n) % data.len();
        }
        if left == 0 && !finished {
            client.finish(None);
            finished = true;
        }
        acks.clear();
        while let Some(tx) = client.poll_transmit(t, &mut buf, &Repeated(&data)) {
            acks.push(Packet::new_unchecked(&buf[..tx.len]).seqno());
        }
        for seqno in &acks {
            client.handle_datagram(t, server, &seqno.to_be_bytes());
        }
        while let Some(event) = client.poll_event() {
            match event {
                Event::Done(stats) => return stats.bytes_written,
                Event::Failed(reason) => panic!("client failed: {reason}"),
                _ => {}
            }
        }
    }
}

fn run_aead(mib: usize, aead: AeadId) -> u64 {
    let mut buf = dump_data();
    let key = [7u8; 32];
    let nonce = [0u8; 12];
    let aad = [0u8; 32]; // the sealed format authenticates a 32-byte header hash with every record
    let mut sink = 0u8;
    for i in 0..mib * (1 << 20) / CHUNK {
        let mut n = nonce;
        n[..8].copy_from_slice(&(i as u64).to_be_bytes());
        let tag = match aead {
            AeadId::ChaCha20Poly1305 => ChaCha20Poly1305::new(&key.into()).encrypt_inout_detached(
                &n.into(),
                &aad,
                buf.as_mut_slice().into(),
            ),
            _ => {
                Aes256Gcm::new(&key.into()).encrypt_inout_detached(&n.into(), &aad, buf.as_mut_slice().into())
            }
        }
        .unwrap();
        sink ^= tag[0];
    }
    std::hint::black_box(sink);
    (mib * (1 << 20)) as u64
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |i: usize, default: &str| args.get(i).cloned().unwrap_or_else(|| default.to_string());
    match arg(0, "").as_str() {
        "client" => {
            let payload = arg(3, "1448").parse().unwrap();
            let window = arg(4, &WINDOW.to_string()).parse().unwrap();
            let n = run_client(
                arg(1, "16").parse().unwrap(),
                aead_id(&arg(2, "chacha20-poly1305")),
                payload,
                window,
            );
            println!("bytes={n}");
        }
        "aead" => {
            let n = run_aead(
                arg(1, "16").parse().unwrap(),
                aead_id(&arg(2, "chacha20-poly1305")),
            );
            println!("bytes={n}");
        }
        "ram" => {
            for (window, payload) in [
                (256, 1448),
                (64, 1448),
                (256, 8192),
                (512, 1448),
                (1024, 1448),
                (4096, 1448),
            ] {
                println!(
                    "window={window} payload={payload} chunk={CHUNK} ram_bytes={}",
                    ram_required(window, payload, CHUNK)
                );
            }
            println!("client_struct_bytes={}", core::mem::size_of::<Client<'static>>());
        }
        _ => {
            eprintln!("usage: client-cost client|aead MIB AEAD [PAYLOAD] | client-cost ram");
            std::process::exit(2)
        }
    }
}
