//! `sealdump-fbsd-client`: sends a file to a netdump receiver the way a FreeBSD kernel does (testing aid),
//! or, with `--window`, blasts it with many packets in flight (receiver benchmark).
#![forbid(unsafe_code)]

use std::net::{SocketAddr, UdpSocket};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use clap::Parser;
use sealdump_receiver::freebsd_client::{Client, ClientConfig, Dump, Order, encode};

/// Send a core file over the netdump protocol like FreeBSD's kernel client.
#[derive(Debug, Parser)]
#[command(
    name = "sealdump-fbsd-client",
    version,
    after_help = "Examples:\n  sealdump-fbsd-client --to 127.0.0.1:20023 --bind 127.0.0.1:0 vmcore\n  \
                  sealdump-fbsd-client --to 192.0.2.10 --order 12 --key key.blob --kdh kdh.bin vmcore\n  \
                  sealdump-fbsd-client --to 127.0.0.1:20023 --bind 127.0.0.1:0 --window 2048 --synthetic 1G\n\n\
                  Prints one line: bytes, seconds, MB/s, packets/s, retransmits."
)]
struct Cli {
    /// Receiver herald address: HOST or HOST:PORT (port 20023 by default).
    #[arg(long)]
    to: String,
    /// Local address (FreeBSD uses port 20024).
    #[arg(long, default_value = "0.0.0.0:20024")]
    bind: SocketAddr,
    /// Message order of FreeBSD 12 or 13+.
    #[arg(long, default_value = "13", value_parser = ["12", "13"])]
    order: String,
    /// Herald path.
    #[arg(long)]
    path: Option<String>,
    /// EKCD key blob to send.
    #[arg(long)]
    key: Option<PathBuf>,
    /// 512-byte kernel dump header to send.
    #[arg(long)]
    kdh: Option<PathBuf>,
    /// Payload bytes per packet.
    #[arg(long, default_value_t = 1448)]
    payload: usize,
    /// Retransmit timeout in milliseconds.
    #[arg(long, default_value_t = 1000)]
    rto_ms: u64,
    /// Wait for a burst's acks as the kernel does: poll, then DELAY this many microseconds, until all are in
    /// (FreeBSD: 500). 0 wakes on each ack instead, faster than a kernel can.
    #[arg(long, default_value_t = 500, value_name = "MICROS")]
    poll_us: u64,
    /// Benchmark mode: keep this many packets in flight instead of FreeBSD's 64 KiB burst-then-wait.
    #[arg(long)]
    window: Option<usize>,
    /// Send this many synthetic bytes (e.g. 1G) instead of a file.
    #[arg(long, value_parser = sealdump_receiver::cli::parse_size)]
    synthetic: Option<u64>,
    /// The core file.
    file: Option<PathBuf>,
}

