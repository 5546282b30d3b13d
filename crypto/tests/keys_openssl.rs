//! Key files against the real `openssl` binary, both directions: OpenSSL-made keys load here with the key id
//! `openssl pkey -pubout -outform DER | sha256sum` gives, and `openssl pkey` reads what we write.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use common::openssl;
use sealdump_crypto::keys::{self, KeyError, PemKind, PrivateKey, PublicKey, is_encrypted_pem, pem_kind};
use sha2::{Digest, Sha256};

/// SHA-256 of the SPKI DER as OpenSSL computes it from a key file.
fn openssl_fingerprint(path: &Path, passphrase: Option<&str>) -> [u8; 32] {
    let p = path.to_str().unwrap();
    let pass = passphrase.map(|s| format!("pass:{s}"));
    let mut args = vec!["pkey", "-in", p, "-pubout", "-outform", "DER"];
    if let Some(pass) = &pass {
        args.extend(["-passin", pass]);
    }
    Sha256::digest(openssl(&args)).into()
}

fn check_openssl_key(dir: &Path, genargs: &[&str], expect: &str) {
    let key_path = dir.join("k.pem");
    // Options before the positional key size, which `genrsa` wants last.
    let mut args = vec![genargs[0], "-out", key_path.to_str().unwrap()];
    args.extend(&genargs[1..]);
    openssl(&args);
    let key = keys::read_private_key_file(&key_path, None).unwrap();
    let fp = openssl_fingerprint(&key_path, None);
    let public = key.public_key();
    assert_eq!(public.describe(), expect);
    assert_eq!(
        public.fingerprint(),
        fp,
        "{genargs:?}: fingerprint differs from openssl"
    );
    assert_eq!(public.key_id(), fp[..8], "{genargs:?}: key id");

    // The public half as exported by openssl loads to the same key.
    let pub_pem = openssl(&["pkey", "-in", key_path.to_str().unwrap(), "-pubout"]);
    let from_openssl = PublicKey::from_pem(std::str::from_utf8(&pub_pem).unwrap()).unwrap();
    assert_eq!(from_openssl, public);
    // ... and so does the public key we export, byte for byte the same PEM as openssl's.
    assert_eq!(public.to_pem().as_bytes(), &pub_pem[..]);
}

#[test]
fn openssl_x25519_key_loads_with_same_id() {
    let dir = tempfile::tempdir().unwrap();
    check_openssl_key(dir.path(), &["genpkey", "-algorithm", "X25519"], "X25519");
}

#[test]
fn openssl_rsa_keys_load_with_same_id() {
    let dir = tempfile::tempdir().unwrap();
    // OpenSSL 3 `genrsa` writes PKCS#8; `-traditional` writes PKCS#1 "RSA PRIVATE KEY".
    check_openssl_key(dir.path(), &["genrsa", "3072"], "RSA-3072");
    check_openssl_key(dir.path(), &["genrsa", "-traditional", "3072"], "RSA-3072");
    let pem = std::fs::read_to_string(dir.path().join("k.pem")).unwrap();
    assert!(pem.starts_with("-----BEGIN RSA PRIVATE KEY-----"));

    // PKCS#1 "RSA PUBLIC KEY" form.
    let pkcs1_pub = openssl(&[
        "rsa",
        "-in",
        dir.path().join("k.pem").to_str().unwrap(),
        "-RSAPublicKey_out",
    ]);
    let public = PublicKey::from_pem(std::str::from_utf8(&pkcs1_pub).unwrap()).unwrap();
    let key = keys::read_private_key_file(&dir.path().join("k.pem"), None).unwrap();
    assert_eq!(public, key.public_key());
}

