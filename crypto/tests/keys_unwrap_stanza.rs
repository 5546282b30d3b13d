//! `PrivateKey::unwrap_stanza` on real sealed headers: X25519 (HPKE) and RSA (pre-wrapped OAEP) recipients.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use sealdump_crypto::keys::{KeyError, PrivateKey};
use sealdump_crypto::rsa_wrap::prewrap_pool;
use sealdump_crypto::seal::{self, HeaderView, Metadata, Params, Recipient, StanzaKind};

#[test]
fn unwrap_stanza_opens_the_header_for_each_recipient() {
    let x = PrivateKey::generate_x25519();
    let r = PrivateKey::generate_rsa(3072).unwrap();
    let (x_pub, r_pub) = (x.public_key(), r.public_key());
    let mut pool = prewrap_pool(std::slice::from_ref(&r_pub), 1).unwrap();
    let entry = pool.pop().unwrap();
    let (kind, key_id, body) = &entry.stanzas[0];

    let sealdump_crypto::keys::PublicKey::X25519(x_raw) = x_pub else {
        unreachable!()
    };
    let recipients = [
        Recipient::X25519 { public: x_raw },
        Recipient::Prewrapped {
            kind: *kind,
            key_id: *key_id,
            body,
        },
    ];
    let metadata = Metadata {
        hostname: b"host",
        kernel_version: b"14.2",
        panic_string: b"test",
        architecture: b"amd64",
        expected_length: 0,
        host_uuid: [0; 16],
    };
    let mut buf = [0u8; seal::MAX_HEADER_LEN];
    let (len, _sealer) = seal::write_header(
        &mut buf,
        &Params::default(),
        &entry.dk,
        [7; 16],
        &recipients,
        &metadata,
        &mut rand::rng(),
    )
    .unwrap();
    let header = HeaderView::parse(&buf[..len]).unwrap();
    let stanzas: Vec<_> = header.stanzas().collect();
    assert_eq!(stanzas.len(), 2);

    for (key, public) in [(&x, &x_pub), (&r, &r_pub)] {
        let stanza = stanzas.iter().find(|s| s.key_id == public.key_id()).unwrap();
        assert_eq!(stanza.kind, public.stanza_kind());
        let dk = key.unwrap_stanza(stanza, &header).unwrap();
        assert_eq!(dk.as_bytes(), entry.dk.as_bytes());
        header.open(&dk).unwrap();
        // The other key's stanza is refused.
        let other = stanzas.iter().find(|s| s.key_id != public.key_id()).unwrap();
        assert!(matches!(
            key.unwrap_stanza(other, &header),
            Err(KeyError::WrongKeyType)
        ));
    }

    // A different key of the right type cannot unwrap.
    let stranger = PrivateKey::generate_x25519();
    let x_stanza = stanzas.iter().find(|s| s.kind == StanzaKind::X25519Hpke).unwrap();
    assert!(matches!(
        stranger.unwrap_stanza(x_stanza, &header),
        Err(KeyError::Unwrap)
    ));
}
