//! Shared helpers of the system tests in `tests/tests/`: locating (and building) the workspace binaries, a
//! receiver process with captured logs, synthetic dumps, key files, library decryption of a stored sealed dump,
//! a seeded user-space UDP impairment proxy (loss, duplication, reordering, corruption), and the pieces of the
//! virtual-time tests (`sim`), and two network namespaces joined by a veth pair (`veth`, root only).
//!
//! Everything talks to loopback, or to namespaces the test made itself.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::missing_panics_doc)]

pub mod proxy;
pub mod sim;
pub mod veth;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use sealdump_crypto::keys::PrivateKey;
use sealdump_crypto::seal::{HeaderView, Trailer};

/// Directory holding the workspace binaries of this profile (target/debug or target/release). The binaries are
/// built on first use with the same cargo, profile and target directory as the calling test.
pub fn bin_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let exe = std::env::current_exe().unwrap();
        // target/<profile>/deps/<test>-<hash>
        let dir = exe.parent().unwrap().parent().unwrap().to_path_buf();
        let release = dir.file_name().is_some_and(|n| n == "release");
        let mut cmd = Command::new(env!("CARGO"));
        cmd.args([
            "build",
            "-q",
            "--bins",
            "-p",
            "sealdump-drivers",
            "-p",
            "sealdump-receiver",
            "-p",
            "sealdump-decryptor",
            "-p",
            "sealdump-keytool",
        ])
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."));
        if release {
            cmd.arg("--release");
        }
        let status = cmd.status().expect("run cargo build");
        assert!(status.success(), "building the binaries failed");
        dir
    })
}

/// Path of a workspace binary (built on first use).
pub fn bin(name: &str) -> PathBuf {
    bin_dir().join(name)
}

/// SHA-256 of `data`.
pub fn sha256(data: &[u8]) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(data).into()
}

/// Lines a child process wrote to stdout and stderr, shared with the reader threads.
pub type Log = Arc<Mutex<Vec<String>>>;

/// A running `sealdump-receiver` on 127.0.0.1 with an ephemeral port; killed on drop. Its stdout and stderr
/// lines are kept in `log`.
#[derive(Debug)]
pub struct Receiver {
    /// The child process.
    pub child: Child,
    /// Herald address, `127.0.0.1:PORT`.
    pub addr: String,
    /// Dump directory.
    pub dir: PathBuf,
    /// Everything the receiver printed.
    pub log: Log,
}

impl Receiver {
    /// Starts a receiver on `dir` with `--no-resolve` and the extra arguments and environment given.
    pub fn start_with(dir: &Path, extra: &[&str], env: &[(&str, &str)]) -> Receiver {
        Self::spawn(&[], "127.0.0.1", 0, dir, extra, env)
    }