#[test]
fn openssl_encrypted_pkcs8_loads_with_passphrase() {
    let dir = tempfile::tempdir().unwrap();
    let plain = dir.path().join("plain.pem");
    openssl(&["genpkey", "-algorithm", "X25519", "-out", plain.to_str().unwrap()]);
    let expected = keys::read_private_key_file(&plain, None).unwrap().public_key();
    // PBKDF2 (OpenSSL's default) and scrypt.
    for extra in [
        &["-v2", "aes-256-cbc"][..],
        &["-v2", "aes-256-cbc", "-scrypt"][..],
    ] {
        let enc = dir.path().join("enc.pem");
        let mut args = vec![
            "pkcs8",
            "-topk8",
            "-in",
            plain.to_str().unwrap(),
            "-out",
            enc.to_str().unwrap(),
        ];
        args.extend(extra);
        args.extend(["-passout", "pass:correct horse"]);
        openssl(&args);
        let pem = std::fs::read_to_string(&enc).unwrap();
        assert!(is_encrypted_pem(&pem));
        assert_eq!(pem_kind(&pem).unwrap(), PemKind::EncryptedPrivateKey);
        let key = PrivateKey::from_pem(&pem, Some(b"correct horse")).unwrap();
        assert_eq!(key.public_key(), expected, "{extra:?}");
        assert!(matches!(
            PrivateKey::from_pem(&pem, None),
            Err(KeyError::PassphraseRequired)
        ));
        assert!(matches!(
            PrivateKey::from_pem(&pem, Some(b"wrong")),
            Err(KeyError::WrongPassphrase)
        ));
    }
}

#[test]
fn openssl_reads_what_we_write() {
    let dir = tempfile::tempdir().unwrap();
    let keys_to_try = [
        PrivateKey::generate_x25519(),
        PrivateKey::generate_rsa(3072).unwrap(),
    ];
    for key in &keys_to_try {
        let fp = key.public_key().fingerprint();

        let plain = dir.path().join("plain.key");
        keys::write_private_key_file(&plain, key, None, true).unwrap();
        assert_eq!(openssl_fingerprint(&plain, None), fp, "{key:?} unencrypted");
        // openssl re-encodes it to the same PKCS#8 bytes.
        let reencoded = openssl(&["pkey", "-in", plain.to_str().unwrap()]);
        assert_eq!(
            reencoded,
            std::fs::read(&plain).unwrap(),
            "{key:?} PKCS#8 encoding"
        );

        let enc = dir.path().join("enc.key");
        keys::write_private_key_file(&enc, key, Some(b"s3cret pass"), true).unwrap();
        assert!(is_encrypted_pem(&std::fs::read_to_string(&enc).unwrap()));
        assert_eq!(
            openssl_fingerprint(&enc, Some("s3cret pass")),
            fp,
            "{key:?} encrypted"
        );
        let wrong = Command::new("openssl")
            .args([
                "pkey",
                "-in",
                enc.to_str().unwrap(),
                "-passin",
                "pass:nope",
                "-noout",
            ])
            .output()
            .unwrap();
        assert!(!wrong.status.success(), "openssl accepted a wrong passphrase");
        // And we read our own encrypted file back.
        let back = keys::read_private_key_file(&enc, Some(b"s3cret pass")).unwrap();
        assert_eq!(back.public_key(), key.public_key());

        let public = dir.path().join("k.pub");
        keys::write_public_key_file(&public, &key.public_key(), true).unwrap();
        let der = openssl(&[
            "pkey",
            "-pubin",
            "-in",
            public.to_str().unwrap(),
            "-outform",
            "DER",
        ]);
        assert_eq!(der, key.public_key().spki_der());
    }
}

