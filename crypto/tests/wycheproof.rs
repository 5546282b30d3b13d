//! Wycheproof vectors (valid AND invalid cases) for the primitives of the sealed format: AES-256-GCM (96-bit IVs),
//! ChaCha20-Poly1305 (with invalid nonce sizes), X25519 and HKDF-SHA256 — all through this crate's API.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{hex_field, read_json};
use sealdump_crypto::aead::AeadCipher;
use sealdump_crypto::secret::{X25519Secret, x25519};
use sealdump_crypto::{AeadId, Error, kdf};

#[derive(Default, Debug)]
struct Counts {
    valid: usize,
    invalid: usize,
    /// Cases with a nonce other than 96 bits, all refused with `NonceLength`.
    refused_nonce_size: usize,
}

fn run_aead(file: &str, aead: AeadId) -> Counts {
    let data = read_json(file);
    let mut c = Counts::default();
    for group in data["testGroups"].as_array().unwrap() {
        if group["keySize"] != 256 {
            continue;
        }
        let iv_bits = group["ivSize"].as_u64().unwrap();
        assert_eq!(group["tagSize"], 128);
        for t in group["tests"].as_array().unwrap() {
            let id = &t["tcId"];
            let key: [u8; 32] = hex_field(t, "key").try_into().unwrap();
            let (iv, aad, msg, ct, tag) = (
                hex_field(t, "iv"),
                hex_field(t, "aad"),
                hex_field(t, "msg"),
                hex_field(t, "ct"),
                hex_field(t, "tag"),
            );
            let cipher = AeadCipher::new(aead, &key);
            let result = t["result"].as_str().unwrap();
            if iv_bits != 96 {
                // Only 96-bit nonces exist in this format: anything else must be refused, never truncated.
                let mut buf = ct.clone();
                assert_eq!(
                    cipher
                        .decrypt_in_place_detached(&iv, &aad, &mut buf, &tag)
                        .unwrap_err(),
                    Error::NonceLength,
                    "tcId {id}"
                );
                assert_eq!(
                    cipher.encrypt_in_place_detached(&iv, &aad, &mut buf).unwrap_err(),
                    Error::NonceLength
                );
                c.refused_nonce_size += 1;
                continue;
            }
            let mut buf = ct.clone();
            let opened = cipher.decrypt_in_place_detached(&iv, &aad, &mut buf, &tag);
            match result {
                "valid" => {
                    opened.unwrap_or_else(|e| panic!("tcId {id}: {e}"));
                    assert_eq!(buf, msg, "tcId {id}");
                    let mut enc = msg.clone();
                    let got_tag = cipher.encrypt_in_place_detached(&iv, &aad, &mut enc).unwrap();
                    assert_eq!(enc, ct, "tcId {id}");
                    assert_eq!(got_tag.as_slice(), tag.as_slice(), "tcId {id}");
                    c.valid += 1;
                }
                "invalid" => {
                    assert!(opened.is_err(), "tcId {id} must be rejected");
                    assert_eq!(buf, ct, "tcId {id}: buffer changed on failure");
                    c.invalid += 1;
                }
                other => panic!("unexpected result {other}"),
            }
        }
    }
    c
}

#[test]
fn aes_256_gcm() {
    let c = run_aead("wycheproof/aes_gcm_test.json", AeadId::Aes256Gcm);
    println!("Wycheproof AES-256-GCM: {c:?} (other IV sizes are outside this format and refused)");
    assert_eq!(c.valid + c.invalid, 66, "the 96-bit-IV subset");
    assert!(c.valid >= 30 && c.invalid >= 20);
}

#[test]
fn chacha20_poly1305() {
    let c = run_aead("wycheproof/chacha20_poly1305_test.json", AeadId::ChaCha20Poly1305);
    println!("Wycheproof ChaCha20-Poly1305: {c:?}");
    assert_eq!(c.valid, 256);
    assert_eq!(c.invalid, 60);
    assert_eq!(c.refused_nonce_size, 9, "the InvalidNonceSize cases");
}

#[test]
fn x25519_raw_and_contributory() {
    let data = read_json("wycheproof/x25519_test.json");
    let (mut valid, mut acceptable, mut zero_rejected) = (0, 0, 0);
    for group in data["testGroups"].as_array().unwrap() {
        assert_eq!(group["curve"], "curve25519");
        for t in group["tests"].as_array().unwrap() {
            let id = &t["tcId"];
            let public: [u8; 32] = hex_field(t, "public").try_into().unwrap();
            let private: [u8; 32] = hex_field(t, "private").try_into().unwrap();
            let shared = hex_field(t, "shared");
            assert_eq!(x25519(private, public).as_slice(), shared, "tcId {id}");
            let flags: Vec<&str> = t["flags"]
                .as_array()
                .unwrap()
                .iter()
                .map(|f| f.as_str().unwrap())
                .collect();
            let checked = X25519Secret::from_bytes(private).diffie_hellman(&public);
            if flags.contains(&"ZeroSharedSecret") {
                assert!(checked.is_none(), "tcId {id}: all-zero result must be refused");
                zero_rejected += 1;
            } else {
                assert_eq!(checked.unwrap().as_slice(), shared, "tcId {id}");
            }
            match t["result"].as_str().unwrap() {
                "valid" => valid += 1,
                "acceptable" => acceptable += 1,
                other => panic!("unexpected result {other}"),
            }
        }
    }
    println!(
        "Wycheproof X25519: {valid} valid, {acceptable} acceptable; {zero_rejected} all-zero results refused by \
         the contributory check"
    );
    assert_eq!(valid + acceptable, 518);
    assert_eq!(zero_rejected, 31);
}

#[test]
fn hkdf_sha256() {
    let data = read_json("wycheproof/hkdf_sha256_test.json");
    let (mut valid, mut invalid) = (0, 0);
    for group in data["testGroups"].as_array().unwrap() {
        for t in group["tests"].as_array().unwrap() {
            let id = &t["tcId"];
            let size = t["size"].as_u64().unwrap() as usize;
            let mut okm = vec![0u8; size];
            let r = kdf::hkdf_sha256(
                &hex_field(t, "salt"),
                &hex_field(t, "ikm"),
                &hex_field(t, "info"),
                &mut okm,
            );
            match t["result"].as_str().unwrap() {
                "valid" => {
                    r.unwrap_or_else(|e| panic!("tcId {id}: {e}"));
                    assert_eq!(okm, hex_field(t, "okm"), "tcId {id}");
                    valid += 1;
                }
                "invalid" => {
                    assert_eq!(r.unwrap_err(), Error::KdfOutputTooLong, "tcId {id}");
                    invalid += 1;
                }
                other => panic!("unexpected result {other}"),
            }
        }
    }
    println!("Wycheproof HKDF-SHA256: {valid} valid, {invalid} invalid");
    assert_eq!((valid, invalid), (83, 3));
}
