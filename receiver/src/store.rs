//! Dump files with netdumpd's names and rules (spec §2), plus sealdump's extra info lines.
//!
//! Layout inside `<dumpdir>/<path>/` (path = the herald's, if valid and the files can be made there,
//! else the default path):
//! `bounds.<host>` (next index), `info.<host>.N` (O_EXCL), `vmcore.<host>.N` (→ `vmcore_encrypted.<host>.N`,
//! `.gz`/`.zst` suffix), `key.<host>.N` (0400), `vmcore.<host>.last` and `info.<host>.last` symlinks.
//! Unlike netdumpd, no existing file is ever truncated or replaced: an index is used only if none of its
//! files exist.

use std::fmt::Write as _;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write as _};
use std::net::IpAddr;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use crate::session::{Encryption, Session};

/// netdumpd's MAX_DUMPS: indexes 0..1023.
pub const MAX_DUMPS: u32 = 1024;
/// Holes listed in an info file before "… and N more".
const MAX_LISTED_HOLES: usize = 16;

/// Where and how dumps are stored.
#[derive(Clone, Debug)]
pub struct StoreConfig {
    /// The dump directory (netdumpd `-d`, default /var/crash).
    pub dump_dir: PathBuf,
    /// Subdirectory for clients that send no (usable) path (netdumpd `-p`, default ".").
    pub default_path: String,
    /// Keep only the last K dumps per host and directory (None = keep all).
    pub keep: Option<u32>,
}

/// Turns a resolved name (cut at the first '.', like netdumpd) or an IP into a safe file-name part.
pub fn sanitize_host(resolved: Option<&str>, ip: IpAddr) -> String {
    let from_name = resolved
        .and_then(|n| n.split('.').next())
        .filter(|n| !n.is_empty());
    let raw = match from_name {
        Some(n) => n.to_string(),
        None => ip.to_string(),
    };
    let mut clean: String = raw
        .chars()
        .take(64)
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect();
    if clean.is_empty() || clean.chars().all(|c| c == '.') {
        clean = ip.to_string().replace(':', "_");
    }
    clean
}

/// Reverse DNS via the system resolver (`getent hosts`, so NSS and /etc/hosts apply); None if it fails.
pub fn reverse_dns(ip: IpAddr) -> Option<String> {
    let out = std::process::Command::new("getent")
        .arg("hosts")
        .arg(ip.to_string())
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8(out.stdout).ok()?;
    let name = text.split_whitespace().nth(1)?;
    // A numeric answer is no name (NI_NAMEREQD).
    if name.parse::<IpAddr>().is_ok() {
        None
    } else {
        Some(name.to_string())
    }
}

/// Free bytes available to unprivileged writers on the file system holding `path`.
pub fn free_bytes(path: &Path) -> io::Result<u64> {
    let st = rustix::fs::statvfs(path).map_err(io::Error::from)?;
    Ok(st.f_bavail.saturating_mul(st.f_frsize))
}

/// The version-independent KDH fields netdumpd prints.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KdhFields {
    /// Header version.
    pub version: u32,
    /// MACHINE_ARCH.
    pub architecture: Vec<u8>,
    /// Architecture version.
    pub architecture_version: u32,
    /// Payload bytes.
    pub dump_length: u64,
    /// Seconds since the epoch.
    pub dump_time: u64,
    /// Key blob size (v2+).
    pub dump_key_size: u32,
    /// Block size.
    pub block_size: u32,
    /// Compression (v3+): 0 none, 1 gzip, 2 zstd.
    pub compression: u8,
    /// Hostname.
    pub hostname: Vec<u8>,
    /// Kernel version string.
    pub version_string: Vec<u8>,
    /// Panic string.
    pub panic_string: Vec<u8>,
    /// XOR of all 128 words is 0.
    pub parity_ok: bool,
}

/// Parses a kernel dump header of version 1-4 (spec §3) with `sealdump_wire::kdh`.
pub fn parse_kdh(kdh: &[u8]) -> Result<KdhFields, sealdump_wire::Error> {
    let r = sealdump_wire::kdh::Repr::parse(kdh)?;
    Ok(KdhFields {
        version: r.version,
        architecture: r.architecture.to_vec(),
        architecture_version: r.architecture_version,
        dump_length: r.dump_length,
        dump_time: r.dump_time,
        dump_key_size: r.dump_key_size,
        block_size: r.block_size,
        compression: r.compression,
        hostname: r.hostname.to_vec(),
        version_string: r.version_string.to_vec(),
        panic_string: r.panic_string.to_vec(),
        parity_ok: r.parity_ok,
    })
}

