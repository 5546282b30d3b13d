//! A `phy::Device` decorator that copies every frame to a libpcap stream.
//!
//! Format: the classic libpcap file (version 2.4, microsecond timestamps), written little-endian with the
//! magic `0xa1b2c3d4` so readers detect the byte order, link type `LINKTYPE_ETHERNET` (1). Timestamps are the
//! `Instant`s the caller passes to `receive`/`transmit` (virtual time in tests shows up as such).
//!
//! A sink error stops the capture (a half-written record would corrupt the rest of the file); the data path is
//! never affected. [`PcapTap::stats`] reports records written and errors.

use core::cell::{Cell, RefCell};
use core::fmt;

use smoltcp::phy::{self, Device, DeviceCapabilities, PacketMeta};
use smoltcp::time::Instant;

/// libpcap link type of Ethernet frames.
pub const LINKTYPE_ETHERNET: u32 = 1;
/// Largest frame part recorded.
pub const SNAPLEN: u32 = 65_535;
const GLOBAL_HEADER_LEN: usize = 24;
const RECORD_HEADER_LEN: usize = 16;

/// A sink write failed (the std impl drops the `io::Error` detail to stay `Copy` and no_std-friendly).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct PcapWriteError;

impl fmt::Display for PcapWriteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("pcap sink write failed")
    }
}

impl core::error::Error for PcapWriteError {}

/// Where pcap bytes go.
pub trait PcapSink {
    /// Writes all of `data`, or fails.
    fn write_all(&mut self, data: &[u8]) -> Result<(), PcapWriteError>;
    /// Pushes buffered bytes out; the default does nothing.
    fn flush(&mut self) -> Result<(), PcapWriteError> {
        Ok(())
    }
}

#[cfg(feature = "std")]
impl<W: std::io::Write> PcapSink for W {
    fn write_all(&mut self, data: &[u8]) -> Result<(), PcapWriteError> {
        std::io::Write::write_all(self, data).map_err(|_| PcapWriteError)
    }
    fn flush(&mut self) -> Result<(), PcapWriteError> {
        std::io::Write::flush(self).map_err(|_| PcapWriteError)
    }
}

/// A no_std sink over a caller-lent buffer (e.g. a `static` capture area read out by a debugger).
/// A write that does not fit fails whole, so the buffer always holds complete records.
#[derive(Debug)]
pub struct SliceSink<'a> {
    buf: &'a mut [u8],
    len: usize,
}

impl<'a> SliceSink<'a> {
    /// An empty sink writing into `buf`.
    pub fn new(buf: &'a mut [u8]) -> Self {
        SliceSink { buf, len: 0 }
    }

    /// The bytes written so far.
    pub fn written(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

impl PcapSink for SliceSink<'_> {
    fn write_all(&mut self, data: &[u8]) -> Result<(), PcapWriteError> {
        let end = self.len.checked_add(data.len()).ok_or(PcapWriteError)?;
        let dst = self.buf.get_mut(self.len..end).ok_or(PcapWriteError)?;
        dst.copy_from_slice(data);
        self.len = end;
        Ok(())
    }
}

/// Which directions are captured.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Default)]
pub enum PcapMode {
    /// Received and transmitted frames.
    #[default]
    Both,
    /// Received frames only.
    RxOnly,
    /// Transmitted frames only.
    TxOnly,
}

/// Capture counters.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct PcapStats {
    /// Frame records written.
    pub records: u64,
    /// Sink errors (after the first, nothing more is written).
    pub write_errors: u64,
    /// Frames not recorded because the capture had stopped on an error.
    pub skipped: u64,
}

struct Recorder<W: PcapSink> {
    sink: RefCell<W>,
    stats: Cell<PcapStats>,
    mode: PcapMode,
}

impl<W: PcapSink> Recorder<W> {
    fn write(&self, parts: &[&[u8]]) {
        let mut stats = self.stats.get();
        if stats.write_errors > 0 {
            stats.skipped += 1;
        } else if let Ok(mut sink) = self.sink.try_borrow_mut() {
            // Tokens are consumed one at a time, so the borrow never fails; if it did, skip the frame.
            if parts.iter().try_for_each(|p| sink.write_all(p)).is_ok() {
                stats.records += 1;
            } else {
                stats.write_errors += 1;
            }
        } else {
            stats.skipped += 1;
        }
        self.stats.set(stats);
    }

