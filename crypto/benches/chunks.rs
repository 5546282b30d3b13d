//! Chunk seal/open throughput of the sealed format, per AEAD, at 64 KiB chunks (the default chunk shift 16).
//!
//! `cargo bench -p sealdump-crypto --bench chunks` (add `-- --quick` for a short run) measures the RustCrypto
//! backend; add `--features accel` for the ring backend. The bench names carry the backend. Figures and the
//! OpenSSL baseline measured in the same sitting are in docs/perf/crypto.md.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

// The deterministic ChaCha20-keystream rng of the integration tests (the rest of that module is unused here).
#[path = "../tests/common/mod.rs"]
mod common;

use std::hint::black_box;

use common::TestRng;
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use sealdump_crypto::seal::{self, HeaderView, Metadata, Params, Recipient};
use sealdump_crypto::{AeadId, DumpKey, TAG_LEN, X25519Secret};

/// Which AEAD backend this build of sealdump-crypto uses.
const BACKEND: &str = if cfg!(feature = "accel") {
    "ring"
} else {
    "rustcrypto"
};

fn bench_chunks(c: &mut Criterion) {
    let mut rng = TestRng::new(7);
    let secret = X25519Secret::generate(&mut rng);
    let dk = DumpKey::generate(&mut rng);
    let mut group = c.benchmark_group("chunk_64KiB");
    group.throughput(Throughput::Bytes(1 << 16));
    for aead in [AeadId::ChaCha20Poly1305, AeadId::Aes256Gcm] {
        let params = Params {
            aead,
            chunk_shift: 16,
            ..Params::default()
        };
        let mut header = [0u8; seal::MAX_HEADER_LEN];
        let (len, sealer) = seal::write_header(
            &mut header,
            &params,
            &dk,
            [1; 16],
            &[Recipient::X25519 {
                public: secret.public_key(),
            }],
            &Metadata::default(),
            &mut rng,
        )
        .unwrap();
        let opener = HeaderView::parse(&header[..len]).unwrap().open(&dk).unwrap();

        let mut buf = vec![0x5a_u8; 1 << 16];
        let mut index = 0u64;
        group.bench_function(format!("seal/{aead}/{BACKEND}"), |b| {
            b.iter(|| {
                index += 1;
                black_box(sealer.seal_chunk(index, black_box(&mut buf)).unwrap())
            })
        });

        let mut record = vec![0x5a_u8; (1 << 16) + TAG_LEN];
        let tag = sealer.seal_chunk(3, &mut record[..1 << 16]).unwrap();
        record[1 << 16..].copy_from_slice(&tag);
        group.bench_function(format!("open/{aead}/{BACKEND}"), |b| {
            b.iter_batched_ref(
                || record.clone(),
                |r| black_box(opener.open_chunk(3, r).unwrap()),
                BatchSize::SmallInput,
            )
        });
        // What the decryptor calls: no ciphertext copy to restore a failed record (with accel).
        group.bench_function(format!("open_or_wipe/{aead}/{BACKEND}"), |b| {
            b.iter_batched_ref(
                || record.clone(),
                |r| black_box(opener.open_chunk_or_wipe(3, r).unwrap()),
                BatchSize::SmallInput,
            )
        });
    }
    group.finish();
}

criterion_group!(benches, bench_chunks);
criterion_main!(benches);