/// Escapes control and non-ASCII bytes so a client cannot forge info-file lines.
fn printable(b: &[u8]) -> String {
    let mut out = String::with_capacity(b.len());
    for &c in b {
        if (0x20..0x7f).contains(&c) {
            out.push(char::from(c));
        } else {
            let _ = write!(out, "\\x{c:02x}");
        }
    }
    out
}

/// `ctime(3)` text in UTC: "Thu Nov 26 12:00:00 2026\n".
pub fn ctime_utc(secs: u64) -> String {
    let days = secs / 86_400;
    let rem = secs % 86_400;
    let (h, m, s) = (rem / 3600, rem % 3600 / 60, rem % 60);
    let weekday = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"][(days % 7) as usize];
    // Civil-from-days (Howard Hinnant's algorithm), days since 1970-01-01.
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let mon = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ][usize::try_from(month - 1).unwrap_or(0).min(11)];
    format!("{weekday} {mon} {day:2} {h:02}:{m:02}:{s:02} {year}\n")
}

/// netdumpd's KDH lines for the info file.
pub fn kdh_info_lines(f: &KdhFields) -> String {
    let mut t = String::new();
    let _ = writeln!(t, "  Architecture: {}", printable(&f.architecture));
    let _ = writeln!(t, "  Architecture Version: {}", f.architecture_version as i32);
    let _ = writeln!(
        t,
        "  Dump Length: {}B ({} MB)",
        f.dump_length,
        f.dump_length >> 20
    );
    let _ = writeln!(t, "  Blocksize: {}", f.block_size as i32);
    if f.version >= 3 {
        let algo = match f.compression {
            0 => "none",
            1 => "gzip",
            2 => "zstd",
            _ => "???",
        };
        let _ = writeln!(t, "  Compression: {algo}");
    }
    let _ = write!(t, "  Dumptime: {}", ctime_utc(f.dump_time));
    let _ = writeln!(t, "  Hostname: {}", printable(&f.hostname));
    // The version string normally ends in "\n" already (netdumpd prints it as is).
    let vs = f.version_string.strip_suffix(b"\n").unwrap_or(&f.version_string);
    let _ = writeln!(t, "  Version String: {}", printable(vs));
    let _ = writeln!(t, "  Panic String: {}", printable(&f.panic_string));
    let _ = writeln!(
        t,
        "  Header Parity Check: {}",
        if f.parity_ok { "Pass" } else { "Fail" }
    );
    t
}

/// What the end of a session looked like, for the info file and the handler.
#[derive(Clone, Debug)]
pub struct Summary {
    /// FINISHED, no holes, stream shape ok.
    pub complete: bool,
    /// FINISHED arrived.
    pub finished: bool,
    /// Encryption kind.
    pub encryption: Encryption,
    /// Distinct core bytes.
    pub core_bytes: u64,
    /// Distinct key bytes.
    pub key_bytes: u64,
    /// Missing core ranges.
    pub holes: Vec<(u64, u64)>,
    /// Missing key ranges.
    pub key_holes: Vec<(u64, u64)>,
}

impl Summary {
    /// Collects the end-of-session facts.
    pub fn of(session: &Session) -> Self {
        let stats = session.stats();
        Self {
            complete: session.is_complete(),
            finished: matches!(
                session.state(),
                crate::session::State::Finished | crate::session::State::Done
            ),
            encryption: session.encryption(),
            core_bytes: stats.core_bytes,
            key_bytes: stats.key_bytes,
            holes: session.holes().collect(),
            key_holes: session.key_holes().collect(),
        }
    }

