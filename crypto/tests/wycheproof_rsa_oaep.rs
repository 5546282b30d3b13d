//! Wycheproof RSA-OAEP decryption vectors: every `rsa_oaep_*` file, valid and invalid cases.
//!
//! `rsa` 0.10 accepts tcId 23 ("First byte is 1") because its OAEP decoder skips the leading-octet check;
//! our strict decoder must reject it in every dedicated file.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use sealdump_crypto::keys::PrivateKey;
use sealdump_crypto::rsa_wrap::{OaepHash, oaep_decrypt};
use serde::Deserialize;

const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/testdata/wycheproof");

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct File {
    number_of_tests: usize,
    test_groups: Vec<Group>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Group {
    key_size: usize,
    sha: String,
    mgf_sha: String,
    private_key_pkcs8: String,
    tests: Vec<Case>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Case {
    tc_id: u64,
    comment: String,
    msg: String,
    ct: String,
    label: String,
    result: String,
}

fn hash(name: &str) -> OaepHash {
    match name {
        "SHA-1" => OaepHash::Sha1,
        "SHA-256" => OaepHash::Sha256,
        other => panic!("unexpected hash {other}"),
    }
}

/// Decrypts with the `rsa` crate's built-in OAEP (for the report only).
fn rsa_crate_decrypt(key: &rsa::PrivateKey, sha: &str, mgf: &str, label: &[u8], ct: &[u8]) -> bool {
    use rsa::Oaep;
    use sha1::Sha1;
    use sha2::Sha256;
    let label = label.to_vec();
    match (sha, mgf) {
        ("SHA-1", "SHA-1") => key.decrypt(Oaep::<Sha1, Sha1>::new_with_mgf_hash_and_label(label), ct),
        ("SHA-256", "SHA-1") => key.decrypt(Oaep::<Sha256, Sha1>::new_with_mgf_hash_and_label(label), ct),
        _ => key.decrypt(Oaep::<Sha256, Sha256>::new_with_mgf_hash_and_label(label), ct),
    }
    .is_ok()
}

#[derive(Default, Debug)]
struct Counts {
    valid: usize,
    invalid: usize,
    acceptable: usize,
}

fn run_file(name: &str) -> Counts {
    let text = std::fs::read_to_string(format!("{DIR}/{name}")).expect(name);
    let file: File = serde_json::from_str(&text).unwrap();
    let mut counts = Counts::default();
    let mut seen_tc23 = false;
    for group in &file.test_groups {
        let der = hex::decode(&group.private_key_pkcs8).unwrap();
        let PrivateKey::Rsa(key) = PrivateKey::from_pkcs8_der(&der).unwrap() else {
            panic!("{name}: not an RSA key");
        };
        let (h, mgf) = (hash(&group.sha), hash(&group.mgf_sha));
        for case in &group.tests {
            let ct = hex::decode(&case.ct).unwrap();
            let label = hex::decode(&case.label).unwrap();
            let got = oaep_decrypt(&key, &ct, &label, h, mgf);
            let what = format!(
                "{name} tcId {} ({}, {} bits)",
                case.tc_id, case.comment, group.key_size
            );
            match case.result.as_str() {
                "valid" => {
                    let got = got.unwrap_or_else(|e| panic!("{what}: valid case rejected: {e}"));
                    assert_eq!(hex::encode(&got[..]), case.msg, "{what}: wrong plaintext");
                    counts.valid += 1;
                }
                "invalid" => {
                    assert!(got.is_err(), "{what}: invalid case accepted");
                    counts.invalid += 1;
                }
                "acceptable" => counts.acceptable += 1,
                other => panic!("{what}: unknown result {other}"),
            }
            if case.tc_id == 23 && case.comment == "First byte is 1" {
                assert!(case.result == "invalid");
                seen_tc23 = true;
                // Why we decode OAEP ourselves: report what the `rsa` crate's own decoder does here.
                let rsa_accepts = rsa_crate_decrypt(&key, &group.sha, &group.mgf_sha, &label, &ct);
                println!(
                    "{name}: tcId 23 — rsa crate's OAEP decoder {}, ours rejects",
                    if rsa_accepts { "accepts it" } else { "rejects it" }
                );
            }
        }
    }
    let total = counts.valid + counts.invalid + counts.acceptable;
    assert_eq!(total, file.number_of_tests, "{name}: test count");
    if !name.contains("subset") {
        assert!(seen_tc23, "{name}: tcId 23 missing");
    }
    println!(
        "{name}: {total} cases ({} valid passed, {} invalid rejected, {} acceptable){}",
        counts.valid,
        counts.invalid,
        counts.acceptable,
        if seen_tc23 { ", tcId 23 rejected" } else { "" }
    );
    counts
}

#[test]
fn every_rsa_oaep_file() {
    let mut names: Vec<String> = std::fs::read_dir(DIR)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.starts_with("rsa_oaep_") && n.ends_with(".json"))
        .collect();
    names.sort();
    assert_eq!(names.len(), 8, "expected the 8 RSA-OAEP files: {names:?}");
    let mut all = Counts::default();
    for name in &names {
        let c = run_file(name);
        all.valid += c.valid;
        all.invalid += c.invalid;
        all.acceptable += c.acceptable;
    }
    println!(
        "RSA-OAEP total: {} files, {} valid, {} invalid, {} acceptable",
        names.len(),
        all.valid,
        all.invalid,
        all.acceptable
    );
    assert!(all.invalid > 0 && all.valid > 0);
}
