//! The two AEADs of the sealed format, behind one runtime-selected type.
//!
//! Ids are the HPKE registry's (RFC 9180 §7.3), so the header's AEAD id also names the HPKE suite of the X25519
//! stanzas. Encryption is in place with a detached tag (`AeadInOut::encrypt_inout_detached`), so no allocation.
//!
//! With the `accel` feature (std only, for the userland decryptor and sender) [`AeadCipher`] runs on `ring`
//! instead: same bytes, same errors, 2–3x faster on AES-NI/AVX2 machines (docs/perf/crypto.md). Two costs:
//! * ring's key schedule cannot be wiped, so with `accel` the expanded key stays in freed heap memory after drop
//!   (one boxed copy; the raw key bytes are not kept). `AeadCipher` is then not `ZeroizeOnDrop`.
//! * ring decrypts and authenticates in one pass and zeroes the buffer on failure, so
//!   [`AeadCipher::decrypt_in_place_detached`] keeps a copy of the ciphertext to restore it (its contract: a failed
//!   open leaves the buffer unchanged). Callers that drop a record that fails use
//!   [`AeadCipher::decrypt_in_place_detached_or_wipe`], which skips that copy (a 64 KiB memcpy per record).

use aes_gcm::Aes256Gcm;
use aes_gcm::aead::inout::InOutBuf;
use aes_gcm::aead::{AeadInOut, KeyInit};
use chacha20poly1305::ChaCha20Poly1305;

use crate::error::{Error, Result};

/// Length of every AEAD tag used here.
pub const TAG_LEN: usize = 16;
/// Length of every AEAD nonce used here.
pub const NONCE_LEN: usize = 12;
/// Length of every AEAD key used here.
pub const KEY_LEN: usize = 32;

/// AEAD identifiers (HPKE registry values).
#[repr(u16)]
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, Default)]
pub enum AeadId {
    /// AES-256-GCM; fast where AES instructions exist.
    Aes256Gcm = 0x0002,
    /// ChaCha20-Poly1305; the default, fast in software (no SIMD at panic time).
    #[default]
    ChaCha20Poly1305 = 0x0003,
}

impl AeadId {
    /// The registry value.
    pub const fn id(self) -> u16 {
        self as u16
    }

    /// Human-readable name, as used in provisioning files.
    pub const fn name(self) -> &'static str {
        match self {
            AeadId::Aes256Gcm => "aes-256-gcm",
            AeadId::ChaCha20Poly1305 => "chacha20-poly1305",
        }
    }

    /// Parses [`AeadId::name`] back.
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "aes-256-gcm" => Some(AeadId::Aes256Gcm),
            "chacha20-poly1305" => Some(AeadId::ChaCha20Poly1305),
            _ => None,
        }
    }
}

impl TryFrom<u16> for AeadId {
    type Error = Error;

    fn try_from(value: u16) -> Result<Self> {
        match value {
            0x0002 => Ok(AeadId::Aes256Gcm),
            0x0003 => Ok(AeadId::ChaCha20Poly1305),
            other => Err(Error::UnsupportedAead(other)),
        }
    }
}

impl core::fmt::Display for AeadId {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.name())
    }
}

/// A keyed AEAD instance. Without the `accel` feature the key schedule is wiped on drop (see the module docs).
pub struct AeadCipher(Inner);

// No allocator to box the larger AES key schedule; one instance per dump, so the size is irrelevant.
#[allow(clippy::large_enum_variant)]
enum Inner {
    Aes(Aes256Gcm),
    ChaCha(ChaCha20Poly1305),
    #[cfg(feature = "accel")]
    Ring(accel::RingKey),
}

// ring's keys are not zeroizable, so the promise only holds without `accel`.
#[cfg(not(feature = "accel"))]
impl zeroize::ZeroizeOnDrop for AeadCipher {}

impl core::fmt::Debug for AeadCipher {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_tuple("AeadCipher").field(&self.id()).finish()
    }
}

