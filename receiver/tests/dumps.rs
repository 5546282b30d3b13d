#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Real UDP on 127.0.0.1, real files: plain, EKCD and sealed dumps in both FreeBSD message orders.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::*;
use sealdump_receiver::freebsd_client::{Client, Dump, Faults, Order};

const HOST: &str = "127.0.0.1";

#[test]
fn plain_dump_freebsd13_order() {
    let d = Daemon::start(|_| {});
    let core = pattern(300 * 1024 + 123, 1);
    let k = kdh(&KdhSpec {
        dump_length: core.len() as u64,
        ..KdhSpec::default()
    });
    let report = client(d.addr, Order::FreeBsd13)
        .send_dump(&Dump {
            core: &core,
            kdh: Some(&k),
            key: None,
        })
        .unwrap();
    assert!(report.finished);
    assert_ne!(
        report.server_port,
        d.addr.port(),
        "session traffic moves to its own port"
    );
    assert_eq!(report.retransmits, 0);

    let info = wait_info_closed(d.path().join("info.127.0.0.1.0"));
    assert_eq!(
        info,
        format!(
            "Dump from {HOST} [{HOST}]\n{}  Encryption: none\n  Bytes Received: {} core, 0 key\n  Holes: none\nDump complete\n",
            kdh_lines(core.len() as u64, "none"),
            core.len()
        )
    );
    assert_eq!(read(d.path().join("vmcore.127.0.0.1.0")), core);
    assert_eq!(read_text(d.path().join("bounds.127.0.0.1")), "1\n");
    assert_eq!(mode(d.path().join("vmcore.127.0.0.1.0")), 0o600);
    assert_eq!(mode(d.path().join("info.127.0.0.1.0")), 0o600);
    assert_eq!(
        std::fs::read_link(d.path().join("vmcore.127.0.0.1.last"))
            .unwrap()
            .to_str(),
        Some("vmcore.127.0.0.1.0")
    );
    assert_eq!(
        std::fs::read_link(d.path().join("info.127.0.0.1.last"))
            .unwrap()
            .to_str(),
        Some("info.127.0.0.1.0")
    );
    assert_eq!(
        listing(d.path()),
        [
            "bounds.127.0.0.1",
            "info.127.0.0.1.0",
            "info.127.0.0.1.last",
            "vmcore.127.0.0.1.0",
            "vmcore.127.0.0.1.last"
        ]
    );

    // A second dump from the same host gets the next index.
    let core2 = pattern(5000, 2);
    client(d.addr, Order::FreeBsd12)
        .send_dump(&Dump {
            core: &core2,
            kdh: None,
            key: None,
        })
        .unwrap();
    let info2 = wait_info_closed(d.path().join("info.127.0.0.1.1"));
    assert!(
        info2.ends_with(
            "  Encryption: none\n  Bytes Received: 5000 core, 0 key\n  Holes: none\nDump complete\n"
        )
    );
    assert_eq!(read(d.path().join("vmcore.127.0.0.1.1")), core2);
    assert_eq!(read_text(d.path().join("bounds.127.0.0.1")), "2\n");
    assert_eq!(
        std::fs::read_link(d.path().join("vmcore.127.0.0.1.last"))
            .unwrap()
            .to_str(),
        Some("vmcore.127.0.0.1.1")
    );
}

