//! The hosted smoltcp path over a routed, lossy network made of three namespaces: `sealdump-tapsend`
//! (client-core with `drivers::net::UdpStack` over a TAP) in a client namespace, a router namespace that drops
//! 5 % of the UDP it forwards (nftables `numgen random`; netem does not exist on these machines), and
//! `sealdump-receiver` in a server namespace. smoltcp does its own ARP / neighbour discovery for the router and
//! sends off-link traffic to the router's MAC, so what runs here is the network half of a bare-metal dump, over
//! IPv4 and IPv6.
//!
//! ```text
//!  client ns                         router ns                              server ns
//!  tapsend ─ tap ─┐                  10.77.1.1  fd77:1::1    10.77.2.1  fd77:2::1   10.77.2.2  fd77:2::2
//!   10.77.1.50    br ─ veth ═══════ veth    (forwarding, 5 % UDP loss)   veth ═══════ veth   receiver
//!   fd77:1::50  ──┘ (no host IP)
//! ```
//!
//! Needs root, iproute2, nftables and /dev/net/tun; otherwise it prints why and passes without testing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use sealdump_crypto::keys::PrivateKey;
use sealdump_tests::veth::{VethPair, capable, ns_run};
use sealdump_tests::{
    bin, core_for_info, decrypt_with_library, have_program, info_files, is_root, os, run_decryptor, sha256,
    write_key_pair,
};

/// Writes `value` to a sysctl file inside `ns` (the namespace's own /proc/sys/net).
fn sysctl(ns: &str, key: &str, value: &str) {
    ns_run(ns, &["sh", "-c", &format!("echo {value} > /proc/sys/{key}")]);
}

/// The three namespaces; deleted (with every interface in them) when dropped, on every exit path.
struct Namespaces {
    client: String,
    router: String,
    server: String,
}

impl Drop for Namespaces {
    fn drop(&mut self) {
        for ns in [&self.client, &self.router, &self.server] {
            let _ = Command::new("ip")
                .args(["netns", "del", ns])
                .stderr(Stdio::null())
                .status();
        }
    }
}

/// Interface names (unique per test process, ≤ 15 bytes).
struct Links {
    tap: String,
    bridge: String,
    client_veth: String,
    router_client_veth: String,
    router_server_veth: String,
    server_veth: String,
}

const CLIENT_V4: &str = "10.77.1.50";
const CLIENT_V6: &str = "fd77:1::50";
const SERVER_V4: &str = "10.77.2.2";
const SERVER_V6: &str = "fd77:2::2";

