//! A one-socket UDP/IP stack (smoltcp) over any [`phy::Device`], with caller-lent static storage: what a
//! panicking kernel needs to carry client-core's datagrams. smoltcp does ARP (IPv4) and neighbour discovery
//! (IPv6) and routes off-link destinations through the configured gateway (`dumpon -g`'s job).
//!
//! [`run_dump`] pumps a `sealdump_client_core::Client` over such a stack.
//!
//! Nothing here allocates; all memory is in [`UdpStorage`] (about 160 KiB, normally a `static`).

use core::net::{IpAddr, SocketAddr};

use sealdump_client_core::{Client, Event, FailReason, Instant, Stats};

use smoltcp::iface::{Config as IfaceConfig, Interface, SocketHandle, SocketSet, SocketStorage};
use smoltcp::phy::Device;
use smoltcp::socket::udp;
use smoltcp::time::Instant as SmolInstant;
use smoltcp::wire::{EthernetAddress, HardwareAddress, IpAddress, IpCidr, IpEndpoint};

/// Datagrams the UDP socket can queue for sending (client-core's window is flushed through it in bursts).
pub const TX_PACKETS: usize = 96;
/// Bytes of queued outgoing payload.
pub const TX_BYTES: usize = 128 * 1024;
/// Datagrams (acks, 4 bytes each) the socket can hold before the stack is polled again.
pub const RX_PACKETS: usize = 256;
/// Bytes of queued incoming payload.
pub const RX_BYTES: usize = 16 * 1024;

/// Interface configuration: the addresses `dumpon -c/-g` would give.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NetConfig {
    /// Our MAC address (from the NIC).
    pub mac: [u8; 6],
    /// Our address.
    pub address: IpAddr,
    /// Prefix length of our subnet (e.g. 24, or 64 for IPv6).
    pub prefix_len: u8,
    /// Router for destinations outside the subnet (`None`: on-link only).
    pub gateway: Option<IpAddr>,
    /// Our UDP port (netdump clients use 20024).
    pub local_port: u16,
    /// Seed for smoltcp's internal choices (not security relevant).
    pub random_seed: u64,
}

/// Why the stack could not be set up or used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum NetError {
    /// The MAC address is not a unicast Ethernet address.
    BadMac,
    /// The prefix length does not fit the address family.
    BadPrefix,
    /// The gateway's family has no address on the interface, or the route table is full.
    BadGateway,
    /// The local UDP port cannot be bound (0).
    Bind,
    /// The outgoing queue is full: poll the stack, then retry.
    Exhausted,
    /// The datagram is larger than the outgoing queue, or the destination is unspecified.
    Unaddressable,
}

impl core::fmt::Display for NetError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            Self::BadMac => "MAC address is not unicast",
            Self::BadPrefix => "prefix length does not fit the address",
            Self::BadGateway => "gateway unusable (no address of its family, or route table full)",
            Self::Bind => "cannot bind the UDP port",
            Self::Exhausted => "UDP send queue full",
            Self::Unaddressable => "datagram too large or destination unspecified",
        })
    }
}

/// Storage for [`UdpStack`]; `const`-constructible so it can be a `static` (no stack or heap at panic time).
#[derive(Debug)]
pub struct UdpStorage<'a> {
    sockets: [SocketStorage<'a>; 1],
    rx_meta: [udp::PacketMetadata; RX_PACKETS],
    rx_payload: [u8; RX_BYTES],
    tx_meta: [udp::PacketMetadata; TX_PACKETS],
    tx_payload: [u8; TX_BYTES],
}

impl UdpStorage<'_> {
    /// Empty storage.
    pub const fn new() -> Self {
        Self {
            sockets: [SocketStorage::EMPTY],
            rx_meta: [udp::PacketMetadata::EMPTY; RX_PACKETS],
            rx_payload: [0; RX_BYTES],
            tx_meta: [udp::PacketMetadata::EMPTY; TX_PACKETS],
            tx_payload: [0; TX_BYTES],
        }
    }
}

impl Default for UdpStorage<'_> {
    fn default() -> Self {
        Self::new()
    }
}

/// smoltcp interface + one bound UDP socket.
pub struct UdpStack<'a> {
    iface: Interface,
    sockets: SocketSet<'a>,
    handle: SocketHandle,
}

impl core::fmt::Debug for UdpStack<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("UdpStack")
            .field("addresses", &self.iface.ip_addrs())
            .finish()
    }
}

fn smol_now(now_micros: u64) -> SmolInstant {
    SmolInstant::from_micros(i64::try_from(now_micros).unwrap_or(i64::MAX))
}

