//! The phi-accrual failure detector (pure; Hayashibara et al., as in Akka and Cassandra):
//! a suspicion level that grows with the silence since the last arrival, scaled by the
//! arrival gaps seen recently. The channel feeds it every frame it hears.
//!
//! `phi = -log10(P(the next arrival is later than now))` under a normal distribution of
//! the recent gaps: phi 1 means a 10% chance the peer is merely slow, phi 3 means 0.1%.
//! It only reports: declaring a peer dead stays the channel's hard rule (silent
//! `dead_after_heartbeats` intervals).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Arrival gaps kept: enough for a stable mean, few enough to follow a change in load.
pub const WINDOW_SAMPLES: usize = 100;

/// Coefficients of the logistic approximation of the normal CDF (Bowling et al. 2009,
/// the one Akka uses): `P(X <= y) ~= 1 / (1 + exp(-y * (A + B * y^2)))`.
const CDF_A: f64 = 1.5976;
const CDF_B: f64 = 0.070566;

/// Suspicion of one peer, from the gaps between the arrivals it was told about.
#[derive(Clone, Debug)]
pub struct PhiAccrual {
    /// Gaps between consecutive arrivals, oldest first, at most `WINDOW_SAMPLES`.
    gaps: VecDeque<Duration>,
    last: Option<Instant>,
    /// The mean assumed until a first gap is measured.
    expected_gap: Duration,
    /// Floor of the standard deviation: a perfectly regular stream would otherwise give
    /// a zero deviation and an infinite phi the moment one arrival is a little late.
    min_std_dev: Duration,
}

impl PhiAccrual {
    /// `expected_gap` stands in for the mean until a gap is measured; `min_std_dev`
    /// must be non-zero (a zero floor is raised to one millisecond).
    pub fn new(expected_gap: Duration, min_std_dev: Duration) -> Self {
        PhiAccrual {
            gaps: VecDeque::with_capacity(WINDOW_SAMPLES),
            last: None,
            expected_gap,
            min_std_dev: min_std_dev.max(Duration::from_millis(1)),
        }
    }

    /// Something arrived from the peer at `now`.
    pub fn heartbeat(&mut self, now: Instant) {
        if let Some(last) = self.last {
            if self.gaps.len() == WINDOW_SAMPLES {
                self.gaps.pop_front();
            }
            self.gaps.push_back(now.saturating_duration_since(last));
        }
        self.last = Some(now);
    }

    /// When the last arrival was, if any.
    pub fn last(&self) -> Option<Instant> {
        self.last
    }

    /// Gaps in the window.
    pub fn samples(&self) -> usize {
        self.gaps.len()
    }

    /// The suspicion level at `now`: 0 before any arrival, about 0.3 when the silence
    /// equals the mean gap, growing without bound (but finite) as the silence lasts.
    pub fn phi(&self, now: Instant) -> f64 {
        let Some(last) = self.last else {
            return 0.0;
        };
        let silence_ms = millis(now.saturating_duration_since(last));
        let (mean_ms, std_dev_ms) = self.mean_and_std_dev_ms();
        let y = (silence_ms - mean_ms) / std_dev_ms;
        // -log10(1 - CDF(y)) = log10(1 + exp(a)): written as a stable softplus so a long
        // silence gives a large finite phi instead of overflowing to infinity.
        let a = y * (CDF_A + CDF_B * y * y);
        let softplus = a.max(0.0) + (-a.abs()).exp().ln_1p();
        softplus / std::f64::consts::LN_10
    }

    /// Recomputed from the window on each call (at most `WINDOW_SAMPLES` terms), so no
    /// rounding error accumulates over a long-lived channel.
    fn mean_and_std_dev_ms(&self) -> (f64, f64) {
        let floor_ms = millis(self.min_std_dev);
        if self.gaps.is_empty() {
            return (millis(self.expected_gap), floor_ms);
        }
        let count = self.gaps.len() as f64;
        let mean = self.gaps.iter().map(|gap| millis(*gap)).sum::<f64>() / count;
        let variance = self
            .gaps
            .iter()
            .map(|gap| (millis(*gap) - mean).powi(2))
            .sum::<f64>()
            / count;
        (mean, variance.sqrt().max(floor_ms))
    }
}

