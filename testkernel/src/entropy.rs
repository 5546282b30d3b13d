//! Seed for the dump's randomness (dump key, dump id, HPKE ephemeral key): a ChaCha20 DRBG seeded from
//! SHA-256 over every source the machine has at panic time.
//!
//! - RDRAND, when CPUID advertises it (`-cpu max` or `-cpu host` under QEMU; most CPUs since 2012).
//! - Always, also: timing jitter (TSC deltas across 2048 port reads, each a trip through the platform or the
//!   hypervisor), the RTC date and time, the NIC's MAC address and the TSC itself.
//!
//! Without RDRAND the seed rests on that jitter alone: fine against an observer of the network (who sees none
//! of it), weak against someone who can replay the exact machine state. A real kernel should seed earlier, from
//! its own entropy pool, while it is healthy. The source used is printed on the console.

use chacha20::ChaCha20Rng;
use rand_core::SeedableRng;
use sha2::{Digest, Sha256};

use crate::arch::{has_rdrand, inb, rdrand64, rdtsc};
use crate::rtc;

/// Where the seed's strength comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// The CPU's DRNG, mixed with the jitter sources.
    Rdrand,
    /// Timing jitter and clock values only (no RDRAND on this CPU, or it failed).
    JitterOnly,
}

/// A seeded DRBG and where its seed came from. `extra` is mixed in (e.g. the MAC address).
pub fn rng(extra: &[u8]) -> (ChaCha20Rng, Source) {
    let mut hash = Sha256::new();
    hash.update(b"sealdump-testkernel entropy v1");
    let mut source = Source::JitterOnly;
    if has_rdrand() {
        let mut words = 0;
        for _ in 0..8 {
            if let Some(word) = rdrand64() {
                hash.update(word.to_le_bytes());
                words += 1;
            }
        }
        if words == 8 {
            source = Source::Rdrand;
        }
    }
    let mut previous = rdtsc();
    for _ in 0..2048 {
        // Port 0x61 (system control, PIT OUT2): harmless to read, and each read is a full I/O round trip.
        let status = inb(0x61);
        let now = rdtsc();
        hash.update(now.wrapping_sub(previous).to_le_bytes());
        hash.update([status]);
        previous = now;
    }
    hash.update(rtc::unix_time().to_le_bytes());
    hash.update(extra);
    hash.update(rdtsc().to_le_bytes());
    let seed: [u8; 32] = hash.finalize().into();
    (ChaCha20Rng::from_seed(seed), source)
}