fn ekcd_dump(order: Order) {
    let d = Daemon::start(|_| {});
    let core = pattern(200 * 1024, 3);
    let blob = ekcd_blob(2, 256);
    let k = kdh(&KdhSpec {
        dump_length: core.len() as u64,
        key_size: 4096,
        ..KdhSpec::default()
    });
    client(d.addr, order)
        .send_dump(&Dump {
            core: &core,
            kdh: Some(&k),
            key: Some(&blob),
        })
        .unwrap();
    let info = wait_info_closed(d.path().join("info.127.0.0.1.0"));
    assert_eq!(
        info,
        format!(
            "Dump from {HOST} [{HOST}]\n{}  Encryption: FreeBSD EKCD, ChaCha20, RSA-2048 wrapped key\n  \
             Bytes Received: {} core, 4096 key\n  Holes: none\nDump complete\n",
            kdh_lines(core.len() as u64, "none"),
            core.len()
        )
    );
    assert_eq!(read(d.path().join("vmcore_encrypted.127.0.0.1.0")), core);
    assert_eq!(read(d.path().join("key.127.0.0.1.0")), blob);
    assert_eq!(mode(d.path().join("key.127.0.0.1.0")), 0o400);
    assert!(!d.path().join("vmcore.127.0.0.1.0").exists());
    assert_eq!(
        std::fs::read_link(d.path().join("vmcore.127.0.0.1.last"))
            .unwrap()
            .to_str(),
        Some("vmcore_encrypted.127.0.0.1.0")
    );
    assert!(
        !d.path().join("key.127.0.0.1.last").exists(),
        "netdumpd makes no key link"
    );
}

#[test]
fn ekcd_dump_freebsd12_key_after_kdh() {
    ekcd_dump(Order::FreeBsd12);
}

#[test]
fn ekcd_dump_freebsd13_key_after_herald() {
    ekcd_dump(Order::FreeBsd13);
}

#[test]
fn compressed_dump_gets_suffix_and_is_truncated() {
    let d = Daemon::start(|_| {});
    let core = pattern(3 * 4096, 4);
    let k = kdh(&KdhSpec {
        dump_length: 10_000,
        compression: 2,
        ..KdhSpec::default()
    });
    client(d.addr, Order::FreeBsd13)
        .send_dump(&Dump {
            core: &core,
            kdh: Some(&k),
            key: None,
        })
        .unwrap();
    let info = wait_info_closed(d.path().join("info.127.0.0.1.0"));
    assert!(info.contains("  Compression: zstd\n"), "{info}");
    assert!(info.ends_with("Dump complete\n"));
    assert_eq!(read(d.path().join("vmcore.127.0.0.1.0.zst")), &core[..10_000]);
}

fn sealed_stream(chunk_shift: u8, plaintext: usize) -> Vec<u8> {
    let chunk = 1usize << chunk_shift;
    let full = plaintext / chunk;
    let last = plaintext % chunk;
    let len = full * (chunk + 16) + if last > 0 { last + 16 } else { 0 } + 48;
    pattern(len, 5)
}

#[test]
fn sealed_dump_is_recognised_and_complete() {
    let d = Daemon::start(|_| {});
    let header = seal_header(16, &[[0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef], [0xaa; 8]]);
    let stream = sealed_stream(16, 300_000);
    // The sealed client's redacted KDH carries no key size; the key blob's magic decides the name.
    let k = kdh(&KdhSpec {
        dump_length: stream.len() as u64,
        ..KdhSpec::default()
    });
    client(d.addr, Order::FreeBsd13)
        .send_dump(&Dump {
            core: &stream,
            kdh: Some(&k),
            key: Some(&header),
        })
        .unwrap();
    let info = wait_info_closed(d.path().join("info.127.0.0.1.0"));
    assert_eq!(
        info,
        format!(
            "Dump from {HOST} [{HOST}]\n{}  Encryption: sealdump v1, ChaCha20-Poly1305, chunk 65536, recipients \
             0123456789abcdef,aaaaaaaaaaaaaaaa\n  Bytes Received: {} core, {} key\n  Holes: none\nDump complete\n",
            kdh_lines(stream.len() as u64, "none"),
            stream.len(),
            header.len()
        )
    );
    assert_eq!(read(d.path().join("vmcore_encrypted.127.0.0.1.0")), stream);
    assert_eq!(mode(d.path().join("vmcore_encrypted.127.0.0.1.0")), 0o600);
    assert!(!d.path().join("vmcore.127.0.0.1.0").exists());
    assert_eq!(read(d.path().join("key.127.0.0.1.0")), header);
    assert_eq!(mode(d.path().join("key.127.0.0.1.0")), 0o400);
    assert_eq!(mode(d.path().join("info.127.0.0.1.0")), 0o600);
}

