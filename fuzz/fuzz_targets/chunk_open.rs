//! Chunk and trailer opening with a fixed dump key. Input byte 0 picks the mode:
//! - even: the rest is (index: u64 BE, record) fed to `open_chunk` and `open_trailer` — random bytes never
//!   authenticate, and nothing panics;
//! - odd: the rest is (index, flip position: u16, plaintext) — `seal_chunk` then `open_chunk` returns the
//!   plaintext, and the same record with one bit flipped, a different index or a cut tag is rejected.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use rand::SeedableRng;
use sealdump_crypto::seal::{self, ChunkOpener, ChunkSealer, HeaderView};
use sealdump_crypto::{AeadId, DumpKey, TAG_LEN};

const DUMP_KEY: [u8; 32] = [0x5d; 32];

/// One header per AEAD (chunks of 4 KiB), built once with a seeded RNG.
fn fixture(aead_index: usize) -> &'static (ChunkSealer, ChunkOpener) {
    static FIXTURES: OnceLock<[(ChunkSealer, ChunkOpener); 2]> = OnceLock::new();
    let all = FIXTURES.get_or_init(|| {
        [AeadId::ChaCha20Poly1305, AeadId::Aes256Gcm].map(|aead| {
            let mut rng = rand::rngs::StdRng::seed_from_u64(7);
            let dk = DumpKey::from_bytes(DUMP_KEY);
            let params = seal::Params {
                aead,
                chunk_shift: 12,
                ..seal::Params::default()
            };
            let recipient = seal::Recipient::X25519 { public: [9; 32] };
            let mut header = [0u8; seal::MAX_HEADER_LEN];
            let (len, sealer) = seal::write_header(
                &mut header,
                &params,
                &dk,
                [1; 16],
                &[recipient],
                &seal::Metadata::default(),
                &mut rng,
            )
            .expect("fixed header");
            let opener = HeaderView::parse(&header[..len])
                .expect("parse")
                .open(&dk)
                .expect("open");
            (sealer, opener)
        })
    });
    &all[aead_index]
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let (sealer, opener) = fixture(usize::from(mode >> 1) & 1);
    let Some((index, rest)) = rest.split_first_chunk::<8>() else {
        return;
    };
    let index = u64::from_be_bytes(*index);
    let chunk = opener.chunk_size();

    if mode & 1 == 0 {
        let mut record = rest.to_vec();
        assert!(
            opener.open_chunk(index, &mut record).is_err(),
            "forged record authenticated"
        );
        assert!(
            opener.open_trailer(index, rest).is_err(),
            "forged trailer authenticated"
        );
        if let Some((i, off)) = opener.trailer_position(rest.len() as u64) {
            // The trailer is the last 48 bytes, right after data record i - 1 (which may be short).
            assert_eq!(off + 48, rest.len() as u64);
            assert!(opener.record_offset(i) >= off);
            assert!(i == 0 || opener.record_offset(i - 1) < off);
        }
        let _ = opener.record_offset(index);
        return;
    }

    let Some((flip, plain)) = rest.split_first_chunk::<2>() else {
        return;
    };
    if plain.is_empty() {
        return;
    }
    let plain = &plain[..plain.len().min(chunk)];
    let mut record = plain.to_vec();
    let tag = sealer
        .seal_chunk(index, &mut record)
        .expect("seal a chunk of at most chunk_size");
    record.extend_from_slice(&tag);
    let sealed = record.clone();

    let n = opener.open_chunk(index, &mut record).expect("own record opens");
    assert_eq!(&record[..n], plain);

    let mut flipped = sealed.clone();
    let bit = usize::from(u16::from_be_bytes(*flip)) % (flipped.len() * 8);
    flipped[bit / 8] ^= 1 << (bit % 8);
    assert!(
        opener.open_chunk(index, &mut flipped).is_err(),
        "bit flip accepted"
    );

    let mut moved = sealed.clone();
    assert!(
        opener.open_chunk(index ^ 1, &mut moved).is_err(),
        "record accepted at another index"
    );

    let mut cut = sealed[..sealed.len() - 1].to_vec();
    assert!(opener.open_chunk(index, &mut cut).is_err(), "cut tag accepted");
    assert!(sealed.len() > TAG_LEN);
});
