//! Sealed dumps end to end through the binary: decrypt, verify, stream, salvage and every failure it names.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::os::unix::fs::PermissionsExt;

use common::*;
use predicates::prelude::*;
use sealdump_crypto::AeadId;
use sealdump_crypto::seal::TrailerStatus;

#[test]
fn decrypts_byte_exact_for_every_size_and_aead() {
    let dir = tempfile::tempdir().unwrap();
    let (key, public) = x25519_key(dir.path(), "analyst", 1);
    let mut n = 0;
    for aead in [AeadId::ChaCha20Poly1305, AeadId::Aes256Gcm] {
        for len in [1usize, 4095, 4096, 4097, 3 * 4096, 50_000] {
            n += 1;
            let plain = plaintext(len, n);
            let spec = SealSpec {
                aead,
                ..SealSpec::x25519(public)
            };
            let s = seal_dump(dir.path(), &format!("host.{n}"), &plain, &spec);
            bin()
                .arg("--key")
                .arg(&key)
                .arg(&s.dump)
                .assert()
                .success()
                .stderr(predicate::str::contains("authentic"));
            let out = s.default_output();
            assert_eq!(std::fs::read(&out).unwrap(), plain, "aead {aead:?} len {len}");
            assert_eq!(
                std::fs::metadata(&out).unwrap().permissions().mode() & 0o777,
                0o600
            );
        }
    }
}

#[test]
fn larger_chunks_and_thread_counts() {
    let dir = tempfile::tempdir().unwrap();
    let (key, public) = x25519_key(dir.path(), "analyst", 2);
    let plain = plaintext(5 * 65536 + 123, 9);
    let spec = SealSpec {
        chunk_shift: 16,
        ..SealSpec::x25519(public)
    };
    let s = seal_dump(dir.path(), "h.0", &plain, &spec);
    for threads in ["1", "2", "5"] {
        let out = dir.path().join(format!("out.{threads}"));
        bin()
            .arg("-k")
            .arg(&key)
            .args(["--threads", threads, "-o"])
            .arg(&out)
            .arg(&s.dump)
            .assert()
            .success();
        assert_eq!(std::fs::read(&out).unwrap(), plain);
    }
}

#[test]
fn empty_dump() {
    let dir = tempfile::tempdir().unwrap();
    let (key, public) = x25519_key(dir.path(), "analyst", 3);
    let s = seal_dump(dir.path(), "h.0", &[], &SealSpec::x25519(public));
    bin().arg("--key").arg(&key).arg(&s.dump).assert().success();
    assert_eq!(std::fs::read(s.default_output()).unwrap(), b"");
}

#[test]
fn streams_to_stdout_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let (key, public) = x25519_key(dir.path(), "analyst", 4);
    let plain = plaintext(40 * 4096 + 17, 4);
    let s = seal_dump(dir.path(), "h.0", &plain, &SealSpec::x25519(public));
    let out = bin()
        .arg("--key")
        .arg(&key)
        .args(["--threads", "3", "-o", "-"])
        .arg(&s.dump)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr_of(&out));
    assert_eq!(out.stdout, plain);
    assert!(!s.default_output().exists());
}

#[test]
fn verify_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (key, public) = x25519_key(dir.path(), "analyst", 5);
    let s = seal_dump(
        dir.path(),
        "h.0",
        &plaintext(20_000, 5),
        &SealSpec::x25519(public),
    );
    bin()
        .arg("--key")
        .arg(&key)
        .arg("--verify")
        .arg(&s.dump)
        .assert()
        .success()
        .stderr(predicate::str::contains(
            "authentic and complete: 20000 bytes in 5 chunks",
        ));
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        3,
        "key, blob, dump only"
    );
}

