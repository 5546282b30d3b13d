//! Pieces shared by the virtual-time tests (`sim.rs`, `smoltcp_fault.rs`): a seedable RNG of our own, a
//! deterministic `CryptoRng` for client keys, a receiver store kept in memory, and decryption of that store.

use sealdump_crypto::X25519Secret;
use sealdump_crypto::seal::{self, HeaderView, TrailerStatus};
use sealdump_receiver::session::Output;

/// splitmix64: tiny, seedable, and ours, so runs never change with a dependency upgrade.
#[derive(Debug, Clone)]
pub struct SimRng(pub u64);

impl SimRng {
    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// True with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        ((self.next_u64() >> 11) as f64 / (1u64 << 53) as f64) < p
    }

    /// Uniform in `0..n` (0 when `n` is 0).
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 { 0 } else { self.next_u64() % n }
    }
}

/// A deterministic `CryptoRng` for the client's keys in tests (the real client takes the platform RNG).
#[derive(Debug, Clone)]
pub struct TestCryptoRng(pub SimRng);

impl rand_core::TryRng for TestCryptoRng {
    type Error = core::convert::Infallible;
    fn try_next_u32(&mut self) -> Result<u32, Self::Error> {
        Ok(self.0.next_u64() as u32)
    }
    fn try_next_u64(&mut self) -> Result<u64, Self::Error> {
        Ok(self.0.next_u64())
    }
    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Self::Error> {
        for b in dst {
            *b = self.0.next_u64() as u8;
        }
        Ok(())
    }
}
impl rand_core::TryCryptoRng for TestCryptoRng {}

/// What a receiver session handed out, kept in memory: the virtual-time tests' stand-in for the dump store.
#[derive(Debug, Default)]
pub struct MemoryDump {
    /// The core file (the sealed record stream, or the plain dump).
    pub core: Vec<u8>,
    /// The key file (the seal header in sealed mode).
    pub key: Vec<u8>,
    /// The kernel dump header, once it arrived.
    pub kdh: Option<Vec<u8>>,
    /// `Some(complete)` once FINISHED arrived.
    pub finished: Option<bool>,
}

impl MemoryDump {
    /// Stores one accepted datagram's output and returns the seqno to ack. A client of ours never sends a
    /// datagram the receiver rejects, so a rejection (or an output a session should not give here) panics.
    pub fn apply(&mut self, out: Output<'_>) -> u32 {
        match out {
            Output::Rejected(r) => panic!("receiver rejected a client datagram: {r:?}"),
            Output::Ack { seqno } => seqno,
            Output::Core { seqno, offset, data } => {
                write_at(&mut self.core, offset, data);
                seqno
            }
            Output::Key {
                seqno, offset, data, ..
            } => {
                write_at(&mut self.key, offset, data);
                seqno
            }
            Output::Kdh { seqno, header } => {
                self.kdh = Some(header.to_vec());
                seqno
            }
            Output::Finished { seqno, complete } => {
                self.finished = Some(complete);
                seqno
            }
            other => panic!("unexpected receiver output {other:?}"),
        }
    }

    /// Decrypts the stored sealed dump with the recipient's key: the plaintext and the trailer status.
    pub fn open_sealed(&self, secret: &X25519Secret) -> (Vec<u8>, TrailerStatus) {
        open_sealed(&self.key, &self.core, secret)
    }
}

fn write_at(file: &mut Vec<u8>, offset: u64, data: &[u8]) {
    let offset = offset as usize;
    if file.len() < offset + data.len() {
        file.resize(offset + data.len(), 0);
    }
    file[offset..offset + data.len()].copy_from_slice(data);
}

/// Decrypts a sealed record stream (`core`) under its seal header (`key`) with the recipient's key, checking
/// every record and the trailer; returns the plaintext and the trailer status.
pub fn open_sealed(key: &[u8], core: &[u8], secret: &X25519Secret) -> (Vec<u8>, TrailerStatus) {
    let header = HeaderView::parse(key).expect("seal header parses");
    let stanza = header.stanzas().next().expect("one stanza");
    let dk = seal::unwrap_x25519(secret, &stanza, &header).expect("our key unwraps the dump key");
    let opener = header.open(&dk).expect("header MAC verifies");
    let (index, offset) = opener
        .trailer_position(core.len() as u64)
        .expect("stream ends in a trailer");
    let trailer = opener
        .open_trailer(index, &core[offset as usize..])
        .expect("trailer authenticates");
    let mut out = Vec::new();
    for i in 0..trailer.chunk_count {
        let start = opener.record_offset(i) as usize;
        let len = opener.record_len(&trailer, i).expect("record length");
        let mut record = core[start..start + len].to_vec();
        let n = opener.open_chunk(i, &mut record).expect("chunk authenticates");
        out.extend_from_slice(&record[..n]);
    }
    assert_eq!(out.len() as u64, trailer.total_len);
    (out, trailer.status)
}
