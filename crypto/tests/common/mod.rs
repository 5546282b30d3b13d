//! Helpers shared by the crypto integration tests.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::convert::Infallible;

use rand_core::{TryCryptoRng, TryRng};
use sealdump_crypto::ekcd::ChaCha20Legacy;
use sealdump_crypto::seal::{
    self, ChunkOpener, HeaderView, Metadata, Params, Recipient, Trailer, TrailerStatus,
};
use sealdump_crypto::{DumpKey, TAG_LEN};

/// Path of a file under the shared test data folder (beside the repository).
/// Runs the `openssl` binary (which must be installed: the interop tests may not pass vacuously) and returns
/// its stdout; panics with its stderr if it fails.
pub fn openssl(args: &[&str]) -> Vec<u8> {
    let out = std::process::Command::new("openssl")
        .args(args)
        .output()
        .expect("openssl must be on PATH");
    assert!(
        out.status.success(),
        "openssl {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

pub fn testdata(rel: &str) -> String {
    format!("{}/../../shared/testdata/{rel}", env!("CARGO_MANIFEST_DIR"))
}

pub fn read_json(rel: &str) -> serde_json::Value {
    let path = testdata(rel);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {path}: {e}"));
    serde_json::from_str(&text).unwrap()
}

pub fn hex_field(v: &serde_json::Value, key: &str) -> Vec<u8> {
    hex::decode(v[key].as_str().unwrap_or_else(|| panic!("missing {key}"))).unwrap()
}

/// Deterministic "rng" for reproducible tests and the documented example: the ChaCha20 keystream of a fixed key.
pub struct TestRng(ChaCha20Legacy);

impl TestRng {
    pub fn new(seed: u8) -> Self {
        TestRng(ChaCha20Legacy::new(&[seed; 32], &[0; 8]))
    }
}

impl TryRng for TestRng {
    type Error = Infallible;
    fn try_next_u32(&mut self) -> Result<u32, Infallible> {
        let mut b = [0; 4];
        self.try_fill_bytes(&mut b)?;
        Ok(u32::from_le_bytes(b))
    }
    fn try_next_u64(&mut self) -> Result<u64, Infallible> {
        let mut b = [0; 8];
        self.try_fill_bytes(&mut b)?;
        Ok(u64::from_le_bytes(b))
    }
    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Infallible> {
        dst.fill(0);
        self.0.apply(dst);
        Ok(())
    }
}
impl TryCryptoRng for TestRng {}

/// An "rng" that returns fixed bytes (for RFC 9180 vectors: the ephemeral key is DeriveKeyPair(ikmE)).
pub struct FixedRng(pub Vec<u8>);

impl TryRng for FixedRng {
    type Error = Infallible;
    fn try_next_u32(&mut self) -> Result<u32, Infallible> {
        unimplemented!()
    }
    fn try_next_u64(&mut self) -> Result<u64, Infallible> {
        unimplemented!()
    }
    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Infallible> {
        assert!(dst.len() <= self.0.len(), "FixedRng exhausted");
        let rest = self.0.split_off(dst.len());
        dst.copy_from_slice(&self.0);
        self.0 = rest;
        Ok(())
    }
}
impl TryCryptoRng for FixedRng {}

/// A sealed dump in memory.
pub struct Sealed {
    pub header: Vec<u8>,
    pub stream: Vec<u8>,
}

/// Seals `plaintext` as a whole dump (header + record stream).
#[allow(clippy::too_many_arguments)]
pub fn seal_all(
    params: &Params,
    dk: &DumpKey,
    dump_id: [u8; 16],
    recipients: &[Recipient<'_>],
    metadata: &Metadata<'_>,
    plaintext: &[u8],
    status: TrailerStatus,
    rng: &mut TestRng,
) -> Sealed {
    let mut header = vec![0u8; seal::MAX_HEADER_LEN];
    let (len, sealer) =
        seal::write_header(&mut header, params, dk, dump_id, recipients, metadata, rng).unwrap();
    header.truncate(len);
    let mut stream = Vec::new();
    let mut count = 0u64;
    for chunk in plaintext.chunks(sealer.chunk_size()) {
        assert_eq!(stream.len() as u64, sealer.record_offset(count));
        let mut buf = chunk.to_vec();
        let tag = sealer.seal_chunk(count, &mut buf).unwrap();
        stream.extend_from_slice(&buf);
        stream.extend_from_slice(&tag);
        count += 1;
    }
    let mut trailer = [0u8; seal::TRAILER_RECORD_LEN];
    sealer
        .seal_trailer(
            &Trailer {
                total_len: plaintext.len() as u64,
                chunk_count: count,
                status,
            },
            &mut trailer,
        )
        .unwrap();
    stream.extend_from_slice(&trailer);
    Sealed { header, stream }
}

/// Opens a whole dump the way the decryptor does: header MAC, trailer at EOF, then every chunk.
pub fn open_all(header: &[u8], stream: &[u8], dk: &DumpKey) -> sealdump_crypto::Result<(Vec<u8>, Trailer)> {
    let view = HeaderView::parse(header)?;
    let opener = view.open(dk)?;
    open_stream(&opener, stream)
}

pub fn open_stream(opener: &ChunkOpener, stream: &[u8]) -> sealdump_crypto::Result<(Vec<u8>, Trailer)> {
    let (index, offset) = opener
        .trailer_position(stream.len() as u64)
        .ok_or(sealdump_crypto::Error::TrailerAuth)?;
    let trailer = opener.open_trailer(index, &stream[offset as usize..])?;
    if opener.expected_stream_len(&trailer) != Some(stream.len() as u64) {
        return Err(sealdump_crypto::Error::TrailerInconsistent);
    }
    let mut out = Vec::new();
    for i in 0..trailer.chunk_count {
        let start = opener.record_offset(i) as usize;
        let len = opener.record_len(&trailer, i).unwrap();
        let mut rec = stream[start..start + len].to_vec();
        let n = opener.open_chunk(i, &mut rec)?;
        assert_eq!(n, len - TAG_LEN);
        out.extend_from_slice(&rec[..n]);
    }
    if out.len() as u64 != trailer.total_len {
        return Err(sealdump_crypto::Error::TrailerInconsistent);
    }
    Ok((out, trailer))
}
