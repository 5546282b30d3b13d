#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Duplicate herald, idle timeout, graceful shutdown, the handler hook, hostile input and policy limits.

mod common;

use std::net::{SocketAddr, UdpSocket};
use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use common::*;
use sealdump_receiver::freebsd_client::{Client, Dump, Faults, Order};

fn ack_socket() -> UdpSocket {
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    s.set_read_timeout(Some(Duration::from_millis(500))).unwrap();
    s
}

/// Sends `msg` and returns the (seqno, source) of the 4-byte ack, if one comes.
fn exchange(sock: &UdpSocket, to: SocketAddr, msg: &[u8]) -> Option<(u32, SocketAddr)> {
    sock.send_to(msg, to).unwrap();
    let mut b = [0u8; 16];
    match sock.recv_from(&mut b) {
        Ok((4, from)) => Some((u32::from_be_bytes([b[0], b[1], b[2], b[3]]), from)),
        Ok((n, _)) => panic!("ack of {n} bytes"),
        Err(_) => None,
    }
}

#[test]
fn duplicate_herald_before_data_is_reacked_after_data_restarts() {
    let d = Daemon::start(|_| {});
    let c = ack_socket();
    let herald = raw_msg(1, 1, 0, b"");
    let (seq, session) = exchange(&c, d.addr, &herald).unwrap();
    assert_eq!(seq, 1);
    assert_ne!(session.port(), d.addr.port());
    // The herald ack was lost: the client repeats it; the same session re-acks it from its own port.
    let (seq, again) = exchange(&c, d.addr, &herald).unwrap();
    assert_eq!((seq, again), (1, session));
    // 13+ sends the key first; that is not "data" for the duplicate-herald rule.
    assert_eq!(
        exchange(&c, session, &raw_msg(5, 2, 0, &ekcd_blob(2, 256)))
            .unwrap()
            .0,
        2
    );
    assert_eq!(exchange(&c, d.addr, &herald).unwrap(), (1, session));
    assert_eq!(
        listing(d.path())
            .iter()
            .filter(|f| f.starts_with("info."))
            .count(),
        1
    );
    assert_eq!(exchange(&c, session, &raw_msg(3, 3, 0, b"data")).unwrap().0, 3);
    // After data, a copy of the opening herald from the same address and port while data flows (its ack was
    // slow, or the network duplicated it) is re-acked by the same session instead of killing the dump.
    assert_eq!(exchange(&c, d.addr, &herald).unwrap(), (1, session));
    assert_eq!(
        listing(d.path())
            .iter()
            .filter(|f| f.starts_with("info."))
            .count(),
        1
    );
    // A herald from the same host on another port while the dump is flowing is not answered: a forger on the
    // client's IP cannot restart (and so kill) the dump.
    let c = ack_socket();
    assert_eq!(exchange(&c, d.addr, &herald), None);
    // Once the old session has been quiet for the duplicate window, it is a restarted client: the old session
    // ends as timed out and index 1 starts.
    std::thread::sleep(sealdump_receiver::session::DUPLICATE_HERALD_WINDOW);
    let (seq, new_session) = exchange(&c, d.addr, &herald).unwrap();
    assert_eq!(seq, 1);
    assert_ne!(new_session, session);
    let info0 = wait_info_closed(d.path().join("info.127.0.0.1.0"));
    assert!(info0.ends_with("Dump incomplete: client timed out\n"), "{info0}");
    assert!(info0.contains("  Bytes Received: 4 core, 4096 key\n"), "{info0}");
    assert_eq!(read(d.path().join("vmcore_encrypted.127.0.0.1.0")), b"data");
    assert!(
        !d.path().join("vmcore.127.0.0.1.last").exists(),
        "no .last link without FINISHED"
    );
    // The new session works.
    assert_eq!(
        exchange(&c, new_session, &raw_msg(3, 2, 0, b"next")).unwrap().0,
        2
    );
    assert_eq!(exchange(&c, new_session, &raw_msg(2, 3, 0, b"")).unwrap().0, 3);
    assert!(wait_info_closed(d.path().join("info.127.0.0.1.1")).ends_with("Dump complete\n"));
    // FINISHED repeated (ack lost) is re-acked during the linger.
    assert_eq!(exchange(&c, new_session, &raw_msg(2, 3, 0, b"")).unwrap().0, 3);
}

