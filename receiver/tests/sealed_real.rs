#![allow(clippy::unwrap_used, clippy::expect_used)]
//! A dump sealed by `sealdump_crypto::seal` (the real format) through the receiver: recognised from the key
//! blob's magic, named `vmcore_encrypted`, info lines from the header's cleartext fields, complete.

mod common;

use std::convert::Infallible;

use common::*;
use rand_core::{TryCryptoRng, TryRng};
use sealdump_crypto::seal::{self, Metadata, Params, Recipient, Trailer, TrailerStatus};
use sealdump_crypto::{AeadId, DumpKey, X25519Secret, x25519_key_id};
use sealdump_receiver::freebsd_client::{Dump, Order};

/// Deterministic xorshift stream: fine for a test, never for keys.
struct TestRng(u64);

impl TryRng for TestRng {
    type Error = Infallible;
    fn try_next_u32(&mut self) -> Result<u32, Infallible> {
        Ok(self.try_next_u64()? as u32)
    }
    fn try_next_u64(&mut self) -> Result<u64, Infallible> {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        Ok(self.0)
    }
    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Infallible> {
        for b in dst {
            *b = self.try_next_u64()? as u8;
        }
        Ok(())
    }
}

impl TryCryptoRng for TestRng {}

fn seal_dump(plaintext: &[u8], aead: AeadId, shift: u8) -> (Vec<u8>, Vec<u8>, [u8; 8]) {
    let mut rng = TestRng(0x9e37_79b9_7f4a_7c15);
    let secret = X25519Secret::generate(&mut rng);
    let dk = DumpKey::generate(&mut rng);
    let params = Params {
        aead,
        chunk_shift: shift,
        compression: 0,
        time: 1_700_000_000,
    };
    let meta = Metadata {
        hostname: b"crashy",
        kernel_version: b"FreeBSD 15.0",
        panic_string: b"boom",
        architecture: b"amd64",
        expected_length: plaintext.len() as u64,
        host_uuid: [1; 16],
    };
    let mut header = vec![0u8; seal::MAX_HEADER_LEN];
    let (len, sealer) = seal::write_header(
        &mut header,
        &params,
        &dk,
        [3; 16],
        &[Recipient::X25519 {
            public: secret.public_key(),
        }],
        &meta,
        &mut rng,
    )
    .unwrap();
    header.truncate(len);
    let mut stream = Vec::new();
    let chunks = plaintext.chunks(sealer.chunk_size());
    let count = chunks.len() as u64;
    for (i, chunk) in chunks.enumerate() {
        let mut buf = chunk.to_vec();
        let tag = sealer.seal_chunk(i as u64, &mut buf).unwrap();
        stream.extend_from_slice(&buf);
        stream.extend_from_slice(&tag);
    }
    let mut trailer = [0u8; 48];
    let t = Trailer {
        total_len: plaintext.len() as u64,
        chunk_count: count,
        status: TrailerStatus::Complete,
    };
    sealer.seal_trailer(&t, &mut trailer).unwrap();
    stream.extend_from_slice(&trailer);
    (header, stream, x25519_key_id(&secret.public_key()))
}

#[test]
fn real_sealed_dump_is_stored_and_complete() {
    let d = Daemon::start(|_| {});
    for (i, (aead, shift, name)) in [
        (AeadId::ChaCha20Poly1305, 16u8, "ChaCha20-Poly1305"),
        (AeadId::Aes256Gcm, 12, "AES-256-GCM"),
    ]
    .into_iter()
    .enumerate()
    {
        let plaintext = pattern(150_001, 11);
        let (header, stream, key_id) = seal_dump(&plaintext, aead, shift);
        client(d.addr, Order::FreeBsd13)
            .send_dump(&Dump {
                core: &stream,
                kdh: None,
                key: Some(&header),
            })
            .unwrap();
        let info = wait_info_closed(d.path().join(format!("info.127.0.0.1.{i}")));
        let id: String = key_id.iter().map(|b| format!("{b:02x}")).collect();
        assert!(
            info.ends_with(&format!(
                "  Encryption: sealdump v1, {name}, chunk {}, recipients {id}\n  Bytes Received: {} core, {} key\n  \
                 Holes: none\nDump complete\n",
                1u32 << shift,
                stream.len(),
                header.len()
            )),
            "{info}"
        );
        assert_eq!(
            read(d.path().join(format!("vmcore_encrypted.127.0.0.1.{i}"))),
            stream
        );
        assert_eq!(read(d.path().join(format!("key.127.0.0.1.{i}"))), header);
        assert_eq!(mode(d.path().join(format!("key.127.0.0.1.{i}"))), 0o400);
    }
}