#[test]
fn key_files_are_0600_and_not_overwritten() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.key");
    let key = PrivateKey::generate_x25519();
    keys::write_private_key_file(&path, &key, None, false).unwrap();
    assert_eq!(
        std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
        0o600
    );

    let other = PrivateKey::generate_x25519();
    let err = keys::write_private_key_file(&path, &other, None, false).unwrap_err();
    assert!(matches!(err, KeyError::Exists(_)), "{err}");
    assert!(err.to_string().contains("already exists"));
    let still = keys::read_private_key_file(&path, None).unwrap();
    assert_eq!(still.public_key(), key.public_key());

    // --force replaces it and tightens a loose mode.
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    keys::write_private_key_file(&path, &other, None, true).unwrap();
    assert_eq!(
        std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let now = keys::read_private_key_file(&path, None).unwrap();
    assert_eq!(now.public_key(), other.public_key());
}

#[test]
fn bad_files_give_one_line_errors() {
    let cases: [(&str, &str); 5] = [
        ("hello\n", "not a PEM key file"),
        (
            "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
            "unsupported PEM type",
        ),
        (
            "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
            "malformed key",
        ),
        (
            "-----BEGIN PRIVATE KEY-----\n!!!!\n-----END PRIVATE KEY-----\n",
            "not a PEM key file",
        ),
        (
            "-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: AES-128-CBC,00\n\nAAAA\n-----END RSA PRIVATE KEY-----\n",
            "legacy encrypted PEM",
        ),
    ];
    for (pem, want) in cases {
        let err = PrivateKey::from_pem(pem, None).unwrap_err().to_string();
        assert!(err.contains(want), "{pem:?}: {err}");
        assert!(!err.contains('\n'), "{err}");
    }
    // An Ed25519 key is well-formed but not ours.
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("ed.pem");
    openssl(&["genpkey", "-algorithm", "ED25519", "-out", p.to_str().unwrap()]);
    let err = keys::read_private_key_file(&p, None).unwrap_err().to_string();
    assert!(err.contains("unsupported key algorithm 1.3.101.112"), "{err}");
    let err = keys::read_private_key_file(&dir.path().join("missing"), None).unwrap_err();
    assert!(matches!(err, KeyError::Io { .. }));
}

#[test]
fn key_reads_are_bounded_even_for_endless_files() {
    let dir = tempfile::tempdir().unwrap();
    // A regular file one byte over the limit, and one exactly at it.
    let big = dir.path().join("big.pem");
    std::fs::write(&big, vec![b'A'; keys::MAX_KEY_FILE_LEN as usize + 1]).unwrap();
    let err = keys::read_private_key_file(&big, None).unwrap_err().to_string();
    assert!(err.contains("too large for a key file"), "{err}");
    assert!(keys::read_key_file_bytes(&big).unwrap().is_none());
    let at_limit = dir.path().join("limit.pem");
    std::fs::write(&at_limit, vec![b'A'; keys::MAX_KEY_FILE_LEN as usize]).unwrap();
    let bytes = keys::read_key_file_bytes(&at_limit).unwrap().unwrap();
    assert_eq!(bytes.len() as u64, keys::MAX_KEY_FILE_LEN);
    // A FIFO reports size 0 but a writer keeps feeding it: the read must stop at the limit, not exhaust memory.
    let fifo = dir.path().join("fifo.pem");
    let status = Command::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(status.success());
    let writer_path = fifo.clone();
    let writer = std::thread::spawn(move || {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new().write(true).open(writer_path).unwrap();
        let block = [b'A'; 8192];
        // Stops with EPIPE once the reader has given up.
        for _ in 0..1024 {
            if f.write_all(&block).is_err() {
                break;
            }
        }
    });
    let err = keys::read_public_key_file(&fifo).unwrap_err().to_string();
    assert!(err.contains("too large for a key file"), "{err}");
    writer.join().unwrap();
}

#[test]
fn debug_does_not_print_secrets() {
    let key = PrivateKey::generate_x25519();
    let PrivateKey::X25519(secret) = &key else {
        unreachable!()
    };
    let secret_hex = keys::hex_lower(secret.as_bytes());
    let shown = format!("{key:?}");
    assert!(shown.starts_with("PrivateKey(X25519, id "), "{shown}");
    assert!(!shown.contains(&secret_hex));
}
