//! The handful of x86 instructions the kernel needs, each behind a small function.

use core::arch::asm;

/// Writes a byte to an I/O port.
pub fn outb(port: u16, value: u8) {
    // SAFETY: the kernel only touches ports of devices it owns (COM1, PIT, CMOS, isa-debug-exit); port I/O
    // cannot violate Rust memory safety.
    unsafe { asm!("out dx, al", in("dx") port, in("al") value, options(nomem, nostack, preserves_flags)) }
}

/// Reads a byte from an I/O port.
pub fn inb(port: u16) -> u8 {
    let value: u8;
    // SAFETY: as for `outb`; reading a port has no effect on Rust-visible memory.
    unsafe { asm!("in al, dx", out("al") value, in("dx") port, options(nomem, nostack, preserves_flags)) }
    value
}

/// Writes a 32-bit word to an I/O port.
pub fn outl(port: u16, value: u32) {
    // SAFETY: as for `outb`.
    unsafe { asm!("out dx, eax", in("dx") port, in("eax") value, options(nomem, nostack, preserves_flags)) }
}

/// Time-stamp counter.
pub fn rdtsc() -> u64 {
    let low: u32;
    let high: u32;
    // SAFETY: RDTSC only reads the counter (CR4.TSD is clear: we run in ring 0 anyway).
    unsafe { asm!("rdtsc", out("eax") low, out("edx") high, options(nomem, nostack, preserves_flags)) }
    (u64::from(high) << 32) | u64::from(low)
}

/// CPUID leaf `leaf`, sub-leaf 0: (eax, ebx, ecx, edx).
pub fn cpuid(leaf: u32) -> (u32, u32, u32, u32) {
    let result = core::arch::x86_64::__cpuid_count(leaf, 0);
    (result.eax, result.ebx, result.ecx, result.edx)
}

/// Whether the CPU advertises RDRAND (CPUID.1:ECX bit 30).
pub fn has_rdrand() -> bool {
    let (_, _, ecx, _) = cpuid(1);
    ecx & (1 << 30) != 0
}

/// One RDRAND output, retried a few times as Intel recommends; `None` if the DRNG keeps failing.
/// Call only when `has_rdrand()` is true.
pub fn rdrand64() -> Option<u64> {
    for _ in 0..16 {
        let value: u64;
        let ok: u8;
        // SAFETY: the caller checked CPUID for RDRAND, so the instruction exists; it only writes registers.
        unsafe {
            asm!("rdrand {v}", "setc {ok}", v = out(reg) value, ok = out(reg_byte) ok, options(nomem, nostack))
        }
        if ok != 0 {
            return Some(value);
        }
    }
    None
}

/// Stops the CPU for good (used when even the exit device is missing).
pub fn halt_forever() -> ! {
    loop {
        // SAFETY: CLI/HLT only stop this CPU.
        unsafe { asm!("cli", "hlt", options(nomem, nostack)) }
    }
}
