//! RSA key wrapping: RSA-OAEP-SHA256 stanzas of the sealed format and FreeBSD EKCD key unwrap.
//!
//! OAEP decoding is done here rather than by the `rsa` crate, on top of its raw private-key operation
//! (`rsa::hazmat`): `rsa` 0.10 never checks that the leading octet of the encoded message is zero
//! (RFC 8017 §7.1.2 step 3g) and so accepts Wycheproof's "first byte is 1" ciphertext. Our decoder checks
//! every condition and folds them into one `subtle::Choice`, so all padding failures take the same path
//! and produce the same error.

use std::string::ToString;
use std::vec::Vec;

use rsa::hazmat::rsa_decrypt_and_check;
use rsa::traits::PublicKeyParts;
use rsa::{BoxedUint, Oaep};
use sha1::Sha1;
use sha2::{Digest, Sha256};
use subtle::{Choice, ConditionallySelectable, ConstantTimeEq};
use zeroize::{Zeroize, Zeroizing};

use crate::keys::{KeyError, PublicKey};
use crate::seal::{RSA_OAEP_LABEL, StanzaKind};
use crate::secret::DumpKey;

/// Length of the symmetric key FreeBSD `dumpon -k` wraps (`KERNELDUMP_KEY_MAX_SIZE`).
pub const EKCD_KEY_LEN: usize = 64;

/// Smallest RSA modulus we wrap to or unwrap with, in bits (FreeBSD's `dumpon` floor as well).
pub const MIN_RSA_BITS: usize = 2048;

/// Hash functions OAEP may use (label hash and MGF1 hash are chosen separately).
#[non_exhaustive]
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum OaepHash {
    /// SHA-1, as OpenSSL's `RSA_PKCS1_OAEP_PADDING` (FreeBSD EKCD).
    Sha1,
    /// SHA-256, as the sealed format's RSA stanza.
    Sha256,
}

impl OaepHash {
    fn output_len(self) -> usize {
        match self {
            OaepHash::Sha1 => 20,
            OaepHash::Sha256 => 32,
        }
    }

    fn digest(self, data: &[u8]) -> Vec<u8> {
        match self {
            OaepHash::Sha1 => Sha1::digest(data).to_vec(),
            OaepHash::Sha256 => Sha256::digest(data).to_vec(),
        }
    }

    /// MGF1 (RFC 8017 B.2.1): XORs `out` with the mask generated from `seed`.
    fn mgf1_xor(self, seed: &[u8], out: &mut [u8]) {
        match self {
            OaepHash::Sha1 => mgf1_xor::<Sha1>(seed, out),
            OaepHash::Sha256 => mgf1_xor::<Sha256>(seed, out),
        }
    }
}

fn mgf1_xor<D: Digest>(seed: &[u8], out: &mut [u8]) {
    let h_len = <D as Digest>::output_size();
    for (counter, block) in (0u32..).zip(out.chunks_mut(h_len)) {
        let mut hasher = D::new();
        hasher.update(seed);
        hasher.update(counter.to_be_bytes());
        let mut mask = hasher.finalize();
        for (o, m) in block.iter_mut().zip(mask.iter()) {
            *o ^= *m;
        }
        mask.as_mut_slice().zeroize();
    }
}

/// RSA-OAEP-SHA256 (MGF1-SHA256) wrap of a dump key with [`RSA_OAEP_LABEL`]; the stanza body of an RSA
/// recipient. Used when arming, to pre-wrap a pool of dump keys.
pub fn wrap_dump_key<R: rand_core::CryptoRng + ?Sized>(
    public: &rsa::PublicKey,
    dk: &DumpKey,
    rng: &mut R,
) -> Result<Vec<u8>, KeyError> {
    check_bits(public.n().bit_width() as usize)?;
    let padding = Oaep::<Sha256>::new_with_label(RSA_OAEP_LABEL);
    public
        .encrypt(rng, padding, dk.as_bytes())
        .map_err(|e| KeyError::Rsa(e.to_string()))
}

