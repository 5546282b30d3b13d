//! Key files: PKCS#8 / PKCS#1 PEM private keys (optionally passphrase-encrypted), SubjectPublicKeyInfo PEM
//! public keys, key ids and fingerprints, and stanza unwrap with a private key.
//!
//! The formats are OpenSSL's, so keys move both ways: `openssl genpkey -algorithm X25519` and
//! `openssl genrsa` keys load here, and `openssl pkey` reads what we write. A key's fingerprint is
//! SHA-256 of its SubjectPublicKeyInfo DER, its id the first 8 bytes of that (DESIGN §5), so
//! `openssl pkey -pubout -outform DER | sha256sum` gives the same value.

use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::string::{String, ToString};
use std::vec::Vec;

use pkcs8::der::asn1::OctetStringRef;
use pkcs8::der::pem::LineEnding;
use pkcs8::der::{Decode, SecretDocument};
use pkcs8::{EncryptedPrivateKeyInfoRef, ObjectIdentifier, PrivateKeyInfoRef};
use rsa::pkcs1::{DecodeRsaPrivateKey, DecodeRsaPublicKey};
use rsa::pkcs8::{EncodePrivateKey, EncodePublicKey};
use rsa::traits::PublicKeyParts;
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::seal::{self, StanzaKind};
use crate::secret::{self, DumpKey, X25519Secret};

/// id-X25519 (RFC 8410).
const X25519_OID: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.101.110");
/// rsaEncryption (RFC 8017).
const RSA_OID: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");
/// PKCS#8 v1 PrivateKeyInfo of an X25519 key up to the 32 key bytes (RFC 8410 §10.3); OpenSSL writes exactly this.
const X25519_PKCS8_PREFIX: [u8; 16] = [
    0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x6e, 0x04, 0x22, 0x04, 0x20,
];
/// RSA key sizes [`PrivateKey::generate_rsa`] makes (keytool offers 3072 and 4096; 2048 is for tests and
/// FreeBSD `dumpon -k` style keys).
pub const RSA_GENERATE_BITS: [usize; 3] = [2048, 3072, 4096];

/// Errors from reading, writing or using keys. Messages are one line.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// Reading or writing a key file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// Refused to replace an existing key file.
    #[error("{0}: already exists (use --force to overwrite)")]
    Exists(PathBuf),
    /// A key file is not valid PEM.
    #[error("not a PEM key file ({0})")]
    NotPem(String),
    /// A PEM block of a type we do not read.
    #[error(
        "unsupported PEM type \"{0}\" (expected PRIVATE KEY, ENCRYPTED PRIVATE KEY, RSA PRIVATE KEY or PUBLIC KEY)"
    )]
    UnsupportedPem(String),
    /// A key of an algorithm we do not use.
    #[error("unsupported key algorithm {0} (expected X25519 or RSA)")]
    UnsupportedAlgorithm(String),
    /// The key's DER structure is invalid.
    #[error("malformed key: {0}")]
    Malformed(String),
    /// The key is passphrase-encrypted and no passphrase was given.
    #[error("the private key is encrypted: a passphrase is needed")]
    PassphraseRequired,
    /// The passphrase does not decrypt the key (or the encrypted key is damaged).
    #[error("cannot decrypt the private key: wrong passphrase or damaged file")]
    WrongPassphrase,
    /// Old OpenSSL "Proc-Type: 4,ENCRYPTED" PEM.
    #[error("legacy encrypted PEM is not supported; convert it with `openssl pkcs8 -topk8`")]
    LegacyEncryptedPem,
    /// An RSA key below the size we accept.
    #[error("RSA-{bits} is too small (at least 2048 bits)")]
    RsaTooSmall {
        /// Modulus size in bits.
        bits: usize,
    },
    /// An RSA size keytool does not generate.
    #[error("unsupported RSA size {0} (use 2048, 3072 or 4096)")]
    RsaSize(usize),
    /// An RSA library error (key generation, encryption).
    #[error("RSA: {0}")]
    Rsa(String),
    /// A key unwrap failed: wrong key, or the wrapped key was damaged.
    #[error("cannot unwrap the dump key with this private key")]
    Unwrap,
    /// The stanza is for another kind of key than this one.
    #[error("the recipient stanza is for a different key type")]
    WrongKeyType,
    /// An error from the sealed format.
    #[error("{0}")]
    Crypto(crate::error::Error),
}

fn malformed(e: impl ToString) -> KeyError {
    KeyError::Malformed(e.to_string())
}

