//! The hosted sender behind `sealdump-send`: client-core over a std UDP socket (Linux kdump capture kernels,
//! ordinary hosts, tests).
//!
//! [`sender::send`] is the library entry point; [`main`] is the whole binary.

pub mod cli;
pub mod sender;
pub mod synthetic;

use std::fs::File;
use std::io::{self, IsTerminal, Read};
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use clap::{CommandFactory, Parser};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use sealdump_crypto::AeadId;
use sealdump_crypto::keys::PublicKey;

pub use cli::Cli;
use sealdump_keytool::provision::{Provisioning, aead_from_name};
use sender::{Outcome, OwnedMetadata, Security, SendConfig};

/// Most recipients a sealed dump can have (DESIGN §4).
pub const MAX_RECIPIENTS: usize = 8;

/// The full clap command of `sealdump-send` (man pages, completions).
pub fn cli_command() -> clap::Command {
    Cli::command()
}

/// A failure of `sealdump-send`, printed as one line; decides the exit status.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AppError {
    /// Bad arguments or files, unusable keys, socket trouble: exit 2.
    #[error("{0}")]
    Usage(String),
    /// The dump did not get through: exit 1.
    #[error("{0}")]
    DumpFailed(String),
}

impl AppError {
    /// The process exit status for this error.
    pub fn exit_code(&self) -> u8 {
        match self {
            AppError::Usage(_) => 2,
            AppError::DumpFailed(_) => 1,
        }
    }
}

fn usage(msg: impl Into<String>) -> AppError {
    AppError::Usage(msg.into())
}

/// Runs `sealdump-send` with the process arguments; prints one-line errors.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(&cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("sealdump-send: error: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}

/// Resolves `HOST[:PORT]` (port default 20023; `[v6]:port` and bare IPv6 accepted).
pub fn resolve_receiver(spec: &str) -> Result<SocketAddr, AppError> {
    let default_port = sealdump_wire::netdump::HERALD_PORT;
    if let Ok(addr) = spec.parse::<SocketAddr>() {
        return Ok(addr);
    }
    if let Ok(ip) = spec.parse::<std::net::IpAddr>() {
        return Ok(SocketAddr::new(ip, default_port));
    }
    let with_port = if spec.contains(':') {
        spec.to_string()
    } else {
        format!("{spec}:{default_port}")
    };
    with_port
        .to_socket_addrs()
        .map_err(|e| usage(format!("cannot resolve receiver {spec:?}: {e}")))?
        .next()
        .ok_or_else(|| usage(format!("receiver {spec:?} has no address")))
}

fn read_public_key(path: &Path) -> Result<PublicKey, AppError> {
    sealdump_crypto::keys::read_public_key_file(path)
        .map_err(|e| usage(format!("recipient {}: {e}", path.display())))
}

fn first_line(path: &str) -> Option<String> {
    std::fs::read_to_string(path)
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
}

fn truncated(s: &[u8], max: usize) -> Vec<u8> {
    s[..s.len().min(max)].to_vec()
}

/// Metadata of this host (or of the dump's own kernel dump header, which knows better).
fn metadata_for(cli: &Cli, kdh: Option<&[u8; 512]>, expected_length: u64) -> OwnedMetadata {
    let parsed = kdh.and_then(|h| sealdump_wire::kdh::Repr::parse(h).ok());
    let hostname = cli
        .hostname
        .clone()
        .map(String::into_bytes)
        .or_else(|| parsed.as_ref().map(|h| h.hostname.to_vec()))
        .or_else(|| first_line("/proc/sys/kernel/hostname").map(String::into_bytes))
        .or_else(|| std::env::var("HOSTNAME").ok().map(String::into_bytes))
        .unwrap_or_else(|| b"unknown".to_vec());
    let kernel_version = parsed
        .as_ref()
        .map(|h| h.version_string.to_vec())
        .unwrap_or_else(|| {
            match (
                first_line("/proc/sys/kernel/ostype"),
                first_line("/proc/sys/kernel/osrelease"),
            ) {
                (Some(os), Some(rel)) => format!("{os} {rel}").into_bytes(),
                _ => Vec::new(),
            }
        });
    let panic_string = parsed
        .as_ref()
        .map(|h| h.panic_string.to_vec())
        .unwrap_or_default();
    let architecture = parsed
        .as_ref()
        .map(|h| h.architecture.to_vec())
        .unwrap_or_else(|| std::env::consts::ARCH.as_bytes().to_vec());
    let mut host_uuid = [0u8; 16];
    if let Some(id) = first_line("/etc/machine-id").and_then(|s| hex::decode(s).ok())
        && id.len() == 16
    {
        host_uuid.copy_from_slice(&id);
    }
    // The kernel dump header's field sizes; the sealed metadata never needs more.
    OwnedMetadata {
        hostname: truncated(&hostname, 64),
        kernel_version: truncated(&kernel_version, 192),
        panic_string: truncated(&panic_string, 175),
        architecture: truncated(&architecture, 12),
        expected_length,
        host_uuid,
    }
}