    /// sealdump's extra info lines.
    pub fn info_lines(&self) -> String {
        let mut t = String::new();
        let enc = match &self.encryption {
            Encryption::None => "none".to_string(),
            Encryption::Ekcd {
                cipher,
                encrypted_key_size,
            } => {
                let c = match cipher {
                    1 => "AES-256-CBC",
                    2 => "ChaCha20",
                    _ => "unknown cipher",
                };
                format!(
                    "FreeBSD EKCD, {c}, RSA-{} wrapped key",
                    u64::from(*encrypted_key_size) * 8
                )
            }
            Encryption::Sealed(info) => {
                let aead = match info.aead {
                    Some(2) => "AES-256-GCM",
                    Some(3) => "ChaCha20-Poly1305",
                    _ => "unknown AEAD",
                };
                let chunk = info
                    .chunk_shift
                    .map_or_else(|| "?".to_string(), |s| (1u64 << s).to_string());
                let ids: Vec<String> = info
                    .key_ids
                    .iter()
                    .map(|id| id.iter().map(|b| format!("{b:02x}")).collect())
                    .collect();
                format!(
                    "sealdump v{}, {aead}, chunk {chunk}, recipients {}",
                    info.version,
                    if ids.is_empty() {
                        "?".to_string()
                    } else {
                        ids.join(",")
                    }
                )
            }
            _ => "unknown key blob".to_string(),
        };
        let _ = writeln!(t, "  Encryption: {enc}");
        let _ = writeln!(
            t,
            "  Bytes Received: {} core, {} key",
            self.core_bytes, self.key_bytes
        );
        let _ = writeln!(t, "  Holes: {}", list_ranges(&self.holes));
        if !self.key_holes.is_empty() {
            let _ = writeln!(t, "  Key Holes: {}", list_ranges(&self.key_holes));
        }
        t
    }

    /// The last line of the info file.
    pub fn last_line(&self) -> String {
        if self.complete {
            "Dump complete\n".to_string()
        } else if !self.finished {
            "Dump incomplete: client timed out\n".to_string()
        } else if self.holes.is_empty() && self.key_holes.is_empty() {
            "Dump incomplete: record stream does not end with a trailer\n".to_string()
        } else {
            let missing: u64 = self.holes.iter().chain(&self.key_holes).map(|(a, b)| b - a).sum();
            format!(
                "Dump incomplete: {missing} bytes missing: {}\n",
                list_ranges(&self.holes)
            )
        }
    }
}

fn list_ranges(r: &[(u64, u64)]) -> String {
    if r.is_empty() {
        return "none".into();
    }
    let mut s: Vec<String> = r
        .iter()
        .take(MAX_LISTED_HOLES)
        .map(|(a, b)| format!("{a:#x}-{b:#x}"))
        .collect();
    if r.len() > MAX_LISTED_HOLES {
        s.push(format!("... and {} more", r.len() - MAX_LISTED_HOLES));
    }
    s.join(", ")
}

/// The dump store.
#[derive(Clone, Debug)]
pub struct Store {
    config: StoreConfig,
}

fn create_excl(path: &Path, mode: u32) -> io::Result<File> {
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .custom_flags(libc::O_CLOEXEC)
        .open(path)
}

impl Store {
    /// A store over `config.dump_dir` (which must exist).
    pub fn new(config: StoreConfig) -> Self {
        Self { config }
    }

    /// The configuration.
    pub fn config(&self) -> &StoreConfig {
        &self.config
    }

    /// Opens the files of a new dump: the herald's path if usable, else the default path.
    pub fn open_dump(&self, host: &str, ip: IpAddr, herald_path: Option<&[u8]>) -> io::Result<DumpFiles> {
        if let Some(p) = herald_path {
            match crate::session::check_herald_path(p) {
                Some(components) => {
                    let rel = components.collect::<Vec<_>>().join("/");
                    match self.open_in(&rel, host, ip) {
                        Ok(d) => return Ok(d),
                        Err(e) => tracing::warn!(
                            %ip, path = %rel, error = %e,
                            "can't create output files in path, retrying with default"
                        ),
                    }
                }
                None => {
                    tracing::warn!(%ip, path = %String::from_utf8_lossy(p), "unsafe herald path, using default")
                }
            }
        }
        let default = self.config.default_path.clone();
        self.open_in(&default, host, ip)
    }