/// A public key: a recipient of sealed dumps.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PublicKey {
    /// X25519 public key (HPKE recipient).
    X25519([u8; 32]),
    /// RSA public key (RSA-OAEP-SHA256 recipient).
    Rsa(rsa::PublicKey),
}

impl PublicKey {
    /// Reads a SubjectPublicKeyInfo PEM ("PUBLIC KEY"); PKCS#1 "RSA PUBLIC KEY" is accepted too.
    pub fn from_pem(pem: &str) -> Result<Self, KeyError> {
        let block = first_pem_block(pem)?;
        let (label, der) = decode_pem(block)?;
        match label.as_str() {
            "PUBLIC KEY" => Self::from_spki_der(&der),
            "RSA PUBLIC KEY" => Ok(PublicKey::Rsa(
                rsa::PublicKey::from_pkcs1_der(&der).map_err(malformed)?,
            )),
            _ => Err(KeyError::UnsupportedPem(label)),
        }
    }

    /// Reads a SubjectPublicKeyInfo DER.
    pub fn from_spki_der(der: &[u8]) -> Result<Self, KeyError> {
        let spki = spki::SubjectPublicKeyInfoRef::try_from(der).map_err(malformed)?;
        let oid = spki.algorithm.oid;
        if oid == X25519_OID {
            if spki.algorithm.parameters.is_some() {
                return Err(malformed("X25519 algorithm identifier has parameters"));
            }
            let bytes = spki
                .subject_public_key
                .as_bytes()
                .ok_or_else(|| malformed("X25519 public key is not whole bytes"))?;
            let public: [u8; 32] = bytes
                .try_into()
                .map_err(|_| malformed("X25519 public key is not 32 bytes"))?;
            Ok(PublicKey::X25519(public))
        } else if oid == RSA_OID {
            Ok(PublicKey::Rsa(rsa::PublicKey::try_from(spki).map_err(malformed)?))
        } else {
            Err(KeyError::UnsupportedAlgorithm(oid.to_string()))
        }
    }

    /// SubjectPublicKeyInfo PEM.
    pub fn to_pem(&self) -> String {
        // Encoding a DER we just produced cannot fail; an empty string would be caught by any reader.
        pkcs8::der::pem::encode_string("PUBLIC KEY", LineEnding::LF, &self.spki_der()).unwrap_or_default()
    }

    /// SubjectPublicKeyInfo DER (the bytes the key id and fingerprint hash).
    pub fn spki_der(&self) -> Vec<u8> {
        match self {
            PublicKey::X25519(public) => secret::x25519_spki_der(public).to_vec(),
            PublicKey::Rsa(key) => key
                .to_public_key_der()
                .map(|doc| doc.into_vec())
                .unwrap_or_default(),
        }
    }

    /// Key id: the first 8 bytes of the fingerprint.
    pub fn key_id(&self) -> [u8; 8] {
        secret::key_id_from_spki_der(&self.spki_der())
    }

    /// Fingerprint: SHA-256 of the SubjectPublicKeyInfo DER.
    pub fn fingerprint(&self) -> [u8; 32] {
        Sha256::digest(self.spki_der()).into()
    }

    /// "X25519" or "RSA-<bits>".
    pub fn describe(&self) -> String {
        match self {
            PublicKey::X25519(_) => "X25519".to_string(),
            PublicKey::Rsa(key) => std::format!("RSA-{}", key.n().bit_width()),
        }
    }

    /// The stanza kind that addresses this key.
    pub fn stanza_kind(&self) -> StanzaKind {
        match self {
            PublicKey::X25519(_) => StanzaKind::X25519Hpke,
            PublicKey::Rsa(_) => StanzaKind::RsaOaepSha256,
        }
    }
}

/// A private key. `Debug` shows the type and key id only.
// Few keys exist at a time; unboxed variants keep the CONTRACT's pattern `PrivateKey::Rsa(key)` simple.
#[allow(clippy::large_enum_variant)]
pub enum PrivateKey {
    /// X25519 secret.
    X25519(X25519Secret),
    /// RSA private key.
    Rsa(rsa::PrivateKey),
}

impl core::fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let public = self.public_key();
        write!(
            f,
            "PrivateKey({}, id {})",
            public.describe(),
            hex_lower(&public.key_id())
        )
    }
}

impl PrivateKey {
    /// A fresh X25519 key from the OS RNG.
    pub fn generate_x25519() -> Self {
        let mut bytes = Zeroizing::new([0u8; 32]);
        rand::Rng::fill_bytes(&mut rand::rng(), &mut bytes[..]);
        PrivateKey::X25519(X25519Secret::from_bytes(*bytes))
    }

