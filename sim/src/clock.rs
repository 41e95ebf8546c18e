//! Simulated time: starts at a fixed instant (not the wall clock, so runs are reproducible) and
//! advances `speed` times faster than real time from the moment the plant starts.

use tokio::time::{Duration, Instant};

/// Maps real (monotonic) time to simulated UTC milliseconds and back.
#[derive(Debug, Clone, Copy)]
pub struct SimClock {
    start_ms: i64,
    origin: Instant,
    speed: f64,
}

impl SimClock {
    /// A clock at `start_ms` now, running `speed` (> 0) simulated seconds per real second.
    pub fn new(start_ms: i64, speed: f64) -> Self {
        SimClock { start_ms, origin: Instant::now(), speed }
    }

    /// Simulated time at which the clock started, ms since the epoch (UTC).
    pub fn start_ms(&self) -> i64 {
        self.start_ms
    }

    /// Current simulated time, ms since the epoch (UTC).
    pub fn now_ms(&self) -> i64 {
        self.at(Instant::now())
    }

    /// Simulated time at a real instant.
    pub fn at(&self, t: Instant) -> i64 {
        let real_ns = t.saturating_duration_since(self.origin).as_nanos() as f64;
        self.start_ms + (real_ns * self.speed / 1e6).floor() as i64
    }

    /// First real instant at which the clock shows `sim_ms` (the origin for earlier times).
    pub fn instant_of(&self, sim_ms: i64) -> Instant {
        let real_ns = (sim_ms - self.start_ms).max(0) as f64 * 1e6 / self.speed;
        self.origin + Duration::from_nanos(real_ns.ceil().min(1e18) as u64)
    }

    /// Waits until the clock shows at least `sim_ms`.
    pub async fn sleep_until(&self, sim_ms: i64) {
        tokio::time::sleep_until(self.instant_of(sim_ms)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_both_ways() {
        let c = SimClock::new(1_000_000, 100.0);
        let t = c.instant_of(1_000_000 + 66_000);
        assert_eq!(t - c.origin, Duration::from_millis(660));
        assert_eq!(c.at(t), 1_066_000);
        assert_eq!(c.instant_of(0), c.origin);
    }
}
