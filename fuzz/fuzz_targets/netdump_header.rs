//! Netdump message parser: never panics; a parsed message re-emits to exactly the same bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sealdump_wire::netdump::{Packet, Repr};

fuzz_target!(|data: &[u8]| {
    // Accessors of an unchecked packet must not panic on any buffer either.
    let unchecked = Packet::new_unchecked(data);
    let _ = (unchecked.msg_type(), unchecked.seqno(), unchecked.offset(), unchecked.payload());

    let Ok(repr) = Repr::parse_bytes(data) else { return };
    let _ = repr.herald_path();
    assert_eq!(repr.buffer_len(), data.len());
    let mut out = vec![0u8; repr.buffer_len()];
    repr.emit(&mut Packet::new_unchecked(&mut out[..]));
    assert_eq!(out, data, "parse -> emit must reproduce the datagram");
});
