//! The provisioning file (TOML, DESIGN §5): what a client needs to arm — receiver address(es), client port,
//! AEAD, chunk size and the recipients' public keys. It holds no secret.
//!
//! This module only needs `serde` and `toml` for the file itself, so a sender can reuse it for parsing;
//! [`Provisioning::public_keys`] adds the key check with `sealdump-crypto`.

use serde::{Deserialize, Serialize};

use sealdump_crypto::aead::AeadId;
use sealdump_crypto::keys::{PublicKey, hex_lower};

/// Current (and only) file version.
pub const VERSION: u32 = 1;
/// Default receiver (herald) port.
pub const DEFAULT_RECEIVER_PORT: u16 = 20023;
/// Default client port.
pub const DEFAULT_CLIENT_PORT: u16 = 20024;
/// Default chunk shift (64 KiB chunks).
pub const DEFAULT_CHUNK_SHIFT: u8 = 16;
/// Most recipients a sealed header holds.
pub const MAX_RECIPIENTS: usize = 8;
/// AEAD names as written in the file.
pub const AEAD_NAMES: [&str; 2] = ["chacha20-poly1305", "aes-256-gcm"];

/// A provisioning file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Provisioning {
    /// Format version (1).
    pub version: u32,
    /// Receiver herald addresses `HOST:PORT`; the first is used.
    pub receiver: Vec<String>,
    /// UDP port the client sends from.
    #[serde(default = "default_client_port")]
    pub client_port: u16,
    /// `chacha20-poly1305` or `aes-256-gcm`.
    #[serde(default = "default_aead")]
    pub aead: String,
    /// log2 of the plaintext chunk size, 12..=20.
    #[serde(default = "default_chunk_shift")]
    pub chunk_shift: u8,
    /// Client address/prefix for bare-metal clients, e.g. `192.0.2.20/24`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client: Option<String>,
    /// Gateway for bare-metal clients.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<String>,
    /// Recipients (`[[recipient]]` tables).
    #[serde(rename = "recipient", default)]
    pub recipients: Vec<ProvisionedRecipient>,
}

/// One `[[recipient]]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProvisionedRecipient {
    /// 16 hex digits: first 8 bytes of SHA-256 of the SubjectPublicKeyInfo DER.
    pub key_id: String,
    /// SubjectPublicKeyInfo PEM.
    pub public_key: String,
}

fn default_client_port() -> u16 {
    DEFAULT_CLIENT_PORT
}
fn default_aead() -> String {
    AEAD_NAMES[0].to_string()
}
fn default_chunk_shift() -> u8 {
    DEFAULT_CHUNK_SHIFT
}

/// Errors in a provisioning file or its inputs.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum ProvisionError {
    /// Not TOML, or not the expected keys and tables.
    #[error("not a valid provisioning file: {0}")]
    Syntax(String),
    /// A version we do not know.
    #[error("unsupported provisioning file version {0} (expected 1)")]
    Version(u32),
    /// No receiver address.
    #[error("no receiver address")]
    NoReceiver,
    /// A receiver address that is not `HOST[:PORT]`.
    #[error("bad receiver address \"{0}\" (expected HOST[:PORT])")]
    BadReceiver(String),
    /// An unknown AEAD name.
    #[error("unknown AEAD \"{0}\" (expected chacha20-poly1305 or aes-256-gcm)")]
    BadAead(String),
    /// A chunk shift outside 12..=20.
    #[error("chunk_shift {0} is out of range (12..=20)")]
    BadChunkShift(u8),
    /// No recipient, or more than a header holds.
    #[error("{0} recipients (expected 1 to 8)")]
    RecipientCount(usize),
    /// A recipient's public key does not parse.
    #[error("recipient {key_id}: {message}")]
    BadKey {
        /// The key id the file gives.
        key_id: String,
        /// Why the key is rejected.
        message: String,
    },
    /// A recipient's key id is not the id of its public key.
    #[error("recipient {key_id}: key_id does not match its public key (id {actual})")]
    KeyIdMismatch {
        /// The key id the file gives.
        key_id: String,
        /// The id of the public key.
        actual: String,
    },
    /// The same key listed twice.
    #[error("recipient {0} is listed twice")]
    Duplicate(String),
    /// A text value that cannot be written safely.
    #[error("bad value \"{0}\"")]
    BadValue(String),
}

