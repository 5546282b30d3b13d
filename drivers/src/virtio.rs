//! virtio-net for bare-metal kernels, without allocation: a smoltcp [`phy::Device`] over
//! `virtio_drivers::device::net::VirtIONetRaw`, with its queues in a static DMA arena and its packet buffers
//! in storage the caller lends (normally a `static`).
//!
//! It meets the panic-time driver contract of `docs/drivers.md`: polling only (interrupts stay masked), every
//! buffer allocated before the first packet, no heap, no locks that a panicking CPU could already hold.
//!
//! Assumptions (why [`VirtioNet::new`] is `unsafe`): the kernel runs in ring 0 with the memory identity-mapped
//! (physical address == virtual address) and no IOMMU, which is how the test kernel (`testkernel/`) and
//! most minimal kernels run. A kernel with another memory map would write its own [`Hal`].
#![allow(unsafe_code)]

use core::cell::{RefCell, UnsafeCell};
use core::ptr::NonNull;
use core::sync::atomic::{AtomicUsize, Ordering};

use smoltcp::phy::{self, DeviceCapabilities, Medium};
use smoltcp::time::Instant;
use virtio_drivers::device::net::VirtIONetRaw;
use virtio_drivers::transport::DeviceType;
use virtio_drivers::transport::pci::bus::{Command, ConfigurationAccess, DeviceFunction};
use virtio_drivers::transport::pci::{PciTransport, virtio_device_type};
use virtio_drivers::{BufferDirection, Hal, PAGE_SIZE, PhysAddr};

/// Re-exported so that kernels need no direct dependency on `virtio-drivers`.
pub use virtio_drivers::transport::pci::bus::{
    ConfigurationAccess as PciConfigurationAccess, DeviceFunction as PciDeviceFunction, PciRoot,
};

/// Descriptors per virtqueue, and packet buffers per direction.
pub const QUEUE_SIZE: usize = 64;
/// Bytes per packet buffer: a virtio-net header (10 or 12 bytes) plus a 1514-byte Ethernet frame, rounded up.
/// virtio-drivers requires at least 1526 for receive buffers.
pub const BUF_LEN: usize = 2048;
/// Largest Ethernet frame (without FCS) the device hands to smoltcp.
pub const MAX_FRAME: usize = 1514;
/// Pages in the static DMA arena that holds the virtqueues (two queues of 64 descriptors need 4 pages).
pub const DMA_ARENA_PAGES: usize = 16;

// ---------------------------------------------------------------------------------------------------------
// DMA HAL over a static arena

#[repr(C, align(4096))]
struct DmaArena(UnsafeCell<[u8; DMA_ARENA_PAGES * PAGE_SIZE]>);

// SAFETY: the arena is only handed out in disjoint page ranges by the atomic bump pointer below; each range is
// then owned by exactly one virtqueue.
unsafe impl Sync for DmaArena {}

static DMA_ARENA: DmaArena = DmaArena(UnsafeCell::new([0; DMA_ARENA_PAGES * PAGE_SIZE]));
static DMA_NEXT_PAGE: AtomicUsize = AtomicUsize::new(0);

/// [`Hal`] for identity-mapped kernels: DMA pages come from a static arena (bump allocation, never freed: the
/// device is set up once, at panic time), and physical address == virtual address.
#[derive(Debug)]
pub struct IdentityMapHal;

/// Claims `pages` pages of the arena; `None` when it is exhausted.
fn arena_alloc(pages: usize) -> Option<NonNull<u8>> {
    let first = DMA_NEXT_PAGE
        .fetch_update(Ordering::AcqRel, Ordering::Acquire, |next| {
            next.checked_add(pages).filter(|end| *end <= DMA_ARENA_PAGES)
        })
        .ok()?;
    let base = DMA_ARENA.0.get().cast::<u8>();
    // `wrapping_add` stays inside the arena: first + pages <= DMA_ARENA_PAGES was checked above.
    NonNull::new(base.wrapping_add(first * PAGE_SIZE))
}

fn phys(ptr: *const u8) -> PhysAddr {
    ptr as usize as PhysAddr
}

