//! A deterministic lossy link as a `phy::Device` decorator.
//!
//! Every frame that crosses the decorator, in either direction, gets one fate, drawn from a seeded PRNG with
//! the per-mille rates of its direction ([`Faults`]):
//!
//! | fate | receive side (inner → stack) | transmit side (stack → inner) |
//! |---|---|---|
//! | drop | never delivered | built by the stack, then discarded |
//! | duplicate | delivered now and once more on the next poll | sent now and once more on the next poll |
//! | reorder | held back, released right after the next frame that passes (or after `reorder_max_polls`) | same |
//! | delay | held back for a number of polls or an amount of (virtual) time ([`Delay`]) | same |
//! | pass | delivered | sent |
//!
//! A *poll* is one call of `receive` or `transmit` on the decorator; held frames are released at the start of
//! those calls (transmit-side ones through the inner device's `transmit`). Time is the `Instant` the caller
//! passes in, so tests can run on virtual time. Frames are held in `SLOTS` fixed buffers of `MTU` bytes per
//! direction; when they are all in use a frame that should be held passes instead (counted in `held_full`).

use core::fmt;

use smoltcp::phy::{self, Device, DeviceCapabilities, PacketMeta};
use smoltcp::time::{Duration, Instant};

/// Default largest frame the injector can hold (an Ethernet frame of MTU 1500 is 1514 bytes).
pub const DEFAULT_MTU: usize = 1536;
/// Default number of frames that can be held back per direction.
pub const DEFAULT_SLOTS: usize = 8;
/// Most frames one `receive` call pulls from the inner device while looking for one to deliver.
const MAX_PULL_PER_POLL: usize = 64;

/// How long a delayed frame is held.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Delay {
    /// Released on the n-th poll after it was held.
    Polls(u32),
    /// Released on the first poll at or after `held at + duration` (caller's clock, possibly virtual).
    Time(Duration),
}

/// Fault rates for one direction, in per mille (0-1000). The fates are exclusive: one draw per frame picks
/// drop, then duplicate, reorder, delay in that order of the cumulative rates (so their sum should be ≤ 1000;
/// rates past 1000 in total are cut from the later fates).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Faults {
    /// ‰ of frames dropped.
    pub drop: u16,
    /// ‰ of frames delivered twice.
    pub duplicate: u16,
    /// ‰ of frames held back until the next one has passed.
    pub reorder: u16,
    /// ‰ of frames delayed by [`delay_by`](Self::delay_by).
    pub delay: u16,
    /// How long delayed frames are held.
    pub delay_by: Delay,
}

impl Faults {
    /// A perfect link.
    pub const NONE: Faults = Faults {
        drop: 0,
        duplicate: 0,
        reorder: 0,
        delay: 0,
        delay_by: Delay::Polls(1),
    };

    /// Only drops, at `per_mille`.
    pub const fn lossy(per_mille: u16) -> Faults {
        Faults {
            drop: per_mille,
            ..Faults::NONE
        }
    }
}

impl Default for Faults {
    fn default() -> Self {
        Faults::NONE
    }
}

/// The injector's configuration.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// Faults on frames the inner device receives (on their way to the stack).
    pub rx: Faults,
    /// Faults on frames the stack transmits (on their way to the inner device).
    pub tx: Faults,
    /// A reordered frame is released after this many polls even if no later frame passed.
    pub reorder_max_polls: u32,
}

impl Config {
    /// The same faults in both directions.
    pub const fn symmetric(faults: Faults) -> Config {
        Config {
            rx: faults,
            tx: faults,
            reorder_max_polls: 32,
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Config::symmetric(Faults::NONE)
    }
}

/// Counters for one direction.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct DirectionStats {
    /// Frames that entered the injector.
    pub frames: u64,
    /// Frames that left it (passed, duplicates and released held frames).
    pub delivered: u64,
    /// Frames dropped on purpose.
    pub dropped: u64,
    /// Frames delivered a second time.
    pub duplicated: u64,
    /// Frames held back for reordering.
    pub reordered: u64,
    /// Frames held back for a delay.
    pub delayed: u64,
    /// Frames that should have been held (or duplicated) but found no free slot, and passed instead.
    pub held_full: u64,
    /// Frames longer than the injector's `MTU` (received ones are dropped, transmitted ones passed as is).
    pub oversize: u64,
    /// Transmit side only: reply tokens that found the inner device without a transmit buffer (frame lost).
    pub no_buffer: u64,
}