impl Provisioning {
    /// A file for these receivers and recipients with the default settings.
    pub fn new(receivers: &[String], recipients: &[PublicKey]) -> Result<Self, ProvisionError> {
        let provisioning = Provisioning {
            version: VERSION,
            receiver: receivers
                .iter()
                .map(|r| normalize_receiver(r))
                .collect::<Result<_, _>>()?,
            client_port: DEFAULT_CLIENT_PORT,
            aead: default_aead(),
            chunk_shift: DEFAULT_CHUNK_SHIFT,
            client: None,
            gateway: None,
            recipients: recipients
                .iter()
                .map(|key| ProvisionedRecipient {
                    key_id: hex_lower(&key.key_id()),
                    public_key: key.to_pem(),
                })
                .collect(),
        };
        provisioning.validate()?;
        Ok(provisioning)
    }

    /// Parses and checks a file (including each recipient's key and key id).
    pub fn from_toml(text: &str) -> Result<Self, ProvisionError> {
        let parsed: Provisioning =
            toml::from_str(text).map_err(|e| ProvisionError::Syntax(e.message().replace('\n', " ")))?;
        parsed.validate()?;
        Ok(parsed)
    }

    /// Checks every field; [`Self::from_toml`] and [`Self::new`] call it.
    pub fn validate(&self) -> Result<(), ProvisionError> {
        if self.version != VERSION {
            return Err(ProvisionError::Version(self.version));
        }
        if self.receiver.is_empty() {
            return Err(ProvisionError::NoReceiver);
        }
        for r in &self.receiver {
            normalize_receiver(r)?;
        }
        self.aead_id()?;
        if !(12..=20).contains(&self.chunk_shift) {
            return Err(ProvisionError::BadChunkShift(self.chunk_shift));
        }
        for value in [&self.client, &self.gateway].into_iter().flatten() {
            check_plain_value(value)?;
        }
        self.public_keys()?;
        Ok(())
    }

    /// The AEAD the file names.
    pub fn aead_id(&self) -> Result<AeadId, ProvisionError> {
        aead_from_name(&self.aead)
    }

    /// The recipients' public keys, each checked against its key id; 1 to 8 distinct keys.
    pub fn public_keys(&self) -> Result<Vec<PublicKey>, ProvisionError> {
        if self.recipients.is_empty() || self.recipients.len() > MAX_RECIPIENTS {
            return Err(ProvisionError::RecipientCount(self.recipients.len()));
        }
        let mut keys: Vec<PublicKey> = Vec::with_capacity(self.recipients.len());
        for r in &self.recipients {
            let key = PublicKey::from_pem(&r.public_key).map_err(|e| ProvisionError::BadKey {
                key_id: r.key_id.clone(),
                message: e.to_string(),
            })?;
            let actual = hex_lower(&key.key_id());
            if !actual.eq_ignore_ascii_case(r.key_id.trim()) {
                return Err(ProvisionError::KeyIdMismatch {
                    key_id: r.key_id.clone(),
                    actual,
                });
            }
            if keys.contains(&key) {
                return Err(ProvisionError::Duplicate(actual));
            }
            keys.push(key);
        }
        Ok(keys)
    }

