//! RSA wrapping against the real `openssl` binary: RSA-OAEP-SHA256 with the seal label in both directions,
//! and FreeBSD EKCD key unwrap (OAEP-SHA1 as `dumpon -k` today, PKCS#1 v1.5 as older dumpon).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::{Path, PathBuf};

use common::openssl;
use sealdump_crypto::keys::{self, KeyError, PrivateKey, PublicKey};
use sealdump_crypto::rsa_wrap::{ekcd_unwrap, prewrap_pool, unwrap_dump_key, wrap_dump_key};
use sealdump_crypto::seal::{RSA_OAEP_LABEL, StanzaKind};
use sealdump_crypto::secret::DumpKey;

struct RsaFixture {
    _dir: tempfile::TempDir,
    key_path: PathBuf,
    pub_path: PathBuf,
    key: rsa::PrivateKey,
}

fn rsa_fixture(bits: &str) -> RsaFixture {
    let dir = tempfile::tempdir().unwrap();
    let key_path = dir.path().join("k.pem");
    let pub_path = dir.path().join("k.pub");
    openssl(&["genrsa", "-out", key_path.to_str().unwrap(), bits]);
    openssl(&[
        "pkey",
        "-in",
        key_path.to_str().unwrap(),
        "-pubout",
        "-out",
        pub_path.to_str().unwrap(),
    ]);
    let PrivateKey::Rsa(key) = keys::read_private_key_file(&key_path, None).unwrap() else {
        panic!("not RSA")
    };
    RsaFixture {
        _dir: dir,
        key_path,
        pub_path,
        key,
    }
}

fn pkeyutl(op: &str, key: &Path, pubin: bool, opts: &[String], input: &[u8]) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let inp = dir.path().join("in");
    std::fs::write(&inp, input).unwrap();
    let mut args: Vec<String> = vec![
        "pkeyutl".into(),
        op.into(),
        "-inkey".into(),
        key.to_str().unwrap().into(),
        "-in".into(),
        inp.to_str().unwrap().into(),
    ];
    if pubin {
        args.push("-pubin".into());
    }
    for o in opts {
        args.push("-pkeyopt".into());
        args.push(o.clone());
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    openssl(&args)
}

fn seal_oaep_opts() -> Vec<String> {
    vec![
        "rsa_padding_mode:oaep".into(),
        "rsa_oaep_md:sha256".into(),
        "rsa_mgf1_md:sha256".into(),
        format!("rsa_oaep_label:{}", hex::encode(RSA_OAEP_LABEL)),
    ]
}

#[test]
fn openssl_oaep_sha256_with_label_unwraps() {
    let fx = rsa_fixture("3072");
    for _ in 0..3 {
        let dk: [u8; 32] = rand_bytes();
        let ct = pkeyutl("-encrypt", &fx.pub_path, true, &seal_oaep_opts(), &dk);
        assert_eq!(ct.len(), 384);
        let got = unwrap_dump_key(&fx.key, &ct).unwrap();
        assert_eq!(got.as_bytes(), &dk);

        // Any flipped bit, in any position, is rejected.
        for pos in [0, 1, 100, 383] {
            let mut bad = ct.clone();
            bad[pos] ^= 0x40;
            assert!(matches!(unwrap_dump_key(&fx.key, &bad), Err(KeyError::Unwrap)));
        }
        assert!(unwrap_dump_key(&fx.key, &ct[1..]).is_err());
    }
    // Wrong label (plain OAEP-SHA256) is rejected.
    let dk: [u8; 32] = rand_bytes();
    let no_label: Vec<String> = seal_oaep_opts().into_iter().take(3).collect();
    let ct = pkeyutl("-encrypt", &fx.pub_path, true, &no_label, &dk);
    assert!(unwrap_dump_key(&fx.key, &ct).is_err());
}

#[test]
fn our_wrap_decrypts_with_openssl() {
    let fx = rsa_fixture("4096");
    let public = keys::read_public_key_file(&fx.pub_path).unwrap();
    let PublicKey::Rsa(rsa_pub) = &public else {
        panic!()
    };
    let dk = DumpKey::from_bytes(rand_bytes());
    let body = wrap_dump_key(rsa_pub, &dk, &mut rand::rng()).unwrap();
    assert_eq!(body.len(), 512);
    let plain = pkeyutl("-decrypt", &fx.key_path, false, &seal_oaep_opts(), &body);
    assert_eq!(&plain[..], dk.as_bytes());
    // And back with our own unwrap.
    assert_eq!(unwrap_dump_key(&fx.key, &body).unwrap().as_bytes(), dk.as_bytes());
}