// SAFETY: `dma_alloc` returns page-aligned, zeroed, exclusively owned memory (disjoint arena ranges, zeroed
// below); under the identity map the physical address is the virtual one, which is what the device sees.
unsafe impl Hal for IdentityMapHal {
    fn dma_alloc(pages: usize, _direction: BufferDirection) -> (PhysAddr, NonNull<u8>) {
        match arena_alloc(pages) {
            Some(ptr) => {
                // SAFETY: `ptr` starts `pages` pages of the arena that nobody else owns (see `arena_alloc`).
                unsafe { ptr.as_ptr().write_bytes(0, pages * PAGE_SIZE) };
                (phys(ptr.as_ptr()), ptr)
            }
            // virtio-drivers turns a zero physical address into `Error::DmaError`.
            None => (0, NonNull::dangling()),
        }
    }

    unsafe fn dma_dealloc(_paddr: PhysAddr, _vaddr: NonNull<u8>, _pages: usize) -> i32 {
        // Bump arena: pages are not reused (the device lives until the machine resets).
        0
    }

    unsafe fn mmio_phys_to_virt(paddr: PhysAddr, _size: usize) -> NonNull<u8> {
        // Identity map: the BAR address is usable as is. A zero BAR would be a firmware bug; dangling is never
        // dereferenced by a device that failed to initialise.
        NonNull::new(paddr as usize as *mut u8).unwrap_or(NonNull::dangling())
    }

    unsafe fn share(buffer: NonNull<[u8]>, _direction: BufferDirection) -> PhysAddr {
        // Identity map, no IOMMU, cache-coherent DMA: the device reads and writes the buffer in place.
        phys(buffer.as_ptr().cast::<u8>())
    }

    unsafe fn unshare(_paddr: PhysAddr, _buffer: NonNull<[u8]>, _direction: BufferDirection) {}
}

// ---------------------------------------------------------------------------------------------------------
// PCI configuration space through the legacy I/O ports

/// PCI configuration mechanism #1 (ports 0xCF8/0xCFC), bus 0..=255, as on every PC and QEMU machine.
#[cfg(target_arch = "x86_64")]
#[derive(Debug)]
pub struct PortCam {
    _private: (),
}

#[cfg(target_arch = "x86_64")]
impl PortCam {
    /// # Safety
    /// The caller runs in ring 0 (or has I/O privilege), owns PCI configuration space (no other CPU or
    /// interrupt handler uses ports 0xCF8/0xCFC meanwhile) and creates only one `PortCam` at a time.
    pub unsafe fn new() -> Self {
        Self { _private: () }
    }

    fn address(device_function: DeviceFunction, register_offset: u8) -> u32 {
        0x8000_0000
            | u32::from(device_function.bus) << 16
            | u32::from(device_function.device & 0x1f) << 11
            | u32::from(device_function.function & 0x07) << 8
            | u32::from(register_offset & 0xfc)
    }
}

#[cfg(target_arch = "x86_64")]
impl ConfigurationAccess for PortCam {
    fn read_word(&self, device_function: DeviceFunction, register_offset: u8) -> u32 {
        let address = Self::address(device_function, register_offset);
        let value: u32;
        // SAFETY: `PortCam::new`'s contract: ring 0 and exclusive use of the configuration ports; port I/O
        // does not touch Rust-visible memory.
        unsafe {
            core::arch::asm!("out dx, eax", in("dx") 0xcf8u16, in("eax") address, options(nomem, nostack, preserves_flags));
            core::arch::asm!("in eax, dx", out("eax") value, in("dx") 0xcfcu16, options(nomem, nostack, preserves_flags));
        }
        value
    }

    fn write_word(&mut self, device_function: DeviceFunction, register_offset: u8, data: u32) {
        let address = Self::address(device_function, register_offset);
        // SAFETY: as in `read_word`.
        unsafe {
            core::arch::asm!("out dx, eax", in("dx") 0xcf8u16, in("eax") address, options(nomem, nostack, preserves_flags));
            core::arch::asm!("out dx, eax", in("dx") 0xcfcu16, in("eax") data, options(nomem, nostack, preserves_flags));
        }
    }

    unsafe fn unsafe_clone(&self) -> Self {
        Self { _private: () }
    }
}

/// The first virtio network function on `bus` (QEMU: 00:03.0 on `-machine pc`, 00:02.0 on `q35`).
pub fn find_virtio_net<C: ConfigurationAccess>(root: &PciRoot<C>, bus: u8) -> Option<DeviceFunction> {
    root.enumerate_bus(bus)
        .find(|(_, info)| virtio_device_type(info) == Some(DeviceType::Network))
        .map(|(device_function, _)| device_function)
}