/// Builds the topology of the module comment. Returns `None` (after printing why) if namespaces cannot be made.
fn build() -> Option<(Namespaces, Links)> {
    let id = std::process::id() % 100_000;
    let ns = Namespaces {
        client: format!("sdtap-c{id}"),
        router: format!("sdtap-r{id}"),
        server: format!("sdtap-s{id}"),
    };
    if !capable("", &["ip", "netns", "add", &ns.client], "a network namespace") {
        return None;
    }
    ns_run("", &["ip", "netns", "add", &ns.router]);
    ns_run("", &["ip", "netns", "add", &ns.server]);
    let links = Links {
        tap: format!("tap{id}"),
        bridge: format!("br{id}"),
        client_veth: format!("cr{id}"),
        router_client_veth: format!("rc{id}"),
        router_server_veth: format!("rs{id}"),
        server_veth: format!("sr{id}"),
    };
    for n in [&ns.client, &ns.router, &ns.server] {
        ns_run(n, &["ip", "link", "set", "lo", "up"]);
    }
    let veth = |a: &str, ns_a: &str, b: &str, ns_b: &str| {
        ns_run(
            "",
            &[
                "ip", "link", "add", a, "netns", ns_a, "type", "veth", "peer", "name", b, "netns", ns_b,
            ],
        );
    };
    veth(
        &links.client_veth,
        &ns.client,
        &links.router_client_veth,
        &ns.router,
    );
    veth(
        &links.router_server_veth,
        &ns.router,
        &links.server_veth,
        &ns.server,
    );

    // Client: the host has no address at all here (IPv6 off, so not even a link-local one); the TAP and the
    // veth are ports of a plain bridge, and smoltcp behind the TAP is the only IP stack on this link.
    let c = ns.client.as_str();
    sysctl(c, "net/ipv6/conf/all/disable_ipv6", "1");
    sysctl(c, "net/ipv6/conf/default/disable_ipv6", "1");
    ns_run(
        c,
        &[
            "ip",
            "link",
            "add",
            &links.bridge,
            "type",
            "bridge",
            "stp_state",
            "0",
            "forward_delay",
            "0",
        ],
    );
    // A persistent TAP the program attaches to: it exists (and is bridged and up) before the program starts.
    if !capable(
        c,
        &["ip", "tuntap", "add", "dev", &links.tap, "mode", "tap"],
        "a TAP device",
    ) {
        return None;
    }
    for port in [&links.tap, &links.client_veth] {
        ns_run(c, &["ip", "link", "set", port, "master", &links.bridge]);
    }
    for dev in [&links.bridge, &links.tap, &links.client_veth] {
        ns_run(c, &["ip", "link", "set", dev, "up"]);
    }

    // Router: two subnets, forwarding on, 5 % of forwarded UDP dropped (data one way, acks the other).
    let r = ns.router.as_str();
    for (dev, v4, v6) in [
        (&links.router_client_veth, "10.77.1.1/24", "fd77:1::1/64"),
        (&links.router_server_veth, "10.77.2.1/24", "fd77:2::1/64"),
    ] {
        ns_run(r, &["ip", "addr", "add", v4, "dev", dev]);
        ns_run(r, &["ip", "addr", "add", v6, "dev", dev, "nodad"]);
        ns_run(r, &["ip", "link", "set", dev, "up"]);
    }
    sysctl(r, "net/ipv4/ip_forward", "1");
    sysctl(r, "net/ipv6/conf/all/forwarding", "1");
    if !capable(r, &["nft", "add", "table", "inet", "loss"], "an nftables table") {
        return None;
    }
    ns_run(
        r,
        &[
            "nft",
            "add",
            "chain",
            "inet",
            "loss",
            "forward",
            "{ type filter hook forward priority 0 ; }",
        ],
    );
    ns_run(
        r,
        &[
            "nft", "add", "rule", "inet", "loss", "forward", "meta", "l4proto", "udp", "numgen", "random",
            "mod", "100", "<", "5", "counter", "drop",
        ],
    );

    // Server: on the far subnet, routes back through the router.
    let s = ns.server.as_str();
    ns_run(
        s,
        &[
            "ip",
            "addr",
            "add",
            &format!("{SERVER_V4}/24"),
            "dev",
            &links.server_veth,
        ],
    );
    ns_run(
        s,
        &[
            "ip",
            "addr",
            "add",
            &format!("{SERVER_V6}/64"),
            "dev",
            &links.server_veth,
            "nodad",
        ],
    );
    ns_run(s, &["ip", "link", "set", &links.server_veth, "up"]);
    ns_run(s, &["ip", "route", "add", "default", "via", "10.77.2.1"]);
    ns_run(s, &["ip", "-6", "route", "add", "default", "via", "fd77:2::1"]);
    Some((ns, links))
}

/// `sealdump-receiver` in the server namespace, bound to one address with an ephemeral port; killed on drop.
struct Receiver {
    child: Child,
    addr: SocketAddr,
    dir: PathBuf,
}