/// The dump being read (file or stdin), moved to the reader thread.
type DumpReader = Box<dyn Read + Send>;

/// Reads the first 512 bytes without consuming them from the dump (the reader gets them back).
fn peek_kdh(input: DumpReader) -> io::Result<(Option<[u8; 512]>, DumpReader)> {
    let mut head = Vec::with_capacity(512);
    let mut limited = input.take(512);
    limited.read_to_end(&mut head)?;
    let input = limited.into_inner();
    let kdh = sender::leading_kdh(&head);
    Ok((kdh, Box::new(io::Cursor::new(head).chain(input))))
}

fn run(cli: &Cli) -> Result<(), AppError> {
    if let Some(out) = &cli.synthetic {
        let spec = synthetic::SyntheticSpec {
            total_len: cli.synthetic_size << 20,
            seed: cli.synthetic_seed,
            ..synthetic::SyntheticSpec::default()
        };
        let file = File::create(out).map_err(|e| usage(format!("cannot create {}: {e}", out.display())))?;
        synthetic::write_synthetic(&spec, io::BufWriter::new(file))
            .map_err(|e| usage(format!("cannot write {}: {e}", out.display())))?;
        return Ok(());
    }

    let input_path = cli
        .input
        .as_ref()
        .ok_or_else(|| usage("no dump given (a FILE, /proc/vmcore or - for stdin)"))?;
    if cli.recipients.is_empty() && cli.provision.is_none() && !cli.plain {
        return Err(usage(
            "say how to protect the dump: --recipient PUB, --provision FILE or --plain",
        ));
    }
    if cli.recipients.len() > MAX_RECIPIENTS {
        return Err(usage(format!("at most {} recipients", MAX_RECIPIENTS)));
    }
    if !(cli.timeout.is_finite() && cli.timeout > 0.0) {
        return Err(usage("--timeout must be a positive number of seconds"));
    }

    let provision = match &cli.provision {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| usage(format!("cannot read {}: {e}", path.display())))?;
            // Checks every field, each recipient's key against its key_id, and the recipient count.
            Some(Provisioning::from_toml(&text).map_err(|e| usage(format!("{}: {e}", path.display())))?)
        }
        None => None,
    };

    let receiver_spec = match (&cli.to, &provision) {
        (Some(to), _) => to.clone(),
        (None, Some(p)) => p.receiver[0].clone(),
        (None, None) => {
            return Err(usage(
                "no receiver: give --to HOST[:PORT] (or a provisioning file)",
            ));
        }
    };
    let server = resolve_receiver(&receiver_spec)?;
    let client_port = cli
        .client_port
        .or(provision.as_ref().map(|p| p.client_port))
        .unwrap_or(sealdump_wire::netdump::CLIENT_PORT);
    let bind = match server {
        SocketAddr::V4(_) => SocketAddr::from(([0, 0, 0, 0], client_port)),
        SocketAddr::V6(_) => SocketAddr::from(([0u16; 8], client_port)),
    };

    let mut recipients = Vec::new();
    for path in &cli.recipients {
        recipients.push(read_public_key(path)?);
    }
    if let Some(p) = &provision {
        let keys = p
            .public_keys()
            .map_err(|e| usage(format!("provisioning file: {e}")))?;
        recipients.extend(keys);
    }
    let aead = match (cli.aead, &provision) {
        (Some(cli::AeadArg::Aes256Gcm), _) => AeadId::Aes256Gcm,
        (Some(cli::AeadArg::ChaCha20Poly1305), _) => AeadId::ChaCha20Poly1305,
        (None, Some(p)) => aead_from_name(&p.aead).map_err(|e| usage(format!("provisioning file: {e}")))?,
        (None, None) => default_aead(),
    };
    let chunk_shift = cli
        .chunk_shift
        .or(provision.as_ref().map(|p| p.chunk_shift))
        .unwrap_or(16);
    if !(12..=20).contains(&chunk_shift) {
        return Err(usage(format!("chunk_shift {chunk_shift} out of range 12..=20")));
    }

    // Open the input: stdin, or a file read sequentially (/proc/vmcore is a regular file that reports its size).
    // A regular file is also read again with positional reads when a retransmission needs a chunk client-core
    // no longer buffers; anything else (stdin, a FIFO, a device) is kept in memory as long as the client may ask.
    let (input, total_len, reread): (DumpReader, Option<u64>, sender::Reread) =
        if input_path.as_os_str() == "-" {
            (Box::new(io::stdin()), None, sender::Reread::Memory)
        } else {
            let file = File::open(input_path)
                .map_err(|e| usage(format!("cannot open {}: {e}", input_path.display())))?;
            let meta = file
                .metadata()
                .map_err(|e| usage(format!("cannot stat {}: {e}", input_path.display())))?;
            if meta.is_dir() {
                return Err(usage(format!("{} is a directory", input_path.display())));
            }
            let len = (meta.is_file() && meta.len() > 0).then_some(meta.len());
            let reread = match meta.is_file().then(|| file.try_clone()) {
                Some(Ok(again)) => sender::Reread::File(again),
                _ => sender::Reread::Memory,
            };
            (Box::new(file), len, reread)
        };
    let (kdh, input) =
        peek_kdh(input).map_err(|e| usage(format!("cannot read {}: {e}", input_path.display())))?;

    let security = if cli.plain {
        Security::Plain
    } else {
        Security::Sealed {
            recipients,
            aead,
            chunk_shift,
            metadata: metadata_for(cli, kdh.as_ref(), total_len.unwrap_or(0)),
        }
    };
    let payload_size = usize::from(cli.payload_size.unwrap_or_else(|| default_payload_size(server)));
    let chunk_size = security.chunk_size();
    let config = SendConfig {
        server,
        bind,
        herald_path: cli.path.clone().unwrap_or_default().into_bytes(),
        payload_size,
        window: cli
            .window
            .map_or_else(|| default_window(payload_size), usize::from),
        chunk_buffers: cli
            .chunk_buffers
            .map_or_else(|| default_chunk_buffers(chunk_size), usize::from),
        give_up_after: Duration::from_secs_f64(cli.timeout),
        security,
    };

    let bar = progress_bar(cli.quiet, total_len);
    let started = std::time::Instant::now();
    let outcome = sender::send_with(&config, input, reread, kdh, &mut |stats| {
        bar.set_position(stats.bytes_acked);
        bar.set_message(format!("{} retransmits", stats.retransmits));
    });
    bar.finish_and_clear();
    let elapsed = started.elapsed().as_secs_f64();
    match outcome.map_err(|e| usage(e.to_string()))? {
        Outcome::Done(stats) => {
            if !cli.quiet {
                let bytes = stats.bytes_written;
                eprintln!(
                    "sealdump-send: done: {bytes} bytes to {server} in {elapsed:.2} s ({:.1} MB/s), {} datagrams, {} retransmits ({} tail-loss probes, {} timeouts), {} chunks read again",
                    bytes as f64 / elapsed.max(1e-6) / 1e6,
                    stats.packets_sent,
                    stats.retransmits,
                    stats.probes,
                    stats.timeouts,
                    stats.chunks_reread,
                );
            }
            Ok(())
        }
        Outcome::Failed(reason) => Err(AppError::DumpFailed(format!("dump failed: {reason}"))),
        Outcome::InputFailed(e) => Err(AppError::DumpFailed(format!(
            "reading {} failed, dump aborted: {e}",
            input_path.display()
        ))),
    }
}

