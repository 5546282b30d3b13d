//! A netdump-aware UDP delay line: `delay-proxy LISTEN HERALD DELAY_MS`.
//!
//! Clients send to LISTEN. HERALD messages (type 1) go to the receiver's HERALD address, everything else to the
//! session address learnt from the receiver's latest reply (netdumpd and sealdump-receiver answer from a
//! per-session port). Every datagram, both ways, is held for DELAY_MS before it is forwarded, so the path has a
//! round-trip time of 2 × DELAY_MS. One client at a time. Prints `listening on ADDR` once bound.
#![forbid(unsafe_code)]

use std::net::{SocketAddr, UdpSocket};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

type Queue = mpsc::Sender<(Instant, Vec<u8>, SocketAddr)>;

/// Forwards queued datagrams through `socket` once each is due (constant delay keeps the queue in order).
fn forwarder(socket: UdpSocket) -> Queue {
    let (tx, rx) = mpsc::channel::<(Instant, Vec<u8>, SocketAddr)>();
    thread::spawn(move || {
        for (due, data, to) in rx {
            let now = Instant::now();
            if due > now {
                thread::sleep(due - now);
            }
            let _ = socket.send_to(&data, to);
        }
    });
    tx
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 4 {
        eprintln!("usage: delay-proxy LISTEN_ADDR HERALD_ADDR DELAY_MS   (e.g. 127.0.0.1:0 127.0.0.1:20023 1)");
        std::process::exit(2);
    }
    let (Ok(listen), Ok(herald), Ok(delay_ms)) =
        (args[1].parse::<SocketAddr>(), args[2].parse::<SocketAddr>(), args[3].parse::<f64>())
    else {
        eprintln!("delay-proxy: bad arguments");
        std::process::exit(2);
    };
    let delay = Duration::from_secs_f64(delay_ms / 1000.0);
    let (Ok(down), Ok(up)) = (UdpSocket::bind(listen), UdpSocket::bind(SocketAddr::new(herald.ip(), 0))) else {
        eprintln!("delay-proxy: cannot bind");
        std::process::exit(2);
    };
    let (Ok(down_tx), Ok(up_tx)) = (down.try_clone(), up.try_clone()) else {
        eprintln!("delay-proxy: cannot clone sockets");
        std::process::exit(2);
    };
    match down.local_addr() {
        Ok(addr) => println!("listening on {addr}"),
        Err(e) => {
            eprintln!("delay-proxy: {e}");
            std::process::exit(2);
        }
    }
    let client: Arc<Mutex<Option<SocketAddr>>> = Arc::new(Mutex::new(None));
    let session: Arc<Mutex<SocketAddr>> = Arc::new(Mutex::new(herald));
    let to_receiver = forwarder(up_tx);
    let to_client = forwarder(down_tx);

    // Receiver -> client.
    {
        let client = Arc::clone(&client);
        let session = Arc::clone(&session);
        thread::spawn(move || {
            let mut buf = vec![0u8; 65_536];
            while let Ok((n, from)) = up.recv_from(&mut buf) {
                if let Ok(mut s) = session.lock() {
                    *s = from;
                }
                let dest = client.lock().ok().and_then(|c| *c);
                if let Some(dest) = dest {
                    let _ = to_client.send((Instant::now() + delay, buf[..n].to_vec(), dest));
                }
            }
        });
    }

    // Client -> receiver.
    let mut buf = vec![0u8; 65_536];
    while let Ok((n, from)) = down.recv_from(&mut buf) {
        let is_herald = buf[..n].get(..4) == Some(&1u32.to_be_bytes()[..]);
        if let Ok(mut c) = client.lock() {
            *c = Some(from);
        }
        let dest = if is_herald { herald } else { session.lock().map(|s| *s).unwrap_or(herald) };
        let _ = to_receiver.send((Instant::now() + delay, buf[..n].to_vec(), dest));
    }
}
