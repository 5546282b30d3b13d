//! `sealdump-tapsend`: send a sealed dump through a Linux TAP device with the bare-metal network path —
//! client-core driven by `drivers::net::run_dump` over `drivers::net::UdpStack` (smoltcp: ARP, neighbour
//! discovery, gateway route) — instead of the host's UDP stack. It exercises on a host, over a real (virtual)
//! Ethernet, exactly the code a panicking kernel runs; the namespace test in `tests/tests/netns.rs` uses it.

use std::fs::File;
use std::io::BufWriter;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use sealdump_client_core::{
    self as client_core, Buffers, Client, Config, HEADER_BUFFER_LEN, Mode, SlotState, seal,
};
use sealdump_crypto::keys::PublicKey;
use sealdump_crypto::{AeadId, DumpKey, TAG_LEN};
use sealdump_drivers::net::{self, NetConfig, UdpStack, UdpStorage};
use sealdump_drivers::phy::{PcapMode, PcapTap};
use sealdump_drivers::tap::open_tap;
use sealdump_wire::netdump::{CLIENT_PORT, HEADER_LEN};
use smoltcp::phy::Device;

const EXAMPLES: &str = "\
Examples:
  # A TAP bridged to the LAN, the receiver behind the router 192.0.2.1:
  ip tuntap add dev tap0 mode tap && ip link set tap0 master br0 up
  sealdump-tapsend --tap tap0 --address 192.0.2.50/24 --gateway 192.0.2.1 \\
      --to 198.51.100.7:20023 --recipient analyst.pub vmcore.0

  # IPv6, with a capture of every frame (opens in tshark/wireshark):
  sealdump-tapsend --tap tap0 --address fd77:1::50/64 --gateway fd77:1::1 \\
      --to '[fd77:2::2]:20023' --recipient analyst.pub --pcap run.pcap vmcore.0

The TAP interface must be up and must carry no IP address of the host's own: the program answers ARP and
neighbour discovery itself, as a dumping kernel does. Needs CAP_NET_ADMIN (or a TAP owned by this user).

Exit status: 0 the receiver acknowledged the whole dump; 1 the dump failed (receiver silent past the deadline);
2 usage or environment error (bad key, unreadable file, TAP unavailable).";

/// Send a sealed crash dump over a Linux TAP device with sealdump's own smoltcp network stack (the path a
/// bare-metal kernel uses), to a sealdump receiver.
#[derive(Parser, Debug)]
#[command(name = "sealdump-tapsend", version, after_help = EXAMPLES, max_term_width = 110)]
struct Cli {
    /// TAP interface to attach to (created, non-persistent, if it does not exist).
    #[arg(long, value_name = "NAME")]
    tap: String,

    /// Our address and prefix length on the TAP's link (`dumpon -c`).
    #[arg(long, value_name = "IP/PREFIX")]
    address: String,

    /// Router for an off-link receiver (`dumpon -g`).
    #[arg(long, value_name = "IP")]
    gateway: Option<IpAddr>,

    /// Receiver herald address: `IPv4:PORT` or `[IPv6]:PORT`.
    #[arg(long, value_name = "ADDR:PORT")]
    to: SocketAddr,

    /// Seal to this public key (PEM: X25519 or RSA SubjectPublicKeyInfo); repeat for several, up to 8.
    #[arg(long = "recipient", value_name = "PUB", required = true)]
    recipients: Vec<PathBuf>,

    /// Our MAC address (xx:xx:xx:xx:xx:xx) [default: a random locally administered one].
    #[arg(long, value_name = "MAC")]
    mac: Option<String>,

    /// Local UDP port.
    #[arg(long, value_name = "PORT", default_value_t = CLIENT_PORT)]
    client_port: u16,

    /// Dump bytes per datagram [default: the most the TAP's MTU allows, at most 1448].
    #[arg(long, value_name = "N")]
    payload_size: Option<usize>,

    /// Maximum datagrams in flight.
    #[arg(long, value_name = "N", default_value_t = 256, value_parser = clap::value_parser!(u16).range(2..=4096))]
    window: u16,

    /// Give up when the receiver has acknowledged nothing for this many seconds.
    #[arg(long, value_name = "SECONDS", default_value_t = 30)]
    timeout: u64,

    /// Host name sealed into the dump's metadata.
    #[arg(long, value_name = "NAME", default_value = "tapsend")]
    hostname: String,

    /// Write every frame sent and received on the TAP to this pcap file.
    #[arg(long, value_name = "FILE")]
    pcap: Option<PathBuf>,

    /// No summary line.
    #[arg(short, long)]
    quiet: bool,

    /// The dump file (read whole into memory, as a kernel's memory is addressable whole).
    #[arg(value_name = "FILE")]
    input: PathBuf,
}

