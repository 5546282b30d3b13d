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
            with_key(&key, &[], &s.dump)
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
    let plain = plaintext(5 * 65536 + 123, 9);
    let t = OneKeyDump::with_spec(2, &plain, |public| SealSpec {
        chunk_shift: 16,
        ..SealSpec::x25519(public)
    });
    for threads in ["1", "2", "5"] {
        let out = t.path().join(format!("out.{threads}"));
        bin()
            .arg("-k")
            .arg(&t.key)
            .args(["--threads", threads, "-o"])
            .arg(&out)
            .arg(&t.sealed.dump)
            .assert()
            .success();
        assert_eq!(std::fs::read(&out).unwrap(), plain);
    }
}

#[test]
fn empty_dump() {
    let t = OneKeyDump::new(3, &[]);
    t.decryptor(&[]).assert().success();
    assert_eq!(t.default_output(), b"");
}

#[test]
fn streams_to_stdout_in_order() {
    let plain = plaintext(40 * 4096 + 17, 4);
    let t = OneKeyDump::new(4, &plain);
    let out = run(&mut t.decryptor(&["--threads", "3", "-o", "-"]));
    assert_ok(&out);
    assert_eq!(out.stdout, plain);
    assert!(!t.sealed.default_output().exists());
}

#[test]
fn verify_writes_nothing() {
    let t = OneKeyDump::new(5, &plaintext(20_000, 5));
    t.decryptor(&["--verify"])
        .assert()
        .success()
        .stderr(predicate::str::contains(
            "authentic and complete: 20000 bytes in 5 chunks",
        ));
    assert_eq!(
        std::fs::read_dir(t.path()).unwrap().count(),
        3,
        "key, blob, dump only"
    );
}

#[test]
fn keyfile_and_explicit_output() {
    let plain = plaintext(9000, 6);
    let t = OneKeyDump::new(6, &plain);
    let moved_blob = t.path().join("header.bin");
    let moved_dump = t.path().join("stream.bin");
    std::fs::rename(&t.sealed.key_blob, &moved_blob).unwrap();
    std::fs::rename(&t.sealed.dump, &moved_dump).unwrap();
    // Padding after the header (as a 4096-byte EKCD_KEY payload) is ignored.
    let mut blob = std::fs::read(&moved_blob).unwrap();
    blob.resize(4096, 0);
    std::fs::write(&moved_blob, blob).unwrap();
    let out = t.path().join("plain");
    bin()
        .arg("--key")
        .arg(&t.key)
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
    let plain = plaintext(5000, 7);
    let t = OneKeyDump::new(7, &plain);
    std::fs::write(t.sealed.default_output(), b"precious").unwrap();
    assert_fails(
        &mut t.decryptor(&[]),
        2,
        &["output exists (use --force to overwrite)"],
    );
    assert_eq!(t.default_output(), b"precious");
    t.decryptor(&["--force"]).assert().success();
    assert_eq!(t.default_output(), plain);
}

#[test]
fn wrong_key_lists_present_and_given_ids() {
    let dir = tempfile::tempdir().unwrap();
    let (_, public_a) = x25519_key(dir.path(), "a", 10);
    let (_, public_b) = x25519_key(dir.path(), "b", 11);
    let (key_c, public_c) = x25519_key(dir.path(), "c", 12);
    let spec = SealSpec::x25519_all(&[public_a, public_b]);
    let s = seal_dump(dir.path(), "h.0", &plaintext(100, 1), &spec);
    assert_fails(
        &mut with_key(&key_c, &[], &s.dump),
        1,
        &[
            "no given key opens this dump",
            &key_id_hex(&public_a),
            &key_id_hex(&public_b),
            &key_id_hex(&public_c),
        ],
    );
    assert!(!s.default_output().exists());
}

#[test]
fn second_recipient_and_key_dir() {
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("keys");
    std::fs::create_dir(&keys).unwrap();
    x25519_key(&keys, "a", 20);
    let (_, public_b) = x25519_key(&keys, "b", 21);
    std::fs::write(keys.join("README"), "not a key").unwrap();
    // Only b is a recipient; the directory also holds a and a non-key file.
    let (_, public_x) = x25519_key(dir.path(), "x", 22);
    let spec = SealSpec::x25519_all(&[public_x, public_b]);
    let plain = plaintext(7000, 2);
    let s = seal_dump(dir.path(), "h.0", &plain, &spec);
    bin().arg("--key-dir").arg(&keys).arg(&s.dump).assert().success();
    assert_eq!(std::fs::read(s.default_output()).unwrap(), plain);
}

