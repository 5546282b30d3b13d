//! AIMD congestion window counted in packets (Reno-like, without byte counting).
//!
//! Slow start begins at [`INITIAL_CWND`] packets so that a stock netdumpd, which reads through a 128 KiB
//! socket buffer, is not flooded by a full 256-packet window before any ack comes back. One loss event per
//! round trip reduces the window ("recovery" ends once a packet sent after the reduction is acked); a
//! retransmission timeout collapses it to [`MIN_CWND`].
//!
//! The reduction depends on whether the loss looks like congestion. A full queue shows first as RTTs above
//! the path's minimum; then the window halves, as Reno does (the netdumpd 128 KiB buffer case overflows
//! this way: its RTT grows before it drops, and it ends in timeouts, which also collapse the window). A loss
//! on a path whose RTT sits at its minimum is random (a lossy link, or a lost ack, which with per-packet
//! acks looks the same): halving on it would hold the window near `1.22 / sqrt(p)` packets whatever the
//! link's capacity (1 % loss: about 12). Even a gentle multiplicative decrease (7/8) only moves that to
//! `sqrt(8 / p)`, because the window regains one packet per round trip (measured at 1 % loss each way, 1 ms
//! delay: 5.4 MB/s halving, 10 MB/s at 7/8, 18 MB/s at 31/32, 31-42 MB/s not reducing; lossless ~75 MB/s).
//! So a loss without queueing leaves the window alone while the recent loss fraction stays below
//! [`RANDOM_LOSS_LIMIT`] (BBR tolerates 2 %; per-packet acks double the apparent rate, as a lost ack looks
//! like a lost packet); above it, as on a bottleneck whose buffer is too shallow to show in the RTT, the
//! window shrinks by [`GENTLE_DECREASE`] per round trip.
//!
//! After such a random-loss reduction the window also grows back faster than Reno's one packet per round trip: one
//! packet per [`SCALABLE_ACKS`] acks (about 2 % per round trip at any window, as Scalable TCP does), so a 1/8 cut
//! is regained in a few round trips instead of hundreds (measured at 1 % loss each way, 1 ms delay, window 4096:
//! the window sat near 650 packets, growing by one per 2.5 ms round trip). A reduction on a standing queue, or a
//! timeout, returns to Reno's growth.
//!
//! A random-loss cut also never takes the window below the packets the path was just seen to deliver per minimum
//! RTT ([`Aimd::on_delivery`]): on a link that drops at random the cut would only starve it (5 % loss each way at
//! +1 ms: 67 MB in 6.8 s with the floor, 33 MB in 8 s without), while on a shallow-buffer bottleneck the
//! delivery rate is the bottleneck's, so the cut still reaches it.
//!
//! The floor only slows the slide, though: under random loss the path delivers a little less than the window, so
//! gentle cuts still took a 5 %-each-way link to about a dozen packets (9 MB/s at +1 ms). When the long-run loss
//! fraction (over ~2048 packets) also passes the limit, a loss-response test tells the two cases apart: the window
//! is halved and held, and the loss fraction of packets sent a window later is measured. A shallow bottleneck
//! drops only what exceeds its capacity, so its loss falls; a lossy link drops the same fraction at any window.
//! If it stayed, the window comes back and that loss (×1.5, +1 %, at most [`MAX_RANDOM_LOSS_LIMIT`]) is tolerated
//! from then on (5 % each way at +1 ms: 65-160 MB/s). If it fell, the halved window stays, as after congestion.
//! The price: on a link that is both lossy and a shallow bottleneck, the tolerated loss lets the buffer overflow
//! more (in the simulation, 3 % each way into a 16 KiB buffer with 2 packets in flight: 2 838 of 44 214 packets
//! dropped at the buffer instead of 511, for the same time; at 2 % each way and 100 packets in flight, no change).

