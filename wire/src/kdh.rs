//! `struct kerneldumpheader`: 512 bytes, versions 1-4, big-endian, NUL-padded strings (spec §3).
//!
//! Version 4 (current):
//! ```text
//!   0  magic[20]            "FreeBSD Kernel Dump" / "FreeBSD Text Dump" / "Cleared Kernel Dump"
//!  20  architecture[12]     e.g. "amd64"
//!  32  version u32          4
//!  36  architectureversion  u32
//!  40  dumplength u64       payload bytes (headers and key not counted)
//!  48  dumptime u64         seconds since the epoch
//!  56  dumpkeysize u32      0 or the key blob size (rounded up to blocksize)
//!  60  blocksize u32        4096 for netdump
//!  64  hostname[64]
//! 128  versionstring[192]
//! 320  panicstring[175]
//! 495  compression u8       0 none, 1 gzip, 2 zstd
//! 496  dumpextent u64
//! 504  unused u32
//! 508  parity u32           XOR of all 128 words is 0
//! ```
//! Versions 1-3 place the fields differently (see [`Repr::parse`]); magic, architecture, version,
//! architecture version and parity are where they are in v4 in every version.

use crate::field::{self, Field};
use crate::{Error, Result};

/// Size of the header.
pub const KDH_LEN: usize = 512;
/// Highest header version known.
pub const CURRENT_VERSION: u32 = 4;
/// Block size of the netdump "disk".
pub const NETDUMP_BLOCK_SIZE: u32 = 4096;

const MAGIC: Field = 0..20;
const ARCHITECTURE: Field = 20..32;
const VERSION: usize = 32;
const ARCHITECTURE_VERSION: usize = 36;
const PARITY: usize = 508;

/// The three header magics.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum Magic {
    /// "FreeBSD Kernel Dump": a full (minidump) kernel dump.
    Kernel,
    /// "FreeBSD Text Dump": a textdump (ddb output tar).
    Text,
    /// "Cleared Kernel Dump": savecore overwrote the magic after saving.
    Cleared,
}

impl Magic {
    /// The magic string, without its NUL padding.
    pub const fn as_bytes(self) -> &'static [u8] {
        match self {
            Magic::Kernel => b"FreeBSD Kernel Dump",
            Magic::Text => b"FreeBSD Text Dump",
            Magic::Cleared => b"Cleared Kernel Dump",
        }
    }

    /// Recognises the NUL-padded magic field.
    pub fn from_field(field: &[u8]) -> Option<Magic> {
        let s = field::c_str(field);
        [Magic::Kernel, Magic::Text, Magic::Cleared]
            .into_iter()
            .find(|m| m.as_bytes() == s)
    }
}

/// Where the version-dependent fields live.
struct Layout {
    dump_length: usize,
    dump_time: usize,
    dump_key_size: Option<usize>,
    block_size: usize,
    hostname: Field,
    version_string: Field,
    panic_string: Field,
    compression: Option<usize>,
    dump_extent: Option<usize>,
}

/// v1: no key, compression or extent.
const V1: Layout = Layout {
    dump_length: 40,
    dump_time: 48,
    dump_key_size: None,
    block_size: 56,
    hostname: 60..124,
    version_string: 124..316,
    panic_string: 316..508,
    compression: None,
    dump_extent: None,
};
/// v2 (EKCD): as v4 up to a 188-byte panic string, no compression or extent.
const V2: Layout = Layout {
    dump_length: 40,
    dump_time: 48,
    dump_key_size: Some(56),
    block_size: 60,
    hostname: 64..128,
    version_string: 128..320,
    panic_string: 320..508,
    compression: None,
    dump_extent: None,
};
/// v3: extent right after the length, compression before the strings.
const V3: Layout = Layout {
    dump_length: 40,
    dump_time: 56,
    dump_key_size: Some(64),
    block_size: 68,
    hostname: 73..137,
    version_string: 137..329,
    panic_string: 329..508,
    compression: Some(72),
    dump_extent: Some(48),
};
const V4: Layout = Layout {
    dump_length: 40,
    dump_time: 48,
    dump_key_size: Some(56),
    block_size: 60,
    hostname: 64..128,
    version_string: 128..320,
    panic_string: 320..495,
    compression: Some(495),
    dump_extent: Some(496),
};

