//! `struct kerneldumpkey`: the EKCD key blob, saved as `key.<host>.N` (spec §4.1).
//!
//! ```text
//!  0  kdk_encryption u8          0 none, 1 AES-256-CBC, 2 ChaCha20
//!  1  kdk_iv[32]                 AES uses bytes 0-15, ChaCha20 bytes 0-7
//! 33  kdk_encryptedkeysize u32   big-endian, = RSA modulus size in bytes (<= 2048)
//! 37  kdk_encryptedkey[n]        RSA ciphertext
//! 37+n zero padding up to roundup(37 + n, blocksize): 4096 bytes in total for netdump
//! ```

use crate::field;
use crate::{Error, Result};

/// Bytes before the encrypted key.
pub const FIXED_LEN: usize = 37;
/// Size of `kdk_iv` (`KERNELDUMP_IV_MAX_SIZE`).
pub const IV_LEN: usize = 32;
/// Largest encrypted key (`KERNELDUMP_ENCKEY_MAX_SIZE`, 16384-bit RSA).
pub const MAX_ENCRYPTED_KEY_LEN: usize = 2048;
/// Total blob size a netdump client sends (its block size).
pub const NETDUMP_BLOB_LEN: usize = 4096;

const CIPHER: usize = 0;
const IV: usize = 1;
const KEY_SIZE: usize = 33;

/// The dump cipher (`KERNELDUMP_ENC_*`).
#[repr(u8)]
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum Cipher {
    /// No encryption.
    None = 0,
    /// AES-256-CBC without padding, one continuous stream.
    Aes256Cbc = 1,
    /// DJB ChaCha20 (64-bit nonce, 64-bit counter).
    ChaCha20 = 2,
}

impl TryFrom<u8> for Cipher {
    type Error = Error;
    fn try_from(value: u8) -> Result<Self> {
        match value {
            0 => Ok(Cipher::None),
            1 => Ok(Cipher::Aes256Cbc),
            2 => Ok(Cipher::ChaCha20),
            other => Err(Error::UnknownCipher(other)),
        }
    }
}

impl From<Cipher> for u8 {
    fn from(c: Cipher) -> u8 {
        c as u8
    }
}

/// A read/write view of a key blob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wraps a buffer without checking it; fields outside a short buffer read as zero / empty.
    pub const fn new_unchecked(buffer: T) -> Packet<T> {
        Packet { buffer }
    }

    /// Wraps a buffer after [`check_len`](Self::check_len).
    pub fn new_checked(buffer: T) -> Result<Packet<T>> {
        let packet = Self::new_unchecked(buffer);
        packet.check_len()?;
        Ok(packet)
    }

    /// Ensures the fixed part and the whole encrypted key are present, and the key is at most 2048 bytes.
    /// Bytes after the key (padding) are allowed.
    pub fn check_len(&self) -> Result<()> {
        let len = self.buffer.as_ref().len();
        if len < FIXED_LEN {
            return Err(Error::Truncated);
        }
        let n = self.encrypted_key_size();
        if n as usize > MAX_ENCRYPTED_KEY_LEN {
            return Err(Error::Malformed);
        }
        if len < FIXED_LEN + n as usize {
            return Err(Error::Truncated);
        }
        Ok(())
    }

    /// Returns the underlying buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// `kdk_encryption`, raw.
    pub fn cipher(&self) -> u8 {
        field::read_u8(self.buffer.as_ref(), CIPHER)
    }

    /// `kdk_iv`.
    pub fn iv(&self) -> [u8; IV_LEN] {
        field::array(self.buffer.as_ref(), IV)
    }

    /// `kdk_encryptedkeysize`.
    pub fn encrypted_key_size(&self) -> u32 {
        field::read_u32(self.buffer.as_ref(), KEY_SIZE)
    }

    /// `kdk_encryptedkey` (clamped to the buffer on an unchecked packet).
    pub fn encrypted_key(&self) -> &[u8] {
        let data = self.buffer.as_ref();
        let n = usize::try_from(self.encrypted_key_size()).unwrap_or(usize::MAX);
        let end = FIXED_LEN.saturating_add(n).min(data.len());
        field::bytes(data, FIXED_LEN..end.max(FIXED_LEN))
    }
}

/// A parsed key blob.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Repr<'a> {
    /// The dump cipher.
    pub cipher: Cipher,
    /// The IV as the kernel stored it (already hashed for this dump).
    pub iv: [u8; IV_LEN],
    /// The RSA-wrapped 64-byte key.
    pub encrypted_key: &'a [u8],
}

impl<'a> Repr<'a> {
    /// Parses a blob; trailing padding is ignored (as decryptcore does). The encrypted key may be at most
    /// [`MAX_ENCRYPTED_KEY_LEN`] bytes.
    pub fn parse(buf: &'a [u8]) -> Result<Self> {
        let packet = Packet::new_checked(buf)?;
        let cipher = Cipher::try_from(packet.cipher())?;
        let n = packet.encrypted_key_size() as usize;
        Ok(Repr {
            cipher,
            iv: packet.iv(),
            encrypted_key: field::bytes(buf, FIXED_LEN..FIXED_LEN + n),
        })
    }

    /// Bytes `emit` writes: `roundup(37 + n, block_size)`; no rounding for a block size of 0.
    pub const fn buffer_len(&self, block_size: usize) -> usize {
        let raw = FIXED_LEN + self.encrypted_key.len();
        if block_size == 0 {
            raw
        } else {
            raw.div_ceil(block_size) * block_size
        }
    }