    /// A fresh RSA key (2048, 3072 or 4096 bits, e = 65537).
    pub fn generate_rsa(bits: usize) -> Result<Self, KeyError> {
        if !RSA_GENERATE_BITS.contains(&bits) {
            return Err(KeyError::RsaSize(bits));
        }
        let key = rsa::PrivateKey::new(&mut rand::rng(), bits).map_err(|e| KeyError::Rsa(e.to_string()))?;
        Ok(PrivateKey::Rsa(key))
    }

    /// Reads a PEM private key: PKCS#8 "PRIVATE KEY", "ENCRYPTED PRIVATE KEY" (PBES2: scrypt or PBKDF2), or
    /// PKCS#1 "RSA PRIVATE KEY".
    pub fn from_pem(pem: &str, passphrase: Option<&[u8]>) -> Result<Self, KeyError> {
        let block = first_pem_block(pem)?;
        if block.contains("Proc-Type: 4,ENCRYPTED") {
            return Err(KeyError::LegacyEncryptedPem);
        }
        let (label, der) = decode_pem(block)?;
        match label.as_str() {
            "PRIVATE KEY" => Self::from_pkcs8_der(&der),
            "ENCRYPTED PRIVATE KEY" => {
                let passphrase = passphrase.ok_or(KeyError::PassphraseRequired)?;
                let info = EncryptedPrivateKeyInfoRef::try_from(&der[..]).map_err(malformed)?;
                let plain = info.decrypt(passphrase).map_err(|_| KeyError::WrongPassphrase)?;
                // A wrong passphrase usually fails the CBC padding check, but not always.
                Self::from_pkcs8_der(plain.as_bytes()).map_err(|e| match e {
                    KeyError::Malformed(_) => KeyError::WrongPassphrase,
                    other => other,
                })
            }
            "RSA PRIVATE KEY" => Ok(PrivateKey::Rsa(
                rsa::PrivateKey::from_pkcs1_der(&der).map_err(malformed)?,
            )),
            _ => Err(KeyError::UnsupportedPem(label)),
        }
    }

    /// Reads an unencrypted PKCS#8 DER.
    pub fn from_pkcs8_der(der: &[u8]) -> Result<Self, KeyError> {
        let info = PrivateKeyInfoRef::try_from(der).map_err(malformed)?;
        let oid = info.algorithm.oid;
        if oid == X25519_OID {
            // privateKey is an OCTET STRING holding CurvePrivateKey ::= OCTET STRING (RFC 8410 §7).
            let inner = <&OctetStringRef>::from_der(info.private_key.as_bytes()).map_err(malformed)?;
            let mut bytes = Zeroizing::new([0u8; 32]);
            if inner.as_bytes().len() != 32 {
                return Err(malformed("X25519 private key is not 32 bytes"));
            }
            bytes.copy_from_slice(inner.as_bytes());
            let key = X25519Secret::from_bytes(*bytes);
            // OneAsymmetricKey (v2) may carry the public key: it must match the secret.
            if let Some(public) = info.public_key.as_ref()
                && public.as_bytes() != Some(&key.public_key()[..])
            {
                return Err(malformed(
                    "embedded X25519 public key does not match the private key",
                ));
            }
            Ok(PrivateKey::X25519(key))
        } else if oid == RSA_OID {
            Ok(PrivateKey::Rsa(
                rsa::PrivateKey::try_from(info).map_err(malformed)?,
            ))
        } else {
            Err(KeyError::UnsupportedAlgorithm(oid.to_string()))
        }
    }

    /// PKCS#8 DER, unencrypted.
    pub fn to_pkcs8_der(&self) -> Result<SecretDocument, KeyError> {
        match self {
            PrivateKey::X25519(key) => {
                let mut der = Zeroizing::new([0u8; 48]);
                der[..16].copy_from_slice(&X25519_PKCS8_PREFIX);
                der[16..].copy_from_slice(&x25519_secret_bytes(key)[..]);
                SecretDocument::try_from(&der[..]).map_err(malformed)
            }
            PrivateKey::Rsa(key) => key.to_pkcs8_der().map_err(malformed),
        }
    }

