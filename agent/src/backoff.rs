//! Retry schedule while the core is unreachable: exponential with full jitter (many
//! agents losing the same core do not come back in lock-step), but in two phases.
//!
//! Most outages are short: a core restart or upgrade takes seconds. For the first
//! [`SHORT_OUTAGE`] the ceiling stays at [`SHORT_CEILING`] (or the beat interval, when
//! that is longer), so an agent is back within about a beat of the core, and a fleet
//! retrying costs the core no more than its beats did. Only a longer outage backs off
//! further, doubling from there up to `backoff_max_ms`.

use std::time::{Duration, Instant};

use rand::Rng;

/// How long an outage counts as short.
pub const SHORT_OUTAGE: Duration = Duration::from_secs(60);
/// Ceiling of the wait between attempts while the outage is short.
pub const SHORT_CEILING: Duration = Duration::from_millis(1500);

pub struct Backoff {
    /// The beat interval: the first wait's ceiling.
    base: Duration,
    max: Duration,
    /// When the first failure of this outage happened.
    since: Option<Instant>,
    /// Attempts since the short phase ended.
    attempt: u32,
}

impl Backoff {
    pub fn new(base: Duration, max: Duration) -> Backoff {
        Backoff {
            base,
            max,
            since: None,
            attempt: 0,
        }
    }

    fn short_ceiling(&self) -> Duration {
        SHORT_CEILING.max(self.base).min(self.max)
    }

    /// The ceiling for the next wait when a failure happens at `now`.
    fn ceiling_at(&self, now: Instant) -> Duration {
        let since = self.since.unwrap_or(now);
        if now.duration_since(since) < SHORT_OUTAGE {
            return self.short_ceiling();
        }
        let factor = 1u32
            .checked_shl(self.attempt.min(20) + 1)
            .unwrap_or(u32::MAX);
        self.short_ceiling().saturating_mul(factor).min(self.max)
    }

    /// A random wait in [ceiling/2, ceiling] after a failure at `now`.
    pub fn next_delay_at(&mut self, now: Instant) -> Duration {
        let since = *self.since.get_or_insert(now);
        let ceiling = self.ceiling_at(now);
        if now.duration_since(since) >= SHORT_OUTAGE {
            self.attempt = self.attempt.saturating_add(1);
        }
        let half = ceiling / 2;
        let jitter_ms = u64::try_from(half.as_millis()).unwrap_or(u64::MAX);
        half + Duration::from_millis(rand::rng().random_range(0..=jitter_ms))
    }

    pub fn next_delay(&mut self) -> Duration {
        self.next_delay_at(Instant::now())
    }

    /// The core answered: the next failure starts a new (short) outage.
    pub fn reset(&mut self) {
        self.since = None;
        self.attempt = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Delays of one simulated outage of `secs`, each failure at the time the last wait
    /// ended (attempts themselves take no time here).
    fn outage(b: &mut Backoff, start: Instant, secs: u64) -> Vec<(Duration, Duration)> {
        let mut at = Duration::ZERO;
        let mut out = Vec::new();
        while at < Duration::from_secs(secs) {
            let d = b.next_delay_at(start + at);
            out.push((at, d));
            at += d;
        }
        out
    }

    #[test]
    fn short_outages_retry_within_the_short_ceiling_then_back_off_to_the_max() {
        let mut b = Backoff::new(Duration::from_secs(1), Duration::from_secs(30));
        let start = Instant::now();
        let delays = outage(&mut b, start, 600);
        for (at, d) in &delays {
            assert!(*d >= Duration::from_millis(500), "{d:?} at {at:?}");
            if *at < SHORT_OUTAGE {
                assert!(
                    *d <= SHORT_CEILING,
                    "{d:?} at {at:?} is over the short ceiling"
                );
            } else {
                assert!(*d <= Duration::from_secs(30), "{d:?} at {at:?}");
            }
        }
        // The first minute retries about every beat: 40 to 80 attempts.
        let short = delays.iter().filter(|(at, _)| *at < SHORT_OUTAGE).count();
        assert!(
            (40..=81).contains(&short),
            "{short} attempts in the first minute"
        );
        // Then it backs off: doubling, and after ~2 minutes near the max.
        let late: Vec<Duration> = delays
            .iter()
            .filter(|(at, _)| *at >= Duration::from_secs(180))
            .map(|(_, d)| *d)
            .collect();
        assert!(!late.is_empty());
        assert!(
            late.iter().all(|d| *d >= Duration::from_secs(15)),
            "{late:?}"
        );
        // Jittered: not all the same.
        let first: Vec<Duration> = delays.iter().take(20).map(|(_, d)| *d).collect();
        assert!(first.iter().any(|d| *d != first[0]), "{first:?}");
        // Success ends the outage: the next one starts short again.
        b.reset();
        let d = b.next_delay_at(start + Duration::from_secs(1000));
        assert!(d <= SHORT_CEILING, "{d:?}");
    }

    #[test]
    fn a_long_interval_or_a_low_max_bounds_the_short_ceiling() {
        let mut slow = Backoff::new(Duration::from_secs(5), Duration::from_secs(60));
        let d = slow.next_delay_at(Instant::now());
        assert!(d <= Duration::from_secs(5) && d >= Duration::from_millis(2500));
        let mut low = Backoff::new(Duration::from_millis(200), Duration::from_millis(400));
        let start = Instant::now();
        for (_, d) in outage(&mut low, start, 300) {
            assert!(d <= Duration::from_millis(400), "{d:?}");
        }
    }
}