fn resolve(to: &str) -> Result<SocketAddr, String> {
    use std::net::ToSocketAddrs;
    let with_port =
        if to.parse::<SocketAddr>().is_ok() || to.rsplit_once(':').is_some_and(|(h, _)| !h.contains(':')) {
            to.to_string()
        } else {
            format!("{to}:20023")
        };
    with_port
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve {to}: {e}"))?
        .next()
        .ok_or_else(|| format!("cannot resolve {to}"))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(&cli) {
        Ok(line) => {
            println!("{line}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("sealdump-fbsd-client: {e}");
            ExitCode::from(1)
        }
    }
}

fn run(cli: &Cli) -> Result<String, String> {
    let server = resolve(&cli.to)?;
    let core = match (&cli.file, cli.synthetic) {
        (Some(f), None) => std::fs::read(f).map_err(|e| format!("{}: {e}", f.display()))?,
        (None, Some(n)) => {
            let n = usize::try_from(n).map_err(|_| "too large".to_string())?;
            (0..n).map(|i| (i % 251) as u8).collect()
        }
        _ => return Err("give exactly one of FILE or --synthetic".into()),
    };
    let read_opt = |p: &Option<PathBuf>| -> Result<Option<Vec<u8>>, String> {
        p.as_ref()
            .map(|p| std::fs::read(p).map_err(|e| format!("{}: {e}", p.display())))
            .transpose()
    };
    let key = read_opt(&cli.key)?;
    let kdh = read_opt(&cli.kdh)?;
    let start = Instant::now();
    let (retransmits, packets) = match cli.window {
        None => {
            let mut cfg = ClientConfig::new(server);
            cfg.bind = cli.bind;
            cfg.order = if cli.order == "12" {
                Order::FreeBsd12
            } else {
                Order::FreeBsd13
            };
            cfg.path = cli.path.as_ref().map(|p| p.as_bytes().to_vec());
            cfg.payload = cli.payload;
            cfg.retransmit_after = Duration::from_millis(cli.rto_ms);
            cfg.poll_delay = (cli.poll_us > 0).then(|| Duration::from_micros(cli.poll_us));
            let client = Client::new(cfg).map_err(|e| format!("bind {}: {e}", cli.bind))?;
            let dump = Dump {
                core: &core,
                kdh: kdh.as_deref(),
                key: key.as_deref(),
            };
            let report = client.send_dump(&dump).map_err(|e| e.to_string())?;
            (report.retransmits, report.sent)
        }
        Some(window) => blast(cli, server, &core, window)?,
    };
    let secs = start.elapsed().as_secs_f64();
    Ok(format!(
        "bytes={} seconds={secs:.3} MBps={:.1} pps={:.0} retransmits={retransmits}",
        core.len(),
        core.len() as f64 / secs / 1e6,
        packets as f64 / secs
    ))
}

/// Acks between wake-ups of a windowed sender waiting for its window to open.
const WAKE_EVERY: u64 = 32;

/// Windowed sender: a thread reads acks into a bitmap while the main thread keeps `window` packets in flight,
/// then resends whatever is unacked until everything is. Every message is still acked individually.
fn blast(cli: &Cli, server: SocketAddr, core: &[u8], window: usize) -> Result<(u64, u64), String> {
    let sock = UdpSocket::bind(cli.bind).map_err(|e| format!("bind {}: {e}", cli.bind))?;
    let _ = sock.set_read_timeout(Some(Duration::from_millis(cli.rto_ms)));
    let mut buf = Vec::with_capacity(65_536);
    // Herald.
    let mut session = None;
    for _ in 0..10 {
        encode(&mut buf, 1, 1, 0, b"");
        sock.send_to(&buf, server).map_err(|e| e.to_string())?;
        let mut ack = [0u8; 8];
        if let Ok((4, from)) = sock.recv_from(&mut ack)
            && ack[..4] == 1u32.to_be_bytes()
        {
            session = Some(from);
            break;
        }
    }
    let session = session.ok_or("failed to contact netdump server")?;
    sock.connect(session).map_err(|e| e.to_string())?;
    let payload = cli.payload.max(1);
    let n = core.len().div_ceil(payload);
    let acked: Arc<Vec<AtomicBool>> = Arc::new((0..n + 1).map(|_| AtomicBool::new(false)).collect());
    let acked_count = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicBool::new(false));
    let sender_thread = std::thread::current();
    let reader = {
        let sock = sock.try_clone().map_err(|e| e.to_string())?;
        let (acked, count, done) = (acked.clone(), acked_count.clone(), done.clone());
        let sender_thread = sender_thread.clone();
        let _ = sock.set_read_timeout(Some(Duration::from_millis(50)));
        std::thread::spawn(move || {
            let mut ack = [0u8; 8];
            while !done.load(Ordering::Relaxed) {
                if let Ok(4) = sock.recv(&mut ack) {
                    let seq = u32::from_be_bytes([ack[0], ack[1], ack[2], ack[3]]) as usize;
                    if let Some(i) = seq.checked_sub(2)
                        && let Some(flag) = acked.get(i)
                        && !flag.swap(true, Ordering::Relaxed)
                    {
                        // The sender may be parked waiting for the window to open: wake it once a batch of
                        // slots is free, not for every ack (a wake-up per ack ping-pongs the two threads).
                        if (count.fetch_add(1, Ordering::Relaxed) + 1).is_multiple_of(WAKE_EVERY) {
                            sender_thread.unpark();
                        }
                    }
                }
            }
        })
    };
    let mut sent = 0u64;
    let mut retransmits = 0u64;
    let send = |i: usize, buf: &mut Vec<u8>| -> Result<(), String> {
        let off = i * payload;
        let end = (off + payload).min(core.len());
        encode(buf, 3, 2 + i as u32, off as u64, &core[off..end]);
        match sock.send(buf) {
            Ok(_) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => Ok(()),
            Err(e) => Err(e.to_string()),
        }
    };
    for i in 0..n {
        while i as u64 - acked_count.load(Ordering::Relaxed).min(i as u64) >= window as u64 {
            // Sleep until acks open the window (the reader unparks us every WAKE_EVERY acks): with 64 clients
            // on 2 cores, spinning or yielding took the CPU the receiver needs. The timeout covers the tail.
            std::thread::park_timeout(Duration::from_millis(1));
        }
        send(i, &mut buf)?;
        sent += 1;
    }
    let mut last_progress = (acked_count.load(Ordering::Relaxed), Instant::now());
    while acked_count.load(Ordering::Relaxed) < n as u64 {
        std::thread::sleep(Duration::from_millis(cli.rto_ms.min(20)));
        let now = acked_count.load(Ordering::Relaxed);
        if now != last_progress.0 {
            last_progress = (now, Instant::now());
            continue;
        }
        if last_progress.1.elapsed() > Duration::from_millis(cli.rto_ms) {
            for i in 0..n {
                if !acked[i].load(Ordering::Relaxed) {
                    send(i, &mut buf)?;
                    retransmits += 1;
                    sent += 1;
                }
            }
            last_progress.1 = Instant::now();
        }
    }
    // FINISHED.
    let fin_seq = 2 + n as u32;
    encode(&mut buf, 2, fin_seq, 0, b"");
    for _ in 0..20 {
        let _ = sock.send(&buf);
        std::thread::sleep(Duration::from_millis(50));
        if acked_count.load(Ordering::Relaxed) > n as u64 {
            break;
        }
    }
    done.store(true, Ordering::Relaxed);
    let _ = reader.join();
    if acked_count.load(Ordering::Relaxed) <= n as u64 {
        return Err("FINISHED was not acked".into());
    }
    Ok((retransmits, sent))
}