impl<'a> UdpStack<'a> {
    /// Brings the interface up on `device` with `config` and binds the UDP socket.
    pub fn new<D: Device + ?Sized>(
        device: &mut D,
        config: &NetConfig,
        storage: &'a mut UdpStorage<'a>,
        now_micros: u64,
    ) -> Result<Self, NetError> {
        let mac = EthernetAddress(config.mac);
        if !mac.is_unicast() {
            return Err(NetError::BadMac);
        }
        let mut iface_config = IfaceConfig::new(HardwareAddress::Ethernet(mac));
        iface_config.random_seed = config.random_seed;
        let mut iface = Interface::new(iface_config, device, smol_now(now_micros));

        let max_prefix = if config.address.is_ipv4() { 32 } else { 128 };
        if config.prefix_len > max_prefix {
            return Err(NetError::BadPrefix);
        }
        let cidr = IpCidr::new(IpAddress::from(config.address), config.prefix_len);
        let mut pushed = true;
        iface.update_ip_addrs(|addrs| pushed = addrs.push(cidr).is_ok());
        if !pushed {
            return Err(NetError::BadPrefix);
        }
        match config.gateway {
            Some(IpAddr::V4(gateway)) if config.address.is_ipv4() => {
                iface
                    .routes_mut()
                    .add_default_ipv4_route(gateway)
                    .map_err(|_| NetError::BadGateway)?;
            }
            Some(IpAddr::V6(gateway)) if config.address.is_ipv6() => {
                iface
                    .routes_mut()
                    .add_default_ipv6_route(gateway)
                    .map_err(|_| NetError::BadGateway)?;
            }
            Some(_) => return Err(NetError::BadGateway),
            None => {}
        }

        let UdpStorage {
            sockets,
            rx_meta,
            rx_payload,
            tx_meta,
            tx_payload,
        } = storage;
        let rx = udp::PacketBuffer::new(&mut rx_meta[..], &mut rx_payload[..]);
        let tx = udp::PacketBuffer::new(&mut tx_meta[..], &mut tx_payload[..]);
        let mut socket = udp::Socket::new(rx, tx);
        socket.bind(config.local_port).map_err(|_| NetError::Bind)?;
        let mut sockets = SocketSet::new(&mut sockets[..]);
        let handle = sockets.add(socket);
        Ok(Self {
            iface,
            sockets,
            handle,
        })
    }

    /// Moves frames between the device and the socket (ARP/ND, ingress, egress). Returns true if the socket
    /// may have changed (datagrams arrived or queue space freed).
    pub fn poll<D: Device + ?Sized>(&mut self, device: &mut D, now_micros: u64) -> bool {
        matches!(
            self.iface.poll(smol_now(now_micros), device, &mut self.sockets),
            smoltcp::iface::PollResult::SocketStateChanged
        )
    }

    /// How long the stack may sleep before it needs polling again (ARP retries and the like).
    pub fn poll_delay_micros(&mut self, now_micros: u64) -> Option<u64> {
        self.iface
            .poll_delay(smol_now(now_micros), &self.sockets)
            .map(|delay| delay.total_micros())
    }

    /// Whether a datagram of `len` bytes surely fits in the outgoing queue now. Conservative: the payload ring
    /// may have to skip up to `len` bytes at its wrap point, so twice `len` is required.
    pub fn can_send(&self, len: usize) -> bool {
        let socket = self.sockets.get::<udp::Socket<'_>>(self.handle);
        let free = socket.payload_send_capacity().saturating_sub(socket.send_queue());
        socket.can_send() && free >= len.saturating_mul(2)
    }

    /// Queues one datagram for `destination`; it leaves on the next [`poll`](Self::poll).
    pub fn send_to(&mut self, data: &[u8], destination: SocketAddr) -> Result<(), NetError> {
        let socket = self.sockets.get_mut::<udp::Socket<'_>>(self.handle);
        socket
            .send_slice(data, IpEndpoint::from(destination))
            .map_err(|error| match error {
                udp::SendError::BufferFull => NetError::Exhausted,
                _ => NetError::Unaddressable,
            })
    }

    /// Takes the next received datagram into `buf` (truncating it if `buf` is short): (length, sender).
    pub fn recv_from(&mut self, buf: &mut [u8]) -> Option<(usize, SocketAddr)> {
        let socket = self.sockets.get_mut::<udp::Socket<'_>>(self.handle);
        let (len, meta) = socket.recv_slice(buf).ok()?;
        Some((len, SocketAddr::from(meta.endpoint)))
    }

