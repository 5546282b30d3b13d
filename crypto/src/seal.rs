//! The sealed dump format v1 (DESIGN §4; byte diagrams in `docs/format.md`).
//!
//! A dump is two artifacts: the **seal header** (cleartext, authenticated, at most 4096 bytes) and the **record
//! stream** (data chunks sealed with an index-and-final-flag nonce, then one trailer record). Everything here works
//! on caller buffers: no allocation, and every parser returns an error instead of panicking.
//!
//! Call order for a sealer: [`write_header`] → [`ChunkSealer::seal_chunk`] for chunk 0, 1, … →
//! [`ChunkSealer::seal_trailer`]. For an opener: [`HeaderView::parse`] → pick a [`Stanza`] and unwrap it (e.g.
//! [`unwrap_x25519`]) → [`HeaderView::open`] (verifies the header MAC) → [`ChunkOpener::trailer_position`] /
//! [`ChunkOpener::open_trailer`] → [`ChunkOpener::open_chunk`] for any chunk, in any order.

use rand_core::CryptoRng;
use zeroize::{Zeroize, Zeroizing};

use crate::aead::{AeadCipher, AeadId, NONCE_LEN, TAG_LEN};
use crate::error::{Error, Result};
use crate::hpke_wrap::{self, WRAPPED_KEY_LEN};
use crate::kdf::{self, KDF_HKDF_SHA256};
use crate::secret::{DumpKey, KEY_ID_LEN, X25519Secret, x25519_key_id};

/// First 8 bytes of every seal header.
pub const MAGIC: [u8; 8] = *b"SEALDUMP";
/// The format version written and accepted.
pub const VERSION: u16 = 1;
/// Upper bound of a seal header (it travels as one EKCD_KEY message).
pub const MAX_HEADER_LEN: usize = 4096;
/// At most this many recipient stanzas.
pub const MAX_RECIPIENTS: usize = 8;
/// Plaintext length of the trailer record.
pub const TRAILER_PLAINTEXT_LEN: usize = 32;
/// On-stream length of the trailer record (plaintext + tag).
pub const TRAILER_RECORD_LEN: usize = TRAILER_PLAINTEXT_LEN + TAG_LEN;
/// OAEP label of RSA stanzas (fixed so pools can be pre-wrapped before the dump id exists).
pub const RSA_OAEP_LABEL: &[u8] = b"sealdump v1 rsa-oaep-sha256";
/// Smallest accepted chunk shift (4 KiB chunks).
pub const MIN_CHUNK_SHIFT: u8 = 12;
/// Largest accepted chunk shift (1 MiB chunks).
pub const MAX_CHUNK_SHIFT: u8 = 20;
/// Default chunk shift (64 KiB chunks).
pub const DEFAULT_CHUNK_SHIFT: u8 = 16;
/// Length of the fixed part of the header (magic … time).
pub const FIXED_HEADER_LEN: usize = 44;
/// Length of a stanza's fixed part (type, key id, body length).
pub const STANZA_FIXED_LEN: usize = 2 + KEY_ID_LEN + 2;
/// Length of the header MAC (HMAC-SHA256).
pub const HEADER_MAC_LEN: usize = 32;
/// Longest metadata string (each is stored with a one-byte length; longer input is cut when sealing).
pub const MAX_METADATA_FIELD_LEN: usize = 255;
/// Shortest metadata plaintext: expected length, host UUID, four empty strings.
const METADATA_MIN_PLAINTEXT: usize = 8 + 16 + 4;
/// Longest metadata plaintext.
const METADATA_MAX_PLAINTEXT: usize = METADATA_MIN_PLAINTEXT + 4 * MAX_METADATA_FIELD_LEN;
/// The nonce holds the record index in 11 bytes (a u64 always fits), then the final flag.
const NONCE_INDEX_LEN: usize = 11;

/// Recipient stanza types.
#[repr(u16)]
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum StanzaKind {
    /// HPKE base mode, DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, the header's AEAD; body = enc ‖ ct (80 bytes).
    X25519Hpke = 1,
    /// RSAES-OAEP-SHA256 / MGF1-SHA256 of DK with label [`RSA_OAEP_LABEL`]; body = the RSA ciphertext.
    RsaOaepSha256 = 2,
}

impl TryFrom<u16> for StanzaKind {
    type Error = Error;

    fn try_from(value: u16) -> Result<Self> {
        match value {
            1 => Ok(StanzaKind::X25519Hpke),
            2 => Ok(StanzaKind::RsaOaepSha256),
            _ => Err(Error::Malformed),
        }
    }
}

