//! The product's central promise, end to end: a bare-metal kernel (testkernel/) with no heap and no OS fills
//! 32 MiB with a known pattern, panics, and from its panic handler sends that memory, sealed for an X25519
//! recipient, through client-core + smoltcp + virtio-net to a real `sealdump-receiver` on 127.0.0.1. The test
//! then decrypts the stored dump (library and `sealdump-decryptor`) and compares it with the pattern, and reads
//! QEMU's packet capture back with `tshark` to count the netdump messages by type.
//!
//! Needs `qemu-system-x86_64` (Debian: `apt-get install -y qemu-system-x86`) and the `x86_64-unknown-none`
//! target (`rustup target add x86_64-unknown-none`); without them the test prints why and passes as skipped.
//! `tshark` is optional (the capture check is skipped without it). Runs QEMU with TCG (no KVM needed).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use sealdump_crypto::keys::{PrivateKey, PublicKey};
use sealdump_crypto::seal::HeaderView;

/// The kernel's pattern, compiled from the kernel's own source so the two cannot drift apart.
#[path = "../../testkernel/src/pattern.rs"]
#[allow(dead_code)]
mod pattern;

const REPO: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
/// Bytes the kernel dumps (SEALDUMP_TK_DUMP_MIB, set below).
const DUMP_MIB: usize = 32;
/// QEMU status for the kernel's `ExitCode::Success` (isa-debug-exit: 2 * 0x10 + 1).
const EXIT_SUCCESS: i32 = 33;
/// The kernel's give-up deadline (no ack progress for this long: exit status 39).
const GIVE_UP_SECS: u64 = 8;
/// Exit statuses of the failure paths (docs/baremetal.md).
const EXIT_NO_NIC: i32 = 35;
const EXIT_NETWORK_FAILED: i32 = 39;
/// Whole QEMU run, boot to exit (about 3 s here; generous for slow CI machines).
const QEMU_TIMEOUT: Duration = Duration::from_secs(120);

fn tool_exists(name: &str, version_arg: &str) -> bool {
    Command::new(name)
        .arg(version_arg)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn bare_metal_target_installed() -> bool {
    let Ok(out) = Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output()
    else {
        // No rustup: assume a toolchain that carries the target, the build will tell otherwise.
        return true;
    };
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .any(|l| l.trim() == "x86_64-unknown-none")
}

/// target/<profile> of this test binary, with sealdump-receiver and sealdump-decryptor built into it.
fn workspace_bins() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().unwrap().parent().unwrap().to_path_buf(); // target/<profile>/deps/qemu-<hash>
    let release = dir.file_name().is_some_and(|n| n == "release");
    for (package, required) in [("sealdump-receiver", true), ("sealdump-decryptor", false)] {
        let mut cmd = Command::new(env!("CARGO"));
        cmd.args(["build", "--quiet", "--bins", "-p", package])
            .current_dir(REPO);
        if release {
            cmd.arg("--release");
        }
        let ok = cmd.status().is_ok_and(|s| s.success());
        assert!(ok || !required, "building {package} failed");
    }
    dir
}

/// `sealdump-receiver` on 127.0.0.1 with an ephemeral port; killed on drop.
struct Receiver {
    child: Child,
    addr: std::net::SocketAddr,
}

impl Receiver {
    fn start(bin: &Path, dir: &Path) -> Receiver {
        let mut child = Command::new(bin)
            .args(["-D", "-a", "127.0.0.1", "--port", "0", "-d"])
            .arg(dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start sealdump-receiver");
        let lines = read_lines_in_background(&mut child);
        let deadline = Instant::now() + Duration::from_secs(20);
        let addr = loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = lines
                .recv_timeout(left)
                .expect("sealdump-receiver never said where it listens");
            if let Some(rest) = line.to_ascii_lowercase().split("listening on ").nth(1)
                && let Some(word) = rest.split_whitespace().next()
                && let Ok(addr) = word.trim_matches(|c| c == '"' || c == ',').parse()
            {
                break addr;
            }
        };
        Receiver { child, addr }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn read_lines_in_background(child: &mut Child) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    let streams: Vec<Box<dyn Read + Send>> = vec![
        Box::new(child.stdout.take().unwrap()),
        Box::new(child.stderr.take().unwrap()),
    ];
    for stream in streams {
        let tx = tx.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stream).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
    }
    rx
}

