//! FreeBSD `dumpon -k` end to end over loopback: an EKCD dump made with the `openssl` tool (as dumpon and the
//! kernel make it) is sent by the FreeBSD-like netdump client (FreeBSD 12 and 13+ message orders) to
//! `sealdump-receiver`, which stores `key.<host>.N` and `vmcore_encrypted.<host>.N`; `sealdump-decryptor` then
//! finds the key blob beside the core and must reproduce the plaintext byte for byte (what decryptcore(8) writes).
//! Needs `openssl` on PATH.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use sealdump_tests::{Receiver, bin, core_for_info, run_decryptor};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

fn openssl(args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .output()
        .expect("openssl must be installed");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn pseudo_random(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

#[test]
fn dumpon_k_dump_through_the_receiver_decrypts_byte_exact() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let private = t.join("dumpkey.pem");
    let public = t.join("dumpkey.pub");
    openssl(&["genrsa", "-out", s(&private), "2048"]);
    openssl(&["rsa", "-in", s(&private), "-pubout", "-out", s(&public)]);

    // (cipher id, order, payload length): ChaCha20 with a length that is not a multiple of 4096,
    // AES-256-CBC (whole 16-byte blocks) with one that is.
    for (n, (cipher, order, len)) in [(2u8, "13", 300_001usize), (1u8, "12", 64 * 4096)]
        .into_iter()
        .enumerate()
    {
        let key64 = pseudo_random(64, 10 + n as u64);
        let iv = pseudo_random(32, 20 + n as u64);
        let plain = pseudo_random(len, 30 + n as u64);
        let key_path = t.join(format!("key64.{n}"));
        let wrapped_path = t.join(format!("wrapped.{n}"));
        std::fs::write(&key_path, &key64).unwrap();
        openssl(&[
            "pkeyutl",
            "-encrypt",
            "-pubin",
            "-inkey",
            s(&public),
            "-in",
            s(&key_path),
            "-out",
            s(&wrapped_path),
            "-pkeyopt",
            "rsa_padding_mode:oaep",
        ]);
        let wrapped = std::fs::read(&wrapped_path).unwrap();
        let mut blob = vec![cipher];
        blob.extend_from_slice(&iv);
        blob.extend_from_slice(&(wrapped.len() as u32).to_be_bytes());
        blob.extend_from_slice(&wrapped);
        blob.resize(4096, 0);
        let blob_path = t.join(format!("blob.{n}"));
        std::fs::write(&blob_path, &blob).unwrap();

        let plain_path = t.join(format!("plain.{n}"));
        let core_path = t.join(format!("core.{n}"));
        std::fs::write(&plain_path, &plain).unwrap();
        let k = hex(&key64[..32]);
        if cipher == 2 {
            let ivs = format!("0000000000000000{}", hex(&iv[..8]));
            openssl(&[
                "enc",
                "-chacha20",
                "-K",
                &k,
                "-iv",
                &ivs,
                "-in",
                s(&plain_path),
                "-out",
                s(&core_path),
            ]);
        } else {
            let ivs = hex(&iv[..16]);
            openssl(&[
                "enc",
                "-aes-256-cbc",
                "-nopad",
                "-K",
                &k,
                "-iv",
                &ivs,
                "-in",
                s(&plain_path),
                "-out",
                s(&core_path),
            ]);
        }

        let dumps = t.join(format!("dumps.{n}"));
        std::fs::create_dir(&dumps).unwrap();
        let rx = Receiver::start(&dumps);
        let out = Command::new(bin("sealdump-fbsd-client"))
            .args([
                "--to",
                &rx.addr,
                "--bind",
                "127.0.0.1:0",
                "--order",
                order,
                "--rto-ms",
                "200",
                "--key",
                s(&blob_path),
            ])
            .arg(&core_path)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "client: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let info = rx.wait_for_dumps(1, Duration::from_secs(20));
        let stored = core_for_info(&info[0]);
        assert!(stored.exists(), "{}", stored.display());
        drop(rx);

        // The key blob is found beside the stored core; the output goes elsewhere.
        let decrypted = t.join(format!("vmcore.{n}"));
        let out = run_decryptor(&private, &decrypted, &stored);
        assert!(
            out.status.success(),
            "decryptor: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(String::from_utf8_lossy(&out.stderr).contains("not authenticated"));
        assert!(
            std::fs::read(&decrypted).unwrap() == plain,
            "order {order}, cipher {cipher}: plaintext differs"
        );
    }
}