    /// Starts a receiver bound to `bind_ip:port` (0: ephemeral), run under `prefix` (e.g. `ip netns exec NS`)
    /// if not empty.
    pub fn spawn(
        prefix: &[&str],
        bind_ip: &str,
        port: u16,
        dir: &Path,
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> Receiver {
        std::fs::create_dir_all(dir).unwrap();
        let receiver = bin("sealdump-receiver");
        let mut cmd = match prefix.split_first() {
            Some((program, args)) => {
                let mut c = Command::new(program);
                c.args(args).arg(&receiver);
                c
            }
            None => Command::new(&receiver),
        };
        cmd.args([
            "-D",
            "-a",
            bind_ip,
            "--port",
            &port.to_string(),
            "--no-resolve",
            "-d",
        ])
        .arg(dir)
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("start sealdump-receiver");
        let log: Log = Arc::default();
        let (tx, rx) = std::sync::mpsc::channel::<String>();
        let out = child.stdout.take().unwrap();
        let err = child.stderr.take().unwrap();
        for stream in [Box::new(out) as Box<dyn std::io::Read + Send>, Box::new(err)] {
            let tx = tx.clone();
            let log = log.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    log.lock().unwrap().push(line.clone());
                    let _ = tx.send(line);
                }
            });
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        let addr = loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = rx
                .recv_timeout(left)
                .expect("receiver never printed its listening address");
            if line.to_ascii_lowercase().contains("listening on") {
                break line
                    .split(|c: char| c.is_whitespace() || c == '"' || c == ',')
                    .find(|w| w.starts_with(&format!("{bind_ip}:")))
                    .expect("an address in the listening line")
                    .to_string();
            }
        };
        Receiver {
            child,
            addr,
            dir: dir.to_path_buf(),
            log,
        }
    }

    /// Starts a receiver on `dir` with default settings.
    pub fn start(dir: &Path) -> Receiver {
        Self::start_with(dir, &[], &[])
    }

    /// Process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Peak resident set size (VmHWM) in KiB.
    pub fn peak_rss_kib(&self) -> u64 {
        proc_status_kib(self.pid(), "VmHWM:")
    }

    /// Sends `signal` to the receiver.
    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args(["-s", signal, &self.pid().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    /// All log lines so far, joined.
    pub fn log_text(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }

    /// Waits until `n` info files have a final line ("Dump complete", "Dump incomplete…", "Dump unsuccessful…");
    /// returns the
    /// info files (sorted by name).
    pub fn wait_for_dumps(&self, n: usize, timeout: Duration) -> Vec<PathBuf> {
        let deadline = Instant::now() + timeout;
        loop {
            let done: Vec<PathBuf> = info_files(&self.dir)
                .into_iter()
                .filter(|p| {
                    std::fs::read_to_string(p).is_ok_and(|s| {
                        s.contains("Dump complete")
                            || s.contains("Dump incomplete")
                            || s.contains("Dump unsuccessful")
                    })
                })
                .collect();
            if done.len() >= n {
                return done;
            }
            assert!(
                Instant::now() < deadline,
                "only {} of {n} dumps ended in {}: {:?}\nlog:\n{}",
                done.len(),
                self.dir.display(),
                walk(&self.dir),
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A `VmHWM:`-style field of `/proc/<pid>/status`, in KiB (0 if absent).
pub fn proc_status_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// `info.*` files (not the `.last` links) anywhere below `dir`, sorted.
pub fn info_files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = walk(dir)
        .into_iter()
        .filter(|p| {
            let n = file_name(p);
            n.starts_with("info.") && !n.ends_with(".last")
        })
        .collect();
    v.sort();
    v
}

/// The core file named by an info file (`info.H.N` → `vmcore_encrypted.H.N`, else `vmcore.H.N`).
pub fn core_for_info(info: &Path) -> PathBuf {
    let name = file_name(info);
    let rest = name.strip_prefix("info.").unwrap();
    let sealed = info.with_file_name(format!("vmcore_encrypted.{rest}"));
    if sealed.exists() {
        sealed
    } else {
        info.with_file_name(format!("vmcore.{rest}"))
    }
}

/// File name as a string.
pub fn file_name(p: &Path) -> String {
    p.file_name().unwrap().to_string_lossy().into_owned()
}

/// Every file (not directory) below `dir`, symlinks included.
pub fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let p = e.path();
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                out.extend(walk(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
}

/// The key blob the receiver stored beside a sealed stream (`key.<host>.N` for `vmcore_encrypted.<host>.N`).
pub fn key_blob_for(stream: &Path) -> PathBuf {
    let name = file_name(stream).replacen("vmcore_encrypted.", "key.", 1);
    stream.with_file_name(name)
}

/// Decrypts a stored sealed dump with the crypto library, checking every chunk and the trailer; returns the
/// plaintext and the trailer, or the first error as text.
pub fn try_decrypt_with_library(key: &PrivateKey, stream_path: &Path) -> Result<(Vec<u8>, Trailer), String> {
    let blob = std::fs::read(key_blob_for(stream_path)).map_err(|e| e.to_string())?;
    let stream = std::fs::read(stream_path).map_err(|e| e.to_string())?;
    let header = HeaderView::parse(&blob).map_err(|e| e.to_string())?;
    let key_id = key.public_key().key_id();
    let stanza = header
        .stanzas()
        .find(|s| s.key_id == key_id)
        .ok_or("no stanza for this key")?;
    let dk = key.unwrap_stanza(&stanza, &header).map_err(|e| e.to_string())?;
    let opener = header.open(&dk).map_err(|e| e.to_string())?;
    let (count, trailer_at) = opener
        .trailer_position(stream.len() as u64)
        .ok_or("no trailer position")?;
    let trailer_at = usize::try_from(trailer_at).map_err(|e| e.to_string())?;
    let trailer = opener
        .open_trailer(count, &stream[trailer_at..])
        .map_err(|e| format!("trailer: {e}"))?;
    let mut plain = Vec::new();
    for i in 0..count {
        let start = opener.record_offset(i) as usize;
        let end = (opener.record_offset(i + 1) as usize).min(trailer_at);
        let mut record = stream[start..end].to_vec();
        let n = opener
            .open_chunk(i, &mut record)
            .map_err(|e| format!("chunk {i}: {e}"))?;
        plain.extend_from_slice(&record[..n]);
    }
    if trailer.total_len != plain.len() as u64 || trailer.chunk_count != count {
        return Err("trailer does not match the chunks".into());
    }
    Ok((plain, trailer))
}

/// [`try_decrypt_with_library`] that panics on failure and returns the plaintext.
pub fn decrypt_with_library(key: &PrivateKey, stream_path: &Path) -> Vec<u8> {
    match try_decrypt_with_library(key, stream_path) {
        Ok((plain, _)) => plain,
        Err(e) => panic!("decrypting {}: {e}", stream_path.display()),
    }
}

/// Panics unless the info file says "Dump complete" and its stored dump decrypts (library) to `expected`.
pub fn assert_complete_dump(info: &Path, key: &PrivateKey, expected: &[u8]) {
    let text = std::fs::read_to_string(info).unwrap();
    assert!(text.contains("Dump complete"), "{}: {text}", info.display());
    let plain = decrypt_with_library(key, &core_for_info(info));
    assert!(
        sha256(&plain) == sha256(expected),
        "{}: decrypted dump differs from what was sent",
        info.display()
    );
}

/// A synthetic dump of `mib` MiB written by `sealdump-send --synthetic`; returns its path and bytes.
pub fn synthetic(dir: &Path, mib: u64, seed: u64) -> (PathBuf, Vec<u8>) {
    let path = dir.join(format!("dump-{mib}-{seed}.img"));
    let out = Command::new(bin("sealdump-send"))
        .arg("--synthetic")
        .arg(&path)
        .args([
            "--synthetic-size",
            &mib.to_string(),
            "--synthetic-seed",
            &seed.to_string(),
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let data = std::fs::read(&path).unwrap();
    assert_eq!(data.len() as u64, mib << 20);
    (path, data)
}

/// Writes `name.key` (private, 0600) and `name.pub` into `dir`.
pub fn write_key_pair(dir: &Path, name: &str, key: &PrivateKey) -> (PathBuf, PathBuf) {
    let private = dir.join(format!("{name}.key"));
    let public = dir.join(format!("{name}.pub"));
    sealdump_crypto::keys::write_private_key_file(&private, key, None, false).unwrap();
    sealdump_crypto::keys::write_public_key_file(&public, &key.public_key(), false).unwrap();
    (private, public)
}

/// `sealdump-send --client-port 0 -q ARGS…`, waited for.
pub fn send(args: &[&std::ffi::OsStr]) -> Output {
    Command::new(bin("sealdump-send"))
        .args(["--client-port", "0", "-q"])
        .args(args)
        .output()
        .unwrap()
}

/// `sealdump-decryptor --key KEY -o OUT STREAM`, waited for.
pub fn run_decryptor(key: &Path, out: &Path, stream: &Path) -> Output {
    Command::new(bin("sealdump-decryptor"))
        .arg("--key")
        .arg(key)
        .arg("-o")
        .arg(out)
        .arg(stream)
        .output()
        .unwrap()
}

/// `sealdump-send --client-port 0 -q --to RECEIVER --recipient PUBLIC DUMP`, waited for: one sealed dump.
pub fn send_sealed(rx: &Receiver, public: &Path, dump: &Path) -> Output {
    send(&[
        os("--to"),
        os(&rx.addr),
        os("--recipient"),
        public.as_os_str(),
        dump.as_os_str(),
    ])
}

/// `sealdump-send --client-port 0 -q ARGS… -` started with a pipe on its stdin (stderr piped too); the caller
/// writes the dump into the returned stdin and drops it to end the dump.
pub fn spawn_send_from_stdin(args: &[&std::ffi::OsStr]) -> (Child, std::process::ChildStdin) {
    let mut child = Command::new(bin("sealdump-send"))
        .args(["--client-port", "0", "-q"])
        .args(args)
        .arg("-")
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdin = child.stdin.take().unwrap();
    (child, stdin)
}

/// Shorthand for an `&OsStr` argument.
pub fn os<S: AsRef<std::ffi::OsStr> + ?Sized>(s: &S) -> &std::ffi::OsStr {
    s.as_ref()
}

/// Panics with the sender's stderr unless it exited 0.
pub fn assert_ok(out: &Output) {
    assert!(
        out.status.success(),
        "sealdump-send exit {:?}: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Whether this process runs as root (namespaces, tmpfs mounts).
pub fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status").is_ok_and(|s| {
        s.lines()
            .find(|l| l.starts_with("Uid:"))
            .is_some_and(|l| l.split_whitespace().nth(1) == Some("0"))
    })
}

/// Whether `program` can be run (found on PATH and answers `--version` or `-V`).
pub fn have_program(program: &str) -> bool {
    Command::new(program)
        .arg("-V")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok()
}