#[test]
fn keyfile_and_explicit_output() {
    let dir = tempfile::tempdir().unwrap();
    let (key, public) = x25519_key(dir.path(), "analyst", 6);
    let plain = plaintext(9000, 6);
    let s = seal_dump(dir.path(), "h.0", &plain, &SealSpec::x25519(public));
    let moved_blob = dir.path().join("header.bin");
    let moved_dump = dir.path().join("stream.bin");
    std::fs::rename(&s.key_blob, &moved_blob).unwrap();
    std::fs::rename(&s.dump, &moved_dump).unwrap();
    // Padding after the header (as a 4096-byte EKCD_KEY payload) is ignored.
    let mut blob = std::fs::read(&moved_blob).unwrap();
    blob.resize(4096, 0);
    std::fs::write(&moved_blob, blob).unwrap();
    let out = dir.path().join("plain");
    bin()
        .arg("--key")
        .arg(&key)
        .arg("--keyfile")
        .arg(&moved_blob)
        .arg("-o")
        .arg(&out)
        .arg(&moved_dump)
        .assert()
        .success();
    assert_eq!(std::fs::read(&out).unwrap(), plain);
}

#[test]
fn output_is_exclusive_unless_forced() {
    let dir = tempfile::tempdir().unwrap();
    let (key, public) = x25519_key(dir.path(), "analyst", 7);
    let plain = plaintext(5000, 7);
    let s = seal_dump(dir.path(), "h.0", &plain, &SealSpec::x25519(public));
    std::fs::write(s.default_output(), b"precious").unwrap();
    bin()
        .arg("--key")
        .arg(&key)
        .arg(&s.dump)
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "output exists (use --force to overwrite)",
        ));
    assert_eq!(std::fs::read(s.default_output()).unwrap(), b"precious");
    bin()
        .arg("--key")
        .arg(&key)
        .arg("--force")
        .arg(&s.dump)
        .assert()
        .success();
    assert_eq!(std::fs::read(s.default_output()).unwrap(), plain);
}

#[test]
fn wrong_key_lists_present_and_given_ids() {
    let dir = tempfile::tempdir().unwrap();
    let (_, public_a) = x25519_key(dir.path(), "a", 10);
    let (_, public_b) = x25519_key(dir.path(), "b", 11);
    let (key_c, public_c) = x25519_key(dir.path(), "c", 12);
    let spec = SealSpec {
        recipients: vec![
            sealdump_crypto::seal::Recipient::X25519 { public: public_a },
            sealdump_crypto::seal::Recipient::X25519 { public: public_b },
        ],
        ..SealSpec::x25519(public_a)
    };
    let s = seal_dump(dir.path(), "h.0", &plaintext(100, 1), &spec);
    bin()
        .arg("--key")
        .arg(&key_c)
        .arg(&s.dump)
        .assert()
        .code(1)
        .stderr(
            predicate::str::contains("no given key opens this dump")
                .and(predicate::str::contains(key_id_hex(&public_a)))
                .and(predicate::str::contains(key_id_hex(&public_b)))
                .and(predicate::str::contains(key_id_hex(&public_c))),
        );
    assert!(!s.default_output().exists());
}

#[test]
fn second_recipient_and_key_dir() {
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("keys");
    std::fs::create_dir(&keys).unwrap();
    let (_, public_a) = x25519_key(&keys, "a", 20);
    let (_, public_b) = x25519_key(&keys, "b", 21);
    std::fs::write(keys.join("README"), "not a key").unwrap();
    // Only b is a recipient; the directory also holds a and a non-key file.
    let (_, public_x) = x25519_key(dir.path(), "x", 22);
    let spec = SealSpec {
        recipients: vec![
            sealdump_crypto::seal::Recipient::X25519 { public: public_x },
            sealdump_crypto::seal::Recipient::X25519 { public: public_b },
        ],
        ..SealSpec::x25519(public_a)
    };
    let plain = plaintext(7000, 2);
    let s = seal_dump(dir.path(), "h.0", &plain, &spec);
    bin().arg("--key-dir").arg(&keys).arg(&s.dump).assert().success();
    assert_eq!(std::fs::read(s.default_output()).unwrap(), plain);
}

