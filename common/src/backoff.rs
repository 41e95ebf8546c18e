//! Exponential back-off with jitter for reconnect and retry loops.
//!
//! One type for every loop that waits before trying again (the edge's uplink, device polling
//! and model link, the cloud's ingest and rollout manager): the delay doubles from `min` up to
//! `max`, each delay is spread by up to its own length of random jitter so a fleet that lost
//! the same broker does not reconnect in lockstep, and [`Backoff::reset`] starts over after a
//! success. Built on `backon`'s exponential policy.

use backon::{BackoffBuilder, ExponentialBackoff, ExponentialBuilder};
use std::time::Duration;

/// An endless sequence of growing, jittered delays.
#[derive(Debug)]
pub struct Backoff {
    builder: ExponentialBuilder,
    current: ExponentialBackoff,
}

impl Backoff {
    /// Delays that start between `min` and `2·min`, double, and never exceed `max`: each is a
    /// base (from `min`, doubling, capped at `max / 2`) plus up to its own length of jitter.
    pub fn new(min: Duration, max: Duration) -> Self {
        let builder = ExponentialBuilder::default()
            .with_min_delay(min)
            .with_max_delay((max / 2).max(min))
            .with_factor(2.0)
            .with_jitter()
            .without_max_times();
        Backoff { current: builder.build(), builder }
    }

    /// The reconnect back-off of MQTT links: from 250–500 ms, doubling, at most 10 s.
    pub fn reconnect() -> Self {
        Self::new(Duration::from_millis(250), Duration::from_secs(10))
    }

    /// The next delay to wait.
    pub fn next_delay(&mut self) -> Duration {
        self.current.next().unwrap_or_else(|| self.builder.build().next().unwrap_or_default())
    }

    /// Starts over at the shortest delay (after a success).
    pub fn reset(&mut self) {
        self.current = self.builder.build();
    }
}

impl Iterator for Backoff {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        Some(self.next_delay())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_is_capped_jittered_and_resets() {
        let (min, max) = (Duration::from_millis(100), Duration::from_millis(800));
        let mut b = Backoff::new(min, max);
        let delays: Vec<Duration> = (0..8).map(|_| b.next_delay()).collect();
        // Each delay lies in [base, 2·base] with base = min·2^i capped at max / 2.
        for (i, d) in delays.iter().enumerate() {
            let base = (min * 2u32.pow(i as u32)).min(max / 2);
            assert!(*d >= base && *d <= base * 2, "delay {i}: {d:?} outside [{base:?}, {:?}]", base * 2);
        }
        assert!(delays.iter().all(|d| *d <= max), "never above max: {delays:?}");
        assert!(delays[7] >= max / 2, "grown to the cap: {delays:?}");
        b.reset();
        assert!(b.next_delay() <= min * 2, "reset starts over");
    }

    #[test]
    fn jitter_spreads_a_fleet() {
        let firsts: std::collections::BTreeSet<Duration> =
            (0..20).map(|_| Backoff::reconnect().next_delay()).collect();
        assert!(firsts.len() > 1, "twenty links must not all wait the same: {firsts:?}");
    }
}
