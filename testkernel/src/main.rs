//! sealdump test kernel: boots (PVH), fills memory with a known pattern, panics, and from the panic handler
//! sends that memory as a sealed netdump through client-core over virtio-net. See docs/baremetal.md.
#![no_std]
#![no_main]

mod arch;
mod boot;
mod cell;
mod dump;
mod entropy;
mod exit;
mod net;
mod pattern;
mod rtc;
mod serial;
mod time;

use core::fmt::Write as _;
use core::panic::PanicInfo;
use core::sync::atomic::{AtomicBool, AtomicPtr, AtomicUsize, Ordering};
use exit::{ExitCode, exit};

mod config {
    include!(concat!(env!("OUT_DIR"), "/config.rs"));
}

/// The memory the kernel dumps (in .bss, so it is part of the image's address range).
#[repr(C, align(4096))]
struct DumpMemory([u8; config::DUMP_BYTES]);
static DUMP_MEMORY: cell::TakeOnce<DumpMemory> = cell::TakeOnce::new(DumpMemory([0; config::DUMP_BYTES]));

/// The filled memory, published read-only for the panic handler.
static FILLED_PTR: AtomicPtr<u8> = AtomicPtr::new(core::ptr::null_mut());
static FILLED_LEN: AtomicUsize = AtomicUsize::new(0);

fn filled_memory() -> Option<&'static [u8]> {
    let ptr = FILLED_PTR.load(Ordering::Acquire);
    if ptr.is_null() {
        return None;
    }
    // SAFETY: FILLED_PTR/FILLED_LEN were stored from a `&'static [u8]` (the filler's exclusive borrow was
    // downgraded to a shared one before publishing), so the slice is valid and never written again.
    Some(unsafe { core::slice::from_raw_parts(ptr, FILLED_LEN.load(Ordering::Acquire)) })
}

#[unsafe(no_mangle)]
extern "C" fn kernel_main(start_info: u64) -> ! {
    serial::init();
    println!("sealdump-testkernel: booted (PVH start info at {start_info:#x})");
    match time::init() {
        time::Source::Hpet(period_fs) => println!("sealdump-testkernel: clock HPET ({period_fs} fs/tick)"),
        time::Source::Tsc(per_ms) => {
            println!("sealdump-testkernel: clock TSC ({per_ms} kHz, PIT-calibrated)")
        }
    }
    let Some(DumpMemory(memory)) = DUMP_MEMORY.take() else {
        exit(ExitCode::NestedPanic)
    };
    let start = time::now_micros();
    pattern::fill(memory);
    println!(
        "sealdump-testkernel: filled {} MiB at {:p} in {} ms",
        memory.len() >> 20,
        memory.as_ptr(),
        (time::now_micros() - start) / 1000
    );
    let memory: &'static [u8] = memory;
    FILLED_LEN.store(memory.len(), Ordering::Release);
    FILLED_PTR.store(memory.as_ptr().cast_mut(), Ordering::Release);
    panic!("deliberate panic to test the dump path");
}

/// The panic message, formatted into a fixed buffer (truncated) for the dump's sealed metadata.
struct PanicString {
    bytes: [u8; 200],
    len: usize,
}

impl Default for PanicString {
    fn default() -> Self {
        Self {
            bytes: [0; 200],
            len: 0,
        }
    }
}

impl PanicString {
    fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

impl core::fmt::Write for PanicString {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        let room = self.bytes.len() - self.len;
        let n = s.len().min(room);
        self.bytes[self.len..self.len + n].copy_from_slice(&s.as_bytes()[..n]);
        self.len += n;
        Ok(())
    }
}

static PANICKING: AtomicBool = AtomicBool::new(false);

#[panic_handler]
fn panic(info: &PanicInfo<'_>) -> ! {
    if PANICKING.swap(true, Ordering::AcqRel) {
        println!("sealdump-testkernel: nested panic: {}", info.message());
        exit(ExitCode::NestedPanic);
    }
    println!("sealdump-testkernel: panic: {}", info.message());
    let mut panic_string = PanicString::default();
    let _ = write!(panic_string, "{}", info.message());
    let Some(memory) = filled_memory() else {
        println!("sealdump-testkernel: panicked before the memory was filled");
        exit(ExitCode::NoPanic);
    };
    if option_env!("SEALDUMP_TK_PROBE_ONLY").is_some() {
        let result = net::bring_up(arch::rdtsc()).and_then(|mut network| net::probe(&mut network));
        exit(result.err().unwrap_or(ExitCode::Success));
    }
    exit(dump::dump(memory, panic_string.as_bytes()))
}