#[test]
fn ekcd_unwrap_oaep_sha1_and_pkcs1() {
    let fx = rsa_fixture("2048");
    let key64: [u8; 64] = rand_bytes();
    // What FreeBSD dumpon does now: RSA_PKCS1_OAEP_PADDING = OAEP SHA-1, MGF1-SHA1, empty label.
    let ct = pkeyutl(
        "-encrypt",
        &fx.pub_path,
        true,
        &["rsa_padding_mode:oaep".into()],
        &key64,
    );
    assert_eq!(&ekcd_unwrap(&fx.key, &ct).unwrap()[..], &key64[..]);
    // What older dumpon did: PKCS#1 v1.5.
    let ct = pkeyutl(
        "-encrypt",
        &fx.pub_path,
        true,
        &["rsa_padding_mode:pkcs1".into()],
        &key64,
    );
    assert_eq!(&ekcd_unwrap(&fx.key, &ct).unwrap()[..], &key64[..]);
    // A key of the wrong size is refused either way.
    let short: [u8; 32] = rand_bytes();
    for mode in ["rsa_padding_mode:oaep", "rsa_padding_mode:pkcs1"] {
        let ct = pkeyutl("-encrypt", &fx.pub_path, true, &[mode.into()], &short);
        assert!(
            matches!(ekcd_unwrap(&fx.key, &ct), Err(KeyError::Unwrap)),
            "{mode}"
        );
    }
    // Garbage is refused.
    let mut ct = pkeyutl(
        "-encrypt",
        &fx.pub_path,
        true,
        &["rsa_padding_mode:oaep".into()],
        &key64,
    );
    ct[17] ^= 1;
    assert!(ekcd_unwrap(&fx.key, &ct).is_err());
}

#[test]
fn prewrap_pool_wraps_to_every_rsa_recipient() {
    let a = rsa_fixture("3072");
    let b = rsa_fixture("3072");
    let x = PrivateKey::generate_x25519();
    let recipients = vec![
        keys::read_public_key_file(&a.pub_path).unwrap(),
        x.public_key(),
        keys::read_public_key_file(&b.pub_path).unwrap(),
    ];
    let pool = prewrap_pool(&recipients, 3).unwrap();
    assert_eq!(pool.len(), 3);
    assert_ne!(pool[0].dk.as_bytes(), pool[1].dk.as_bytes());
    for entry in &pool {
        assert_eq!(entry.stanzas.len(), 2);
        for ((kind, id, body), (fx, public)) in entry
            .stanzas
            .iter()
            .zip([(&a, &recipients[0]), (&b, &recipients[2])])
        {
            assert_eq!(*kind, StanzaKind::RsaOaepSha256);
            assert_eq!(*id, public.key_id());
            assert_eq!(
                unwrap_dump_key(&fx.key, body).unwrap().as_bytes(),
                entry.dk.as_bytes()
            );
        }
        // The other recipient's key cannot unwrap it.
        assert!(unwrap_dump_key(&b.key, &entry.stanzas[0].2).is_err());
    }
    assert!(!format!("{:?}", pool[0]).contains(&hex::encode(pool[0].dk.as_bytes())));
    assert!(prewrap_pool(&[x.public_key()], 4).unwrap().is_empty());
}

#[test]
fn small_rsa_keys_are_refused_for_seal_stanzas() {
    let fx = rsa_fixture("1024");
    let dk = DumpKey::from_bytes(rand_bytes());
    let err = wrap_dump_key(&fx.key.to_public_key(), &dk, &mut rand::rng()).unwrap_err();
    assert!(matches!(err, KeyError::RsaTooSmall { bits: 1024 }), "{err}");
    for bits in [1024, 3000, 8192] {
        assert!(matches!(PrivateKey::generate_rsa(bits), Err(KeyError::RsaSize(b)) if b == bits));
    }
}

fn rand_bytes<const N: usize>() -> [u8; N] {
    let mut b = [0u8; N];
    rand::Rng::fill_bytes(&mut rand::rng(), &mut b);
    b
}
