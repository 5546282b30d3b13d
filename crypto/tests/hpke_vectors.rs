//! RFC 9180 test vectors: every base-mode DHKEM(X25519, HKDF-SHA256) / HKDF-SHA256 entry for AES-256-GCM (aead 2)
//! and ChaCha20-Poly1305 (aead 3), every encryption and every export, through the `hpke` crate as configured for
//! this crate (no alloc), plus sequence 0 of each entry through our own `hpke_wrap` functions.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{FixedRng, hex_field, read_json};
use hpke::aead::{AeadTag, AesGcm256, ChaCha20Poly1305};
use hpke::kdf::HkdfSha256;
use hpke::kem::X25519HkdfSha256;
use hpke::{Deserializable, Kem, OpModeR, OpModeS, Serializable};
use sealdump_crypto::{AeadId, X25519Secret, hpke_wrap};

/// Runs one entry through the hpke crate; returns (encryptions, exports) checked.
fn run_entry<A: hpke::aead::Aead>(entry: &serde_json::Value) -> (usize, usize) {
    let info = hex_field(entry, "info");
    let (sk_r, pk_r) = X25519HkdfSha256::derive_keypair(&hex_field(entry, "ikmR"));
    assert_eq!(pk_r.to_bytes().as_slice(), hex_field(entry, "pkRm"));
    // The crate stores the clamped scalar while the vectors list the raw DeriveKeyPair output, so compare
    // the public keys only (and `run_wrapper` checks skRm -> pkRm).
    let mut rng = FixedRng(hex_field(entry, "ikmE"));
    let (enc, mut sender) = hpke::setup_sender_with_rng::<A, HkdfSha256, X25519HkdfSha256>(
        &OpModeS::Base,
        &pk_r,
        &info,
        &mut rng,
    )
    .unwrap();
    assert_eq!(enc.to_bytes().as_slice(), hex_field(entry, "enc"));
    let mut receiver =
        hpke::setup_receiver::<A, HkdfSha256, X25519HkdfSha256>(&OpModeR::Base, &sk_r, &enc, &info).unwrap();
    let mut n_enc = 0;
    for e in entry["encryptions"].as_array().unwrap() {
        let (aad, pt, ct) = (hex_field(e, "aad"), hex_field(e, "pt"), hex_field(e, "ct"));
        let mut buf = pt.clone();
        let tag = sender
            .seal_inout_detached(buf.as_mut_slice().into(), &aad)
            .unwrap();
        let mut sealed = buf.clone();
        sealed.extend_from_slice(&tag.to_bytes());
        assert_eq!(sealed, ct, "seal mismatch");
        let (body, tag) = ct.split_at(ct.len() - 16);
        let mut buf = body.to_vec();
        receiver
            .open_inout_detached(
                buf.as_mut_slice().into(),
                &aad,
                &AeadTag::<A>::from_bytes(tag).unwrap(),
            )
            .unwrap();
        assert_eq!(buf, pt);
        n_enc += 1;
    }
    let mut n_exp = 0;
    for x in entry["exports"].as_array().unwrap() {
        let ctx = hex_field(x, "exporter_context");
        let len = x["L"].as_u64().unwrap() as usize;
        let mut out = vec![0u8; len];
        sender.export(&ctx, &mut out).unwrap();
        assert_eq!(out, hex_field(x, "exported_value"));
        receiver.export(&ctx, &mut out).unwrap();
        assert_eq!(out, hex_field(x, "exported_value"));
        n_exp += 1;
    }
    (n_enc, n_exp)
}