/// Counters for both directions.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Inner device → stack.
    pub rx: DirectionStats,
    /// Stack → inner device.
    pub tx: DirectionStats,
}

/// splitmix64: tiny, no_std, and good enough to pick fates.
#[derive(Clone, Debug)]
struct SplitMix64(u64);

impl SplitMix64 {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in 0..n (multiply-shift; the bias is far below what matters here).
    fn below(&mut self, n: u32) -> u32 {
        (((self.next_u64() >> 32) * u64::from(n)) >> 32) as u32
    }
}

#[derive(Copy, Clone, Debug, PartialEq, Eq)]
enum Fate {
    Pass,
    Drop,
    Duplicate,
    Reorder,
    Delay,
}

#[derive(Copy, Clone, Debug)]
enum Release {
    /// Due at the next poll.
    Now,
    /// Due once a later frame has passed, or at poll `deadline`.
    AfterNext {
        deadline: u64,
    },
    AtPoll(u64),
    AtTime(Instant),
}

#[derive(Copy, Clone)]
struct Slot<const MTU: usize> {
    used: bool,
    seq: u64,
    len: usize,
    release: Release,
    data: [u8; MTU],
}

impl<const MTU: usize> Slot<MTU> {
    const EMPTY: Self = Slot {
        used: false,
        seq: 0,
        len: 0,
        release: Release::Now,
        data: [0; MTU],
    };

    fn due(&self, now: Instant, poll: u64) -> bool {
        self.used
            && match self.release {
                Release::Now => true,
                Release::AfterNext { deadline } => poll >= deadline,
                Release::AtPoll(p) => poll >= p,
                Release::AtTime(t) => now >= t,
            }
    }
}

/// Frames held back in one direction.
struct Held<const SLOTS: usize, const MTU: usize> {
    slots: [Slot<MTU>; SLOTS],
    next_seq: u64,
}

impl<const SLOTS: usize, const MTU: usize> Held<SLOTS, MTU> {
    const EMPTY: Self = Held {
        slots: [Slot::EMPTY; SLOTS],
        next_seq: 0,
    };

    /// Holds a copy of `frame`; false if no slot is free or the frame does not fit.
    fn hold(&mut self, frame: &[u8], release: Release) -> bool {
        if frame.len() > MTU {
            return false;
        }
        let Some(slot) = self.slots.iter_mut().find(|s| !s.used) else {
            return false;
        };
        slot.used = true;
        slot.seq = self.next_seq;
        self.next_seq += 1;
        slot.len = frame.len();
        slot.release = release;
        slot.data[..frame.len()].copy_from_slice(frame);
        true
    }

    /// The due slot held longest (FIFO among due frames keeps the order deterministic).
    fn due(&self, now: Instant, poll: u64) -> Option<usize> {
        self.slots
            .iter()
            .enumerate()
            .filter(|(_, s)| s.due(now, poll))
            .min_by_key(|(_, s)| s.seq)
            .map(|(i, _)| i)
    }

    /// A frame passed: frames waiting to be reordered behind it become due.
    fn frame_passed(&mut self) {
        for s in self.slots.iter_mut().filter(|s| s.used) {
            if let Release::AfterNext { .. } = s.release {
                s.release = Release::Now;
            }
        }
    }

    fn count(&self) -> usize {
        self.slots.iter().filter(|s| s.used).count()
    }
}

struct State<const SLOTS: usize, const MTU: usize> {
    rng: SplitMix64,
    config: Config,
    polls: u64,
    stats: Stats,
    rx_held: Held<SLOTS, MTU>,
    tx_held: Held<SLOTS, MTU>,
    tx_scratch: [u8; MTU],
}