fn build_kernel(port: u16, recipient_file: &Path) -> PathBuf {
    let out = Command::new("sh")
        .arg(Path::new(REPO).join("scripts/build-testkernel"))
        .env("CARGO", env!("CARGO"))
        // Its own target dir: the kernel's dependencies are built for x86_64-unknown-none with other flags.
        .env("CARGO_TARGET_DIR", Path::new(REPO).join("target/testkernel"))
        .env("SEALDUMP_TK_PORT", port.to_string())
        .env("SEALDUMP_TK_RECIPIENT", recipient_file)
        .env("SEALDUMP_TK_DUMP_MIB", DUMP_MIB.to_string())
        .env("SEALDUMP_TK_GIVE_UP_SECS", GIVE_UP_SECS.to_string())
        .stderr(Stdio::inherit())
        .output()
        .expect("run scripts/build-testkernel");
    assert!(out.status.success(), "scripts/build-testkernel failed");
    let path = PathBuf::from(String::from_utf8(out.stdout).unwrap().trim());
    assert!(path.is_file(), "no kernel at {}", path.display());
    path
}

/// Boots the kernel; returns (exit status, serial console output).
/// Boots the kernel on `machine` ("q35" or "pc") with `cpu` ("qemu64": no RDRAND; "max": RDRAND).
fn run_qemu(kernel: &Path, pcap: &Path, machine: &str, cpu: &str) -> (Option<i32>, String) {
    let mut cmd = Command::new("qemu-system-x86_64");
    cmd.args([
        "-nic",
        "none",
        "-netdev",
        "user,id=n0",
        "-device",
        "virtio-net-pci,netdev=n0,romfile=",
    ])
    .arg("-object")
    .arg(format!("filter-dump,id=f0,netdev=n0,file={}", pcap.display()));
    run_qemu_with(cmd, kernel, machine, cpu)
}

/// Boots the kernel with no network device at all.
fn run_qemu_without_nic(kernel: &Path) -> (Option<i32>, String) {
    let mut cmd = Command::new("qemu-system-x86_64");
    cmd.args(["-nic", "none"]);
    run_qemu_with(cmd, kernel, "q35", "qemu64")
}

