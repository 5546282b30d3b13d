//! The committed fuzz seeds (fuzz/corpus/<target>/seed-*) must stay valid inputs, so the fuzzers start from
//! inputs that reach deep into the parsers. Regenerate them with fuzz/make_seeds.py after a format change.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;

use sealdump_wire::{ack, ekcd, kdh, netdump};

fn seeds(target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../fuzz/corpus")).join(target);
    let mut out: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with("seed-"))
        .map(|p| (p.display().to_string(), std::fs::read(&p).unwrap()))
        .collect();
    out.sort();
    assert!(out.len() >= 2, "seeds missing in {}", dir.display());
    out
}

#[test]
fn netdump_seeds_parse_and_round_trip() {
    for (name, data) in seeds("netdump_header") {
        let repr = netdump::Repr::parse_bytes(&data).unwrap_or_else(|e| panic!("{name}: {e}"));
        let mut out = vec![0u8; repr.buffer_len()];
        repr.emit(&mut netdump::Packet::new_unchecked(&mut out[..]));
        assert_eq!(out, data, "{name}");
        if repr.msg_type == netdump::MessageType::Kdh {
            assert!(kdh::Repr::parse(repr.payload).unwrap().parity_ok, "{name}");
        }
    }
}

#[test]
fn ack_seeds_parse() {
    for (name, data) in seeds("ack") {
        let repr = ack::Repr::parse(&data).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(repr.to_bytes()[..], data[..], "{name}");
    }
}

#[test]
fn kdh_seeds_parse_with_good_parity() {
    for (name, data) in seeds("kdh") {
        let repr = kdh::Repr::parse(&data).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(repr.parity_ok, "{name}");
        let mut out = [0u8; kdh::KDH_LEN];
        repr.emit(&mut out).unwrap();
        assert_eq!(out[..], data[..], "{name}: the seeds are canonical headers");
    }
}

#[test]
fn ekcd_seeds_parse() {
    for (name, data) in seeds("ekcd_blob") {
        let repr = ekcd::Repr::parse(&data).unwrap_or_else(|e| panic!("{name}: {e}"));
        let mut out = vec![0u8; data.len()];
        // Every seed is padded to a block size that divides its length.
        let block = data.len();
        assert_eq!(repr.emit(&mut out, block), Ok(data.len()), "{name}");
        assert_eq!(out, data, "{name}");
    }
}