impl Receiver {
    fn start(ns: &str, bind_ip: &str, dir: &Path, log: &Path) -> Receiver {
        std::fs::create_dir_all(dir).unwrap();
        let mut child = Command::new("ip")
            .args(["netns", "exec", ns])
            .arg(bin("sealdump-receiver"))
            .args(["-D", "-a", bind_ip, "--port", "0", "--no-resolve", "-d"])
            .arg(dir)
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(log).unwrap())
            .spawn()
            .expect("start sealdump-receiver");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel::<String>();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        // "listening on 10.77.2.2:PORT" or "listening on [fd77:2::2]:PORT"
        let line = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("the receiver never printed its listening address");
        let addr = line
            .strip_prefix("listening on ")
            .and_then(|a| a.trim().parse().ok())
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"));
        Receiver {
            child,
            addr,
            dir: dir.to_path_buf(),
        }
    }

    /// The one info file, once its dump has ended (complete or not).
    fn wait_for_dump(&self, timeout: Duration) -> PathBuf {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(info) = info_files(&self.dir).into_iter().find(|p| {
                std::fs::read_to_string(p).is_ok_and(|s| {
                    s.contains("Dump complete") || s.contains("incomplete") || s.contains("unsuccessful")
                })
            }) {
                return info;
            }
            assert!(
                Instant::now() < deadline,
                "no dump ended in {}",
                self.dir.display()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `len` deterministic pseudo-random bytes (xorshift64*), so a corrupted or misplaced block shows.
fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        out.extend_from_slice(&state.wrapping_mul(0x2545_f491_4f6c_dd1d).to_le_bytes());
    }
    out.truncate(len);
    out
}

/// Ethernet frames of a pcap file (classic format, as `PcapTap` writes it).
fn pcap_frames(path: &Path) -> Vec<Vec<u8>> {
    let data = std::fs::read(path).unwrap();
    assert_eq!(&data[..4], &0xa1b2_c3d4u32.to_le_bytes(), "pcap magic");
    let mut frames = Vec::new();
    let mut at = 24;
    while at + 16 <= data.len() {
        let caplen = u32::from_le_bytes(data[at + 8..at + 12].try_into().unwrap()) as usize;
        frames.push(data[at + 16..at + 16 + caplen].to_vec());
        at += 16 + caplen;
    }
    frames
}

/// MAC address of `dev` in `ns`.
fn mac_of(ns: &str, dev: &str) -> [u8; 6] {
    let text = ns_run(ns, &["cat", &format!("/sys/class/net/{dev}/address")]);
    let bytes: Vec<u8> = text
        .trim()
        .split(':')
        .map(|b| u8::from_str_radix(b, 16).unwrap())
        .collect();
    bytes.try_into().unwrap()
}

/// Packets the router's loss rule has dropped so far.
fn dropped(router: &str) -> u64 {
    let listing = ns_run(router, &["nft", "list", "table", "inet", "loss"]);
    listing
        .split("counter packets ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no counter in {listing}"))
}

struct Case {
    client: &'static str,
    prefix: u8,
    gateway: &'static str,
    server: &'static str,
    mib: usize,
    seed: u64,
    /// Also seal to an RSA key (pre-wrapped dump key, as when a kernel is armed).
    with_rsa: bool,
}