/// Sealing parameters that end up in the header.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Params {
    /// Payload (and HPKE) AEAD.
    pub aead: AeadId,
    /// log2 of the plaintext chunk size, 12..=20.
    pub chunk_shift: u8,
    /// Compression of the plaintext (FreeBSD numbering: 0 none, 1 gzip, 2 zstd); informational.
    pub compression: u8,
    /// Dump time, seconds since the epoch, 0 if unknown.
    pub time: u64,
}

impl Default for Params {
    fn default() -> Self {
        Params {
            aead: AeadId::default(),
            chunk_shift: DEFAULT_CHUNK_SHIFT,
            compression: 0,
            time: 0,
        }
    }
}

impl Params {
    /// Plaintext chunk size in bytes.
    pub fn chunk_size(&self) -> usize {
        1usize << self.chunk_shift.min(MAX_CHUNK_SHIFT)
    }
}

/// A recipient as the sealer sees it.
#[derive(Copy, Clone, Debug)]
pub enum Recipient<'a> {
    /// Wrapped at dump time with HPKE (needs the rng).
    X25519 {
        /// The recipient's public key.
        public: [u8; 32],
    },
    /// A stanza body made earlier (e.g. an RSA-OAEP body made when the client was armed).
    Prewrapped {
        /// Stanza type.
        kind: StanzaKind,
        /// Key id of the recipient key.
        key_id: [u8; KEY_ID_LEN],
        /// The wrapped dump key.
        body: &'a [u8],
    },
}

/// Dump metadata that travels only inside the sealed part of the header.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct Metadata<'a> {
    /// Host name.
    pub hostname: &'a [u8],
    /// Kernel version string.
    pub kernel_version: &'a [u8],
    /// Panic message.
    pub panic_string: &'a [u8],
    /// Machine architecture (e.g. "amd64").
    pub architecture: &'a [u8],
    /// Expected plaintext length in bytes (0 if unknown).
    pub expected_length: u64,
    /// Host UUID (zero if unknown).
    pub host_uuid: [u8; 16],
}

/// Owned copy of the metadata, as decrypted by [`HeaderView::open`] (fixed-size arrays, no allocation).
#[derive(Clone, PartialEq, Eq)]
pub struct MetadataOwned {
    hostname: MetaField,
    kernel_version: MetaField,
    panic_string: MetaField,
    architecture: MetaField,
    expected_length: u64,
    host_uuid: [u8; 16],
}

#[derive(Clone, PartialEq, Eq)]
struct MetaField {
    len: u8,
    bytes: [u8; MAX_METADATA_FIELD_LEN],
}

impl MetaField {
    const EMPTY: MetaField = MetaField {
        len: 0,
        bytes: [0; MAX_METADATA_FIELD_LEN],
    };

    fn as_slice(&self) -> &[u8] {
        self.bytes.get(..usize::from(self.len)).unwrap_or(&[])
    }
}

impl MetadataOwned {
    /// Host name.
    pub fn hostname(&self) -> &[u8] {
        self.hostname.as_slice()
    }
    /// Kernel version string.
    pub fn kernel_version(&self) -> &[u8] {
        self.kernel_version.as_slice()
    }
    /// Panic message.
    pub fn panic_string(&self) -> &[u8] {
        self.panic_string.as_slice()
    }
    /// Machine architecture.
    pub fn architecture(&self) -> &[u8] {
        self.architecture.as_slice()
    }
    /// Expected plaintext length (0 if unknown).
    pub fn expected_length(&self) -> u64 {
        self.expected_length
    }
    /// Host UUID.
    pub fn host_uuid(&self) -> [u8; 16] {
        self.host_uuid
    }
    /// Borrowed view, e.g. to re-seal.
    pub fn as_metadata(&self) -> Metadata<'_> {
        Metadata {
            hostname: self.hostname(),
            kernel_version: self.kernel_version(),
            panic_string: self.panic_string(),
            architecture: self.architecture(),
            expected_length: self.expected_length,
            host_uuid: self.host_uuid,
        }
    }
}

impl core::fmt::Debug for MetadataOwned {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        self.as_metadata().fmt(f)
    }
}

/// Status carried by the trailer record.
#[repr(u32)]
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum TrailerStatus {
    /// The client sealed the whole dump.
    Complete = 0,
    /// The client stopped early; the chunks before the trailer are authentic.
    Aborted = 1,
}

impl TryFrom<u32> for TrailerStatus {
    type Error = Error;