fn layout(version: u32) -> Result<&'static Layout> {
    match version {
        1 => Ok(&V1),
        2 => Ok(&V2),
        3 => Ok(&V3),
        4 => Ok(&V4),
        other => Err(Error::UnsupportedVersion(other)),
    }
}

fn xor_words(hdr: &[u8]) -> u32 {
    hdr.chunks_exact(4)
        .take(KDH_LEN / 4)
        .fold(0, |acc, w| acc ^ field::read_u32(w, 0))
}

/// The parity value to store at offset 508 so that the XOR of all 128 big-endian words is 0.
/// The current content of the parity field is ignored.
pub fn compute_parity(hdr: &[u8; KDH_LEN]) -> u32 {
    xor_words(&hdr[..PARITY])
}

/// Whether the first 512 bytes of `hdr` pass the parity check (false if `hdr` is shorter).
pub fn parity_ok(hdr: &[u8]) -> bool {
    hdr.len() >= KDH_LEN && xor_words(hdr) == 0
}

/// A read/write view of a kernel dump header, with v4 field accessors.
///
/// The integer accessors read the v4 offsets; for older versions use [`Repr::parse`], which knows their
/// layouts. String accessors return the whole NUL-padded field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wraps a buffer without checking it; fields outside a short buffer read as zero / empty.
    pub const fn new_unchecked(buffer: T) -> Packet<T> {
        Packet { buffer }
    }

    /// Wraps a buffer of at least 512 bytes (a disk block may be longer; the header is its start).
    pub fn new_checked(buffer: T) -> Result<Packet<T>> {
        let packet = Self::new_unchecked(buffer);
        packet.check_len()?;
        Ok(packet)
    }

    /// Ensures the buffer holds at least [`KDH_LEN`] bytes.
    pub fn check_len(&self) -> Result<()> {
        if self.buffer.as_ref().len() < KDH_LEN {
            Err(Error::Truncated)
        } else {
            Ok(())
        }
    }

    /// Returns the underlying buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    fn buf(&self) -> &[u8] {
        self.buffer.as_ref()
    }

    /// The raw 20-byte magic field.
    pub fn magic_field(&self) -> &[u8] {
        field::bytes(self.buf(), MAGIC)
    }
    /// The recognised magic, if any.
    pub fn magic(&self) -> Option<Magic> {
        Magic::from_field(self.magic_field())
    }
    /// The raw 12-byte architecture field.
    pub fn architecture(&self) -> &[u8] {
        field::bytes(self.buf(), ARCHITECTURE)
    }
    /// Header version.
    pub fn version(&self) -> u32 {
        field::read_u32(self.buf(), VERSION)
    }
    /// Architecture version.
    pub fn architecture_version(&self) -> u32 {
        field::read_u32(self.buf(), ARCHITECTURE_VERSION)
    }
    /// Dump payload length (v4 offset).
    pub fn dump_length(&self) -> u64 {
        field::read_u64(self.buf(), V4.dump_length)
    }
    /// Dump time, seconds since the epoch (v4 offset).
    pub fn dump_time(&self) -> u64 {
        field::read_u64(self.buf(), V4.dump_time)
    }
    /// Key blob size (v4 offset).
    pub fn dump_key_size(&self) -> u32 {
        field::read_u32(self.buf(), 56)
    }
    /// Block size (v4 offset).
    pub fn block_size(&self) -> u32 {
        field::read_u32(self.buf(), V4.block_size)
    }
    /// The raw 64-byte hostname field.
    pub fn hostname(&self) -> &[u8] {
        field::bytes(self.buf(), V4.hostname)
    }
    /// The raw 192-byte version string field.
    pub fn version_string(&self) -> &[u8] {
        field::bytes(self.buf(), V4.version_string)
    }
    /// The raw 175-byte panic string field.
    pub fn panic_string(&self) -> &[u8] {
        field::bytes(self.buf(), V4.panic_string)
    }
    /// Compression id (v4 offset).
    pub fn compression(&self) -> u8 {
        field::read_u8(self.buf(), 495)
    }
    /// Dump extent (v4 offset).
    pub fn dump_extent(&self) -> u64 {
        field::read_u64(self.buf(), 496)
    }
    /// The 4 unused bytes at 504.
    pub fn unused(&self) -> u32 {
        field::read_u32(self.buf(), 504)
    }
    /// The stored parity word.
    pub fn parity(&self) -> u32 {
        field::read_u32(self.buf(), PARITY)
    }
    /// Whether the parity check passes.
    pub fn parity_ok(&self) -> bool {
        parity_ok(self.buf())
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    fn buf_mut(&mut self) -> &mut [u8] {
        self.buffer.as_mut()
    }
    /// Writes the magic (NUL-padded). Panics if the buffer is shorter than 512 bytes, as all setters do.
    pub fn set_magic(&mut self, magic: Magic) {
        let f = &mut self.buf_mut()[MAGIC];
        f.fill(0);
        f[..magic.as_bytes().len()].copy_from_slice(magic.as_bytes());
    }
    /// Sets the header version.
    pub fn set_version(&mut self, value: u32) {
        field::write_u32(self.buf_mut(), VERSION, value);
    }
    /// Sets the architecture version.
    pub fn set_architecture_version(&mut self, value: u32) {
        field::write_u32(self.buf_mut(), ARCHITECTURE_VERSION, value);
    }
    /// Sets the dump length (v4 offset).
    pub fn set_dump_length(&mut self, value: u64) {
        field::write_u64(self.buf_mut(), V4.dump_length, value);
    }
    /// Sets the dump time (v4 offset).
    pub fn set_dump_time(&mut self, value: u64) {
        field::write_u64(self.buf_mut(), V4.dump_time, value);
    }
    /// Sets the key blob size (v4 offset).
    pub fn set_dump_key_size(&mut self, value: u32) {
        field::write_u32(self.buf_mut(), 56, value);
    }
    /// Sets the block size (v4 offset).
    pub fn set_block_size(&mut self, value: u32) {
        field::write_u32(self.buf_mut(), V4.block_size, value);
    }
    /// Sets the compression id (v4 offset).
    pub fn set_compression(&mut self, value: u8) {
        self.buf_mut()[495] = value;
    }
    /// Sets the dump extent (v4 offset).
    pub fn set_dump_extent(&mut self, value: u64) {
        field::write_u64(self.buf_mut(), 496, value);
    }
    /// Recomputes and stores the parity word; call after the last change.
    pub fn fill_parity(&mut self) {
        let parity = xor_words(&self.buf_mut()[..PARITY]);
        field::write_u32(self.buf_mut(), PARITY, parity);
    }
}