#[test]
fn sealed_stream_without_a_trailer_shape_is_incomplete() {
    let d = Daemon::start(|_| {});
    let header = seal_header(12, &[[1; 8]]);
    // 2 full records + 8 bytes: cannot end with a 48-byte trailer after a record.
    let stream = pattern(2 * (4096 + 16) + 8 + 48, 6);
    client(d.addr, Order::FreeBsd13)
        .send_dump(&Dump {
            core: &stream,
            kdh: None,
            key: Some(&header),
        })
        .unwrap();
    let info = wait_info_closed(d.path().join("info.127.0.0.1.0"));
    assert!(
        info.ends_with("Dump incomplete: record stream does not end with a trailer\n"),
        "{info}"
    );
}

#[test]
fn lost_duplicated_and_reordered_packets() {
    let d = Daemon::start(|_| {});
    let core = pattern(512 * 1024 + 77, 7);
    let blob = ekcd_blob(1, 384);
    let k = kdh(&KdhSpec {
        dump_length: core.len() as u64,
        key_size: 4096,
        ..KdhSpec::default()
    });
    let mut cfg = client_config(d.addr, Order::FreeBsd13);
    cfg.retransmit_after = Duration::from_millis(60);
    cfg.faults = Faults {
        drop_every: Some(7),
        duplicate_every: Some(5),
        reverse_bursts: true,
        stop_after: None,
    };
    let report = Client::new(cfg)
        .unwrap()
        .send_dump(&Dump {
            core: &core,
            kdh: Some(&k),
            key: Some(&blob),
        })
        .unwrap();
    assert!(report.retransmits > 10, "{report:?}");
    let info = wait_info_closed(d.path().join("info.127.0.0.1.0"));
    assert!(
        info.contains("  Encryption: FreeBSD EKCD, AES-256-CBC, RSA-3072 wrapped key\n"),
        "{info}"
    );
    assert!(info.ends_with("  Holes: none\nDump complete\n"), "{info}");
    assert_eq!(read(d.path().join("vmcore_encrypted.127.0.0.1.0")), core);
    assert_eq!(read(d.path().join("key.127.0.0.1.0")), blob);
}

#[test]
fn kernel_poll_loop_waits_two_delays_per_burst() {
    // FreeBSD checks its acks only after the `DELAY` that follows a NIC poll, so a burst costs at least one
    // delay however fast the acks come back (two unless every ack beat the first poll). A large delay makes
    // that lower bound unmistakable: waking on each ack, this dump takes a few milliseconds.
    let d = Daemon::start(|_| {});
    let core = pattern(4 * 64 * 1024, 3);
    let mut cfg = client_config(d.addr, Order::FreeBsd13);
    cfg.poll_delay = Some(Duration::from_millis(20));
    let started = std::time::Instant::now();
    let report = Client::new(cfg)
        .unwrap()
        .send_dump(&Dump {
            core: &core,
            kdh: None,
            key: None,
        })
        .unwrap();
    let elapsed = started.elapsed();
    assert!(report.finished);
    assert_eq!(report.retransmits, 0);
    // Herald (waits for its ack without polling), 4 data bursts and FINISHED: 5 polled bursts.
    assert!(elapsed >= Duration::from_millis(5 * 20), "{elapsed:?}");
    let info = wait_info_closed(d.path().join("info.127.0.0.1.0"));
    assert!(info.ends_with("Dump complete\n"), "{info}");
    assert_eq!(read(d.path().join("vmcore.127.0.0.1.0")), core);
}

#[test]
fn jumbo_payloads_up_to_the_udp_limit() {
    let d = Daemon::start(|_| {});
    let core = pattern(400_000, 8);
    let mut cfg = client_config(d.addr, Order::FreeBsd13);
    cfg.payload = 65_507 - 24;
    cfg.burst = 4 * 65_483;
    Client::new(cfg)
        .unwrap()
        .send_dump(&Dump {
            core: &core,
            kdh: None,
            key: None,
        })
        .unwrap();
    let info = wait_info_closed(d.path().join("info.127.0.0.1.0"));
    assert!(info.ends_with("Dump complete\n"));
    assert_eq!(read(d.path().join("vmcore.127.0.0.1.0")), core);
}

