//! An in-memory device for the decorator tests: frames to receive are queued in `rx`, transmitted frames are
//! collected in `tx`.

use std::collections::VecDeque;
use std::vec::Vec;

use smoltcp::phy::{self, Device, DeviceCapabilities, Medium};
use smoltcp::time::Instant;

#[derive(Debug, Default)]
pub(crate) struct MemDevice {
    pub rx: VecDeque<Vec<u8>>,
    pub tx: Vec<Vec<u8>>,
}

impl MemDevice {
    pub fn with_rx(rx: VecDeque<Vec<u8>>) -> Self {
        MemDevice { rx, tx: Vec::new() }
    }
}

/// `n` 64-byte frames whose first 4 bytes are their index, big-endian.
pub(crate) fn numbered(n: u32) -> VecDeque<Vec<u8>> {
    (0..n)
        .map(|i| {
            let mut f = std::vec![0u8; 64];
            f[..4].copy_from_slice(&i.to_be_bytes());
            f
        })
        .collect()
}

pub(crate) struct MemRx(Vec<u8>);
pub(crate) struct MemTx<'a>(&'a mut Vec<Vec<u8>>);

impl phy::RxToken for MemRx {
    fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
        f(&self.0)
    }
}

impl phy::TxToken for MemTx<'_> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        let mut buf = std::vec![0u8; len];
        let r = f(&mut buf);
        self.0.push(buf);
        r
    }
}

impl Device for MemDevice {
    type RxToken<'a> = MemRx;
    type TxToken<'a> = MemTx<'a>;

    fn receive(&mut self, _timestamp: Instant) -> Option<(MemRx, MemTx<'_>)> {
        let frame = self.rx.pop_front()?;
        Some((MemRx(frame), MemTx(&mut self.tx)))
    }

    fn transmit(&mut self, _timestamp: Instant) -> Option<MemTx<'_>> {
        Some(MemTx(&mut self.tx))
    }

    fn capabilities(&self) -> DeviceCapabilities {
        let mut caps = DeviceCapabilities::default();
        caps.medium = Medium::Ethernet;
        caps.max_transmission_unit = 1514;
        caps
    }
}
