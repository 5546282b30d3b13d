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

/// Packets in flight allowed before the first ack.
pub const INITIAL_CWND: u32 = 10;
/// Floor of the window; 4 keeps enough packets in flight for 3 later acks to trigger fast retransmit.
pub const MIN_CWND: u32 = 4;
/// Window kept, as a fraction (numerator, denominator), on a loss without queueing.
pub const GENTLE_DECREASE: (u32, u32) = (7, 8);
/// Recent loss fraction, in 1/65536, above which a loss without queueing still reduces the window (5 %).
pub const RANDOM_LOSS_LIMIT: u32 = 65_536 / 20;
/// Acks per one-packet increase in congestion avoidance after a random-loss reduction.
pub const SCALABLE_ACKS: u32 = 50;
/// Delivery periods remembered for the delivery floor (the largest of them counts).
const DELIVERY_PERIODS: usize = 8;
/// Shortest delivery period: on loopback the minimum RTT is tens of microseconds, too short to count acks in.
const MIN_DELIVERY_PERIOD_US: u64 = 1_000;
/// The loss fraction is an exponential average with gain 1/2^LOSS_RATE_SHIFT per packet (~256 packets).
const LOSS_RATE_SHIFT: u32 = 8;

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
    /// kept while the recent loss fraction is below [`RANDOM_LOSS_LIMIT`], else shrunk by [`GENTLE_DECREASE`].
    pub fn on_loss(&mut self, tx: u64, next_tx: u64, path: PathDelay) -> bool {
        let queueing = path != PathDelay::Clear;
        self.loss_rate += (65_536 - self.loss_rate) >> LOSS_RATE_SHIFT;
        if tx < self.recovery_start_tx {
            return false;
        }
        if !queueing && self.loss_rate <= RANDOM_LOSS_LIMIT {
            return false;
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
        self.cwnd = kept.max(self.floor());
        self.ssthresh = self.cwnd;
        self.avoidance_acks = 0;
        self.recovery_start_tx = next_tx;
        self.before_timeout = None;
        self.scalable = !queueing;
        true
    }

    /// The retransmission timer fired.
    pub fn on_timeout(&mut self, next_tx: u64) {
        if self.before_timeout.is_none() {
            self.before_timeout = Some((self.cwnd, self.ssthresh, self.scalable));
        }
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