/// Unwraps an RSA-OAEP-SHA256 stanza body: strict OAEP with [`RSA_OAEP_LABEL`], exactly 32 bytes.
pub fn unwrap_dump_key(private: &rsa::PrivateKey, body: &[u8]) -> Result<DumpKey, KeyError> {
    check_bits(private.n().bit_width() as usize)?;
    let plain = oaep_decrypt(private, body, RSA_OAEP_LABEL, OaepHash::Sha256, OaepHash::Sha256)?;
    let bytes: [u8; 32] = plain.as_slice().try_into().map_err(|_| KeyError::Unwrap)?;
    Ok(DumpKey::from_bytes(bytes))
}

/// Strict RSAES-OAEP decryption (RFC 8017 §7.1.2) with any label hash / MGF1 hash pair.
///
/// Every failure (wrong length, out-of-range ciphertext, bad padding, wrong label) is the same
/// [`KeyError::Unwrap`]; the padding checks run without data-dependent branches.
pub fn oaep_decrypt(
    private: &rsa::PrivateKey,
    ct: &[u8],
    label: &[u8],
    hash: OaepHash,
    mgf_hash: OaepHash,
) -> Result<Zeroizing<Vec<u8>>, KeyError> {
    let k = private.size();
    let h_len = hash.output_len();
    if ct.len() != k || k < 2 * h_len + 2 {
        return Err(KeyError::Unwrap);
    }
    let mut em = raw_decrypt(private, ct)?;

    let (y, rest) = em.split_at_mut(1);
    let (masked_seed, masked_db) = rest.split_at_mut(h_len);
    // seed = maskedSeed ^ MGF(maskedDB); DB = maskedDB ^ MGF(seed)
    mgf_hash.mgf1_xor(masked_db, masked_seed);
    mgf_hash.mgf1_xor(masked_seed, masked_db);
    let db: &[u8] = masked_db;

    let expected_lhash = Zeroizing::new(hash.digest(label));
    let mut good = y[0].ct_eq(&0u8);
    good &= db[..h_len].ct_eq(&expected_lhash[..]);

    // DB = lHash' ‖ PS (zeros) ‖ 0x01 ‖ M: find the first 0x01, no non-zero byte before it.
    let mut looking = Choice::from(1u8);
    let mut index = 0u32;
    let mut bad_ps = Choice::from(0u8);
    for (i, byte) in (0u32..).zip(&db[h_len..]) {
        let is_one = byte.ct_eq(&1u8);
        let is_zero = byte.ct_eq(&0u8);
        index.conditional_assign(&i, looking & is_one);
        bad_ps |= looking & !is_one & !is_zero;
        looking &= !is_one;
    }
    good &= !looking & !bad_ps;

    if !bool::from(good) {
        return Err(KeyError::Unwrap);
    }
    let start = h_len + index as usize + 1;
    Ok(Zeroizing::new(db[start..].to_vec()))
}

/// RSAES-PKCS1-v1_5 decryption with explicit rejection (RFC 8017 §7.2.2): `EM = 0x00 ‖ 0x02 ‖ PS ‖ 0x00 ‖ M`
/// with at least 8 non-zero padding bytes, else an error.
///
/// Not `rsa`'s `Pkcs1v15Encrypt`: `rsa` 0.10 answers bad padding with "implicit rejection" (a synthetic message
/// of pseudo-random length, the defence for online oracles), so a wrong key or a random blob yields a 64-byte
/// "key" about once in a few hundred tries and the EKCD unwrap would hand garbage to the cipher instead of
/// saying "wrong key". Unwrapping here is offline (an analyst decrypting a stored dump): there is no oracle to
/// defend, and the padding checks are still folded into one `Choice` as in [`oaep_decrypt`].
fn pkcs1v15_decrypt(private: &rsa::PrivateKey, ct: &[u8]) -> Result<Zeroizing<Vec<u8>>, KeyError> {
    let k = private.size();
    if ct.len() != k || k < 11 {
        return Err(KeyError::Unwrap);
    }
    let em = raw_decrypt(private, ct)?;
    let mut good = em[0].ct_eq(&0u8) & em[1].ct_eq(&2u8);
    // The first zero byte after the two-byte prefix ends PS.
    let mut looking = Choice::from(1u8);
    let mut index = 0u32;
    for (i, byte) in (2u32..).zip(&em[2..]) {
        let is_zero = byte.ct_eq(&0u8);
        index.conditional_assign(&i, looking & is_zero);
        looking &= !is_zero;
    }
    good &= !looking;
    // PS is em[2..index]: at least 8 bytes.
    good &= !Choice::from(u8::from(index < 10));
    if !bool::from(good) {
        return Err(KeyError::Unwrap);
    }
    Ok(Zeroizing::new(em[index as usize + 1..].to_vec()))
}