#[test]
fn herald_path_subdirectory_and_default_path() {
    let d = Daemon::start(|c| c.store.default_path = "default".into());
    std::fs::create_dir(d.path().join("default")).unwrap();
    std::fs::create_dir_all(d.path().join("hosts/a")).unwrap();
    let mut cfg = client_config(d.addr, Order::FreeBsd13);
    cfg.path = Some(b"hosts/a".to_vec());
    Client::new(cfg)
        .unwrap()
        .send_dump(&Dump {
            core: b"hello",
            kdh: None,
            key: None,
        })
        .unwrap();
    wait_info_closed(d.path().join("hosts/a/info.127.0.0.1.0"));
    assert_eq!(read(d.path().join("hosts/a/vmcore.127.0.0.1.0")), b"hello");

    // No path, a traversal and a missing directory all land in the default path; nothing is created.
    for (i, path) in [
        None,
        Some(&b"../../etc"[..]),
        Some(&b"/etc"[..]),
        Some(&b"nope"[..]),
    ]
    .into_iter()
    .enumerate()
    {
        let mut cfg = client_config(d.addr, Order::FreeBsd13);
        cfg.path = path.map(<[u8]>::to_vec);
        Client::new(cfg)
            .unwrap()
            .send_dump(&Dump {
                core: b"x",
                kdh: None,
                key: None,
            })
            .unwrap();
        wait_info_closed(d.path().join(format!("default/info.127.0.0.1.{i}")));
    }
    assert!(!d.path().join("nope").exists());
    assert!(
        !d.dir
            .path()
            .parent()
            .unwrap()
            .join("etc/info.127.0.0.1.0")
            .exists()
    );
}

#[test]
fn ipv6_and_dual_stack() {
    if std::net::UdpSocket::bind("[::1]:0").is_err() {
        eprintln!("no IPv6 loopback here; skipping");
        return;
    }
    let d = Daemon::start(|c| c.bind = "[::1]:0".parse().unwrap());
    let mut cfg = client_config(d.addr, Order::FreeBsd13);
    cfg.bind = "[::1]:0".parse().unwrap();
    Client::new(cfg)
        .unwrap()
        .send_dump(&Dump {
            core: b"six",
            kdh: None,
            key: None,
        })
        .unwrap();
    let info = wait_info_closed(d.path().join("info.__1.0"));
    assert!(info.starts_with("Dump from __1 [::1]\n"), "{info}");
    assert_eq!(read(d.path().join("vmcore.__1.0")), b"six");

    // [::] also takes IPv4 clients, named by their plain IPv4 address.
    let d = Daemon::start(|c| c.bind = "[::]:0".parse().unwrap());
    let v4 = SocketAddr::from(([127, 0, 0, 1], d.addr.port()));
    client(v4, Order::FreeBsd13)
        .send_dump(&Dump {
            core: b"four",
            kdh: None,
            key: None,
        })
        .unwrap();
    assert!(
        wait_info_closed(d.path().join("info.127.0.0.1.0")).starts_with("Dump from 127.0.0.1 [127.0.0.1]\n")
    );
}

#[test]
fn keep_prunes_older_dumps_of_the_host() {
    let d = Daemon::start(|c| c.store.keep = Some(1));
    for (i, body) in [&b"first"[..], b"second"].into_iter().enumerate() {
        client(d.addr, Order::FreeBsd13)
            .send_dump(&Dump {
                core: body,
                kdh: None,
                key: None,
            })
            .unwrap();
        wait_info_closed(d.path().join(format!("info.127.0.0.1.{i}")));
    }
    wait_for("pruning", Duration::from_secs(5), || {
        !d.path().join("info.127.0.0.1.0").exists()
    });
    assert_eq!(
        listing(d.path()),
        [
            "bounds.127.0.0.1",
            "info.127.0.0.1.1",
            "info.127.0.0.1.last",
            "vmcore.127.0.0.1.1",
            "vmcore.127.0.0.1.last"
        ]
    );
}
