//! FreeBSD `dumpon -k` (EKCD) dumps built with the `openssl` command-line tool, as dumpon(8) and the kernel would,
//! decrypted byte-exact (what decryptcore(8) would write). Needs `openssl` on PATH.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::{Path, PathBuf};

use common::*;
use predicates::prelude::*;

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

struct Rsa {
    private: PathBuf,
    public: PathBuf,
}

fn rsa_key(dir: &Path, name: &str, bits: u32, traditional: bool) -> Rsa {
    let private = dir.join(format!("{name}.pem"));
    let public = dir.join(format!("{name}.pub"));
    let bits = bits.to_string();
    let mut args = vec!["genrsa", "-out", p(&private)];
    if traditional {
        args.push("-traditional");
    }
    args.push(&bits);
    openssl(&args);
    openssl(&["rsa", "-in", p(&private), "-pubout", "-out", p(&public)]);
    Rsa { private, public }
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Cipher {
    Aes,
    ChaCha,
}

#[derive(Clone, Copy, Debug)]
enum Padding {
    Oaep,
    Pkcs1,
}

/// Writes `key.<tag>` and `vmcore_encrypted.<tag>` as a FreeBSD kernel + netdumpd would; returns the dump path.
fn ekcd_dump(
    dir: &Path,
    tag: &str,
    rsa: &Rsa,
    cipher: Cipher,
    padding: Padding,
    plain: &[u8],
    seed: u32,
) -> PathBuf {
    let key64 = plaintext(64, seed.wrapping_add(1000));
    let iv = plaintext(32, seed.wrapping_add(2000));
    let key_path = dir.join(format!("{tag}.key64"));
    std::fs::write(&key_path, &key64).unwrap();
    let wrapped = dir.join(format!("{tag}.wrapped"));
    let mode = match padding {
        Padding::Oaep => "rsa_padding_mode:oaep",
        Padding::Pkcs1 => "rsa_padding_mode:pkcs1",
    };
    openssl(&[
        "pkeyutl",
        "-encrypt",
        "-pubin",
        "-inkey",
        p(&rsa.public),
        "-in",
        p(&key_path),
        "-out",
        p(&wrapped),
        "-pkeyopt",
        mode,
    ]);
    let wrapped = std::fs::read(&wrapped).unwrap();

    // struct kerneldumpkey: cipher, iv[32], BE size, key, zero padding to 4096 (netdump).
    let mut blob = vec![match cipher {
        Cipher::Aes => 1u8,
        Cipher::ChaCha => 2,
    }];
    blob.extend_from_slice(&iv);
    blob.extend_from_slice(&(wrapped.len() as u32).to_be_bytes());
    blob.extend_from_slice(&wrapped);
    blob.resize(blob.len().div_ceil(4096) * 4096, 0);
    std::fs::write(dir.join(format!("key.{tag}")), &blob).unwrap();

    let plain_path = dir.join(format!("{tag}.plain"));
    std::fs::write(&plain_path, plain).unwrap();
    let dump = dir.join(format!("vmcore_encrypted.{tag}"));
    let k = hex(&key64[..32]);
    match cipher {
        Cipher::Aes => openssl(&[
            "enc",
            "-aes-256-cbc",
            "-nopad",
            "-K",
            &k,
            "-iv",
            &hex(&iv[..16]),
            "-in",
            p(&plain_path),
            "-out",
            p(&dump),
        ]),
        // OpenSSL's ChaCha20 IV is a 64-bit little-endian counter (0) then the 64-bit nonce (DJB layout).
        Cipher::ChaCha => openssl(&[
            "enc",
            "-chacha20",
            "-K",
            &k,
            "-iv",
            &format!("0000000000000000{}", hex(&iv[..8])),
            "-in",
            p(&plain_path),
            "-out",
            p(&dump),
        ]),
    };
    assert_ne!(std::fs::read(&dump).unwrap(), plain);
    dump
}

/// `len` bytes of test plaintext as the FreeBSD dump `h.0` (the short cases that test one refusal each).
fn small_ekcd_dump(dir: &Path, rsa: &Rsa, cipher: Cipher, padding: Padding, len: usize) -> PathBuf {
    ekcd_dump(dir, "h.0", rsa, cipher, padding, &plaintext(len, 1), 1)
}

#[test]
fn both_ciphers_both_paddings_many_sizes() {
    let dir = tempfile::tempdir().unwrap();
    let rsa = rsa_key(dir.path(), "dumpkey", 2048, false);
    let mut n = 0;
    for cipher in [Cipher::Aes, Cipher::ChaCha] {
        for padding in [Padding::Oaep, Padding::Pkcs1] {
            let sizes: &[usize] = match cipher {
                // Multiples of 4096 and multiples of 16 that are not; one spans the 1 MiB read buffer.
                Cipher::Aes => &[4096, 3 * 4096, 2 * 4096 + 5 * 16, 16, (1 << 20) + 4096 + 48],
                Cipher::ChaCha => &[4096, 5 * 4096, 10_001, 1, (1 << 20) + 100],
            };
            for &len in sizes {
                n += 1;
                let plain = plaintext(len, n);
                let tag = format!("fbsd.{n}");
                let dump = ekcd_dump(dir.path(), &tag, &rsa, cipher, padding, &plain, n);
                let out = run(&mut with_key(&rsa.private, &[], &dump));
                assert!(
                    out.status.success(),
                    "{cipher:?} {padding:?} {len}: {}",
                    stderr_of(&out)
                );
                assert!(
                    stderr_of(&out).contains("not authenticated"),
                    "the EKCD warning is printed"
                );
                let got = std::fs::read(dir.path().join(format!("vmcore.{tag}"))).unwrap();
                assert!(got == plain, "{cipher:?} {padding:?} {len}: output differs");
            }
        }
    }
}

#[test]
fn pkcs1_private_key_savecore_names_and_stdout() {
    let dir = tempfile::tempdir().unwrap();
    let rsa = rsa_key(dir.path(), "trad", 2048, true);
    let plain = plaintext(3 * 4096 + 7, 77);
    // savecore(8) names: key.N beside vmcore_encrypted.N.
    let dump = ekcd_dump(dir.path(), "4", &rsa, Cipher::ChaCha, Padding::Oaep, &plain, 77);
    let out = run(&mut with_key(&rsa.private, &["-o", "-"], &dump));
    assert_ok(&out);
    assert_eq!(out.stdout, plain);
}

#[test]
fn wrong_or_mis_sized_rsa_keys_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let rsa = rsa_key(dir.path(), "right", 2048, false);
    let other = rsa_key(dir.path(), "other", 2048, false);
    let small = rsa_key(dir.path(), "small", 1024, false);
    let dump = small_ekcd_dump(dir.path(), &rsa, Cipher::Aes, Padding::Oaep, 4096);
    bin()
        .arg("--key")
        .arg(&other.private)
        .arg("--key")
        .arg(&small.private)
        .arg(&dump)
        .assert()
        .code(1)
        .stderr(
            predicate::str::contains("no given key unwraps this FreeBSD dump key")
                .and(predicate::str::contains("other.pem"))
                .and(predicate::str::contains("RSA-1024, needs RSA-2048")),
        );
    assert!(!dir.path().join("vmcore.h.0").exists());
    // The right key among wrong ones is found.
    bin()
        .arg("--key")
        .arg(&small.private)
        .arg("--key")
        .arg(&rsa.private)
        .arg(&dump)
        .assert()
        .success();
}

