//! RFC 6298 round-trip estimation and retransmission timeout.

use core::time::Duration;

/// Lower bound of the RTO. RFC 6298 asks for 1 s, which would stall a dump on a LAN for ages; a few
/// milliseconds still sits well above loopback and LAN round trips plus receiver scheduling jitter.
pub const MIN_RTO: Duration = Duration::from_millis(5);
/// Upper bound of the (backed-off) RTO, so a recovering link is retried at least this often.
pub const MAX_RTO: Duration = Duration::from_secs(2);
/// RTO before any sample; only the herald is sent with it. RFC 6298 §2.1 says 1 s for unknown paths; a dump
/// goes over a LAN, and a herald lost to a 1 s timer would dominate a small dump on a lossy link. A too-early
/// duplicate herald is harmless: receivers re-ack a herald that arrives before any data.
pub const INITIAL_RTO: Duration = Duration::from_millis(250);
/// Clock granularity term `G` of RFC 6298.
const GRANULARITY_US: u64 = 1_000;

/// Smoothed RTT, RTT variance and the current (possibly backed-off) RTO, all in microseconds.
#[derive(Clone, Copy, Debug)]
pub struct RttEstimator {
    srtt: Option<u64>,
    min_rtt: u64,
    latest_rtt: u64,
    rttvar: u64,
    rto: u64,
    /// Smallest sample of the current period (one smoothed RTT long, starting at `period_start`) and of the one
    /// before: a queue that stands shows in every sample of a round trip, scheduling jitter only in some.
    period_min: u64,
    previous_period_min: u64,
    period_start: u64,
}

impl Default for RttEstimator {
    fn default() -> Self {
        Self::new()
    }
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

impl RttEstimator {
    /// No sample yet: RTO = [`INITIAL_RTO`].
    pub const fn new() -> Self {
        Self {
            srtt: None,
            min_rtt: u64::MAX,
            latest_rtt: 0,
            rttvar: 0,
            rto: INITIAL_RTO.as_micros() as u64,
            period_min: u64::MAX,
            previous_period_min: u64::MAX,
            period_start: 0,
        }
    }

    /// Feeds one RTT measurement taken at `now_us` (only from packets sent once: Karn's rule is the caller's).
    pub fn on_sample(&mut self, now_us: u64, sample: Duration) {
        let r = micros(sample);
        self.min_rtt = self.min_rtt.min(r);
        self.latest_rtt = r;
        if now_us.saturating_sub(self.period_start) >= self.srtt.unwrap_or(0) {
            self.previous_period_min = self.period_min;
            self.period_min = u64::MAX;
            self.period_start = now_us;
        }
        self.period_min = self.period_min.min(r);
        match self.srtt {
            None => {
                self.srtt = Some(r);
                self.rttvar = r / 2;
            }
            Some(srtt) => {
                // RFC 6298 §2.3 with alpha = 1/8, beta = 1/4; rttvar first, from the old srtt.
                self.rttvar = (3 * self.rttvar + srtt.abs_diff(r)) / 4;
                self.srtt = Some((7 * srtt + r) / 8);
            }
        }
        let srtt = self.srtt.unwrap_or(r);
        let rto = srtt.saturating_add(GRANULARITY_US.max(4 * self.rttvar));
        self.rto = rto.clamp(micros(MIN_RTO), micros(MAX_RTO));
    }

    /// Doubles the RTO after a timeout (RFC 6298 §5.5), up to [`MAX_RTO`].
    pub fn backoff(&mut self) {
        self.rto = self.rto.saturating_mul(2).min(micros(MAX_RTO));
    }

    /// Current retransmission timeout.
    pub fn rto(&self) -> Duration {
        Duration::from_micros(self.rto)
    }

    /// Smallest RTT sample in microseconds (0 before the first sample).
    pub fn min_rtt_us(&self) -> u64 {
        if self.srtt.is_some() { self.min_rtt } else { 0 }
    }

