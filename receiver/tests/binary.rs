#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The real `sealdump-receiver` binary: start on an ephemeral port, SIGKILL mid-dump, restart, SIGTERM,
//! metrics, CLI errors.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, UdpSocket};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::*;
use sealdump_receiver::freebsd_client::{Dump, Order};

fn bin() -> Command {
    Command::new(assert_cmd::cargo::cargo_bin!("sealdump-receiver"))
}

/// Starts the daemon on 127.0.0.1:0 and reads "listening on ADDR" from its stdout.
fn spawn(dir: &std::path::Path, extra: &[&str]) -> (Child, SocketAddr) {
    spawn_bound(dir, Some("127.0.0.1"), extra)
}

/// Starts the daemon with `-a BIND` (all addresses when `None`) on an ephemeral port.
fn spawn_bound(dir: &std::path::Path, bind: Option<&str>, extra: &[&str]) -> (Child, SocketAddr) {
    let mut child = bin()
        .args(["-D", "-d", dir.to_str().unwrap(), "--port", "0", "--no-resolve"])
        .args(bind.map(|b| ["-a", b]).iter().flatten())
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("got {line:?}"))
        .parse()
        .unwrap();
    (child, addr)
}

fn exchange(sock: &UdpSocket, to: SocketAddr, msg: &[u8]) -> Option<(u32, SocketAddr)> {
    sock.send_to(msg, to).unwrap();
    let mut b = [0u8; 16];
    match sock.recv_from(&mut b) {
        Ok((4, from)) => Some((u32::from_be_bytes([b[0], b[1], b[2], b[3]]), from)),
        _ => None,
    }
}

