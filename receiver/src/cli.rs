//! Command line (netdumpd's flags plus ours) and the TOML configuration file.

use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{Parser, ValueEnum};
use serde::Deserialize;

use crate::server::ServerConfig;
use crate::session::SessionConfig;

const EXAMPLES: &str = "\
Examples:
  # Like netdumpd: dumps under /var/crash, herald on UDP 20023 (IPv4 and IPv6)
  sealdump-receiver -D -d /var/crash

  # Ephemeral port on loopback (tests): read the 'listening on ADDR' line from stdout
  sealdump-receiver -D -d /tmp/dumps -a 127.0.0.1 --port 0

  # Handler script, limits, JSON logs, metrics
  sealdump-receiver -d /var/crash -i /usr/local/libexec/on-dump --max-sessions 8 \\
      --max-dump-size 64G --min-free 10G --keep 5 --log-format json --metrics 127.0.0.1:9233

  # Everything from a file (command-line flags override it)
  sealdump-receiver --config /etc/sealdump/receiver.toml

On start the daemon prints exactly one line 'listening on <ADDR>' (the bound herald address) to stdout.
Logs go to stderr. The handler is run as netdumpd does: 'HANDLER <success|timeout|error> <ip> <host>
<infofile> <corefile>' with the dump directory as working directory and an empty environment.
Exit status: 0 after a clean shutdown (SIGTERM/SIGINT), 2 on a usage or environment error.";

/// Log output format.
#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// netdumpd-compatible, hardened receiver of FreeBSD netdump and sealdump crash dumps.
#[derive(Debug, Parser, Default)]
#[command(name = "sealdump-receiver", version, after_help = EXAMPLES)]
pub struct Cli {
    /// Stay in the foreground and log to stderr (netdumpd -D; this daemon never forks, so it is the default).
    #[arg(short = 'D')]
    pub foreground: bool,
    /// Dump directory [default: /var/crash].
    #[arg(short = 'd', value_name = "DUMPDIR")]
    pub dump_dir: Option<PathBuf>,
    /// Address to bind the herald socket to [default: all IPv4 and IPv6 addresses].
    #[arg(short = 'a', value_name = "BIND_ADDR")]
    pub bind_addr: Option<IpAddr>,
    /// Herald UDP port (0 = ephemeral) [default: 20023].
    #[arg(long)]
    pub port: Option<u16>,
    /// Handler script run after each dump; must be executable.
    #[arg(short = 'i', value_name = "HANDLER")]
    pub handler: Option<PathBuf>,
    /// Subdirectory (relative to DUMPDIR) for clients that send no usable path [default: .].
    #[arg(short = 'p', value_name = "DEFAULT_PATH")]
    pub default_path: Option<String>,
    /// Write the process id to this file.
    #[arg(short = 'P', value_name = "PIDFILE")]
    pub pidfile: Option<PathBuf>,
    /// TOML configuration file (keys as the long options, with '_' for '-', plus dump_dir, bind_addr,
    /// handler, default_path, pidfile).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Seconds without a packet before a session is timed out [default: 600].
    #[arg(long, value_name = "SECS")]
    pub idle_timeout: Option<f64>,
    /// Concurrent sessions; further heralds are not acked [default: 64].
    #[arg(long, value_name = "N")]
    pub max_sessions: Option<usize>,
    /// Largest core accepted, e.g. 64G (suffixes K, M, G, T) [default: unlimited].
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    pub max_dump_size: Option<u64>,
    /// Free space to keep in DUMPDIR; heralds are not acked below it, e.g. 5G [default: 0].
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    pub min_free: Option<u64>,
    /// Keep only the last K dumps per host (deletes older ones after each dump) [default: keep all].
    #[arg(long, value_name = "K")]
    pub keep: Option<u32>,
    /// Heralds accepted per source address per second [default: 10].
    #[arg(long, value_name = "N")]
    pub herald_rate: Option<u32>,
    /// Heralds accepted per second from all sources together (spoofed-source floods) [default: 100].
    #[arg(long, value_name = "N")]
    pub herald_rate_total: Option<u32>,
    /// Log format [default: text].
    #[arg(long, value_enum)]
    pub log_format: Option<LogFormat>,
    /// Serve Prometheus metrics over HTTP on this address.
    #[arg(long, value_name = "ADDR")]
    pub metrics: Option<SocketAddr>,
    /// Do not use reverse DNS; name files after the client's IP address.
    #[arg(long)]
    pub no_resolve: bool,
}