    fn open_in(&self, rel: &str, host: &str, ip: IpAddr) -> io::Result<DumpFiles> {
        let dir = self.config.dump_dir.join(rel);
        if !dir.is_dir() {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                "directory does not exist",
            ));
        }
        // Refuse symlinked components that lead outside the dump directory.
        let real_dir = dir.canonicalize()?;
        if !real_dir.starts_with(self.config.dump_dir.canonicalize()?) {
            return Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                "path leaves the dump directory",
            ));
        }
        let bounds = dir.join(format!("bounds.{host}"));
        let hinted = fs::read_to_string(&bounds)
            .ok()
            .and_then(|t| t.trim().parse::<u32>().ok());
        let candidates = hinted.filter(|&n| n < MAX_DUMPS).into_iter().chain(0..MAX_DUMPS);
        for index in candidates {
            let names = DumpNames::new(host, index);
            if names.any_exists(&dir) {
                continue;
            }
            let info = match create_excl(&dir.join(&names.info), 0o600) {
                Ok(f) => f,
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(e),
            };
            let core = match create_excl(&dir.join(&names.core), 0o600) {
                Ok(f) => f,
                Err(e) => {
                    let _ = fs::remove_file(dir.join(&names.info));
                    if e.kind() == io::ErrorKind::AlreadyExists {
                        continue;
                    }
                    return Err(e);
                }
            };
            let mut files = DumpFiles {
                dir,
                rel: rel.to_string(),
                host: host.to_string(),
                ip,
                index,
                info,
                core,
                key: None,
                core_name: names.core,
                info_name: names.info,
                key_name: names.key,
                kdh: None,
            };
            files.write_bounds()?;
            files.append_info(&format!("Dump from {host} [{ip}]\n"))?;
            return Ok(files);
        }
        Err(io::Error::other(format!(
            "no free index for client {host} [{ip}]"
        )))
    }
}

struct DumpNames {
    info: String,
    core: String,
    key: String,
    encrypted: String,
}

impl DumpNames {
    fn new(host: &str, index: u32) -> Self {
        Self {
            info: format!("info.{host}.{index}"),
            core: format!("vmcore.{host}.{index}"),
            key: format!("key.{host}.{index}"),
            encrypted: format!("vmcore_encrypted.{host}.{index}"),
        }
    }

    fn any_exists(&self, dir: &Path) -> bool {
        let exists = |n: &str| fs::symlink_metadata(dir.join(n)).is_ok();
        [&self.info, &self.core, &self.key, &self.encrypted]
            .iter()
            .any(|n| exists(n) || exists(&format!("{n}.gz")) || exists(&format!("{n}.zst")))
    }
}

/// The open files of one dump. All methods are blocking; the server calls them from a writer thread.
#[derive(Debug)]
pub struct DumpFiles {
    dir: PathBuf,
    rel: String,
    host: String,
    ip: IpAddr,
    index: u32,
    info: File,
    core: File,
    key: Option<File>,
    core_name: String,
    info_name: String,
    key_name: String,
    kdh: Option<KdhFields>,
}

impl DumpFiles {
    /// The dump index N.
    pub fn index(&self) -> u32 {
        self.index
    }

    /// Host part of the names.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// Directory holding the files.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Current core file name (changes on KDH).
    pub fn core_name(&self) -> &str {
        &self.core_name
    }

    /// Info path relative to the dump dir, as netdumpd passes it to the handler ("./info.host.0").
    pub fn info_rel(&self) -> String {
        format!("{}/{}", self.rel, self.info_name)
    }

    /// Core path relative to the dump dir ("./vmcore.host.0").
    pub fn core_rel(&self) -> String {
        format!("{}/{}", self.rel, self.core_name)
    }

    fn write_bounds(&self) -> io::Result<()> {
        // Written in place (bounds is advisory; a torn write only costs an index scan).
        let path = self.dir.join(format!("bounds.{}", self.host));
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(path)?;
        f.write_all(format!("{}\n", self.index + 1).as_bytes())
    }

    /// Appends text to the info file.
    pub fn append_info(&mut self, text: &str) -> io::Result<()> {
        self.info.write_all(text.as_bytes())
    }

    /// Positional write into the core file.
    pub fn write_core(&self, offset: u64, data: &[u8]) -> io::Result<()> {
        self.core.write_all_at(data, offset)
    }

