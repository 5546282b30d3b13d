//! Command line of `sealdump-send` (DESIGN §8).

use std::path::PathBuf;

use clap::{Parser, ValueEnum};

const EXAMPLES: &str = "\
Examples:
  # Sealed to an analyst's key (X25519 or RSA public key PEM from `sealdump-keytool gen`):
  sealdump-send --to dumps.example.net --recipient analyst.pub vmcore.0

  # As a Linux kdump capture kernel does, with everything from a provisioning file:
  sealdump-send --provision /etc/sealdump/provision.toml /proc/vmcore

  # From stdin, two recipients, jumbo payloads on loopback, a herald path:
  cat core | sealdump-send --to 127.0.0.1:20023 --recipient a.pub --recipient b.pub \\
      --payload-size 8192 --path lab/host1 -

  # Unencrypted, for tests and legacy netdumpd receivers:
  sealdump-send --to 127.0.0.1 --plain core.img

Exit status: 0 the receiver acknowledged the whole dump; 1 the dump failed (receiver silent past the deadline,
input read error); 2 usage or environment error (bad key, unreadable file, socket).";

/// AEAD of the sealed dump.
#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum AeadArg {
    /// ChaCha20-Poly1305 (default; fast without AES instructions)
    #[value(name = "chacha20-poly1305")]
    ChaCha20Poly1305,
    /// AES-256-GCM
    #[value(name = "aes-256-gcm")]
    Aes256Gcm,
}

/// Send a crash dump (a file, stdin or /proc/vmcore) to a sealdump or netdumpd receiver, sealed to the
/// recipients' public keys.
#[derive(Parser, Debug)]
#[command(name = "sealdump-send", version, after_help = EXAMPLES, max_term_width = 110)]
pub struct Cli {
    /// Receiver herald address; the port defaults to 20023. Overrides the provisioning file's receiver.
    #[arg(long, value_name = "HOST[:PORT]")]
    pub to: Option<String>,

    /// Seal to this public key (PEM: X25519 or RSA SubjectPublicKeyInfo); repeat for several, up to 8.
    #[arg(long = "recipient", value_name = "PUB", conflicts_with = "plain")]
    pub recipients: Vec<PathBuf>,

    /// Take receiver, recipients, AEAD and chunk size from a provisioning file (`sealdump-keytool provision`).
    #[arg(long, value_name = "FILE", conflicts_with = "plain")]
    pub provision: Option<PathBuf>,

    /// Send the dump unencrypted (tests, legacy netdumpd receivers).
    #[arg(long)]
    pub plain: bool,

    /// Local UDP port to send from; acks come back to it [default: 20024, or the provisioning file's].
    #[arg(long, value_name = "PORT")]
    pub client_port: Option<u16>,

    /// Relative path announced in the herald; the receiver stores the dump below it.
    #[arg(long, value_name = "P")]
    pub path: Option<String>,

    /// Dump bytes per datagram (MTU - 52 = 1448 at MTU 1500 over IPv4, MTU - 72 = 1428 over IPv6; up to 8192 on
    /// loopback or jumbo links) [default: 8192 to a loopback receiver, else 1448 (IPv4) or 1428 (IPv6)].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(512..=8192))]
    pub payload_size: Option<u16>,

    /// Maximum datagrams in flight (congestion control opens the flight up to it) [default: 4096, or 6 MiB of
    /// payload if fewer: 768 at 8192-byte payloads]. The send ring holds four windows of 32-byte slots, as a lost
    /// datagram keeps its slot for two or three round trips; a lossy 20 ms path needs thousands to stay busy.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=4096))]
    pub window: Option<u16>,

    /// Chunks kept for retransmissions, sealed, 2 to 64 [default: 4 MiB of them: 64 at the default 64 KiB chunks,
    /// 4 at 1 MiB]. A resend whose chunk has left them reads the chunk again from the input and seals it again;
    /// fewer save memory in a small capture kernel.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u8).range(2..=64))]
    pub chunk_buffers: Option<u8>,

    /// AEAD of the sealed dump [default: the provisioning file's, else aes-256-gcm where the CPU has AES
    /// instructions, else chacha20-poly1305].
    #[arg(long, value_enum, value_name = "AEAD")]
    pub aead: Option<AeadArg>,

    /// log2 of the plaintext chunk size, 12..=20 [default: 16 (64 KiB), or the provisioning file's].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u8).range(12..=20))]
    pub chunk_shift: Option<u8>,

    /// Give up when the receiver has acknowledged nothing for this many seconds.
    #[arg(long, value_name = "SECONDS", default_value_t = 30.0)]
    pub timeout: f64,

    /// Host name sealed into the dump's metadata [default: this host's name].
    #[arg(long, value_name = "NAME")]
    pub hostname: Option<String>,

    /// No progress bar and no summary line.
    #[arg(short, long)]
    pub quiet: bool,

    /// The dump: a file, /proc/vmcore, or `-` for stdin.
    #[arg(value_name = "FILE|-")]
    pub input: Option<PathBuf>,

    /// Write a synthetic FreeBSD-style dump to this file and exit (demo and benchmark helper).
    #[arg(long, value_name = "OUT", hide = true)]
    pub synthetic: Option<PathBuf>,

    /// Size of the synthetic dump in MiB.
    #[arg(long, value_name = "MIB", default_value_t = 256, hide = true)]
    pub synthetic_size: u64,

    /// Seed of the synthetic dump.
    #[arg(long, value_name = "SEED", default_value_t = 0x5ea1_d0a9, hide = true)]
    pub synthetic_seed: u64,
}
