//! sealdump test kernel: boots (PVH), fills memory with a known pattern, panics, and from the panic handler
//! sends that memory as a sealed netdump through client-core over virtio-net. See docs/baremetal.md.
#![no_std]
#![no_main]

mod arch;
mod boot;
mod cell;
mod exit;
mod net;
mod pattern;
mod serial;
mod time;

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
    let tsc_per_ms = time::calibrate();
    println!("sealdump-testkernel: TSC {} kHz", tsc_per_ms);
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

static PANICKING: AtomicBool = AtomicBool::new(false);

#[panic_handler]
fn panic(info: &PanicInfo<'_>) -> ! {
    if PANICKING.swap(true, Ordering::AcqRel) {
        println!("sealdump-testkernel: nested panic: {}", info.message());
        exit(ExitCode::NestedPanic);
    }
    println!("sealdump-testkernel: panic: {}", info.message());
    match filled_memory() {
        Some(memory) => println!("sealdump-testkernel: would dump {} bytes", memory.len()),
        None => println!("sealdump-testkernel: panicked before the memory was filled"),
    }
    let result = net::bring_up(time::now_micros()).and_then(|mut network| net::probe(&mut network));
    exit(match result {
        Ok(()) => ExitCode::Success,
        Err(code) => code,
    })
}