#[test]
fn no_key_given_lists_the_recipients() {
    let dir = tempfile::tempdir().unwrap();
    let (_, public) = x25519_key(dir.path(), "a", 30);
    let s = seal_dump(dir.path(), "h.0", &plaintext(100, 1), &SealSpec::x25519(public));
    bin().arg(&s.dump).assert().code(2).stderr(
        predicate::str::contains("no private key given").and(predicate::str::contains(key_id_hex(&public))),
    );
}

#[test]
fn unreadable_key_file_is_an_environment_error() {
    let dir = tempfile::tempdir().unwrap();
    let (_, public) = x25519_key(dir.path(), "a", 31);
    let s = seal_dump(dir.path(), "h.0", &plaintext(100, 1), &SealSpec::x25519(public));
    bin()
        .arg("--key")
        .arg(dir.path().join("nope.key"))
        .arg(&s.dump)
        .assert()
        .code(2)
        .stderr(predicate::str::contains("nope.key"));
    std::fs::write(
        dir.path().join("junk.key"),
        "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
    )
    .unwrap();
    bin()
        .arg("--key")
        .arg(dir.path().join("junk.key"))
        .arg(&s.dump)
        .assert()
        .code(2)
        .stderr(predicate::str::contains("junk.key"));
}

#[test]
fn chunk_failure_is_named_with_ranges_and_output_removed() {
    let dir = tempfile::tempdir().unwrap();
    let (key, public) = x25519_key(dir.path(), "a", 40);
    let s = seal_dump(
        dir.path(),
        "h.0",
        &plaintext(10 * 4096, 1),
        &SealSpec::x25519(public),
    );
    flip_bit(&s.dump, 3 * s.record_size() + 100, 3);
    bin()
        .arg("--key")
        .arg(&key)
        .arg(&s.dump)
        .assert()
        .code(1)
        .stderr(predicate::str::contains(
            "chunk 3 is not authentic (ciphertext bytes 12336..16448, plaintext bytes 12288..16384)",
        ));
    assert!(!s.default_output().exists(), "partial output is deleted");
}

#[test]
fn verify_counts_every_failed_chunk() {
    let dir = tempfile::tempdir().unwrap();
    let (key, public) = x25519_key(dir.path(), "a", 41);
    let s = seal_dump(
        dir.path(),
        "h.0",
        &plaintext(10 * 4096, 1),
        &SealSpec::x25519(public),
    );
    for i in [2u64, 5, 9] {
        flip_bit(&s.dump, i * s.record_size() + 4096 + 3, 0); // in the tag
    }
    bin()
        .arg("--key")
        .arg(&key)
        .arg("--verify")
        .arg(&s.dump)
        .assert()
        .code(1)
        .stderr(
            predicate::str::contains("chunk 2 is not authentic")
                .and(predicate::str::contains("2 more chunk(s) failed")),
        );
}

#[test]
fn swapped_chunks_fail() {
    let dir = tempfile::tempdir().unwrap();
    let (key, public) = x25519_key(dir.path(), "a", 42);
    let s = seal_dump(
        dir.path(),
        "h.0",
        &plaintext(6 * 4096, 1),
        &SealSpec::x25519(public),
    );
    let mut stream = std::fs::read(&s.dump).unwrap();
    let r = s.record_size() as usize;
    let (a, b) = stream.split_at_mut(2 * r);
    a[r..2 * r].swap_with_slice(&mut b[..r]);
    std::fs::write(&s.dump, stream).unwrap();
    bin()
        .arg("--key")
        .arg(&key)
        .arg("--verify")
        .arg(&s.dump)
        .assert()
        .code(1)
        .stderr(predicate::str::contains("chunk 1 is not authentic").and(predicate::str::contains("1 more")));
}

