//! Sealed format v1: round trips, key ids, metadata, trailer and error paths.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{Sealed, TestRng, open_all, seal_all};
use sealdump_crypto::seal::{
    self, HeaderView, Metadata, Params, Recipient, StanzaKind, Trailer, TrailerStatus, unwrap_x25519,
};
use sealdump_crypto::{AeadId, DumpKey, Error, X25519Secret, x25519_key_id, x25519_spki_der};

fn meta() -> Metadata<'static> {
    Metadata {
        hostname: b"crashy.example.org",
        kernel_version: b"FreeBSD 15.0-CURRENT #0",
        panic_string: b"page fault while in kernel mode",
        architecture: b"amd64",
        expected_length: 300_000,
        host_uuid: [7; 16],
    }
}

fn sample(aead: AeadId, shift: u8, len: usize) -> (X25519Secret, DumpKey, Vec<u8>, Sealed) {
    let mut rng = TestRng::new(1);
    let secret = X25519Secret::generate(&mut rng);
    let dk = DumpKey::generate(&mut rng);
    let plaintext: Vec<u8> = (0..len).map(|i| (i * 31 % 251) as u8).collect();
    let params = Params {
        aead,
        chunk_shift: shift,
        compression: 0,
        time: 1_700_000_000,
    };
    let sealed = seal_all(
        &params,
        &dk,
        [9; 16],
        &[Recipient::X25519 {
            public: secret.public_key(),
        }],
        &meta(),
        &plaintext,
        TrailerStatus::Complete,
        &mut rng,
    );
    (secret, dk, plaintext, sealed)
}

#[test]
fn round_trip_both_aeads_and_sizes() {
    for aead in [AeadId::ChaCha20Poly1305, AeadId::Aes256Gcm] {
        for (shift, len) in [
            (12, 0),
            (12, 1),
            (12, 4096),
            (12, 4097),
            (12, 3 * 4096 + 5),
            (16, 200_000),
            (20, 10),
        ] {
            let (secret, dk, plaintext, sealed) = sample(aead, shift, len);
            let view = HeaderView::parse(&sealed.header).unwrap();
            assert_eq!(view.aead(), aead);
            assert_eq!(view.chunk_shift(), shift);
            assert_eq!(view.header_len(), sealed.header.len());
            let (dk2, _) = view.open_x25519(&secret).unwrap();
            assert_eq!(dk2.as_bytes(), dk.as_bytes());
            let (out, trailer) = open_all(&sealed.header, &sealed.stream, &dk2).unwrap();
            assert_eq!(out, plaintext, "{aead:?} shift {shift} len {len}");
            assert_eq!(trailer.total_len, len as u64);
            assert_eq!(trailer.status, TrailerStatus::Complete);
        }
    }
}

#[test]
fn header_fields_stanzas_and_metadata() {
    let (secret, dk, _, sealed) = sample(AeadId::ChaCha20Poly1305, 16, 1000);
    let view = HeaderView::parse(&sealed.header).unwrap();
    assert_eq!(&sealed.header[..8], b"SEALDUMP");
    assert_eq!(view.dump_id(), [9; 16]);
    assert_eq!(view.time(), 1_700_000_000);
    assert_eq!(view.compression(), 0);
    let stanzas: Vec<_> = view.stanzas().collect();
    assert_eq!(stanzas.len(), 1);
    assert_eq!(stanzas[0].kind, StanzaKind::X25519Hpke);
    assert_eq!(stanzas[0].key_id, secret.key_id());
    assert_eq!(stanzas[0].body.len(), 80);
    let unwrapped = unwrap_x25519(&secret, &stanzas[0], &view).unwrap();
    assert_eq!(unwrapped.as_bytes(), dk.as_bytes());
    let opener = view.open(&dk).unwrap();
    let m = opener.metadata();
    assert_eq!(m.as_metadata(), meta());
    // Metadata never appears in clear.
    let hay = &sealed.header;
    assert!(!hay.windows(6).any(|w| w == b"crashy"));
    assert!(!hay.windows(10).any(|w| w == b"page fault"));
}