fn progress_bar(quiet: bool, total: Option<u64>) -> ProgressBar {
    if quiet || !io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let template = match total {
        Some(_) => "{elapsed_precise} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} {msg}",
        None => "{elapsed_precise} {spinner} {bytes} {bytes_per_sec} {msg}",
    };
    let style = ProgressStyle::with_template(template)
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ");
    ProgressBar::with_draw_target(total, ProgressDrawTarget::stderr()).with_style(style)
}

/// Datagrams in flight by default: 4096, fewer when that would put more than [`DEFAULT_FLIGHT_BYTES`] in
/// flight (a receiver's socket buffer holds a few MiB).
fn default_window(payload_size: usize) -> usize {
    (DEFAULT_FLIGHT_BYTES / payload_size.max(1)).clamp(1, 4096)
}

// `--chunk-buffers` allows 2..=64: client-core's most.
const _: () = assert!(sealdump_client_core::MAX_CHUNK_BUFFERS == 64);

/// Chunk buffers when the user gives none: [`DEFAULT_CHUNK_BYTES`] of chunks, 2 to 64 of them.
fn default_chunk_buffers(chunk_size: usize) -> usize {
    (DEFAULT_CHUNK_BYTES / chunk_size.max(1)).clamp(2, sealdump_client_core::MAX_CHUNK_BUFFERS)
}

/// Bytes of chunk buffers by default: enough to keep the chunks of about a round trip of sends at 1448-byte
/// payloads, so a resend seldom seals its chunk again.
const DEFAULT_CHUNK_BYTES: usize = 4 << 20;

/// Payload bytes the default window keeps in flight at most.
const DEFAULT_FLIGHT_BYTES: usize = 6 << 20;

