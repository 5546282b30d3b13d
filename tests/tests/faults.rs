//! Faults, seen from both ends: the receiver SIGKILLed mid-dump and restarted; a client that stops mid-dump
//! (killed: no trailer; input error: an authentic "aborted" trailer); the dump directory filling up while another
//! session on another filesystem continues. In every case: the partial is kept and marked, it is never reported
//! complete, it is never overwritten, and the daemon goes on serving.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use sealdump_crypto::AeadId;
use sealdump_crypto::keys::PrivateKey;
use sealdump_crypto::seal::TrailerStatus;
use sealdump_drivers::hosted::sender::{self, Outcome, OwnedMetadata, Security, SendConfig};
use sealdump_tests::*;

/// `sealdump-send` reading the dump from a pipe, so the test controls how far it gets.
fn piped_sender(to: &str, public: &Path, timeout: &str) -> Child {
    Command::new(bin("sealdump-send"))
        .args([
            "--client-port",
            "0",
            "-q",
            "--timeout",
            timeout,
            "--to",
            to,
            "--recipient",
        ])
        .arg(public)
        .arg("-")
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Waits until some file below `dir` whose name starts with `prefix` holds at least `len` bytes.
fn wait_for_file(dir: &Path, prefix: &str, len: u64) -> PathBuf {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(p) = walk(dir)
            .into_iter()
            .find(|p| file_name(p).starts_with(prefix) && std::fs::metadata(p).is_ok_and(|m| m.len() >= len))
        {
            return p;
        }
        assert!(
            Instant::now() < deadline,
            "no {prefix}* of {len} bytes: {:?}",
            walk(dir)
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn receiver_sigkill_mid_dump_then_restart() {
    let tmp = tempfile::tempdir().unwrap();
    let dumps = tmp.path().join("dumps");
    let mut rx = Receiver::start(&dumps);
    let port: u16 = rx.addr.rsplit(':').next().unwrap().parse().unwrap();
    let key = PrivateKey::generate_x25519();
    let (_private, public) = write_key_pair(tmp.path(), "analyst", &key);
    let (_dump, data) = synthetic(tmp.path(), 4, 31);

    let mut child = piped_sender(&rx.addr, &public, "2");
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(&data[..1 << 20]).unwrap();
    wait_for_file(&dumps, "vmcore", 512 << 10);
    rx.signal("KILL");
    let _ = rx.child.wait();
    assert!(!rx.is_running());
    // The client goes on, gets no more acks, and gives up with exit 1 at its deadline.
    let _ = stdin.write_all(&data[1 << 20..]);
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    let info0 = std::fs::read_to_string(dumps.join("info.127.0.0.1.0")).unwrap();
    let partial = core_for_info(&dumps.join("info.127.0.0.1.0"));
    let partial_bytes = std::fs::read(&partial).unwrap();
    assert!(!info0.contains("Dump complete"), "{info0}");
    assert!(
        try_decrypt_with_library(&key, &partial).is_err(),
        "a killed dump decrypted as whole"
    );

    // Restart on the same port; the client resends the whole dump.
    let rx = Receiver::spawn(&[], "127.0.0.1", port, &dumps, &[], &[]);
    let (dump, _) = synthetic(tmp.path(), 4, 31);
    assert_ok(&send_sealed(&rx, &public, &dump));
    let infos = rx.wait_for_dumps(1, Duration::from_secs(20));
    assert_eq!(
        file_name(&infos[0]),
        "info.127.0.0.1.1",
        "the partial's index is not reused"
    );
    assert_complete_dump(&infos[0], &key, &data);
    assert_eq!(
        std::fs::read(&partial).unwrap(),
        partial_bytes,
        "the partial dump was touched"
    );
    assert_eq!(
        std::fs::read_to_string(dumps.join("info.127.0.0.1.0")).unwrap(),
        info0
    );
}

#[test]
fn client_killed_mid_dump_leaves_a_marked_partial_that_is_never_overwritten() {
    let tmp = tempfile::tempdir().unwrap();
    let rx = Receiver::start_with(&tmp.path().join("dumps"), &["--idle-timeout", "2"], &[]);
    let key = PrivateKey::generate_x25519();
    let (_private, public) = write_key_pair(tmp.path(), "analyst", &key);
    let (_dump, data) = synthetic(tmp.path(), 4, 41);

    let mut child = piped_sender(&rx.addr, &public, "30");
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(&data[..1 << 20]).unwrap();
    wait_for_file(&rx.dir, "vmcore", 512 << 10);
    child.kill().unwrap();
    child.wait().unwrap();
    drop(stdin);

    // The receiver times the session out: marked incomplete, kept, not decryptable as a whole dump.
    let infos = rx.wait_for_dumps(1, Duration::from_secs(20));
    let info0 = std::fs::read_to_string(&infos[0]).unwrap();
    // Renamed to vmcore_encrypted.* once the seal header arrived.
    let partial = core_for_info(&infos[0]);
    assert!(info0.contains("Dump incomplete"), "{info0}");
    assert!(!info0.contains("Dump complete"), "{info0}");
    let partial_bytes = std::fs::read(&partial).unwrap();
    assert!(!partial_bytes.is_empty());
    assert!(try_decrypt_with_library(&key, &partial).is_err());

    // The same client comes back: a new index, the partial untouched.
    let (dump, _) = synthetic(tmp.path(), 4, 41);
    assert_ok(&send_sealed(&rx, &public, &dump));
    let infos = rx.wait_for_dumps(2, Duration::from_secs(20));
    assert_complete_dump(&infos[1], &key, &data);
    assert_eq!(std::fs::read(&partial).unwrap(), partial_bytes);
    assert_eq!(std::fs::read_to_string(&infos[0]).unwrap(), info0);
}

/// Yields `good` bytes, then fails like a dying disk.
struct FailingReader {
    data: Vec<u8>,
    pos: usize,
}

impl Read for FailingReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.pos >= self.data.len() {
            return Err(std::io::Error::other("injected read error"));
        }
        let n = buf.len().min(self.data.len() - self.pos);
        buf[..n].copy_from_slice(&self.data[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

#[test]
fn input_error_sends_an_authentic_aborted_trailer_never_reported_complete() {
    let tmp = tempfile::tempdir().unwrap();
    let rx = Receiver::start_with(&tmp.path().join("dumps"), &["--idle-timeout", "2"], &[]);
    let key = PrivateKey::generate_x25519();
    let (_dump, data) = synthetic(tmp.path(), 3, 51);
    // The send loop reads 1 MiB blocks: the error comes after two of them.
    let good = 2 << 20;
    let config = SendConfig {
        server: rx.addr.parse().unwrap(),
        bind: SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0),
        herald_path: Vec::new(),
        payload_size: 1448,
        window: 256,
        chunk_buffers: 2,
        give_up_after: Duration::from_secs(10),
        security: Security::Sealed {
            recipients: vec![key.public_key()],
            aead: AeadId::ChaCha20Poly1305,
            chunk_shift: 16,
            metadata: OwnedMetadata::default(),
        },
    };
    let reader = FailingReader {
        data: data[..good].to_vec(),
        pos: 0,
    };
    let outcome = sender::send(&config, Box::new(reader), None, &mut |_| {}).unwrap();
    assert!(matches!(outcome, Outcome::InputFailed(_)), "{outcome:?}");

    let infos = rx.wait_for_dumps(1, Duration::from_secs(20));
    let info = std::fs::read_to_string(&infos[0]).unwrap();
    assert!(
        !info.contains("Dump complete"),
        "an aborted dump reported complete: {info}"
    );
    assert!(info.contains("Dump incomplete"), "{info}");
    // What arrived is authentic and says so: status Aborted, the plaintext a prefix of the input.
    let (plain, trailer) = try_decrypt_with_library(&key, &core_for_info(&infos[0])).unwrap();
    assert_eq!(trailer.status, TrailerStatus::Aborted);
    assert!(!plain.is_empty() && plain.len() <= good);
    assert_eq!(plain[..], data[..plain.len()]);
}

/// A tmpfs mounted on `path`; unmounted on drop.
struct Tmpfs(PathBuf);

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// A sealed send of `path` from `ip` in this process.
fn send_from(ip: Ipv4Addr, server: &str, key: &PrivateKey, path: &Path) -> Outcome {
    let config = SendConfig {
        server: server.parse().unwrap(),
        bind: SocketAddr::new(IpAddr::V4(ip), 0),
        herald_path: Vec::new(),
        payload_size: 1448,
        window: 256,
        chunk_buffers: 2,
        give_up_after: Duration::from_secs(10),
        security: Security::Sealed {
            recipients: vec![key.public_key()],
            aead: AeadId::Aes256Gcm,
            chunk_shift: 16,
            metadata: OwnedMetadata::default(),
        },
    };
    let input = std::fs::File::open(path).unwrap();
    sender::send(&config, Box::new(input), None, &mut |_| {}).unwrap()
}

/// The info file of host `ip` (index 0) directly in `dir`, once it has a final line.
fn final_info(rx: &Receiver, dir: &Path, ip: &str) -> String {
    let path = dir.join(format!("info.{ip}.0"));
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        if text.contains("Dump complete")
            || text.contains("Dump incomplete")
            || text.contains("Dump unsuccessful")
        {
            return text;
        }
        assert!(
            Instant::now() < deadline,
            "{}: {text}\n{}",
            path.display(),
            rx.log_text()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn dump_directory_filling_up_fails_that_dump_only() {
    if !is_root() || !have_program("mount") {
        eprintln!("skipped: mounting a small tmpfs needs root");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dumps = tmp.path().join("dumps");
    let small = dumps.join("small");
    std::fs::create_dir_all(&small).unwrap();
    let status = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=3m,mode=0700", "sealdump-test"])
        .arg(&small)
        .status()
        .unwrap();
    if !status.success() {
        eprintln!("skipped: cannot mount tmpfs here");
        return;
    }
    let _mount = Tmpfs(small.clone());
    let rx = Receiver::start(&dumps);
    let key = PrivateKey::generate_x25519();
    let (_private, public) = write_key_pair(tmp.path(), "analyst", &key);
    let (big, _) = synthetic(tmp.path(), 8, 61);
    let (other, other_data) = synthetic(tmp.path(), 4, 62);

    // Both at once: `big` (from 127.0.0.1) goes to the 3 MiB filesystem (herald path "small"), `other` (from
    // 127.0.0.2) to the dump directory on another filesystem.
    let big_child = Command::new(bin("sealdump-send"))
        .args([
            "--client-port",
            "0",
            "-q",
            "--timeout",
            "3",
            "--to",
            &rx.addr,
            "--path",
            "small",
            "--recipient",
        ])
        .arg(&public)
        .arg(&big)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let other_outcome = send_from(Ipv4Addr::new(127, 0, 0, 2), &rx.addr, &key, &other);
    let big_out = big_child.wait_with_output().unwrap();
    assert_eq!(
        big_out.status.code(),
        Some(1),
        "the dump that cannot be stored must fail: {}",
        String::from_utf8_lossy(&big_out.stderr)
    );
    // Whatever the big session's info file says, it never says complete.
    std::thread::sleep(Duration::from_millis(500));
    let big_info = std::fs::read_to_string(small.join("info.127.0.0.1.0")).unwrap();
    assert!(!big_info.contains("Dump complete"), "{big_info}");

    let other_info = final_info(&rx, &dumps, "127.0.0.2");
    // The session on the healthy filesystem is not disturbed.
    assert!(
        matches!(other_outcome, Outcome::Done(_)),
        "other session failed: {other_outcome:?}\n{}",
        rx.log_text()
    );
    assert!(other_info.contains("Dump complete"), "{other_info}");
    assert_complete_dump(&dumps.join("info.127.0.0.2.0"), &key, &other_data);

    // The daemon still serves a new client.
    let (again, again_data) = synthetic(tmp.path(), 1, 63);
    let outcome = send_from(Ipv4Addr::new(127, 0, 0, 3), &rx.addr, &key, &again);
    assert!(
        matches!(outcome, Outcome::Done(_)),
        "{outcome:?}\n{}",
        rx.log_text()
    );
    assert!(final_info(&rx, &dumps, "127.0.0.3").contains("Dump complete"));
    assert_complete_dump(&dumps.join("info.127.0.0.3.0"), &key, &again_data);
    // And the client whose dump failed can dump again (to the healthy directory).
    let out = send_sealed(&rx, &public, &again);
    assert_ok(&out);
}