#[test]
fn truncation_is_detected_and_salvaged() {
    let dir = tempfile::tempdir().unwrap();
    let (key, public) = x25519_key(dir.path(), "a", 43);
    let plain = plaintext(8 * 4096 + 1000, 1);
    let s = seal_dump(dir.path(), "h.0", &plain, &SealSpec::x25519(public));
    let full = std::fs::read(&s.dump).unwrap();
    let r = s.record_size() as usize;
    // Cut: the trailer only, inside the trailer, inside chunk 5, right after chunk 3.
    for cut in [full.len() - 48, full.len() - 10, 5 * r + 700, 4 * r] {
        std::fs::write(&s.dump, &full[..cut]).unwrap();
        bin()
            .arg("--key")
            .arg(&key)
            .arg(&s.dump)
            .assert()
            .code(1)
            .stderr(predicate::str::contains("dump is truncated").and(predicate::str::contains("--salvage")));
        assert!(!s.default_output().exists());

        let out = bin()
            .arg("--key")
            .arg(&key)
            .args(["--salvage", "--json", "--force"])
            .arg(&s.dump)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "cut {cut}: {}", stderr_of(&out));
        let got = std::fs::read(s.default_output()).unwrap();
        let whole = cut / r; // chunks surely intact
        assert_eq!(&got[..whole * 4096], &plain[..whole * 4096], "cut {cut}");
        let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(report["trailer"], "missing");
        assert_eq!(report["unknown_tail"], true);
        assert!(
            stderr_of(&out).contains("salvage incomplete"),
            "{}",
            stderr_of(&out)
        );
        // The header announced the full length: what is missing up to it is listed.
        let missing = report["missing"].as_array().unwrap();
        if cut >= full.len() - 48 {
            // Only the trailer is gone: every chunk is there, but the end cannot be vouched for.
            assert!(missing.is_empty(), "cut {cut}: {missing:?}");
            assert_eq!(got, plain);
        } else {
            assert_eq!(missing.last().unwrap()["end"], plain.len() as u64, "cut {cut}");
        }
        std::fs::remove_file(s.default_output()).unwrap();
    }
}

#[test]
fn tampered_trailer_is_detected() {
    let dir = tempfile::tempdir().unwrap();
    let (key, public) = x25519_key(dir.path(), "a", 44);
    let plain = plaintext(3 * 4096 + 5, 1);
    let s = seal_dump(dir.path(), "h.0", &plain, &SealSpec::x25519(public));
    let len = std::fs::metadata(&s.dump).unwrap().len();
    flip_bit(&s.dump, len - 30, 1);
    bin()
        .arg("--key")
        .arg(&key)
        .arg("--verify")
        .arg(&s.dump)
        .assert()
        .code(1)
        .stderr(predicate::str::contains("no authentic trailer"));
    // Salvage still recovers every chunk but cannot vouch for the end.
    bin()
        .arg("--key")
        .arg(&key)
        .arg("--salvage")
        .arg(&s.dump)
        .assert()
        .code(1);
    assert_eq!(std::fs::read(s.default_output()).unwrap(), plain);
}

#[test]
fn extra_bytes_after_the_trailer_are_detected() {
    let dir = tempfile::tempdir().unwrap();
    let (key, public) = x25519_key(dir.path(), "a", 45);
    let s = seal_dump(
        dir.path(),
        "h.0",
        &plaintext(3 * 4096, 1),
        &SealSpec::x25519(public),
    );
    let mut f = std::fs::OpenOptions::new().append(true).open(&s.dump).unwrap();
    std::io::Write::write_all(&mut f, &[0u8; 100]).unwrap();
    bin()
        .arg("--key")
        .arg(&key)
        .arg("--verify")
        .arg(&s.dump)
        .assert()
        .code(1);
}

#[test]
fn aborted_dump_is_an_authentic_partial() {
    let dir = tempfile::tempdir().unwrap();
    let (key, public) = x25519_key(dir.path(), "a", 46);
    let plain = plaintext(5 * 4096 + 3, 1);
    let spec = SealSpec {
        status: TrailerStatus::Aborted,
        expected_length: Some(1 << 20),
        ..SealSpec::x25519(public)
    };
    let s = seal_dump(dir.path(), "h.0", &plain, &spec);
    bin().arg("--key").arg(&key).arg(&s.dump).assert().code(1).stderr(
        predicate::str::contains("aborted by the client").and(predicate::str::contains("20483 bytes")),
    );
    assert_eq!(
        std::fs::read(s.default_output()).unwrap(),
        plain,
        "the authentic part is kept"
    );
    bin()
        .arg("--key")
        .arg(&key)
        .arg("--verify")
        .arg(&s.dump)
        .assert()
        .code(1)
        .stderr(predicate::str::contains("aborted"));
}