    fn try_from(value: u32) -> Result<Self> {
        match value {
            0 => Ok(TrailerStatus::Complete),
            1 => Ok(TrailerStatus::Aborted),
            _ => Err(Error::TrailerInconsistent),
        }
    }
}

/// Contents of the trailer record.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Trailer {
    /// Total plaintext bytes in the data chunks.
    pub total_len: u64,
    /// Number of data chunks (= the trailer's own index).
    pub chunk_count: u64,
    /// Complete or aborted.
    pub status: TrailerStatus,
}

impl Trailer {
    /// Checks `total_len` against `chunk_count` for chunks of `chunk_size`: every chunk but the last is full and
    /// no chunk is empty.
    fn is_consistent(&self, chunk_size: u64) -> bool {
        if self.chunk_count == 0 {
            return self.total_len == 0;
        }
        let full = (self.chunk_count - 1).checked_mul(chunk_size);
        let max = self.chunk_count.checked_mul(chunk_size);
        match (full, max) {
            (Some(full), Some(max)) => self.total_len > full && self.total_len <= max,
            _ => false,
        }
    }

    fn encode(&self) -> [u8; TRAILER_PLAINTEXT_LEN] {
        let mut out = [0u8; TRAILER_PLAINTEXT_LEN];
        out[0..8].copy_from_slice(&self.total_len.to_be_bytes());
        out[8..16].copy_from_slice(&self.chunk_count.to_be_bytes());
        out[16..20].copy_from_slice(&(self.status as u32).to_be_bytes());
        out
    }

    fn decode(buf: &[u8; TRAILER_PLAINTEXT_LEN]) -> Result<Self> {
        let mut r = Reader::new(buf);
        let total_len = r.u64()?;
        let chunk_count = r.u64()?;
        let status = TrailerStatus::try_from(r.u32()?)?;
        if r.rest().iter().any(|&b| b != 0) {
            return Err(Error::TrailerInconsistent);
        }
        Ok(Trailer {
            total_len,
            chunk_count,
            status,
        })
    }
}

/// Nonce of record `index`: 11-byte big-endian index ‖ final flag.
fn record_nonce(index: u64, is_final: bool) -> [u8; NONCE_LEN] {
    let mut nonce = [0u8; NONCE_LEN];
    nonce[NONCE_INDEX_LEN - 8..NONCE_INDEX_LEN].copy_from_slice(&index.to_be_bytes());
    nonce[NONCE_INDEX_LEN] = u8::from(is_final);
    nonce
}

fn check_chunk_shift(shift: u8) -> Result<()> {
    if (MIN_CHUNK_SHIFT..=MAX_CHUNK_SHIFT).contains(&shift) {
        Ok(())
    } else {
        Err(Error::UnsupportedChunkShift(shift))
    }
}

fn record_offset(chunk_shift: u8, index: u64) -> u64 {
    index.saturating_mul((1u64 << chunk_shift) + TAG_LEN as u64)
}

/// Metadata key is used once per dump, so a zero nonce is safe.
const METADATA_NONCE: [u8; NONCE_LEN] = [0; NONCE_LEN];

fn metadata_plaintext_len(m: &Metadata<'_>) -> usize {
    let f = |s: &[u8]| s.len().min(MAX_METADATA_FIELD_LEN);
    METADATA_MIN_PLAINTEXT + f(m.hostname) + f(m.kernel_version) + f(m.panic_string) + f(m.architecture)
}