/// FreeBSD EKCD key unwrap as `decryptcore(8)`: OAEP with SHA-1 / MGF1-SHA1 and an empty label, then
/// PKCS#1 v1.5 for dumps from before FreeBSD switched to OAEP. The key must be exactly 64 bytes.
pub fn ekcd_unwrap(
    private: &rsa::PrivateKey,
    encrypted_key: &[u8],
) -> Result<Zeroizing<[u8; EKCD_KEY_LEN]>, KeyError> {
    let plain = match oaep_decrypt(private, encrypted_key, b"", OaepHash::Sha1, OaepHash::Sha1) {
        Ok(plain) => plain,
        Err(_) => pkcs1v15_decrypt(private, encrypted_key)?,
    };
    let mut key = Zeroizing::new([0u8; EKCD_KEY_LEN]);
    if plain.len() != EKCD_KEY_LEN {
        return Err(KeyError::Unwrap);
    }
    key.copy_from_slice(&plain);
    Ok(key)
}

/// One single-use dump key and its RSA stanzas, made in userland when a client is armed (RSA needs an
/// allocator, which the panic-time client has not).
pub struct PrewrappedKey {
    /// The dump key the stanzas wrap.
    pub dk: DumpKey,
    /// `(kind, key id, body)` for every RSA recipient, in recipient order.
    pub stanzas: Vec<(StanzaKind, [u8; 8], Vec<u8>)>,
}

impl core::fmt::Debug for PrewrappedKey {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("PrewrappedKey")
            .field("dk", &"..")
            .field("stanzas", &self.stanzas.len())
            .finish()
    }
}

/// Makes `count` fresh dump keys, each wrapped to every RSA recipient (X25519 recipients are wrapped at
/// dump time and skipped here). With no RSA recipient the pool is empty.
pub fn prewrap_pool(recipients: &[PublicKey], count: usize) -> Result<Vec<PrewrappedKey>, KeyError> {
    let rsa_recipients: Vec<(&rsa::PublicKey, [u8; 8])> = recipients
        .iter()
        .filter_map(|r| match r {
            PublicKey::Rsa(key) => Some((key, r.key_id())),
            _ => None,
        })
        .collect();
    if rsa_recipients.is_empty() {
        return Ok(Vec::new());
    }
    let mut rng = rand::rng();
    let mut pool = Vec::with_capacity(count);
    for _ in 0..count {
        let dk = DumpKey::generate(&mut rng);
        let mut stanzas = Vec::with_capacity(rsa_recipients.len());
        for (key, key_id) in &rsa_recipients {
            let body = wrap_dump_key(key, &dk, &mut rng)?;
            stanzas.push((StanzaKind::RsaOaepSha256, *key_id, body));
        }
        pool.push(PrewrappedKey { dk, stanzas });
    }
    Ok(pool)
}

/// The raw RSA private-key operation (blinded), returning the k-byte encoded message.
fn raw_decrypt(private: &rsa::PrivateKey, ct: &[u8]) -> Result<Zeroizing<Vec<u8>>, KeyError> {
    let k = private.size();
    let c = BoxedUint::from_be_slice(ct, private.n_bits_precision()).map_err(|_| KeyError::Unwrap)?;
    let m = Zeroizing::new(
        rsa_decrypt_and_check(private, Some(&mut rand::rng()), &c).map_err(|_| KeyError::Unwrap)?,
    );
    let bytes = Zeroizing::new(m.to_be_bytes());
    // The integer's storage is limb-aligned and may be wider than k; m < n, so the excess is zeros.
    let excess = bytes.len().saturating_sub(k);
    let mut em = Zeroizing::new(std::vec![0u8; k]);
    let tail = &bytes[excess..];
    let start = k - tail.len();
    em[start..].copy_from_slice(tail);
    Ok(em)
}

fn check_bits(bits: usize) -> Result<(), KeyError> {
    if bits < MIN_RSA_BITS {
        return Err(KeyError::RsaTooSmall { bits });
    }
    Ok(())
}