#[test]
fn salvage_recovers_every_other_chunk_byte_exact() {
    let dir = tempfile::tempdir().unwrap();
    let (key, public) = x25519_key(dir.path(), "a", 47);
    let chunks = 64u64;
    let plain = plaintext(chunks as usize * 4096 - 1234, 3);
    let s = seal_dump(dir.path(), "h.0", &plain, &SealSpec::x25519(public));
    let len = std::fs::metadata(&s.dump).unwrap().len();
    // Deterministic "random" positions over the data records (never the trailer).
    let mut x = 0x9e37_79b9u64;
    let mut hit = std::collections::BTreeSet::new();
    for _ in 0..9 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let pos = x % (len - 48);
        flip_bit(&s.dump, pos, (x >> 40) as u8);
        hit.insert(pos / s.record_size());
    }
    for sink in ["file", "stdout"] {
        let mut cmd = bin();
        cmd.arg("--key").arg(&key).args(["--salvage", "--threads", "2"]);
        let out_path = dir.path().join(format!("salvaged.{sink}"));
        if sink == "file" {
            cmd.arg("--json").arg("-o").arg(&out_path);
        } else {
            cmd.args(["-o", "-"]);
        }
        let out = cmd.arg(&s.dump).output().unwrap();
        assert_eq!(out.status.code(), Some(1));
        let got = if sink == "file" {
            std::fs::read(&out_path).unwrap()
        } else {
            out.stdout.clone()
        };
        assert_eq!(got.len(), plain.len());
        let mut expect = plain.clone();
        for &i in &hit {
            let start = (i * 4096) as usize;
            let end = ((i + 1) * 4096).min(plain.len() as u64) as usize;
            expect[start..end].fill(0);
            assert!(
                stderr_of(&out).contains(&format!("missing plaintext bytes {start}..")),
                "{}",
                stderr_of(&out)
            );
        }
        assert_eq!(got, expect, "every authentic chunk byte-exact, failed ones zero");
        if sink == "file" {
            let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
            let failed: Vec<u64> = report["failed_chunks"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_u64().unwrap())
                .collect();
            assert_eq!(failed, hit.iter().copied().collect::<Vec<_>>());
            let missing: u64 = report["missing"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r["end"].as_u64().unwrap() - r["start"].as_u64().unwrap())
                .sum();
            assert_eq!(missing, report["missing_bytes"].as_u64().unwrap());
            assert_eq!(report["trailer"], "complete");
        }
    }
}

#[test]
fn salvage_of_an_intact_dump_succeeds() {
    let dir = tempfile::tempdir().unwrap();
    let (key, public) = x25519_key(dir.path(), "a", 48);
    let plain = plaintext(4 * 4096, 3);
    let s = seal_dump(dir.path(), "h.0", &plain, &SealSpec::x25519(public));
    let out = bin()
        .arg("--key")
        .arg(&key)
        .args(["--salvage", "--json"])
        .arg(&s.dump)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr_of(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["authentic"], true);
    assert_eq!(report["missing"].as_array().unwrap().len(), 0);
    assert_eq!(std::fs::read(s.default_output()).unwrap(), plain);
}