/// A version-independent view of a kernel dump header. Strings are the field contents before the first NUL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Repr<'a> {
    /// Which magic the header carries.
    pub magic: Magic,
    /// `MACHINE_ARCH`, e.g. `amd64`.
    pub architecture: &'a [u8],
    /// Header version, 1-4.
    pub version: u32,
    /// Architecture version (amd64 2, aarch64 1, …).
    pub architecture_version: u32,
    /// Dump payload length in bytes.
    pub dump_length: u64,
    /// Seconds since the epoch.
    pub dump_time: u64,
    /// Key blob size (0 in v1).
    pub dump_key_size: u32,
    /// Block size.
    pub block_size: u32,
    /// Host name.
    pub hostname: &'a [u8],
    /// Kernel version string (normally ends in "\n").
    pub version_string: &'a [u8],
    /// Panic string.
    pub panic_string: &'a [u8],
    /// Compression id: 0 none, 1 gzip, 2 zstd (0 before v3).
    pub compression: u8,
    /// Space reserved for the dump (= dump_length before v3).
    pub dump_extent: u64,
    /// Whether the parity check passed (ignored by `emit`, which always writes a correct parity).
    pub parity_ok: bool,
}

impl<'a> Repr<'a> {
    /// Parses the first 512 bytes of `buf`: known magic, version 1-4 (each with its own layout).
    /// A parity failure is reported in [`parity_ok`](Self::parity_ok), not as an error, since netdumpd
    /// and savecore report it and carry on.
    pub fn parse(buf: &'a [u8]) -> Result<Self> {
        let packet = Packet::new_checked(buf)?;
        let magic = packet.magic().ok_or(Error::BadMagic)?;
        let version = packet.version();
        let l = layout(version)?;
        let string = |f: &Field| field::c_str(field::bytes(buf, f.clone()));
        let dump_length = field::read_u64(buf, l.dump_length);
        Ok(Repr {
            magic,
            architecture: field::c_str(field::bytes(buf, ARCHITECTURE)),
            version,
            architecture_version: packet.architecture_version(),
            dump_length,
            dump_time: field::read_u64(buf, l.dump_time),
            dump_key_size: l.dump_key_size.map_or(0, |at| field::read_u32(buf, at)),
            block_size: field::read_u32(buf, l.block_size),
            hostname: string(&l.hostname),
            version_string: string(&l.version_string),
            panic_string: string(&l.panic_string),
            compression: l.compression.map_or(0, |at| field::read_u8(buf, at)),
            dump_extent: l.dump_extent.map_or(dump_length, |at| field::read_u64(buf, at)),
            parity_ok: parity_ok(buf),
        })
    }

