//! Seal header parser: never panics on any bytes; a parsed header describes a prefix of the input, re-parses to
//! the same view from exactly that prefix, and every accessor and the MAC check with a wrong key are safe.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sealdump_crypto::DumpKey;
use sealdump_crypto::seal::{HeaderView, MAX_HEADER_LEN, MAX_RECIPIENTS};

fuzz_target!(|data: &[u8]| {
    let Ok(view) = HeaderView::parse(data) else { return };
    let len = view.header_len();
    assert!(
        len <= data.len() && len <= MAX_HEADER_LEN,
        "header_len {len} beyond the input"
    );
    assert_eq!(view.as_bytes(), &data[..len]);
    assert!((12..=20).contains(&view.chunk_shift()));
    assert_eq!(view.chunk_size(), 1usize << view.chunk_shift());
    let count = view.stanzas().count();
    assert_eq!(count, view.stanza_count());
    assert!((1..=MAX_RECIPIENTS).contains(&count));

    // The header is self-delimiting: the prefix alone parses to the same view.
    let again = HeaderView::parse(&data[..len]).expect("the header's own bytes parse");
    assert_eq!(again.header_len(), len);
    assert_eq!(again.dump_id(), view.dump_id());
    assert_eq!(again.time(), view.time());
    assert_eq!(again.aead(), view.aead());
    assert!(again.stanzas().eq(view.stanzas()), "stanzas differ on re-parse");
    for stanza in view.stanzas() {
        assert_eq!(view.stanzas_for(stanza.key_id).count() >= 1, true);
    }

    // A guessed dump key never authenticates a header found by the fuzzer.
    assert!(view.open(&DumpKey::from_bytes([0x42; 32])).is_err());
});