/// Writes a complete seal header into `out` (at most 4096 bytes); returns (header length, chunk sealer).
///
/// X25519 recipients are wrapped now with HPKE (ephemeral keys from `rng`); pre-wrapped bodies are copied.
/// Metadata strings longer than 255 bytes are cut to 255.
pub fn write_header<R: CryptoRng>(
    out: &mut [u8],
    params: &Params,
    dk: &DumpKey,
    dump_id: [u8; 16],
    recipients: &[Recipient<'_>],
    metadata: &Metadata<'_>,
    rng: &mut R,
) -> Result<(usize, ChunkSealer)> {
    check_chunk_shift(params.chunk_shift)?;
    if recipients.is_empty() {
        return Err(Error::NoRecipient);
    }
    if recipients.len() > MAX_RECIPIENTS {
        return Err(Error::TooManyRecipients);
    }
    let mut stanzas_len = 0usize;
    for r in recipients {
        let body_len = match r {
            Recipient::X25519 { .. } => WRAPPED_KEY_LEN,
            Recipient::Prewrapped { body, .. } => {
                if body.is_empty() || body.len() > MAX_HEADER_LEN {
                    return Err(Error::Malformed);
                }
                body.len()
            }
        };
        stanzas_len += STANZA_FIXED_LEN + body_len;
    }
    let meta_plain_len = metadata_plaintext_len(metadata);
    let meta_ct_len = meta_plain_len + TAG_LEN;
    let header_len = FIXED_HEADER_LEN + stanzas_len + 2 + meta_ct_len + HEADER_MAC_LEN;
    if header_len > MAX_HEADER_LEN || header_len > out.len() {
        return Err(Error::BufferTooSmall);
    }
    let out = &mut out[..header_len];
    let keys = kdf::derive_dump_keys(dk.as_bytes(), &dump_id, params.aead, params.chunk_shift);

    let mut w = Writer::new(out);
    w.put(&MAGIC);
    w.put(&VERSION.to_be_bytes());
    w.put(&(header_len as u16).to_be_bytes());
    w.put(&params.aead.id().to_be_bytes());
    w.put(&KDF_HKDF_SHA256.to_be_bytes());
    w.put(&[params.chunk_shift, params.compression, recipients.len() as u8, 0]);
    w.put(&dump_id);
    w.put(&params.time.to_be_bytes());
    for r in recipients {
        match r {
            Recipient::X25519 { public } => {
                let body = hpke_wrap::wrap_dump_key(params.aead, public, &dump_id, dk, rng)?;
                w.put(&(StanzaKind::X25519Hpke as u16).to_be_bytes());
                w.put(&x25519_key_id(public));
                w.put(&(WRAPPED_KEY_LEN as u16).to_be_bytes());
                w.put(&body);
            }
            Recipient::Prewrapped { kind, key_id, body } => {
                w.put(&(*kind as u16).to_be_bytes());
                w.put(key_id);
                w.put(&(body.len() as u16).to_be_bytes());
                w.put(body);
            }
        }
    }
    w.put(&(meta_ct_len as u16).to_be_bytes());
    let meta_start = w.pos;
    for field in [
        metadata.hostname,
        metadata.kernel_version,
        metadata.panic_string,
        metadata.architecture,
    ] {
        let field = field.get(..MAX_METADATA_FIELD_LEN).unwrap_or(field);
        w.put(&[field.len() as u8]);
        w.put(field);
    }
    w.put(&metadata.expected_length.to_be_bytes());
    w.put(&metadata.host_uuid);
    let meta_end = w.pos;
    w.pos += TAG_LEN;
    let mac_start = w.pos;
    debug_assert_eq!(mac_start + HEADER_MAC_LEN, header_len);

    let (head, rest) = out.split_at_mut(meta_start);
    let (meta_plain, rest) = rest.split_at_mut(meta_end - meta_start);
    let meta_cipher = AeadCipher::new(params.aead, &keys.metadata);
    let tag = meta_cipher.encrypt_in_place_detached(&METADATA_NONCE, head, meta_plain)?;
    rest[..TAG_LEN].copy_from_slice(&tag);
    let mac = kdf::hmac_sha256(keys.header_mac.as_slice(), &[&out[..mac_start]]);
    out[mac_start..].copy_from_slice(&mac);

    let sealer = ChunkSealer {
        cipher: AeadCipher::new(params.aead, &keys.payload),
        header_hash: kdf::sha256(out),
        chunk_shift: params.chunk_shift,
    };
    Ok((header_len, sealer))
}

/// Seals chunks and the trailer of one dump. Keys are wiped on drop (with the `accel` feature, ring's expanded key
/// is not: see [`crate::aead`]).
pub struct ChunkSealer {
    cipher: AeadCipher,
    header_hash: [u8; 32],
    chunk_shift: u8,
}

// The cipher's key is wiped on drop only without `accel` (ring keys are not zeroizable).
#[cfg(not(feature = "accel"))]
impl zeroize::ZeroizeOnDrop for ChunkSealer {}

impl core::fmt::Debug for ChunkSealer {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("ChunkSealer")
            .field("aead", &self.cipher.id())
            .field("chunk_shift", &self.chunk_shift)
            .finish()
    }
}

impl ChunkSealer {
    /// Plaintext chunk size.
    pub fn chunk_size(&self) -> usize {
        1 << self.chunk_shift
    }

    /// The AEAD in use.
    pub fn aead(&self) -> AeadId {
        self.cipher.id()
    }