impl<const SLOTS: usize, const MTU: usize> State<SLOTS, MTU> {
    fn fate(&mut self, faults: Faults) -> Fate {
        let r = self.rng.below(1000);
        let mut edge = 0u32;
        for (rate, fate) in [
            (faults.drop, Fate::Drop),
            (faults.duplicate, Fate::Duplicate),
            (faults.reorder, Fate::Reorder),
            (faults.delay, Fate::Delay),
        ] {
            edge += u32::from(rate);
            if r < edge {
                return fate;
            }
        }
        Fate::Pass
    }

    fn release_for(&self, fate: Fate, faults: Faults, now: Instant) -> Release {
        match (fate, faults.delay_by) {
            (Fate::Reorder, _) => Release::AfterNext {
                deadline: self.polls + u64::from(self.config.reorder_max_polls),
            },
            (Fate::Duplicate, _) => Release::Now,
            (_, Delay::Polls(n)) => Release::AtPoll(self.polls + u64::from(n)),
            (_, Delay::Time(d)) => Release::AtTime(now + d),
        }
    }
}

/// A deterministic fault-injecting decorator over a `phy::Device` (see the module docs).
///
/// `SLOTS` frames of up to `MTU` bytes can be held per direction; the advertised MTU is capped at `MTU`.
pub struct FaultInjector<D: Device, const SLOTS: usize = DEFAULT_SLOTS, const MTU: usize = DEFAULT_MTU> {
    inner: D,
    rx_buf: [u8; MTU],
    state: State<SLOTS, MTU>,
}

impl<D: Device + fmt::Debug, const SLOTS: usize, const MTU: usize> fmt::Debug
    for FaultInjector<D, SLOTS, MTU>
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FaultInjector")
            .field("inner", &self.inner)
            .field("config", &self.state.config)
            .field("stats", &self.state.stats)
            .field("polls", &self.state.polls)
            .finish_non_exhaustive()
    }
}

impl<D: Device, const SLOTS: usize, const MTU: usize> FaultInjector<D, SLOTS, MTU> {
    /// Wraps `inner`; `seed` fixes every decision the injector will make.
    pub fn new(inner: D, seed: u64, config: Config) -> Self {
        FaultInjector {
            inner,
            rx_buf: [0; MTU],
            state: State {
                rng: SplitMix64(seed),
                config,
                polls: 0,
                stats: Stats::default(),
                rx_held: Held::EMPTY,
                tx_held: Held::EMPTY,
                tx_scratch: [0; MTU],
            },
        }
    }

    /// The counters so far.
    pub fn stats(&self) -> Stats {
        self.state.stats
    }

    /// The current configuration.
    pub fn config(&self) -> Config {
        self.state.config
    }

    /// Changes the fault rates from now on (held frames keep their release rule).
    pub fn set_config(&mut self, config: Config) {
        self.state.config = config;
    }

    /// Polls seen so far (calls of `receive` and `transmit`).
    pub fn polls(&self) -> u64 {
        self.state.polls
    }

    /// Frames currently held back: (receive side, transmit side).
    pub fn held(&self) -> (usize, usize) {
        (self.state.rx_held.count(), self.state.tx_held.count())
    }

    /// The wrapped device.
    pub fn inner(&self) -> &D {
        &self.inner
    }

    /// The wrapped device, mutably.
    pub fn inner_mut(&mut self) -> &mut D {
        &mut self.inner
    }

    /// Unwraps the device; held frames are lost.
    pub fn into_inner(self) -> D {
        self.inner
    }

    /// Sends transmit-side frames whose time has come (also done at the start of every poll).
    pub fn flush(&mut self, now: Instant) {
        let polls = self.state.polls;
        while let Some(i) = self.state.tx_held.due(now, polls) {
            let Some(token) = self.inner.transmit(now) else {
                break;
            };
            let slot = &mut self.state.tx_held.slots[i];
            let frame = &slot.data[..slot.len];
            phy::TxToken::consume(token, frame.len(), |buf| buf.copy_from_slice(frame));
            slot.used = false;
            self.state.stats.tx.delivered += 1;
        }
    }

