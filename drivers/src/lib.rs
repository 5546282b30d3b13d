//! NIC side of sealdump: smoltcp `phy::Device`s and the glue that runs client-core over them, plus (with the
//! `std` feature) the hosted sender `sealdump-send`.
#![cfg_attr(not(feature = "std"), no_std)]
#![deny(unsafe_code)]

/// The hosted (std, UDP socket) sender used by `sealdump-send`.
#[cfg(feature = "std")]
pub mod hosted;
/// client-core over any smoltcp `phy::Device` (ARP, gateway route, IPv4/IPv6).
pub mod net;
/// Device decorators: deterministic fault injector and pcap tap.
pub mod phy;
/// Linux TAP device.
#[cfg(all(feature = "std", target_os = "linux"))]
pub mod tap;
/// virtio-net without allocation, for bare-metal kernels.
pub mod virtio;
