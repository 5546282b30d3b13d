//! Monotonic time from the TSC, calibrated once against PIT channel 2 (the PIT runs at 1 193 182 Hz on every PC
//! and QEMU machine; the TSC frequency is not reported by CPUID under TCG).

use crate::arch::{inb, outb, rdtsc};
use core::sync::atomic::{AtomicU64, Ordering};

const PIT_HZ: u64 = 1_193_182;
const CALIBRATION_TICKS: u64 = PIT_HZ / 50; // 20 ms
static TSC_PER_MS: AtomicU64 = AtomicU64::new(0);
static TSC_START: AtomicU64 = AtomicU64::new(0);

/// Measures the TSC frequency. Returns TSC ticks per millisecond.
pub fn calibrate() -> u64 {
    // Port 0x61: bit 0 gates PIT channel 2, bit 1 drives the speaker (keep it off), bit 5 reads OUT2.
    let control = inb(0x61) & !0x03;
    outb(0x61, control);
    outb(0x43, 0xb0); // channel 2, lobyte/hibyte, mode 0 (interrupt on terminal count), binary
    outb(0x42, (CALIBRATION_TICKS & 0xff) as u8);
    outb(0x42, (CALIBRATION_TICKS >> 8) as u8);
    outb(0x61, control | 0x01); // gate rising edge starts the count
    let start = rdtsc();
    let mut end = start;
    // OUT2 goes high at terminal count. Bound the wait (about 2 s at 5 GHz) in case there is no PIT.
    for _ in 0..200_000_000u64 {
        if inb(0x61) & 0x20 != 0 {
            end = rdtsc();
            break;
        }
    }
    outb(0x61, control);
    let elapsed = end.wrapping_sub(start);
    let per_ms = if elapsed == 0 {
        1_000_000
    } else {
        (elapsed / 20).max(1)
    }; // fallback: assume 1 GHz
    TSC_PER_MS.store(per_ms, Ordering::Relaxed);
    TSC_START.store(rdtsc(), Ordering::Relaxed);
    per_ms
}

/// Microseconds since `calibrate`.
pub fn now_micros() -> u64 {
    let per_ms = TSC_PER_MS.load(Ordering::Relaxed).max(1);
    let ticks = rdtsc().wrapping_sub(TSC_START.load(Ordering::Relaxed));
    // u128: ticks * 1000 overflows u64 after a few months at GHz rates; cheap enough here.
    (u128::from(ticks) * 1000 / u128::from(per_ms)) as u64
}