/// A failure: the message is printed as one line; the code is the exit status.
struct Failure(u8, String);

fn usage(msg: impl Into<String>) -> Failure {
    Failure(2, msg.into())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(&cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure(code, msg)) => {
            eprintln!("sealdump-tapsend: error: {msg}");
            ExitCode::from(code)
        }
    }
}

fn parse_address(spec: &str) -> Result<(IpAddr, u8), Failure> {
    let bad = || {
        usage(format!(
            "--address {spec:?}: expected IP/PREFIX, e.g. 192.0.2.50/24"
        ))
    };
    let (ip, prefix) = spec.split_once('/').ok_or_else(bad)?;
    Ok((ip.parse().map_err(|_| bad())?, prefix.parse().map_err(|_| bad())?))
}

fn parse_mac(spec: Option<&str>) -> Result<[u8; 6], Failure> {
    let Some(spec) = spec else {
        let mut mac = [0u8; 6];
        getrandom::fill(&mut mac).map_err(|e| usage(format!("no randomness for a MAC: {e}")))?;
        // Unicast, locally administered.
        mac[0] = (mac[0] & 0xfc) | 0x02;
        return Ok(mac);
    };
    let bytes: Vec<u8> = spec
        .split(':')
        .map(|part| u8::from_str_radix(part, 16))
        .collect::<Result<_, _>>()
        .map_err(|_| usage(format!("--mac {spec:?}: expected xx:xx:xx:xx:xx:xx")))?;
    bytes
        .try_into()
        .map_err(|_| usage(format!("--mac {spec:?}: expected six bytes")))
}

fn unix_time() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn run(cli: &Cli) -> Result<(), Failure> {
    let (address, prefix_len) = parse_address(&cli.address)?;
    if address.is_ipv4() != cli.to.is_ipv4() {
        return Err(usage("--address and --to must be of the same IP family"));
    }
    let mac = parse_mac(cli.mac.as_deref())?;
    if cli.recipients.len() > seal::MAX_RECIPIENTS {
        return Err(usage(format!("at most {} recipients", seal::MAX_RECIPIENTS)));
    }
    let mut recipients = Vec::new();
    for path in &cli.recipients {
        recipients.push(
            sealdump_crypto::keys::read_public_key_file(path)
                .map_err(|e| usage(format!("recipient {}: {e}", path.display())))?,
        );
    }
    let data =
        std::fs::read(&cli.input).map_err(|e| usage(format!("cannot read {}: {e}", cli.input.display())))?;

    let tap = open_tap(&cli.tap).map_err(|e| usage(e.to_string()))?;
    let fd = tap.as_raw_fd();
    // IP payload the link carries: the Ethernet frame size smoltcp reports minus the 14-byte header.
    let link_mtu = tap.capabilities().max_transmission_unit.saturating_sub(14);
    let ip_overhead = if address.is_ipv4() { 20 } else { 40 } + 8 + HEADER_LEN;
    let fits = link_mtu
        .saturating_sub(ip_overhead)
        .min(net::MAX_DATAGRAM - HEADER_LEN);
    let payload_size = cli.payload_size.unwrap_or(fits);
    if !(512..=fits).contains(&payload_size) {
        return Err(usage(format!(
            "payload size {payload_size} does not fit: 512..={fits} on {} (MTU {link_mtu})",
            cli.tap
        )));
    }
    let net_config = NetConfig {
        mac,
        address,
        prefix_len,
        gateway: cli.gateway,
        local_port: cli.client_port,
        random_seed: u64::from_le_bytes([mac[0], mac[1], mac[2], mac[3], mac[4], mac[5], 0, 0]),
    };
    let job = Job {
        cli,
        net_config,
        payload_size,
        recipients: &recipients,
        data: &data,
        fd,
    };
    match &cli.pcap {
        Some(path) => {
            let file =
                File::create(path).map_err(|e| usage(format!("cannot create {}: {e}", path.display())))?;
            let mut device = PcapTap::new(tap, BufWriter::new(file), PcapMode::Both);
            let result = job.send(&mut device);
            let stats = device.stats();
            if device.flush().is_err() || stats.write_errors > 0 {
                eprintln!(
                    "sealdump-tapsend: warning: the capture {} is incomplete",
                    path.display()
                );
            }
            result
        }
        None => {
            let mut device = tap;
            job.send(&mut device)
        }
    }
}

/// One dump, ready to go over any device.
struct Job<'a> {
    cli: &'a Cli,
    net_config: NetConfig,
    payload_size: usize,
    recipients: &'a [PublicKey],
    data: &'a [u8],
    /// The TAP's file descriptor, to sleep on between turns.
    fd: std::os::fd::RawFd,
}

