//! Hostile input at the system level, during real `sealdump-send` → `sealdump-receiver` dumps on loopback:
//! spoofed acks to the client from a wrong address, data injected into a live session (from another address or
//! another port of the client's address: dropped), herald
//! floods from many addresses, oversize and malformed datagrams, and traversal paths. None may corrupt a dump
//! silently or stop the daemon serving others. (Session-level cases are in receiver/tests/behaviour.rs.)
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::net::{SocketAddr, UdpSocket};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use sealdump_crypto::keys::PrivateKey;
use sealdump_tests::*;

fn msg(msg_type: u32, seqno: u32, offset: u64, payload: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(24 + payload.len());
    v.extend_from_slice(&msg_type.to_be_bytes());
    v.extend_from_slice(&seqno.to_be_bytes());
    v.extend_from_slice(&offset.to_be_bytes());
    v.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    v.extend_from_slice(&0u32.to_be_bytes());
    v.extend_from_slice(payload);
    v
}

/// A free UDP port on 127.0.0.1 (bound and released; fine for a test).
fn free_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn spawn_send(rx: &Receiver, client_port: u16, public: &Path, dump: &Path) -> Child {
    Command::new(bin("sealdump-send"))
        .args([
            "-q",
            "--client-port",
            &client_port.to_string(),
            "--to",
            &rx.addr,
            "--recipient",
        ])
        .arg(public)
        .arg(dump)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// The session port of the newest "new dump from client" line of a JSON-logging receiver.
fn session_port(rx: &Receiver) -> u16 {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let log = rx.log_text();
        if let Some(line) = log.lines().rev().find(|l| l.contains("new dump from client")) {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            return u16::try_from(v["fields"]["port"].as_u64().expect("port field")).unwrap();
        }
        assert!(Instant::now() < deadline, "no session in the log:\n{log}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Runs `f` on a thread until the returned flag is set.
fn keep_doing(mut f: impl FnMut() + Send + 'static) -> (Arc<AtomicBool>, std::thread::JoinHandle<u64>) {
    let stop = Arc::new(AtomicBool::new(false));
    let stop2 = stop.clone();
    let t = std::thread::spawn(move || {
        let mut n = 0;
        while !stop2.load(Ordering::Relaxed) {
            f();
            n += 1;
        }
        n
    });
    (stop, t)
}

#[test]
fn spoofed_acks_from_a_wrong_address_change_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let rx = Receiver::start(&tmp.path().join("dumps"));
    let key = PrivateKey::generate_x25519();
    let (_private, public) = write_key_pair(tmp.path(), "analyst", &key);
    let (dump, data) = synthetic(tmp.path(), 4, 71);
    let port = free_port();
    let client: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    // Every seqno the client will use, acked from 127.0.0.2 (wrong address) over and over; plus a bogus
    // herald ack from the right IP but a port the receiver never used, before the client starts.
    let attacker = UdpSocket::bind("127.0.0.2:0").unwrap();
    let (stop, flood) = keep_doing(move || {
        for seq in 0..4000u32 {
            let _ = attacker.send_to(&seq.to_be_bytes(), client);
        }
    });
    let child = spawn_send(&rx, port, &public, &dump);
    let out = child.wait_with_output().unwrap();
    stop.store(true, Ordering::Relaxed);
    let rounds = flood.join().unwrap();
    assert_ok(&out);
    assert!(rounds > 0);
    let infos = rx.wait_for_dumps(1, Duration::from_secs(20));
    assert_complete_dump(&infos[0], &key, &data);
}

#[test]
fn data_injected_into_a_live_session_is_dropped() {
    let tmp = tempfile::tempdir().unwrap();
    let rx = Receiver::start_with(&tmp.path().join("dumps"), &["--log-format", "json"], &[]);
    let key = PrivateKey::generate_x25519();
    let (_private, public) = write_key_pair(tmp.path(), "analyst", &key);
    let (dump, data) = synthetic(tmp.path(), 4, 72);

    // 1. From another address: the session must drop it; the dump arrives intact.
    let child = spawn_send(&rx, free_port(), &public, &dump);
    let session: SocketAddr = format!("127.0.0.1:{}", session_port(&rx)).parse().unwrap();
    let other = UdpSocket::bind("127.0.0.2:0").unwrap();
    other.set_read_timeout(Some(Duration::from_millis(1))).unwrap();
    let (stop, inject) = keep_doing(move || {
        for i in 0..64u64 {
            let _ = other.send_to(&msg(3, 1_000_000 + i as u32, i * 65_552, &[0xee; 1448]), session);
        }
        let _ = other.send_to(&msg(2, 2_000_000, 0, b""), session);
        std::thread::sleep(Duration::from_millis(1));
    });
    let out = child.wait_with_output().unwrap();
    stop.store(true, Ordering::Relaxed);
    inject.join().unwrap();
    assert_ok(&out);
    let infos = rx.wait_for_dumps(1, Duration::from_secs(20));
    assert_complete_dump(&infos[0], &key, &data);

    // 2. From the client's own IP but another port: the session parser keys clients by IP like netdumpd, but the
    //    daemon's session socket is connected to the client's exact address and port, so the kernel drops these.
    //    (A forger who matches address and port exactly needs raw sockets; what such bytes do is what
    //    chaos.rs's payload bit flips do: decryption refuses the dump.)
    let child = spawn_send(&rx, free_port(), &public, &dump);
    let session: SocketAddr = format!("127.0.0.1:{}", session_port(&rx)).parse().unwrap();
    let spoof = UdpSocket::bind("127.0.0.1:0").unwrap();
    // In the last chunk, so it would land before the real bytes for those offsets.
    for i in 0..8u64 {
        let _ = spoof.send_to(
            &msg(
                3,
                3_000_000 + i as u32,
                (4 << 20) - 8 * 1448 + i * 1448,
                &[0xee; 1448],
            ),
            session,
        );
    }
    let out = child.wait_with_output().unwrap();
    assert_ok(&out);
    let infos = rx.wait_for_dumps(2, Duration::from_secs(20));
    let core = core_for_info(&infos[1]);
    assert_eq!(sha256(&decrypt_with_library(&key, &core)), sha256(&data));
}

#[test]
fn herald_floods_and_malformed_datagrams_do_not_disturb_a_dump() {
    let tmp = tempfile::tempdir().unwrap();
    let rx = Receiver::start_with(
        &tmp.path().join("dumps"),
        &[
            "--log-format",
            "json",
            "--max-sessions",
            "16",
            "--herald-rate",
            "5",
        ],
        &[],
    );
    let herald_addr: SocketAddr = rx.addr.parse().unwrap();
    let key = PrivateKey::generate_x25519();
    let (_private, public) = write_key_pair(tmp.path(), "analyst", &key);
    let (_dump, data) = synthetic(tmp.path(), 4, 73);

    // The dump goes through stdin, and the flood runs while the client waits for the second half, so the flood
    // is sure to hit a live session (a loopback dump of a file can finish before a flood thread gets going).
    let (child, mut stdin) =
        spawn_send_from_stdin(&[os("--to"), os(&rx.addr), os("--recipient"), os(&public)]);
    let half = data.len() / 2;
    stdin.write_all(&data[..half]).unwrap();
    let session: SocketAddr = format!("127.0.0.1:{}", session_port(&rx)).parse().unwrap();

    // Heralds from 200 addresses, and junk at both ports from the client's own IP and from others.
    let sockets: Vec<UdpSocket> = (0..200u32)
        .map(|i| UdpSocket::bind(format!("127.0.{}.{}:0", 1 + i / 250, 2 + i % 250)).unwrap())
        .collect();
    let junk_sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    let junk: Vec<Vec<u8>> = vec![
        vec![],
        vec![0; 3],
        vec![0xff; 23],
        {
            let mut m = msg(3, 5, 0, b"abc");
            m.pop();
            m
        },
        {
            let mut m = msg(3, 5, 0, b"abc");
            m.push(0);
            m
        },
        msg(77, 5, 0, b"x"),
        msg(3, 5, u64::MAX - 1, b"abc"),
        msg(5, 5, 1 << 30, b"key"),
        msg(3, 5, 0, &vec![0xee; 65_507 - 24]),
        // A herald from the client's own IP (another port) while its dump flows: must not restart it.
        msg(1, 9, 0, b"../../../../etc/cron.d/x\0"),
    ];
    let flood_until = Instant::now() + Duration::from_millis(1500);
    let mut rounds = 0;
    while Instant::now() < flood_until {
        for s in &sockets {
            let _ = s.send_to(&msg(1, 1, 0, b"flood\0"), herald_addr);
        }
        for j in &junk {
            let _ = junk_sock.send_to(j, session);
            let _ = junk_sock.send_to(j, herald_addr);
        }
        rounds += 1;
        std::thread::sleep(Duration::from_millis(2));
        // The second half goes in while the flood is on.
        if rounds == 20 {
            stdin.write_all(&data[half..]).unwrap();
        }
    }
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    assert_ok(&out);
    let log = rx.log_text();
    assert!(
        log.contains("herald rate limit exceeded"),
        "the flood never reached the rate limits:\n{log}"
    );
    let infos = rx.wait_for_dumps(1, Duration::from_secs(20));
    let info = tmp.path().join("dumps/info.127.0.0.1.0");
    assert!(infos.contains(&info), "{infos:?}");
    assert_complete_dump(&info, &key, &data);

    // Fill the session table with sessions that never send a byte after their herald: one forged herald from
    // each of 16 fresh addresses (after a pause, so the rate limits let them in), until a further herald is
    // refused for the session limit. They must not lock a real client out for the idle timeout (600 s): a new
    // dump goes through now, by taking the slot of the oldest silent session.
    std::thread::sleep(Duration::from_millis(1100));
    let fillers: Vec<UdpSocket> = (0..17u32)
        .map(|i| UdpSocket::bind(format!("127.0.3.{}:0", 2 + i)).unwrap())
        .collect();
    let refusals = |rx: &Receiver| {
        rx.log_text()
            .matches("session limit reached; herald not acked")
            .count()
    };
    let refused_before = refusals(&rx);
    let deadline = Instant::now() + Duration::from_secs(10);
    for filler in fillers.iter().cycle() {
        let _ = filler.send_to(&msg(1, 1, 0, b"filler\0"), herald_addr);
        std::thread::sleep(Duration::from_millis(20));
        if refusals(&rx) > refused_before {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the session table never filled:\n{}",
            rx.log_text()
        );
    }
    let (dump2, data2) = synthetic(tmp.path(), 1, 74);
    let out = spawn_send(&rx, free_port(), &public, &dump2)
        .wait_with_output()
        .unwrap();
    assert_ok(&out);
    let log = rx.log_text();
    assert!(
        log.contains("closing a session that sent nothing after its herald"),
        "{log}"
    );
    let info = tmp.path().join("dumps/info.127.0.0.1.1");
    let deadline = Instant::now() + Duration::from_secs(20);
    while !std::fs::read_to_string(&info).is_ok_and(|t| t.contains("Dump complete")) {
        assert!(Instant::now() < deadline, "{}", rx.log_text());
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_complete_dump(&info, &key, &data2);
}

#[test]
fn traversal_paths_never_leave_the_dump_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let dumps = tmp.path().join("dumps");
    let outside = tmp.path().join("outside");
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::create_dir_all(&dumps).unwrap();
    // A symlink inside the dump directory pointing out of it.
    std::os::unix::fs::symlink(&outside, dumps.join("link")).unwrap();
    let rx = Receiver::start(&dumps);
    let herald_addr: SocketAddr = rx.addr.parse().unwrap();
    let paths: [&[u8]; 8] = [
        b"../outside",
        b"/tmp",
        b"a/../../outside",
        b"./../outside",
        b"link",
        b"link/deeper",
        b"x\\..\\..\\outside",
        b"%2e%2e/outside",
    ];
    for (i, path) in paths.iter().enumerate() {
        let ip = format!("127.0.3.{}", i + 1);
        let sock = UdpSocket::bind(format!("{ip}:0")).unwrap();
        sock.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        let mut payload = path.to_vec();
        payload.push(0);
        sock.send_to(&msg(1, 1, 0, &payload), herald_addr).unwrap();
        let mut buf = [0u8; 16];
        // Refused (no ack) or accepted into the default path: either way, then send a tiny dump.
        let Ok((4, session)) = sock.recv_from(&mut buf) else {
            continue;
        };
        sock.send_to(&msg(3, 2, 0, b"payload"), session).unwrap();
        let _ = sock.recv_from(&mut buf);
        sock.send_to(&msg(2, 3, 0, b""), session).unwrap();
        let _ = sock.recv_from(&mut buf);
    }
    std::thread::sleep(Duration::from_millis(300));
    assert!(walk(&outside).is_empty(), "written outside: {:?}", walk(&outside));
    assert!(
        walk(tmp.path()).iter().all(|p| p.starts_with(&dumps)),
        "{:?}",
        walk(tmp.path())
    );
    // Still serving.
    let (dump, data) = synthetic(tmp.path(), 1, 74);
    assert_ok(&send(&[
        os("--to"),
        os(&rx.addr),
        os("--plain"),
        dump.as_os_str(),
    ]));
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let f = dumps.join("vmcore.127.0.0.1.0");
        if std::fs::read(&f).is_ok_and(|d| sha256(&d) == sha256(&data)) {
            break;
        }
        assert!(Instant::now() < deadline, "{}", rx.log_text());
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A *delayed duplicate* of the client's own herald — same source address and port, same seqno, arriving a few
/// milliseconds after data started — must not make the receiver close the live session (netdumpd's "herald after
/// data = client restarted" rule did; docs/reliability.md, finding 1).
#[test]
fn a_delayed_duplicate_herald_does_not_restart_the_live_session() {
    let tmp = tempfile::tempdir().unwrap();
    let rx = Receiver::start(&tmp.path().join("dumps"));
    let herald_addr: SocketAddr = rx.addr.parse().unwrap();
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(500))).unwrap();
    let herald = msg(1, 1, 0, b"");
    sock.send_to(&herald, herald_addr).unwrap();
    let mut buf = [0u8; 16];
    let (_, session) = sock.recv_from(&mut buf).unwrap();
    sock.send_to(&msg(3, 2, 0, b"first"), session).unwrap();
    assert_eq!(sock.recv_from(&mut buf).unwrap().0, 4);
    // The network delivers the herald a second time, 5 ms late.
    std::thread::sleep(Duration::from_millis(5));
    sock.send_to(&herald, herald_addr).unwrap();
    std::thread::sleep(Duration::from_millis(50));
    sock.send_to(&msg(3, 3, 5, b"second"), session).unwrap();
    let mut acked = false;
    while let Ok((n, from)) = sock.recv_from(&mut buf) {
        if from == session && n == 4 && buf[..4] == 3u32.to_be_bytes() {
            acked = true;
            break;
        }
    }
    assert!(
        acked,
        "the live session stopped answering after a duplicate herald:\n{}",
        rx.log_text()
    );
}
