//! FreeBSD `dumpon -k` (EKCD) symmetric ciphers, as `decryptcore(8)` uses them: AES-256-CBC without padding and
//! the original ChaCha20 (8-byte nonce, 64-bit block counter starting at 0). Both stream across calls, so a dump can
//! be processed in pieces of any size (AES: whole blocks).
//!
//! These dumps carry no integrity protection; callers should say so.

use aes::Aes256;
use aes::cipher::consts::U16;
use aes::cipher::{BlockModeDecrypt, BlockModeEncrypt, InOutBuf, KeyIvInit, StreamCipher};
use chacha20::ChaCha20Legacy as ChaCha20LegacyCipher;

use crate::error::{Error, Result};

/// AES block size.
pub const AES_BLOCK_LEN: usize = 16;

/// Streaming AES-256-CBC decryption without padding.
pub struct Aes256CbcDecryptor(cbc::Decryptor<Aes256>);

/// Streaming AES-256-CBC encryption without padding (for tests and the test client).
pub struct Aes256CbcEncryptor(cbc::Encryptor<Aes256>);

/// Streaming legacy ChaCha20 (djb variant: 64-bit nonce, 64-bit counter from 0).
pub struct ChaCha20Legacy(ChaCha20LegacyCipher);

impl Aes256CbcDecryptor {
    /// Starts decrypting with `key` and `iv` (the first 16 bytes of the EKCD `kdk_iv`).
    pub fn new(key: &[u8; 32], iv: &[u8; 16]) -> Self {
        Aes256CbcDecryptor(cbc::Decryptor::new(key.into(), iv.into()))
    }

    /// Decrypts `buf` in place; its length must be a multiple of 16. The chaining state carries to the next call.
    pub fn decrypt_blocks(&mut self, buf: &mut [u8]) -> Result<()> {
        if !buf.len().is_multiple_of(AES_BLOCK_LEN) {
            return Err(Error::BlockLength);
        }
        let (blocks, _tail) = InOutBuf::from(buf).into_chunks::<U16>();
        self.0.decrypt_blocks_inout(blocks);
        Ok(())
    }
}

impl Aes256CbcEncryptor {
    /// Starts encrypting with `key` and `iv`.
    pub fn new(key: &[u8; 32], iv: &[u8; 16]) -> Self {
        Aes256CbcEncryptor(cbc::Encryptor::new(key.into(), iv.into()))
    }

    /// Encrypts `buf` in place; its length must be a multiple of 16. The chaining state carries to the next call.
    pub fn encrypt_blocks(&mut self, buf: &mut [u8]) -> Result<()> {
        if !buf.len().is_multiple_of(AES_BLOCK_LEN) {
            return Err(Error::BlockLength);
        }
        let (blocks, _tail) = InOutBuf::from(buf).into_chunks::<U16>();
        self.0.encrypt_blocks_inout(blocks);
        Ok(())
    }
}

impl ChaCha20Legacy {
    /// Starts the keystream at block 0 for `key` and the 8-byte nonce (EKCD: `kdk_iv[0..8]`).
    pub fn new(key: &[u8; 32], nonce8: &[u8; 8]) -> Self {
        ChaCha20Legacy(ChaCha20LegacyCipher::new(key.into(), nonce8.into()))
    }

    /// XORs the next `buf.len()` keystream bytes into `buf` (encrypts or decrypts); any length, continuous.
    /// (The 64-bit block counter cannot run out: that would take 2^70 bytes.)
    pub fn apply(&mut self, buf: &mut [u8]) {
        self.0.apply_keystream(buf);
    }
}

impl core::fmt::Debug for Aes256CbcDecryptor {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("Aes256CbcDecryptor(..)")
    }
}

impl core::fmt::Debug for Aes256CbcEncryptor {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("Aes256CbcEncryptor(..)")
    }
}

impl core::fmt::Debug for ChaCha20Legacy {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("ChaCha20Legacy(..)")
    }
}