impl Job<'_> {
    fn send<D: Device>(&self, device: &mut D) -> Result<(), Failure> {
        // RSA recipients get a dump key wrapped in advance (as when a kernel is armed); X25519 ones are wrapped
        // by client-core at the start of the dump.
        let prewrapped = if self.recipients.iter().any(|k| matches!(k, PublicKey::Rsa(_))) {
            sealdump_crypto::rsa_wrap::prewrap_pool(self.recipients, 1)
                .map_err(|e| usage(format!("RSA key wrap: {e}")))?
                .pop()
        } else {
            None
        };
        let mut seal_recipients = Vec::new();
        for key in self.recipients {
            match key {
                PublicKey::X25519(public) => {
                    seal_recipients.push(seal::Recipient::X25519 { public: *public })
                }
                PublicKey::Rsa(_) => {
                    let key_id = key.key_id();
                    let (kind, id, body) = prewrapped
                        .as_ref()
                        .and_then(|p| p.stanzas.iter().find(|(_, id, _)| *id == key_id))
                        .ok_or_else(|| usage("RSA key wrap: no stanza for a recipient"))?;
                    seal_recipients.push(seal::Recipient::Prewrapped {
                        kind: *kind,
                        key_id: *id,
                        body,
                    });
                }
            }
        }
        let params = seal::Params {
            aead: AeadId::ChaCha20Poly1305,
            chunk_shift: 16,
            compression: 0,
            time: unix_time(),
        };
        let metadata = seal::Metadata {
            hostname: self.cli.hostname.as_bytes(),
            kernel_version: b"",
            panic_string: b"",
            architecture: std::env::consts::ARCH.as_bytes(),
            expected_length: self.data.len() as u64,
            host_uuid: [0; 16],
        };
        let mode = Mode::Sealed {
            params,
            recipients: &seal_recipients,
            dump_key: prewrapped.as_ref().map(|p| DumpKey::from_bytes(*p.dk.as_bytes())),
            metadata,
        };

        let window = usize::from(self.cli.window);
        let chunk_size = 1usize << params.chunk_shift;
        let mut slot_state = vec![SlotState::EMPTY; window];
        let mut chunks = vec![0u8; client_core::chunk_buffer_len(chunk_size)];
        let mut header = vec![0u8; HEADER_BUFFER_LEN];
        let mut tags = vec![[0u8; TAG_LEN]; client_core::tag_slots(window, self.payload_size, chunk_size)];
        let buffers = Buffers {
            slot_state: &mut slot_state,
            chunks: &mut chunks,
            header: &mut header,
            tags: &mut tags,
        };
        let config = Config {
            server: self.cli.to,
            herald_path: b"",
            payload_size: self.payload_size,
            window,
            give_up_after: Duration::from_secs(self.cli.timeout),
            mode,
        };

        let clock = std::time::Instant::now();
        let elapsed = move || u64::try_from(clock.elapsed().as_micros()).unwrap_or(u64::MAX);
        let mut rng = rand::rng();
        let mut client = Client::new(
            config,
            buffers,
            &mut rng,
            client_core::Instant::from_micros(elapsed()),
        )
        .map_err(|e| usage(format!("client setup: {e}")))?;
        // The stack's storage is 'static on bare metal; here it lives as long as the process.
        let storage: &'static mut UdpStorage<'static> = Box::leak(Box::new(UdpStorage::new()));
        let mut stack = UdpStack::new(device, &self.net_config, storage, elapsed())
            .map_err(|e| usage(format!("network setup: {e}")))?;

        let fd = self.fd;
        // run_dump never blocks (a panicking kernel spins); on a host, each turn first sleeps until a frame
        // arrives on the TAP or 1 ms passes, so the CPU is free while waiting for acks and timers stay punctual.
        let mut now = move || {
            let _ = smoltcp::phy::wait(fd, Some(smoltcp::time::Duration::from_millis(1)));
            elapsed()
        };
        let result = net::run_dump(
            &mut stack,
            device,
            &mut client,
            self.data,
            None,
            &mut now,
            &mut |_| {},
        );
        let seconds = clock.elapsed().as_secs_f64();
        match result {
            Ok(stats) => {
                if !self.cli.quiet {
                    println!(
                        "sent {} bytes sealed to {} in {seconds:.2} s ({:.1} MB/s): {} packets, {} retransmitted, srtt {} us",
                        stats.bytes_written,
                        self.cli.to,
                        stats.bytes_written as f64 / seconds.max(1e-6) / 1e6,
                        stats.packets_sent,
                        stats.retransmits,
                        stats.srtt_us,
                    );
                }
                Ok(())
            }
            Err(e) => Err(Failure(1, format!("dump to {} failed: {e}", self.cli.to))),
        }
    }
}
