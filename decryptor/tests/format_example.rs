//! The fixed-key example of `docs/format.md` (header and stream as hex dumps there) decrypts through the binary:
//! the decryptor agrees with the documented format, not only with the sealer it is built with.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;

const DOC: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/format.md");
/// RFC 7748 §6.1 "Bob", the example's recipient.
const BOB: &str = "5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb";

/// Bytes of the hex dump that follows `marker` in the document.
fn hex_dump(doc: &str, marker: &str) -> Vec<u8> {
    let start = doc
        .find(marker)
        .unwrap_or_else(|| panic!("{marker} not in docs/format.md"));
    let block = doc[start..].split("```").nth(1).unwrap();
    block
        .lines()
        .skip(1) // the "text" info string
        .flat_map(|line| {
            line.split_whitespace()
                .skip(1)
                .map(|b| u8::from_str_radix(b, 16).unwrap())
                .collect::<Vec<_>>()
        })
        .collect()
}

#[test]
fn documented_example_decrypts() {
    let doc = std::fs::read_to_string(DOC).unwrap();
    let header = hex_dump(&doc, "<!-- example:header -->");
    let stream = hex_dump(&doc, "<!-- example:stream -->");
    assert_eq!((header.len(), stream.len()), (242, 84));

    let dir = tempfile::tempdir().unwrap();
    let mut der = hex_bytes("302e020100300506032b656e04220420");
    der.extend(hex_bytes(BOB));
    let key = dir.path().join("bob.key");
    std::fs::write(&key, pem("PRIVATE KEY", &der)).unwrap();
    std::fs::write(dir.path().join("key.example.0"), &header).unwrap();
    let dump = dir.path().join("vmcore_encrypted.example.0");
    std::fs::write(&dump, &stream).unwrap();

    with_key(&key, &[], &dump).assert().success();
    assert_eq!(
        std::fs::read(dir.path().join("vmcore.example.0")).unwrap(),
        b"hello, sealed dump!\n"
    );

    let v = info_json(&key, &dump);
    assert_eq!(v["recipients"][0]["key_id"], "e80c4532355b0416");
    assert_eq!(v["dump_id"], "a0a1a2a3a4a5a6a7a8a9aaabacadaeaf");
    assert_eq!(v["time"], 1_767_225_600u64);
    assert_eq!(v["metadata"]["hostname"], "example");
    assert_eq!(v["metadata"]["kernel_version"], "FreeBSD 15.0");
    assert_eq!(v["metadata"]["panic_string"], "test");
    assert_eq!(v["chunks"], 1);
    assert_eq!(v["trailer"], "complete");
}
