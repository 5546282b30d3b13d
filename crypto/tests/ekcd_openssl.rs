//! FreeBSD EKCD ciphers against the `openssl enc` command line (what `decryptcore(8)` does through libcrypto):
//! AES-256-CBC without padding and the original ChaCha20 (8-byte nonce, 64-bit counter from 0), both streamed
//! in uneven pieces. Skipped, with a note, when `openssl` is not installed.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::Write;
use std::process::{Command, Stdio};

use sealdump_crypto::Error;
use sealdump_crypto::ekcd::{Aes256CbcDecryptor, Aes256CbcEncryptor, ChaCha20Legacy};

/// The interop check must not pass vacuously: the test command installs openssl.
fn require_openssl() {
    let ok = Command::new("openssl")
        .arg("version")
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        ok,
        "openssl is required for the EKCD interop tests (the README's test command installs it)"
    );
}

fn openssl_enc(args: &[&str], input: &[u8]) -> Vec<u8> {
    let mut child = Command::new("openssl")
        .arg("enc")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let data = input.to_vec();
    let writer = std::thread::spawn(move || stdin.write_all(&data).unwrap());
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
    assert!(
        out.status.success(),
        "openssl enc {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

fn sample(len: usize, seed: u8) -> Vec<u8> {
    let mut v = vec![0u8; len];
    use rand_core::Rng;
    common::TestRng::new(seed).fill_bytes(&mut v);
    v
}

/// Uneven piece sizes to exercise state carried across calls.
const PIECES: [usize; 6] = [1, 15, 16, 17, 4096, 100_003];

#[test]
fn aes_256_cbc_nopad_matches_openssl() {
    require_openssl();
    let key: [u8; 32] = sample(32, 1).try_into().unwrap();
    let iv: [u8; 16] = sample(16, 2).try_into().unwrap();
    let plain = sample(16 * 20_000, 3);
    let (k, i) = (hex::encode(key), hex::encode(iv));
    let theirs = openssl_enc(&["-aes-256-cbc", "-nopad", "-K", &k, "-iv", &i], &plain);

    let mut ours = plain.clone();
    let mut enc = Aes256CbcEncryptor::new(&key, &iv);
    let mut pos = 0;
    for (n, blocks) in [1usize, 3, 256, 19_740].iter().cycle().enumerate() {
        if pos == ours.len() || n > 100 {
            break;
        }
        let end = (pos + blocks * 16).min(ours.len());
        enc.encrypt_blocks(&mut ours[pos..end]).unwrap();
        pos = end;
    }
    assert_eq!(pos, ours.len());
    assert_eq!(ours, theirs, "encryption differs from openssl");

    // Decrypt openssl's output in pieces; and openssl decrypts ours.
    let mut back = theirs.clone();
    let mut dec = Aes256CbcDecryptor::new(&key, &iv);
    let (a, rest) = back.split_at_mut(16);
    dec.decrypt_blocks(a).unwrap();
    let (b, c) = rest.split_at_mut(16 * 777);
    dec.decrypt_blocks(b).unwrap();
    dec.decrypt_blocks(c).unwrap();
    assert_eq!(back, plain);
    let theirs_back = openssl_enc(&["-d", "-aes-256-cbc", "-nopad", "-K", &k, "-iv", &i], &ours);
    assert_eq!(theirs_back, plain);

    // Partial blocks are refused, state untouched.
    assert_eq!(
        dec.decrypt_blocks(&mut [0u8; 15]).unwrap_err(),
        Error::BlockLength
    );
    println!(
        "AES-256-CBC (no padding): {} bytes agree with openssl enc both ways",
        plain.len()
    );
}

#[test]
fn chacha20_legacy_matches_openssl() {
    require_openssl();
    let key: [u8; 32] = sample(32, 4).try_into().unwrap();
    let nonce: [u8; 8] = sample(8, 5).try_into().unwrap();
    let plain = sample(PIECES.iter().sum::<usize>() + 12_345, 6);
    // OpenSSL's 16-byte "iv" for chacha20 = 32-bit little-endian counter ‖ 96-bit nonce; with the first 8 bytes zero
    // that is exactly djb's layout: 64-bit counter 0 ‖ 64-bit nonce (as decryptcore builds it).
    let iv = format!("{}{}", "00".repeat(8), hex::encode(nonce));
    let theirs = openssl_enc(&["-chacha20", "-K", &hex::encode(key), "-iv", &iv], &plain);

    let mut ours = plain.clone();
    let mut c = ChaCha20Legacy::new(&key, &nonce);
    let mut pos = 0;
    for n in PIECES {
        c.apply(&mut ours[pos..pos + n]);
        pos += n;
    }
    c.apply(&mut ours[pos..]);
    assert_eq!(ours, theirs, "keystream differs from openssl");

    let mut back = theirs.clone();
    let mut d = ChaCha20Legacy::new(&key, &nonce);
    for piece in back.chunks_mut(63) {
        d.apply(piece);
    }
    assert_eq!(back, plain);
    println!(
        "ChaCha20 (8-byte nonce, 64-bit counter): {} bytes agree with openssl enc",
        plain.len()
    );
}