    /// PKCS#8 PEM; with a passphrase, "ENCRYPTED PRIVATE KEY" (PBES2, scrypt + AES-256-CBC, parameters
    /// OpenSSL 3 accepts).
    pub fn to_pem(&self, passphrase: Option<&[u8]>) -> Result<Zeroizing<String>, KeyError> {
        let der = self.to_pkcs8_der()?;
        match passphrase {
            None => der.to_pem("PRIVATE KEY", LineEnding::LF).map_err(malformed),
            Some(passphrase) => {
                let info = PrivateKeyInfoRef::try_from(der.as_bytes()).map_err(malformed)?;
                let encrypted = info
                    .encrypt_with_rng(&mut rand::rng(), passphrase)
                    .map_err(malformed)?;
                encrypted
                    .to_pem("ENCRYPTED PRIVATE KEY", LineEnding::LF)
                    .map_err(malformed)
            }
        }
    }

    /// The matching public key.
    pub fn public_key(&self) -> PublicKey {
        match self {
            PrivateKey::X25519(key) => PublicKey::X25519(key.public_key()),
            PrivateKey::Rsa(key) => PublicKey::Rsa(key.to_public_key()),
        }
    }

    /// Unwraps the stanza addressed to this key (X25519 via [`seal::unwrap_x25519`], RSA via
    /// [`crate::rsa_wrap::unwrap_dump_key`]). The key id is not checked here; callers pick the stanza.
    pub fn unwrap_stanza(
        &self,
        stanza: &seal::Stanza<'_>,
        header: &seal::HeaderView<'_>,
    ) -> Result<DumpKey, KeyError> {
        match (self, stanza.kind) {
            (PrivateKey::X25519(key), StanzaKind::X25519Hpke) => {
                seal::unwrap_x25519(key, stanza, header).map_err(|_| KeyError::Unwrap)
            }
            (PrivateKey::Rsa(key), StanzaKind::RsaOaepSha256) => {
                crate::rsa_wrap::unwrap_dump_key(key, stanza.body)
            }
            _ => Err(KeyError::WrongKeyType),
        }
    }
}

fn x25519_secret_bytes(key: &X25519Secret) -> Zeroizing<[u8; 32]> {
    Zeroizing::new(*key.as_bytes())
}

/// True if the PEM holds an encrypted private key (PKCS#8 or legacy OpenSSL encryption).
pub fn is_encrypted_pem(pem: &str) -> bool {
    pem.contains("-----BEGIN ENCRYPTED PRIVATE KEY-----") || pem.contains("Proc-Type: 4,ENCRYPTED")
}

/// What a key file holds, found from its PEM label without decrypting it.
#[non_exhaustive]
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum PemKind {
    /// An unencrypted private key.
    PrivateKey,
    /// An encrypted private key.
    EncryptedPrivateKey,
    /// A public key.
    PublicKey,
}

/// Classifies a PEM key file by its first block's label.
pub fn pem_kind(pem: &str) -> Result<PemKind, KeyError> {
    let block = first_pem_block(pem)?;
    let label = pem_label(block)?;
    match label {
        "PRIVATE KEY" | "RSA PRIVATE KEY" if is_encrypted_pem(block) => Ok(PemKind::EncryptedPrivateKey),
        "PRIVATE KEY" | "RSA PRIVATE KEY" => Ok(PemKind::PrivateKey),
        "ENCRYPTED PRIVATE KEY" => Ok(PemKind::EncryptedPrivateKey),
        "PUBLIC KEY" | "RSA PUBLIC KEY" => Ok(PemKind::PublicKey),
        other => Err(KeyError::UnsupportedPem(other.to_string())),
    }
}

/// Reads a private key file.
pub fn read_private_key_file(path: &Path, passphrase: Option<&[u8]>) -> Result<PrivateKey, KeyError> {
    let pem = read_key_text(path)?;
    PrivateKey::from_pem(&pem, passphrase)
}

/// Reads a public key file (SubjectPublicKeyInfo or PKCS#1 RSA public key PEM).
pub fn read_public_key_file(path: &Path) -> Result<PublicKey, KeyError> {
    let pem = read_key_text(path)?;
    PublicKey::from_pem(&pem)
}

/// Writes a private key PEM with mode 0600; refuses an existing file unless `force`.
pub fn write_private_key_file(
    path: &Path,
    key: &PrivateKey,
    passphrase: Option<&[u8]>,
    force: bool,
) -> Result<(), KeyError> {
    let pem = key.to_pem(passphrase)?;
    write_key_file(path, pem.as_bytes(), 0o600, force)
}

/// Writes a public key PEM (mode 0644); refuses an existing file unless `force`.
pub fn write_public_key_file(path: &Path, key: &PublicKey, force: bool) -> Result<(), KeyError> {
    write_key_file(path, key.to_pem().as_bytes(), 0o644, force)
}