#[test]
fn key_id_is_sha256_of_spki_prefix() {
    let public = [0x42u8; 32];
    let der = x25519_spki_der(&public);
    assert_eq!(hex::encode(&der[..12]), "302a300506032b656e032100");
    let digest = sealdump_crypto::kdf::sha256(&der);
    assert_eq!(x25519_key_id(&public), digest[..8]);
    assert_eq!(sealdump_crypto::key_id_from_spki_der(&der), digest[..8]);
}

#[test]
fn rfc7748_public_key_matches() {
    // RFC 7748 §6.1 Alice.
    let sk: [u8; 32] = hex::decode("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a")
        .unwrap()
        .try_into()
        .unwrap();
    let pk = X25519Secret::from_bytes(sk).public_key();
    assert_eq!(
        hex::encode(pk),
        "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a"
    );
}

#[test]
fn wrong_key_and_wrong_dump_key_fail() {
    let (_, _, _, sealed) = sample(AeadId::Aes256Gcm, 12, 5000);
    let view = HeaderView::parse(&sealed.header).unwrap();
    let other = X25519Secret::from_bytes([5; 32]);
    assert_eq!(view.open_x25519(&other).unwrap_err(), Error::NoRecipient);
    assert_eq!(
        view.open(&DumpKey::from_bytes([1; 32])).unwrap_err(),
        Error::HeaderMac
    );
    // Right key id, wrong secret: build a stanza iterator by hand.
    let stanza = view.stanzas().next().unwrap();
    assert_eq!(unwrap_x25519(&other, &stanza, &view).unwrap_err(), Error::Unwrap);
}

#[test]
fn multiple_recipients_and_prewrapped() {
    let mut rng = TestRng::new(3);
    let a = X25519Secret::generate(&mut rng);
    let b = X25519Secret::generate(&mut rng);
    let dk = DumpKey::generate(&mut rng);
    let fake_rsa = [0xabu8; 384];
    let recipients = [
        Recipient::X25519 {
            public: a.public_key(),
        },
        Recipient::Prewrapped {
            kind: StanzaKind::RsaOaepSha256,
            key_id: [1; 8],
            body: &fake_rsa,
        },
        Recipient::X25519 {
            public: b.public_key(),
        },
    ];
    let sealed = seal_all(
        &Params::default(),
        &dk,
        [2; 16],
        &recipients,
        &Metadata::default(),
        b"hello",
        TrailerStatus::Complete,
        &mut rng,
    );
    let view = HeaderView::parse(&sealed.header).unwrap();
    let stanzas: Vec<_> = view.stanzas().collect();
    assert_eq!(stanzas.len(), 3);
    assert_eq!(stanzas[1].kind, StanzaKind::RsaOaepSha256);
    assert_eq!(stanzas[1].body, &fake_rsa[..]);
    assert_eq!(stanzas[1].key_id, [1; 8]);
    for s in [&a, &b] {
        let (k, opener) = view.open_x25519(s).unwrap();
        assert_eq!(k.as_bytes(), dk.as_bytes());
        assert_eq!(common::open_stream(&opener, &sealed.stream).unwrap().0, b"hello");
    }
}

#[test]
fn recipient_count_limits() {
    let mut rng = TestRng::new(4);
    let dk = DumpKey::generate(&mut rng);
    let mut out = [0u8; seal::MAX_HEADER_LEN];
    let r = |_| Recipient::X25519 {
        public: X25519Secret::from_bytes([3; 32]).public_key(),
    };
    let nine: Vec<_> = (0..9).map(r).collect();
    let m = Metadata::default();
    let p = Params::default();
    assert_eq!(
        seal::write_header(&mut out, &p, &dk, [0; 16], &[], &m, &mut rng).unwrap_err(),
        Error::NoRecipient
    );
    assert_eq!(
        seal::write_header(&mut out, &p, &dk, [0; 16], &nine, &m, &mut rng).unwrap_err(),
        Error::TooManyRecipients
    );
    let (len, _) = seal::write_header(&mut out, &p, &dk, [0; 16], &nine[..8], &m, &mut rng).unwrap();
    assert_eq!(HeaderView::parse(&out[..len]).unwrap().stanza_count(), 8);
    // Too big for 4096 bytes: 8 RSA-4096 bodies.
    let big = [0u8; 512];
    let rsa: Vec<_> = (0..8)
        .map(|_| Recipient::Prewrapped {
            kind: StanzaKind::RsaOaepSha256,
            key_id: [0; 8],
            body: &big,
        })
        .collect();
    assert_eq!(
        seal::write_header(&mut out, &p, &dk, [0; 16], &rsa, &m, &mut rng).unwrap_err(),
        Error::BufferTooSmall
    );
    // Output buffer too small.
    assert_eq!(
        seal::write_header(&mut out[..100], &p, &dk, [0; 16], &nine[..1], &m, &mut rng).unwrap_err(),
        Error::BufferTooSmall
    );
    // Chunk shift bounds.
    for shift in [11u8, 21] {
        let p = Params {
            chunk_shift: shift,
            ..Params::default()
        };
        assert_eq!(
            seal::write_header(&mut out, &p, &dk, [0; 16], &nine[..1], &m, &mut rng).unwrap_err(),
            Error::UnsupportedChunkShift(shift)
        );
    }
}