/// Packets in flight allowed before the first ack.
pub const INITIAL_CWND: u32 = 10;
/// Floor of the window; 4 keeps enough packets in flight for 3 later acks to trigger fast retransmit.
pub const MIN_CWND: u32 = 4;
/// Window kept, as a fraction (numerator, denominator), on a loss without queueing.
pub const GENTLE_DECREASE: (u32, u32) = (7, 8);
/// Recent loss fraction, in 1/65536, above which a loss without queueing still reduces the window (5 %).
pub const RANDOM_LOSS_LIMIT: u32 = 65_536 / 20;
/// Highest loss fraction, in 1/65536, that a loss-response test may let the controller tolerate without cuts (20 %).
pub const MAX_RANDOM_LOSS_LIMIT: u32 = 65_536 / 5;
/// Fewest outcomes a loss-response test measures (fewer would make the loss fraction noise).
const MIN_TEST_OUTCOMES: u32 = 64;
/// One percent, in 1/65536.
const ONE_PERCENT: u32 = 655;
/// Acks per one-packet increase in congestion avoidance after a random-loss reduction.
pub const SCALABLE_ACKS: u32 = 50;
/// Delivery periods remembered for the delivery floor (the largest of them counts).
const DELIVERY_PERIODS: usize = 8;
/// Shortest delivery period: on loopback the minimum RTT is tens of microseconds, too short to count acks in.
const MIN_DELIVERY_PERIOD_US: u64 = 1_000;
/// The loss fraction is an exponential average with gain 1/2^LOSS_RATE_SHIFT per packet (~256 packets).
const LOSS_RATE_SHIFT: u32 = 8;
/// The long-run loss fraction averages over ~2048 packets: a test starts only once it too passes the limit, as a
/// spike of the short average is no lossy link.
const SLOW_LOSS_RATE_SHIFT: u32 = 11;

/// The congestion controller.
#[derive(Clone, Copy, Debug)]
pub struct Aimd {
    cwnd: u32,
    ssthresh: u32,
    /// Acks counted towards the next +1 in congestion avoidance.
    avoidance_acks: u32,
    /// Transmissions numbered below this were sent before the last reduction.
    recovery_start_tx: u64,
    max: u32,
    /// Window, threshold and growth mode before the last timeout, restored if the timeout proves spurious.
    before_timeout: Option<(u32, u32, bool)>,
    /// Recent fraction of packets declared lost, in 1/65536.
    loss_rate: u32,
    /// The last reduction was for random loss: grow by [`SCALABLE_ACKS`] rather than by the window.
    scalable: bool,
    /// Acks counted since `period_start_us`, in the current delivery period.
    period_acks: u32,
    period_start_us: u64,
    /// Acks per minimum RTT in the last [`DELIVERY_PERIODS`] periods: the packets the path delivers per round
    /// trip, below which a random-loss cut never takes the window.
    delivered: [u32; DELIVERY_PERIODS],
    delivered_next: usize,
    /// Loss fraction (1/65536) above which a loss without queueing reduces the window: [`RANDOM_LOSS_LIMIT`], or
    /// more once a loss-response test showed that the path drops about that much at any window.
    random_loss_limit: u32,
    /// Loss fraction over ~2048 packets, in 1/2^32: at 1/65536 the steps of a 1/2048 gain round away (an ack
    /// could not lower it below 3.1 %).
    slow_loss_rate: u64,
    /// The loss-response test under way, if any.
    loss_test: Option<LossTest>,
    /// After a test found congestion, no other starts before this transmission.
    next_test_tx: u64,
}

/// How a loss-response test ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Verdict {
    /// The loss stayed as it was at half the window: the link drops it.
    LossyLink,
    /// The loss fell (or grew): the path was full.
    Congestion,
}

/// A loss-response test: the window was halved when random-looking loss passed the limit, and is held there
/// while the loss fraction of packets sent at that window is measured.
#[derive(Clone, Copy, Debug)]
struct LossTest {
    /// Recent loss fraction when the test started.
    rate_before: u32,
    window_before: u32,
    ssthresh_before: u32,
    /// Outcomes of transmissions from here on are counted (a window after the halving).
    counts_from: u64,
    acks: u32,
    losses: u32,
    /// Outcomes that decide.
    needed: u32,
}