impl AeadCipher {
    /// Keys an AEAD.
    pub fn new(id: AeadId, key: &[u8; KEY_LEN]) -> Self {
        #[cfg(feature = "accel")]
        if let Some(ring_key) = accel::RingKey::new(id, key) {
            return AeadCipher(Inner::Ring(ring_key));
        }
        // Without `accel`, or if ring refused the key (it cannot for 32 bytes; the fallback avoids a panic path).
        Self::new_rustcrypto(id, key)
    }

    fn new_rustcrypto(id: AeadId, key: &[u8; KEY_LEN]) -> Self {
        match id {
            AeadId::Aes256Gcm => AeadCipher(Inner::Aes(Aes256Gcm::new(key.into()))),
            AeadId::ChaCha20Poly1305 => AeadCipher(Inner::ChaCha(ChaCha20Poly1305::new(key.into()))),
        }
    }

    /// Which AEAD this is.
    pub fn id(&self) -> AeadId {
        match &self.0 {
            Inner::Aes(_) => AeadId::Aes256Gcm,
            Inner::ChaCha(_) => AeadId::ChaCha20Poly1305,
            #[cfg(feature = "accel")]
            Inner::Ring(k) => k.id(),
        }
    }

    /// Encrypts `buf` in place and returns the tag. `nonce` must be 12 bytes.
    pub fn encrypt_in_place_detached(
        &self,
        nonce: &[u8],
        aad: &[u8],
        buf: &mut [u8],
    ) -> Result<[u8; TAG_LEN]> {
        self.encrypt_inout(nonce, aad, buf.into())
    }

    /// Encrypts `input` into `out` (same length) with a detached tag: one pass over the bytes, where
    /// [`Self::encrypt_in_place_detached`] needs them copied into place first. (The `ring` backend has no
    /// out-of-place seal: it copies, then seals in place.)
    pub fn encrypt_detached_from(
        &self,
        nonce: &[u8],
        aad: &[u8],
        input: &[u8],
        out: &mut [u8],
    ) -> Result<[u8; TAG_LEN]> {
        let buf = InOutBuf::new(input, out).map_err(|_| Error::ChunkLength)?;
        self.encrypt_inout(nonce, aad, buf)
    }

    /// Both encryptions: in place when `buf`'s input and output are the same slice.
    fn encrypt_inout(&self, nonce: &[u8], aad: &[u8], buf: InOutBuf<'_, '_, u8>) -> Result<[u8; TAG_LEN]> {
        let nonce: &[u8; NONCE_LEN] = nonce.try_into().map_err(|_| Error::NonceLength)?;
        let tag = match &self.0 {
            Inner::Aes(c) => c.encrypt_inout_detached(nonce.into(), aad, buf),
            Inner::ChaCha(c) => c.encrypt_inout_detached(nonce.into(), aad, buf),
            // No copy when in place.
            #[cfg(feature = "accel")]
            Inner::Ring(k) => return k.seal(nonce, aad, buf.into_out_with_copied_in()),
        }
        .map_err(|_| Error::Encrypt)?;
        Ok(tag.into())
    }

    /// Checks the tag and decrypts `buf` in place. On failure `buf` is left unchanged (the tag is checked first).
    pub fn decrypt_in_place_detached(
        &self,
        nonce: &[u8],
        aad: &[u8],
        buf: &mut [u8],
        tag: &[u8],
    ) -> Result<()> {
        let nonce: &[u8; NONCE_LEN] = nonce.try_into().map_err(|_| Error::NonceLength)?;
        let tag: &[u8; TAG_LEN] = tag.try_into().map_err(|_| Error::Decrypt)?;
        match &self.0 {
            Inner::Aes(c) => c.decrypt_inout_detached(nonce.into(), aad, buf.into(), tag.into()),
            Inner::ChaCha(c) => c.decrypt_inout_detached(nonce.into(), aad, buf.into(), tag.into()),
            #[cfg(feature = "accel")]
            Inner::Ring(k) => return k.open(nonce, aad, buf, tag),
        }
        .map_err(|_| Error::Decrypt)
    }

