//! Ack parser: accepts exactly 4 bytes and re-emits them unchanged.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sealdump_wire::ack::{ACK_LEN, Repr};

fuzz_target!(|data: &[u8]| {
    match Repr::parse(data) {
        Ok(repr) => {
            assert_eq!(data.len(), ACK_LEN);
            let mut out = [0u8; ACK_LEN];
            repr.emit(&mut out);
            assert_eq!(&out[..], data, "parse -> emit must reproduce the ack");
        }
        Err(_) => assert_ne!(data.len(), ACK_LEN),
    }
});
