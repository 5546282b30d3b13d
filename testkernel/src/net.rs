//! Network bring-up at panic time: find virtio-net on PCI bus 0, start it on static buffers, put the smoltcp
//! UDP stack on top with QEMU user networking's addresses (guest 10.0.2.15/24, router and host 10.0.2.2).

use core::net::{IpAddr, Ipv4Addr, SocketAddr};

use sealdump_drivers::net::{NetConfig, UdpStack, UdpStorage};
use sealdump_drivers::virtio::{self, PciRoot, PortCam, VirtioNet};

use crate::cell::TakeOnce;
use crate::exit::ExitCode;
use crate::{config, println, time};

pub const GUEST_ADDRESS: Ipv4Addr = Ipv4Addr::new(10, 0, 2, 15);
pub const GATEWAY: Ipv4Addr = Ipv4Addr::new(10, 0, 2, 2);
/// netdump client port (QEMU's NAT rewrites it on the way out; the receiver answers the source it sees).
pub const CLIENT_PORT: u16 = 20024;

pub fn receiver() -> SocketAddr {
    SocketAddr::new(IpAddr::V4(GATEWAY), config::RECEIVER_PORT)
}

static NIC_BUFFERS: TakeOnce<virtio::Buffers> = TakeOnce::new(virtio::Buffers::new());
static UDP_STORAGE: TakeOnce<UdpStorage<'static>> = TakeOnce::new(UdpStorage::new());

/// The NIC and the stack on it.
pub struct Network {
    pub device: VirtioNet<'static>,
    pub stack: UdpStack<'static>,
}

impl Network {
    /// Polls the stack once at the current time.
    pub fn poll(&mut self) -> bool {
        self.stack.poll(&mut self.device, time::now_micros())
    }
}

pub fn bring_up(random_seed: u64) -> Result<Network, ExitCode> {
    // SAFETY: ring 0, single CPU, interrupts off: nothing else touches the PCI configuration ports.
    let mut root = PciRoot::new(unsafe { PortCam::new() });
    let Some(function) = virtio::find_virtio_net(&root, 0) else {
        println!("net: no virtio-net device on PCI bus 0");
        return Err(ExitCode::NoNic);
    };
    let buffers = NIC_BUFFERS.take().ok_or(ExitCode::NestedPanic)?;
    // SAFETY: boot.rs identity-maps 0..4 GiB (RAM, the static buffers and the BARs SeaBIOS assigned below
    // 4 GiB); there is no IOMMU; the buffers are 'static and handed out once.
    let mut device = match unsafe { VirtioNet::new(&mut root, function, buffers) } {
        Ok(device) => device,
        Err(error) => {
            println!("net: virtio-net at {function}: {error}");
            return Err(ExitCode::NicInit);
        }
    };
    let mac = device.mac_address();
    println!(
        "net: virtio-net at {function}, MAC {:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
        mac[0], mac[1], mac[2], mac[3], mac[4], mac[5]
    );
    let config = NetConfig {
        mac,
        address: IpAddr::V4(GUEST_ADDRESS),
        prefix_len: 24,
        gateway: Some(IpAddr::V4(GATEWAY)),
        local_port: CLIENT_PORT,
        random_seed,
    };
    let storage = UDP_STORAGE.take().ok_or(ExitCode::NestedPanic)?;
    let stack = match UdpStack::new(&mut device, &config, storage, time::now_micros()) {
        Ok(stack) => stack,
        Err(error) => {
            println!("net: {error}");
            return Err(ExitCode::NicInit);
        }
    };
    Ok(Network { device, stack })
}

/// Plain UDP round trip (no client-core): sends "sealdump-testkernel probe" to the receiver every 200 ms
/// until an answer arrives (at most 5 s). Proves virtio-net, ARP, the gateway route and QEMU's NAT.
pub fn probe(network: &mut Network) -> Result<(), ExitCode> {
    const PROBE: &[u8] = b"sealdump-testkernel probe";
    let start = time::now_micros();
    let mut next_send = start;
    let mut reply = [0u8; 64];
    while time::now_micros() - start < 5_000_000 {
        let now = time::now_micros();
        if now >= next_send {
            if network.stack.send_to(PROBE, receiver()).is_err() {
                println!("net: send queue full");
            }
            next_send = now + 200_000;
        }
        network.poll();
        if let Some((len, from)) = network.stack.recv_from(&mut reply) {
            let text = core::str::from_utf8(&reply[..len]).unwrap_or("<binary>");
            println!(
                "net: reply from {from}: {text:?} after {} ms",
                (time::now_micros() - start) / 1000
            );
            return Ok(());
        }
    }
    println!("net: no reply from {} in 5 s", receiver());
    Err(ExitCode::NetworkFailed)
}
