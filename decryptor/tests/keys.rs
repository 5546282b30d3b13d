//! Key handling through the binary: RSA recipients (stanza made by `openssl pkeyutl`), passphrase-protected
//! private keys (file, environment), and `info`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::{Path, PathBuf};

use common::*;
use predicates::prelude::*;
use sealdump_crypto::seal::{self, Recipient, StanzaKind};

#[test]
fn rsa_recipient_wrapped_by_openssl() {
    let dir = tempfile::tempdir().unwrap();
    let private = dir.path().join("rsa.pem");
    openssl(&["genrsa", "-out", p(&private), "3072"]);
    let spki = openssl(&["pkey", "-in", p(&private), "-pubout", "-outform", "DER"]);
    let public = dir.path().join("rsa.pub");
    openssl(&["pkey", "-in", p(&private), "-pubout", "-out", p(&public)]);
    let key_id = sealdump_crypto::key_id_from_spki_der(&spki);

    let dk = plaintext(32, 99);
    let dk_path = dir.path().join("dk");
    std::fs::write(&dk_path, &dk).unwrap();
    let label: String = seal::RSA_OAEP_LABEL.iter().map(|b| format!("{b:02x}")).collect();
    let body_path = dir.path().join("body");
    openssl(&[
        "pkeyutl",
        "-encrypt",
        "-pubin",
        "-inkey",
        p(&public),
        "-in",
        p(&dk_path),
        "-out",
        p(&body_path),
        "-pkeyopt",
        "rsa_padding_mode:oaep",
        "-pkeyopt",
        "rsa_oaep_md:sha256",
        "-pkeyopt",
        "rsa_mgf1_md:sha256",
        "-pkeyopt",
        &format!("rsa_oaep_label:{label}"),
    ]);
    let body = std::fs::read(&body_path).unwrap();
    let (_, x_public) = x25519_key(dir.path(), "other", 1);
    let spec = SealSpec {
        recipients: vec![
            Recipient::X25519 { public: x_public },
            Recipient::Prewrapped {
                kind: StanzaKind::RsaOaepSha256,
                key_id,
                body: &body,
            },
        ],
        dump_key: Some(dk.try_into().unwrap()),
        ..SealSpec::x25519(x_public)
    };
    let plain = plaintext(30_000, 5);
    let s = seal_dump(dir.path(), "h.0", &plain, &spec);
    with_key(&private, &[], &s.dump).assert().success();
    assert_eq!(std::fs::read(s.default_output()).unwrap(), plain);

    let v = info_json(&private, &s.dump);
    assert_eq!(v["recipients"][1]["type"], "rsa-oaep-sha256");
    assert_eq!(
        v["recipients"][1]["key_id"],
        key_id.iter().map(|b| format!("{b:02x}")).collect::<String>()
    );
    assert_eq!(v["header"], "authentic");
}

/// An X25519 key written as passphrase-protected PKCS#8 (PBES2, AES-256-CBC) to `dir/enc<seed>.key`.
fn encrypted_key(dir: &Path, seed: u8, passphrase: &str) -> (PathBuf, [u8; 32]) {
    let (plain_key, public) = x25519_key(dir, &format!("plain{seed}"), seed);
    let enc = dir.join(format!("enc{seed}.key"));
    openssl(&[
        "pkcs8",
        "-topk8",
        "-v2",
        "aes-256-cbc",
        "-in",
        p(&plain_key),
        "-out",
        p(&enc),
        "-passout",
        &format!("pass:{passphrase}"),
    ]);
    std::fs::remove_file(plain_key).unwrap();
    (enc, public)
}

#[test]
fn passphrase_from_environment_or_file() {
    let dir = tempfile::tempdir().unwrap();
    let (key, public) = encrypted_key(dir.path(), 7, "correct horse");
    let plain = plaintext(9000, 1);
    let s = seal_dump(dir.path(), "h.0", &plain, &SealSpec::x25519(public));

    let verify = || with_key(&key, &["--verify"], &s.dump);

    // No passphrase and no terminal: a clear usage error.
    assert_fails(&mut verify(), 2, &["key is encrypted", "SEALDUMP_PASSPHRASE"]);
    // Wrong passphrase.
    assert_fails(verify().env("SEALDUMP_PASSPHRASE", "wrong"), 2, &["enc7.key"]);
    // Environment.
    verify()
        .env("SEALDUMP_PASSPHRASE", "correct horse")
        .assert()
        .success();
    // File (first line; the newline is not part of it), which wins over the environment.
    let pass_file = dir.path().join("pass");
    std::fs::write(&pass_file, "correct horse\n").unwrap();
    bin()
        .env("SEALDUMP_PASSPHRASE", "wrong")
        .arg("--key")
        .arg(&key)
        .arg("--passphrase-file")
        .arg(&pass_file)
        .arg(&s.dump)
        .assert()
        .success();
    assert_eq!(std::fs::read(s.default_output()).unwrap(), plain);
}

#[test]
fn key_dir_skips_keys_it_cannot_open() {
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("keys");
    std::fs::create_dir(&keys).unwrap();
    encrypted_key(&keys, 8, "secret");
    let (_, public) = x25519_key(&keys, "good", 9);
    let s = seal_dump(dir.path(), "h.0", &plaintext(100, 1), &SealSpec::x25519(public));
    bin()
        .arg("--key-dir")
        .arg(&keys)
        .arg("--verify")
        .arg(&s.dump)
        .assert()
        .success()
        .stderr(predicate::str::contains("warning: skipping").and(predicate::str::contains("enc8.key")));
}

#[test]
fn info_with_and_without_a_key() {
    let plain = plaintext(3 * 4096 + 1, 1);
    let t = OneKeyDump::new(11, &plain);
    let (key, public, s) = (&t.key, t.public, &t.sealed);
    let (other, _) = x25519_key(t.path(), "b", 12);

    let out = run(bin().arg("info").arg(&s.dump));
    assert_ok(&out);
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("aead: chacha20-poly1305"), "{text}");
    assert!(text.contains("chunk_size: 4096"), "{text}");
    assert!(text.contains(&key_id_hex(&public)), "{text}");
    assert!(text.contains("header: not checked"), "{text}");
    assert!(
        !text.contains("web1.example"),
        "metadata stays sealed without a key: {text}"
    );

    let v = info_json(key, &s.dump);
    assert_eq!(v["header"], "authentic");
    assert_eq!(v["metadata"]["hostname"], "web1.example");
    assert_eq!(v["metadata"]["architecture"], "amd64");
    assert_eq!(v["metadata"]["expected_length"], plain.len() as u64);
    assert_eq!(v["chunks"], 4);
    assert_eq!(v["trailer"], "complete");
    assert_eq!(v["plaintext_len"], plain.len() as u64);
    assert!(
        v["recipients"][0]["given_key"]
            .as_str()
            .unwrap()
            .ends_with("a.key")
    );

    // A key that is not a recipient: described, not an error.
    let out = run(bin().args(["info", "--key"]).arg(&other).arg(&s.dump));
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("no given key is a recipient"));

    // Truncated: info says so and exits 1.
    let len = std::fs::metadata(&s.dump).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&s.dump)
        .unwrap()
        .set_len(len - 1)
        .unwrap();
    let out = run(bin().args(["info", "--key"]).arg(key).arg(&s.dump));
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("trailer: missing"));
    assert!(stderr_of(&out).contains("truncated"));
}
