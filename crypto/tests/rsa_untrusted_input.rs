//! Stanza bodies and EKCD key blobs come from dump files: any bytes must give an error, never a panic.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use proptest::prelude::*;
use sealdump_crypto::keys::{KeyError, PrivateKey};
use sealdump_crypto::rsa_wrap::{OaepHash, ekcd_unwrap, oaep_decrypt, unwrap_dump_key};

/// The 2048-bit key of Wycheproof's RSA-OAEP files (any fixed key will do; no key generation per run).
fn key() -> rsa::PrivateKey {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../shared/testdata/wycheproof/rsa_oaep_2048_sha256_mgf1sha256_test.json"
    );
    let json: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let der = hex::decode(json["testGroups"][0]["privateKeyPkcs8"].as_str().unwrap()).unwrap();
    match PrivateKey::from_pkcs8_der(&der).unwrap() {
        PrivateKey::Rsa(k) => k,
        _ => unreachable!(),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn random_bodies_are_errors(body in prop::collection::vec(any::<u8>(), 0..600)) {
        let key = key();
        prop_assert!(matches!(unwrap_dump_key(&key, &body), Err(KeyError::Unwrap)));
        prop_assert!(ekcd_unwrap(&key, &body).is_err());
        prop_assert!(oaep_decrypt(&key, &body, b"", OaepHash::Sha1, OaepHash::Sha256).is_err());
    }

    #[test]
    fn random_full_length_ciphertexts_are_errors(body in prop::collection::vec(any::<u8>(), 256)) {
        // Right length, so the RSA operation runs (or the value is >= n): the padding check must refuse it.
        let key = key();
        prop_assert!(matches!(unwrap_dump_key(&key, &body), Err(KeyError::Unwrap)));
        prop_assert!(ekcd_unwrap(&key, &body).is_err());
    }
}

#[test]
fn edge_values_are_errors() {
    let key = key();
    for body in [vec![0u8; 256], vec![0xff; 256], vec![], vec![1], {
        let mut one = vec![0u8; 256];
        one[255] = 1;
        one
    }] {
        assert!(matches!(unwrap_dump_key(&key, &body), Err(KeyError::Unwrap)));
        assert!(ekcd_unwrap(&key, &body).is_err());
    }
}