#[test]
fn no_key_given_lists_the_recipients() {
    let t = OneKeyDump::new(30, &plaintext(100, 1));
    assert_fails(
        bin().arg(&t.sealed.dump),
        2,
        &["no private key given", &key_id_hex(&t.public)],
    );
}

#[test]
fn unreadable_key_file_is_an_environment_error() {
    let t = OneKeyDump::new(31, &plaintext(100, 1));
    let missing = t.path().join("nope.key");
    assert_fails(&mut with_key(&missing, &[], &t.sealed.dump), 2, &["nope.key"]);
    let junk = t.path().join("junk.key");
    std::fs::write(
        &junk,
        "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
    )
    .unwrap();
    assert_fails(&mut with_key(&junk, &[], &t.sealed.dump), 2, &["junk.key"]);
}

#[test]
fn chunk_failure_is_named_with_ranges_and_output_removed() {
    let t = OneKeyDump::new(40, &plaintext(10 * 4096, 1));
    let s = &t.sealed;
    flip_bit(&s.dump, 3 * s.record_size() + 100, 3);
    assert_fails(
        &mut t.decryptor(&[]),
        1,
        &["chunk 3 is not authentic (ciphertext bytes 12336..16448, plaintext bytes 12288..16384)"],
    );
    assert!(!s.default_output().exists(), "partial output is deleted");
}

#[test]
fn verify_counts_every_failed_chunk() {
    let t = OneKeyDump::new(41, &plaintext(10 * 4096, 1));
    let s = &t.sealed;
    for i in [2u64, 5, 9] {
        flip_bit(&s.dump, i * s.record_size() + 4096 + 3, 0); // in the tag
    }
    assert_fails(
        &mut t.decryptor(&["--verify"]),
        1,
        &["chunk 2 is not authentic", "2 more chunk(s) failed"],
    );
}

#[test]
fn swapped_chunks_fail() {
    let t = OneKeyDump::new(42, &plaintext(6 * 4096, 1));
    let s = &t.sealed;
    let mut stream = std::fs::read(&s.dump).unwrap();
    let r = s.record_size() as usize;
    let (a, b) = stream.split_at_mut(2 * r);
    a[r..2 * r].swap_with_slice(&mut b[..r]);
    std::fs::write(&s.dump, stream).unwrap();
    assert_fails(
        &mut t.decryptor(&["--verify"]),
        1,
        &["chunk 1 is not authentic", "1 more"],
    );
}

#[test]
fn truncation_is_detected_and_salvaged() {
    let plain = plaintext(8 * 4096 + 1000, 1);
    let t = OneKeyDump::new(43, &plain);
    let s = &t.sealed;
    let full = std::fs::read(&s.dump).unwrap();
    let r = s.record_size() as usize;
    // Cut: the trailer only, inside the trailer, inside chunk 5, right after chunk 3.
    for cut in [full.len() - 48, full.len() - 10, 5 * r + 700, 4 * r] {
        std::fs::write(&s.dump, &full[..cut]).unwrap();
        assert_fails(&mut t.decryptor(&[]), 1, &["dump is truncated", "--salvage"]);
        assert!(!s.default_output().exists());

        let out = run(&mut t.decryptor(&["--salvage", "--json", "--force"]));
        assert_eq!(out.status.code(), Some(1), "cut {cut}: {}", stderr_of(&out));
        let got = t.default_output();
        let whole = cut / r; // chunks surely intact
        assert_eq!(&got[..whole * 4096], &plain[..whole * 4096], "cut {cut}");
        let report = json_of(&out);
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
    let plain = plaintext(3 * 4096 + 5, 1);
    let t = OneKeyDump::new(44, &plain);
    let len = std::fs::metadata(&t.sealed.dump).unwrap().len();
    flip_bit(&t.sealed.dump, len - 30, 1);
    assert_fails(&mut t.decryptor(&["--verify"]), 1, &["no authentic trailer"]);
    // Salvage still recovers every chunk but cannot vouch for the end.
    t.decryptor(&["--salvage"]).assert().code(1);
    assert_eq!(t.default_output(), plain);
}

#[test]
fn extra_bytes_after_the_trailer_are_detected() {
    let t = OneKeyDump::new(45, &plaintext(3 * 4096, 1));
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&t.sealed.dump)
        .unwrap();
    std::io::Write::write_all(&mut f, &[0u8; 100]).unwrap();
    t.decryptor(&["--verify"]).assert().code(1);
}