    /// Always [`KDH_LEN`].
    pub const fn buffer_len(&self) -> usize {
        KDH_LEN
    }

    /// Writes the header in the layout of `self.version` (4 for anything we make) and sets the parity.
    ///
    /// Errors: [`Error::UnsupportedVersion`] for a version other than 1-4; [`Error::Malformed`] if a string
    /// is too long for its field or contains a NUL, or if a field the version cannot hold is not at its
    /// implied value (v1: key size 0; v1/v2: compression 0 and extent equal to the length).
    pub fn emit(&self, out: &mut [u8; KDH_LEN]) -> Result<()> {
        let l = layout(self.version)?;
        if (l.dump_key_size.is_none() && self.dump_key_size != 0)
            || (l.compression.is_none() && self.compression != 0)
            || (l.dump_extent.is_none() && self.dump_extent != self.dump_length)
        {
            return Err(Error::Malformed);
        }
        out.fill(0);
        field::write_c_str(&mut out[MAGIC], self.magic.as_bytes())?;
        field::write_c_str(&mut out[ARCHITECTURE], self.architecture)?;
        field::write_c_str(&mut out[l.hostname.clone()], self.hostname)?;
        field::write_c_str(&mut out[l.version_string.clone()], self.version_string)?;
        field::write_c_str(&mut out[l.panic_string.clone()], self.panic_string)?;
        field::write_u32(out, VERSION, self.version);
        field::write_u32(out, ARCHITECTURE_VERSION, self.architecture_version);
        field::write_u64(out, l.dump_length, self.dump_length);
        field::write_u64(out, l.dump_time, self.dump_time);
        if let Some(at) = l.dump_key_size {
            field::write_u32(out, at, self.dump_key_size);
        }
        field::write_u32(out, l.block_size, self.block_size);
        if let Some(at) = l.compression {
            out[at] = self.compression;
        }
        if let Some(at) = l.dump_extent {
            field::write_u64(out, at, self.dump_extent);
        }
        let parity = compute_parity(out);
        field::write_u32(out, PARITY, parity);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use proptest::prelude::*;
    use std::vec::Vec;

    fn put(hdr: &mut [u8], at: usize, bytes: &[u8]) {
        hdr[at..at + bytes.len()].copy_from_slice(bytes);
    }

    fn store_parity(hdr: &mut [u8; KDH_LEN]) {
        // The kernel's way: XOR every word with the parity word zeroed, store the result.
        hdr[508..].fill(0);
        let mut x = 0u32;
        for w in hdr.chunks(4) {
            x ^= u32::from_be_bytes([w[0], w[1], w[2], w[3]]);
        }
        hdr[508..].copy_from_slice(&x.to_be_bytes());
    }

    const VERSION_STRING: &[u8] = b"FreeBSD 14.1-RELEASE releng/14.1-n267679-10e31f0946d8 GENERIC\n";

    /// A v4 header laid out byte by byte the way an amd64 14.x kernel writes it for netdump.
    fn amd64_v4() -> [u8; KDH_LEN] {
        let mut h = [0u8; KDH_LEN];
        put(&mut h, 0, b"FreeBSD Kernel Dump");
        put(&mut h, 20, b"amd64");
        put(&mut h, 32, &4u32.to_be_bytes());
        put(&mut h, 36, &2u32.to_be_bytes());
        put(&mut h, 40, &0x1_2345_6000u64.to_be_bytes());
        put(&mut h, 48, &1_732_000_000u64.to_be_bytes());
        put(&mut h, 56, &4096u32.to_be_bytes());
        put(&mut h, 60, &4096u32.to_be_bytes());
        put(&mut h, 64, b"db1.example.org");
        put(&mut h, 128, VERSION_STRING);
        put(&mut h, 320, b"page fault");
        h[495] = 2;
        put(&mut h, 496, &0x1_2345_6000u64.to_be_bytes());
        store_parity(&mut h);
        h
    }

    #[test]
    fn parses_real_looking_v4_amd64() {
        let h = amd64_v4();
        let r = Repr::parse(&h).unwrap();
        assert_eq!(r.magic, Magic::Kernel);
        assert_eq!(r.architecture, b"amd64");
        assert_eq!(r.version, 4);
        assert_eq!(r.architecture_version, 2);
        assert_eq!(r.dump_length, 0x1_2345_6000);
        assert_eq!(r.dump_time, 1_732_000_000);
        assert_eq!(r.dump_key_size, 4096);
        assert_eq!(r.block_size, 4096);
        assert_eq!(r.hostname, b"db1.example.org");
        assert_eq!(r.version_string, VERSION_STRING);
        assert_eq!(r.panic_string, b"page fault");
        assert_eq!(r.compression, 2);
        assert_eq!(r.dump_extent, 0x1_2345_6000);
        assert!(r.parity_ok);

        let p = Packet::new_checked(&h[..]).unwrap();
        assert_eq!(p.magic(), Some(Magic::Kernel));
        assert_eq!(p.dump_key_size(), 4096);
        assert_eq!(p.compression(), 2);
        assert_eq!(p.dump_extent(), 0x1_2345_6000);
        assert_eq!(p.unused(), 0);
        assert_eq!(p.parity(), compute_parity(&h));
        assert!(p.parity_ok());

        // Emitting the parsed repr reproduces the kernel's bytes exactly.
        let mut out = [0xaau8; KDH_LEN];
        r.emit(&mut out).unwrap();
        assert_eq!(out, h);
    }

    #[test]
    fn parity_pass_and_fail() {
        let mut h = amd64_v4();
        assert!(parity_ok(&h));
        for at in [0, 37, 300, 495, 511] {
            let mut bad = h;
            bad[at] ^= 0x10;
            assert!(!parity_ok(&bad), "flip at {at}");
            let r = Repr::parse(&bad);
            // A flip in the magic or version is a parse error; elsewhere parse succeeds and reports it.
            if let Ok(r) = r {
                assert!(!r.parity_ok);
            }
        }
        // Two flips in the same byte column cancel: parity is a weak check, exactly as in FreeBSD.
        h[100] ^= 1;
        h[104] ^= 1;
        assert!(parity_ok(&h));
        assert!(!parity_ok(&h[..511]));
        let mut p = Packet::new_unchecked(h);
        p.set_dump_time(5);
        assert!(!p.parity_ok());
        p.fill_parity();
        assert!(p.parity_ok());
    }

    #[test]
    fn all_magics_and_bad_magic() {
        for m in [Magic::Kernel, Magic::Text, Magic::Cleared] {
            let mut h = amd64_v4();
            h[..20].fill(0);
            put(&mut h, 0, m.as_bytes());
            store_parity(&mut h);
            assert_eq!(Repr::parse(&h).unwrap().magic, m);
        }
        let mut h = amd64_v4();
        put(&mut h, 0, b"FreeBSD Kernel Dumq");
        assert_eq!(Repr::parse(&h), Err(Error::BadMagic));
        assert_eq!(Repr::parse(&[0u8; KDH_LEN]), Err(Error::BadMagic));
        assert_eq!(Repr::parse(&h[..511]), Err(Error::Truncated));
    }

    #[test]
    fn unsupported_versions() {
        for v in [0u32, 5, 0x0400_0000] {
            let mut h = amd64_v4();
            put(&mut h, 32, &v.to_be_bytes());
            assert_eq!(Repr::parse(&h), Err(Error::UnsupportedVersion(v)));
        }
    }

    #[test]
    fn parses_v1_i386() {
        let mut h = [0u8; KDH_LEN];
        put(&mut h, 0, b"FreeBSD Kernel Dump");
        put(&mut h, 20, b"i386");
        put(&mut h, 32, &1u32.to_be_bytes());
        put(&mut h, 36, &2u32.to_be_bytes());
        put(&mut h, 40, &0x4000_0000u64.to_be_bytes());
        put(&mut h, 48, &1_000_000_000u64.to_be_bytes());
        put(&mut h, 56, &512u32.to_be_bytes());
        put(&mut h, 60, b"oldbox");
        put(&mut h, 124, b"FreeBSD 10.3-RELEASE #0\n");
        put(&mut h, 316, b"trap 12");
        store_parity(&mut h);
        let r = Repr::parse(&h).unwrap();
        assert_eq!((r.version, r.block_size, r.dump_key_size), (1, 512, 0));
        assert_eq!((r.hostname, r.panic_string), (&b"oldbox"[..], &b"trap 12"[..]));
        assert_eq!(r.version_string, b"FreeBSD 10.3-RELEASE #0\n");
        assert_eq!((r.dump_extent, r.compression), (0x4000_0000, 0));
        assert!(r.parity_ok);
        let mut out = [0u8; KDH_LEN];
        r.emit(&mut out).unwrap();
        assert_eq!(out, h);
    }

    #[test]
    fn parses_v2_ekcd_and_v3() {
        let mut h = [0u8; KDH_LEN];
        put(&mut h, 0, b"FreeBSD Kernel Dump");
        put(&mut h, 20, b"amd64");
        put(&mut h, 32, &2u32.to_be_bytes());
        put(&mut h, 40, &1_000u64.to_be_bytes());
        put(&mut h, 56, &512u32.to_be_bytes()); // key size
        put(&mut h, 60, &512u32.to_be_bytes()); // block size
        put(&mut h, 64, b"ekcd-host");
        put(&mut h, 320, &[b'p'; 188]); // full-width panic string, no NUL
        store_parity(&mut h);
        let r = Repr::parse(&h).unwrap();
        assert_eq!((r.dump_key_size, r.block_size), (512, 512));
        assert_eq!(r.panic_string.len(), 188);
        assert_eq!(r.hostname, b"ekcd-host");

        let mut h = [0u8; KDH_LEN];
        put(&mut h, 0, b"FreeBSD Kernel Dump");
        put(&mut h, 20, b"aarch64");
        put(&mut h, 32, &3u32.to_be_bytes());
        put(&mut h, 36, &1u32.to_be_bytes());
        put(&mut h, 40, &777u64.to_be_bytes());
        put(&mut h, 48, &8192u64.to_be_bytes()); // extent
        put(&mut h, 56, &99u64.to_be_bytes()); // time
        put(&mut h, 68, &4096u32.to_be_bytes());
        h[72] = 1;
        put(&mut h, 73, b"arm-host");
        put(&mut h, 137, b"FreeBSD 12.0-CURRENT\n");
        put(&mut h, 329, b"panic3");
        store_parity(&mut h);
        let r = Repr::parse(&h).unwrap();
        assert_eq!((r.dump_length, r.dump_extent, r.dump_time), (777, 8192, 99));
        assert_eq!((r.block_size, r.compression), (4096, 1));
        assert_eq!((r.hostname, r.panic_string), (&b"arm-host"[..], &b"panic3"[..]));
        assert_eq!(r.version_string, b"FreeBSD 12.0-CURRENT\n");
    }

    #[test]
    fn emit_rejects_what_does_not_fit() {
        let h = amd64_v4();
        let r = Repr::parse(&h).unwrap();
        let mut out = [0u8; KDH_LEN];
        let long = [b'x'; 176];
        assert_eq!(
            Repr {
                panic_string: &long,
                ..r
            }
            .emit(&mut out),
            Err(Error::Malformed)
        );
        assert_eq!(
            Repr {
                hostname: b"a\0b",
                ..r
            }
            .emit(&mut out),
            Err(Error::Malformed)
        );
        assert_eq!(
            Repr { version: 9, ..r }.emit(&mut out),
            Err(Error::UnsupportedVersion(9))
        );
        // v1 cannot carry a key size; v2 cannot carry compression.
        assert_eq!(Repr { version: 1, ..r }.emit(&mut out), Err(Error::Malformed));
        assert_eq!(Repr { version: 2, ..r }.emit(&mut out), Err(Error::Malformed));
    }

    fn c_string(max: usize) -> impl Strategy<Value = Vec<u8>> {
        proptest::collection::vec(1u8..=255, 0..=max)
    }

    proptest! {
        #[test]
        fn round_trip(version in 1u32..=4, magic in 0..3usize, arch in c_string(12), archv: u32,
                      len: u64, time: u64, key: u32, bs: u32, host in c_string(64), vs in c_string(192),
                      ps in c_string(175), comp: u8, extent: u64) {
            let l = layout(version).unwrap();
            let repr = Repr {
                magic: [Magic::Kernel, Magic::Text, Magic::Cleared][magic],
                architecture: &arch,
                version,
                architecture_version: archv,
                dump_length: len,
                dump_time: time,
                dump_key_size: if l.dump_key_size.is_some() { key } else { 0 },
                block_size: bs,
                hostname: &host,
                version_string: &vs,
                panic_string: &ps[..ps.len().min(l.panic_string.len())],
                compression: if l.compression.is_some() { comp } else { 0 },
                dump_extent: if l.dump_extent.is_some() { extent } else { len },
                parity_ok: true,
            };
            let mut out = [0u8; KDH_LEN];
            repr.emit(&mut out).unwrap();
            prop_assert!(parity_ok(&out));
            prop_assert_eq!(Repr::parse(&out).unwrap(), repr);
        }

        #[test]
        fn arbitrary_bytes_never_panic(mut data in proptest::collection::vec(any::<u8>(), 0..600),
                                       version in 0u32..6, magic in 0..4usize) {
            // Give the parser a fair chance to get past the magic and version checks.
            if data.len() >= 36 && magic < 3 {
                data[..20].fill(0);
                let m = [Magic::Kernel, Magic::Text, Magic::Cleared][magic].as_bytes();
                data[..m.len()].copy_from_slice(m);
                data[32..36].copy_from_slice(&version.to_be_bytes());
            }
            if let Ok(r) = Repr::parse(&data) {
                prop_assert_eq!(r.parity_ok, parity_ok(&data));
                let mut out = [0u8; KDH_LEN];
                // Field contents parsed from a header always fit back into the same version's layout.
                r.emit(&mut out).unwrap();
            }
            let p = Packet::new_unchecked(&data[..]);
            let _ = (p.magic(), p.version(), p.dump_length(), p.panic_string(), p.dump_extent(), p.parity());
        }
    }
}