impl Aimd {
    /// A controller whose window never exceeds `max` packets.
    pub fn new(max: u32) -> Self {
        let max = max.max(1);
        Self {
            cwnd: INITIAL_CWND.min(max),
            ssthresh: max,
            avoidance_acks: 0,
            recovery_start_tx: 0,
            max,
            before_timeout: None,
            loss_rate: 0,
            scalable: false,
            period_acks: 0,
            period_start_us: 0,
            delivered: [0; DELIVERY_PERIODS],
            delivered_next: 0,
            random_loss_limit: RANDOM_LOSS_LIMIT,
            slow_loss_rate: 0,
            loss_test: None,
            next_test_tx: 0,
        }
    }

    /// Current window in packets.
    pub fn window(&self) -> u32 {
        self.cwnd
    }

    /// Slow-start threshold in packets.
    pub fn ssthresh(&self) -> u32 {
        self.ssthresh
    }

    fn floor(&self) -> u32 {
        MIN_CWND.min(self.max)
    }

    /// A packet sent as transmission `tx` was acked.
    pub fn on_ack(&mut self, tx: u64) {
        self.loss_rate -= self.loss_rate >> LOSS_RATE_SHIFT;
        self.slow_loss_rate -= self.slow_loss_rate >> SLOW_LOSS_RATE_SHIFT;
        if self.loss_test.is_some() {
            // The window holds while the test measures.
            let _ = self.count_test_outcome(tx, false);
            return;
        }
        if tx < self.recovery_start_tx {
            return;
        }
        if self.cwnd < self.ssthresh {
            self.cwnd += 1;
        } else {
            self.avoidance_acks += 1;
            let per_packet = if self.scalable {
                SCALABLE_ACKS.min(self.cwnd)
            } else {
                self.cwnd
            };
            if self.avoidance_acks >= per_packet {
                self.avoidance_acks = 0;
                self.cwnd += 1;
            }
        }
        self.cwnd = self.cwnd.min(self.max);
    }

    /// Counts an ack at `now_us` towards the delivery rate, on a path whose minimum RTT is `min_rtt_us`.
    pub fn on_delivery(&mut self, now_us: u64, min_rtt_us: u64) {
        let period = min_rtt_us.max(MIN_DELIVERY_PERIOD_US);
        if now_us.saturating_sub(self.period_start_us) >= period {
            // Acks per period, scaled to acks per minimum RTT: packets in flight that the path keeps busy.
            let per_rtt = u64::from(self.period_acks).saturating_mul(min_rtt_us) / period;
            if let Some(slot) = self.delivered.get_mut(self.delivered_next) {
                *slot = u32::try_from(per_rtt).unwrap_or(u32::MAX);
            }
            self.delivered_next = (self.delivered_next + 1) % DELIVERY_PERIODS;
            self.period_acks = 0;
            self.period_start_us = now_us;
        }
        self.period_acks = self.period_acks.saturating_add(1);
    }

    /// Packets the path delivered per minimum RTT, at most, over the last few periods.
    pub fn delivery_floor(&self) -> u32 {
        self.delivered.iter().copied().max().unwrap_or(0)
    }