// ---------------------------------------------------------------------------------------------------------
// The smoltcp device

/// Why the virtio-net device could not be brought up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// No virtio network function on the scanned bus.
    NotFound,
    /// The PCI function is not a usable modern/transitional virtio device (capabilities, BARs).
    Transport,
    /// Feature negotiation or queue setup failed (e.g. the DMA arena is exhausted).
    Init,
    /// The device refused a receive buffer.
    RxSetup,
}

impl core::fmt::Display for Error {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            Self::NotFound => "no virtio-net device found",
            Self::Transport => "virtio-net PCI transport unusable",
            Self::Init => "virtio-net initialisation failed",
            Self::RxSetup => "virtio-net refused a receive buffer",
        })
    }
}

/// Packet buffers lent to [`VirtioNet`]: the device writes received frames into them and reads frames to send
/// from them, so they must stay put (hence `&'a mut`, normally `'static`). 256 KiB.
#[derive(Debug)]
pub struct Buffers {
    rx: [[u8; BUF_LEN]; QUEUE_SIZE],
    tx: [[u8; BUF_LEN]; QUEUE_SIZE],
}

impl Buffers {
    /// Zeroed buffers; `const` so that they can live in a `static`.
    pub const fn new() -> Self {
        Self {
            rx: [[0; BUF_LEN]; QUEUE_SIZE],
            tx: [[0; BUF_LEN]; QUEUE_SIZE],
        }
    }
}

impl Default for Buffers {
    fn default() -> Self {
        Self::new()
    }
}

type Raw = VirtIONetRaw<IdentityMapHal, PciTransport, QUEUE_SIZE>;

#[derive(Debug)]
struct RxSide<'a> {
    bufs: &'a mut [[u8; BUF_LEN]; QUEUE_SIZE],
    /// virtqueue token of the receive request each buffer is lent to (`None`: buffer not with the device).
    tokens: [Option<u16>; QUEUE_SIZE],
}

#[derive(Debug)]
struct TxSide<'a> {
    bufs: &'a mut [[u8; BUF_LEN]; QUEUE_SIZE],
    /// (token, length submitted) of the transmit request each buffer is in (`None`: buffer free).
    in_flight: [Option<(u16, usize)>; QUEUE_SIZE],
    /// Where a frame goes when every transmit buffer is busy (it is dropped; smoltcp or client-core resend).
    scratch: [u8; MAX_FRAME],
}

/// Counters for diagnostics.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Stats {
    /// Frames handed to the device.
    pub tx_frames: u64,
    /// Frames dropped because no transmit buffer was free.
    pub tx_dropped: u64,
    /// Frames received.
    pub rx_frames: u64,
}

/// A virtio-net device as a smoltcp [`phy::Device`] (Ethernet medium), polled, without allocation.
pub struct VirtioNet<'a> {
    raw: RefCell<Raw>,
    header_len: usize,
    rx: RxSide<'a>,
    tx: TxSide<'a>,
    stats: Stats,
}

impl core::fmt::Debug for VirtioNet<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("VirtioNet")
            .field("header_len", &self.header_len)
            .field("stats", &self.stats)
            .finish()
    }
}

impl<'a> VirtioNet<'a> {
    /// Initialises the virtio-net function at `device_function` (enables memory decoding and bus mastering,
    /// negotiates features, sets up both queues in the DMA arena, lends every receive buffer to the device).
    ///
    /// # Safety
    /// - Memory is identity-mapped (physical == virtual) for the DMA arena, `buffers` and the device's BARs,
    ///   with no IOMMU; the BARs were assigned by firmware.
    /// - `root` really accesses PCI configuration space, and nothing else drives this device.
    /// - `buffers` is not moved or freed while the device exists, even if the `VirtioNet` is leaked
    ///   (use `'static` storage if it may be leaked).
    pub unsafe fn new<C: ConfigurationAccess>(
        root: &mut PciRoot<C>,
        device_function: DeviceFunction,
        buffers: &'a mut Buffers,
    ) -> Result<Self, Error> {
        let (_, command) = root.get_status_command(device_function);
        root.set_command(
            device_function,
            command | Command::MEMORY_SPACE | Command::BUS_MASTER,
        );
        let transport =
            PciTransport::new::<IdentityMapHal, C>(root, device_function).map_err(|_| Error::Transport)?;
        let mut raw = Raw::new(transport).map_err(|_| Error::Init)?;
        // Polling only: ask the device not to raise interrupts at all.
        raw.disable_interrupts();
        let mut probe = [0u8; 16];
        let header_len = raw.fill_buffer_header(&mut probe).map_err(|_| Error::Init)?;
        let Buffers { rx, tx } = buffers;
        let mut device = Self {
            raw: RefCell::new(raw),
            header_len,
            rx: RxSide {
                bufs: rx,
                tokens: [None; QUEUE_SIZE],
            },
            tx: TxSide {
                bufs: tx,
                in_flight: [None; QUEUE_SIZE],
                scratch: [0; MAX_FRAME],
            },
            stats: Stats::default(),
        };
        for index in 0..QUEUE_SIZE {
            if !device.rx.lend(device.raw.get_mut(), index) {
                return Err(Error::RxSetup);
            }
        }
        Ok(device)
    }

