//! Test helpers: keys as PEM files, sealed dumps built with the real sealer, the binary under test.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::Output;

use assert_cmd::Command;
use sealdump_crypto::seal::{self, Metadata, Params, Recipient, Trailer, TrailerStatus};
use sealdump_crypto::{AeadId, DumpKey, X25519Secret};
use tempfile::TempDir;

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

    /// The default spec, sealed to every one of `publics` (in that order).
    pub fn x25519_all(publics: &[[u8; 32]]) -> Self {
        SealSpec {
            recipients: publics
                .iter()
                .map(|&public| Recipient::X25519 { public })
                .collect(),
            ..SealSpec::x25519(publics[0])
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

pub fn stderr_of(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The decryptor invoked as `--key <key> <args...> <dump>`.
pub fn with_key(key: &Path, args: &[&str], dump: &Path) -> Command {
    let mut c = bin();
    c.arg("--key").arg(key).args(args).arg(dump);
    c
}

/// Runs `cmd` to its end and returns its exit status, stdout and stderr.
pub fn run(cmd: &mut Command) -> Output {
    cmd.output().unwrap()
}

/// Asserts that `out` exited 0, showing its stderr otherwise.
pub fn assert_ok(out: &Output) {
    assert!(out.status.success(), "{}", stderr_of(out));
}

/// The JSON report a run printed on stdout.
pub fn json_of(out: &Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Asserts that `cmd` exits with `code` and that its stderr names every one of `needles`; returns the run.
pub fn assert_fails(cmd: &mut Command, code: i32, needles: &[&str]) -> Output {
    let out = cmd.assert().code(code).get_output().clone();
    let err = stderr_of(&out);
    for needle in needles {
        assert!(err.contains(needle), "stderr lacks {needle:?}: {err}");
    }
    out
}

/// `info --json --key <key> <dump>`: asserts it succeeds and returns its report.
pub fn info_json(key: &Path, dump: &Path) -> serde_json::Value {
    let out = run(bin().args(["info", "--json", "--key"]).arg(key).arg(dump));
    assert_ok(&out);
    json_of(&out)
}

/// Runs the `openssl` binary (which must be installed: interop tests may not pass vacuously); returns its stdout.
pub fn openssl(args: &[&str]) -> Vec<u8> {
    let out = std::process::Command::new("openssl")
        .args(args)
        .output()
        .expect("openssl must be installed");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// A path as the `&str` an `openssl` argument list wants.
pub fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// A temporary folder with one X25519 recipient key (`a.key`) and a dump sealed to it as the receiver stores it
/// (`key.h.0`, `vmcore_encrypted.h.0`): nothing else.
pub struct OneKeyDump {
    pub dir: TempDir,
    pub key: PathBuf,
    pub public: [u8; 32],
    pub sealed: Sealed,
}

impl OneKeyDump {
    /// `plain` sealed with the default spec (ChaCha20-Poly1305, 4 KiB chunks, complete) to key number `key_seed`.
    pub fn new(key_seed: u8, plain: &[u8]) -> Self {
        Self::with_spec(key_seed, plain, SealSpec::x25519)
    }

    /// As [`OneKeyDump::new`], with the spec made from the key's public half.
    pub fn with_spec(key_seed: u8, plain: &[u8], spec: impl FnOnce([u8; 32]) -> SealSpec<'static>) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let (key, public) = x25519_key(dir.path(), "a", key_seed);
        let sealed = seal_dump(dir.path(), "h.0", plain, &spec(public));
        OneKeyDump {
            dir,
            key,
            public,
            sealed,
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// The decryptor invoked as `--key <this key> <args...> <this dump>`.
    pub fn decryptor(&self, args: &[&str]) -> Command {
        with_key(&self.key, args, &self.sealed.dump)
    }

    /// What the default run wrote next to the dump.
    pub fn default_output(&self) -> Vec<u8> {
        std::fs::read(self.sealed.default_output()).unwrap()
    }
}