    /// Encrypts `buf` in place (1 ..= chunk_size bytes; only the last data chunk may be short); returns the tag,
    /// which is stored right after the ciphertext.
    pub fn seal_chunk(&self, index: u64, buf: &mut [u8]) -> Result<[u8; TAG_LEN]> {
        if buf.is_empty() || buf.len() > self.chunk_size() {
            return Err(Error::ChunkLength);
        }
        self.cipher
            .encrypt_in_place_detached(&record_nonce(index, false), &self.header_hash, buf)
    }

    /// Encrypts the plaintext chunk `plain` into `out` (same length, 1 ..= chunk_size bytes) and returns the tag:
    /// the same record as [`Self::seal_chunk`] on a copy of `plain`, without the copy.
    pub fn seal_chunk_from(&self, index: u64, plain: &[u8], out: &mut [u8]) -> Result<[u8; TAG_LEN]> {
        if plain.is_empty() || plain.len() > self.chunk_size() || out.len() != plain.len() {
            return Err(Error::ChunkLength);
        }
        self.cipher
            .encrypt_detached_from(&record_nonce(index, false), &self.header_hash, plain, out)
    }

    /// Seals the trailer record (index = number of data chunks, final flag set) into `out`.
    pub fn seal_trailer(&self, trailer: &Trailer, out: &mut [u8; TRAILER_RECORD_LEN]) -> Result<()> {
        if !trailer.is_consistent(self.chunk_size() as u64) {
            return Err(Error::TrailerInconsistent);
        }
        let (plain, tag_out) = out.split_at_mut(TRAILER_PLAINTEXT_LEN);
        plain.copy_from_slice(&trailer.encode());
        let tag = self.cipher.encrypt_in_place_detached(
            &record_nonce(trailer.chunk_count, true),
            &self.header_hash,
            plain,
        )?;
        tag_out.copy_from_slice(&tag);
        Ok(())
    }

    /// Stream offset of record `index`: index × (chunk size + 16).
    pub fn record_offset(&self, index: u64) -> u64 {
        record_offset(self.chunk_shift, index)
    }
}

/// One recipient stanza as found in a header.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Stanza<'a> {
    /// Stanza type.
    pub kind: StanzaKind,
    /// Key id of the recipient key.
    pub key_id: [u8; KEY_ID_LEN],
    /// Wrapped dump key.
    pub body: &'a [u8],
}

/// A parsed seal header: cleartext fields, not yet authenticated (see [`HeaderView::open`]).
#[derive(Copy, Clone, Debug)]
pub struct HeaderView<'a> {
    bytes: &'a [u8],
    aead: AeadId,
    chunk_shift: u8,
    compression: u8,
    stanza_count: u8,
    dump_id: [u8; 16],
    time: u64,
    /// Offset of the metadata length field.
    meta_len_pos: usize,
}

impl<'a> HeaderView<'a> {
    /// Parses a seal header at the start of `buf` (bytes after the declared header length are ignored).
    /// Never panics.
    pub fn parse(buf: &'a [u8]) -> Result<Self> {
        let mut r = Reader::new(buf);
        if r.take(8)? != MAGIC {
            return Err(Error::BadMagic);
        }
        if r.u16()? != VERSION {
            return Err(Error::UnsupportedVersion);
        }
        let header_len = usize::from(r.u16()?);
        let aead = AeadId::try_from(r.u16()?)?;
        let kdf_id = r.u16()?;
        if kdf_id != KDF_HKDF_SHA256 {
            return Err(Error::UnsupportedKdf(kdf_id));
        }
        let chunk_shift = r.u8()?;
        check_chunk_shift(chunk_shift)?;
        let compression = r.u8()?;
        let stanza_count = r.u8()?;
        if r.u8()? != 0 {
            return Err(Error::Malformed);
        }
        if stanza_count == 0 {
            return Err(Error::NoRecipient);
        }
        if usize::from(stanza_count) > MAX_RECIPIENTS {
            return Err(Error::TooManyRecipients);
        }
        if !(FIXED_HEADER_LEN + HEADER_MAC_LEN..=MAX_HEADER_LEN).contains(&header_len) {
            return Err(Error::Malformed);
        }
        let bytes = buf.get(..header_len).ok_or(Error::Truncated)?;
        // Re-read within the declared length so nothing below can look past it.
        let mut r = Reader::new(bytes);
        r.skip(20)?;
        let dump_id = r.array::<16>()?;
        let time = r.u64()?;
        for _ in 0..stanza_count {
            StanzaKind::try_from(r.u16()?)?;
            r.skip(KEY_ID_LEN)?;
            let body_len = usize::from(r.u16()?);
            if body_len == 0 {
                return Err(Error::Malformed);
            }
            r.skip(body_len)?;
        }
        let meta_len_pos = r.pos;
        let meta_len = usize::from(r.u16()?);
        if !(METADATA_MIN_PLAINTEXT + TAG_LEN..=METADATA_MAX_PLAINTEXT + TAG_LEN).contains(&meta_len) {
            return Err(Error::Malformed);
        }
        r.skip(meta_len)?;
        r.skip(HEADER_MAC_LEN)?;
        if !r.rest().is_empty() {
            return Err(Error::Malformed);
        }
        Ok(HeaderView {
            bytes,
            aead,
            chunk_shift,
            compression,
            stanza_count,
            dump_id,
            time,
            meta_len_pos,
        })
    }