    /// Fills `rx_buf` with the next frame to deliver, if any, and returns its length.
    fn next_rx_frame(&mut self, now: Instant) -> Option<usize> {
        for _ in 0..MAX_PULL_PER_POLL {
            let polls = self.state.polls;
            if let Some(i) = self.state.rx_held.due(now, polls) {
                let slot = &mut self.state.rx_held.slots[i];
                self.rx_buf[..slot.len].copy_from_slice(&slot.data[..slot.len]);
                slot.used = false;
                self.state.stats.rx.delivered += 1;
                return Some(slot.len);
            }

            let (rx, tx) = self.inner.receive(now)?;
            // The paired transmit token is given up: the reply token comes from `transmit` once this frame's
            // fate is known (keeping it would tie the loop's borrow of `inner` to the return value).
            drop(tx);
            let rx_buf = &mut self.rx_buf;
            let len = phy::RxToken::consume(rx, |frame| {
                let dst = rx_buf.get_mut(..frame.len())?;
                dst.copy_from_slice(frame);
                Some(frame.len())
            });
            self.state.stats.rx.frames += 1;
            let Some(len) = len else {
                self.state.stats.rx.oversize += 1;
                continue;
            };

            let faults = self.state.config.rx;
            let fate = self.state.fate(faults);
            let frame = &self.rx_buf[..len];
            let stats = &mut self.state.stats.rx;
            match fate {
                Fate::Drop => {
                    stats.dropped += 1;
                    continue;
                }
                Fate::Reorder | Fate::Delay => {
                    let release = self.state.release_for(fate, faults, now);
                    if self.state.rx_held.hold(frame, release) {
                        let stats = &mut self.state.stats.rx;
                        if fate == Fate::Reorder {
                            stats.reordered += 1;
                        } else {
                            stats.delayed += 1;
                        }
                        continue;
                    }
                    self.state.stats.rx.held_full += 1;
                }
                Fate::Duplicate => {
                    if self.state.rx_held.hold(frame, Release::Now) {
                        self.state.stats.rx.duplicated += 1;
                    } else {
                        self.state.stats.rx.held_full += 1;
                    }
                }
                Fate::Pass => {}
            }
            self.state.rx_held.frame_passed();
            self.state.stats.rx.delivered += 1;
            return Some(len);
        }
        None
    }
}

impl<D: Device, const SLOTS: usize, const MTU: usize> Device for FaultInjector<D, SLOTS, MTU> {
    type RxToken<'a>
        = RxToken<'a>
    where
        Self: 'a;
    type TxToken<'a>
        = TxToken<'a, D::TxToken<'a>, SLOTS, MTU>
    where
        Self: 'a;

    fn receive(&mut self, timestamp: Instant) -> Option<(Self::RxToken<'_>, Self::TxToken<'_>)> {
        self.state.polls += 1;
        self.flush(timestamp);
        let len = self.next_rx_frame(timestamp)?;
        let rx = RxToken {
            frame: &self.rx_buf[..len],
        };
        let tx = TxToken {
            token: self.inner.transmit(timestamp),
            state: &mut self.state,
            timestamp,
        };
        Some((rx, tx))
    }

    fn transmit(&mut self, timestamp: Instant) -> Option<Self::TxToken<'_>> {
        self.state.polls += 1;
        self.flush(timestamp);
        let token = self.inner.transmit(timestamp)?;
        Some(TxToken {
            token: Some(token),
            state: &mut self.state,
            timestamp,
        })
    }

    fn capabilities(&self) -> DeviceCapabilities {
        let mut caps = self.inner.capabilities();
        caps.max_transmission_unit = caps.max_transmission_unit.min(MTU);
        caps
    }
}

/// Receive token of [`FaultInjector`]: a frame copied out of the inner device.
pub struct RxToken<'a> {
    frame: &'a [u8],
}

impl fmt::Debug for RxToken<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RxToken").field("len", &self.frame.len()).finish()
    }
}

