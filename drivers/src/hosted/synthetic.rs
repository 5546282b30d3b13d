//! A deterministic, realistic-looking synthetic kernel dump for demos, tests and benchmarks.
//!
//! Real dumps are mostly zero pages, machine code, kernel data (pointers, small integers) and text (the message
//! buffer, strings). A stream of random bytes would look nothing like that (and would hide, e.g., a future
//! compression stage's behaviour), so the generator mixes those page kinds. The first 4 KiB block holds a FreeBSD
//! v4 kernel dump header, as on a dump device.

use std::io::{self, Write};

use sealdump_wire::kdh;

/// Page size of the generated dump.
pub const PAGE: usize = 4096;

/// What the synthetic dump claims to be, written into its kernel dump header.
#[derive(Debug, Clone)]
pub struct SyntheticSpec {
    /// Total length of the file in bytes (rounded up to whole pages, at least 2 pages).
    pub total_len: u64,
    /// Seed of the page mix; the same seed and length give the same bytes.
    pub seed: u64,
    /// Host name in the header.
    pub hostname: String,
    /// Seconds since the epoch in the header.
    pub dump_time: u64,
}

impl Default for SyntheticSpec {
    fn default() -> Self {
        Self {
            total_len: 256 << 20,
            seed: 0x5ea1_d0a9,
            hostname: "demo-target.example".into(),
            dump_time: 1_790_000_000,
        }
    }
}

/// SplitMix64: tiny, fast and fully specified, so the dump is identical on every platform and crate version.
#[derive(Debug, Clone)]
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

const PANIC: &str = "Fatal trap 12: page fault while in kernel mode";
const VERSION: &str = "FreeBSD 15.0-RELEASE releng/15.0-n280000-0123456789ab GENERIC amd64\n";

const WORDS: &[&str] = &[
    "kernel",
    "vm_fault",
    "pmap_enter",
    "mtx_lock",
    "em0",
    "link",
    "state",
    "changed",
    "to",
    "UP",
    "DOWN",
    "pid",
    "uid",
    "exited",
    "on",
    "signal",
    "11",
    "(core",
    "dumped)",
    "WARNING:",
    "attempt",
    "to",
    "domain_add",
    "ada0:",
    "<Samsung",
    "SSD",
    "860>",
    "ACS-4",
    "ATA",
    "SATA",
    "3.x",
    "device",
    "Trying",
    "to",
    "mount",
    "root",
    "from",
    "zfs:zroot/ROOT/default",
    "[]...",
    "lock",
    "order",
    "reversal:",
    "1st",
    "2nd",
    "vnode",
    "ufs",
    "sleepq",
    "callout",
    "softclock",
    "taskqueue",
    "GEOM",
    "nvme0:",
    "tcp",
    "in_pcb",
    "sysctl",
    "witness",
    "panic:",
];

/// x86-64 instruction byte patterns; `0xff` in a pattern stands for a random byte (immediates, displacements).
const OPS: &[&[u8]] = &[
    &[0x55],                                     // push rbp
    &[0x48, 0x89, 0xe5],                         // mov rbp, rsp
    &[0x41, 0x57],                               // push r15
    &[0x41, 0x56],                               // push r14
    &[0x53],                                     // push rbx
    &[0x48, 0x83, 0xec, 0xff],                   // sub rsp, imm8
    &[0x48, 0x8b, 0x45, 0xff],                   // mov rax, [rbp+d8]
    &[0x48, 0x89, 0x7d, 0xff],                   // mov [rbp+d8], rdi
    &[0xe8, 0xff, 0xff, 0xff, 0xff],             // call rel32
    &[0x85, 0xc0],                               // test eax, eax
    &[0x74, 0xff],                               // je rel8
    &[0x75, 0xff],                               // jne rel8
    &[0x0f, 0x84, 0xff, 0xff, 0x00, 0x00],       // je rel32
    &[0x31, 0xc0],                               // xor eax, eax
    &[0x48, 0x8d, 0x3d, 0xff, 0xff, 0xff, 0x00], // lea rdi, [rip+d32]
    &[0x5b],                                     // pop rbx
    &[0x5d],                                     // pop rbp
    &[0xc3],                                     // ret
    &[0xcc, 0xcc, 0xcc],                         // int3 padding
    &[0x0f, 0x1f, 0x44, 0x00, 0x00],             // nopl
];

fn fill_code(rng: &mut SplitMix64, page: &mut [u8]) {
    let mut i = 0;
    while i < page.len() {
        let op = OPS[rng.below(OPS.len() as u64) as usize];
        for &b in op {
            if i == page.len() {
                return;
            }
            page[i] = if b == 0xff { rng.next() as u8 } else { b };
            i += 1;
        }
    }
}

fn fill_text(rng: &mut SplitMix64, page: &mut [u8]) {
    let mut i = 0;
    let mut line_words = 0;
    while i < page.len() {
        let word = WORDS[rng.below(WORDS.len() as u64) as usize].as_bytes();
        line_words += 1;
        let sep: &[u8] = if line_words > 6 + rng.below(6) {
            line_words = 0;
            b"\n"
        } else {
            b" "
        };
        for &b in word.iter().chain(sep) {
            if i == page.len() {
                return;
            }
            page[i] = b;
            i += 1;
        }
    }
}