    /// Payload (and HPKE) AEAD.
    pub fn aead(&self) -> AeadId {
        self.aead
    }
    /// log2 of the chunk size.
    pub fn chunk_shift(&self) -> u8 {
        self.chunk_shift
    }
    /// Plaintext chunk size.
    pub fn chunk_size(&self) -> usize {
        1 << self.chunk_shift
    }
    /// The dump id.
    pub fn dump_id(&self) -> [u8; 16] {
        self.dump_id
    }
    /// Dump time (0 if unknown).
    pub fn time(&self) -> u64 {
        self.time
    }
    /// Header length in bytes.
    pub fn header_len(&self) -> usize {
        self.bytes.len()
    }
    /// The header's bytes (exactly `header_len`).
    pub fn as_bytes(&self) -> &'a [u8] {
        self.bytes
    }
    /// Compression id.
    pub fn compression(&self) -> u8 {
        self.compression
    }
    /// Number of recipient stanzas.
    pub fn stanza_count(&self) -> usize {
        usize::from(self.stanza_count)
    }

    /// The recipient stanzas, in header order.
    pub fn stanzas(&self) -> impl Iterator<Item = Stanza<'a>> + use<'a> {
        let mut r = Reader::new(self.bytes.get(FIXED_HEADER_LEN..self.meta_len_pos).unwrap_or(&[]));
        core::iter::from_fn(move || {
            if r.rest().is_empty() {
                return None;
            }
            let kind = StanzaKind::try_from(r.u16().ok()?).ok()?;
            let key_id = r.array::<KEY_ID_LEN>().ok()?;
            let len = usize::from(r.u16().ok()?);
            let body = r.take(len).ok()?;
            Some(Stanza { kind, key_id, body })
        })
    }

    /// Stanzas addressed to `key_id`.
    pub fn stanzas_for(&self, key_id: [u8; KEY_ID_LEN]) -> impl Iterator<Item = Stanza<'a>> + use<'a> {
        self.stanzas().filter(move |s| s.key_id == key_id)
    }

    /// Verifies the header MAC with a candidate dump key, decrypts the metadata and returns the opener.
    pub fn open(&self, dk: &DumpKey) -> Result<ChunkOpener> {
        let keys = kdf::derive_dump_keys(dk.as_bytes(), &self.dump_id, self.aead, self.chunk_shift);
        let mac_start = self
            .bytes
            .len()
            .checked_sub(HEADER_MAC_LEN)
            .ok_or(Error::Malformed)?;
        let (authed, mac) = self.bytes.split_at(mac_start);
        if !kdf::hmac_sha256_verify(keys.header_mac.as_slice(), &[authed], mac) {
            return Err(Error::HeaderMac);
        }
        let ct_start = self.meta_len_pos + 2;
        let aad = authed.get(..ct_start).ok_or(Error::Malformed)?;
        let sealed = authed.get(ct_start..).ok_or(Error::Malformed)?;
        let ct_len = sealed.len().checked_sub(TAG_LEN).ok_or(Error::Malformed)?;
        let (ct, tag) = sealed.split_at(ct_len);
        let mut plain = Zeroizing::new([0u8; METADATA_MAX_PLAINTEXT]);
        let plain = plain.get_mut(..ct.len()).ok_or(Error::Malformed)?;
        plain.copy_from_slice(ct);
        AeadCipher::new(self.aead, &keys.metadata)
            .decrypt_in_place_detached(&METADATA_NONCE, aad, plain, tag)
            .map_err(|_| Error::MetadataAuth)?;
        let metadata = decode_metadata(plain)?;
        Ok(ChunkOpener {
            cipher: AeadCipher::new(self.aead, &keys.payload),
            header_hash: kdf::sha256(self.bytes),
            chunk_shift: self.chunk_shift,
            metadata,
        })
    }

    /// Finds this key's X25519 stanza, unwraps the dump key and opens the header.
    pub fn open_x25519(&self, secret: &X25519Secret) -> Result<(DumpKey, ChunkOpener)> {
        let mut last_err = Error::NoRecipient;
        for stanza in self
            .stanzas_for(secret.key_id())
            .filter(|s| s.kind == StanzaKind::X25519Hpke)
        {
            match unwrap_x25519(secret, &stanza, self).and_then(|dk| self.open(&dk).map(|o| (dk, o))) {
                Ok(found) => return Ok(found),
                Err(e) => last_err = e,
            }
        }
        Err(last_err)
    }
}