#[test]
fn aes_dump_that_is_not_whole_blocks_is_refused_and_removed() {
    let dir = tempfile::tempdir().unwrap();
    let rsa = rsa_key(dir.path(), "k", 2048, false);
    let dump = small_ekcd_dump(dir.path(), &rsa, Cipher::Aes, Padding::Pkcs1, 4096);
    let mut ct = std::fs::read(&dump).unwrap();
    ct.truncate(4090);
    std::fs::write(&dump, ct).unwrap();
    assert_fails(
        &mut with_key(&rsa.private, &[], &dump),
        1,
        &["not a whole number of AES blocks"],
    );
    assert!(!dir.path().join("vmcore.h.0").exists());
}

#[test]
fn verify_is_refused_for_unauthenticated_dumps() {
    let dir = tempfile::tempdir().unwrap();
    let rsa = rsa_key(dir.path(), "k", 2048, false);
    let dump = small_ekcd_dump(dir.path(), &rsa, Cipher::ChaCha, Padding::Oaep, 100);
    assert_fails(
        &mut with_key(&rsa.private, &["--verify"], &dump),
        2,
        &["no authentication"],
    );
}

#[test]
fn info_describes_an_ekcd_dump() {
    let dir = tempfile::tempdir().unwrap();
    let rsa = rsa_key(dir.path(), "k", 2048, false);
    let dump = small_ekcd_dump(dir.path(), &rsa, Cipher::ChaCha, Padding::Oaep, 8192);
    let v = info_json(&rsa.private, &dump);
    assert_eq!(v["cipher"], "chacha20");
    assert_eq!(v["needs_key"], "RSA-2048");
    assert_eq!(v["stream_len"], 8192);
    assert!(v["opened_with"].as_str().unwrap().ends_with("k.pem"));
}

#[test]
fn parallel_segments_match_a_sequential_pass() {
    let dir = tempfile::tempdir().unwrap();
    let rsa = rsa_key(dir.path(), "k", 2048, false);
    for (n, (cipher, len)) in [
        (Cipher::Aes, 3 * (1 << 20) + 4096 + 32),
        (Cipher::ChaCha, 3 * (1 << 20) + 7),
    ]
    .into_iter()
    .enumerate()
    {
        let plain = plaintext(len, 500 + n as u32);
        let tag = format!("seg.{n}");
        let dump = ekcd_dump(
            dir.path(),
            &tag,
            &rsa,
            cipher,
            Padding::Oaep,
            &plain,
            500 + n as u32,
        );
        for threads in ["1", "3"] {
            let out_file = dir.path().join(format!("out.{n}.{threads}"));
            with_key(&rsa.private, &["--threads", threads, "-o", p(&out_file)], &dump)
                .assert()
                .success();
            assert!(
                std::fs::read(&out_file).unwrap() == plain,
                "{cipher:?} threads {threads} file"
            );
            let out = run(&mut with_key(
                &rsa.private,
                &["--threads", threads, "-o", "-"],
                &dump,
            ));
            assert!(out.status.success());
            assert!(out.stdout == plain, "{cipher:?} threads {threads} stdout");
        }
    }
}
