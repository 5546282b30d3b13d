//! Secrets: a full keytool → send → receive → decrypt run with every log at debug level, then a search of all
//! logs, outputs and stored files for the dump key and the private keys (raw bytes, lower- and upper-case hex).
//! Plus the file modes: private keys 0600, the stored key blob 0400, dump and info files not world-readable.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use rsa::traits::PrivateKeyParts;
use sealdump_crypto::keys::{PrivateKey, read_private_key_file};
use sealdump_crypto::seal::HeaderView;
use sealdump_tests::*;

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

fn run(cmd: &mut Command) -> Output {
    let out = cmd
        .env("SEALDUMP_LOG", "trace")
        .env("RUST_LOG", "trace")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Byte patterns that must appear nowhere: the secret itself and its hex spellings.
fn needles(name: &str, secret: &[u8]) -> Vec<(String, Vec<u8>)> {
    assert!(secret.len() >= 16);
    let hex = hex::encode(secret);
    vec![
        (format!("{name} raw"), secret.to_vec()),
        (format!("{name} hex"), hex.clone().into_bytes()),
        (format!("{name} HEX"), hex.to_uppercase().into_bytes()),
        // A 16-byte window catches a partial or reformatted print.
        (format!("{name} hex prefix"), hex.as_bytes()[..32].to_vec()),
    ]
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn no_key_material_in_any_log_output_or_stored_file_and_key_files_are_private() {
    let tmp = tempfile::tempdir().unwrap();
    let keys = tmp.path().join("keys");
    std::fs::create_dir_all(&keys).unwrap();
    let keytool = bin("sealdump-keytool");
    let mut outputs: Vec<(String, Vec<u8>)> = Vec::new();
    let mut record = |what: &str, out: &Output| {
        outputs.push((format!("{what} stdout"), out.stdout.clone()));
        outputs.push((format!("{what} stderr"), out.stderr.clone()));
    };

    let out = run(Command::new(&keytool).arg("gen").arg(keys.join("x")));
    record("keytool gen", &out);
    let out = run(Command::new(&keytool)
        .args(["gen", "--rsa", "3072"])
        .arg(keys.join("r")));
    record("keytool gen --rsa", &out);
    for name in ["x.key", "r.key"] {
        assert_eq!(mode(&keys.join(name)), 0o600, "{name}");
        let out = run(Command::new(&keytool).arg("inspect").arg(keys.join(name)));
        record("keytool inspect", &out);
        let out = run(Command::new(&keytool).arg("fingerprint").arg(keys.join(name)));
        record("keytool fingerprint", &out);
    }
    let x = read_private_key_file(&keys.join("x.key"), None).unwrap();
    let r = read_private_key_file(&keys.join("r.key"), None).unwrap();

    let rx = Receiver::start_with(&tmp.path().join("dumps"), &[], &[("SEALDUMP_LOG", "trace")]);
    let (dump, data) = synthetic(tmp.path(), 2, 81);
    let out = run(Command::new(bin("sealdump-send"))
        .args(["--client-port", "0", "--to", &rx.addr, "--recipient"])
        .arg(keys.join("x.pub"))
        .arg("--recipient")
        .arg(keys.join("r.pub"))
        .arg(&dump));
    record("sealdump-send", &out);
    let infos = rx.wait_for_dumps(1, Duration::from_secs(20));
    let core = core_for_info(&infos[0]);
    let blob_path = key_blob_for(&core);
    assert_eq!(mode(&blob_path), 0o400, "stored key blob");
    for f in [&core, &infos[0]] {
        assert_eq!(mode(f) & 0o077, 0, "{} is readable by others", f.display());
    }

    let decrypted = tmp.path().join("plain");
    for key in ["x.key", "r.key"] {
        let _ = std::fs::remove_file(&decrypted);
        let out = run(Command::new(bin("sealdump-decryptor"))
            .arg("--key")
            .arg(keys.join(key))
            .arg("-o")
            .arg(&decrypted)
            .arg(&core));
        record("decryptor", &out);
        assert_eq!(sha256(&std::fs::read(&decrypted).unwrap()), sha256(&data));
        let out = run(Command::new(bin("sealdump-decryptor"))
            .args(["info", "--key"])
            .arg(keys.join(key))
            .arg(&core));
        record("decryptor info", &out);
    }
    // A junk datagram makes the receiver log at debug level (it logs nothing else at that level). Wait for that
    // line before stopping the receiver: a SIGTERM sent at once can win the race with the datagram.
    let junk = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let logged_debug = |rx: &Receiver| rx.log_text().contains("DEBUG") || rx.log_text().contains("TRACE");
    while !logged_debug(&rx) {
        assert!(
            std::time::Instant::now() < deadline,
            "the receiver did not log at debug level"
        );
        junk.send_to(b"junk", &rx.addr).unwrap();
        std::thread::sleep(Duration::from_millis(100));
    }
    // Stop the receiver so its last lines are in.
    rx.signal("TERM");
    std::thread::sleep(Duration::from_millis(300));
    outputs.push(("receiver log".into(), rx.log_text().into_bytes()));

    // The secrets, recovered here from the files.
    let blob = std::fs::read(&blob_path).unwrap();
    let header = HeaderView::parse(&blob).unwrap();
    let stanza = header
        .stanzas()
        .find(|s| s.key_id == x.public_key().key_id())
        .unwrap();
    let dk = x.unwrap_stanza(&stanza, &header).unwrap();
    let mut secrets = needles("dump key", dk.as_bytes());
    match &x {
        PrivateKey::X25519(s) => secrets.extend(needles("X25519 private key", s.as_bytes())),
        _ => panic!("x.key is not X25519"),
    }
    match &r {
        PrivateKey::Rsa(k) => {
            let d = k.d().to_be_bytes();
            secrets.extend(needles("RSA d", &d[d.len() / 2..d.len() / 2 + 32]));
            for (i, p) in k.primes().iter().enumerate() {
                let p = p.to_be_bytes();
                secrets.extend(needles(
                    &format!("RSA prime {i}"),
                    &p[p.len() / 2..p.len() / 2 + 32],
                ));
            }
        }
        _ => panic!("r.key is not RSA"),
    }

    // Everything the receiver stored, and the decryptor's output file.
    for f in walk(&rx.dir) {
        if let Ok(bytes) = std::fs::read(&f) {
            outputs.push((f.display().to_string(), bytes));
        }
    }
    // The search works: the private key's own PKCS#8 DER holds the raw scalar.
    let der = x.to_pkcs8_der().unwrap();
    assert!(contains(der.as_bytes(), &secrets[4].1), "{}", secrets[4].0);
    let mut checked = 0;
    for (what, haystack) in &outputs {
        for (name, needle) in &secrets {
            assert!(!contains(haystack, needle), "{name} found in {what}");
            checked += 1;
        }
    }
    eprintln!(
        "searched {} outputs/files ({} KiB) for {} secret patterns: none found",
        outputs.len(),
        outputs.iter().map(|(_, h)| h.len()).sum::<usize>() >> 10,
        secrets.len()
    );
    assert!(checked > 100);
}