    /// The file's text, laid out as in DESIGN §5 (a comment header, then the settings, then one
    /// `[[recipient]]` table per key with its PEM in a multi-line string).
    pub fn to_toml(&self) -> Result<String, ProvisionError> {
        self.validate()?;
        let mut out = String::new();
        out.push_str("# sealdump provisioning file: holds no secret\n");
        out.push_str(&format!("version = {}\n", self.version));
        let receivers: Vec<String> = self.receiver.iter().map(|r| basic_string(r)).collect();
        out.push_str(&format!("receiver = [{}]\n", receivers.join(", ")));
        out.push_str(&format!("client_port = {}\n", self.client_port));
        out.push_str(&format!("aead = {}\n", basic_string(&self.aead)));
        out.push_str(&format!("chunk_shift = {}\n", self.chunk_shift));
        if let Some(client) = &self.client {
            out.push_str(&format!("client = {}\n", basic_string(client)));
        }
        if let Some(gateway) = &self.gateway {
            out.push_str(&format!("gateway = {}\n", basic_string(gateway)));
        }
        for r in &self.recipients {
            out.push_str("\n[[recipient]]\n");
            out.push_str(&format!("key_id = {}\n", basic_string(&r.key_id)));
            // PEM is base64, dashes, spaces and newlines: safe inside a multi-line basic string.
            if !r
                .public_key
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"+/=- \n".contains(&b))
            {
                return Err(ProvisionError::BadValue(r.key_id.clone()));
            }
            out.push_str(&format!(
                "public_key = \"\"\"\n{}\"\"\"\n",
                r.public_key.trim_end_matches('\n').to_string() + "\n"
            ));
        }
        // The writer and the reader must agree.
        debug_assert_eq!(
            toml::from_str::<Provisioning>(&out).ok().as_ref(),
            Some(&normalized_pem(self))
        );
        Ok(out)
    }
}

/// The same file with each PEM ending in exactly one newline, as `to_toml` writes it.
fn normalized_pem(p: &Provisioning) -> Provisioning {
    let mut p = p.clone();
    for r in &mut p.recipients {
        r.public_key = r.public_key.trim_end_matches('\n').to_string() + "\n";
    }
    p
}

/// Maps a file AEAD name to its id.
pub fn aead_from_name(name: &str) -> Result<AeadId, ProvisionError> {
    match name {
        "chacha20-poly1305" => Ok(AeadId::ChaCha20Poly1305),
        "aes-256-gcm" => Ok(AeadId::Aes256Gcm),
        other => Err(ProvisionError::BadAead(other.to_string())),
    }
}

/// `HOST[:PORT]` to `HOST:PORT` (port 20023 if absent). IPv6 literals are written `[addr]:port`; a bare
/// IPv6 address (two or more colons, no brackets) gets brackets and the default port.
pub fn normalize_receiver(spec: &str) -> Result<String, ProvisionError> {
    let bad = || ProvisionError::BadReceiver(spec.to_string());
    let spec = spec.trim();
    if spec.is_empty()
        || !spec
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b".-_:[]%".contains(&b))
    {
        return Err(bad());
    }
    let (host, port) = if let Some(rest) = spec.strip_prefix('[') {
        let (host, after) = rest.split_once(']').ok_or_else(bad)?;
        let port = match after {
            "" => DEFAULT_RECEIVER_PORT,
            p => p.strip_prefix(':').ok_or_else(bad)?.parse().map_err(|_| bad())?,
        };
        (format!("[{host}]"), port)
    } else if spec.matches(':').count() >= 2 {
        (format!("[{spec}]"), DEFAULT_RECEIVER_PORT)
    } else if let Some((host, port)) = spec.split_once(':') {
        (host.to_string(), port.parse().map_err(|_| bad())?)
    } else {
        (spec.to_string(), DEFAULT_RECEIVER_PORT)
    };
    if host.is_empty() || host == "[]" || port == 0 || (!host.starts_with('[') && host.contains(['[', ']'])) {
        return Err(bad());
    }
    Ok(format!("{host}:{port}"))
}

fn check_plain_value(value: &str) -> Result<(), ProvisionError> {
    if value.is_empty() || value.chars().any(|c| c.is_control() || c == '"' || c == '\\') {
        return Err(ProvisionError::BadValue(value.escape_debug().to_string()));
    }
    Ok(())
}