    /// Payload bytes queued for sending and not yet handed to the device.
    pub fn send_queue_bytes(&self) -> usize {
        self.sockets.get::<udp::Socket<'_>>(self.handle).send_queue()
    }
}

/// Largest datagram [`run_dump`] moves (24-byte netdump header + 1448-byte payload at MTU 1500).
pub const MAX_DATAGRAM: usize = 1500;

/// How a [`run_dump`] ended badly.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum DumpError {
    /// client-core gave up (no receiver, no acks, abort, crypto).
    Client(FailReason),
    /// A datagram from client-core did not fit the UDP stack (payload size above the link MTU).
    Oversized,
}

impl core::fmt::Display for DumpError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Client(reason) => write!(f, "{reason}"),
            Self::Oversized => f.write_str("client datagram larger than the link allows"),
        }
    }
}

/// The state of one dump pumped through a [`UdpStack`]: how much of the dump the client has taken, and whether
/// it was told to finish. [`DumpPump::pass`] is one turn of [`run_dump`]'s loop, for callers that run their own
/// clock between turns (a simulation steps its receiver and advances virtual time there).
#[derive(Debug, Clone, Copy, Default)]
pub struct DumpPump {
    written: usize,
    finished: bool,
}

impl DumpPump {
    /// A dump not started yet.
    pub const fn new() -> Self {
        Self {
            written: 0,
            finished: false,
        }
    }

    /// One turn at `now` (microseconds): ingress (acks to the client), timers, feed `data` with back-pressure,
    /// move every datagram the client wants to send into the socket while it has room, egress, then the client's
    /// events (each shown to `on_event`). `Some` once the dump ended, `None` while it goes on. `data` is also the
    /// client's dump source for retransmissions; `kdh` is passed to [`Client::finish`].
    #[allow(clippy::too_many_arguments)]
    pub fn pass<D: Device + ?Sized>(
        &mut self,
        stack: &mut UdpStack<'_>,
        device: &mut D,
        client: &mut Client<'_>,
        data: &[u8],
        kdh: Option<&[u8; 512]>,
        now: u64,
        on_event: &mut dyn FnMut(&Event),
    ) -> Option<Result<Stats, DumpError>> {
        let mut datagram = [0u8; MAX_DATAGRAM];
        let mut ack = [0u8; 64];
        let instant = Instant::from_micros(now);
        stack.poll(device, now);
        while let Some((len, from)) = stack.recv_from(&mut ack) {
            client.handle_datagram(instant, from, &ack[..len.min(ack.len())]);
        }
        if client.poll_timeout().is_some_and(|deadline| deadline <= instant) {
            client.handle_timeout(instant);
        }
        while self.written < data.len() {
            let taken = client.write(&data[self.written..]);
            if taken == 0 {
                break;
            }
            self.written += taken;
        }
        if self.written == data.len() && !self.finished {
            client.finish(kdh);
            self.finished = true;
        }
        while stack.can_send(MAX_DATAGRAM) {
            let Some(transmit) = client.poll_transmit(instant, &mut datagram, data) else {
                break;
            };
            let Some(payload) = datagram.get(..transmit.len) else {
                return Some(Err(DumpError::Oversized));
            };
            if stack.send_to(payload, transmit.destination).is_err() {
                // Lost locally; client-core's retransmission covers it like a loss on the wire.
                break;
            }
        }
        stack.poll(device, now);
        while let Some(event) = client.poll_event() {
            on_event(&event);
            match event {
                Event::Done(stats) => return Some(Ok(stats)),
                Event::Failed(reason) => return Some(Err(DumpError::Client(reason))),
                Event::Connected { .. } | Event::Progress(_) => {}
            }
        }
        None
    }
}

/// Sends `data` as one dump through `client` over `stack`/`device`, polling until the receiver acknowledges
/// the end (`Event::Done`) or the client gives up. `now_micros` is a monotonic clock; `on_event` sees every
/// client event (progress reports, for a console). `kdh` is passed to [`Client::finish`]. `data` is also the
/// client's dump source: a retransmission of a chunk it no longer buffers reads it again from `data` (a
/// panicking kernel's memory does not change during the dump; if it did, the dump fails rather than send it).
///
/// Each turn is a [`DumpPump::pass`]. It never blocks and never allocates; its only memory is two stack
/// buffers of [`MAX_DATAGRAM`] bytes.
pub fn run_dump<D: Device + ?Sized>(
    stack: &mut UdpStack<'_>,
    device: &mut D,
    client: &mut Client<'_>,
    data: &[u8],
    kdh: Option<&[u8; 512]>,
    now_micros: &mut dyn FnMut() -> u64,
    on_event: &mut dyn FnMut(&Event),
) -> Result<Stats, DumpError> {
    let mut pump = DumpPump::new();
    loop {
        let now = now_micros();
        if let Some(outcome) = pump.pass(stack, device, client, data, kdh, now, on_event) {
            return outcome;
        }
    }
}

