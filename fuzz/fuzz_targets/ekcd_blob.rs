//! EKCD key blob parser: never panics; the blob without its padding re-emits byte for byte, and a padded
//! emit parses back to the same value.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sealdump_wire::ekcd::{FIXED_LEN, Packet, Repr};

fuzz_target!(|data: &[u8]| {
    let unchecked = Packet::new_unchecked(data);
    let _ = (unchecked.cipher(), unchecked.iv(), unchecked.encrypted_key());

    let Ok(repr) = Repr::parse(data) else { return };
    let unpadded = FIXED_LEN + repr.encrypted_key.len();
    let mut out = vec![0u8; repr.buffer_len(4096)];
    assert_eq!(repr.emit(&mut out[..unpadded], 0), Ok(unpadded));
    assert_eq!(&out[..unpadded], &data[..unpadded], "parse -> emit must reproduce the blob");
    assert_eq!(repr.emit(&mut out, 4096), Ok(out.len()));
    assert_eq!(out.len() % 4096, 0);
    assert!(out[unpadded..].iter().all(|&b| b == 0));
    assert_eq!(Repr::parse(&out), Ok(repr));
});