    /// Positional write into the key file, creating it (mode 0400) on first use.
    pub fn write_key(&mut self, offset: u64, data: &[u8]) -> io::Result<()> {
        if self.key.is_none() {
            self.key = Some(create_excl(&self.dir.join(&self.key_name), 0o400)?);
            tracing::info!(host = %self.host, ip = %self.ip, "EKCD key from client");
        }
        match &self.key {
            Some(f) => f.write_all_at(data, offset),
            None => Ok(()),
        }
    }

    /// A KDH arrived: info lines, and netdumpd's renames (encrypted, compression suffix + truncation).
    pub fn record_kdh(&mut self, payload: &[u8]) -> io::Result<()> {
        if payload.len() < sealdump_wire::kdh::KDH_LEN {
            return self.append_info("Bad KDH: packet too small\n");
        }
        let f = match parse_kdh(payload) {
            Ok(f) => f,
            Err(e) => return self.append_info(&format!("Bad KDH: {e}\n")),
        };
        self.append_info(&kdh_info_lines(&f))?;
        if f.version >= 2 && f.dump_key_size > 0 {
            self.rename_core(format!("vmcore_encrypted.{}.{}", self.host, self.index))?;
        }
        if f.version >= 3 && matches!(f.compression, 1 | 2) {
            let suffix = if f.compression == 1 { ".gz" } else { ".zst" };
            if !self.core_name.ends_with(suffix) {
                self.rename_core(format!("{}{suffix}", self.core_name))?;
            }
            // The kernel writes whole blocks; decompressors choke on the tail.
            let len = self.core.metadata()?.len();
            if f.dump_length < len {
                self.core.set_len(f.dump_length)?;
            }
        }
        self.kdh = Some(f);
        Ok(())
    }

    /// Renames the core to `vmcore_encrypted.` if the key blob says it is encrypted but the KDH did not.
    pub fn ensure_encrypted_name(&mut self) -> io::Result<()> {
        if self.core_name.starts_with("vmcore.") {
            let rest = self.core_name["vmcore.".len()..].to_string();
            self.rename_core(format!("vmcore_encrypted.{rest}"))?;
        }
        Ok(())
    }