#[test]
fn sealed_dumps_cross_a_lossy_router_over_ipv4_and_ipv6() {
    if !is_root() || !have_program("ip") || !have_program("nft") || !Path::new("/dev/net/tun").exists() {
        eprintln!(
            "skipped: needs root, iproute2, nftables (apt-get install nftables) and /dev/net/tun for namespaces and a TAP"
        );
        return;
    }
    let started = Instant::now();
    // Build the binaries before the namespaces exist, so a slow build does not count against anything.
    let tapsend = bin("sealdump-tapsend");
    let Some((ns, links)) = build() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let key = PrivateKey::generate_x25519();
    let (private, public) = write_key_pair(tmp.path(), "analyst", &key);
    let rsa_key = PrivateKey::generate_rsa(2048).unwrap();
    let (_rsa_private, rsa_public) = write_key_pair(tmp.path(), "archive", &rsa_key);
    let router_mac = mac_of(&ns.router, &links.router_client_veth);

    let cases = [
        Case {
            client: CLIENT_V4,
            prefix: 24,
            gateway: "10.77.1.1",
            server: SERVER_V4,
            mib: 4,
            seed: 0x0076_0004,
            with_rsa: false,
        },
        Case {
            client: CLIENT_V6,
            prefix: 64,
            gateway: "fd77:1::1",
            server: SERVER_V6,
            mib: 3,
            seed: 0x0076_0006,
            with_rsa: true,
        },
    ];
    let mut drops_before = 0;
    for case in &cases {
        let family = if case.server.contains(':') { "ipv6" } else { "ipv4" };
        let work = tmp.path().join(family);
        std::fs::create_dir_all(&work).unwrap();
        let rx = Receiver::start(
            &ns.server,
            case.server,
            &work.join("dumps"),
            &work.join("receiver.log"),
        );
        let data = pattern(case.mib << 20, case.seed);
        let input = work.join("dump.img");
        std::fs::write(&input, &data).unwrap();
        let capture = work.join("tap.pcap");

        let t0 = Instant::now();
        let out = Command::new("ip")
            .args(["netns", "exec", &ns.client])
            .arg(&tapsend)
            .args(["--tap", &links.tap])
            .args(["--address", &format!("{}/{}", case.client, case.prefix)])
            .args(["--gateway", case.gateway])
            .args(["--to", &rx.addr.to_string(), "--timeout", "20", "--recipient"])
            .arg(&public)
            .args(case.with_rsa.then_some("--recipient"))
            .args(case.with_rsa.then_some(&rsa_public))
            .arg("--pcap")
            .arg(&capture)
            .arg(&input)
            .output()
            .unwrap();
        let receiver_log = std::fs::read_to_string(work.join("receiver.log")).unwrap_or_default();
        assert!(
            out.status.success(),
            "{family}: sealdump-tapsend exit {:?}: {}\nreceiver log:\n{receiver_log}",
            out.status.code(),
            String::from_utf8_lossy(&out.stderr)
        );
        eprintln!(
            "{family}: {} MiB in {:.2} s: {}",
            case.mib,
            t0.elapsed().as_secs_f64(),
            String::from_utf8_lossy(&out.stdout).trim()
        );

        // Stored complete, from smoltcp's address (routed, not NATed: the info file's first line names it), and
        // decrypts byte-identical.
        let info = rx.wait_for_dump(Duration::from_secs(20));
        let info_text = std::fs::read_to_string(&info).unwrap();
        assert!(info_text.contains("Dump complete"), "{family}: {info_text}");
        assert!(
            info_text.contains(&format!("[{}]", case.client)),
            "{family}: not from {}: {info_text}",
            case.client
        );
        let stored = core_for_info(&info);
        assert_eq!(
            sha256(&decrypt_with_library(&key, &stored)),
            sha256(&data),
            "{family}: library decrypt"
        );
        if case.with_rsa {
            assert_eq!(
                sha256(&decrypt_with_library(&rsa_key, &stored)),
                sha256(&data),
                "{family}: library decrypt with the RSA key"
            );
        }
        let plain = work.join("decrypted");
        let dec = run_decryptor(&private, &plain, &stored);
        assert!(
            dec.status.success(),
            "{family}: decryptor: {}",
            String::from_utf8_lossy(&dec.stderr)
        );
        assert!(
            std::fs::read(&plain).unwrap() == data,
            "{family}: decryptor output differs"
        );

        // The link layer was real: smoltcp resolved the router (ARP / neighbour solicitation) and sent the
        // off-link datagrams to the router's MAC.
        let frames = pcap_frames(&capture);
        let ethertype = |f: &[u8]| u16::from_be_bytes([f[12], f[13]]);
        let resolved = frames.iter().any(|f| match family {
            "ipv4" => ethertype(f) == 0x0806,
            // ICMPv6 (next header 58) neighbour solicitation (type 135)
            _ => ethertype(f) == 0x86dd && f.len() > 54 && f[20] == 58 && f[54] == 135,
        });
        assert!(resolved, "{family}: no neighbour resolution in the capture");
        let via_router = frames
            .iter()
            .filter(|f| {
                f[..6] == router_mac && ethertype(f) == if family == "ipv4" { 0x0800 } else { 0x86dd }
            })
            .count();
        assert!(
            via_router * 2 > data.len() / 1500,
            "{family}: only {via_router} frames to the router's MAC"
        );

        // And the router really lost datagrams on the way.
        let drops = dropped(&ns.router);
        assert!(drops > drops_before, "{family}: the router dropped nothing");
        eprintln!(
            "{family}: the router dropped {} UDP datagrams",
            drops - drops_before
        );
        drops_before = drops;
    }

    // Nobody listening behind the router: the client gives up after its deadline and exits 1 with one line.
    let t0 = Instant::now();
    let out = Command::new("ip")
        .args(["netns", "exec", &ns.client])
        .arg(&tapsend)
        .args([
            "--tap",
            &links.tap,
            "--address",
            "10.77.1.50/24",
            "--gateway",
            "10.77.1.1",
        ])
        .args(["--to", "10.77.2.2:9", "--timeout", "2", "--recipient"])
        .arg(&public)
        .arg(tmp.path().join("ipv4").join("dump.img"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "silent receiver: {stderr}");
    eprintln!(
        "silent receiver: exit 1 after {:.1} s: {}",
        t0.elapsed().as_secs_f64(),
        stderr.trim()
    );
    assert!(
        stderr.starts_with("sealdump-tapsend: error: ") && stderr.trim_end().lines().count() == 1,
        "{stderr}"
    );
    drop(ns);
    eprintln!("whole test: {:.1} s", started.elapsed().as_secs_f64());
}

/// A path whose MTU (1280, as on many tunnels) is below sealdump-send's 1472-byte datagrams: Linux refuses a
/// UDP GSO batch whose segments would need fragmenting (EMSGSIZE), and sealdump-send must then send one datagram
/// per call, which the kernel fragments, instead of failing the dump. Two namespaces joined by one veth.
#[test]
fn sealdump_send_crosses_a_path_whose_mtu_is_below_its_datagrams() {
    if !is_root() || !have_program("ip") {
        eprintln!("skipped: needs root and iproute2");
        return;
    }
    let Some(pair) = VethPair::create("sdm", "10.78.0", Some(1280)) else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let key = PrivateKey::generate_x25519();
    let (_private, public) = write_key_pair(tmp.path(), "analyst", &key);
    let data = pattern(4 << 20, 77);
    let dump = tmp.path().join("vmcore");
    std::fs::write(&dump, &data).unwrap();
    let prefix = ["ip", "netns", "exec", pair.receiver.as_str()];
    let rx = sealdump_tests::Receiver::spawn(
        &prefix,
        &pair.receiver_ip(),
        0,
        &tmp.path().join("dumps"),
        &[],
        &[],
    );
    let out = pair.send(&[
        os("--to"),
        os(&rx.addr),
        os("--recipient"),
        os(&public),
        os("--payload-size"),
        os("1448"),
        os(&dump),
    ]);
    assert!(
        out.status.success(),
        "sealdump-send over an MTU 1280 path: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let info = rx.wait_for_dumps(1, Duration::from_secs(60)).remove(0);
    assert!(
        std::fs::read_to_string(&info).unwrap().contains("Dump complete"),
        "{}",
        info.display()
    );
    assert!(
        decrypt_with_library(&key, &core_for_info(&info)) == data,
        "the dump decrypts to what was sent"
    );
}

#[test]
fn usage_errors_exit_2_with_one_line() {
    let tmp = tempfile::tempdir().unwrap();
    let key = PrivateKey::generate_x25519();
    let (_private, public) = write_key_pair(tmp.path(), "analyst", &key);
    let input = tmp.path().join("dump.img");
    std::fs::write(&input, pattern(4096, 1)).unwrap();
    let cases: [(&[&str], &str); 4] = [
        (&["--address", "10.0.0.2", "--to", "10.0.0.1:20023"], "IP/PREFIX"),
        (
            &["--address", "10.0.0.2/24", "--to", "[fd00::1]:20023"],
            "same IP family",
        ),
        (
            &["--address", "10.0.0.2/24", "--to", "10.0.0.1:1", "--mac", "02:00"],
            "six bytes",
        ),
        (
            &["--address", "10.0.0.2/24", "--to", "10.0.0.1:1", "--tap", "a/b"],
            "invalid TAP interface name",
        ),
    ];
    for (args, expected) in cases {
        let mut cmd = Command::new(bin("sealdump-tapsend"));
        if !args.contains(&"--tap") {
            cmd.args(["--tap", "sdtap-none"]);
        }
        let out = cmd
            .args(args)
            .arg("--recipient")
            .arg(&public)
            .arg(&input)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
        assert_eq!(stderr.trim_end().lines().count(), 1, "{args:?}: {stderr}");
    }
}
