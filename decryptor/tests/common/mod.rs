//! Test helpers: keys as PEM files, sealed dumps built with the real sealer, the binary under test.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

use assert_cmd::Command;
use sealdump_crypto::seal::{self, Metadata, Params, Recipient, Trailer, TrailerStatus};
use sealdump_crypto::{AeadId, DumpKey, X25519Secret};

pub fn bin() -> Command {
    let mut c = Command::cargo_bin("sealdump-decryptor").unwrap();
    c.env_remove("SEALDUMP_PASSPHRASE");
    c
}

fn base64(data: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for c in data.chunks(3) {
        let n = (u32::from(c[0]) << 16)
            | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
            | u32::from(*c.get(2).unwrap_or(&0));
        for i in 0..4 {
            if i <= c.len() {
                out.push(T[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

pub fn pem(label: &str, der: &[u8]) -> String {
    let b = base64(der);
    let lines: Vec<&str> = b
        .as_bytes()
        .chunks(64)
        .map(|l| std::str::from_utf8(l).unwrap())
        .collect();
    format!(
        "-----BEGIN {label}-----\n{}\n-----END {label}-----\n",
        lines.join("\n")
    )
}

/// A deterministic X25519 key written as PKCS#8 PEM (RFC 8410) to `dir/<name>.key`; returns (path, public key).
pub fn x25519_key(dir: &Path, name: &str, seed: u8) -> (PathBuf, [u8; 32]) {
    let mut secret = [0u8; 32];
    for (i, b) in secret.iter_mut().enumerate() {
        *b = seed.wrapping_mul(31).wrapping_add(i as u8).wrapping_mul(97) ^ 0x5c;
    }
    let public = X25519Secret::from_bytes(secret).public_key();
    let mut der = hex_bytes("302e020100300506032b656e04220420");
    der.extend_from_slice(&secret);
    let path = dir.join(format!("{name}.key"));
    std::fs::write(&path, pem("PRIVATE KEY", &der)).unwrap();
    (path, public)
}

pub fn hex_bytes(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

pub fn key_id_hex(public: &[u8; 32]) -> String {
    sealdump_crypto::x25519_key_id(public)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Deterministic test plaintext.
pub fn plaintext(len: usize, seed: u32) -> Vec<u8> {
    let mut x = seed.wrapping_mul(2_654_435_761).wrapping_add(1);
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
}

pub struct SealSpec<'a> {
    pub aead: AeadId,
    pub chunk_shift: u8,
    pub recipients: Vec<Recipient<'a>>,
    pub status: TrailerStatus,
    pub hostname: &'a [u8],
    pub expected_length: Option<u64>,
    /// Use this dump key (e.g. one pre-wrapped for an RSA recipient) instead of a fresh one.
    pub dump_key: Option<[u8; 32]>,
}

impl<'a> SealSpec<'a> {
    pub fn x25519(public: [u8; 32]) -> Self {
        SealSpec {
            aead: AeadId::ChaCha20Poly1305,
            chunk_shift: 12,
            recipients: vec![Recipient::X25519 { public }],
            status: TrailerStatus::Complete,
            hostname: b"web1.example",
            expected_length: None,
            dump_key: None,
        }
    }
}

pub struct Sealed {
    pub key_blob: PathBuf,
    pub dump: PathBuf,
    pub header_len: usize,
    pub chunk_size: usize,
}

impl Sealed {
    pub fn record_size(&self) -> u64 {
        self.chunk_size as u64 + 16
    }
    pub fn default_output(&self) -> PathBuf {
        self.dump.with_file_name(
            self.dump
                .file_name()
                .unwrap()
                .to_str()
                .unwrap()
                .replace("vmcore_encrypted", "vmcore"),
        )
    }
}

/// Seals `plain` as the receiver would store it: `key.<tag>` (seal header) and `vmcore_encrypted.<tag>`.
pub fn seal_dump(dir: &Path, tag: &str, plain: &[u8], spec: &SealSpec<'_>) -> Sealed {
    let mut rng = rand::rng();
    let dk = match spec.dump_key {
        Some(k) => DumpKey::from_bytes(k),
        None => DumpKey::generate(&mut rng),
    };
    let mut dump_id = [0u8; 16];
    rand::Rng::fill_bytes(&mut rng, &mut dump_id);
    let params = Params {
        aead: spec.aead,
        chunk_shift: spec.chunk_shift,
        compression: 0,
        time: 1_700_000_000,
    };
    let metadata = Metadata {
        hostname: spec.hostname,
        kernel_version: b"FreeBSD 14.1-RELEASE",
        panic_string: b"page fault while in kernel mode",
        architecture: b"amd64",
        expected_length: spec.expected_length.unwrap_or(plain.len() as u64),
        host_uuid: [7; 16],
    };
    let mut header = [0u8; seal::MAX_HEADER_LEN];
    let (header_len, sealer) = seal::write_header(
        &mut header,
        &params,
        &dk,
        dump_id,
        &spec.recipients,
        &metadata,
        &mut rng,
    )
    .unwrap();
    let chunk_size = sealer.chunk_size();
    let mut stream = Vec::new();
    let mut count = 0u64;
    for (i, chunk) in plain.chunks(chunk_size).enumerate() {
        let mut buf = chunk.to_vec();
        let tag = sealer.seal_chunk(i as u64, &mut buf).unwrap();
        stream.extend_from_slice(&buf);
        stream.extend_from_slice(&tag);
        count += 1;
    }
    let mut trailer = [0u8; seal::TRAILER_RECORD_LEN];
    sealer
        .seal_trailer(
            &Trailer {
                total_len: plain.len() as u64,
                chunk_count: count,
                status: spec.status,
            },
            &mut trailer,
        )
        .unwrap();
    stream.extend_from_slice(&trailer);
    let key_blob = dir.join(format!("key.{tag}"));
    let dump = dir.join(format!("vmcore_encrypted.{tag}"));
    std::fs::write(&key_blob, &header[..header_len]).unwrap();
    std::fs::write(&dump, &stream).unwrap();
    Sealed {
        key_blob,
        dump,
        header_len,
        chunk_size,
    }
}

pub fn flip_bit(path: &Path, offset: u64, bit: u8) {
    use std::os::unix::fs::FileExt;
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .unwrap();
    let mut b = [0u8];
    f.read_exact_at(&mut b, offset).unwrap();
    b[0] ^= 1 << (bit % 8);
    f.write_all_at(&b, offset).unwrap();
}

pub fn stderr_of(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}
