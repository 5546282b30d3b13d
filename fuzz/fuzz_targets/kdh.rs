//! Kernel dump header parser (v1-v4). The header is not canonical (bytes after a string's NUL, the unused
//! word and a wrong parity are not kept), so the round trip is checked from the first emit on:
//! parse(emit(parse(b))) == parse(b) with a good parity, and emit is then a fixed point.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sealdump_wire::kdh::{KDH_LEN, Packet, Repr, parity_ok};

fuzz_target!(|data: &[u8]| {
    let unchecked = Packet::new_unchecked(data);
    let _ = (unchecked.magic(), unchecked.version(), unchecked.panic_string(), unchecked.parity_ok());

    let Ok(repr) = Repr::parse(data) else { return };
    assert_eq!(repr.parity_ok, parity_ok(data));
    let mut out = [0u8; KDH_LEN];
    repr.emit(&mut out).expect("a parsed header fits its own layout");
    assert!(parity_ok(&out));
    let again = Repr::parse(&out).expect("an emitted header parses");
    assert_eq!(again, Repr { parity_ok: true, ..repr });
    let mut out2 = [0u8; KDH_LEN];
    again.emit(&mut out2).expect("emit");
    assert_eq!(out, out2);
});
