//! Exit status through QEMU's `isa-debug-exit` device (iobase 0xf4, iosize 4): writing `v` makes QEMU exit with
//! status `2 * v + 1`, so every status the host sees is odd and 1..=255 is reachable from v = 0..=127.

use crate::arch::{halt_forever, outl};

const DEBUG_EXIT_PORT: u16 = 0xf4;

/// Why the kernel stopped. The host sees `2 * code + 1` (the value in the comment).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum ExitCode {
    /// The dump was sent and the receiver acknowledged the end (33).
    Success = 0x10,
    /// No virtio-net device on PCI bus 0 (35).
    NoNic = 0x11,
    /// The virtio-net device did not initialise (37).
    NicInit = 0x12,
    /// The network never answered (ARP/herald/acks), or client-core gave up (39).
    NetworkFailed = 0x13,
    /// client-core refused its configuration or buffers (41).
    ClientInit = 0x14,
    /// A second panic while dumping (43).
    NestedPanic = 0x15,
    /// The panic came before the dump memory was filled (45).
    NoPanic = 0x16,
}

/// Ends the QEMU run with `code`.
pub fn exit(code: ExitCode) -> ! {
    outl(DEBUG_EXIT_PORT, code as u32);
    // Without the exit device the write does nothing: stop here.
    halt_forever()
}
