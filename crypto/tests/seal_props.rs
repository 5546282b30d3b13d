//! Property tests of the sealed format: every reorder, swap, truncation, duplicate, deletion, header edit or single
//! bit flip is an error; header emit/parse round-trips; parsers never panic on arbitrary input.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::OnceLock;

use common::{Sealed, TestRng, open_all, seal_all};
use proptest::prelude::*;
use sealdump_crypto::seal::{self, HeaderView, Metadata, Params, Recipient, StanzaKind, TrailerStatus};
use sealdump_crypto::{AeadId, DumpKey, X25519Secret};

const SHIFT: u8 = 12;
const RECORD: usize = (1 << SHIFT) + 16;

struct Fixture {
    secret: X25519Secret,
    dk: DumpKey,
    plain: Vec<u8>,
    sealed: Sealed,
}

/// 5 full chunks and one short one, then the trailer.
fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let mut rng = TestRng::new(42);
        let secret = X25519Secret::generate(&mut rng);
        let dk = DumpKey::generate(&mut rng);
        let plain: Vec<u8> = (0..5 * 4096 + 1000).map(|i| (i % 253) as u8).collect();
        let params = Params {
            aead: AeadId::ChaCha20Poly1305,
            chunk_shift: SHIFT,
            compression: 0,
            time: 77,
        };
        let meta = Metadata {
            hostname: b"h",
            panic_string: b"p",
            ..Metadata::default()
        };
        let sealed = seal_all(
            &params,
            &dk,
            [5; 16],
            &[Recipient::X25519 {
                public: secret.public_key(),
            }],
            &meta,
            &plain,
            TrailerStatus::Complete,
            &mut rng,
        );
        Fixture {
            secret,
            dk,
            plain,
            sealed,
        }
    })
}

/// Full decryption as the decryptor does it, starting from the private key.
fn decrypt(header: &[u8], stream: &[u8]) -> Result<Vec<u8>, sealdump_crypto::Error> {
    let f = fixture();
    let view = HeaderView::parse(header)?;
    let (_, opener) = view.open_x25519(&f.secret)?;
    common::open_stream(&opener, stream).map(|(p, _)| p)
}

fn records(stream: &[u8]) -> Vec<Vec<u8>> {
    // 5 full records, the short one, the trailer.
    let mut out: Vec<Vec<u8>> = stream[..5 * RECORD].chunks(RECORD).map(<[u8]>::to_vec).collect();
    out.push(stream[5 * RECORD..stream.len() - 48].to_vec());
    out.push(stream[stream.len() - 48..].to_vec());
    out
}

