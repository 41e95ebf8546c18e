//! The as-of tolerance of the peripheral joins: a fixed number of milliseconds, or `auto` (the
//! default) — per machine half its typical cycle, the median interval between consecutive shots
//! of a production run, at least [`AUTO_MIN_MS`]. A plant with 12 s and
//! 120 s cycles thus joins each machine's peripherals over the span of its own cycle, where one
//! fixed value is either too tight for the slow machine (readings missed) or too loose for the
//! fast one (stale readings used).
//!
//! An auto tolerance is derived again, from all of the machine's shots, until the machine has
//! [`AUTO_SETTLE_SHOTS`] kept shots; from then on it is fixed (kept in the ETL state), so later
//! incremental runs join exactly as earlier ones did. Whatever a machine's tolerance is, it is
//! recorded per machine ([`MachineTolerance`]) and training writes it into the model's bundle,
//! so the edge joins live readings with the tolerance the model was trained with.

use moldops_shared::features::{DEFAULT_TOLERANCE_MS, MAX_TOLERANCE_MS, RUN_GAP_MS};
use serde::{Deserialize, Serialize};
use std::str::FromStr;

/// The smallest auto tolerance (machines cycling faster than every 2 s are joined within 1 s).
pub const AUTO_MIN_MS: i64 = 1_000;
/// Kept shots after which a machine's auto tolerance no longer changes.
pub const AUTO_SETTLE_SHOTS: u64 = 100;

/// The tolerance setting (`tolerance_ms` in the settings: `"auto"` or a number of ms).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Tolerance {
    /// Per machine, half its median cycle (at least 1 000 ms; 30 000 ms when no cycle is seen).
    #[default]
    Auto,
    /// The same number of ms for every machine, 0 to 86 400 000 (one day).
    Fixed(i64),
}

impl Tolerance {
    /// Checks a fixed value's range.
    pub fn validate(self) -> anyhow::Result<Self> {
        if let Tolerance::Fixed(ms) = self {
            anyhow::ensure!(
                (0..=MAX_TOLERANCE_MS).contains(&ms),
                "tolerance_ms must be \"auto\" or within 0..={MAX_TOLERANCE_MS}, not {ms}"
            );
        }
        Ok(self)
    }
}

impl std::fmt::Display for Tolerance {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Tolerance::Auto => f.write_str("auto"),
            Tolerance::Fixed(ms) => write!(f, "{ms}"),
        }
    }
}

impl FromStr for Tolerance {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.eq_ignore_ascii_case("auto") {
            return Ok(Tolerance::Auto);
        }
        s.parse::<i64>()
            .map(Tolerance::Fixed)
            .map_err(|_| format!("expected \"auto\" or milliseconds, got {s:?}"))
    }
}

#[derive(Serialize, Deserialize)]
#[serde(untagged)]
enum Repr {
    Ms(i64),
    Word(String),
}

impl Serialize for Tolerance {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Tolerance::Auto => Repr::Word("auto".into()),
            Tolerance::Fixed(ms) => Repr::Ms(*ms),
        }
        .serialize(s)
    }
}

impl<'de> Deserialize<'de> for Tolerance {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match Repr::deserialize(d)? {
            Repr::Ms(ms) => Ok(Tolerance::Fixed(ms)),
            Repr::Word(w) => w.parse().map_err(serde::de::Error::custom),
        }
    }
}

/// The tolerance one machine was built with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct MachineTolerance {
    /// The tolerance, in ms.
    pub ms: i64,
    /// Derived from the machine's cycle (else the fixed setting).
    pub auto: bool,
    /// Kept shots it was derived from.
    pub shots: u64,
}

impl MachineTolerance {
    /// True when an auto tolerance no longer changes.
    pub fn settled(&self) -> bool {
        self.auto && self.shots >= AUTO_SETTLE_SHOTS
    }
}

impl Tolerance {
    /// The tolerance a machine is merged with, given its kept shots' times in order.
    pub fn resolve(self, kept_ts_ms: &[i64]) -> MachineTolerance {
        let (ms, auto) = match self {
            Tolerance::Fixed(ms) => (ms, false),
            Tolerance::Auto => (auto_ms(kept_ts_ms), true),
        };
        MachineTolerance { ms, auto, shots: kept_ts_ms.len() as u64 }
    }
}

/// The auto tolerance of a machine from its kept shots' times in order: half the median
/// interval between consecutive shots at most [`RUN_GAP_MS`] apart (so at most 7.5 min), at
/// least [`AUTO_MIN_MS`]; the default when there is no such interval.
pub fn auto_ms(ts_ms: &[i64]) -> i64 {
    let mut gaps: Vec<i64> =
        ts_ms.windows(2).map(|w| w[1] - w[0]).filter(|g| (1..=RUN_GAP_MS).contains(g)).collect();
    if gaps.is_empty() {
        return DEFAULT_TOLERANCE_MS;
    }
    let mid = gaps.len() / 2;
    let (_, median, _) = gaps.select_nth_unstable(mid);
    (*median / 2).max(AUTO_MIN_MS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auto_is_half_the_median_cycle_within_runs() {
        let s = 1_000;
        // 12 s cycles with one long stop and a duplicate time: the stop and the zero gap do not count.
        let fast: Vec<i64> = (0..50).map(|i| i * 12 * s).chain([50 * 12 * s + 3_600 * s; 2]).collect();
        assert_eq!(auto_ms(&fast), 6 * s);
        let slow: Vec<i64> = (0..10).map(|i| i * 120 * s).collect();
        assert_eq!(auto_ms(&slow), 60 * s);
        assert_eq!(auto_ms(&[0, 500, 1_000]), AUTO_MIN_MS, "clamped below");
        assert_eq!(auto_ms(&[0]), DEFAULT_TOLERANCE_MS, "nothing to tell from");
        assert_eq!(Tolerance::Auto.resolve(&slow), MachineTolerance { ms: 60 * s, auto: true, shots: 10 });
        assert_eq!(Tolerance::Fixed(5).resolve(&slow), MachineTolerance { ms: 5, auto: false, shots: 10 });
    }

    #[test]
    fn the_setting_reads_auto_or_milliseconds() {
        #[derive(Deserialize, Serialize)]
        struct S {
            tolerance_ms: Tolerance,
        }
        let auto: S = toml::from_str("tolerance_ms = \"auto\"").unwrap();
        assert_eq!(auto.tolerance_ms, Tolerance::Auto);
        let fixed: S = toml::from_str("tolerance_ms = 5000").unwrap();
        assert_eq!(fixed.tolerance_ms, Tolerance::Fixed(5_000));
        assert!(toml::from_str::<S>("tolerance_ms = \"soon\"").is_err());
        assert_eq!(serde_json::to_string(&fixed).unwrap(), r#"{"tolerance_ms":5000}"#);
        assert_eq!("AUTO".parse::<Tolerance>(), Ok(Tolerance::Auto));
        assert!(Tolerance::Fixed(-1).validate().is_err());
    }
}
