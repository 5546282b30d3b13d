//! Decorators over any smoltcp [`Device`](smoltcp::phy::Device), in the style of smoltcp's own
//! `FaultInjector` and `PcapWriter`:
//!
//! * [`FaultInjector`] — a deterministic, seeded lossy link: drops, duplicates, reorders and delays frames in
//!   both directions, with per-mille rates and counters. Same seed and same call sequence ⇒ same faults.
//! * [`PcapTap`] — writes every received and transmitted frame to a libpcap stream (`LINKTYPE_ETHERNET`)
//!   through the small [`PcapSink`] trait (any `std::io::Write` with the `std` feature, or a [`SliceSink`]
//!   over a static buffer on bare metal).
//!
//! Both are `no_std` and allocation-free: held frames live in fixed arrays inside the decorator.

mod fault;
mod pcap;

pub use fault::{
    Config as FaultConfig, DEFAULT_MTU, DEFAULT_SLOTS, Delay, DirectionStats, FaultInjector, Faults,
    Stats as FaultStats,
};
pub use pcap::{LINKTYPE_ETHERNET, PcapMode, PcapSink, PcapStats, PcapTap, PcapWriteError, SliceSink};

/// Token types of the decorators (named in the `Device` impls; not needed by users).
pub mod token {
    pub use super::fault::{RxToken as FaultRxToken, TxToken as FaultTxToken};
    pub use super::pcap::{RxToken as PcapRxToken, TxToken as PcapTxToken};
}

#[cfg(test)]
pub(crate) mod testdev;
