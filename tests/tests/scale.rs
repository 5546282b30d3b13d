//! Scale: 64 sealed dumps at once from 64 distinct source addresses (127.0.0.10 … 127.0.0.73; the whole 127/8
//! is local) into one `sealdump-receiver`. All 64 must be stored complete and decrypt byte-identical, and the
//! receiver's peak RSS (VmHWM) must stay bounded.
//!
//! Under load a client may re-send its herald before the receiver answers; the receiver must treat the copy as a
//! duplicate, not restart the session (docs/reliability.md, finding 1, fixed). No dump may fail.
//!
//! The senders are the hosted send loop of `sealdump-send` (`sealdump_drivers::hosted::sender::send`) run on 64
//! threads of this test, each bound to its own address.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};
use sealdump_crypto::AeadId;
use sealdump_crypto::keys::PrivateKey;
use sealdump_drivers::hosted::sender::{self, Outcome, OwnedMetadata, Security, SendConfig};
use sealdump_tests::*;

const CLIENTS: u8 = 64;
const DUMP_LEN: usize = 512 << 10;
/// Peak RSS allowed for the receiver with 64 sessions (measured: 6 MiB idle, 38 MiB peak; see docs/reliability.md).
const MAX_RSS_KIB: u64 = 96 << 10;

#[test]
fn sixty_four_clients_at_once_all_intact_with_bounded_memory() {
    let tmp = tempfile::tempdir().unwrap();
    let rx = Receiver::start_with(&tmp.path().join("dumps"), &["--max-sessions", "64"], &[]);
    let idle_rss = rx.peak_rss_kib();
    let server: SocketAddr = rx.addr.parse().unwrap();
    let key = PrivateKey::generate_x25519();
    let started = Instant::now();

    let mut sources = HashMap::new();
    let mut threads = Vec::new();
    for i in 0..CLIENTS {
        let ip = Ipv4Addr::new(127, 0, 0, 10 + i);
        let mut data = vec![0u8; DUMP_LEN];
        rand::rngs::StdRng::seed_from_u64(u64::from(i)).fill_bytes(&mut data);
        // Some zero pages, as in a real dump.
        data[4096..4096 * 8].fill(0);
        sources.insert(ip.to_string(), sha256(&data));
        let config = SendConfig {
            server,
            bind: SocketAddr::new(IpAddr::V4(ip), 0),
            herald_path: Vec::new(),
            payload_size: 1448,
            window: 128,
            chunk_buffers: 2,
            give_up_after: Duration::from_secs(30),
            security: Security::Sealed {
                recipients: vec![key.public_key()],
                aead: if i % 2 == 0 {
                    AeadId::ChaCha20Poly1305
                } else {
                    AeadId::Aes256Gcm
                },
                chunk_shift: 14,
                metadata: OwnedMetadata {
                    hostname: format!("client-{i}").into_bytes(),
                    expected_length: DUMP_LEN as u64,
                    ..OwnedMetadata::default()
                },
            },
        };
        threads.push((
            ip.to_string(),
            std::thread::spawn(move || {
                sender::send(&config, Box::new(std::io::Cursor::new(data)), None, &mut |_| {})
            }),
        ));
        // Heralds in waves of 8 (all 64 dumps still overlap): a receiver slower than the client's 1 s initial
        // RTO to answer a herald triggers finding 1.
        if i % 8 == 7 {
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    let mut failed = Vec::new();
    for (ip, t) in threads {
        match t.join().unwrap().expect("sender set-up") {
            Outcome::Done(_) => {}
            other => failed.push((ip, format!("{other:?}"))),
        }
    }
    let took = started.elapsed();
    assert!(
        failed.is_empty(),
        "{} of {CLIENTS} dumps failed: {failed:?}\n{}",
        failed.len(),
        rx.log_text()
    );
    let peak_wait = Instant::now() + Duration::from_secs(30);
    let infos = loop {
        let complete: Vec<_> = info_files(&rx.dir)
            .into_iter()
            .filter(|p| std::fs::read_to_string(p).is_ok_and(|t| t.contains("Dump complete")))
            .collect();
        if complete.len() >= usize::from(CLIENTS) || Instant::now() > peak_wait {
            break complete;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let peak = rx.peak_rss_kib();
    eprintln!(
        "{CLIENTS} clients × {} KiB in {took:.1?}; {} complete; receiver VmHWM idle {idle_rss} KiB, peak {peak} KiB",
        DUMP_LEN >> 10,
        infos.len()
    );
    assert_eq!(infos.len(), usize::from(CLIENTS));
    for info in &infos {
        // info.<ip>.N
        let name = file_name(info);
        let host = name.strip_prefix("info.").unwrap().rsplit_once('.').unwrap().0;
        assert!(
            !failed.iter().any(|(ip, _)| ip == host),
            "{host} failed but is reported complete"
        );
        let plain = decrypt_with_library(&key, &core_for_info(info));
        assert_eq!(Some(&sha256(&plain)), sources.get(host), "{host}");
    }
    assert!(peak > 0, "VmHWM not readable");
    assert!(peak < MAX_RSS_KIB, "receiver peak RSS {peak} KiB");
}