/// The configuration file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// DUMPDIR.
    pub dump_dir: Option<PathBuf>,
    /// BIND_ADDR.
    pub bind_addr: Option<IpAddr>,
    /// Herald port.
    pub port: Option<u16>,
    /// HANDLER.
    pub handler: Option<PathBuf>,
    /// DEFAULT_PATH.
    pub default_path: Option<String>,
    /// PIDFILE.
    pub pidfile: Option<PathBuf>,
    /// Seconds.
    pub idle_timeout: Option<f64>,
    /// Sessions.
    pub max_sessions: Option<usize>,
    /// Bytes or "64G".
    pub max_dump_size: Option<SizeValue>,
    /// Bytes or "5G".
    pub min_free: Option<SizeValue>,
    /// Dumps per host.
    pub keep: Option<u32>,
    /// Heralds per source per second.
    pub herald_rate: Option<u32>,
    /// Heralds per second from all sources.
    pub herald_rate_total: Option<u32>,
    /// text or json.
    pub log_format: Option<LogFormat>,
    /// Metrics address.
    pub metrics: Option<SocketAddr>,
    /// Reverse DNS.
    pub resolve_hostnames: Option<bool>,
}

/// A size given as a number or a string with a suffix.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum SizeValue {
    /// Bytes.
    Bytes(u64),
    /// "64G".
    Text(String),
}

impl SizeValue {
    fn bytes(&self) -> Result<u64, String> {
        match self {
            SizeValue::Bytes(b) => Ok(*b),
            SizeValue::Text(t) => parse_size(t),
        }
    }
}

/// Parses "4096", "64K", "10M", "64G", "1T" (powers of 1024).
pub fn parse_size(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let (num, mult) = match s.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => {
            let m = match c.to_ascii_uppercase() {
                'K' => 1u64 << 10,
                'M' => 1 << 20,
                'G' => 1 << 30,
                'T' => 1 << 40,
                _ => return Err(format!("unknown size suffix in '{s}' (use K, M, G or T)")),
            };
            (&s[..i], m)
        }
        _ => (s, 1),
    };
    let n: u64 = num.trim().parse().map_err(|_| format!("invalid size '{s}'"))?;
    n.checked_mul(mult).ok_or_else(|| format!("size '{s}' too large"))
}

/// Settings after merging the file and the command line.
#[derive(Debug)]
pub struct Settings {
    /// For [`crate::server::run`].
    pub server: ServerConfig,
    /// Pid file to write.
    pub pidfile: Option<PathBuf>,
    /// Log format.
    pub log_format: LogFormat,
}

impl Cli {
    /// Reads the config file (if any), applies the command line over it, checks the environment.
    pub fn settings(&self) -> Result<Settings, String> {
        let file: FileConfig = match &self.config {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
                toml::from_str(&text).map_err(|e| {
                    // toml's Display is a multi-line snippet; keep the position and the message.
                    let full = e.to_string();
                    let first = full.lines().next().unwrap_or("invalid TOML");
                    let at = first.trim_start_matches("TOML parse error ");
                    let last = full.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("");
                    format!("{}: {at}: {}", path.display(), last.trim())
                })?
            }
            None => FileConfig::default(),
        };
        let dump_dir = self
            .dump_dir
            .clone()
            .or(file.dump_dir)
            .unwrap_or_else(|| PathBuf::from("/var/crash"));
        if !dump_dir.is_dir() {
            return Err(format!("dump directory {} does not exist", dump_dir.display()));
        }
        let bind_ip = self
            .bind_addr
            .or(file.bind_addr)
            .unwrap_or(IpAddr::V6(Ipv6Addr::UNSPECIFIED));
        let port = self.port.or(file.port).unwrap_or(20023);
        let handler = self.handler.clone().or(file.handler);
        if let Some(h) = &handler {
            check_executable(h)?;
        }
        let default_path = self
            .default_path
            .clone()
            .or(file.default_path)
            .unwrap_or_else(|| ".".into());
        if default_path != "." && crate::session::check_herald_path(default_path.as_bytes()).is_none() {
            return Err(format!(
                "default path '{default_path}' must be a relative path without '..'"
            ));
        }
        let idle = self.idle_timeout.or(file.idle_timeout).unwrap_or(600.0);
        // try_from: a huge value (1e30) would make `Duration::from_secs_f64` panic.
        let idle = Duration::try_from_secs_f64(idle)
            .ok()
            .filter(|d| !d.is_zero())
            .ok_or("--idle-timeout must be a positive number of seconds")?;
        let max_dump_size = match (self.max_dump_size, &file.max_dump_size) {
            (Some(v), _) => v,
            (None, Some(v)) => v.bytes()?,
            (None, None) => u64::MAX,
        };
        let min_free = match (self.min_free, &file.min_free) {
            (Some(v), _) => v,
            (None, Some(v)) => v.bytes()?,
            (None, None) => 0,
        };
        let mut server = ServerConfig::new(dump_dir);
        server.bind = SocketAddr::new(bind_ip, port);
        server.store.default_path = default_path;
        server.store.keep = self.keep.or(file.keep);
        server.session = SessionConfig {
            idle_timeout: idle,
            max_dump_size,
            ..SessionConfig::default()
        };
        server.max_sessions = self.max_sessions.or(file.max_sessions).unwrap_or(64);
        server.heralds_per_second = self.herald_rate.or(file.herald_rate).unwrap_or(10);
        server.heralds_per_second_total = self.herald_rate_total.or(file.herald_rate_total).unwrap_or(100);
        server.min_free = min_free;
        server.handler = handler;
        server.resolve_hostnames = !self.no_resolve && file.resolve_hostnames.unwrap_or(true);
        server.metrics = self.metrics.or(file.metrics);
        Ok(Settings {
            server,
            pidfile: self.pidfile.clone().or(file.pidfile),
            log_format: self.log_format.or(file.log_format).unwrap_or(LogFormat::Text),
        })
    }
}