/// A TOML basic string; values are checked to hold no quote, backslash or control character.
fn basic_string(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    for c in value.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use sealdump_crypto::keys::PrivateKey;

    #[test]
    fn receivers_normalize() {
        for (input, want) in [
            ("192.0.2.10", "192.0.2.10:20023"),
            ("192.0.2.10:9999", "192.0.2.10:9999"),
            ("dumps.example.org", "dumps.example.org:20023"),
            ("::1", "[::1]:20023"),
            ("[2001:db8::1]:7", "[2001:db8::1]:7"),
            ("[fe80::1%eth0]", "[fe80::1%eth0]:20023"),
        ] {
            assert_eq!(normalize_receiver(input).unwrap(), want, "{input}");
        }
        for bad in [
            "",
            "host:",
            "host:0",
            "host:70000",
            "a b",
            "[::1",
            "[::1]x",
            "h\"x",
            ":20023",
        ] {
            assert!(normalize_receiver(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn round_trip_and_contract_layout() {
        let keys = [
            PrivateKey::generate_x25519().public_key(),
            PrivateKey::generate_x25519().public_key(),
        ];
        let mut p = Provisioning::new(&["192.0.2.10".to_string()], &keys).unwrap();
        p.client = Some("192.0.2.20/24".into());
        p.gateway = Some("192.0.2.1".into());
        let text = p.to_toml().unwrap();
        assert!(text.starts_with("# sealdump provisioning file: holds no secret\nversion = 1\n"));
        assert!(text.contains("receiver = [\"192.0.2.10:20023\"]\n"));
        assert!(text.contains("aead = \"chacha20-poly1305\"\nchunk_shift = 16\n"));
        assert!(text.contains("public_key = \"\"\"\n-----BEGIN PUBLIC KEY-----\n"));
        assert_eq!(text.matches("[[recipient]]").count(), 2);
        let back = Provisioning::from_toml(&text).unwrap();
        assert_eq!(back, p);
        assert_eq!(back.public_keys().unwrap(), keys);
    }

    #[test]
    fn parses_the_design_example_defaults() {
        let key = PrivateKey::generate_x25519().public_key();
        let text = format!(
            "version = 1\nreceiver = [\"192.0.2.10:20023\"]\n[[recipient]]\nkey_id = \"{}\"\npublic_key = \"\"\"{}\"\"\"\n",
            hex_lower(&key.key_id()),
            key.to_pem()
        );
        let p = Provisioning::from_toml(&text).unwrap();
        assert_eq!(
            (p.client_port, p.aead.as_str(), p.chunk_shift),
            (20024, "chacha20-poly1305", 16)
        );
        assert_eq!(p.aead_id().unwrap(), AeadId::ChaCha20Poly1305);
    }

    #[test]
    fn rejects_bad_files() {
        let key = PrivateKey::generate_x25519().public_key();
        let other = PrivateKey::generate_x25519().public_key();
        let good = Provisioning::new(&["h".to_string()], std::slice::from_ref(&key)).unwrap();
        let text = good.to_toml().unwrap();
        let cases: Vec<(String, &str)> = vec![
            (text.replace("version = 1", "version = 2"), "version 2"),
            (
                text.replace("receiver = [\"h:20023\"]", "receiver = []"),
                "no receiver",
            ),
            (text.replace("chacha20-poly1305", "rot13"), "unknown AEAD"),
            (
                text.replace("chunk_shift = 16", "chunk_shift = 30"),
                "out of range",
            ),
            (
                text.replace(&hex_lower(&key.key_id()), &hex_lower(&other.key_id())),
                "does not match",
            ),
            (
                text.replace("-----BEGIN PUBLIC KEY-----\n", "-----BEGIN PUBLIC KEY-----\nAAAA"),
                "recipient",
            ),
            (
                text.replace("version = 1", "version = \"one\""),
                "not a valid provisioning file",
            ),
            (
                text.split("[[recipient]]").next().unwrap().to_string(),
                "0 recipients",
            ),
        ];
        for (bad, want) in cases {
            let err = Provisioning::from_toml(&bad).unwrap_err().to_string();
            assert!(err.contains(want), "want {want:?}, got {err:?}");
            assert!(!err.contains('\n'), "{err}");
        }
        let dup = Provisioning::new(&["h".to_string()], &[key.clone(), key]).unwrap_err();
        assert!(matches!(dup, ProvisionError::Duplicate(_)));
    }
}
