//! TEMPORARY stand-in for `sealdump_crypto::seal` (contract shapes) until that module lands. NOT secure.
#![allow(missing_docs, dead_code)]
use rand_core::CryptoRng;
pub use sealdump_crypto::aead::AeadId;
pub use sealdump_crypto::error::{Error, Result};
pub use sealdump_crypto::secret::DumpKey;

pub const MAX_HEADER_LEN: usize = 4096;
pub const TRAILER_PLAINTEXT_LEN: usize = 32;
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u16)]
pub enum StanzaKind {
    X25519Hpke = 1,
    RsaOaepSha256 = 2,
}
#[derive(Clone, Copy, Debug)]
pub struct Params {
    pub aead: AeadId,
    pub chunk_shift: u8,
    pub compression: u8,
    pub time: u64,
}
#[derive(Clone, Copy, Debug)]
pub enum Recipient<'a> {
    X25519 {
        public: [u8; 32],
    },
    Prewrapped {
        kind: StanzaKind,
        key_id: [u8; 8],
        body: &'a [u8],
    },
}
#[derive(Clone, Copy, Debug)]
pub struct Metadata<'a> {
    pub hostname: &'a [u8],
    pub kernel_version: &'a [u8],
    pub panic_string: &'a [u8],
    pub architecture: &'a [u8],
    pub expected_length: u64,
    pub host_uuid: [u8; 16],
}
#[derive(Debug)]
pub struct ChunkSealer {
    chunk_size: usize,
    key: u8,
}
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TrailerStatus {
    Complete = 0,
    Aborted = 1,
}
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Trailer {
    pub total_len: u64,
    pub chunk_count: u64,
    pub status: TrailerStatus,
}

pub fn write_header<R: CryptoRng>(
    out: &mut [u8],
    params: &Params,
    dk: &DumpKey,
    dump_id: [u8; 16],
    _recipients: &[Recipient<'_>],
    _metadata: &Metadata<'_>,
    _rng: &mut R,
) -> Result<(usize, ChunkSealer)> {
    let len = 300;
    if out.len() < len {
        return Err(Error::BufferTooSmall);
    }
    out[..8].copy_from_slice(b"SEALDUMP");
    out[8..24].copy_from_slice(&dump_id);
    for (i, b) in out[24..len].iter_mut().enumerate() {
        *b = i as u8
    }
    Ok((
        len,
        ChunkSealer {
            chunk_size: 1 << params.chunk_shift,
            key: dk.as_bytes()[0],
        },
    ))
}
impl ChunkSealer {
    pub fn chunk_size(&self) -> usize {
        self.chunk_size
    }
    pub fn seal_chunk(&self, index: u64, buf: &mut [u8]) -> Result<[u8; 16]> {
        if buf.len() > self.chunk_size {
            return Err(Error::ChunkLength);
        }
        for b in buf.iter_mut() {
            *b ^= self.key
        }
        let mut t = [0u8; 16];
        t[..8].copy_from_slice(&index.to_be_bytes());
        Ok(t)
    }
    pub fn seal_trailer(&self, trailer: &Trailer, out: &mut [u8; 48]) -> Result<()> {
        out[..8].copy_from_slice(&trailer.total_len.to_be_bytes());
        out[8..16].copy_from_slice(&trailer.chunk_count.to_be_bytes());
        out[16..20].copy_from_slice(&(trailer.status as u32).to_be_bytes());
        Ok(())
    }
    pub fn record_offset(&self, index: u64) -> u64 {
        index * (self.chunk_size as u64 + 16)
    }
}