/// Sequence 0 through our wrapper: seal with the vector's ephemeral key, open with the vector's private key,
/// and reject a flipped ciphertext or tag.
fn run_wrapper(aead: AeadId, entry: &serde_json::Value) {
    let info = hex_field(entry, "info");
    let sk: [u8; 32] = hex_field(entry, "skRm").try_into().unwrap();
    let pk: [u8; 32] = hex_field(entry, "pkRm").try_into().unwrap();
    let secret = X25519Secret::from_bytes(sk);
    assert_eq!(secret.public_key(), pk);
    let e0 = &entry["encryptions"][0];
    let (aad, pt, ct) = (hex_field(e0, "aad"), hex_field(e0, "pt"), hex_field(e0, "ct"));
    let mut buf = pt.clone();
    let mut rng = FixedRng(hex_field(entry, "ikmE"));
    let (enc, tag) = hpke_wrap::seal_in_place(aead, &pk, &info, &aad, &mut buf, &mut rng).unwrap();
    assert_eq!(enc.as_slice(), hex_field(entry, "enc"));
    buf.extend_from_slice(&tag);
    assert_eq!(buf, ct);
    let (body, tag) = ct.split_at(ct.len() - 16);
    let mut plain = body.to_vec();
    hpke_wrap::open_in_place(aead, &secret, &enc, &info, &aad, &mut plain, tag).unwrap();
    assert_eq!(plain, pt);
    let mut bad = body.to_vec();
    bad[0] ^= 1;
    assert!(hpke_wrap::open_in_place(aead, &secret, &enc, &info, &aad, &mut bad, tag).is_err());
    let mut bad_tag = tag.to_vec();
    bad_tag[15] ^= 0x80;
    let mut plain = body.to_vec();
    assert!(hpke_wrap::open_in_place(aead, &secret, &enc, &info, &aad, &mut plain, &bad_tag).is_err());
    assert!(hpke_wrap::open_in_place(aead, &secret, &enc, b"other info", &aad, &mut plain, tag).is_err());
}

#[test]
fn rfc9180_base_x25519_vectors() {
    let all = read_json("hpke/test-vectors.json");
    let mut counts = [(0usize, 0usize, 0usize); 2];
    for entry in all.as_array().unwrap() {
        if entry["mode"] != 0 || entry["kem_id"] != 32 || entry["kdf_id"] != 1 {
            continue;
        }
        let (slot, aead) = match entry["aead_id"].as_u64() {
            Some(2) => (0, AeadId::Aes256Gcm),
            Some(3) => (1, AeadId::ChaCha20Poly1305),
            _ => continue,
        };
        let (e, x) = match aead {
            AeadId::Aes256Gcm => run_entry::<AesGcm256>(entry),
            AeadId::ChaCha20Poly1305 => run_entry::<ChaCha20Poly1305>(entry),
        };
        run_wrapper(aead, entry);
        counts[slot].0 += 1;
        counts[slot].1 += e;
        counts[slot].2 += x;
    }
    for (name, (entries, enc, exp)) in ["AES-256-GCM", "ChaCha20-Poly1305"].iter().zip(counts) {
        println!(
            "RFC 9180 base X25519/HKDF-SHA256/{name}: {entries} entries, {enc} encryptions, {exp} exports"
        );
        assert!(
            entries >= 1 && enc >= 257 && exp >= 3,
            "too few vectors for {name}"
        );
    }
}

#[test]
fn dump_key_wrap_round_trip_and_binding() {
    let mut rng = common::TestRng::new(11);
    let secret = X25519Secret::generate(&mut rng);
    let dk = sealdump_crypto::DumpKey::generate(&mut rng);
    for aead in [AeadId::Aes256Gcm, AeadId::ChaCha20Poly1305] {
        let body = hpke_wrap::wrap_dump_key(aead, &secret.public_key(), &[1; 16], &dk, &mut rng).unwrap();
        assert_eq!(body.len(), 80);
        let got = hpke_wrap::unwrap_dump_key(aead, &secret, &[1; 16], &body).unwrap();
        assert_eq!(got.as_bytes(), dk.as_bytes());
        // Bound to the dump id (info), the AEAD, the recipient and the exact length.
        assert!(hpke_wrap::unwrap_dump_key(aead, &secret, &[2; 16], &body).is_err());
        let other = if aead == AeadId::Aes256Gcm {
            AeadId::ChaCha20Poly1305
        } else {
            AeadId::Aes256Gcm
        };
        assert!(hpke_wrap::unwrap_dump_key(other, &secret, &[1; 16], &body).is_err());
        assert!(
            hpke_wrap::unwrap_dump_key(aead, &X25519Secret::from_bytes([1; 32]), &[1; 16], &body).is_err()
        );
        assert!(hpke_wrap::unwrap_dump_key(aead, &secret, &[1; 16], &body[..79]).is_err());
    }
    // A low-order recipient key (all-zero DH output) is refused at wrap time (RFC 9180 §7.1.4).
    assert_eq!(
        hpke_wrap::wrap_dump_key(AeadId::ChaCha20Poly1305, &[0; 32], &[1; 16], &dk, &mut rng).unwrap_err(),
        sealdump_crypto::Error::Encap
    );
}