fn signal(child: &Child, sig: &str) {
    let ok = Command::new("kill")
        .args([sig, &child.id().to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok);
}

#[test]
fn sigkill_mid_dump_keeps_partial_files_and_restart_uses_next_index() {
    let dir = tempfile::tempdir().unwrap();
    let (mut child, addr) = spawn(dir.path(), &[]);
    let c = UdpSocket::bind("127.0.0.1:0").unwrap();
    c.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let (_, session) = exchange(&c, addr, &raw_msg(1, 1, 0, b"")).unwrap();
    let core = pattern(200 * 1448, 21);
    for (i, chunk) in core.chunks(1448).enumerate() {
        let seq = 2 + i as u32;
        assert_eq!(
            exchange(&c, session, &raw_msg(3, seq, (i * 1448) as u64, chunk))
                .unwrap()
                .0,
            seq
        );
    }
    // Acked data reaches the file within the idle flush interval, before any fsync.
    std::thread::sleep(Duration::from_millis(300));
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(read(dir.path().join("vmcore.127.0.0.1.0")), core);
    assert_eq!(
        read_text(dir.path().join("info.127.0.0.1.0")),
        "Dump from 127.0.0.1 [127.0.0.1]\n"
    );

    let (mut child, addr) = spawn(dir.path(), &[]);
    let next = pattern(10_000, 22);
    client(addr, Order::FreeBsd13)
        .send_dump(&Dump {
            core: &next,
            kdh: None,
            key: None,
        })
        .unwrap();
    assert!(wait_info_closed(dir.path().join("info.127.0.0.1.1")).ends_with("Dump complete\n"));
    assert_eq!(read(dir.path().join("vmcore.127.0.0.1.1")), next);
    assert_eq!(
        read(dir.path().join("vmcore.127.0.0.1.0")),
        core,
        "the partial dump is untouched"
    );
    signal(&child, "-TERM");
    assert!(child.wait().unwrap().success());
}

#[test]
fn sigterm_closes_sessions_and_exits_zero() {
    let dir = tempfile::tempdir().unwrap();
    let pidfile = dir.path().join("pid");
    let (mut child, addr) = spawn(
        dir.path(),
        &["-P", pidfile.to_str().unwrap(), "--log-format", "json"],
    );
    assert_eq!(read_text(&pidfile), format!("{}\n", child.id()));
    let c = UdpSocket::bind("127.0.0.1:0").unwrap();
    c.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let (_, session) = exchange(&c, addr, &raw_msg(1, 1, 0, b"")).unwrap();
    exchange(&c, session, &raw_msg(3, 2, 0, b"half")).unwrap();
    signal(&child, "-TERM");
    assert!(child.wait().unwrap().success());
    assert!(read_text(dir.path().join("info.127.0.0.1.0")).ends_with("Dump incomplete: client timed out\n"));
    assert!(!pidfile.exists());
}

#[test]
fn metrics_endpoint_counts_dumps() {
    let dir = tempfile::tempdir().unwrap();
    // Port 0 for metrics too: find it by asking the OS for a free port first.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let metrics = format!("127.0.0.1:{port}");
    let (mut child, addr) = spawn(dir.path(), &["--metrics", &metrics]);
    client(addr, Order::FreeBsd12)
        .send_dump(&Dump {
            core: &pattern(70_000, 1),
            kdh: None,
            key: None,
        })
        .unwrap();
    wait_info_closed(dir.path().join("info.127.0.0.1.0"));
    let mut body = String::new();
    wait_for("metrics", Duration::from_secs(5), || {
        body.clear();
        let mut s = std::net::TcpStream::connect(&metrics).unwrap();
        s.write_all(b"GET /metrics HTTP/1.0\r\n\r\n").unwrap();
        s.read_to_string(&mut body).unwrap();
        body.contains("sealdump_dumps_complete_total 1\n")
    });
    assert!(body.contains("sealdump_bytes_total 70000\n"), "{body}");
    assert!(body.contains("sealdump_sessions_started_total 1\n"), "{body}");
    signal(&child, "-TERM");
    child.wait().unwrap();
}

#[test]
fn cli_errors_are_one_line_with_exit_2() {
    let out = bin().args(["-d", "/nonexistent/dumps"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(
        err,
        "sealdump-receiver: dump directory /nonexistent/dumps does not exist\n"
    );

    let dir = tempfile::tempdir().unwrap();
    let not_exec = dir.path().join("h.sh");
    std::fs::write(&not_exec, "#!/bin/sh\n").unwrap();
    let out = bin()
        .args([
            "-d",
            dir.path().to_str().unwrap(),
            "-i",
            not_exec.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8(out.stderr)
            .unwrap()
            .contains("is not an executable file")
    );

    let out = bin().args(["--max-dump-size", "12Q"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));

    let help = bin().arg("--help").output().unwrap();
    assert!(help.status.success());
    let text = String::from_utf8(help.stdout).unwrap();
    for needle in [
        "-d <DUMPDIR>",
        "-a <BIND_ADDR>",
        "--port",
        "-i <HANDLER>",
        "-P <PIDFILE>",
        "listening on",
        "Examples:",
    ] {
        assert!(text.contains(needle), "--help lacks {needle}");
    }
}

#[test]
fn write_error_stops_acking_and_is_recorded() {
    let dir = tempfile::tempdir().unwrap();
    // A file-size limit (SIGXFSZ ignored) makes pwrite fail with EFBIG past ~100 KiB (dash: 512-byte blocks).
    let mut child = Command::new("sh")
        .arg("-c")
        .arg("trap '' XFSZ; ulimit -f 200; exec \"$0\" \"$@\"")
        .arg(assert_cmd::cargo::cargo_bin!("sealdump-receiver"))
        .args([
            "-D",
            "-d",
            dir.path().to_str().unwrap(),
            "-a",
            "127.0.0.1",
            "--port",
            "0",
            "--no-resolve",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr: SocketAddr = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap()
        .parse()
        .unwrap();
    let mut cfg = client_config(addr, Order::FreeBsd13);
    cfg.retries = 3;
    cfg.retransmit_after = Duration::from_millis(100);
    let core = pattern(4 << 20, 30);
    let err = sealdump_receiver::freebsd_client::Client::new(cfg)
        .unwrap()
        .send_dump(&Dump {
            core: &core,
            kdh: None,
            key: None,
        })
        .unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::TimedOut);
    let info = wait_info_closed(dir.path().join("info.127.0.0.1.0"));
    let last = info.lines().last().unwrap();
    assert!(
        last.starts_with("Dump unsuccessful: write error @ offset "),
        "{info}"
    );
    assert!(last.contains("File too large"), "{info}");
    signal(&child, "-TERM");
    assert!(child.wait().unwrap().success());
}

/// Bound to all addresses (netdumpd's default), the daemon answers from the address each herald was sent to:
/// a FreeBSD client takes acks only from the server address it was given, so a receiver reached at one of
/// several addresses must not answer from another (netdumpd uses IP_RECVDSTADDR for this; we use IP_PKTINFO).
#[test]
fn bound_to_all_addresses_it_answers_from_the_address_the_client_used() {
    for bind in [None, Some("0.0.0.0")] {
        let dir = tempfile::tempdir().unwrap();
        let (mut child, addr) = spawn_bound(dir.path(), bind, &[]);
        for (n, server_ip) in ["127.0.0.2", "127.0.0.3"].into_iter().enumerate() {
            let server: SocketAddr = format!("{server_ip}:{}", addr.port()).parse().unwrap();
            // The raw exchange: herald ack and session acks come from the herald's destination address.
            let c = UdpSocket::bind("127.0.0.1:0").unwrap();
            c.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
            let (seq, session) = exchange(&c, server, &raw_msg(1, 1, 0, b"")).unwrap();
            assert_eq!(seq, 1);
            assert_eq!(session.ip().to_string(), server_ip, "bind {bind:?}");
            let (seq, from) = exchange(&c, session, &raw_msg(3, 2, 0, b"data")).unwrap();
            assert_eq!((seq, from), (2, session));
            assert_eq!(exchange(&c, session, &raw_msg(2, 3, 0, b"")).unwrap().0, 3);
            assert!(
                wait_info_closed(dir.path().join(format!("info.127.0.0.1.{}", 2 * n)))
                    .ends_with("Dump complete\n")
            );
            // The FreeBSD client emulator, which like the kernel drops acks from any other address.
            let core = pattern(300_000, 40 + n as u64);
            client(server, Order::FreeBsd13)
                .send_dump(&Dump {
                    core: &core,
                    kdh: None,
                    key: None,
                })
                .unwrap_or_else(|e| panic!("bind {bind:?}, server {server}: {e}"));
            let info = dir.path().join(format!("info.127.0.0.1.{}", 2 * n + 1));
            assert!(wait_info_closed(info).ends_with("Dump complete\n"));
            assert_eq!(
                read(dir.path().join(format!("vmcore.127.0.0.1.{}", 2 * n + 1))),
                core
            );
        }
        signal(&child, "-TERM");
        assert!(child.wait().unwrap().success());
    }
}