    /// Writes the blob and its zero padding into `out`, returning [`buffer_len`](Self::buffer_len).
    /// Errors: [`Error::Malformed`] for a key over 2048 bytes, [`Error::BufferTooSmall`].
    pub fn emit(&self, out: &mut [u8], block_size: usize) -> Result<usize> {
        let n = self.encrypted_key.len();
        if n > MAX_ENCRYPTED_KEY_LEN {
            return Err(Error::Malformed);
        }
        let total = self.buffer_len(block_size);
        let out = out.get_mut(..total).ok_or(Error::BufferTooSmall)?;
        out[CIPHER] = self.cipher.into();
        out[IV..IV + IV_LEN].copy_from_slice(&self.iv);
        field::write_u32(out, KEY_SIZE, n as u32);
        out[FIXED_LEN..FIXED_LEN + n].copy_from_slice(self.encrypted_key);
        out[FIXED_LEN + n..].fill(0);
        Ok(total)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use proptest::prelude::*;

    /// A blob as dumpon + an amd64 kernel make it for netdump: ChaCha20, RSA-2048, 4096 bytes in all.
    fn netdump_blob() -> [u8; NETDUMP_BLOB_LEN] {
        let mut b = [0u8; NETDUMP_BLOB_LEN];
        b[0] = 2;
        for (i, x) in b[1..33].iter_mut().enumerate() {
            *x = i as u8 + 1;
        }
        b[33..37].copy_from_slice(&256u32.to_be_bytes());
        b[37..37 + 256].fill(0x5a);
        b
    }

    #[test]
    fn parse_netdump_blob() {
        let b = netdump_blob();
        let r = Repr::parse(&b).unwrap();
        assert_eq!(r.cipher, Cipher::ChaCha20);
        assert_eq!(r.iv[0], 1);
        assert_eq!(r.iv[31], 32);
        assert_eq!(r.encrypted_key, &[0x5a; 256][..]);
        // The padding is not part of the key; parse works on the unpadded prefix too.
        assert_eq!(Repr::parse(&b[..37 + 256]).unwrap(), r);
        let p = Packet::new_checked(&b[..]).unwrap();
        assert_eq!((p.cipher(), p.encrypted_key_size()), (2, 256));
        assert_eq!(p.encrypted_key().len(), 256);
    }

    #[test]
    fn emit_pads_to_4096() {
        let b = netdump_blob();
        let r = Repr::parse(&b).unwrap();
        assert_eq!(r.buffer_len(4096), 4096);
        assert_eq!(r.buffer_len(512), 512);
        assert_eq!(r.buffer_len(0), 293);
        let mut out = [0xffu8; 5000];
        assert_eq!(r.emit(&mut out, 4096), Ok(4096));
        assert_eq!(out[..4096], b[..]);
        assert_eq!(out[4096], 0xff, "nothing written past the blob");
        assert_eq!(r.emit(&mut out[..4095], 4096), Err(Error::BufferTooSmall));
        // RSA-4096 on a 512-byte-sector disk: 37 + 512 rounds up to 1024.
        let key = [7u8; 512];
        let r4 = Repr {
            encrypted_key: &key,
            ..r
        };
        assert_eq!(r4.emit(&mut out, 512), Ok(1024));
        assert!(out[549..1024].iter().all(|&x| x == 0));
        let huge = [0u8; MAX_ENCRYPTED_KEY_LEN + 1];
        assert_eq!(
            Repr {
                encrypted_key: &huge,
                ..r
            }
            .emit(&mut out, 4096),
            Err(Error::Malformed)
        );
    }

    #[test]
    fn rejects_bad_blobs() {
        let b = netdump_blob();
        assert_eq!(Repr::parse(&b[..36]), Err(Error::Truncated));
        assert_eq!(Repr::parse(&b[..37 + 255]), Err(Error::Truncated));
        let mut c = b;
        c[0] = 3;
        assert_eq!(Repr::parse(&c), Err(Error::UnknownCipher(3)));
        let mut c = b;
        c[33..37].copy_from_slice(&2049u32.to_be_bytes());
        assert_eq!(Repr::parse(&c), Err(Error::Malformed));
        c[33..37].copy_from_slice(&u32::MAX.to_be_bytes());
        assert_eq!(Repr::parse(&c), Err(Error::Malformed));
        let p = Packet::new_unchecked(&c[..40]);
        assert_eq!(p.encrypted_key().len(), 3);
        assert_eq!(Packet::new_unchecked(&[1u8][..]).iv(), [0; 32]);
    }

    fn arb_cipher() -> impl Strategy<Value = Cipher> {
        (0u8..=2).prop_map(|c| Cipher::try_from(c).unwrap())
    }

    proptest! {
        #[test]
        fn round_trip(cipher in arb_cipher(), iv: [u8; 32],
                      key in proptest::collection::vec(any::<u8>(), 0..=MAX_ENCRYPTED_KEY_LEN),
                      block_size in prop_oneof![Just(0usize), Just(512), Just(4096), 1usize..5000]) {
            let repr = Repr { cipher, iv, encrypted_key: &key };
            let mut out = [0u8; 8192];
            let n = repr.emit(&mut out, block_size).unwrap();
            prop_assert_eq!(n, repr.buffer_len(block_size));
            if block_size != 0 {
                prop_assert_eq!(n % block_size, 0);
            }
            prop_assert_eq!(Repr::parse(&out[..n]).unwrap(), repr);
        }

        #[test]
        fn arbitrary_bytes_never_panic(mut data in proptest::collection::vec(any::<u8>(), 0..300),
                                       size in 0u32..400) {
            if data.len() >= 37 {
                data[33..37].copy_from_slice(&size.to_be_bytes());
            }
            if let Ok(r) = Repr::parse(&data) {
                prop_assert_eq!(r.encrypted_key.len(), size as usize);
            }
            let p = Packet::new_unchecked(&data[..]);
            let _ = (p.cipher(), p.iv(), p.encrypted_key());
        }
    }
}