#[test]
fn long_metadata_is_cut_to_255() {
    let mut rng = TestRng::new(5);
    let s = X25519Secret::generate(&mut rng);
    let dk = DumpKey::generate(&mut rng);
    let long = [b'x'; 1000];
    let m = Metadata {
        panic_string: &long,
        hostname: &long[..255],
        ..Metadata::default()
    };
    let mut out = [0u8; seal::MAX_HEADER_LEN];
    let (len, _) = seal::write_header(
        &mut out,
        &Params::default(),
        &dk,
        [0; 16],
        &[Recipient::X25519 {
            public: s.public_key(),
        }],
        &m,
        &mut rng,
    )
    .unwrap();
    let opener = HeaderView::parse(&out[..len]).unwrap().open(&dk).unwrap();
    assert_eq!(opener.metadata().panic_string(), &long[..255]);
    assert_eq!(opener.metadata().hostname(), &long[..255]);
}

#[test]
fn aborted_trailer_is_authentic_partial() {
    let mut rng = TestRng::new(6);
    let s = X25519Secret::generate(&mut rng);
    let dk = DumpKey::generate(&mut rng);
    let params = Params {
        chunk_shift: 12,
        ..Params::default()
    };
    let data = vec![1u8; 10_000];
    let sealed = seal_all(
        &params,
        &dk,
        [1; 16],
        &[Recipient::X25519 {
            public: s.public_key(),
        }],
        &Metadata::default(),
        &data,
        TrailerStatus::Aborted,
        &mut rng,
    );
    let (out, trailer) = open_all(&sealed.header, &sealed.stream, &dk).unwrap();
    assert_eq!(out, data);
    assert_eq!(
        trailer,
        Trailer {
            total_len: 10_000,
            chunk_count: 3,
            status: TrailerStatus::Aborted
        }
    );
}

#[test]
fn sealer_rejects_bad_lengths_and_inconsistent_trailers() {
    let sealer = sealer_4k(AeadId::ChaCha20Poly1305, 7);
    assert_eq!(sealer.seal_chunk(0, &mut []).unwrap_err(), Error::ChunkLength);
    assert_eq!(
        sealer.seal_chunk(0, &mut [0u8; 4097]).unwrap_err(),
        Error::ChunkLength
    );
    let mut rec = [0u8; 48];
    for bad in [
        Trailer {
            total_len: 1,
            chunk_count: 0,
            status: TrailerStatus::Complete,
        },
        Trailer {
            total_len: 4096,
            chunk_count: 2,
            status: TrailerStatus::Complete,
        },
        Trailer {
            total_len: 8193,
            chunk_count: 2,
            status: TrailerStatus::Complete,
        },
        Trailer {
            total_len: 0,
            chunk_count: 1,
            status: TrailerStatus::Complete,
        },
    ] {
        assert_eq!(
            sealer.seal_trailer(&bad, &mut rec).unwrap_err(),
            Error::TrailerInconsistent,
            "{bad:?}"
        );
    }
    assert_eq!(sealer.record_offset(3), 3 * 4112);
}

