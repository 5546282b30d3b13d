//! The deterministic memory pattern the kernel dumps. The host test recomputes it (tests/tests/qemu.rs) and
//! compares it with the decrypted dump, so the two definitions must stay identical.
//!
//! Memory is split into 4 KiB pages; page `p` (byte offset `o` of each little-endian 64-bit word) holds:
//! - `p % 5 == 0`: zeros (what most of a real dump looks like),
//! - `p % 5 == 1`: the word's own byte offset `o` (catches misplaced data),
//! - `p % 5 == 2`: `splitmix64(o ^ SEED)` (incompressible, catches any corrupted byte),
//! - `p % 5 == 3`: `0xffff_ffff_ffff_ffff`,
//! - `p % 5 == 4`: `splitmix64(p)` repeated over the page.

/// Seed of the incompressible pages.
pub const SEED: u64 = 0x5ea1_d0b0_0000_0001;
const PAGE: usize = 4096;

/// SplitMix64 finaliser (Steele, Lea, Flood 2014): cheap and well mixed.
pub const fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The 64-bit word at byte offset `offset` (a multiple of 8).
pub const fn word_at(offset: u64) -> u64 {
    let page = offset / PAGE as u64;
    match page % 5 {
        0 => 0,
        1 => offset,
        2 => splitmix64(offset ^ SEED),
        3 => u64::MAX,
        _ => splitmix64(page),
    }
}

/// Fills `memory` (whose first byte is offset 0) with the pattern.
pub fn fill(memory: &mut [u8]) {
    for (index, word) in memory.chunks_exact_mut(8).enumerate() {
        word.copy_from_slice(&word_at(index as u64 * 8).to_le_bytes());
    }
}