fn handler_script(dir: &std::path::Path) -> std::path::PathBuf {
    let script = dir.join("handler.sh");
    let log = dir.join("handler.log");
    std::fs::write(
        &script,
        format!("#!/bin/sh\necho \"$# $1 $2 $3 $4 $5 cwd=$(pwd) env=$(env | grep -cv '^PWD=\\|^SHLVL=\\|^_=')\" >> {}\n", log.display()),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    script
}

#[test]
fn idle_timeout_keeps_partial_dump_and_runs_handler() {
    let hooks = tempfile::tempdir().unwrap();
    let script = handler_script(hooks.path());
    let d = Daemon::start(|c| {
        c.session.idle_timeout = Duration::from_millis(400);
        c.handler = Some(script.clone());
    });
    let core = pattern(256 * 1024, 12);
    let mut cfg = client_config(d.addr, Order::FreeBsd13);
    cfg.faults = Faults {
        stop_after: Some(128 * 1024),
        ..Faults::default()
    };
    let report = Client::new(cfg)
        .unwrap()
        .send_dump(&Dump {
            core: &core,
            kdh: None,
            key: None,
        })
        .unwrap();
    assert!(!report.finished);
    let info = wait_info_closed(d.path().join("info.127.0.0.1.0"));
    assert_eq!(
        info,
        "Dump from 127.0.0.1 [127.0.0.1]\n  Encryption: none\n  Bytes Received: 131072 core, 0 key\n  \
         Holes: none\nDump incomplete: client timed out\n"
    );
    assert_eq!(read(d.path().join("vmcore.127.0.0.1.0")), &core[..128 * 1024]);
    let log = hooks.path().join("handler.log");
    wait_for("handler", Duration::from_secs(5), || log.exists());
    let real = d.path().canonicalize().unwrap();
    assert_eq!(
        read_text(&log),
        format!(
            "5 timeout 127.0.0.1 127.0.0.1 ./info.127.0.0.1.0 ./vmcore.127.0.0.1.0 cwd={} env=0\n",
            real.display()
        )
    );

    // A complete dump runs it with "success".
    client(d.addr, Order::FreeBsd12)
        .send_dump(&Dump {
            core: b"ok",
            kdh: None,
            key: None,
        })
        .unwrap();
    wait_for("second handler run", Duration::from_secs(5), || {
        read_text(&log).lines().count() == 2
    });
    assert!(
        read_text(&log)
            .lines()
            .nth(1)
            .unwrap()
            .starts_with("5 success 127.0.0.1 127.0.0.1 ./info.127.0.0.1.1 ./vmcore.127.0.0.1.1 ")
    );
}

#[test]
fn finished_with_holes_is_incomplete_and_lists_them() {
    let d = Daemon::start(|_| {});
    let c = ack_socket();
    let (_, session) = exchange(&c, d.addr, &raw_msg(1, 1, 0, b"")).unwrap();
    exchange(&c, session, &raw_msg(3, 2, 0, &[1; 100])).unwrap();
    exchange(&c, session, &raw_msg(3, 3, 4096, &[2; 100])).unwrap();
    assert_eq!(exchange(&c, session, &raw_msg(2, 4, 0, b"")).unwrap().0, 4);
    let info = wait_info_closed(d.path().join("info.127.0.0.1.0"));
    assert!(
        info.ends_with("  Holes: 0x64-0x1000\nDump incomplete: 3996 bytes missing: 0x64-0x1000\n"),
        "{info}"
    );
}

#[test]
fn graceful_shutdown_closes_open_sessions_as_timed_out() {
    let mut d = Daemon::start(|_| {});
    let c = ack_socket();
    let (_, session) = exchange(&c, d.addr, &raw_msg(1, 1, 0, b"")).unwrap();
    exchange(&c, session, &raw_msg(3, 2, 0, b"partial")).unwrap();
    d.stop();
    let info = read_text(d.path().join("info.127.0.0.1.0"));
    assert!(info.ends_with("Dump incomplete: client timed out\n"), "{info}");
    assert_eq!(read(d.path().join("vmcore.127.0.0.1.0")), b"partial");
}

#[test]
fn hostile_input_is_dropped_and_the_daemon_keeps_serving() {
    let d = Daemon::start(|c| c.heralds_per_second = 5);
    let c = ack_socket();
    c.set_read_timeout(Some(Duration::from_millis(150))).unwrap();
    // Herald port: undersize, bad length, unknown type, non-herald, oversize datagram, too-long path.
    let mut bad_len = raw_msg(1, 1, 0, b"");
    bad_len.push(0);
    let oversize = raw_msg(1, 1, 0, &vec![b'a'; 65_507 - 24]);
    for junk in [
        vec![0u8; 3],
        bad_len,
        raw_msg(9, 1, 0, b""),
        raw_msg(3, 1, 0, b"x"),
        oversize,
        raw_msg(1, 1, 0, &[b'a'; 1100]),
    ] {
        assert_eq!(exchange(&c, d.addr, &junk), None);
    }
    let (_, session) = exchange(&c, d.addr, &raw_msg(1, 1, 0, b"")).unwrap();
    // Session port: the same junk plus an offset overflow and a too-large key.
    let mut bad_len = raw_msg(3, 2, 0, b"abc");
    bad_len.truncate(25);
    for junk in [
        vec![1u8; 10],
        bad_len,
        raw_msg(77, 2, 0, b""),
        raw_msg(1, 5, 0, b""),
        raw_msg(3, 2, u64::MAX - 1, b"abc"),
        raw_msg(5, 2, 1 << 20, b"key"),
    ] {
        assert_eq!(exchange(&c, session, &junk), None, "{:?}", &junk[..4]);
    }
    // A datagram into the session from another address (127.0.0.2) is not acked and not written.
    let other = UdpSocket::bind("127.0.0.2:0").unwrap();
    other.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
    assert_eq!(exchange(&other, session, &raw_msg(3, 2, 0, b"EVIL")), None);
    // The real client's data still lands.
    assert_eq!(exchange(&c, session, &raw_msg(3, 2, 0, b"good")).unwrap().0, 2);
    assert_eq!(exchange(&c, session, &raw_msg(2, 3, 0, b"")).unwrap().0, 3);
    wait_info_closed(d.path().join("info.127.0.0.1.0"));
    assert_eq!(read(d.path().join("vmcore.127.0.0.1.0")), b"good");

    // Herald flood from 127.0.0.2: at most 5 per second are acked.
    let mut acked = 0;
    other.set_read_timeout(Some(Duration::from_millis(30))).unwrap();
    for _ in 0..40 {
        if exchange(&other, d.addr, &raw_msg(1, 1, 0, b"")).is_some() {
            acked += 1;
        }
    }
    assert!((1..=10).contains(&acked), "acked {acked} of 40 heralds");
    // Still serving: a full dump from 127.0.0.1.
    let core = pattern(100_000, 13);
    client(d.addr, Order::FreeBsd13)
        .send_dump(&Dump {
            core: &core,
            kdh: None,
            key: None,
        })
        .unwrap();
    wait_info_closed(d.path().join("info.127.0.0.1.1"));
    assert_eq!(read(d.path().join("vmcore.127.0.0.1.1")), core);
    // Nothing was written outside the dump directory's expected names.
    for f in listing(d.path()) {
        assert!(
            ["bounds.", "info.", "vmcore."].iter().any(|p| f.starts_with(p)),
            "unexpected file {f}"
        );
    }
}

#[test]
fn limits_sessions_dump_size_and_free_space() {
    // One session at a time.
    let d = Daemon::start(|c| {
        c.max_sessions = 1;
        c.session.max_dump_size = 10_000;
    });
    let a = ack_socket();
    let (_, session) = exchange(&a, d.addr, &raw_msg(1, 1, 0, b"")).unwrap();
    let b = UdpSocket::bind("127.0.0.2:0").unwrap();
    b.set_read_timeout(Some(Duration::from_millis(300))).unwrap();
    assert_eq!(
        exchange(&b, d.addr, &raw_msg(1, 1, 0, b"")),
        None,
        "second session refused"
    );
    // Data beyond the size limit is not acked; data inside it is.
    assert_eq!(exchange(&a, session, &raw_msg(3, 2, 9_999, b"xy")), None);
    assert_eq!(exchange(&a, session, &raw_msg(3, 2, 9_998, b"xy")).unwrap().0, 2);
    exchange(&a, session, &raw_msg(2, 3, 0, b"")).unwrap();
    wait_info_closed(d.path().join("info.127.0.0.1.0"));

    // Free-space floor above what any disk has: heralds are not acked, nothing is created.
    let full = Daemon::start(|c| c.min_free = u64::MAX);
    let c = ack_socket();
    assert_eq!(exchange(&c, full.addr, &raw_msg(1, 1, 0, b"")), None);
    assert!(listing(full.path()).is_empty());
}

#[test]
fn a_slow_handler_does_not_hold_a_session_slot() {
    let hooks = tempfile::tempdir().unwrap();
    let script = hooks.path().join("slow.sh");
    std::fs::write(&script, "#!/bin/sh\nsleep 3\n").unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let d = Daemon::start(|c| {
        c.max_sessions = 1;
        c.session.idle_timeout = Duration::from_millis(200);
        c.handler = Some(script.clone());
    });
    let a = ack_socket();
    let (_, session) = exchange(&a, d.addr, &raw_msg(1, 1, 0, b"")).unwrap();
    exchange(&a, session, &raw_msg(3, 2, 0, b"x")).unwrap();
    wait_info_closed(d.path().join("info.127.0.0.1.0"));
    // The timed-out session's handler is still sleeping; its slot is free.
    let b = UdpSocket::bind("127.0.0.2:0").unwrap();
    b.set_read_timeout(Some(Duration::from_millis(300))).unwrap();
    let mut acked = false;
    for _ in 0..5 {
        if exchange(&b, d.addr, &raw_msg(1, 1, 0, b"")).is_some() {
            acked = true;
            break;
        }
    }
    assert!(acked, "second client refused while the first one's handler runs");
}

#[test]
fn global_herald_rate_limit_covers_many_sources() {
    let d = Daemon::start(|c| {
        c.heralds_per_second = 100;
        c.heralds_per_second_total = 3;
    });
    let sockets: Vec<UdpSocket> = ["127.0.0.1:0", "127.0.0.2:0", "127.0.0.3:0", "127.0.0.4:0"]
        .iter()
        .map(|a| {
            let s = UdpSocket::bind(a).unwrap();
            s.set_read_timeout(Some(Duration::from_millis(40))).unwrap();
            s
        })
        .collect();
    let start = std::time::Instant::now();
    let mut acked = 0;
    for round in 0..3 {
        for s in &sockets {
            if exchange(s, d.addr, &raw_msg(1, 1 + round, 0, b"")).is_some() {
                acked += 1;
            }
        }
    }
    let windows = start.elapsed().as_secs() + 1;
    assert!(
        acked >= 1 && acked as u64 <= 3 * windows,
        "acked {acked} of 12 in {windows} window(s)"
    );
    assert!(acked < 12);
}
