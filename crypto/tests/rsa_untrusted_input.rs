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

/// A random blob whose raw RSA decryption under the test key is not PKCS#1 v1.5 padded: `rsa`'s implicit
/// rejection turns it into a synthetic 64-byte message, which the EKCD unwrap once accepted as a key (found by
/// the property test above; kept here so it runs every time).
#[test]
fn a_synthetic_pkcs1_message_is_not_a_key() {
    let body: [u8; 256] = [
        73, 25, 142, 119, 151, 83, 22, 82, 1, 220, 244, 198, 214, 75, 132, 91, 155, 222, 220, 233, 216, 61,
        157, 207, 98, 158, 252, 194, 152, 39, 66, 101, 189, 76, 79, 88, 196, 111, 190, 160, 107, 233, 81,
        191, 149, 0, 255, 16, 8, 239, 228, 85, 197, 224, 41, 51, 243, 34, 96, 240, 212, 222, 79, 160, 190,
        166, 121, 159, 246, 193, 248, 131, 220, 74, 126, 49, 81, 127, 197, 232, 176, 71, 124, 60, 20, 216,
        72, 249, 64, 17, 66, 11, 243, 1, 168, 127, 34, 42, 162, 203, 115, 50, 178, 100, 0, 104, 3, 5, 8, 49,
        15, 213, 21, 64, 50, 132, 206, 238, 165, 240, 146, 24, 69, 211, 77, 128, 154, 121, 15, 74, 28, 99,
        129, 150, 40, 255, 239, 182, 240, 227, 2, 14, 252, 7, 118, 158, 77, 206, 220, 168, 199, 121, 40, 19,
        37, 128, 35, 88, 32, 206, 88, 217, 240, 229, 232, 182, 77, 253, 54, 168, 202, 185, 224, 118, 21, 140,
        194, 17, 237, 48, 168, 107, 100, 214, 133, 198, 204, 163, 42, 30, 54, 63, 201, 35, 252, 84, 237, 85,
        105, 71, 146, 75, 163, 143, 172, 62, 200, 82, 238, 98, 110, 8, 12, 66, 231, 36, 46, 145, 80, 254,
        154, 89, 169, 145, 185, 88, 101, 5, 172, 7, 201, 98, 183, 187, 181, 56, 81, 144, 221, 243, 93, 85,
        48, 154, 2, 132, 27, 235, 229, 76, 105, 132, 52, 29, 118, 137,
    ];
    let key = key();
    assert!(ekcd_unwrap(&key, &body).is_err());
    assert!(matches!(unwrap_dump_key(&key, &body), Err(KeyError::Unwrap)));
}
