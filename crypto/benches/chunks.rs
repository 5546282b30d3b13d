//! Chunk seal/open throughput of the sealed format, per AEAD, at 64 KiB chunks (the default chunk shift 16).
//!
//! `cargo bench -p sealdump-crypto --bench chunks` (add `-- --quick` for a short run) measures the RustCrypto
//! backend; add `--features accel` for the ring backend. The bench names carry the backend. Figures and the
//! OpenSSL baseline measured in the same sitting are in docs/perf/crypto.md.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::convert::Infallible;
use std::hint::black_box;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use rand_core::{TryCryptoRng, TryRng};
use sealdump_crypto::ekcd::ChaCha20Legacy;
use sealdump_crypto::seal::{self, HeaderView, Metadata, Params, Recipient};
use sealdump_crypto::{AeadId, DumpKey, TAG_LEN, X25519Secret};

/// Deterministic bench rng: a ChaCha20 keystream.
struct BenchRng(ChaCha20Legacy);

impl TryRng for BenchRng {
    type Error = Infallible;
    fn try_next_u32(&mut self) -> Result<u32, Infallible> {
        let mut b = [0; 4];
        self.try_fill_bytes(&mut b)?;
        Ok(u32::from_le_bytes(b))
    }
    fn try_next_u64(&mut self) -> Result<u64, Infallible> {
        let mut b = [0; 8];
        self.try_fill_bytes(&mut b)?;
        Ok(u64::from_le_bytes(b))
    }
    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Infallible> {
        dst.fill(0);
        self.0.apply(dst);
        Ok(())
    }
}
impl TryCryptoRng for BenchRng {}

/// Which AEAD backend this build of sealdump-crypto uses.
const BACKEND: &str = if cfg!(feature = "accel") {
    "ring"
} else {
    "rustcrypto"
};

fn bench_chunks(c: &mut Criterion) {
    let mut rng = BenchRng(ChaCha20Legacy::new(&[7; 32], &[0; 8]));
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
