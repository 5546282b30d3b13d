//! Writes a sealed dump for benchmarks:
//! `make_sealed_dump DIR SIZE_MIB [chacha20-poly1305|aes-256-gcm] [SHIFT] [ZERO_PERCENT]`
//! creates DIR/analyst.key (X25519, PKCS#8 PEM), DIR/key.bench.0, DIR/vmcore_encrypted.bench.0 and
//! DIR/plain.bench.0 (the same plaintext, for baselines that need a same-size file). The plaintext is incompressible
//! except for ZERO_PERCENT (default 0) of its 4 KiB pages, which are zeros, spread evenly, like a crash dump's.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufWriter, Write};
use std::path::PathBuf;

use sealdump_crypto::keys::PrivateKey;
use sealdump_crypto::seal::{self, Metadata, Params, Recipient, Trailer, TrailerStatus};
use sealdump_crypto::{AeadId, DumpKey, X25519Secret};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 3 {
        eprintln!("usage: make_sealed_dump DIR SIZE_MIB [chacha20-poly1305|aes-256-gcm] [SHIFT]");
        std::process::exit(2);
    }
    let dir = PathBuf::from(&args[1]);
    let size: u64 = args[2].parse::<u64>().expect("SIZE_MIB") << 20;
    let aead = args
        .get(3)
        .map(|a| AeadId::from_name(a).expect("aead"))
        .unwrap_or(AeadId::ChaCha20Poly1305);
    let chunk_shift: u8 = args.get(4).map(|s| s.parse().expect("shift")).unwrap_or(16);
    let zero_percent: u64 = args.get(5).map(|s| s.parse().expect("zero percent")).unwrap_or(0);

    let mut rng = rand::rng();
    let secret = X25519Secret::generate(&mut rng);
    let public = secret.public_key();
    sealdump_crypto::keys::write_private_key_file(
        &dir.join("analyst.key"),
        &PrivateKey::X25519(secret),
        None,
        true,
    )
    .unwrap();

    let dk = DumpKey::generate(&mut rng);
    let params = Params {
        aead,
        chunk_shift,
        compression: 0,
        time: 0,
    };
    let metadata = Metadata {
        hostname: b"bench",
        expected_length: size,
        ..Metadata::default()
    };
    let mut header = [0u8; seal::MAX_HEADER_LEN];
    let (len, sealer) = seal::write_header(
        &mut header,
        &params,
        &dk,
        [9; 16],
        &[Recipient::X25519 { public }],
        &metadata,
        &mut rng,
    )
    .unwrap();
    std::fs::write(dir.join("key.bench.0"), &header[..len]).unwrap();

    let mut stream = BufWriter::with_capacity(
        4 << 20,
        std::fs::File::create(dir.join("vmcore_encrypted.bench.0")).unwrap(),
    );
    let mut plain_out =
        BufWriter::with_capacity(4 << 20, std::fs::File::create(dir.join("plain.bench.0")).unwrap());
    let chunk = sealer.chunk_size();
    let mut buf = vec![0u8; chunk];
    let mut x = 0x2545_f491_4f6c_dd1du64;
    let mut written = 0u64;
    let mut index = 0u64;
    while written < size {
        let n = (size - written).min(chunk as u64) as usize;
        // Incompressible but cheap plaintext (xorshift64), with the requested share of zero pages.
        for (k, page) in buf[..n].chunks_mut(4096).enumerate() {
            let page_index = written / 4096 + k as u64;
            if page_index * zero_percent % 100 + zero_percent >= 100 {
                page.fill(0);
                continue;
            }
            for word in page.chunks_mut(8) {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                word.copy_from_slice(&x.to_le_bytes()[..word.len()]);
            }
        }
        plain_out.write_all(&buf[..n]).unwrap();
        let tag = sealer.seal_chunk(index, &mut buf[..n]).unwrap();
        stream.write_all(&buf[..n]).unwrap();
        stream.write_all(&tag).unwrap();
        written += n as u64;
        index += 1;
    }
    let mut trailer = [0u8; seal::TRAILER_RECORD_LEN];
    sealer
        .seal_trailer(
            &Trailer {
                total_len: size,
                chunk_count: index,
                status: TrailerStatus::Complete,
            },
            &mut trailer,
        )
        .unwrap();
    stream.write_all(&trailer).unwrap();
    stream.flush().unwrap();
    plain_out.flush().unwrap();
}
