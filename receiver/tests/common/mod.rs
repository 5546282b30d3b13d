#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]
//! Shared helpers: an in-process daemon on 127.0.0.1:0, dump builders, file checks.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use sealdump_receiver::freebsd_client::{Client, ClientConfig, Order};
use sealdump_receiver::server::{Server, ServerConfig};

pub struct Daemon {
    pub addr: SocketAddr,
    pub dir: tempfile::TempDir,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Daemon {
    pub fn start(tweak: impl FnOnce(&mut ServerConfig)) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = ServerConfig::new(dir.path().to_path_buf());
        cfg.bind = "127.0.0.1:0".parse().unwrap();
        cfg.resolve_hostnames = false;
        tweak(&mut cfg);
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let server = Server::bind(cfg).await.unwrap();
                addr_tx.send(server.local_addr().unwrap()).unwrap();
                server
                    .run(async move {
                        let _ = stop_rx.await;
                    })
                    .await
                    .unwrap();
            });
        });
        let addr = addr_rx.recv_timeout(Duration::from_secs(10)).unwrap();
        Self {
            addr,
            dir,
            stop: Some(stop_tx),
            thread: Some(thread),
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Graceful shutdown (like SIGTERM), waiting for sessions to be closed.
    pub fn stop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            t.join().unwrap();
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.stop();
    }
}

pub fn client_config(server: SocketAddr, order: Order) -> ClientConfig {
    let mut c = ClientConfig::new(server);
    c.bind = "127.0.0.1:0".parse().unwrap();
    c.order = order;
    c.retransmit_after = Duration::from_millis(150);
    c
}

pub fn client(server: SocketAddr, order: Order) -> Client {
    Client::new(client_config(server, order)).unwrap()
}

/// Deterministic pseudo-random bytes.
pub fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

pub struct KdhSpec<'a> {
    pub dump_length: u64,
    pub key_size: u32,
    pub compression: u8,
    pub hostname: &'a str,
    pub version_string: &'a str,
    pub panic_string: &'a str,
}

impl Default for KdhSpec<'_> {
    fn default() -> Self {
        Self {
            dump_length: 0,
            key_size: 0,
            compression: 0,
            hostname: "testhost",
            version_string: "FreeBSD 14.1-RELEASE\n",
            panic_string: "test panic",
        }
    }
}

/// A v4 kernel dump header with correct parity.
pub fn kdh(spec: &KdhSpec<'_>) -> [u8; 512] {
    let mut k = [0u8; 512];
    k[..19].copy_from_slice(b"FreeBSD Kernel Dump");
    k[20..25].copy_from_slice(b"amd64");
    k[32..36].copy_from_slice(&4u32.to_be_bytes());
    k[36..40].copy_from_slice(&2u32.to_be_bytes());
    k[40..48].copy_from_slice(&spec.dump_length.to_be_bytes());
    k[48..56].copy_from_slice(&1_700_000_000u64.to_be_bytes());
    k[56..60].copy_from_slice(&spec.key_size.to_be_bytes());
    k[60..64].copy_from_slice(&4096u32.to_be_bytes());
    k[64..64 + spec.hostname.len()].copy_from_slice(spec.hostname.as_bytes());
    k[128..128 + spec.version_string.len()].copy_from_slice(spec.version_string.as_bytes());
    k[320..320 + spec.panic_string.len()].copy_from_slice(spec.panic_string.as_bytes());
    k[495] = spec.compression;
    k[496..504].copy_from_slice(&spec.dump_length.to_be_bytes());
    let parity = k[..508]
        .chunks_exact(4)
        .fold(0u32, |a, w| a ^ u32::from_be_bytes([w[0], w[1], w[2], w[3]]));
    k[508..].copy_from_slice(&parity.to_be_bytes());
    k
}

/// netdumpd's KDH lines for [`kdh`] with the given length.
pub fn kdh_lines(dump_length: u64, compression: &str) -> String {
    format!(
        "  Architecture: amd64\n  Architecture Version: 2\n  Dump Length: {dump_length}B ({} MB)\n  Blocksize: 4096\n  \
         Compression: {compression}\n  Dumptime: Tue Nov 14 22:13:20 2023\n  Hostname: testhost\n  \
         Version String: FreeBSD 14.1-RELEASE\n  Panic String: test panic\n  Header Parity Check: Pass\n",
        dump_length >> 20
    )
}

/// A FreeBSD EKCD key blob (cipher, IV, RSA-size "ciphertext"), padded to 4096.
pub fn ekcd_blob(cipher: u8, rsa_bytes: usize) -> Vec<u8> {
    let mut b = vec![0u8; 4096];
    b[0] = cipher;
    b[1..33].copy_from_slice(&pattern(32, 9));
    b[33..37].copy_from_slice(&(rsa_bytes as u32).to_be_bytes());
    b[37..37 + rsa_bytes].copy_from_slice(&pattern(rsa_bytes, 10));
    b
}

/// A sealed-header-looking key blob in the layout the receiver parses (see session::parse_seal_info).
pub fn seal_header(shift: u8, key_ids: &[[u8; 8]]) -> Vec<u8> {
    let mut h = Vec::new();
    h.extend_from_slice(b"SEALDUMP");
    h.extend_from_slice(&1u16.to_be_bytes());
    h.extend_from_slice(&0u16.to_be_bytes());
    h.extend_from_slice(&3u16.to_be_bytes());
    h.extend_from_slice(&1u16.to_be_bytes());
    h.push(shift);
    h.push(0);
    h.push(key_ids.len() as u8);
    h.push(0);
    h.extend_from_slice(&[7; 16]);
    h.extend_from_slice(&0u64.to_be_bytes());
    for id in key_ids {
        h.extend_from_slice(&1u16.to_be_bytes());
        h.extend_from_slice(id);
        h.extend_from_slice(&80u16.to_be_bytes());
        h.extend_from_slice(&pattern(80, 3));
    }
    h.extend_from_slice(&[0x55; 32]);
    let len = h.len() as u16;
    h[10..12].copy_from_slice(&len.to_be_bytes());
    h
}

pub fn read(p: impl AsRef<Path>) -> Vec<u8> {
    std::fs::read(p.as_ref()).unwrap_or_else(|e| panic!("{}: {e}", p.as_ref().display()))
}

pub fn read_text(p: impl AsRef<Path>) -> String {
    String::from_utf8(read(p)).unwrap()
}

pub fn mode(p: impl AsRef<Path>) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

/// Waits until `f` holds (the daemon closes files asynchronously).
pub fn wait_for(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let end = Instant::now() + timeout;
    while Instant::now() < end {
        if f() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("timed out waiting for {what}");
}

/// Waits until the info file ends with a final line.
pub fn wait_info_closed(path: PathBuf) -> String {
    let mut text = String::new();
    wait_for(
        &format!("{} to be closed", path.display()),
        Duration::from_secs(15),
        || {
            text = std::fs::read_to_string(&path).unwrap_or_default();
            text.lines().last().is_some_and(|l| l.starts_with("Dump "))
                && !text.lines().last().is_some_and(|l| l.starts_with("Dump from"))
        },
    );
    text
}

/// Sorted file names in a directory.
pub fn listing(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

pub fn raw_msg(t: u32, seq: u32, off: u64, payload: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    sealdump_receiver::freebsd_client::encode(&mut v, t, seq, off, payload);
    v
}
