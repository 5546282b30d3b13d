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

/// Sends `data` as one dump through `client` over `stack`/`device`, polling until the receiver acknowledges
/// the end (`Event::Done`) or the client gives up. `now_micros` is a monotonic clock; `on_event` sees every
/// client event (progress reports, for a console). `kdh` is passed to [`Client::finish`].
///
/// The loop: ingress (acks to the client), timers, feed `data` with back-pressure, then move every datagram
/// the client wants to send into the socket while it has room, and egress. It never blocks and never
/// allocates; its only memory is two stack buffers of [`MAX_DATAGRAM`] bytes.
pub fn run_dump<D: Device + ?Sized>(
    stack: &mut UdpStack<'_>,
    device: &mut D,
    client: &mut Client<'_>,
    data: &[u8],
    kdh: Option<&[u8; 512]>,
    now_micros: &mut dyn FnMut() -> u64,
    on_event: &mut dyn FnMut(&Event),
) -> Result<Stats, DumpError> {
    let mut datagram = [0u8; MAX_DATAGRAM];
    let mut ack = [0u8; 64];
    let mut written = 0usize;
    let mut finished = false;
    loop {
        let now = now_micros();
        let instant = Instant::from_micros(now);
        stack.poll(device, now);
        while let Some((len, from)) = stack.recv_from(&mut ack) {
            client.handle_datagram(instant, from, &ack[..len.min(ack.len())]);
        }
        if client.poll_timeout().is_some_and(|deadline| deadline <= instant) {
            client.handle_timeout(instant);
        }
        while written < data.len() {
            let taken = client.write(&data[written..]);
            if taken == 0 {
                break;
            }
            written += taken;
        }
        if written == data.len() && !finished {
            client.finish(kdh);
            finished = true;
        }
        while stack.can_send(MAX_DATAGRAM) {
            let Some(transmit) = client.poll_transmit(instant, &mut datagram) else {
                break;
            };
            let Some(payload) = datagram.get(..transmit.len) else {
                return Err(DumpError::Oversized);
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
                Event::Done(stats) => return Ok(stats),
                Event::Failed(reason) => return Err(DumpError::Client(reason)),
                Event::Connected { .. } | Event::Progress(_) => {}
            }
        }
    }
}