    /// Transmission `tx` was declared lost by later acks; `next_tx` numbers the next transmission; `path` tells
    /// whether a queue stands on the path (see [`PathDelay::of`]). Returns whether the window was reduced (at most
    /// once per round trip): with a queue, to the share of the window the path holds without it
    /// (`min_rtt / queued_rtt`, as TCP Westwood sets ssthresh to bandwidth × minimum RTT), at least half; without,
    /// kept while the recent loss fraction is below the random-loss limit ([`RANDOM_LOSS_LIMIT`], or what a
    /// loss-response test found the link drops), else halved to start such a test when the long-run fraction is
    /// above the limit too, else shrunk by [`GENTLE_DECREASE`].
    pub fn on_loss(&mut self, tx: u64, next_tx: u64, path: PathDelay) -> bool {
        let queueing = path != PathDelay::Clear;
        self.loss_rate += (65_536 - self.loss_rate) >> LOSS_RATE_SHIFT;
        self.slow_loss_rate += ((1 << 32) - self.slow_loss_rate) >> SLOW_LOSS_RATE_SHIFT;
        if self.count_test_outcome(tx, true) == Some(Verdict::Congestion) {
            // The halving was this round trip's reduction.
            self.recovery_start_tx = next_tx;
            return false;
        }
        if tx < self.recovery_start_tx {
            return false;
        }
        if queueing {
            // A standing queue is congestion whatever the link loses besides.
            self.loss_test = None;
            self.random_loss_limit = RANDOM_LOSS_LIMIT;
        } else if self.loss_rate <= self.random_loss_limit || self.loss_test.is_some() {
            return false;
        } else if tx >= self.next_test_tx
            && (self.slow_loss_rate >> 16) > u64::from(self.random_loss_limit)
            && self.loss_rate <= MAX_RANDOM_LOSS_LIMIT
        {
            self.start_loss_test(next_tx);
            return true;
        }
        let kept = if let PathDelay::Queued {
            min_rtt_us,
            queued_rtt_us,
        } = path
        {
            // The queue drains and the pipe stays full: what the path holds at its minimum RTT.
            let share = u64::from(self.cwnd).saturating_mul(min_rtt_us) / queued_rtt_us.max(1);
            u32::try_from(share).unwrap_or(self.cwnd).max(self.cwnd / 2)
        } else {
            // Never below what the path has just been seen to deliver: on a lossy link that keeps the window
            // (the cut would only starve the link), on a shallow-buffer bottleneck it stops at its capacity.
            let cut = self.cwnd * GENTLE_DECREASE.0 / GENTLE_DECREASE.1;
            cut.max(self.delivery_floor().min(self.cwnd))
        };
        self.reduce_to(kept, next_tx, !queueing);
        true
    }

    /// This round trip's reduction: the window (and threshold) to `window`, at least the floor; recovery until a
    /// packet from `next_tx` on is acked; growth by [`SCALABLE_ACKS`] if `scalable`, else Reno's.
    fn reduce_to(&mut self, window: u32, next_tx: u64, scalable: bool) {
        self.cwnd = window.max(self.floor());
        self.ssthresh = self.cwnd;
        self.avoidance_acks = 0;
        self.recovery_start_tx = next_tx;
        self.before_timeout = None;
        self.scalable = scalable;
    }

    /// Random-looking loss passed the limit: halve the window and hold it, and measure the loss fraction of the
    /// packets sent a window later. A bottleneck whose buffer is too shallow to show in the RTT drops only what
    /// exceeds its capacity, so its loss falls when the window halves (to nothing, unless the window was more
    /// than twice the capacity); a lossy link drops the same fraction at any window.
    fn start_loss_test(&mut self, next_tx: u64) {
        let (window_before, ssthresh_before) = (self.cwnd, self.ssthresh);
        self.reduce_to(self.cwnd / 2, next_tx, false);
        // Enough outcomes to see the loss fraction to within about a third: ~30 expected losses.
        let expected_losses = (30u64 << 16) / u64::from(self.loss_rate.max(1));
        let needed = u64::from(self.cwnd.saturating_mul(2))
            .max(u64::from(MIN_TEST_OUTCOMES))
            .max(expected_losses);
        self.loss_test = Some(LossTest {
            rate_before: self.loss_rate,
            window_before,
            ssthresh_before,
            counts_from: next_tx + u64::from(self.cwnd),
            acks: 0,
            losses: 0,
            needed: u32::try_from(needed).unwrap_or(u32::MAX),
        });
    }