fn fill_data(rng: &mut SplitMix64, page: &mut [u8]) {
    for word in page.chunks_exact_mut(8) {
        let value = match rng.below(4) {
            // kernel direct-map pointer, 8-aligned
            0 => 0xffff_f800_0000_0000 | (rng.below(1 << 36) & !7),
            1 => rng.below(256),
            2 => 0,
            _ => rng.next(),
        };
        word.copy_from_slice(&value.to_le_bytes());
    }
}

/// The 4 KiB first block: a v4 `kerneldumpheader` followed by zeros.
fn header_block(spec: &SyntheticSpec, dump_length: u64) -> io::Result<[u8; PAGE]> {
    let repr = kdh::Repr {
        magic: kdh::Magic::Kernel,
        architecture: b"amd64",
        version: 4,
        architecture_version: 2,
        dump_length,
        dump_time: spec.dump_time,
        dump_key_size: 0,
        block_size: PAGE as u32,
        hostname: spec.hostname.as_bytes(),
        version_string: VERSION.as_bytes(),
        panic_string: PANIC.as_bytes(),
        compression: 0,
        dump_extent: dump_length,
        parity_ok: true,
    };
    let mut hdr = [0u8; kdh::KDH_LEN];
    repr.emit(&mut hdr)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, format!("dump header: {e}")))?;
    let mut block = [0u8; PAGE];
    block[..kdh::KDH_LEN].copy_from_slice(&hdr);
    Ok(block)
}

/// Writes the synthetic dump to `out`; returns the number of bytes written.
///
/// Page mix: about 40 % zero, 25 % code, 20 % kernel data, 15 % text; the last page is a message buffer ending
/// in the panic message. Roughly 1 GB/s in a release build.
pub fn write_synthetic<W: Write>(spec: &SyntheticSpec, mut out: W) -> io::Result<u64> {
    let pages = spec.total_len.div_ceil(PAGE as u64).max(2);
    let total = pages * PAGE as u64;
    out.write_all(&header_block(spec, total - PAGE as u64)?)?;
    let mut rng = SplitMix64(spec.seed);
    // Write in 1 MiB batches: few syscalls, little memory.
    let mut batch = vec![0u8; 256 * PAGE];
    let mut remaining = pages - 1;
    while remaining > 0 {
        let n = remaining.min(256) as usize;
        for (i, page) in batch.chunks_exact_mut(PAGE).take(n).enumerate() {
            let last = remaining == n as u64 && i == n - 1;
            if last {
                fill_text(&mut rng, page);
                let msg = format!("\npanic: {PANIC}\ncpuid = 1\ntime = {}\n", spec.dump_time);
                let start = PAGE - msg.len();
                page[start..].copy_from_slice(msg.as_bytes());
                continue;
            }
            match rng.below(20) {
                0..8 => page.fill(0),
                8..13 => fill_code(&mut rng, page),
                13..17 => fill_data(&mut rng, page),
                _ => fill_text(&mut rng, page),
            }
        }
        out.write_all(&batch[..n * PAGE])?;
        remaining -= n as u64;
    }
    out.flush()?;
    Ok(total)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn deterministic_with_header_and_mixed_pages() {
        let spec = SyntheticSpec {
            total_len: 1 << 20,
            ..SyntheticSpec::default()
        };
        let mut a = Vec::new();
        let mut b = Vec::new();
        assert_eq!(write_synthetic(&spec, &mut a).unwrap(), 1 << 20);
        write_synthetic(&spec, &mut b).unwrap();
        assert_eq!(a, b);
        assert_eq!(a.len(), 1 << 20);

        let hdr = kdh::Repr::parse(&a[..kdh::KDH_LEN]).unwrap();
        assert!(hdr.parity_ok);
        assert_eq!(hdr.magic, kdh::Magic::Kernel);
        assert_eq!(hdr.dump_length, (1 << 20) - PAGE as u64);
        assert_eq!(hdr.hostname, b"demo-target.example");

        let pages: Vec<&[u8]> = a.chunks_exact(PAGE).skip(1).collect();
        let zero = pages.iter().filter(|p| p.iter().all(|&x| x == 0)).count();
        let text = pages
            .iter()
            .filter(|p| p.iter().all(|&x| x == b'\n' || (0x20..0x7f).contains(&x)))
            .count();
        assert!(
            zero > pages.len() / 4 && zero < pages.len() * 3 / 5,
            "zero pages: {zero}/{}",
            pages.len()
        );
        assert!(text > pages.len() / 20, "text pages: {text}/{}", pages.len());
        assert!(a.ends_with(b"time = 1790000000\n"));

        let other = SyntheticSpec { seed: 1, ..spec };
        let mut c = Vec::new();
        write_synthetic(&other, &mut c).unwrap();
        assert_ne!(a, c);
    }
}
