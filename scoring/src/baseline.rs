//! The cold start of a mould without a model of its own: a robust per-feature baseline, learned
//! from the mould's first shots, that judges the mould's shots until the cloud's model arrives.
//!
//! A [`Baseline`] goes through two phases (docs/mould-lifecycle.md):
//! - **learning**, the first [`ColdStart::learning_shots`] shots of the key: their values are
//!   kept; each shot gets a provisional score against the shots before it, but never an alarm;
//! - **watching**: when the last learning shot arrives, each feature's median and robust spread
//!   are fixed ([`FeatureLimit`]) and the samples dropped; a shot's score is its largest robust
//!   z, `max |x − median| / spread` over the features, and it alarms above
//!   [`ColdStart::z_limit`] (an SPC-like limit).
//!
//! The spread is `1.4826 × MAD` (the standard deviation of normal data). Where the MAD is 0 (more
//! than half the learning values sit exactly on the median: a discrete feature) it is half the
//! smallest step away from the median seen while learning, and at least a millionth of the
//! median's size (a feature that never varied alarms on any real change). Memory is bounded: at most [`MAX_FEATURES`] features
//! of at most [`MAX_LEARNING_SHOTS`] `f32` values per learning key, a few numbers per feature
//! after; the [`Scorer`](crate::Scorer) caps the keys ([`ColdStart::max_keys`]).

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Most learning shots a key may be configured to take ([`ColdStart::learning_shots`]).
pub const MAX_LEARNING_SHOTS: u64 = 5_000;
/// Most features one baseline tracks (the first ones seen; more are ignored).
pub const MAX_FEATURES: usize = 128;
/// Fewest earlier values a feature needs for a provisional score while learning.
const MIN_PROVISIONAL: usize = 10;
/// Largest score reported (a feature that never varied can give an enormous z).
const MAX_SCORE: f64 = 1e9;
/// Version of the persisted form ([`Baseline`] as JSON).
pub const FORMAT: u32 = 1;

fn default_learning_shots() -> u64 {
    200
}
fn default_z_limit() -> f64 {
    4.5
}
fn default_max_keys() -> usize {
    256
}

/// `[models.cold_start]`: how the edge judges a mould that has no model of its own. Absent, such
/// a mould is scored by its machine's model as before (or not at all).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ColdStart {
    /// Shots of a new (machine, mould) the baseline learns from before it may alarm (1 to
    /// [`MAX_LEARNING_SHOTS`]).
    #[serde(default = "default_learning_shots")]
    pub learning_shots: u64,
    /// A watched shot alarms when a feature's robust z is above this (> 0).
    #[serde(default = "default_z_limit")]
    pub z_limit: f64,
    /// Most (machine, mould) baselines held; beyond, the least recently used one is dropped
    /// (it learns again when its mould comes back).
    #[serde(default = "default_max_keys")]
    pub max_keys: usize,
    /// The machine's model was trained on all of its moulds: it keeps scoring a mould without
    /// a model of its own, and the baseline only runs on machines without a machine model.
    #[serde(default)]
    pub machine_model_covers_all_molds: bool,
}

impl Default for ColdStart {
    fn default() -> Self {
        ColdStart {
            learning_shots: default_learning_shots(),
            z_limit: default_z_limit(),
            max_keys: default_max_keys(),
            machine_model_covers_all_molds: false,
        }
    }
}

impl ColdStart {
    /// Every problem of the settings, as `models.cold_start.…` messages.
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        if !(1..=MAX_LEARNING_SHOTS).contains(&self.learning_shots) {
            out.push(format!("models.cold_start.learning_shots must be 1 to {MAX_LEARNING_SHOTS}"));
        }
        if !(self.z_limit.is_finite() && self.z_limit > 0.0) {
            out.push("models.cold_start.z_limit must be a number above 0".into());
        }
        if !(1..=100_000).contains(&self.max_keys) {
            out.push("models.cold_start.max_keys must be 1 to 100000".into());
        }
        out
    }
}

/// Centre and robust spread of one feature, fixed when learning ends.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct FeatureLimit {
    /// Median of the learning shots' values.
    pub median: f64,
    /// Robust spread (see the module docs); always above 0.
    pub spread: f64,
}