    fn record(&self, rx: bool, timestamp: Instant, frame: &[u8]) {
        let wanted = match self.mode {
            PcapMode::Both => true,
            PcapMode::RxOnly => rx,
            PcapMode::TxOnly => !rx,
        };
        if !wanted {
            return;
        }
        let micros = u64::try_from(timestamp.total_micros()).unwrap_or(0);
        let incl = frame.len().min(SNAPLEN as usize);
        let mut hdr = [0u8; RECORD_HEADER_LEN];
        hdr[0..4].copy_from_slice(&((micros / 1_000_000) as u32).to_le_bytes());
        hdr[4..8].copy_from_slice(&((micros % 1_000_000) as u32).to_le_bytes());
        hdr[8..12].copy_from_slice(&(incl as u32).to_le_bytes());
        hdr[12..16].copy_from_slice(&(u32::try_from(frame.len()).unwrap_or(u32::MAX)).to_le_bytes());
        self.write(&[&hdr, &frame[..incl]]);
    }
}

/// The 24-byte libpcap global header.
pub fn global_header() -> [u8; GLOBAL_HEADER_LEN] {
    let mut h = [0u8; GLOBAL_HEADER_LEN];
    h[0..4].copy_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
    h[4..6].copy_from_slice(&2u16.to_le_bytes());
    h[6..8].copy_from_slice(&4u16.to_le_bytes());
    // thiszone and sigfigs stay 0
    h[16..20].copy_from_slice(&SNAPLEN.to_le_bytes());
    h[20..24].copy_from_slice(&LINKTYPE_ETHERNET.to_le_bytes());
    h
}

/// Records every frame crossing `inner` into a pcap sink.
pub struct PcapTap<D: Device, W: PcapSink> {
    inner: D,
    recorder: Recorder<W>,
}

impl<D: Device + fmt::Debug, W: PcapSink> fmt::Debug for PcapTap<D, W> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PcapTap")
            .field("inner", &self.inner)
            .field("mode", &self.recorder.mode)
            .field("stats", &self.recorder.stats.get())
            .finish_non_exhaustive()
    }
}

impl<D: Device, W: PcapSink> PcapTap<D, W> {
    /// Wraps `inner` and writes the pcap global header to `sink` at once.
    pub fn new(inner: D, sink: W, mode: PcapMode) -> Self {
        let tap = PcapTap {
            inner,
            recorder: Recorder {
                sink: RefCell::new(sink),
                stats: Cell::new(PcapStats::default()),
                mode,
            },
        };
        tap.recorder.write(&[&global_header()]);
        // The global header is not a frame record.
        let mut stats = tap.recorder.stats.get();
        stats.records = 0;
        tap.recorder.stats.set(stats);
        tap
    }

    /// Counters so far.
    pub fn stats(&self) -> PcapStats {
        self.recorder.stats.get()
    }

    /// Flushes the sink.
    pub fn flush(&mut self) -> Result<(), PcapWriteError> {
        self.recorder.sink.get_mut().flush()
    }

    /// The wrapped device.
    pub fn inner(&self) -> &D {
        &self.inner
    }

    /// The wrapped device, mutably.
    pub fn inner_mut(&mut self) -> &mut D {
        &mut self.inner
    }

    /// The sink, mutably.
    pub fn sink_mut(&mut self) -> &mut W {
        self.recorder.sink.get_mut()
    }

    /// Unwraps device and sink (the sink is not flushed).
    pub fn into_parts(self) -> (D, W) {
        (self.inner, self.recorder.sink.into_inner())
    }
}

impl<D: Device, W: PcapSink> Device for PcapTap<D, W> {
    type RxToken<'a>
        = RxToken<'a, D::RxToken<'a>, W>
    where
        Self: 'a;
    type TxToken<'a>
        = TxToken<'a, D::TxToken<'a>, W>
    where
        Self: 'a;

    fn receive(&mut self, timestamp: Instant) -> Option<(Self::RxToken<'_>, Self::TxToken<'_>)> {
        let recorder = &self.recorder;
        self.inner.receive(timestamp).map(|(rx, tx)| {
            (
                RxToken {
                    token: rx,
                    recorder,
                    timestamp,
                },
                TxToken {
                    token: tx,
                    recorder,
                    timestamp,
                },
            )
        })
    }

    fn transmit(&mut self, timestamp: Instant) -> Option<Self::TxToken<'_>> {
        let recorder = &self.recorder;
        self.inner.transmit(timestamp).map(|token| TxToken {
            token,
            recorder,
            timestamp,
        })
    }

    fn capabilities(&self) -> DeviceCapabilities {
        self.inner.capabilities()
    }
}

/// Receive token of [`PcapTap`].
pub struct RxToken<'a, T: phy::RxToken, W: PcapSink> {
    token: T,
    recorder: &'a Recorder<W>,
    timestamp: Instant,
}

impl<T: phy::RxToken, W: PcapSink> fmt::Debug for RxToken<'_, T, W> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PcapRxToken").finish_non_exhaustive()
    }
}