fn decode_metadata(plain: &[u8]) -> Result<MetadataOwned> {
    let mut r = Reader::new(plain);
    let mut fields = [
        MetaField::EMPTY,
        MetaField::EMPTY,
        MetaField::EMPTY,
        MetaField::EMPTY,
    ];
    for field in fields.iter_mut() {
        let len = r.u8()?;
        let src = r.take(usize::from(len))?;
        field.len = len;
        field.bytes[..src.len()].copy_from_slice(src);
    }
    let expected_length = r.u64()?;
    let host_uuid = r.array::<16>()?;
    if !r.rest().is_empty() {
        return Err(Error::Malformed);
    }
    let [hostname, kernel_version, panic_string, architecture] = fields;
    Ok(MetadataOwned {
        hostname,
        kernel_version,
        panic_string,
        architecture,
        expected_length,
        host_uuid,
    })
}

/// HPKE unwrap of an X25519 stanza.
pub fn unwrap_x25519(secret: &X25519Secret, stanza: &Stanza<'_>, header: &HeaderView<'_>) -> Result<DumpKey> {
    if stanza.kind != StanzaKind::X25519Hpke {
        return Err(Error::Unwrap);
    }
    hpke_wrap::unwrap_dump_key(header.aead(), secret, &header.dump_id(), stanza.body)
}

/// Opens chunks and the trailer of one dump, in any order. Keys are wiped on drop.
pub struct ChunkOpener {
    cipher: AeadCipher,
    header_hash: [u8; 32],
    chunk_shift: u8,
    metadata: MetadataOwned,
}

#[cfg(not(feature = "accel"))]
impl zeroize::ZeroizeOnDrop for ChunkOpener {}

impl Drop for ChunkOpener {
    fn drop(&mut self) {
        // The metadata is sensitive (panic strings can hold addresses).
        let m = &mut self.metadata;
        for field in [
            &mut m.hostname,
            &mut m.kernel_version,
            &mut m.panic_string,
            &mut m.architecture,
        ] {
            field.bytes.zeroize();
        }
    }
}

impl core::fmt::Debug for ChunkOpener {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("ChunkOpener")
            .field("aead", &self.cipher.id())
            .field("chunk_shift", &self.chunk_shift)
            .finish()
    }
}

impl ChunkOpener {
    /// Plaintext chunk size.
    pub fn chunk_size(&self) -> usize {
        1 << self.chunk_shift
    }

    /// On-stream size of a full data record (chunk size + 16).
    pub fn record_size(&self) -> usize {
        self.chunk_size() + TAG_LEN
    }

    /// Stream offset of record `index`.
    pub fn record_offset(&self, index: u64) -> u64 {
        record_offset(self.chunk_shift, index)
    }

    /// The decrypted metadata.
    pub fn metadata(&self) -> MetadataOwned {
        self.metadata.clone()
    }

    /// Decrypts a data record (ciphertext ‖ tag, 17 ..= chunk size + 16 bytes) in place; returns the plaintext
    /// length (the plaintext is `record[..len]`).
    pub fn open_chunk(&self, index: u64, record: &mut [u8]) -> Result<usize> {
        if !(TAG_LEN + 1..=self.record_size()).contains(&record.len()) {
            return Err(Error::ChunkLength);
        }
        let len = record.len() - TAG_LEN;
        let (ct, tag) = record.split_at_mut(len);
        self.cipher
            .decrypt_in_place_detached(&record_nonce(index, false), &self.header_hash, ct, tag)
            .map_err(|_| Error::ChunkAuth { index })?;
        Ok(len)
    }