    /// The device's MAC address.
    pub fn mac_address(&self) -> [u8; 6] {
        self.raw.borrow().mac_address()
    }

    /// Diagnostic counters.
    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// Takes back every transmit buffer the device has finished with.
    fn reclaim_tx(&mut self) {
        let raw = self.raw.get_mut();
        while let Some(token) = raw.poll_transmit() {
            let Some(index) = self
                .tx
                .in_flight
                .iter()
                .position(|slot| matches!(slot, Some((t, _)) if *t == token))
            else {
                // Not ours (cannot happen): stop rather than spin.
                break;
            };
            let Some((_, len)) = self.tx.in_flight[index] else {
                break;
            };
            // SAFETY: the buffer and length are exactly those passed to `transmit_begin` for `token`.
            let done = unsafe { raw.transmit_complete(token, &self.tx.bufs[index][..len]) };
            self.tx.in_flight[index] = None;
            if done.is_err() {
                break;
            }
        }
    }

    fn free_tx_slot(&self) -> Option<usize> {
        self.tx.in_flight.iter().position(Option::is_none)
    }
}

impl RxSide<'_> {
    /// Lends receive buffer `index` to the device. false if it refused.
    fn lend(&mut self, raw: &mut Raw, index: usize) -> bool {
        // SAFETY: the buffer lives for 'a (borrowed by the device wrapper) and is not touched again until the
        // device returns it through `poll_receive` + `receive_complete` with this token.
        match unsafe { raw.receive_begin(&mut self.bufs[index]) } {
            Ok(token) => {
                self.tokens[index] = Some(token);
                true
            }
            Err(_) => false,
        }
    }
}

/// A received frame; consuming (or dropping) it lends the buffer back to the device.
pub struct VirtioRxToken<'d, 'a> {
    raw: &'d RefCell<Raw>,
    rx: &'d mut RxSide<'a>,
    index: usize,
    start: usize,
    len: usize,
}

impl core::fmt::Debug for VirtioRxToken<'_, '_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("VirtioRxToken")
            .field("index", &self.index)
            .field("len", &self.len)
            .finish()
    }
}

impl phy::RxToken for VirtioRxToken<'_, '_> {
    fn consume<R, F>(self, f: F) -> R
    where
        F: FnOnce(&[u8]) -> R,
    {
        let end = self.start.saturating_add(self.len).min(BUF_LEN);
        let start = self.start.min(end);
        f(&self.rx.bufs[self.index][start..end])
        // Drop lends the buffer back.
    }
}

impl Drop for VirtioRxToken<'_, '_> {
    fn drop(&mut self) {
        if let Ok(mut raw) = self.raw.try_borrow_mut() {
            // If the device refuses, the queue shrinks by one buffer; nothing better to do at panic time.
            let _ = self.rx.lend(&mut raw, self.index);
        }
    }
}

/// Room for one frame to send (or, when every transmit buffer is busy, a scratch buffer whose frame is dropped).
pub struct VirtioTxToken<'d, 'a> {
    raw: &'d RefCell<Raw>,
    tx: &'d mut TxSide<'a>,
    slot: Option<usize>,
    header_len: usize,
    stats: &'d mut Stats,
}

impl core::fmt::Debug for VirtioTxToken<'_, '_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("VirtioTxToken").field("slot", &self.slot).finish()
    }
}