/// Largest key file we read: a 16384-bit RSA PEM is about 13 KiB.
pub const MAX_KEY_FILE_LEN: u64 = 64 * 1024;

/// Reads a key (or passphrase) file of at most [`MAX_KEY_FILE_LEN`] bytes into wiped-on-drop memory;
/// `Ok(None)` if it is longer. The limit is enforced while reading, not from the file's size, so a FIFO or a
/// device such as `/dev/zero` cannot make us read without end.
pub fn read_key_file_bytes(path: &Path) -> std::io::Result<Option<Zeroizing<Vec<u8>>>> {
    use std::io::Read;
    let file = std::fs::File::open(path)?;
    // Room for the limit plus one byte, so the Vec never reallocates (which would leave an unwiped copy);
    // reading one byte past the limit tells "exactly the limit" from "longer".
    let mut bytes = Zeroizing::new(Vec::with_capacity(MAX_KEY_FILE_LEN as usize + 1));
    file.take(MAX_KEY_FILE_LEN + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > MAX_KEY_FILE_LEN {
        return Ok(None);
    }
    Ok(Some(bytes))
}

fn read_key_text(path: &Path) -> Result<Zeroizing<String>, KeyError> {
    let bytes = read_key_file_bytes(path)
        .map_err(|source| KeyError::Io {
            path: path.to_path_buf(),
            source,
        })?
        .ok_or_else(|| {
            KeyError::NotPem(std::format!(
                "{}: more than {MAX_KEY_FILE_LEN} bytes is too large for a key file",
                path.display()
            ))
        })?;
    let text = std::str::from_utf8(&bytes)
        .map_err(|_| KeyError::NotPem(std::format!("{}: not text", path.display())))?;
    Ok(Zeroizing::new(text.to_string()))
}

fn write_key_file(path: &Path, data: &[u8], mode: u32, force: bool) -> Result<(), KeyError> {
    let io_err = |source| KeyError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut options = OpenOptions::new();
    options.write(true).mode(mode);
    if force {
        options.create(true).truncate(true);
    } else {
        options.create_new(true);
    }
    let mut file = options.open(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            KeyError::Exists(path.to_path_buf())
        } else {
            io_err(e)
        }
    })?;
    // With --force an existing file keeps its old mode through open(); a private key must still end up 0600.
    if force {
        use std::os::unix::fs::PermissionsExt;
        file.set_permissions(std::fs::Permissions::from_mode(mode))
            .map_err(io_err)?;
    }
    file.write_all(data).map_err(io_err)?;
    file.sync_all().map_err(io_err)
}

/// The first "-----BEGIN X-----" … "-----END X-----" block, so comments around it are ignored.
fn first_pem_block(pem: &str) -> Result<&str, KeyError> {
    let start = pem
        .find("-----BEGIN ")
        .ok_or_else(|| KeyError::NotPem("no -----BEGIN line".to_string()))?;
    let rest = &pem[start..];
    let end_marker = rest
        .find("-----END ")
        .ok_or_else(|| KeyError::NotPem("no -----END line".to_string()))?;
    let after_end = &rest[end_marker + "-----END ".len()..];
    let close = after_end
        .find("-----")
        .ok_or_else(|| KeyError::NotPem("unterminated -----END line".to_string()))?;
    let block_len = end_marker + "-----END ".len() + close + "-----".len();
    Ok(&rest[..block_len])
}

fn pem_label(block: &str) -> Result<&str, KeyError> {
    let line = block.lines().next().unwrap_or_default();
    line.strip_prefix("-----BEGIN ")
        .and_then(|l| l.trim_end().strip_suffix("-----"))
        .ok_or_else(|| KeyError::NotPem("bad -----BEGIN line".to_string()))
}

fn decode_pem(block: &str) -> Result<(String, Zeroizing<Vec<u8>>), KeyError> {
    // Strict RFC 7468 decoding wants the block to end with a line break.
    let mut text = Zeroizing::new(String::with_capacity(block.len() + 1));
    text.push_str(block);
    text.push('\n');
    let (label, der) =
        pkcs8::der::pem::decode_vec(text.as_bytes()).map_err(|e| KeyError::NotPem(e.to_string()))?;
    Ok((label.to_string(), Zeroizing::new(der)))
}

/// Lowercase hex (no dependency on a hex crate in the no_std-first crate).
pub fn hex_lower(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    out
}