impl FeatureLimit {
    /// The limit of `values` (finite, any order; reordered); `None` when empty.
    pub fn fit(values: &mut [f32]) -> Option<FeatureLimit> {
        if values.is_empty() {
            return None;
        }
        values.sort_by(f32::total_cmp);
        let at = |v: &[f32], q: f64| f64::from(v[((v.len() - 1) as f64 * q).round() as usize]);
        let median = at(values, 0.5);
        let mut dev: Vec<f32> = values.iter().map(|v| (f64::from(*v) - median).abs() as f32).collect();
        dev.sort_by(f32::total_cmp);
        let mad = at(&dev, 0.5);
        let floor = 1e-6 * median.abs().max(1e-3);
        let spread = if mad > 0.0 {
            1.4826 * mad
        } else {
            let step = dev.iter().find(|d| **d > 0.0).map_or(0.0, |d| f64::from(*d));
            step / 2.0
        };
        let spread = spread.max(floor);
        Some(FeatureLimit { median, spread })
    }

    /// Robust z of `value`.
    pub fn z(&self, value: f64) -> f64 {
        ((value - self.median) / self.spread).abs().min(MAX_SCORE)
    }
}

/// What the baseline made of one shot.
#[derive(Debug, Clone, PartialEq)]
pub struct Judged {
    /// The shot was one of the learning shots: it cannot alarm.
    pub learning: bool,
    /// Largest robust z of the shot's features (provisional while learning; 0 without any).
    pub score: f32,
    /// Above [`ColdStart::z_limit`] after learning.
    pub alarm: bool,
    /// Each judged feature's robust z, largest first.
    pub contributions: Vec<(String, f32)>,
    /// Features with a limit that the shot lacks (after learning).
    pub missing: usize,
    /// The baseline should be saved now: every [`Baseline::CHECKPOINT_SHOTS`] learning shots
    /// and when learning ends.
    pub checkpoint: bool,
}

/// The baseline of one (machine, mould): learning samples, then fixed limits. Serialised as
/// the edge persists it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Baseline {
    /// [`FORMAT`] of the persisted form.
    pub format: u32,
    /// Shots observed since it was created.
    pub shots: u64,
    /// Shots it learns from (the setting when it was created).
    pub learning_shots: u64,
    /// Time (UTC ms) of the last shot observed.
    pub last_ts_ms: i64,
    /// Finite values of each feature seen while learning; empty after.
    #[serde(default)]
    pub samples: BTreeMap<String, Vec<f32>>,
    /// Per-feature limits once learning has ended.
    #[serde(default)]
    pub limits: Option<BTreeMap<String, FeatureLimit>>,
}