impl phy::TxToken for VirtioTxToken<'_, '_> {
    fn consume<R, F>(self, len: usize, f: F) -> R
    where
        F: FnOnce(&mut [u8]) -> R,
    {
        let len = len.min(MAX_FRAME);
        let Some(index) = self.slot else {
            self.stats.tx_dropped += 1;
            return f(&mut self.tx.scratch[..len]);
        };
        let total = self.header_len + len;
        let result = f(&mut self.tx.bufs[index][self.header_len..total]);
        let Ok(mut raw) = self.raw.try_borrow_mut() else {
            self.stats.tx_dropped += 1;
            return result;
        };
        if raw
            .fill_buffer_header(&mut self.tx.bufs[index][..self.header_len])
            .is_err()
        {
            self.stats.tx_dropped += 1;
            return result;
        }
        // SAFETY: the buffer lives for 'a and is marked in flight below, so nothing touches it until
        // `reclaim_tx` sees the device is done with it and calls `transmit_complete` with the same slice.
        match unsafe { raw.transmit_begin(&self.tx.bufs[index][..total]) } {
            Ok(token) => {
                self.tx.in_flight[index] = Some((token, total));
                self.stats.tx_frames += 1;
            }
            Err(_) => self.stats.tx_dropped += 1,
        }
        result
    }
}

impl<'a> phy::Device for VirtioNet<'a> {
    type RxToken<'d>
        = VirtioRxToken<'d, 'a>
    where
        Self: 'd;
    type TxToken<'d>
        = VirtioTxToken<'d, 'a>
    where
        Self: 'd;

    fn receive(&mut self, _timestamp: Instant) -> Option<(Self::RxToken<'_>, Self::TxToken<'_>)> {
        self.reclaim_tx();
        let raw = self.raw.get_mut();
        let token = raw.poll_receive()?;
        let index = self.rx.tokens.iter().position(|t| *t == Some(token))?;
        self.rx.tokens[index] = None;
        // SAFETY: `index` holds the buffer lent with `token` (see `RxSide::lend`).
        let completed = unsafe { raw.receive_complete(token, &mut self.rx.bufs[index]) };
        let (start, len) = match completed {
            Ok((header_len, packet_len)) => (header_len, packet_len),
            Err(_) => (0, 0),
        };
        self.stats.rx_frames += 1;
        let slot = self.free_tx_slot();
        let Self {
            raw,
            header_len,
            rx,
            tx,
            stats,
        } = self;
        let raw = &*raw;
        Some((
            VirtioRxToken {
                raw,
                rx,
                index,
                start,
                len,
            },
            VirtioTxToken {
                raw,
                tx,
                slot,
                header_len: *header_len,
                stats,
            },
        ))
    }

    fn transmit(&mut self, _timestamp: Instant) -> Option<Self::TxToken<'_>> {
        self.reclaim_tx();
        let slot = Some(self.free_tx_slot()?);
        let Self {
            raw,
            header_len,
            tx,
            stats,
            ..
        } = self;
        Some(VirtioTxToken {
            raw: &*raw,
            tx,
            slot,
            header_len: *header_len,
            stats,
        })
    }

    fn capabilities(&self) -> DeviceCapabilities {
        let mut caps = DeviceCapabilities::default();
        caps.medium = Medium::Ethernet;
        caps.max_transmission_unit = MAX_FRAME;
        caps.max_burst_size = Some(QUEUE_SIZE);
        caps
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arena_hands_out_disjoint_aligned_pages_until_exhausted() {
        let first = arena_alloc(2).map(|p| p.as_ptr() as usize);
        let second = arena_alloc(1).map(|p| p.as_ptr() as usize);
        let (Some(first), Some(second)) = (first, second) else {
            panic!("arena empty at start")
        };
        assert_eq!(first % PAGE_SIZE, 0);
        assert_eq!(second, first + 2 * PAGE_SIZE);
        assert!(
            arena_alloc(DMA_ARENA_PAGES).is_none(),
            "over-allocation must fail, not wrap"
        );
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn config_address_encodes_bus_device_function_register() {
        let df = DeviceFunction {
            bus: 1,
            device: 3,
            function: 2,
        };
        assert_eq!(
            PortCam::address(df, 0x13),
            0x8000_0000 | 1 << 16 | 3 << 11 | 2 << 8 | 0x10
        );
    }
}