    /// Like [`ChunkOpener::open_chunk`], but a record that fails is left with unspecified bytes (zeros with the
    /// `accel` backend) instead of its ciphertext. For callers that discard failed records (the decryptor reports
    /// them and zero-fills their plaintext): it saves the accel backend a copy of every record.
    pub fn open_chunk_or_wipe(&self, index: u64, record: &mut [u8]) -> Result<usize> {
        if !(TAG_LEN + 1..=self.record_size()).contains(&record.len()) {
            return Err(Error::ChunkLength);
        }
        let len = record.len() - TAG_LEN;
        let (ct, tag) = record.split_at_mut(len);
        self.cipher
            .decrypt_in_place_detached_or_wipe(&record_nonce(index, false), &self.header_hash, ct, tag)
            .map_err(|_| Error::ChunkAuth { index })?;
        Ok(len)
    }

    /// Decrypts and checks the trailer record (48 bytes) expected at `index`.
    pub fn open_trailer(&self, index: u64, record: &[u8]) -> Result<Trailer> {
        let record: &[u8; TRAILER_RECORD_LEN] = record.try_into().map_err(|_| Error::TrailerAuth)?;
        let (ct, tag) = record.split_at(TRAILER_PLAINTEXT_LEN);
        let mut plain = [0u8; TRAILER_PLAINTEXT_LEN];
        plain.copy_from_slice(ct);
        self.cipher
            .decrypt_in_place_detached(&record_nonce(index, true), &self.header_hash, &mut plain, tag)
            .map_err(|_| Error::TrailerAuth)?;
        let trailer = Trailer::decode(&plain)?;
        if trailer.chunk_count != index || !trailer.is_consistent(self.chunk_size() as u64) {
            return Err(Error::TrailerInconsistent);
        }
        Ok(trailer)
    }

    /// Where the trailer must be in a stream of `stream_len` bytes: `(index, offset)`, or `None` if no valid
    /// stream has that length. The trailer is always the last 48 bytes.
    pub fn trailer_position(&self, stream_len: u64) -> Option<(u64, u64)> {
        let offset = stream_len.checked_sub(TRAILER_RECORD_LEN as u64)?;
        let record = self.record_size() as u64;
        let full = offset / record;
        match offset % record {
            0 => Some((full, offset)),
            // A short last data record holds at least one byte plus its tag.
            partial if partial > TAG_LEN as u64 => Some((full + 1, offset)),
            _ => None,
        }
    }

    /// Exact length of a stream that `trailer` describes (data records plus the trailer record). A decryptor
    /// compares it with the stored length: any difference means bytes were added or removed.
    pub fn expected_stream_len(&self, trailer: &Trailer) -> Option<u64> {
        let data = trailer
            .total_len
            .checked_add(trailer.chunk_count.checked_mul(TAG_LEN as u64)?)?;
        data.checked_add(TRAILER_RECORD_LEN as u64)
    }

    /// Length of data record `index` in a stream whose trailer says `trailer` (the last one may be short).
    pub fn record_len(&self, trailer: &Trailer, index: u64) -> Option<usize> {
        if index >= trailer.chunk_count {
            return None;
        }
        let cs = self.chunk_size() as u64;
        let start = index.checked_mul(cs)?;
        let len = trailer.total_len.checked_sub(start)?.min(cs);
        usize::try_from(len).ok().map(|l| l + TAG_LEN)
    }
}

/// Bounds-checked big-endian reader.
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let end = self.pos.checked_add(n).ok_or(Error::Truncated)?;
        let out = self.buf.get(self.pos..end).ok_or(Error::Truncated)?;
        self.pos = end;
        Ok(out)
    }

    fn skip(&mut self, n: usize) -> Result<()> {
        self.take(n).map(|_| ())
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N]> {
        self.take(N)?.try_into().map_err(|_| Error::Truncated)
    }

    fn u8(&mut self) -> Result<u8> {
        Ok(self.array::<1>()?[0])
    }

    fn u16(&mut self) -> Result<u16> {
        self.array().map(u16::from_be_bytes)
    }

    fn u32(&mut self) -> Result<u32> {
        self.array().map(u32::from_be_bytes)
    }

    fn u64(&mut self) -> Result<u64> {
        self.array().map(u64::from_be_bytes)
    }

    fn rest(&self) -> &'a [u8] {
        self.buf.get(self.pos..).unwrap_or(&[])
    }
}

/// Writer over a buffer whose size was computed beforehand (the sealer checks lengths first).
struct Writer<'a> {
    buf: &'a mut [u8],
    pos: usize,
}

impl<'a> Writer<'a> {
    fn new(buf: &'a mut [u8]) -> Self {
        Writer { buf, pos: 0 }
    }

    fn put(&mut self, bytes: &[u8]) {
        if let Some(dst) = self.buf.get_mut(self.pos..self.pos + bytes.len()) {
            dst.copy_from_slice(bytes);
        }
        self.pos += bytes.len();
    }
}
