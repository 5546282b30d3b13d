//! Regenerates the fixed-key example dump of `docs/format.md` and checks it byte for byte, and re-derives its keys
//! from the documented labels (an independent check of the key schedule and header MAC).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::FixedRng;
use sealdump_crypto::seal::{self, HeaderView, Metadata, Params, Recipient, Trailer, TrailerStatus};
use sealdump_crypto::{AeadId, DumpKey, X25519Secret, kdf};

const DOC: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/format.md");

/// RFC 7748 §6.1 Bob's private key: the example recipient.
const RECIPIENT_SECRET: &str = "5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb";
const PLAINTEXT: &[u8] = b"hello, sealed dump!\n";

struct Example {
    header: Vec<u8>,
    stream: Vec<u8>,
    values: Vec<(&'static str, String)>,
}

fn example() -> Example {
    let secret = X25519Secret::from_bytes(hex::decode(RECIPIENT_SECRET).unwrap().try_into().unwrap());
    let dk_bytes: [u8; 32] = core::array::from_fn(|i| i as u8);
    let dk = DumpKey::from_bytes(dk_bytes);
    let dump_id: [u8; 16] = core::array::from_fn(|i| 0xa0 + i as u8);
    let params = Params {
        aead: AeadId::ChaCha20Poly1305,
        chunk_shift: 12,
        compression: 0,
        time: 1_767_225_600,
    };
    let meta = Metadata {
        hostname: b"example",
        kernel_version: b"FreeBSD 15.0",
        panic_string: b"test",
        architecture: b"amd64",
        expected_length: PLAINTEXT.len() as u64,
        host_uuid: core::array::from_fn(|i| i as u8),
    };
    // HPKE's ephemeral key = DeriveKeyPair(32 bytes from the rng).
    let mut rng = FixedRng(vec![0x42; 32]);
    let mut header = vec![0u8; seal::MAX_HEADER_LEN];
    let (len, sealer) = seal::write_header(
        &mut header,
        &params,
        &dk,
        dump_id,
        &[Recipient::X25519 {
            public: secret.public_key(),
        }],
        &meta,
        &mut rng,
    )
    .unwrap();
    header.truncate(len);
    let mut stream = PLAINTEXT.to_vec();
    let tag = sealer.seal_chunk(0, &mut stream).unwrap();
    stream.extend_from_slice(&tag);
    let mut trailer = [0u8; seal::TRAILER_RECORD_LEN];
    let t = Trailer {
        total_len: PLAINTEXT.len() as u64,
        chunk_count: 1,
        status: TrailerStatus::Complete,
    };
    sealer.seal_trailer(&t, &mut trailer).unwrap();
    stream.extend_from_slice(&trailer);

    // Independent re-derivation from the documented labels.
    let okm = |info: &[u8]| {
        let mut k = [0u8; 32];
        kdf::hkdf_sha256(&dump_id, &dk_bytes, info, &mut k).unwrap();
        k
    };
    let k_hdr = okm(kdf::LABEL_HEADER_MAC);
    let k_meta = okm(kdf::LABEL_METADATA);
    let k_pay = okm(&[kdf::LABEL_PAYLOAD, &[0x00, 0x03, 12]].concat());
    let mac = kdf::hmac_sha256(&k_hdr, &[&header[..len - 32]]);
    assert_eq!(
        mac,
        header[len - 32..],
        "header MAC = HMAC-SHA256(K_hdr, header before the MAC)"
    );
    let aad = kdf::sha256(&header);
    let values = vec![
        ("recipient public key", hex::encode(secret.public_key())),
        ("recipient key id", hex::encode(secret.key_id())),
        ("K_hdr", hex::encode(k_hdr)),
        ("K_meta", hex::encode(k_meta)),
        ("K_pay", hex::encode(k_pay)),
        ("chunk AAD = SHA-256(header)", hex::encode(aad)),
    ];
    Example {
        header,
        stream,
        values,
    }
}

/// xxd-like lines: 4-hex-digit offset, two spaces, 16 bytes separated by spaces.
fn dump(bytes: &[u8]) -> String {
    bytes
        .chunks(16)
        .enumerate()
        .map(|(i, c)| {
            let hex: Vec<String> = c.iter().map(|b| format!("{b:02x}")).collect();
            format!("{:04x}  {}\n", i * 16, hex.join(" "))
        })
        .collect()
}

/// The fenced block that follows `marker` in the document.
fn block_after<'a>(doc: &'a str, marker: &str) -> &'a str {
    let start = doc
        .find(marker)
        .unwrap_or_else(|| panic!("marker {marker} missing in docs/format.md"));
    let rest = &doc[start..];
    let open = rest.find("```text\n").unwrap() + "```text\n".len();
    let close = rest[open..].find("```").unwrap();
    &rest[open..open + close]
}

fn render_values(values: &[(&str, String)]) -> String {
    values.iter().map(|(k, v)| format!("{k}: {v}\n")).collect()
}

#[test]
fn docs_example_matches() {
    let ex = example();
    let doc = std::fs::read_to_string(DOC).unwrap();
    assert_eq!(
        block_after(&doc, "<!-- example:header -->"),
        dump(&ex.header),
        "header hex in docs/format.md"
    );
    assert_eq!(
        block_after(&doc, "<!-- example:stream -->"),
        dump(&ex.stream),
        "stream hex in docs/format.md"
    );
    assert_eq!(
        block_after(&doc, "<!-- example:values -->"),
        render_values(&ex.values),
        "derived values"
    );

    // And the example opens with the documented private key.
    let secret = X25519Secret::from_bytes(hex::decode(RECIPIENT_SECRET).unwrap().try_into().unwrap());
    let view = HeaderView::parse(&ex.header).unwrap();
    let (_, opener) = view.open_x25519(&secret).unwrap();
    let (plain, trailer) = common::open_stream(&opener, &ex.stream).unwrap();
    assert_eq!(plain, PLAINTEXT);
    assert_eq!(trailer.status, TrailerStatus::Complete);
    println!(
        "docs/format.md example: {} header bytes, {} stream bytes verified",
        ex.header.len(),
        ex.stream.len()
    );
}

/// Prints the blocks for docs/format.md: `cargo test -p sealdump-crypto --test format_doc -- --ignored --nocapture`.
#[test]
#[ignore]
fn print_example() {
    let ex = example();
    println!(
        "HEADER\n{}STREAM\n{}VALUES\n{}",
        dump(&ex.header),
        dump(&ex.stream),
        render_values(&ex.values)
    );
}