    fn rename_core(&mut self, new_name: String) -> io::Result<()> {
        let to = self.dir.join(&new_name);
        if fs::symlink_metadata(&to).is_ok() {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("{new_name} exists"),
            ));
        }
        fs::rename(self.dir.join(&self.core_name), to)?;
        self.core_name = new_name;
        Ok(())
    }

    /// Flushes the core and key to disk.
    pub fn sync(&self) -> io::Result<()> {
        self.core.sync_all()?;
        if let Some(k) = &self.key {
            k.sync_all()?;
        }
        Ok(())
    }

    /// End of the session: our lines, fsync, the last line, and on FINISHED the `.last` symlinks.
    pub fn close(&mut self, summary: &Summary) -> io::Result<()> {
        if summary.encryption.is_encrypted() {
            self.ensure_encrypted_name()?;
        }
        let sync_result = self.sync();
        self.append_info(&summary.info_lines())?;
        let last = match &sync_result {
            Ok(()) => summary.last_line(),
            Err(e) => format!("Dump unsuccessful: write error @ offset 00000000: {e}\n"),
        };
        self.append_info(&last)?;
        self.info.sync_all()?;
        if summary.finished {
            self.symlink_last("vmcore", &self.core_name.clone())?;
            self.symlink_last("info", &self.info_name.clone())?;
        }
        sync_result
    }

    fn symlink_last(&self, kind: &str, target: &str) -> io::Result<()> {
        let link = self.dir.join(format!("{kind}.{}.last", self.host));
        match fs::remove_file(&link) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        std::os::unix::fs::symlink(target, link)
    }

    /// Retention: keep only the `keep` highest indexes of this host in this directory.
    pub fn prune(&self, keep: u32) -> io::Result<()> {
        let prefix = format!("info.{}.", self.host);
        let mut indexes: Vec<u32> = fs::read_dir(&self.dir)?
            .filter_map(|e| e.ok())
            .filter_map(|e| e.file_name().to_str()?.strip_prefix(&prefix)?.parse::<u32>().ok())
            .collect();
        indexes.sort_unstable();
        let drop = indexes.len().saturating_sub(keep as usize);
        for &n in indexes.iter().take(drop) {
            if n == self.index {
                continue;
            }
            let names = DumpNames::new(&self.host, n);
            // The info file goes last: it is what marks an index for pruning, so a prune cut short (crash,
            // I/O error) is finished by the next one instead of leaving an orphaned core behind.
            for base in [&names.core, &names.key, &names.encrypted, &names.info] {
                for suffix in ["", ".gz", ".zst"] {
                    let p = self.dir.join(format!("{base}{suffix}"));
                    if fs::symlink_metadata(&p).is_ok() {
                        fs::remove_file(&p)?;
                        tracing::info!(file = %p.display(), "pruned old dump file");
                    }
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn store(dir: &Path) -> Store {
        Store::new(StoreConfig {
            dump_dir: dir.to_path_buf(),
            default_path: ".".into(),
            keep: None,
        })
    }

    #[test]
    fn host_names_are_sanitised() {
        let ip: IpAddr = "192.0.2.7".parse().unwrap();
        assert_eq!(sanitize_host(Some("box.example.org"), ip), "box");
        assert_eq!(sanitize_host(None, ip), "192.0.2.7");
        assert_eq!(sanitize_host(Some("../etc"), ip), "192.0.2.7");
        assert_eq!(sanitize_host(Some("a/b c"), ip), "a_b_c");
        let v6: IpAddr = "::1".parse().unwrap();
        assert_eq!(sanitize_host(None, v6), "__1");
    }

    #[test]
    fn ctime_matches_libc_format() {
        assert_eq!(ctime_utc(0), "Thu Jan  1 00:00:00 1970\n");
        assert_eq!(ctime_utc(1_700_000_000), "Tue Nov 14 22:13:20 2023\n");
        assert_eq!(ctime_utc(951_782_400), "Tue Feb 29 00:00:00 2000\n");
    }

    #[test]
    fn indexes_bounds_and_no_overwrite() {
        let tmp = tempfile::tempdir().unwrap();
        let s = store(tmp.path());
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        let a = s.open_dump("h", ip, None).unwrap();
        assert_eq!(a.index(), 0);
        assert_eq!(fs::read_to_string(tmp.path().join("bounds.h")).unwrap(), "1\n");
        let b = s.open_dump("h", ip, None).unwrap();
        assert_eq!(b.index(), 1);
        // A stale bounds file pointing at a used index falls back to the first free one.
        fs::write(tmp.path().join("bounds.h"), "0\n").unwrap();
        fs::remove_file(tmp.path().join("info.h.1")).unwrap();
        let c = s.open_dump("h", ip, None).unwrap();
        // vmcore.h.1 still exists, so index 1 is not reused.
        assert_eq!(c.index(), 2);
        assert_eq!(
            fs::read_to_string(tmp.path().join("info.h.2")).unwrap(),
            "Dump from h [127.0.0.1]\n"
        );
        assert_eq!(c.info_rel(), "./info.h.2");
        let mode = fs::metadata(tmp.path().join("vmcore.h.2"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o600);
    }

    #[test]
    fn herald_paths_fall_back_to_default() {
        let tmp = tempfile::tempdir().unwrap();
        fs::create_dir(tmp.path().join("sub")).unwrap();
        let s = store(tmp.path());
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        assert_eq!(
            s.open_dump("h", ip, Some(b"sub")).unwrap().dir(),
            tmp.path().join("sub")
        );
        assert_eq!(
            s.open_dump("h", ip, Some(b"../x")).unwrap().dir(),
            tmp.path().join(".")
        );
        assert_eq!(
            s.open_dump("h", ip, Some(b"missing")).unwrap().dir(),
            tmp.path().join(".")
        );
        std::os::unix::fs::symlink("/tmp", tmp.path().join("escape")).unwrap();
        assert_eq!(
            s.open_dump("h", ip, Some(b"escape")).unwrap().dir(),
            tmp.path().join(".")
        );
        assert!(!tmp.path().join("missing").exists());
    }

    fn kdh_v4(compression: u8, keysize: u32, len: u64) -> [u8; 512] {
        let mut k = [0u8; 512];
        k[..19].copy_from_slice(b"FreeBSD Kernel Dump");
        k[20..25].copy_from_slice(b"amd64");
        k[32..36].copy_from_slice(&4u32.to_be_bytes());
        k[36..40].copy_from_slice(&2u32.to_be_bytes());
        k[40..48].copy_from_slice(&len.to_be_bytes());
        k[48..56].copy_from_slice(&1_700_000_000u64.to_be_bytes());
        k[56..60].copy_from_slice(&keysize.to_be_bytes());
        k[60..64].copy_from_slice(&4096u32.to_be_bytes());
        k[64..68].copy_from_slice(b"host");
        k[128..141].copy_from_slice(b"FreeBSD 14.1\n");
        k[320..325].copy_from_slice(b"boom\n");
        k[495] = compression;
        let parity = k[..508]
            .chunks_exact(4)
            .fold(0u32, |a, w| a ^ u32::from_be_bytes([w[0], w[1], w[2], w[3]]));
        k[508..].copy_from_slice(&parity.to_be_bytes());
        k
    }

    #[test]
    fn kdh_lines_renames_and_truncation() {
        let tmp = tempfile::tempdir().unwrap();
        let s = store(tmp.path());
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        let mut d = s.open_dump("h", ip, None).unwrap();
        d.write_core(0, &[1; 8192]).unwrap();
        d.record_kdh(&kdh_v4(1, 0, 5000)).unwrap();
        assert_eq!(d.core_name(), "vmcore.h.0.gz");
        assert_eq!(
            fs::metadata(tmp.path().join("vmcore.h.0.gz")).unwrap().len(),
            5000
        );
        let info = fs::read_to_string(tmp.path().join("info.h.0")).unwrap();
        assert_eq!(
            info,
            "Dump from h [127.0.0.1]\n  Architecture: amd64\n  Architecture Version: 2\n  Dump Length: 5000B (0 MB)\n  \
             Blocksize: 4096\n  Compression: gzip\n  Dumptime: Tue Nov 14 22:13:20 2023\n  Hostname: host\n  \
             Version String: FreeBSD 14.1\n  Panic String: boom\\x0a\n  Header Parity Check: Pass\n"
        );
        let mut e = s.open_dump("h", ip, None).unwrap();
        e.write_key(0, &[2; 100]).unwrap();
        e.record_kdh(&kdh_v4(0, 4096, 1)).unwrap();
        assert_eq!(e.core_name(), "vmcore_encrypted.h.1");
        let mode = fs::metadata(tmp.path().join("key.h.1"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o400);
        e.record_kdh(&[0; 100]).unwrap();
        assert!(
            fs::read_to_string(tmp.path().join("info.h.1"))
                .unwrap()
                .ends_with("Bad KDH: packet too small\n")
        );
    }

    #[test]
    fn retention_keeps_the_last_k() {
        let tmp = tempfile::tempdir().unwrap();
        let s = store(tmp.path());
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        let mut last = None;
        for _ in 0..4 {
            last = Some(s.open_dump("h", ip, None).unwrap());
        }
        last.unwrap().prune(2).unwrap();
        assert!(!tmp.path().join("info.h.0").exists());
        assert!(!tmp.path().join("vmcore.h.1").exists());
        assert!(tmp.path().join("info.h.2").exists());
        assert!(tmp.path().join("vmcore.h.3").exists());
    }

    #[test]
    fn a_prune_cut_short_is_finished_by_the_next_one() {
        let tmp = tempfile::tempdir().unwrap();
        let s = store(tmp.path());
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        let first = s.open_dump("h", ip, None).unwrap();
        first.write_core(0, b"old").unwrap();
        // A directory where the old core should be makes remove_file fail, as an I/O error would.
        fs::write(tmp.path().join("key.h.0"), b"k").unwrap();
        fs::create_dir(tmp.path().join("vmcore_encrypted.h.0")).unwrap();
        let second = s.open_dump("h", ip, None).unwrap();
        assert!(second.prune(1).is_err());
        // The info file, which marks index 0 for pruning, is still there; nothing is orphaned.
        assert!(tmp.path().join("info.h.0").exists());
        fs::remove_dir(tmp.path().join("vmcore_encrypted.h.0")).unwrap();
        second.prune(1).unwrap();
        for name in ["info.h.0", "vmcore.h.0", "key.h.0"] {
            assert!(!tmp.path().join(name).exists(), "{name}");
        }
        assert!(tmp.path().join("info.h.1").exists());
    }
}