impl phy::RxToken for RxToken<'_> {
    fn consume<R, F>(self, f: F) -> R
    where
        F: FnOnce(&[u8]) -> R,
    {
        f(self.frame)
    }

    fn meta(&self) -> PacketMeta {
        PacketMeta::default()
    }
}

/// Transmit token of [`FaultInjector`]: decides the frame's fate when it is consumed.
pub struct TxToken<'a, T: phy::TxToken, const SLOTS: usize, const MTU: usize> {
    token: Option<T>,
    state: &'a mut State<SLOTS, MTU>,
    timestamp: Instant,
}

impl<T: phy::TxToken, const SLOTS: usize, const MTU: usize> fmt::Debug for TxToken<'_, T, SLOTS, MTU> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TxToken")
            .field("has_inner", &self.token.is_some())
            .finish_non_exhaustive()
    }
}

impl<T: phy::TxToken, const SLOTS: usize, const MTU: usize> phy::TxToken for TxToken<'_, T, SLOTS, MTU> {
    fn consume<R, F>(self, len: usize, f: F) -> R
    where
        F: FnOnce(&mut [u8]) -> R,
    {
        let TxToken {
            token,
            state,
            timestamp,
        } = self;
        state.stats.tx.frames += 1;

        if len > MTU {
            // Bigger than advertised: nothing to hold it in, so it goes out untouched.
            state.stats.tx.oversize += 1;
            return match token {
                Some(t) => {
                    state.stats.tx.delivered += 1;
                    t.consume(len, f)
                }
                None => {
                    state.stats.tx.no_buffer += 1;
                    f(&mut state.tx_scratch[..])
                }
            };
        }

        let faults = state.config.tx;
        let fate = state.fate(faults);
        let release = state.release_for(fate, faults, timestamp);
        let State {
            tx_held,
            tx_scratch,
            stats,
            ..
        } = state;
        let scratch = &mut tx_scratch[..len];
        let stats = &mut stats.tx;

        let hold_back = match fate {
            Fate::Drop => {
                stats.dropped += 1;
                return f(scratch);
            }
            Fate::Reorder | Fate::Delay => true,
            Fate::Duplicate | Fate::Pass => false,
        };
        if hold_back {
            let result = f(scratch);
            if tx_held.hold(scratch, release) {
                if fate == Fate::Reorder {
                    stats.reordered += 1;
                } else {
                    stats.delayed += 1;
                }
            } else {
                stats.held_full += 1;
                match token {
                    Some(t) => {
                        t.consume(len, |buf| buf.copy_from_slice(scratch));
                        tx_held.frame_passed();
                        stats.delivered += 1;
                    }
                    None => stats.no_buffer += 1,
                }
            }
            return result;
        }

        let Some(t) = token else {
            stats.no_buffer += 1;
            return f(scratch);
        };
        let result = t.consume(len, |buf| {
            let result = f(buf);
            if fate == Fate::Duplicate {
                if tx_held.hold(buf, Release::Now) {
                    stats.duplicated += 1;
                } else {
                    stats.held_full += 1;
                }
            }
            result
        });
        tx_held.frame_passed();
        stats.delivered += 1;
        result
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use crate::phy::testdev::{MemDevice, numbered};
    use std::vec::Vec;

    fn recv_all<D: Device>(dev: &mut D, now: Instant) -> Vec<u32> {
        let mut out = Vec::new();
        while let Some((rx, _tx)) = dev.receive(now) {
            out.push(phy::RxToken::consume(rx, |f| {
                u32::from_be_bytes(f[..4].try_into().unwrap())
            }));
        }
        out
    }

    fn send(dev: &mut impl Device, n: u32, now: Instant) {
        let tx = dev.transmit(now).expect("transmit token");
        phy::TxToken::consume(tx, 64, |buf| {
            buf.fill(0);
            buf[..4].copy_from_slice(&n.to_be_bytes());
        });
    }

    fn run_rx(seed: u64, config: Config, frames: u32) -> (Vec<u32>, Stats) {
        let mut dev = FaultInjector::<_>::new(MemDevice::with_rx(numbered(frames)), seed, config);
        let mut got = Vec::new();
        // Several polls so delayed and reordered frames come out too.
        for t in 0..(frames as i64 + 200) {
            got.extend(recv_all(&mut dev, Instant::from_millis(t)));
        }
        (got, dev.stats())
    }

    #[test]
    fn same_seed_same_pattern() {
        let config = Config::symmetric(Faults {
            drop: 100,
            duplicate: 50,
            reorder: 50,
            delay: 50,
            delay_by: Delay::Polls(3),
        });
        let (a, sa) = run_rx(42, config, 2000);
        let (b, sb) = run_rx(42, config, 2000);
        assert_eq!(a, b);
        assert_eq!(sa, sb);
        let (c, _) = run_rx(43, config, 2000);
        assert_ne!(a, c, "another seed gives another pattern");
    }

    #[test]
    fn drop_rate_is_roughly_honoured_both_ways() {
        let config = Config::symmetric(Faults::lossy(100));
        let (got, stats) = run_rx(7, config, 10_000);
        assert_eq!(stats.rx.frames, 10_000);
        assert!((850..=1150).contains(&stats.rx.dropped), "{stats:?}");
        assert_eq!(got.len() as u64, 10_000 - stats.rx.dropped);
        // Surviving frames keep their order when only drops are configured.
        assert!(got.windows(2).all(|w| w[0] < w[1]));

        let mut dev = FaultInjector::<_>::new(MemDevice::default(), 7, config);
        for n in 0..10_000 {
            send(&mut dev, n, Instant::ZERO);
        }
        let s = dev.stats().tx;
        assert_eq!(s.frames, 10_000);
        assert!((850..=1150).contains(&s.dropped), "{s:?}");
        assert_eq!(dev.inner().tx.len() as u64, 10_000 - s.dropped);
        assert_eq!(s.delivered, 10_000 - s.dropped);
    }

    #[test]
    fn duplicates_follow_their_original() {
        let faults = Faults {
            duplicate: 200,
            ..Faults::NONE
        };
        let (got, stats) = run_rx(1, Config::symmetric(faults), 5000);
        assert!((850..=1150).contains(&stats.rx.duplicated), "{stats:?}");
        assert_eq!(got.len() as u64, 5000 + stats.rx.duplicated);
        let mut dedup = got.clone();
        dedup.dedup();
        assert_eq!(dedup, (0..5000).collect::<Vec<_>>());
    }

    #[test]
    fn reorder_swaps_neighbours_without_loss() {
        let faults = Faults {
            reorder: 300,
            ..Faults::NONE
        };
        let (got, stats) = run_rx(3, Config::symmetric(faults), 3000);
        assert!(stats.rx.reordered > 600, "{stats:?}");
        let mut sorted = got.clone();
        sorted.sort_unstable();
        assert_eq!(
            sorted,
            (0..3000).collect::<Vec<_>>(),
            "nothing lost or duplicated"
        );
        assert_ne!(got, sorted, "some frames were reordered");
        // A held frame comes out right after the next frame that passes: it moves back only a few places.
        for (pos, &n) in got.iter().enumerate() {
            assert!(pos as i64 - i64::from(n) <= 8, "frame {n} at {pos}");
        }
    }

    #[test]
    fn delay_by_polls_and_by_time() {
        let faults = Faults {
            delay: 1000,
            delay_by: Delay::Polls(3),
            ..Faults::NONE
        };
        let mut dev = FaultInjector::<_>::new(MemDevice::with_rx(numbered(1)), 9, Config::symmetric(faults));
        let now = Instant::ZERO;
        assert!(dev.receive(now).is_none(), "poll 1: held");
        assert_eq!(dev.held(), (1, 0));
        assert!(dev.receive(now).is_none(), "poll 2: held");
        assert!(dev.receive(now).is_none(), "poll 3: held");
        assert_eq!(recv_all(&mut dev, now), [0], "poll 4 releases it");
        assert_eq!(dev.stats().rx.delayed, 1);

        let faults = Faults {
            delay: 1000,
            delay_by: Delay::Time(Duration::from_millis(10)),
            ..Faults::NONE
        };
        let mut dev = FaultInjector::<_>::new(MemDevice::default(), 9, Config::symmetric(faults));
        send(&mut dev, 5, Instant::from_millis(100));
        assert!(dev.inner().tx.is_empty());
        dev.flush(Instant::from_millis(109));
        assert!(dev.inner().tx.is_empty(), "not yet");
        dev.flush(Instant::from_millis(110));
        assert_eq!(dev.inner().tx.len(), 1);
        assert_eq!(dev.stats().tx.delayed, 1);
        assert_eq!(dev.stats().tx.delivered, 1);
    }

    #[test]
    fn transmit_side_reorder_and_duplicate() {
        let faults = Faults {
            duplicate: 200,
            reorder: 200,
            ..Faults::NONE
        };
        let mut dev = FaultInjector::<_>::new(MemDevice::default(), 11, Config::symmetric(faults));
        for n in 0..2000 {
            send(&mut dev, n, Instant::ZERO);
        }
        for _ in 0..40 {
            dev.state.polls += 1;
            dev.flush(Instant::ZERO);
        }
        assert_eq!(dev.held(), (0, 0));
        let s = dev.stats().tx;
        let sent: Vec<u32> = dev
            .inner()
            .tx
            .iter()
            .map(|f| u32::from_be_bytes(f[..4].try_into().unwrap()))
            .collect();
        assert_eq!(sent.len() as u64, 2000 + s.duplicated);
        assert_eq!(s.delivered, sent.len() as u64);
        let mut uniq = sent.clone();
        uniq.sort_unstable();
        uniq.dedup();
        assert_eq!(uniq, (0..2000).collect::<Vec<_>>());
        assert!(s.reordered > 250 && s.duplicated > 250, "{s:?}");
    }

    #[test]
    fn full_hold_slots_let_frames_pass() {
        let faults = Faults {
            delay: 1000,
            delay_by: Delay::Polls(1000),
            ..Faults::NONE
        };
        let mut dev =
            FaultInjector::<_, 2, 128>::new(MemDevice::with_rx(numbered(5)), 1, Config::symmetric(faults));
        assert_eq!(recv_all(&mut dev, Instant::ZERO), [2, 3, 4]);
        let s = dev.stats().rx;
        assert_eq!((s.delayed, s.held_full, s.delivered), (2, 3, 3));
        assert_eq!(dev.capabilities().max_transmission_unit, 128);
    }

    #[test]
    fn oversize_received_frames_are_dropped() {
        let mut inner = MemDevice::default();
        inner.rx.push_back(std::vec![0u8; 200]);
        inner.rx.push_back(std::vec![1u8; 100]);
        let mut dev = FaultInjector::<_, 2, 128>::new(inner, 1, Config::default());
        let got = dev
            .receive(Instant::ZERO)
            .map(|(rx, _)| phy::RxToken::consume(rx, |f| f.len()));
        assert_eq!(got, Some(100));
        assert_eq!(dev.stats().rx.oversize, 1);
    }

    #[test]
    fn works_over_smoltcp_loopback() {
        use smoltcp::phy::{Loopback, Medium};
        let run = |seed| {
            let config = Config {
                rx: Faults::lossy(250),
                tx: Faults::NONE,
                reorder_max_polls: 32,
            };
            let mut dev = FaultInjector::<_>::new(Loopback::new(Medium::Ethernet), seed, config);
            for n in 0..400 {
                send(&mut dev, n, Instant::ZERO);
            }
            let got = recv_all(&mut dev, Instant::ZERO);
            (got, dev.stats())
        };
        let (a, sa) = run(5);
        assert_eq!(run(5).0, a);
        assert_eq!(sa.tx.delivered, 400);
        assert_eq!(a.len() as u64, 400 - sa.rx.dropped);
        assert!((60..=140).contains(&sa.rx.dropped), "{sa:?}");
    }
}