    /// The latest RTT sample in microseconds (0 before the first sample).
    pub fn latest_rtt_us(&self) -> u64 {
        self.latest_rtt
    }

    /// The smallest sample of the last one to two round trips (0 before the first sample): above
    /// [`Self::min_rtt_us`] only while a queue stands on the path.
    pub fn recent_min_rtt_us(&self) -> u64 {
        match self.period_min.min(self.previous_period_min) {
            u64::MAX => 0,
            r => r,
        }
    }

    /// Smoothed RTT in microseconds (0 before the first sample).
    pub fn srtt_us(&self) -> u64 {
        self.srtt.unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn initial_rto_before_any_sample() {
        let rtt = RttEstimator::new();
        assert_eq!(rtt.rto(), INITIAL_RTO);
        assert_eq!(rtt.srtt_us(), 0);
    }

    #[test]
    fn first_sample_sets_srtt_and_half_variance() {
        let mut rtt = RttEstimator::new();
        rtt.on_sample(0, Duration::from_millis(100));
        assert_eq!(rtt.srtt_us(), 100_000);
        // rto = srtt + 4 * (srtt / 2) = 3 * srtt
        assert_eq!(rtt.rto(), Duration::from_millis(300));
    }

    #[test]
    fn follows_rfc6298_smoothing() {
        let mut rtt = RttEstimator::new();
        rtt.on_sample(0, Duration::from_millis(100));
        rtt.on_sample(0, Duration::from_millis(200));
        // rttvar = 3/4 * 50 + 1/4 * |100 - 200| = 62.5 ms; srtt = 7/8 * 100 + 1/8 * 200 = 112.5 ms
        assert_eq!(rtt.srtt_us(), 112_500);
        assert_eq!(rtt.rto(), Duration::from_micros(112_500 + 4 * 62_500));
    }

    #[test]
    fn stable_rtt_converges_to_the_floor() {
        let mut rtt = RttEstimator::new();
        for _ in 0..200 {
            rtt.on_sample(0, Duration::from_micros(50));
        }
        assert_eq!(rtt.srtt_us(), 50);
        assert_eq!(rtt.rto(), MIN_RTO);
    }

    #[test]
    fn backoff_doubles_and_caps() {
        let mut rtt = RttEstimator::new();
        rtt.on_sample(0, Duration::from_millis(10));
        let base = rtt.rto();
        rtt.backoff();
        assert_eq!(rtt.rto(), base * 2);
        for _ in 0..20 {
            rtt.backoff();
        }
        assert_eq!(rtt.rto(), MAX_RTO);
        // A fresh sample recomputes the RTO from the estimate (the backoff ends).
        rtt.on_sample(0, Duration::from_millis(10));
        assert!(rtt.rto() < Duration::from_millis(40));
    }

    #[test]
    fn recent_minimum_ignores_spikes_and_follows_a_standing_queue() {
        let mut rtt = RttEstimator::new();
        assert_eq!(rtt.recent_min_rtt_us(), 0);
        let mut now = 0;
        // A 2 ms path with one 6 ms spike per round trip.
        for i in 0..40 {
            now += 200;
            let sample = if i % 10 == 5 { 6_000 } else { 2_000 };
            rtt.on_sample(now, Duration::from_micros(sample));
        }
        assert_eq!(rtt.latest_rtt_us(), 2_000);
        rtt.on_sample(now + 200, Duration::from_micros(6_000));
        assert_eq!(rtt.recent_min_rtt_us(), 2_000, "a spike is not a queue");
        // A queue that stands: every sample is 5 ms for two round trips and more.
        for _ in 0..60 {
            now += 200;
            rtt.on_sample(now, Duration::from_micros(5_000));
        }
        assert_eq!(rtt.recent_min_rtt_us(), 5_000);
        assert_eq!(rtt.min_rtt_us(), 2_000);
    }
}