fn run_qemu_with(mut cmd: Command, kernel: &Path, machine: &str, cpu: &str) -> (Option<i32>, String) {
    let mut child = cmd
        .args(["-machine", machine, "-cpu", cpu])
        .args(["-accel", "tcg", "-m", "128M", "-no-reboot", "-display", "none"])
        .arg("-kernel")
        .arg(kernel)
        .args([
            "-device",
            "isa-debug-exit,iobase=0xf4,iosize=0x04",
            "-serial",
            "stdio",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start qemu-system-x86_64");
    let lines = read_lines_in_background(&mut child);
    let deadline = Instant::now() + QEMU_TIMEOUT;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status.code();
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    // Give the reader threads a moment to drain the pipes.
    std::thread::sleep(Duration::from_millis(100));
    let console: Vec<String> = lines.try_iter().collect();
    (status, console.join("\n"))
}

fn files_in(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    files
}

fn name_of(path: &Path) -> String {
    path.file_name().unwrap().to_string_lossy().into_owned()
}

/// The sealed stream the receiver stored, once its info file says the dump is complete.
fn stored_stream(dir: &Path) -> PathBuf {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let files = files_in(dir);
        let info_done = files
            .iter()
            .any(|p| name_of(p).starts_with("info.") && !name_of(p).ends_with(".last"));
        let stream = files.iter().find(|p| {
            let name = name_of(p);
            name.starts_with("vmcore_encrypted.") && !name.ends_with(".last")
        });
        if let Some(stream) = stream
            && info_done
        {
            return stream.clone();
        }
        assert!(
            Instant::now() < deadline,
            "no complete sealed dump in {}: {files:?}",
            dir.display()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Decrypts a stored sealed dump with the crypto library, authenticating every chunk and the trailer.
fn decrypt(key: &PrivateKey, stream_path: &Path) -> Vec<u8> {
    let key_blob = stream_path.with_file_name(name_of(stream_path).replacen("vmcore_encrypted.", "key.", 1));
    let blob = std::fs::read(key_blob).unwrap();
    let stream = std::fs::read(stream_path).unwrap();
    let header = HeaderView::parse(&blob).unwrap();
    let key_id = key.public_key().key_id();
    let stanza = header
        .stanzas()
        .find(|s| s.key_id == key_id)
        .expect("a stanza for our key");
    let dump_key = key.unwrap_stanza(&stanza, &header).unwrap();
    let opener = header.open(&dump_key).unwrap();
    let metadata = opener.metadata();
    assert_eq!(
        metadata.expected_length(),
        (DUMP_MIB << 20) as u64,
        "sealed metadata: expected length"
    );
    assert_eq!(
        metadata.panic_string(),
        b"deliberate panic to test the dump path",
        "sealed panic string"
    );
    assert_eq!(metadata.architecture(), b"amd64");
    let (chunks, trailer_at) = opener
        .trailer_position(stream.len() as u64)
        .expect("a trailer position");
    let trailer_at = usize::try_from(trailer_at).unwrap();
    let trailer = opener.open_trailer(chunks, &stream[trailer_at..]).unwrap();
    assert_eq!(trailer.chunk_count, chunks);
    let mut plain = Vec::with_capacity(DUMP_MIB << 20);
    for index in 0..chunks {
        let start = usize::try_from(opener.record_offset(index)).unwrap();
        let end = usize::try_from(opener.record_offset(index + 1))
            .unwrap()
            .min(trailer_at);
        let mut record = stream[start..end].to_vec();
        let len = opener.open_chunk(index, &mut record).unwrap();
        plain.extend_from_slice(&record[..len]);
    }
    assert_eq!(trailer.total_len, plain.len() as u64, "trailer total length");
    plain
}

fn expected_memory() -> Vec<u8> {
    let mut memory = vec![0u8; DUMP_MIB << 20];
    pattern::fill(&mut memory);
    memory
}

/// First differing offset, for a readable failure instead of a 32 MiB diff.
fn first_difference(a: &[u8], b: &[u8]) -> Option<usize> {
    a.iter()
        .zip(b)
        .position(|(x, y)| x != y)
        .or((a.len() != b.len()).then(|| a.len().min(b.len())))
}

/// tshark's output goes to a file (not a pipe), so that it runs to the end while the test does other work.
fn spawn_tshark(pcap: &Path, out: &Path) -> Child {
    Command::new("tshark")
        .arg("-r")
        .arg(pcap)
        .args([
            "-Y",
            "ip.src == 10.0.2.15 && udp",
            "-T",
            "fields",
            "-e",
            "udp.payload",
        ])
        .stdout(std::fs::File::create(out).unwrap())
        .stderr(Stdio::null())
        .spawn()
        .expect("run tshark")
}

/// Netdump messages the guest sent, from QEMU's capture read back by tshark: count per message type, and the
/// distinct VMCORE (offset, length) pairs (retransmissions collapse).
fn capture_by_type(mut tshark: Child, out: &Path) -> (BTreeMap<u32, usize>, BTreeMap<u64, usize>) {
    assert!(tshark.wait().unwrap().success(), "tshark -r failed");
    let text = std::fs::read(out).unwrap();
    let mut by_type = BTreeMap::new();
    let mut vmcore = BTreeMap::new();
    // Only the 24-byte header is decoded (48 hex digits); the payload length comes from the hex length.
    for line in String::from_utf8_lossy(&text).lines() {
        let digits = line.bytes().filter(u8::is_ascii_hexdigit).count();
        if digits < 48 {
            continue;
        }
        let header_hex: String = line.chars().filter(char::is_ascii_hexdigit).take(48).collect();
        let header = hex::decode(header_hex).expect("hex payload from tshark");
        let msg_type = u32::from_be_bytes(header[0..4].try_into().unwrap());
        *by_type.entry(msg_type).or_insert(0) += 1;
        if msg_type == 3 {
            let offset = u64::from_be_bytes(header[8..16].try_into().unwrap());
            vmcore.insert(offset, digits / 2 - 24);
        }
    }
    (by_type, vmcore)
}

#[test]
fn bare_metal_kernel_sends_its_memory_sealed_through_virtio_net() {
    if !tool_exists("qemu-system-x86_64", "--version") {
        println!("SKIPPED: qemu-system-x86_64 not found (Debian: apt-get install -y qemu-system-x86)");
        return;
    }
    if !bare_metal_target_installed() {
        println!("SKIPPED: Rust target x86_64-unknown-none missing (rustup target add x86_64-unknown-none)");
        return;
    }
    let started = Instant::now();
    let tmp = tempfile::tempdir().unwrap();
    let dump_dir = tmp.path().join("dumps");
    std::fs::create_dir(&dump_dir).unwrap();

    // The recipient: private key stays here, the public key is baked into the kernel.
    let key = PrivateKey::generate_x25519();
    let PublicKey::X25519(public) = key.public_key() else {
        unreachable!("generated an X25519 key")
    };
    let recipient_file = tmp.path().join("recipient.x25519");
    std::fs::write(&recipient_file, public).unwrap();
    let key_file = tmp.path().join("recipient.key");
    sealdump_crypto::keys::write_private_key_file(&key_file, &key, None, false).unwrap();

    let bins = workspace_bins();
    let receiver = Receiver::start(&bins.join("sealdump-receiver"), &dump_dir);
    let kernel = build_kernel(receiver.addr.port(), &recipient_file);
    let built = started.elapsed();

    let pcap = tmp.path().join("qemu.pcap");
    let boot = Instant::now();
    let (status, console) = run_qemu(&kernel, &pcap, "q35", "qemu64");
    let ran = boot.elapsed();
    println!("--- kernel console ---\n{console}\n---");
    assert_eq!(
        status,
        Some(EXIT_SUCCESS),
        "kernel exit status (33 = dump acknowledged); console above"
    );
    assert!(
        console.contains("sealed for 1 X25519 recipient"),
        "the kernel did not seal"
    );

    let stream = stored_stream(&dump_dir);
    let checks = Instant::now();
    // The decryptor CLI and tshark run while the library decrypts (they are independent; this halves the time).
    let decryptor = bins.join("sealdump-decryptor");
    let decrypted_file = tmp.path().join("vmcore.decrypted");
    let decryptor_run = decryptor.is_file().then(|| {
        Command::new(&decryptor)
            .arg("--key")
            .arg(&key_file)
            .arg("-o")
            .arg(&decrypted_file)
            .arg(&stream)
            .spawn()
            .unwrap()
    });
    let tshark_out = tmp.path().join("tshark.txt");
    let tshark_run = tool_exists("tshark", "--version").then(|| spawn_tshark(&pcap, &tshark_out));

    let plain = decrypt(&key, &stream);
    let expected = expected_memory();
    assert_eq!(
        first_difference(&plain, &expected),
        None,
        "decrypted dump differs from the kernel's pattern"
    );
    drop(plain);

    match decryptor_run {
        Some(mut child) => {
            assert!(
                child.wait().unwrap().success(),
                "sealdump-decryptor failed on the kernel's dump"
            );
            let decrypted = std::fs::read(&decrypted_file).unwrap();
            assert_eq!(
                first_difference(&decrypted, &expected),
                None,
                "sealdump-decryptor output differs"
            );
        }
        None => println!("note: sealdump-decryptor not built; checked with the library only"),
    }

    match tshark_run {
        Some(tshark) => {
            let (by_type, vmcore) = capture_by_type(tshark, &tshark_out);
            println!("netdump messages in the capture, by type: {by_type:?}");
            for (msg_type, name) in [(1, "HERALD"), (5, "EKCD_KEY"), (4, "KDH"), (2, "FINISHED")] {
                assert!(
                    by_type.get(&msg_type).is_some_and(|n| *n >= 1),
                    "no {name} in the capture"
                );
            }
            let stream_len = std::fs::metadata(&stream).unwrap().len();
            let covered: u64 = vmcore.values().map(|len| *len as u64).sum();
            assert_eq!(
                covered, stream_len,
                "distinct VMCORE payloads in the capture != stored stream length"
            );
            assert!(by_type.get(&3).copied().unwrap_or(0) >= vmcore.len());
        }
        None => println!("note: tshark not found; capture check skipped"),
    }

    // Once more on the other machine type (virtio-net at 00:03.0 instead of 00:02.0) with a CPU that has
    // RDRAND: the other entropy path. The receiver must store a second complete dump.
    let (status, console) = run_qemu(&kernel, &tmp.path().join("pc.pcap"), "pc", "max");
    println!("--- kernel console (-machine pc -cpu max) ---\n{console}\n---");
    assert_eq!(
        status,
        Some(EXIT_SUCCESS),
        "second boot (-machine pc -cpu max) failed; console above"
    );
    assert!(console.contains("entropy from RDRAND"), "-cpu max has RDRAND");
    let deadline = Instant::now() + Duration::from_secs(10);
    while files_in(&dump_dir)
        .iter()
        .filter(|p| name_of(p).starts_with("info.") && !name_of(p).ends_with(".last"))
        .count()
        < 2
    {
        assert!(
            Instant::now() < deadline,
            "no second complete dump: {:?}",
            files_in(&dump_dir)
        );
        std::thread::sleep(Duration::from_millis(50));
    }

    // Failure paths report themselves: no NIC at all, and nobody answering the herald.
    let (status, console) = run_qemu_without_nic(&kernel);
    assert_eq!(status, Some(EXIT_NO_NIC), "boot without a NIC: {console}");
    drop(receiver);
    let silent = Instant::now();
    let (status, console) = run_qemu(&kernel, &tmp.path().join("silent.pcap"), "q35", "qemu64");
    assert_eq!(
        status,
        Some(EXIT_NETWORK_FAILED),
        "boot with no receiver listening: {console}"
    );
    assert!(
        silent.elapsed() >= Duration::from_secs(GIVE_UP_SECS),
        "gave up before the deadline"
    );
    assert!(
        console.contains("dump: failed"),
        "the kernel did not say why it failed: {console}"
    );
    println!(
        "timing: build + receiver start {built:?}, QEMU boot to exit {ran:?}, checks {:?}",
        checks.elapsed()
    );
}