// The fake cable below needs std (as do the phy module's tests); drivers' tests run with the default features.
#[cfg(all(test, feature = "std"))]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use core::net::{Ipv4Addr, Ipv6Addr};
    use smoltcp::phy::{DeviceCapabilities, Medium};
    use smoltcp::wire::{EthernetFrame, EthernetProtocol, Ipv4Packet, Ipv6Packet};
    use std::boxed::Box;
    use std::cell::RefCell;
    use std::collections::VecDeque;
    use std::rc::Rc;
    use std::vec::Vec;

    type Queue = Rc<RefCell<VecDeque<Vec<u8>>>>;

    /// One end of a two-port Ethernet cable; every frame sent is also logged for inspection.
    struct CableEnd {
        rx: Queue,
        tx: Queue,
        log: Rc<RefCell<Vec<Vec<u8>>>>,
    }

    struct Rx(Vec<u8>);
    struct Tx<'a>(&'a CableEnd);

    impl phy::RxToken for Rx {
        fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
            f(&self.0)
        }
    }

    impl phy::TxToken for Tx<'_> {
        fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
            let mut frame = std::vec![0; len];
            let result = f(&mut frame);
            self.0.log.borrow_mut().push(frame.clone());
            self.0.tx.borrow_mut().push_back(frame);
            result
        }
    }

    use smoltcp::phy;

    impl Device for CableEnd {
        type RxToken<'a> = Rx;
        type TxToken<'a> = Tx<'a>;
        fn receive(&mut self, _: SmolInstant) -> Option<(Rx, Tx<'_>)> {
            let frame = self.rx.borrow_mut().pop_front()?;
            Some((Rx(frame), Tx(self)))
        }
        fn transmit(&mut self, _: SmolInstant) -> Option<Tx<'_>> {
            Some(Tx(self))
        }
        fn capabilities(&self) -> DeviceCapabilities {
            let mut caps = DeviceCapabilities::default();
            caps.medium = Medium::Ethernet;
            caps.max_transmission_unit = 1514;
            caps
        }
    }

    fn cable() -> (CableEnd, CableEnd) {
        let (ab, ba): (Queue, Queue) = Default::default();
        let log = Rc::new(RefCell::new(Vec::new()));
        (
            CableEnd {
                rx: ba.clone(),
                tx: ab.clone(),
                log: log.clone(),
            },
            CableEnd { rx: ab, tx: ba, log },
        )
    }

    const MAC_A: [u8; 6] = [0x02, 0, 0, 0, 0, 0x0a];
    const MAC_B: [u8; 6] = [0x02, 0, 0, 0, 0, 0x0b];

    fn config(
        mac: [u8; 6],
        address: IpAddr,
        prefix_len: u8,
        gateway: Option<IpAddr>,
        port: u16,
    ) -> NetConfig {
        NetConfig {
            mac,
            address,
            prefix_len,
            gateway,
            local_port: port,
            random_seed: 7,
        }
    }

    fn storage() -> &'static mut UdpStorage<'static> {
        Box::leak(Box::new(UdpStorage::new()))
    }

    /// Polls both ends until `done` or 5 simulated seconds pass.
    fn run(
        a: &mut (UdpStack<'_>, CableEnd),
        b: &mut (UdpStack<'_>, CableEnd),
        mut done: impl FnMut(&mut UdpStack<'_>, &mut UdpStack<'_>) -> bool,
    ) -> bool {
        for ms in 0..5000u64 {
            a.0.poll(&mut a.1, ms * 1000);
            b.0.poll(&mut b.1, ms * 1000);
            if done(&mut a.0, &mut b.0) {
                return true;
            }
        }
        false
    }

    #[test]
    fn ipv4_and_ipv6_round_trips_resolve_neighbours() {
        for (a_addr, b_addr, prefix) in [
            (
                IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2)),
                IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)),
                24,
            ),
            (
                IpAddr::V6(Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 2)),
                IpAddr::V6(Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 1)),
                64,
            ),
        ] {
            let (mut end_a, mut end_b) = cable();
            let stack_a = UdpStack::new(
                &mut end_a,
                &config(MAC_A, a_addr, prefix, None, 20024),
                storage(),
                0,
            )
            .unwrap();
            let stack_b = UdpStack::new(
                &mut end_b,
                &config(MAC_B, b_addr, prefix, None, 20023),
                storage(),
                0,
            )
            .unwrap();
            let (mut a, mut b) = ((stack_a, end_a), (stack_b, end_b));
            a.0.send_to(b"herald", SocketAddr::new(b_addr, 20023)).unwrap();
            let mut buf = [0u8; 64];
            let mut got = None;
            let ok = run(&mut a, &mut b, |_, b| {
                got = b.recv_from(&mut buf);
                got.is_some()
            });
            assert!(ok, "{b_addr} never received the datagram");
            let (len, from) = got.unwrap();
            assert_eq!(&buf[..len], b"herald");
            assert_eq!(from, SocketAddr::new(a_addr, 20024));
            b.0.send_to(b"ack", from).unwrap();
            let ok = run(&mut a, &mut b, |a, _| {
                a.recv_from(&mut buf).is_some_and(|(n, _)| n == 3)
            });
            assert!(ok, "{a_addr} never received the reply");
        }
    }

    #[test]
    fn off_link_datagrams_go_to_the_gateway_mac() {
        let v4 = |a, b, c, d| IpAddr::V4(Ipv4Addr::new(a, b, c, d));
        let v6 = |last, prefix| IpAddr::V6(Ipv6Addr::new(prefix, 0xdb8, 0, 0, 0, 0, 0, last));
        for (ours, gateway, prefix, far) in [
            (v4(10, 0, 0, 2), v4(10, 0, 0, 1), 24, v4(192, 0, 2, 9)),
            (v6(2, 0xfd00), v6(1, 0xfd00), 64, v6(9, 0x2001)),
        ] {
            let (mut end_a, mut end_b) = cable();
            let config_a = config(MAC_A, ours, prefix, Some(gateway), 20024);
            let stack_a = UdpStack::new(&mut end_a, &config_a, storage(), 0).unwrap();
            let config_b = config(MAC_B, gateway, prefix, None, 9);
            let stack_b = UdpStack::new(&mut end_b, &config_b, storage(), 0).unwrap();
            let log = end_a.log.clone();
            let (mut a, mut b) = ((stack_a, end_a), (stack_b, end_b));
            a.0.send_to(b"herald", SocketAddr::new(far, 20023)).unwrap();
            // A frame to the gateway's MAC whose IP destination is the far host.
            let routed = |log: &Vec<Vec<u8>>| {
                log.iter().any(|frame| {
                    let eth = EthernetFrame::new_checked(&frame[..]).unwrap();
                    let ip_dst: Option<IpAddr> = match eth.ethertype() {
                        EthernetProtocol::Ipv4 => Ipv4Packet::new_checked(eth.payload())
                            .ok()
                            .map(|ip| IpAddr::V4(ip.dst_addr())),
                        EthernetProtocol::Ipv6 => Ipv6Packet::new_checked(eth.payload())
                            .ok()
                            .map(|ip| IpAddr::V6(ip.dst_addr())),
                        _ => None,
                    };
                    eth.dst_addr() == EthernetAddress(MAC_B) && ip_dst == Some(far)
                })
            };
            let ok = run(&mut a, &mut b, |_, _| routed(&log.borrow()));
            assert!(ok, "no frame for {far} addressed to the gateway's MAC");
        }
    }

    #[test]
    fn bad_configurations_are_refused() {
        let (mut end, _) = cable();
        let v4 = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2));
        let v6 = IpAddr::V6(Ipv6Addr::LOCALHOST);
        let multicast_mac = [0x01, 0, 0x5e, 0, 0, 1];
        assert_eq!(
            UdpStack::new(&mut end, &config(multicast_mac, v4, 24, None, 1), storage(), 0).err(),
            Some(NetError::BadMac)
        );
        assert_eq!(
            UdpStack::new(&mut end, &config(MAC_A, v4, 33, None, 1), storage(), 0).err(),
            Some(NetError::BadPrefix)
        );
        assert_eq!(
            UdpStack::new(&mut end, &config(MAC_A, v4, 24, Some(v6), 1), storage(), 0).err(),
            Some(NetError::BadGateway)
        );
        assert_eq!(
            UdpStack::new(&mut end, &config(MAC_A, v4, 24, None, 0), storage(), 0).err(),
            Some(NetError::Bind)
        );
    }
}
