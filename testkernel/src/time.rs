//! Monotonic time. Preferred source: the HPET main counter (QEMU's `pc` and `q35` machines and most PCs have one
//! at 0xFED0_0000), read directly, so a host that deschedules the vCPU cannot skew it. Fallback: the TSC,
//! calibrated against PIT channel 2 (1 193 182 Hz on every PC); the calibration runs five times and keeps the
//! median, because a vCPU preempted in the middle of one run inflates that run (seen at 8x on a loaded host).

use crate::arch::{inb, outb, rdtsc};
use core::sync::atomic::{AtomicU64, Ordering};

const HPET_BASE: usize = 0xfed0_0000;
const HPET_CAPABILITIES: usize = 0x000;
const HPET_CONFIG: usize = 0x010;
const HPET_COUNTER: usize = 0x0f0;
/// The HPET specification caps the tick period at 100 ns.
const HPET_MAX_PERIOD_FS: u64 = 100_000_000;

const PIT_HZ: u64 = 1_193_182;
const CALIBRATION_TICKS: u64 = PIT_HZ / 50; // 20 ms

/// HPET femtoseconds per tick (0: no HPET, the TSC is used).
static HPET_PERIOD_FS: AtomicU64 = AtomicU64::new(0);
static HPET_START: AtomicU64 = AtomicU64::new(0);
static TSC_PER_MS: AtomicU64 = AtomicU64::new(0);
static TSC_START: AtomicU64 = AtomicU64::new(0);

fn hpet_read(offset: usize) -> u64 {
    // SAFETY: boot.rs identity-maps 0..4 GiB, so the HPET register block is mapped; a volatile 64-bit read of
    // an HPET register has no side effect (and reads all-ones or zero where no HPET decodes the address).
    unsafe { core::ptr::read_volatile((HPET_BASE + offset) as *const u64) }
}

fn hpet_write(offset: usize, value: u64) {
    // SAFETY: as in `hpet_read`; only called after the capabilities register showed a valid HPET.
    unsafe { core::ptr::write_volatile((HPET_BASE + offset) as *mut u64, value) }
}

/// The clock source in use, for the console.
#[derive(Debug, Clone, Copy)]
pub enum Source {
    /// HPET with this period in femtoseconds.
    Hpet(u64),
    /// TSC with this many ticks per millisecond.
    Tsc(u64),
}

/// Picks and starts the clock source.
pub fn init() -> Source {
    let period_fs = hpet_read(HPET_CAPABILITIES) >> 32;
    if period_fs != 0 && period_fs <= HPET_MAX_PERIOD_FS {
        hpet_write(HPET_CONFIG, hpet_read(HPET_CONFIG) | 1); // ENABLE_CNF: main counter runs
        HPET_START.store(hpet_read(HPET_COUNTER), Ordering::Relaxed);
        HPET_PERIOD_FS.store(period_fs, Ordering::Relaxed);
        return Source::Hpet(period_fs);
    }
    let mut samples = [0u64; 5];
    for sample in &mut samples {
        *sample = calibrate_tsc_once();
    }
    samples.sort_unstable();
    let per_ms = samples[2];
    TSC_PER_MS.store(per_ms, Ordering::Relaxed);
    TSC_START.store(rdtsc(), Ordering::Relaxed);
    Source::Tsc(per_ms)
}

/// One 20 ms PIT measurement of the TSC: ticks per millisecond.
fn calibrate_tsc_once() -> u64 {
    // Port 0x61: bit 0 gates PIT channel 2, bit 1 drives the speaker (keep it off), bit 5 reads OUT2.
    let control = inb(0x61) & !0x03;
    outb(0x61, control);
    outb(0x43, 0xb0); // channel 2, lobyte/hibyte, mode 0 (interrupt on terminal count), binary
    outb(0x42, (CALIBRATION_TICKS & 0xff) as u8);
    outb(0x42, (CALIBRATION_TICKS >> 8) as u8);
    outb(0x61, control | 0x01); // gate rising edge starts the count
    let start = rdtsc();
    let mut end = start;
    // OUT2 goes high at terminal count. Bound the wait in case there is no PIT.
    for _ in 0..200_000_000u64 {
        if inb(0x61) & 0x20 != 0 {
            end = rdtsc();
            break;
        }
    }
    outb(0x61, control);
    let elapsed = end.wrapping_sub(start);
    if elapsed == 0 {
        1_000_000
    } else {
        (elapsed / 20).max(1)
    } // no PIT: assume 1 GHz
}

/// Microseconds since `init`.
pub fn now_micros() -> u64 {
    let period_fs = HPET_PERIOD_FS.load(Ordering::Relaxed);
    if period_fs != 0 {
        let ticks = hpet_read(HPET_COUNTER).wrapping_sub(HPET_START.load(Ordering::Relaxed));
        return (u128::from(ticks) * u128::from(period_fs) / 1_000_000_000) as u64;
    }
    let per_ms = TSC_PER_MS.load(Ordering::Relaxed).max(1);
    let ticks = rdtsc().wrapping_sub(TSC_START.load(Ordering::Relaxed));
    // u128: ticks * 1000 overflows u64 after a few months at GHz rates; cheap enough here.
    (u128::from(ticks) * 1000 / u128::from(per_ms)) as u64
}