    /// Like [`AeadCipher::decrypt_in_place_detached`], but on failure `buf` holds unspecified bytes (zeros with
    /// `accel`, the unchanged ciphertext without). For callers that discard a record that fails: with `accel` it
    /// saves the ciphertext copy the restoring variant needs.
    pub fn decrypt_in_place_detached_or_wipe(
        &self,
        nonce: &[u8],
        aad: &[u8],
        buf: &mut [u8],
        tag: &[u8],
    ) -> Result<()> {
        #[cfg(feature = "accel")]
        if let Inner::Ring(k) = &self.0 {
            let nonce: &[u8; NONCE_LEN] = nonce.try_into().map_err(|_| Error::NonceLength)?;
            let tag: &[u8; TAG_LEN] = tag.try_into().map_err(|_| Error::Decrypt)?;
            return k.open_or_wipe(nonce, aad, buf, tag);
        }
        self.decrypt_in_place_detached(nonce, aad, buf, tag)
    }
}

/// The ring backend (`accel`).
#[cfg(feature = "accel")]
mod accel {
    use core::cell::Cell;
    use std::boxed::Box;
    use std::vec::Vec;

    use ring::aead::{AES_256_GCM, Aad, CHACHA20_POLY1305, LessSafeKey, Nonce, Tag, UnboundKey};

    use super::{AeadId, KEY_LEN, NONCE_LEN, TAG_LEN};
    use crate::error::{Error, Result};

    std::thread_local! {
        static CIPHERTEXT_COPY: Cell<Vec<u8>> = const { Cell::new(Vec::new()) };
    }

    /// The largest per-thread copy kept between calls: one record at the largest chunk size.
    const KEEP_COPY_UP_TO: usize = (1 << crate::seal::MAX_CHUNK_SHIFT) + TAG_LEN;

    pub(super) struct RingKey {
        id: AeadId,
        // Boxed so that moving the cipher around does not leave stale copies of the key schedule behind.
        key: Box<LessSafeKey>,
    }

    impl RingKey {
        pub(super) fn new(id: AeadId, key: &[u8; KEY_LEN]) -> Option<Self> {
            let algorithm = match id {
                AeadId::Aes256Gcm => &AES_256_GCM,
                AeadId::ChaCha20Poly1305 => &CHACHA20_POLY1305,
            };
            let unbound = UnboundKey::new(algorithm, key).ok()?;
            Some(RingKey {
                id,
                key: Box::new(LessSafeKey::new(unbound)),
            })
        }

        pub(super) fn id(&self) -> AeadId {
            self.id
        }

        pub(super) fn seal(
            &self,
            nonce: &[u8; NONCE_LEN],
            aad: &[u8],
            buf: &mut [u8],
        ) -> Result<[u8; TAG_LEN]> {
            let tag = self
                .key
                .seal_in_place_separate_tag(Nonce::assume_unique_for_key(*nonce), Aad::from(aad), buf)
                .map_err(|_| Error::Encrypt)?;
            tag.as_ref().try_into().map_err(|_| Error::Encrypt)
        }

        pub(super) fn open(
            &self,
            nonce: &[u8; NONCE_LEN],
            aad: &[u8],
            buf: &mut [u8],
            tag: &[u8; TAG_LEN],
        ) -> Result<()> {
            // ring zeroes the buffer when the tag is wrong; keep the ciphertext (not secret) to put it back. The copy
            // lives in a per-thread buffer, so there is no allocation per record.
            let mut ciphertext = CIPHERTEXT_COPY.try_with(Cell::take).unwrap_or_default();
            ciphertext.clear();
            ciphertext.reserve_exact(buf.len());
            ciphertext.extend_from_slice(buf);
            let result = self.open_or_wipe(nonce, aad, buf, tag);
            if result.is_err() {
                buf.copy_from_slice(&ciphertext);
            }
            // Kept for the next record unless unusually large; try_with fails only while the thread exits.
            if ciphertext.capacity() <= KEEP_COPY_UP_TO {
                let _ = CIPHERTEXT_COPY.try_with(|slot| slot.set(ciphertext));
            }
            result
        }