#[test]
fn trailer_position_arithmetic() {
    let (_, dk, _, sealed) = sample(AeadId::ChaCha20Poly1305, 12, 0);
    let opener = HeaderView::parse(&sealed.header).unwrap().open(&dk).unwrap();
    let rs = 4096 + 16;
    assert_eq!(opener.trailer_position(47), None);
    assert_eq!(opener.trailer_position(48), Some((0, 0)));
    assert_eq!(opener.trailer_position(48 + 16), None); // an empty data record cannot exist
    assert_eq!(opener.trailer_position(48 + 17), Some((1, 17)));
    assert_eq!(opener.trailer_position(48 + rs), Some((1, rs)));
    assert_eq!(opener.trailer_position(48 + rs + 17), Some((2, rs + 17)));
    assert_eq!(opener.trailer_position(48 + 2 * rs), Some((2, 2 * rs)));
}

#[test]
fn debug_prints_no_secrets() {
    let dk = DumpKey::from_bytes([0xAB; 32]);
    let sk = X25519Secret::from_bytes([0xCD; 32]);
    assert_eq!(format!("{dk:?}"), "DumpKey(..)");
    assert_eq!(format!("{sk:?}"), "X25519Secret(..)");
    let mut rng = TestRng::new(8);
    let mut out = [0u8; seal::MAX_HEADER_LEN];
    let (_, sealer) = seal::write_header(
        &mut out,
        &Params::default(),
        &dk,
        [0; 16],
        &[Recipient::X25519 {
            public: sk.public_key(),
        }],
        &Metadata::default(),
        &mut rng,
    )
    .unwrap();
    let dbg = format!("{sealer:?}");
    assert!(
        !dbg.contains("171") && !dbg.to_lowercase().contains("abab"),
        "{dbg}"
    );
}

#[test]
fn aead_ids_and_names() {
    assert_eq!(AeadId::try_from(2).unwrap(), AeadId::Aes256Gcm);
    assert_eq!(AeadId::try_from(3).unwrap(), AeadId::ChaCha20Poly1305);
    assert_eq!(AeadId::try_from(1).unwrap_err(), Error::UnsupportedAead(1));
    assert_eq!(AeadId::default(), AeadId::ChaCha20Poly1305);
    for id in [AeadId::Aes256Gcm, AeadId::ChaCha20Poly1305] {
        assert_eq!(AeadId::from_name(id.name()), Some(id));
    }
}

/// Sealing from the caller's bytes gives the same record as sealing a copy in place, for both AEADs and a short
/// last chunk; wrong lengths are refused.
#[test]
fn seal_chunk_from_equals_seal_chunk_in_place() {
    for aead in [AeadId::ChaCha20Poly1305, AeadId::Aes256Gcm] {
        let sealer = sealer_4k(aead, 11);
        let plain: Vec<u8> = (0..4096u32).map(|i| (i * 7 + 3) as u8).collect();
        for (index, len) in [(0u64, 4096usize), (5, 4096), (6, 1000)] {
            let mut in_place = plain[..len].to_vec();
            let tag_in_place = sealer.seal_chunk(index, &mut in_place).unwrap();
            let mut from = vec![0u8; len];
            let tag_from = sealer.seal_chunk_from(index, &plain[..len], &mut from).unwrap();
            assert_eq!(
                (from, tag_from),
                (in_place, tag_in_place),
                "{aead:?} chunk {index}"
            );
        }
        let mut short = [0u8; 10];
        assert_eq!(
            sealer.seal_chunk_from(0, &plain[..11], &mut short).unwrap_err(),
            Error::ChunkLength
        );
        assert_eq!(
            sealer.seal_chunk_from(0, &[], &mut []).unwrap_err(),
            Error::ChunkLength
        );
        let mut big = vec![0u8; 4097];
        assert_eq!(
            sealer.seal_chunk_from(0, &vec![1u8; 4097], &mut big).unwrap_err(),
            Error::ChunkLength
        );
    }
}

/// A sealer for 4 KiB chunks under a fresh dump key (from `seed`), with one X25519 recipient.
fn sealer_4k(aead: AeadId, seed: u8) -> seal::ChunkSealer {
    let mut rng = TestRng::new(seed);
    let dk = DumpKey::generate(&mut rng);
    let mut out = [0u8; seal::MAX_HEADER_LEN];
    let params = Params {
        aead,
        chunk_shift: 12,
        ..Params::default()
    };
    let recipient = [Recipient::X25519 { public: [9; 32] }];
    let (_, sealer) = seal::write_header(
        &mut out,
        &params,
        &dk,
        [0; 16],
        &recipient,
        &Metadata::default(),
        &mut rng,
    )
    .unwrap();
    sealer
}