    /// Counts an outcome for the test under way and decides it once enough are in. The loss stayed between 3/4
    /// and twice what it was, plus 1 % (the counts are noisy), and at most [`MAX_RANDOM_LOSS_LIMIT`]: the link
    /// drops it at any window, so the window comes back and the mean of the two fractions (×1.5, +1 %: headroom
    /// for the noise of the short average) is tolerated from then on. It fell: congestion, and the halved window
    /// stays, growing as Reno's would. It grew further: an overshoot still draining, also congestion.
    fn count_test_outcome(&mut self, tx: u64, lost: bool) -> Option<Verdict> {
        let test = self.loss_test.as_mut()?;
        if tx < test.counts_from {
            return None;
        }
        if lost {
            test.losses += 1;
        } else {
            test.acks += 1;
        }
        let total = test.acks + test.losses;
        if total < test.needed {
            return None;
        }
        let test = *test;
        self.loss_test = None;
        let before = u64::from(test.rate_before);
        let after = (u64::from(test.losses) << 16) / u64::from(total);
        let unchanged = after * 4 >= before * 3 && after <= before * 2 + u64::from(ONE_PERCENT);
        if unchanged && after <= u64::from(MAX_RANDOM_LOSS_LIMIT) {
            let tolerated = ((after + before) * 3 / 4) as u32 + ONE_PERCENT;
            self.random_loss_limit = tolerated.clamp(self.random_loss_limit, MAX_RANDOM_LOSS_LIMIT);
            self.cwnd = self.cwnd.max(test.window_before).min(self.max);
            self.ssthresh = self.ssthresh.max(test.ssthresh_before);
            self.scalable = true;
            Some(Verdict::LossyLink)
        } else {
            self.next_test_tx = tx + 8 * u64::from(test.needed);
            Some(Verdict::Congestion)
        }
    }

    /// The retransmission timer fired.
    pub fn on_timeout(&mut self, next_tx: u64) {
        // A test under way ends; should the timeout prove spurious, the window from before the test comes back.
        let (cwnd, ssthresh) = self.loss_test.take().map_or((self.cwnd, self.ssthresh), |t| {
            (t.window_before, t.ssthresh_before)
        });
        self.before_timeout.get_or_insert((cwnd, ssthresh, self.scalable));
        self.ssthresh = (self.cwnd / 2).max(self.floor());
        self.cwnd = self.floor();
        self.avoidance_acks = 0;
        self.recovery_start_tx = next_tx;
        self.scalable = false;
    }
}

/// Absolute slack above the minimum RTT before a sample counts as queued: absorbs scheduling jitter, which
/// on loopback and LAN paths is as large as the RTT itself.
pub const QUEUEING_SLACK_US: u64 = 1_000;

/// Whether an RTT of `rtt_us` on a path whose minimum is `min_rtt_us` shows queueing: more than 5/4 of
/// the minimum plus [`QUEUEING_SLACK_US`]. Without any sample (`min_rtt_us == 0`) a loss counts as
/// congestion.
pub fn queueing(rtt_us: u64, min_rtt_us: u64) -> bool {
    min_rtt_us == 0 || rtt_us > min_rtt_us.saturating_mul(5) / 4 + QUEUEING_SLACK_US
}

/// What the round-trip times say about the path when a loss is declared.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PathDelay {
    /// No standing queue: the loss is random (or a lost ack).
    Clear,
    /// A queue stands: the smallest recent RTT `queued_rtt_us` is well above the path's minimum `min_rtt_us`
    /// (0 before any sample, which halves).
    Queued {
        /// The path's smallest RTT.
        min_rtt_us: u64,
        /// The smallest RTT of the last round trips.
        queued_rtt_us: u64,
    },
}

impl PathDelay {
    /// Classifies a path whose smallest recent RTT is `recent_min_rtt_us` and whose minimum is `min_rtt_us`.
    pub fn of(recent_min_rtt_us: u64, min_rtt_us: u64) -> Self {
        if queueing(recent_min_rtt_us, min_rtt_us) {
            PathDelay::Queued {
                min_rtt_us,
                queued_rtt_us: recent_min_rtt_us,
            }
        } else {
            PathDelay::Clear
        }
    }
}