impl<T: phy::RxToken, W: PcapSink> phy::RxToken for RxToken<'_, T, W> {
    fn consume<R, F>(self, f: F) -> R
    where
        F: FnOnce(&[u8]) -> R,
    {
        let RxToken {
            token,
            recorder,
            timestamp,
        } = self;
        token.consume(|frame| {
            recorder.record(true, timestamp, frame);
            f(frame)
        })
    }

    fn meta(&self) -> PacketMeta {
        self.token.meta()
    }
}

/// Transmit token of [`PcapTap`].
pub struct TxToken<'a, T: phy::TxToken, W: PcapSink> {
    token: T,
    recorder: &'a Recorder<W>,
    timestamp: Instant,
}

impl<T: phy::TxToken, W: PcapSink> fmt::Debug for TxToken<'_, T, W> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PcapTxToken").finish_non_exhaustive()
    }
}

impl<T: phy::TxToken, W: PcapSink> phy::TxToken for TxToken<'_, T, W> {
    fn consume<R, F>(self, len: usize, f: F) -> R
    where
        F: FnOnce(&mut [u8]) -> R,
    {
        let TxToken {
            token,
            recorder,
            timestamp,
        } = self;
        token.consume(len, |buf| {
            let result = f(buf);
            recorder.record(false, timestamp, buf);
            result
        })
    }

    fn set_meta(&mut self, meta: PacketMeta) {
        self.token.set_meta(meta);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use crate::phy::testdev::{MemDevice, numbered};
    use std::vec::Vec;

    struct Record {
        ts_sec: u32,
        ts_usec: u32,
        data: Vec<u8>,
    }

    /// An independent reader of the classic pcap format (both byte orders), strict about lengths.
    fn read_pcap(bytes: &[u8]) -> (u32, Vec<Record>) {
        assert!(bytes.len() >= 24, "no global header");
        let le = match bytes[..4] {
            [0xd4, 0xc3, 0xb2, 0xa1] => true,
            [0xa1, 0xb2, 0xc3, 0xd4] => false,
            _ => panic!("bad pcap magic"),
        };
        let u32_at = |b: &[u8], at: usize| {
            let a: [u8; 4] = b[at..at + 4].try_into().unwrap();
            if le {
                u32::from_le_bytes(a)
            } else {
                u32::from_be_bytes(a)
            }
        };
        let u16_at = |b: &[u8], at: usize| {
            let a: [u8; 2] = b[at..at + 2].try_into().unwrap();
            if le {
                u16::from_le_bytes(a)
            } else {
                u16::from_be_bytes(a)
            }
        };
        assert_eq!((u16_at(bytes, 4), u16_at(bytes, 6)), (2, 4), "version");
        assert_eq!(u32_at(bytes, 16), SNAPLEN);
        let linktype = u32_at(bytes, 20);
        let mut records = Vec::new();
        let mut at = 24;
        while at < bytes.len() {
            assert!(bytes.len() - at >= 16, "truncated record header");
            let incl = u32_at(bytes, at + 8) as usize;
            let orig = u32_at(bytes, at + 12) as usize;
            assert!(incl <= orig);
            let data = bytes[at + 16..at + 16 + incl].to_vec();
            let ts_usec = u32_at(bytes, at + 4);
            assert!(ts_usec < 1_000_000);
            records.push(Record {
                ts_sec: u32_at(bytes, at),
                ts_usec,
                data,
            });
            at += 16 + incl;
        }
        assert_eq!(at, bytes.len());
        (linktype, records)
    }

    /// A real-looking Ethernet + IPv4 + UDP frame carrying a netdump ack (so tshark can dissect it).
    fn ack_frame(seqno: u32) -> Vec<u8> {
        let mut f = Vec::new();
        f.extend_from_slice(&[0x02, 0, 0, 0, 0, 0x02, 0x02, 0, 0, 0, 0, 0x01, 0x08, 0x00]);
        let mut ip = [
            0x45, 0, 0, 32, 0, 0, 0x40, 0, 64, 17, 0, 0, 127, 0, 0, 1, 127, 0, 0, 2,
        ];
        let sum = !ip.chunks(2).fold(0u32, |acc, w| {
            let s = acc + u32::from(u16::from_be_bytes([w[0], w[1]]));
            (s & 0xffff) + (s >> 16)
        }) as u16;
        ip[10..12].copy_from_slice(&sum.to_be_bytes());
        f.extend_from_slice(&ip);
        f.extend_from_slice(&20023u16.to_be_bytes());
        f.extend_from_slice(&20024u16.to_be_bytes());
        f.extend_from_slice(&12u16.to_be_bytes());
        f.extend_from_slice(&0u16.to_be_bytes());
        f.extend_from_slice(&seqno.to_be_bytes());
        f
    }

    #[test]
    fn writes_parsable_pcap_for_both_directions() {
        let mut inner = MemDevice::with_rx(numbered(3));
        inner.rx.push_back(ack_frame(7));
        let mut tap = PcapTap::new(inner, Vec::new(), PcapMode::Both);
        let mut rx_frames = Vec::new();
        for i in 0..4i64 {
            let (rx, _tx) = tap.receive(Instant::from_micros(1_500_000 + i)).unwrap();
            rx_frames.push(phy::RxToken::consume(rx, |f| f.to_vec()));
        }
        let tx = tap.transmit(Instant::from_secs(3)).unwrap();
        let frame = ack_frame(9);
        phy::TxToken::consume(tx, frame.len(), |buf| buf.copy_from_slice(&frame));
        assert_eq!(
            tap.stats(),
            PcapStats {
                records: 5,
                write_errors: 0,
                skipped: 0
            }
        );

        let (inner, pcap) = tap.into_parts();
        assert_eq!(inner.tx, [ack_frame(9)], "the data path is untouched");
        let (linktype, records) = read_pcap(&pcap);
        assert_eq!(linktype, LINKTYPE_ETHERNET);
        assert_eq!(records.len(), 5);
        for (r, f) in records.iter().zip(&rx_frames) {
            assert_eq!(&r.data, f);
        }
        assert_eq!((records[0].ts_sec, records[0].ts_usec), (1, 500_000));
        assert_eq!((records[3].ts_sec, records[3].ts_usec), (1, 500_003));
        assert_eq!((records[4].ts_sec, records[4].ts_usec), (3, 0));
        assert_eq!(records[4].data, ack_frame(9));

        tshark_check(&pcap, 5);
    }

    /// Reads the capture with tshark when it is installed (it is an optional check, not a dependency).
    fn tshark_check(pcap: &[u8], frames: usize) {
        let have = std::process::Command::new("tshark")
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success());
        if !have {
            std::println!("note: tshark not installed; skipped reading the capture with tshark");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tap.pcap");
        std::fs::write(&path, pcap).unwrap();
        let out = std::process::Command::new("tshark")
            .arg("-r")
            .arg(&path)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "tshark: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8_lossy(&out.stdout);
        assert_eq!(text.lines().count(), frames, "{text}");
        assert!(text.contains("UDP"), "{text}");
    }

    #[test]
    fn modes_filter_directions() {
        for (mode, want) in [(PcapMode::RxOnly, 2), (PcapMode::TxOnly, 1), (PcapMode::Both, 3)] {
            let mut tap = PcapTap::new(MemDevice::with_rx(numbered(2)), Vec::new(), mode);
            while let Some((rx, _)) = tap.receive(Instant::ZERO) {
                phy::RxToken::consume(rx, |_| ());
            }
            let tx = tap.transmit(Instant::ZERO).unwrap();
            phy::TxToken::consume(tx, 60, |_| ());
            assert_eq!(tap.stats().records, want, "{mode:?}");
            let (_, pcap) = tap.into_parts();
            assert_eq!(read_pcap(&pcap).1.len() as u64, want);
        }
    }

    #[test]
    fn slice_sink_stops_cleanly_when_full() {
        let mut area = [0u8; 24 + 2 * (16 + 64) + 10];
        let mut tap = PcapTap::new(
            MemDevice::with_rx(numbered(4)),
            SliceSink::new(&mut area),
            PcapMode::Both,
        );
        let mut delivered = 0;
        while let Some((rx, _)) = tap.receive(Instant::ZERO) {
            phy::RxToken::consume(rx, |_| ());
            delivered += 1;
        }
        assert_eq!(delivered, 4, "frames still flow when the capture is full");
        assert_eq!(
            tap.stats(),
            PcapStats {
                records: 2,
                write_errors: 1,
                skipped: 1
            }
        );
        let written = tap.sink_mut().written().to_vec();
        let (_, records) = read_pcap(&written);
        assert_eq!(records.len(), 2);
    }

    #[test]
    fn stacks_with_the_fault_injector() {
        use crate::phy::{FaultConfig, FaultInjector, Faults};
        let lossy = FaultInjector::<_>::new(
            MemDevice::with_rx(numbered(100)),
            1,
            FaultConfig::symmetric(Faults::lossy(500)),
        );
        let mut tap = PcapTap::new(lossy, Vec::new(), PcapMode::Both);
        let mut n = 0;
        while let Some((rx, _)) = tap.receive(Instant::ZERO) {
            phy::RxToken::consume(rx, |_| ());
            n += 1;
        }
        let dropped = tap.inner().stats().rx.dropped;
        assert_eq!(n + dropped, 100);
        let (_, pcap) = tap.into_parts();
        assert_eq!(
            read_pcap(&pcap).1.len() as u64,
            n,
            "the tap sees what the lossy link delivered"
        );
    }
}
