//! The provisioning file (TOML, DESIGN §5, written by `sealdump-keytool provision`): what a client needs to arm.
//! It holds no secret.

use serde::Deserialize;

/// A parsed provisioning file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Provision {
    /// Format version; only 1 exists.
    pub version: u32,
    /// Receiver herald addresses `HOST[:PORT]`; the first is used.
    pub receiver: Vec<String>,
    /// Local UDP port of the client.
    #[serde(default)]
    pub client_port: Option<u16>,
    /// `chacha20-poly1305` or `aes-256-gcm`.
    #[serde(default)]
    pub aead: Option<String>,
    /// log2 of the chunk size.
    #[serde(default)]
    pub chunk_shift: Option<u8>,
    /// Client address for bare-metal clients (unused by the hosted sender).
    #[serde(default)]
    pub client: Option<String>,
    /// Gateway for bare-metal clients (unused by the hosted sender).
    #[serde(default)]
    pub gateway: Option<String>,
    /// Recipients' public keys.
    #[serde(default)]
    pub recipient: Vec<ProvisionRecipient>,
}

/// One `[[recipient]]` table.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProvisionRecipient {
    /// 16 hex digits: first 8 bytes of SHA-256 of the key's SubjectPublicKeyInfo DER; checked against the key.
    pub key_id: String,
    /// SubjectPublicKeyInfo PEM.
    pub public_key: String,
}

/// Errors reading a provisioning file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProvisionError {
    /// Not valid TOML or not the expected tables and keys.
    #[error("not a valid provisioning file: {0}")]
    Syntax(String),
    /// A version this sender does not know.
    #[error("unsupported provisioning file version {0} (this sender knows version 1)")]
    Version(u32),
    /// No receiver address.
    #[error("the provisioning file names no receiver")]
    NoReceiver,
}

impl Provision {
    /// Parses and checks the file's text.
    pub fn parse(text: &str) -> Result<Self, ProvisionError> {
        let parsed: Provision =
            toml::from_str(text).map_err(|e| ProvisionError::Syntax(e.message().replace('\n', " ")))?;
        if parsed.version != 1 {
            return Err(ProvisionError::Version(parsed.version));
        }
        if parsed.receiver.is_empty() {
            return Err(ProvisionError::NoReceiver);
        }
        Ok(parsed)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn parses_the_contract_example() {
        let text = r#"
# sealdump provisioning file: holds no secret
version = 1
receiver = ["192.0.2.10:20023"]
client_port = 20024
aead = "chacha20-poly1305"
chunk_shift = 16
[[recipient]]
key_id = "0123456789abcdef"
public_key = """-----BEGIN PUBLIC KEY-----
MCowBQYDK2VuAyEA
-----END PUBLIC KEY-----"""
"#;
        let p = Provision::parse(text).unwrap();
        assert_eq!(p.receiver, ["192.0.2.10:20023"]);
        assert_eq!(p.client_port, Some(20024));
        assert_eq!(p.chunk_shift, Some(16));
        assert_eq!(p.recipient.len(), 1);
        assert_eq!(p.recipient[0].key_id, "0123456789abcdef");
    }

    #[test]
    fn rejects_bad_files() {
        assert!(matches!(
            Provision::parse("version = 2\nreceiver = [\"a\"]"),
            Err(ProvisionError::Version(2))
        ));
        assert!(matches!(
            Provision::parse("version = 1\nreceiver = []"),
            Err(ProvisionError::NoReceiver)
        ));
        assert!(matches!(
            Provision::parse("version = 1\nreceiver = [\"a\"]\nbogus = 1"),
            Err(ProvisionError::Syntax(_))
        ));
        assert!(matches!(
            Provision::parse("not toml ["),
            Err(ProvisionError::Syntax(_))
        ));
    }
}