fn millis(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    const INTERVAL: Duration = Duration::from_millis(100);
    const FLOOR: Duration = Duration::from_millis(10);

    fn ms(millis: u64) -> Duration {
        Duration::from_millis(millis)
    }

    /// A detector fed `count` arrivals `gap` apart from `start`; returns it and the last
    /// arrival time.
    fn regular(start: Instant, gap: Duration, count: u32) -> (PhiAccrual, Instant) {
        let mut detector = PhiAccrual::new(INTERVAL, FLOOR);
        let mut now = start;
        for _ in 0..count {
            detector.heartbeat(now);
            now += gap;
        }
        (detector, now - gap)
    }

    #[test]
    fn phi_is_zero_before_anything_arrives() {
        let detector = PhiAccrual::new(INTERVAL, FLOOR);
        assert_eq!(detector.phi(Instant::now()), 0.0);
        assert_eq!((detector.last(), detector.samples()), (None, 0));
    }

    #[test]
    fn phi_grows_with_silence() {
        let (detector, last) = regular(Instant::now(), INTERVAL, 50);
        let phis: Vec<f64> = [0, 50, 100, 120, 150, 200, 400, 1_000, 60_000]
            .into_iter()
            .map(|silence| detector.phi(last + ms(silence)))
            .collect();
        assert!(phis.windows(2).all(|pair| pair[0] < pair[1]), "{phis:?}");
    }

    #[test]
    fn regular_arrivals_keep_phi_low_and_a_long_silence_makes_it_high() {
        let (detector, last) = regular(Instant::now(), INTERVAL, 50);
        // Right on time: the silence equals the mean, phi = log10(2).
        let on_time = detector.phi(last + INTERVAL);
        assert!((on_time - 2f64.log10()).abs() < 1e-9, "{on_time}");
        assert!(detector.phi(last + ms(50)) < on_time);
        // Ten missed heartbeats: far beyond any usual threshold (Akka's default is 8).
        assert!(detector.phi(last + INTERVAL * 10) > 8.0);
    }

    #[test]
    fn a_perfectly_regular_stream_gives_a_finite_phi() {
        // Zero variance: without the floor any late arrival would give infinity.
        let (detector, last) = regular(Instant::now(), INTERVAL, 50);
        for silence in [101, 110, 1_000, 3_600_000] {
            let phi = detector.phi(last + ms(silence));
            assert!(phi.is_finite() && phi > 0.0, "silence {silence}: {phi}");
        }
        // One floor past the mean is one standard deviation: about 0.8 (P ~ 16%).
        let one_sigma = detector.phi(last + INTERVAL + FLOOR);
        assert!((0.7..0.9).contains(&one_sigma), "{one_sigma}");
    }

    #[test]
    fn irregular_arrivals_are_suspected_later_than_regular_ones() {
        let start = Instant::now();
        let (steady, steady_last) = regular(start, INTERVAL, 50);
        let mut jittery = PhiAccrual::new(INTERVAL, FLOOR);
        let mut now = start;
        for i in 0..50 {
            jittery.heartbeat(now);
            // Gaps of 50 and 150 ms: the same mean, a large deviation.
            now += if i % 2 == 0 { ms(50) } else { ms(150) };
        }
        jittery.heartbeat(now);
        let silence = ms(250);
        assert!(jittery.phi(now + silence) < steady.phi(steady_last + silence));
    }

    #[test]
    fn the_first_gap_is_judged_by_the_expected_gap() {
        let start = Instant::now();
        let mut detector = PhiAccrual::new(INTERVAL, FLOOR);
        detector.heartbeat(start);
        assert_eq!((detector.last(), detector.samples()), (Some(start), 0));
        let on_time = detector.phi(start + INTERVAL);
        assert!((on_time - 2f64.log10()).abs() < 1e-9, "{on_time}");
        assert!(detector.phi(start + INTERVAL * 3) > on_time);
    }

    #[test]
    fn the_window_is_bounded_and_forgets_old_gaps() {
        let start = Instant::now();
        // Fast arrivals, then slow ones: once the window holds only slow gaps, the
        // detector judges exactly as one that never saw the fast ones.
        let mut mixed = PhiAccrual::new(INTERVAL, FLOOR);
        let mut now = start;
        mixed.heartbeat(now);
        for _ in 0..3 * WINDOW_SAMPLES {
            now += ms(10);
            mixed.heartbeat(now);
            assert!(mixed.samples() <= WINDOW_SAMPLES);
        }
        let mut slow_only = PhiAccrual::new(INTERVAL, FLOOR);
        slow_only.heartbeat(now);
        for _ in 0..WINDOW_SAMPLES {
            now += ms(1_000);
            mixed.heartbeat(now);
            slow_only.heartbeat(now);
        }
        assert_eq!(mixed.samples(), WINDOW_SAMPLES);
        assert_eq!(slow_only.samples(), WINDOW_SAMPLES);
        let later = now + ms(1_500);
        assert_eq!(mixed.phi(later), slow_only.phi(later));
        // A slow peer's usual gap is no cause for suspicion any more.
        assert!(mixed.phi(now + ms(1_000)) < 1.0);
    }

    #[test]
    fn a_zero_floor_is_raised() {
        let start = Instant::now();
        let mut detector = PhiAccrual::new(INTERVAL, Duration::ZERO);
        detector.heartbeat(start);
        detector.heartbeat(start + INTERVAL);
        assert!(detector.phi(start + INTERVAL * 3).is_finite());
    }
}