/// Why a persisted baseline was not taken.
#[derive(Debug, thiserror::Error)]
pub enum BadBaseline {
    /// Not JSON of a [`Baseline`] (truncated or corrupt).
    #[error("not a baseline: {0}")]
    Parse(#[from] serde_json::Error),
    /// Parsed, but inconsistent (format, counts or sizes out of bounds).
    #[error("inconsistent baseline: {0}")]
    Inconsistent(&'static str),
}

impl Baseline {
    /// Learning shots between two checkpoints ([`Judged::checkpoint`]).
    pub const CHECKPOINT_SHOTS: u64 = 25;

    /// A baseline that learns from `learning_shots` shots.
    pub fn new(learning_shots: u64) -> Self {
        Baseline {
            format: FORMAT,
            shots: 0,
            learning_shots: learning_shots.clamp(1, MAX_LEARNING_SHOTS),
            last_ts_ms: 0,
            samples: BTreeMap::new(),
            limits: None,
        }
    }

    /// Still learning (no alarm possible).
    pub fn is_learning(&self) -> bool {
        self.limits.is_none()
    }

    /// Judges one shot from its finite feature values at `ts_ms` and, while learning, learns
    /// from it.
    pub fn observe(&mut self, ts_ms: i64, values: &[(String, f64)], z_limit: f64) -> Judged {
        self.shots += 1;
        self.last_ts_ms = ts_ms;
        let finite = || values.iter().filter(|(_, v)| v.is_finite());
        let Some(limits) = &self.limits else {
            // Provisional: against the learning shots before this one.
            let mut zs: Vec<(String, f32)> = finite()
                .filter_map(|(name, v)| {
                    let seen = self.samples.get(name).filter(|s| s.len() >= MIN_PROVISIONAL)?;
                    let limit = FeatureLimit::fit(&mut seen.clone())?;
                    Some((name.clone(), limit.z(*v) as f32))
                })
                .collect();
            for (name, v) in finite() {
                if let Some(s) = self.samples.get_mut(name) {
                    s.push(*v as f32);
                } else if self.samples.len() < MAX_FEATURES {
                    self.samples.insert(name.clone(), vec![*v as f32]);
                }
            }
            let done = self.shots >= self.learning_shots;
            if done {
                self.finish_learning();
            }
            zs.sort_by(|a, b| b.1.total_cmp(&a.1));
            let score = zs.first().map_or(0.0, |z| z.1);
            let checkpoint = done || self.shots.is_multiple_of(Self::CHECKPOINT_SHOTS);
            return Judged { learning: true, score, alarm: false, contributions: zs, missing: 0, checkpoint };
        };
        let by_name: BTreeMap<&str, f64> = finite().map(|(n, v)| (n.as_str(), *v)).collect();
        let mut zs: Vec<(String, f32)> = Vec::with_capacity(limits.len());
        let mut missing = 0;
        for (name, limit) in limits {
            match by_name.get(name.as_str()) {
                Some(v) => zs.push((name.clone(), limit.z(*v) as f32)),
                None => missing += 1,
            }
        }
        zs.sort_by(|a, b| b.1.total_cmp(&a.1));
        let score = zs.first().map_or(0.0, |z| z.1);
        let alarm = f64::from(score) > z_limit;
        Judged { learning: false, score, alarm, contributions: zs, missing, checkpoint: false }
    }

    /// Fixes the limits of the features seen in at least half of the learning shots.
    fn finish_learning(&mut self) {
        let needed = (self.learning_shots / 2).max(1) as usize;
        let samples = std::mem::take(&mut self.samples);
        let limits = samples
            .into_iter()
            .filter(|(_, s)| s.len() >= needed)
            .filter_map(|(name, mut s)| FeatureLimit::fit(&mut s).map(|l| (name, l)))
            .collect();
        self.limits = Some(limits);
    }

    /// The baseline as persisted (JSON).
    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// A persisted baseline, [checked](Baseline::check).
    pub fn from_bytes(bytes: &[u8]) -> Result<Baseline, BadBaseline> {
        let b: Baseline = serde_json::from_slice(bytes)?;
        b.check()?;
        Ok(b)
    }

    /// Checks a baseline read back: known format, bounded sizes, consistent counts, finite
    /// values and limits.
    pub fn check(&self) -> Result<(), BadBaseline> {
        let b = self;
        if b.format != FORMAT {
            return Err(BadBaseline::Inconsistent("unknown format"));
        }
        if !(1..=MAX_LEARNING_SHOTS).contains(&b.learning_shots) {
            return Err(BadBaseline::Inconsistent("learning_shots out of range"));
        }
        if b.samples.len() > MAX_FEATURES || b.limits.as_ref().is_some_and(|l| l.len() > MAX_FEATURES) {
            return Err(BadBaseline::Inconsistent("too many features"));
        }
        if b.samples.values().any(|s| s.len() as u64 > b.shots || s.len() as u64 > b.learning_shots) {
            return Err(BadBaseline::Inconsistent("more samples than shots"));
        }
        if b.limits.is_none() && b.shots >= b.learning_shots {
            return Err(BadBaseline::Inconsistent("learning ended without limits"));
        }
        let bad_limit = |l: &FeatureLimit| !(l.median.is_finite() && l.spread.is_finite() && l.spread > 0.0);
        if b.limits.as_ref().is_some_and(|l| l.values().any(bad_limit)) {
            return Err(BadBaseline::Inconsistent("a limit is not finite"));
        }
        if b.samples.values().flatten().any(|v| !v.is_finite()) {
            return Err(BadBaseline::Inconsistent("a sample is not finite"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