fn check_executable(path: &Path) -> Result<(), String> {
    let meta =
        std::fs::metadata(path).map_err(|e| format!("cannot access handler {}: {e}", path.display()))?;
    if !meta.is_file() || meta.permissions().mode() & 0o111 == 0 {
        return Err(format!("handler {} is not an executable file", path.display()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn example_config_parses() {
        let text = include_str!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../dist/systemd/receiver.toml.example"
        ));
        let f: FileConfig = toml::from_str(text).unwrap();
        assert_eq!(f.port, Some(20023));
        assert_eq!(f.max_dump_size.unwrap().bytes(), Ok(256 << 30));
        assert_eq!(f.log_format, Some(LogFormat::Json));
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("64K"), Ok(65536));
        assert_eq!(parse_size("2g"), Ok(2 << 30));
        assert!(parse_size("1X").is_err());
        assert!(parse_size("G").is_err());
    }

    #[test]
    fn file_then_flags() {
        let tmp = tempfile::tempdir().unwrap();
        let cfg = tmp.path().join("r.toml");
        std::fs::write(
            &cfg,
            format!(
                "dump_dir = {:?}\nport = 1234\nmax_dump_size = \"1M\"\nidle_timeout = 5\nlog_format = \"json\"\n",
                tmp.path()
            ),
        )
        .unwrap();
        let cli = Cli::try_parse_from([
            "x",
            "--config",
            cfg.to_str().unwrap(),
            "--port",
            "0",
            "-a",
            "127.0.0.1",
        ])
        .unwrap();
        let s = cli.settings().unwrap();
        assert_eq!(s.server.bind, "127.0.0.1:0".parse().unwrap());
        assert_eq!(s.server.session.max_dump_size, 1 << 20);
        assert_eq!(s.server.session.idle_timeout, Duration::from_secs(5));
        assert_eq!(s.log_format, LogFormat::Json);
        // Out-of-range timeouts are refused with a message, not a panic.
        let dir = tmp.path().to_str().unwrap();
        for bad in ["0", "-1", "1e30", "NaN", "inf"] {
            let flag = format!("--idle-timeout={bad}");
            let cli = Cli::try_parse_from(["x", "-d", dir, flag.as_str()]).unwrap();
            assert!(
                cli.settings()
                    .unwrap_err()
                    .contains("--idle-timeout must be a positive"),
                "{bad}"
            );
        }
        std::fs::write(&cfg, "idle_timeout = 1e300\n").unwrap();
        let cli = Cli::try_parse_from(["x", "-d", dir, "--config", cfg.to_str().unwrap()]).unwrap();
        assert!(cli.settings().is_err());
        std::fs::write(&cfg, "bogus = 1\n").unwrap();
        let cli = Cli::try_parse_from(["x", "--config", cfg.to_str().unwrap()]).unwrap();
        assert!(cli.settings().unwrap_err().contains("bogus"));
    }
}
