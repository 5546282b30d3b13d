//! TEMPORARY stand-in for `sealdump_crypto::keys` / `rsa_wrap` until they land: every key read fails.
#![allow(missing_docs, dead_code, missing_debug_implementations)]
pub mod keys {
    #[derive(Debug)]
    pub enum PublicKey {
        X25519([u8; 32]),
        Rsa(()),
    }
    impl PublicKey {
        pub fn key_id(&self) -> [u8; 8] {
            [0; 8]
        }
        pub fn from_pem(_: &str) -> Result<Self, String> {
            Err(String::new())
        }
    }
    pub fn read_public_key_file(_: &std::path::Path) -> Result<PublicKey, String> {
        Err(String::new())
    }
}
pub mod rsa_wrap {
    use super::keys::PublicKey;
    pub struct PrewrappedKey {
        pub dk: sealdump_crypto::DumpKey,
        pub stanzas: Vec<(sealdump_client_core::seal::StanzaKind, [u8; 8], Vec<u8>)>,
    }
    pub fn prewrap_pool(_: &[PublicKey], _: usize) -> Result<Vec<PrewrappedKey>, String> {
        Err(String::new())
    }
}