/// Flip one bit in every byte of the seal header: each flip must be caught and named.
#[test]
fn header_tamper_matrix() {
    let dir = tempfile::tempdir().unwrap();
    let (key, public) = x25519_key(dir.path(), "a", 50);
    let s = seal_dump(
        dir.path(),
        "h.0",
        &plaintext(3 * 4096, 1),
        &SealSpec::x25519(public),
    );
    let original = std::fs::read(&s.key_blob).unwrap();
    // Field boundaries (docs/format.md): fixed part 0..44, one X25519 stanza 44..56+80, metadata, MAC.
    let field = |i: usize| match i {
        0..8 => "magic",
        8..10 => "version",
        10..12 => "header length",
        12..14 => "aead",
        14..16 => "kdf",
        16 => "chunk shift",
        17 => "compression",
        18 => "stanza count",
        19 => "reserved",
        20..36 => "dump id",
        36..44 => "time",
        44..46 => "stanza type",
        46..54 => "stanza key id",
        54..56 => "stanza body length",
        56..136 => "stanza body",
        _ if i >= original.len() - 32 => "mac",
        _ => "metadata",
    };
    for i in 0..original.len() {
        let mut tampered = original.clone();
        tampered[i] ^= 1 << (i % 8);
        std::fs::write(&s.key_blob, &tampered).unwrap();
        let out = bin()
            .arg("--key")
            .arg(&key)
            .arg("--verify")
            .arg(&s.dump)
            .output()
            .unwrap();
        let err = stderr_of(&out);
        assert_eq!(
            out.status.code(),
            Some(1),
            "byte {i} ({}) not caught: {err}",
            field(i)
        );
        let named = if field(i) == "stanza key id" {
            err.contains("no given key opens this dump")
        } else {
            err.contains("seal header is not authentic")
        };
        assert!(named, "byte {i} ({}): {err}", field(i));
        assert_eq!(err.lines().count(), 1, "one line: {err}");
    }
}

#[test]
fn streamed_decrypt_stops_at_the_first_bad_chunk() {
    let dir = tempfile::tempdir().unwrap();
    let (key, public) = x25519_key(dir.path(), "a", 60);
    let plain = plaintext(200 * 4096, 6);
    let s = seal_dump(dir.path(), "h.0", &plain, &SealSpec::x25519(public));
    flip_bit(&s.dump, 150 * s.record_size() + 9, 2);
    let out = bin()
        .arg("--key")
        .arg(&key)
        .args(["--threads", "2", "-o", "-"])
        .arg(&s.dump)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr_of(&out).contains("chunk 150 is not authentic"),
        "{}",
        stderr_of(&out)
    );
    // What was streamed is an authentic prefix, never past the bad chunk.
    assert!(out.stdout.len() <= 150 * 4096);
    assert_eq!(out.stdout, plain[..out.stdout.len()]);
}

#[test]
fn verify_json_report() {
    let dir = tempfile::tempdir().unwrap();
    let (key, public) = x25519_key(dir.path(), "a", 61);
    let s = seal_dump(
        dir.path(),
        "h.0",
        &plaintext(5 * 4096 + 1, 6),
        &SealSpec {
            aead: AeadId::Aes256Gcm,
            ..SealSpec::x25519(public)
        },
    );
    let out = bin()
        .arg("--key")
        .arg(&key)
        .args(["--verify", "--json"])
        .arg(&s.dump)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr_of(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["mode"], "verify");
    assert_eq!(v["authentic"], true);
    assert_eq!(v["chunks"], 6);
    assert_eq!(v["plaintext_len"], 5 * 4096 + 1);
    assert_eq!(v["output"], serde_json::Value::Null);
}

#[test]
fn salvage_of_an_aborted_dump_with_a_bad_chunk() {
    let dir = tempfile::tempdir().unwrap();
    let (key, public) = x25519_key(dir.path(), "a", 62);
    let plain = plaintext(6 * 4096, 6);
    let spec = SealSpec {
        status: TrailerStatus::Aborted,
        ..SealSpec::x25519(public)
    };
    let s = seal_dump(dir.path(), "h.0", &plain, &spec);
    flip_bit(&s.dump, 2 * s.record_size() + 1, 0);
    let out = bin()
        .arg("--key")
        .arg(&key)
        .args(["--salvage", "--json"])
        .arg(&s.dump)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["trailer"], "aborted");
    assert_eq!(v["missing"], serde_json::json!([{"start": 8192, "end": 12288}]));
    let mut expect = plain.clone();
    expect[8192..12288].fill(0);
    assert_eq!(std::fs::read(s.default_output()).unwrap(), expect);
}