#[test]
fn aborted_dump_is_an_authentic_partial() {
    let plain = plaintext(5 * 4096 + 3, 1);
    let t = OneKeyDump::with_spec(46, &plain, |public| SealSpec {
        status: TrailerStatus::Aborted,
        expected_length: Some(1 << 20),
        ..SealSpec::x25519(public)
    });
    assert_fails(
        &mut t.decryptor(&[]),
        1,
        &["aborted by the client", "20483 bytes"],
    );
    assert_eq!(t.default_output(), plain, "the authentic part is kept");
    assert_fails(&mut t.decryptor(&["--verify"]), 1, &["aborted"]);
}

#[test]
fn salvage_recovers_every_other_chunk_byte_exact() {
    let chunks = 64u64;
    let plain = plaintext(chunks as usize * 4096 - 1234, 3);
    let t = OneKeyDump::new(47, &plain);
    let s = &t.sealed;
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
        cmd.arg("--key").arg(&t.key).args(["--salvage", "--threads", "2"]);
        let out_path = t.path().join(format!("salvaged.{sink}"));
        if sink == "file" {
            cmd.arg("--json").arg("-o").arg(&out_path);
        } else {
            cmd.args(["-o", "-"]);
        }
        let out = run(cmd.arg(&s.dump));
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
            let report = json_of(&out);
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
    let plain = plaintext(4 * 4096, 3);
    let t = OneKeyDump::new(48, &plain);
    let out = run(&mut t.decryptor(&["--salvage", "--json"]));
    assert_ok(&out);
    let report = json_of(&out);
    assert_eq!(report["authentic"], true);
    assert_eq!(report["missing"].as_array().unwrap().len(), 0);
    assert_eq!(t.default_output(), plain);
}

/// Flip one bit in every byte of the seal header: each flip must be caught and named.
#[test]
fn header_tamper_matrix() {
    let t = OneKeyDump::new(50, &plaintext(3 * 4096, 1));
    let original = std::fs::read(&t.sealed.key_blob).unwrap();
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
        std::fs::write(&t.sealed.key_blob, &tampered).unwrap();
        let out = run(&mut t.decryptor(&["--verify"]));
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
    let plain = plaintext(200 * 4096, 6);
    let t = OneKeyDump::new(60, &plain);
    flip_bit(&t.sealed.dump, 150 * t.sealed.record_size() + 9, 2);
    let out = run(&mut t.decryptor(&["--threads", "2", "-o", "-"]));
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
    let t = OneKeyDump::with_spec(61, &plaintext(5 * 4096 + 1, 6), |public| SealSpec {
        aead: AeadId::Aes256Gcm,
        ..SealSpec::x25519(public)
    });
    let out = run(&mut t.decryptor(&["--verify", "--json"]));
    assert_ok(&out);
    let v = json_of(&out);
    assert_eq!(v["mode"], "verify");
    assert_eq!(v["authentic"], true);
    assert_eq!(v["chunks"], 6);
    assert_eq!(v["plaintext_len"], 5 * 4096 + 1);
    assert_eq!(v["output"], serde_json::Value::Null);
}

#[test]
fn salvage_of_an_aborted_dump_with_a_bad_chunk() {
    let plain = plaintext(6 * 4096, 6);
    let t = OneKeyDump::with_spec(62, &plain, |public| SealSpec {
        status: TrailerStatus::Aborted,
        ..SealSpec::x25519(public)
    });
    flip_bit(&t.sealed.dump, 2 * t.sealed.record_size() + 1, 0);
    let out = run(&mut t.decryptor(&["--salvage", "--json"]));
    assert_eq!(out.status.code(), Some(1));
    let v = json_of(&out);
    assert_eq!(v["trailer"], "aborted");
    assert_eq!(v["missing"], serde_json::json!([{"start": 8192, "end": 12288}]));
    let mut expect = plain.clone();
    expect[8192..12288].fill(0);
    assert_eq!(t.default_output(), expect);
}