/// DESIGN §4: AES-256-GCM where the CPU has AES instructions (and carry-less multiply for GHASH), else
/// ChaCha20-Poly1305, which is the faster of the two in software.
fn default_aead() -> AeadId {
    #[cfg(any(target_arch = "x86", target_arch = "x86_64"))]
    let hardware_aes =
        std::arch::is_x86_feature_detected!("aes") && std::arch::is_x86_feature_detected!("pclmulqdq");
    #[cfg(target_arch = "aarch64")]
    let hardware_aes =
        std::arch::is_aarch64_feature_detected!("aes") && std::arch::is_aarch64_feature_detected!("pmull");
    #[cfg(not(any(target_arch = "x86", target_arch = "x86_64", target_arch = "aarch64")))]
    let hardware_aes = false;
    if hardware_aes {
        AeadId::Aes256Gcm
    } else {
        AeadId::ChaCha20Poly1305
    }
}

/// Payload per datagram when the user gives none: loopback has a 64 KiB MTU, so 8 KiB datagrams cost one
/// syscall per 8 KiB instead of per 1448 bytes; any other path gets the Ethernet-safe MTU 1500 size.
fn default_payload_size(server: std::net::SocketAddr) -> u16 {
    match server.ip() {
        ip if ip.is_loopback() => 8192,
        // One 1500-byte Ethernet frame: 1500 - 20 (IPv4) - 8 (UDP) - 24 (netdump header), as FreeBSD uses.
        std::net::IpAddr::V4(_) => 1448,
        // The IPv6 header is 40 bytes.
        std::net::IpAddr::V6(_) => 1428,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn payload_defaults_to_jumbo_only_on_loopback() {
        assert_eq!(default_payload_size("127.0.0.1:20023".parse().unwrap()), 8192);
        assert_eq!(default_payload_size("[::1]:20023".parse().unwrap()), 8192);
        assert_eq!(default_payload_size("192.0.2.10:20023".parse().unwrap()), 1448);
        assert_eq!(default_payload_size("[2001:db8::1]:20023".parse().unwrap()), 1428);
    }

    #[test]
    fn default_chunk_buffers_hold_4_mib() {
        assert_eq!(default_chunk_buffers(1 << 16), 64);
        assert_eq!(default_chunk_buffers(1 << 12), 64);
        assert_eq!(default_chunk_buffers(1 << 20), 4);
        assert_eq!(default_chunk_buffers(8 << 20), 2);
    }

    #[test]
    fn default_window_keeps_at_most_6_mib_in_flight() {
        assert_eq!(default_window(1448), 4096);
        assert_eq!(default_window(8192), 768);
        assert_eq!(default_window(512), 4096);
    }

    #[test]
    fn receiver_addresses_default_to_the_herald_port() {
        assert_eq!(
            resolve_receiver("192.0.2.10").unwrap(),
            "192.0.2.10:20023".parse().unwrap()
        );
        assert_eq!(
            resolve_receiver("192.0.2.10:999").unwrap(),
            "192.0.2.10:999".parse().unwrap()
        );
        assert_eq!(resolve_receiver("::1").unwrap(), "[::1]:20023".parse().unwrap());
        assert_eq!(resolve_receiver("[::1]:7").unwrap(), "[::1]:7".parse().unwrap());
        assert_eq!(resolve_receiver("localhost:8").unwrap().port(), 8);
        assert_eq!(resolve_receiver("localhost").unwrap().port(), 20023);
        assert!(matches!(
            resolve_receiver("127.0.0.1:notaport"),
            Err(AppError::Usage(_))
        ));
    }

    #[test]
    fn metadata_comes_from_the_dumps_own_header() {
        let mut dump = Vec::new();
        synthetic::write_synthetic(
            &synthetic::SyntheticSpec {
                total_len: 8192,
                ..synthetic::SyntheticSpec::default()
            },
            &mut dump,
        )
        .unwrap();
        let kdh = sender::leading_kdh(&dump).unwrap();
        let cli = Cli::parse_from(["sealdump-send", "--plain", "-"]);
        let meta = metadata_for(&cli, Some(&kdh), 8192);
        assert_eq!(meta.hostname, b"demo-target.example");
        assert_eq!(meta.architecture, b"amd64");
        assert!(meta.panic_string.starts_with(b"Fatal trap 12"));
        assert_eq!(meta.expected_length, 8192);
        // An explicit --hostname wins.
        let cli = Cli::parse_from(["sealdump-send", "--plain", "--hostname", "h1", "-"]);
        assert_eq!(metadata_for(&cli, Some(&kdh), 0).hostname, b"h1");
        // Without a header: this host's facts.
        let meta = metadata_for(&cli, None, 0);
        assert_eq!(meta.architecture, std::env::consts::ARCH.as_bytes());
    }
}