        /// Opens in place; on failure ring has zeroed `buf`.
        pub(super) fn open_or_wipe(
            &self,
            nonce: &[u8; NONCE_LEN],
            aad: &[u8],
            buf: &mut [u8],
            tag: &[u8; TAG_LEN],
        ) -> Result<()> {
            self.key
                .open_in_place_separate_tag(
                    Nonce::assume_unique_for_key(*nonce),
                    Aad::from(aad),
                    Tag::from(*tag),
                    buf,
                    0..,
                )
                .map(|_| ())
                .map_err(|_| Error::Decrypt)
        }
    }
}

/// The ring backend must be indistinguishable from RustCrypto: same records, same errors, same buffer on failure.
#[cfg(all(test, feature = "accel"))]
mod accel_tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use std::vec::Vec;

    use proptest::prelude::*;

    use super::*;

    fn both(id: AeadId, key: &[u8; KEY_LEN]) -> (AeadCipher, AeadCipher) {
        let ring = AeadCipher::new(id, key);
        assert!(matches!(ring.0, Inner::Ring(_)), "accel must pick ring");
        let rustcrypto = AeadCipher::new_rustcrypto(id, key);
        assert!(!matches!(rustcrypto.0, Inner::Ring(_)));
        (ring, rustcrypto)
    }

    fn aead_id() -> impl Strategy<Value = AeadId> {
        prop_oneof![Just(AeadId::Aes256Gcm), Just(AeadId::ChaCha20Poly1305)]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn same_records_as_rustcrypto(
            id in aead_id(),
            key in any::<[u8; KEY_LEN]>(),
            nonce in any::<[u8; NONCE_LEN]>(),
            aad in proptest::collection::vec(any::<u8>(), 0..80),
            // Up to past one 64 KiB record, so the wide SIMD paths and every tail length get exercised.
            plain in proptest::collection::vec(any::<u8>(), 0..70_000),
            flip in any::<prop::sample::Index>(),
        ) {
            let (ring, rustcrypto) = both(id, &key);
            let mut by_ring = plain.clone();
            let mut by_rustcrypto = plain.clone();
            let tag = ring.encrypt_in_place_detached(&nonce, &aad, &mut by_ring).unwrap();
            let expected_tag = rustcrypto.encrypt_in_place_detached(&nonce, &aad, &mut by_rustcrypto).unwrap();
            prop_assert_eq!(&by_ring, &by_rustcrypto);
            prop_assert_eq!(tag, expected_tag);

            // Each opens the other's record.
            let mut opened = by_rustcrypto.clone();
            ring.decrypt_in_place_detached(&nonce, &aad, &mut opened, &expected_tag).unwrap();
            prop_assert_eq!(&opened, &plain);
            let mut opened = by_ring.clone();
            rustcrypto.decrypt_in_place_detached(&nonce, &aad, &mut opened, &tag).unwrap();
            prop_assert_eq!(&opened, &plain);
            // The wiping variant opens the same records to the same plaintext.
            for cipher in [&ring, &rustcrypto] {
                let mut opened = by_ring.clone();
                cipher.decrypt_in_place_detached_or_wipe(&nonce, &aad, &mut opened, &tag).unwrap();
                prop_assert_eq!(&opened, &plain);
            }

            // A flipped bit anywhere in ciphertext ‖ tag: the same error, the buffer unchanged.
            let mut record: Vec<u8> = by_ring.iter().chain(tag.iter()).copied().collect();
            let at = flip.index(record.len());
            record[at] ^= 0x01;
            let (ct, bad_tag) = record.split_at(by_ring.len());
            for cipher in [&ring, &rustcrypto] {
                let mut buf = ct.to_vec();
                prop_assert_eq!(cipher.decrypt_in_place_detached(&nonce, &aad, &mut buf, bad_tag), Err(Error::Decrypt));
                prop_assert_eq!(&buf[..], ct);
            }
            // The wiping variant fails the same way; ring leaves no plaintext behind (it zeroes the buffer).
            for cipher in [&ring, &rustcrypto] {
                let mut buf = ct.to_vec();
                prop_assert_eq!(
                    cipher.decrypt_in_place_detached_or_wipe(&nonce, &aad, &mut buf, bad_tag),
                    Err(Error::Decrypt)
                );
            }
            let mut buf = ct.to_vec();
            let _ = ring.decrypt_in_place_detached_or_wipe(&nonce, &aad, &mut buf, bad_tag);
            prop_assert!(buf.iter().all(|&b| b == 0));
        }
    }

    /// `open_chunk_or_wipe` opens what `open_chunk` opens and rejects what it rejects, with the same error.
    #[test]
    fn chunk_open_or_wipe_agrees_with_open_chunk() {
        use crate::seal::{self, HeaderView, Metadata, Params, Recipient};
        use crate::{DumpKey, X25519Secret};

        let mut rng = rand::rng();
        for aead in [AeadId::Aes256Gcm, AeadId::ChaCha20Poly1305] {
            let dk = DumpKey::generate(&mut rng);
            let public = X25519Secret::generate(&mut rng).public_key();
            let params = Params {
                aead,
                ..Params::default()
            };
            let mut header = [0u8; seal::MAX_HEADER_LEN];
            let (len, sealer) = seal::write_header(
                &mut header,
                &params,
                &dk,
                [4; 16],
                &[Recipient::X25519 { public }],
                &Metadata::default(),
                &mut rng,
            )
            .unwrap();
            let opener = HeaderView::parse(&header[..len]).unwrap().open(&dk).unwrap();
            let plain: Vec<u8> = (0..1000u32).map(|i| (i * 31) as u8).collect();
            let mut record = plain.clone();
            let tag = sealer.seal_chunk(7, &mut record).unwrap();
            record.extend_from_slice(&tag);

            let mut opened = record.clone();
            assert_eq!(opener.open_chunk_or_wipe(7, &mut opened), Ok(plain.len()));
            assert_eq!(&opened[..plain.len()], &plain[..]);
            // Wrong index, flipped bit, bad lengths: the same errors as open_chunk, and no plaintext left behind.
            let mut flipped = record.clone();
            flipped[3] ^= 0x40;
            for (index, rec) in [(8, record.clone()), (7, flipped), (7, record[..16].to_vec())] {
                let mut a = rec.clone();
                let mut b = rec.clone();
                let expected = opener.open_chunk(index, &mut a);
                assert!(expected.is_err());
                assert_eq!(opener.open_chunk_or_wipe(index, &mut b), expected);
                assert_ne!(&b[..b.len().min(plain.len())], &plain[..b.len().min(plain.len())]);
            }
        }
    }

    #[test]
    fn same_errors_as_rustcrypto() {
        for id in [AeadId::Aes256Gcm, AeadId::ChaCha20Poly1305] {
            let (ring, rustcrypto) = both(id, &[9; KEY_LEN]);
            for cipher in [&ring, &rustcrypto] {
                let mut buf = [1u8; 40];
                assert_eq!(
                    cipher.encrypt_in_place_detached(&[0; 8], b"", &mut buf),
                    Err(Error::NonceLength)
                );
                assert_eq!(
                    cipher.decrypt_in_place_detached(&[0; 16], b"", &mut buf, &[0; TAG_LEN]),
                    Err(Error::NonceLength)
                );
                assert_eq!(
                    cipher.decrypt_in_place_detached(&[0; NONCE_LEN], b"", &mut buf, &[0; 15]),
                    Err(Error::Decrypt)
                );
                assert_eq!(
                    cipher.decrypt_in_place_detached_or_wipe(&[0; 16], b"", &mut buf, &[0; TAG_LEN]),
                    Err(Error::NonceLength)
                );
                assert_eq!(
                    cipher.decrypt_in_place_detached_or_wipe(&[0; NONCE_LEN], b"", &mut buf, &[0; 15]),
                    Err(Error::Decrypt)
                );
                assert_eq!(buf, [1u8; 40]);
                assert_eq!(cipher.id(), id);
            }
        }
    }
}