#[test]
fn fixture_opens() {
    let f = fixture();
    assert_eq!(decrypt(&f.sealed.header, &f.sealed.stream).unwrap(), f.plain);
    assert_eq!(
        open_all(&f.sealed.header, &f.sealed.stream, &f.dk).unwrap().0,
        f.plain
    );
    assert_eq!(records(&f.sealed.stream).len(), 7);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn any_single_bit_flip_fails(bit in 0usize..(8 * 9000)) {
        let f = fixture();
        let total = f.sealed.header.len() + f.sealed.stream.len();
        let bit = bit % (8 * total);
        let (mut h, mut s) = (f.sealed.header.clone(), f.sealed.stream.clone());
        let byte = bit / 8;
        if byte < h.len() { h[byte] ^= 1 << (bit % 8) } else { s[byte - h.len()] ^= 1 << (bit % 8) }
        prop_assert!(decrypt(&h, &s).is_err());
    }

    #[test]
    fn any_header_edit_fails(pos in 0usize..4096, value: u8) {
        let f = fixture();
        let mut h = f.sealed.header.clone();
        let pos = pos % h.len();
        prop_assume!(h[pos] != value);
        h[pos] = value;
        prop_assert!(decrypt(&h, &f.sealed.stream).is_err());
        // Even with the right dump key in hand, an edited header does not open.
        prop_assert!(HeaderView::parse(&h).and_then(|v| v.open(&f.dk)).is_err());
    }

    #[test]
    fn any_truncation_fails(cut in 1usize..(6 * RECORD)) {
        let f = fixture();
        let s = &f.sealed.stream;
        let keep = s.len() - (cut % s.len()).max(1);
        prop_assert!(decrypt(&f.sealed.header, &s[..keep]).is_err());
        // Truncating the header fails too.
        let h = &f.sealed.header;
        prop_assert!(decrypt(&h[..cut % h.len()], s).is_err());
    }

    #[test]
    fn any_swap_or_reorder_fails(perm in Just((0usize..7).collect::<Vec<_>>()).prop_shuffle()) {
        let f = fixture();
        let recs = records(&f.sealed.stream);
        prop_assume!(perm.iter().enumerate().any(|(i, &p)| i != p));
        let s: Vec<u8> = perm.iter().flat_map(|&p| recs[p].clone()).collect();
        prop_assert!(decrypt(&f.sealed.header, &s).is_err());
    }

    #[test]
    fn any_duplicate_or_deletion_fails(i in 0usize..7, at in 0usize..8, delete: bool) {
        let f = fixture();
        let mut recs = records(&f.sealed.stream);
        if delete {
            recs.remove(i);
        } else {
            let copy = recs[i].clone();
            recs.insert(at.min(recs.len()), copy);
        }
        let s: Vec<u8> = recs.concat();
        prop_assert!(decrypt(&f.sealed.header, &s).is_err());
    }

    #[test]
    fn chunk_from_another_dump_fails(i in 0usize..5) {
        // Same keys and plaintext, different dump id: records must not splice across dumps.
        let f = fixture();
        let mut rng = TestRng::new(43);
        let params = Params { chunk_shift: SHIFT, ..Params::default() };
        let other = seal_all(&params, &f.dk, [6; 16], &[Recipient::X25519 { public: f.secret.public_key() }],
            &Metadata::default(), &f.plain, TrailerStatus::Complete, &mut rng);
        let mut s = f.sealed.stream.clone();
        s[i * RECORD..(i + 1) * RECORD].copy_from_slice(&other.stream[i * RECORD..(i + 1) * RECORD]);
        prop_assert!(decrypt(&f.sealed.header, &s).is_err());
    }

    #[test]
    fn header_round_trip(
        aead in prop_oneof![Just(AeadId::Aes256Gcm), Just(AeadId::ChaCha20Poly1305)],
        chunk_shift in 12u8..=20,
        compression: u8,
        time: u64,
        dump_id: [u8; 16],
        n_x25519 in 0usize..4,
        rsa_bodies in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 1..400), 0..4),
        hostname in proptest::collection::vec(any::<u8>(), 0..300),
        kernel_version in proptest::collection::vec(any::<u8>(), 0..100),
        panic_string in proptest::collection::vec(any::<u8>(), 0..300),
        architecture in proptest::collection::vec(any::<u8>(), 0..20),
        expected_length: u64,
        host_uuid: [u8; 16],
        seed: u8,
    ) {
        prop_assume!(n_x25519 + rsa_bodies.len() >= 1);
        let mut rng = TestRng::new(seed);
        let dk = DumpKey::generate(&mut rng);
        let secrets: Vec<X25519Secret> = (0..n_x25519).map(|_| X25519Secret::generate(&mut rng)).collect();
        let mut recipients: Vec<Recipient<'_>> =
            secrets.iter().map(|s| Recipient::X25519 { public: s.public_key() }).collect();
        for (k, body) in rsa_bodies.iter().enumerate() {
            recipients.push(Recipient::Prewrapped { kind: StanzaKind::RsaOaepSha256, key_id: [k as u8; 8], body });
        }
        let params = Params { aead, chunk_shift, compression, time };
        let meta = Metadata {
            hostname: &hostname, kernel_version: &kernel_version, panic_string: &panic_string,
            architecture: &architecture, expected_length, host_uuid,
        };
        let mut out = vec![0u8; seal::MAX_HEADER_LEN];
        let (len, sealer) = seal::write_header(&mut out, &params, &dk, dump_id, &recipients, &meta, &mut rng).unwrap();
        let view = HeaderView::parse(&out[..len]).unwrap();
        prop_assert_eq!(view.header_len(), len);
        prop_assert_eq!(view.aead(), aead);
        prop_assert_eq!(view.chunk_shift(), chunk_shift);
        prop_assert_eq!(view.compression(), compression);
        prop_assert_eq!(view.time(), time);
        prop_assert_eq!(view.dump_id(), dump_id);
        prop_assert_eq!(sealer.chunk_size(), 1usize << chunk_shift);
        let stanzas: Vec<_> = view.stanzas().collect();
        prop_assert_eq!(stanzas.len(), recipients.len());
        for (s, secret) in stanzas.iter().zip(&secrets) {
            prop_assert_eq!(s.kind, StanzaKind::X25519Hpke);
            prop_assert_eq!(s.key_id, secret.key_id());
        }
        for (s, body) in stanzas[n_x25519..].iter().zip(&rsa_bodies) {
            prop_assert_eq!(s.kind, StanzaKind::RsaOaepSha256);
            prop_assert_eq!(s.body, &body[..]);
        }
        let opener = view.open(&dk).unwrap();
        let m = opener.metadata();
        let cut = |v: &Vec<u8>| v[..v.len().min(255)].to_vec();
        prop_assert_eq!(m.hostname(), &cut(&hostname)[..]);
        prop_assert_eq!(m.kernel_version(), &kernel_version[..]);
        prop_assert_eq!(m.panic_string(), &cut(&panic_string)[..]);
        prop_assert_eq!(m.architecture(), &architecture[..]);
        prop_assert_eq!(m.expected_length(), expected_length);
        prop_assert_eq!(m.host_uuid(), host_uuid);
        for s in &secrets {
            let (k, _) = view.open_x25519(s).unwrap();
            prop_assert_eq!(k.as_bytes(), dk.as_bytes());
        }
        // Trailing bytes after the header are ignored (the key blob may be padded).
        out[len..len + 4].copy_from_slice(b"junk");
        prop_assert_eq!(HeaderView::parse(&out[..len + 4]).unwrap().header_len(), len);
    }

    #[test]
    fn parsers_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..1200), index: u64) {
        let f = fixture();
        let _ = HeaderView::parse(&bytes).map(|v| (v.stanzas().count(), v.open(&f.dk).is_ok()));
        // Arbitrary bytes behind a valid prefix, so parsing goes deep.
        let mut h = f.sealed.header[..44.min(bytes.len() + 20)].to_vec();
        h.extend_from_slice(&bytes);
        let _ = HeaderView::parse(&h).map(|v| (v.stanzas().count(), v.open(&f.dk).is_ok()));
        let opener = HeaderView::parse(&f.sealed.header).unwrap().open(&f.dk).unwrap();
        let mut rec = bytes.clone();
        prop_assert!(opener.open_chunk(index, &mut rec).is_err());
        prop_assert!(opener.open_trailer(index, &bytes).is_err());
        let _ = opener.trailer_position(index);
    }
}