impl Aimd {
    /// A packet the timer declared lost was acked before its resend: the path was slow, not lossy
    /// (as F-RTO / Eifel), so the window from before the timeout comes back.
    pub fn undo_timeout(&mut self) {
        if let Some((cwnd, ssthresh, scalable)) = self.before_timeout.take() {
            self.cwnd = self.cwnd.max(cwnd);
            self.ssthresh = self.ssthresh.max(ssthresh);
            self.scalable = scalable;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A queue four times the path's RTT: the reduction is the floor, a halving.
    const QUEUED: PathDelay = PathDelay::Queued {
        min_rtt_us: 1_000,
        queued_rtt_us: 4_000,
    };

    #[test]
    fn slow_start_then_linear_growth() {
        let mut cc = Aimd::new(256);
        assert_eq!(cc.window(), INITIAL_CWND);
        for tx in 0..10 {
            cc.on_ack(tx);
        }
        assert_eq!(cc.window(), 20, "one packet per ack in slow start");
        assert!(cc.on_loss(10, 30, QUEUED));
        assert_eq!(cc.window(), 10);
        assert_eq!(cc.ssthresh(), 10);
        // Acks of packets sent before the reduction don't grow the window.
        cc.on_ack(20);
        assert_eq!(cc.window(), 10);
        // Congestion avoidance: +1 per window's worth of acks.
        for tx in 30..40 {
            cc.on_ack(tx);
        }
        assert_eq!(cc.window(), 11);
    }

    #[test]
    fn one_reduction_per_round_trip() {
        let mut cc = Aimd::new(256);
        for tx in 0..40 {
            cc.on_ack(tx);
        }
        assert_eq!(cc.window(), 50);
        assert!(cc.on_loss(41, 100, QUEUED));
        assert!(
            !cc.on_loss(42, 101, QUEUED),
            "second loss of the same flight is the same event"
        );
        assert_eq!(cc.window(), 25);
        assert!(cc.on_loss(100, 120, QUEUED));
        assert_eq!(cc.window(), 12);
    }

    #[test]
    fn rare_random_loss_without_queueing_keeps_the_window() {
        let mut cc = Aimd::new(256);
        for tx in 0..54 {
            cc.on_ack(tx);
        }
        assert_eq!(cc.window(), 64);
        // 2 % loss (1 % each way with per-packet acks) for a while: never reduced.
        let mut tx = 54;
        for _ in 0..20 {
            assert!(!cc.on_loss(tx, tx + 1, PathDelay::Clear));
            for _ in 0..49 {
                tx += 1;
                cc.on_ack(tx);
            }
        }
        assert!(cc.window() > 64, "the window keeps growing: {}", cc.window());
        assert!(cc.on_loss(tx, tx + 1, QUEUED), "a queued path still halves");
    }

    #[test]
    fn frequent_random_loss_without_queueing_shrinks_gently() {
        let mut cc = Aimd::new(256);
        for tx in 0..54 {
            cc.on_ack(tx);
        }
        assert_eq!(cc.window(), 64);
        // A run of losses: reductions start once the average passes 5 %.
        let mut reduced_at = None;
        for tx in 54..100 {
            if cc.on_loss(tx, 100, PathDelay::Clear) {
                reduced_at = Some(tx);
                break;
            }
        }
        assert_eq!(reduced_at, Some(67), "the 14th loss in a row passes 5 %");
        assert_eq!(cc.window(), 56, "7/8 of the window");
        assert_eq!(cc.ssthresh(), 56);
        assert!(
            !cc.on_loss(68, 101, PathDelay::Clear),
            "still one reduction per round trip"
        );
        assert!(cc.on_loss(100, 150, QUEUED));
        assert_eq!(cc.window(), 28, "a queued path halves");
        let mut small = Aimd::new(256);
        for tx in 0..40 {
            small.on_loss(tx, tx + 1, PathDelay::Clear);
        }
        assert_eq!(small.window(), MIN_CWND, "the floor holds");
    }

    /// A controller (window limit 4096) acked in slow start up to `window`, and the next transmission number.
    fn grown_to(window: u32) -> (Aimd, u64) {
        let mut cc = Aimd::new(4096);
        let mut tx = 0;
        while cc.window() < window {
            cc.on_ack(tx);
            tx += 1;
        }
        (cc, tx)
    }

    /// Losses without queueing from transmission `tx` on until the recent rate passes 5 % and the window is cut
    /// once; returns the next transmission number.
    fn lose_until_cut(cc: &mut Aimd, mut tx: u64) -> u64 {
        while !cc.on_loss(tx, tx + 1, PathDelay::Clear) {
            tx += 1;
        }
        tx + 1
    }

    #[test]
    fn after_a_random_loss_reduction_the_window_grows_back_scalably() {
        let (mut cc, tx) = grown_to(800);
        let mut tx = lose_until_cut(&mut cc, tx);
        let cut = cc.window();
        assert_eq!(cut, 800 * 7 / 8);
        // One round trip of acks (a window's worth) regains about 2 %, not one packet.
        for _ in 0..cut {
            cc.on_ack(tx);
            tx += 1;
        }
        assert_eq!(cc.window(), cut + cut / SCALABLE_ACKS);
        // A reduction on a standing queue returns to Reno's one packet per round trip.
        assert!(cc.on_loss(tx, tx + 1, QUEUED));
        tx += 1;
        let halved = cc.window();
        for _ in 0..halved {
            cc.on_ack(tx);
            tx += 1;
        }
        assert_eq!(cc.window(), halved + 1);
    }

    #[test]
    fn a_shallow_standing_queue_is_drained_without_halving() {
        let mut cc = Aimd::new(4096);
        for tx in 0..990 {
            cc.on_ack(tx);
        }
        assert_eq!(cc.window(), 1000);
        let path = PathDelay::of(2_600 + QUEUEING_SLACK_US, 2_000);
        assert_eq!(
            path,
            PathDelay::Queued {
                min_rtt_us: 2_000,
                queued_rtt_us: 3_600
            }
        );
        assert!(cc.on_loss(990, 1990, path));
        assert_eq!(
            cc.window(),
            1000 * 2_000 / 3_600,
            "the share the path holds without the queue"
        );
        assert_eq!(PathDelay::of(2_400, 2_000), PathDelay::Clear);
    }

    #[test]
    fn a_random_loss_cut_stops_at_what_the_path_delivers() {
        let (mut cc, tx) = grown_to(800);
        // 2 ms path, 700 acks per round trip for a few round trips.
        let mut now = 0;
        for _ in 0..5 * 100 {
            now += 20;
            for _ in 0..7 {
                cc.on_delivery(now, 2_000);
            }
        }
        assert!(
            (690..=710).contains(&cc.delivery_floor()),
            "{}",
            cc.delivery_floor()
        );
        lose_until_cut(&mut cc, tx);
        assert_eq!(
            cc.window(),
            cc.delivery_floor(),
            "7/8 of 800 is 700: the floor holds it"
        );
        // A path that delivers little does not hold the window up.
        let (mut slow, t) = grown_to(810);
        for i in 0..100 {
            slow.on_delivery(i * 200, 2_000);
        }
        lose_until_cut(&mut slow, t);
        assert_eq!(slow.window(), 810 * 7 / 8);
    }

    /// Runs `rounds` round trips from transmission `tx`: each sends a window of packets, and packet `i` of a
    /// round of `window` is lost when `lost(window, i, tx)`; the rest are acked, in order. Returns the next
    /// transmission number.
    fn run_rounds(cc: &mut Aimd, mut tx: u64, rounds: usize, lost: impl Fn(u32, u32, u64) -> bool) -> u64 {
        for _ in 0..rounds {
            let window = cc.window();
            let next_tx = tx + u64::from(window);
            for i in 0..window {
                if lost(window, i, tx) {
                    cc.on_loss(tx, next_tx, PathDelay::Clear);
                } else {
                    cc.on_ack(tx);
                }
                tx += 1;
            }
        }
        tx
    }

    /// Runs rounds of `lost` from a window of 1500 until a loss-response test has started and ended; returns the
    /// controller, the window the test started from and the next transmission.
    fn run_one_test(lost: impl Fn(u32, u32, u64) -> bool + Copy) -> (Aimd, u32, u64) {
        let (mut cc, mut tx) = grown_to(1500);
        let mut started_from = None;
        for _ in 0..200 {
            tx = run_rounds(&mut cc, tx, 1, lost);
            match (cc.loss_test, started_from) {
                (Some(test), None) => started_from = Some(test.window_before),
                (None, Some(from)) => return (cc, from, tx),
                _ => {}
            }
        }
        panic!("no loss-response test started and ended");
    }

    #[test]
    fn a_lossy_link_keeps_its_window_once_halving_leaves_the_loss_as_it_was() {
        // 10 % of packets (or their acks) lost at random, whatever the window.
        let lost = |_, _, tx: u64| tx % 10 == 3;
        let (mut cc, from, tx) = run_one_test(lost);
        assert!(
            cc.window() >= from,
            "the halved window comes back: {} after {from}",
            cc.window()
        );
        assert!(cc.random_loss_limit > 65_536 / 10, "10 % is tolerated now");
        let window = cc.window();
        run_rounds(&mut cc, tx, 10, lost);
        assert!(cc.window() >= window, "no more cuts: {} < {window}", cc.window());
    }

    #[test]
    fn a_shallow_bottleneck_keeps_the_halved_window() {
        // A bottleneck that passes 600 packets a round trip and drops the rest, with no queue to show in the RTT,
        // alone and on a link that also loses 4 % at random.
        for random in [None, Some(25)] {
            let lost = move |_, i, tx: u64| i >= 600 || random.is_some_and(|r| tx.is_multiple_of(r));
            let (mut cc, from, tx) = run_one_test(lost);
            assert!(cc.window() <= from / 2 + 1, "halved from {from}: {}", cc.window());
            assert_eq!(
                cc.random_loss_limit, RANDOM_LOSS_LIMIT,
                "no more loss is tolerated"
            );
            // The test found congestion: no other starts for a while, though the loss goes on.
            run_rounds(&mut cc, tx, 3, lost);
            assert!(cc.loss_test.is_none(), "another test at once");
        }
    }

    #[test]
    fn a_spurious_timeout_during_a_test_gives_back_the_window_from_before_it() {
        let (mut cc, mut tx) = grown_to(1000);
        while cc.loss_test.is_none() {
            tx = run_rounds(&mut cc, tx, 1, |_, _, tx| tx % 10 == 3);
        }
        let before = cc.loss_test.map(|t| t.window_before).unwrap_or(0);
        cc.on_timeout(tx);
        assert!(cc.loss_test.is_none());
        cc.undo_timeout();
        assert_eq!(cc.window(), before);
    }

    #[test]
    fn a_loss_spike_on_a_quiet_link_is_no_reason_to_test() {
        // 2 % loss with one burst that takes the short average past 5 %: the long-run average stays low.
        let (mut cc, tx) = grown_to(1000);
        let tx = run_rounds(&mut cc, tx, 10, |_, _, tx| tx % 50 == 7);
        let window = cc.window();
        let tx = lose_until_cut(&mut cc, tx);
        assert_eq!(cc.window(), window * 7 / 8, "the gentle cut, not a halving");
        run_rounds(&mut cc, tx, 10, |_, _, tx| tx % 50 == 7);
        assert!(cc.loss_test.is_none() && cc.next_test_tx == 0);
        assert_eq!(cc.random_loss_limit, RANDOM_LOSS_LIMIT);
    }

    #[test]
    fn queueing_needs_a_quarter_and_a_millisecond_above_min_rtt() {
        // 2 ms path: 3.5 ms is the threshold.
        assert!(!queueing(2_000, 2_000));
        assert!(!queueing(3_500, 2_000));
        assert!(queueing(3_501, 2_000));
        // Loopback: jitter within the slack is not queueing.
        assert!(!queueing(900, 50));
        assert!(queueing(20_000, 50));
        // 20 ms path: the 25 % dominates.
        assert!(!queueing(25_900, 20_000));
        assert!(queueing(26_100, 20_000));
        assert!(queueing(0, 0), "no sample yet: a loss is congestion");
    }

    #[test]
    fn timeout_collapses_and_window_is_capped() {
        let mut cc = Aimd::new(16);
        for tx in 0..100 {
            cc.on_ack(tx);
        }
        assert_eq!(cc.window(), 16);
        cc.on_timeout(100);
        assert_eq!(cc.window(), MIN_CWND);
        assert_eq!(cc.ssthresh(), 8);
        cc.undo_timeout();
        assert_eq!(
            (cc.window(), cc.ssthresh()),
            (16, 16),
            "a spurious timeout is undone"
        );
        cc.undo_timeout();
        assert_eq!(cc.window(), 16);
        let mut tiny = Aimd::new(2);
        assert_eq!(tiny.window(), 2);
        tiny.on_timeout(0);
        assert_eq!(tiny.window(), 2);
    }
}
