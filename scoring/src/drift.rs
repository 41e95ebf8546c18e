//! Drift monitoring at the edge: per model key, fixed-bin histograms of the score and of each
//! input feature of the shots its judge scored, summed over a period and handed out as one
//! [`DriftSummary`] per key and period (every [`DriftSettings::every_shots`] judged shots or
//! [`DriftSettings::every_s`] seconds of shot time once it holds [`DriftSettings::min_shots`]),
//! which the edge buffers as a record of kind `drift` for the cloud to judge (docs/drift.md).
//!
//! Bins: the score's are cut at the model's validation median, 90th and 99th percentile when its
//! manifest has them, so the score's PSI reads against validation. Everything else — the
//! features, and the score of a model without validation quantiles or of a cold-start baseline —
//! is binned at the deciles ([`DriftSettings::bins`]) of a reference sample: the key's first
//! [`DriftSettings::reference_shots`] judged shots after its judge changed (a new model version,
//! a baseline that starts watching, an edge restart). Periods start after the reference.
//!
//! Memory is bounded: at most [`DriftSettings::max_keys`] keys (the least recently judged one
//! is dropped beyond; it learns its reference again when it comes back), at most
//! [`MAX_FEATURES`] features each (a model's first, in manifest order; a baseline's are those of
//! its first watched shot), a reference sample of `reference_shots × (features + 1)` `f32`
//! while learning and `bins × (features + 1)` counters after.

use moldops_shared::bundle::{ModelKey, ScoreStats};
use moldops_shared::drift::{
    DriftSummary, FeatureDrift, Histogram, MAX_BINS, MAX_FEATURES, MAX_PERIOD_SHOTS, MIN_BINS,
};
use moldops_shared::score::ModelStamp;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// Most keys [`DriftSettings::max_keys`] may allow.
pub const MAX_KEYS: usize = 256;
/// Largest reference sample [`DriftSettings::reference_shots`] may ask for.
pub const MAX_REFERENCE_SHOTS: u64 = 5_000;
/// Fewest shots in a reference sample.
pub const MIN_REFERENCE_SHOTS: u64 = 50;

/// Share of validation scores below each validation quantile edge (p50, p90, p99).
const VALIDATION_CUTS: [f64; 3] = [0.5, 0.9, 0.99];

/// `[models.drift]`: how the edge summarises each model key's shots for drift monitoring.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DriftSettings {
    /// A key's summary is written after this many judged shots (at most [`MAX_PERIOD_SHOTS`]);
    /// 0 turns drift monitoring off.
    #[serde(default = "default_every_shots")]
    pub every_shots: u64,
    /// … or once this many seconds of shot time have passed since its period's first shot
    /// (checked at each shot; 0: by shots only) and the period holds at least
    /// [`DriftSettings::min_shots`].
    #[serde(default = "default_every_s")]
    pub every_s: u64,
    /// Fewest judged shots a period closed by time holds: a thinner period goes on until it has
    /// them (the cloud judges histograms of fewer than 100 shots by the alarm rate only, and a
    /// calm period's PSI grows as its shots shrink).
    #[serde(default = "default_min_shots")]
    pub min_shots: u64,
    /// Judged shots a key's reference sample holds (bins are cut at its quantiles).
    #[serde(default = "default_reference_shots")]
    pub reference_shots: u64,
    /// Bins of a histogram cut from the reference sample (2 to [`MAX_BINS`]; fewer when values
    /// repeat).
    #[serde(default = "default_bins")]
    pub bins: usize,
    /// Most keys tracked at once.
    #[serde(default = "default_max_keys")]
    pub max_keys: usize,
}

fn default_every_shots() -> u64 {
    500
}
fn default_every_s() -> u64 {
    3_600
}
fn default_min_shots() -> u64 {
    200
}
fn default_reference_shots() -> u64 {
    500
}
fn default_bins() -> usize {
    10
}
fn default_max_keys() -> usize {
    64
}

impl Default for DriftSettings {
    fn default() -> Self {
        DriftSettings {
            every_shots: default_every_shots(),
            every_s: default_every_s(),
            min_shots: default_min_shots(),
            reference_shots: default_reference_shots(),
            bins: default_bins(),
            max_keys: default_max_keys(),
        }
    }
}

impl DriftSettings {
    /// Whether drift monitoring is on (`every_shots > 0`).
    pub fn enabled(&self) -> bool {
        self.every_shots > 0
    }

    /// Every problem of the settings, as `models.drift.…` messages.
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.every_shots > MAX_PERIOD_SHOTS {
            out.push(format!("models.drift.every_shots must be at most {MAX_PERIOD_SHOTS}"));
        }
        if !(MIN_REFERENCE_SHOTS..=MAX_REFERENCE_SHOTS).contains(&self.reference_shots) {
            out.push(format!(
                "models.drift.reference_shots must be {MIN_REFERENCE_SHOTS} to {MAX_REFERENCE_SHOTS}"
            ));
        }
        if !(MIN_BINS..=MAX_BINS).contains(&self.bins) {
            out.push(format!("models.drift.bins must be {MIN_BINS} to {MAX_BINS}"));
        }
        if !(1..=MAX_KEYS).contains(&self.max_keys) {
            out.push(format!("models.drift.max_keys must be 1 to {MAX_KEYS}"));
        }
        if self.min_shots > MAX_PERIOD_SHOTS {
            out.push(format!("models.drift.min_shots must be at most {MAX_PERIOD_SHOTS}"));
        }
        if self.every_s > 366 * 86_400 {
            out.push("models.drift.every_s must be at most a year".into());
        }
        out
    }
}

/// One shot as its judge saw it: what the monitor bins.
pub struct JudgedShot<'a> {
    /// The model key whose judge scored the shot.
    pub key: &'a ModelKey,
    /// The judge (a new id starts the key's monitoring over).
    pub stamp: ModelStamp,
    /// The judge's validation scores, when it is a model with them.
    pub validation: Option<&'a ScoreStats>,
    /// The judge's alarm-rate target, if any (one outside `(0, 1]` counts as none).
    pub alarm_target: Option<f64>,
    /// Time of the shot (UTC ms).
    pub ts_ms: i64,
    /// The shot's score.
    pub score: f64,
    /// Whether it alarmed.
    pub alarm: bool,
    /// The judge's features in order (read when the key's monitoring starts).
    pub features: Vec<&'a str>,
    /// The shot's usable value of a feature (`None`: missing, not finite or stale).
    pub value: &'a dyn Fn(&str) -> Option<f64>,
}

/// Where one histogram's bins are cut and what the reference holds in each.
#[derive(Debug, Clone, PartialEq)]
struct Binning {
    /// Upper edges of all bins but the last (a value `x` is in the first bin with `x ≤ edge`).
    edges: Vec<f64>,
    reference: Vec<f64>,
    ref_mean: f64,
    ref_std: f64,
}

impl Binning {
    fn bin(&self, x: f64) -> usize {
        self.edges.partition_point(|e| *e < x)
    }

    /// Bins at the validation quantiles, weights 50/40/9/1 % of the count; `None` when the
    /// statistics are empty or not increasing.
    fn from_validation(v: &ScoreStats) -> Option<Binning> {
        let edges = vec![v.p50, v.p90, v.p99];
        let ok = v.count > 0
            && edges.iter().all(|e| e.is_finite())
            && edges.windows(2).all(|w| w[0] < w[1])
            && v.mean.is_finite()
            && v.std.is_finite()
            && v.std >= 0.0;
        if !ok {
            return None;
        }
        let n = v.count as f64;
        let mut below = 0.0;
        let mut reference = Vec::with_capacity(4);
        for cut in VALIDATION_CUTS.iter().chain(std::iter::once(&1.0)) {
            reference.push((cut - below) * n);
            below = *cut;
        }
        Some(Binning { edges, reference, ref_mean: v.mean, ref_std: v.std })
    }

    /// Bins at the `bins`-quantiles of `sample` (missing values, NaN, left out; repeated edges
    /// merged, at least one edge), the sample's counts as the reference.
    fn from_sample(sample: &[f32], bins: usize) -> Binning {
        let mut values: Vec<f64> = sample.iter().filter(|v| v.is_finite()).map(|&v| f64::from(v)).collect();
        values.sort_by(f64::total_cmp);
        let n = values.len();
        let mut edges: Vec<f64> = Vec::with_capacity(bins);
        if n == 0 {
            edges.push(0.0);
        }
        for j in 1..bins.max(MIN_BINS) {
            if n == 0 {
                break;
            }
            let at = (j * n).div_ceil(bins.max(MIN_BINS)).clamp(1, n) - 1;
            let e = values[at];
            if edges.last() != Some(&e) {
                edges.push(e);
            }
        }
        let mut b = Binning { edges, reference: Vec::new(), ref_mean: 0.0, ref_std: 0.0 };
        b.reference = vec![0.0; b.edges.len() + 1];
        for &x in &values {
            let i = b.bin(x);
            b.reference[i] += 1.0;
        }
        if n > 0 {
            let mean = values.iter().sum::<f64>() / n as f64;
            let var = values.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n as f64;
            (b.ref_mean, b.ref_std) = (mean, var.sqrt());
        }
        b
    }
}

/// One histogram's running figures in the current period.
#[derive(Debug, Clone, Default)]
struct Running {
    counts: Vec<u64>,
    sum: f64,
    missing: u64,
}

/// The monitoring of one key under one judge.
struct Tracker {
    stamp: ModelStamp,
    alarm_target: Option<f64>,
    names: Vec<String>,
    /// The validation binning of the score, when the judge has one.
    score_validation: Option<Binning>,
    /// The reference sample while it is gathered: per shot the score then each feature (NaN
    /// where missing), row after row.
    sample: Vec<f32>,
    /// Once the reference is complete: the score's binning then each feature's.
    binnings: Vec<Binning>,
    running: Vec<Running>,
    period_start_ms: i64,
    period_end_ms: i64,
    shots: u64,
    alarms: u64,
    last_used: u64,
}

impl Tracker {
    fn new(shot: &JudgedShot<'_>) -> Tracker {
        Tracker {
            stamp: shot.stamp.clone(),
            // A target of 0 would make any alarm infinitely surprising: no target then.
            alarm_target: shot.alarm_target.filter(|t| *t > 0.0 && *t <= 1.0),
            names: shot.features.iter().take(MAX_FEATURES).map(|s| s.to_string()).collect(),
            score_validation: shot.validation.and_then(Binning::from_validation),
            sample: Vec::new(),
            binnings: Vec::new(),
            running: Vec::new(),
            period_start_ms: 0,
            period_end_ms: 0,
            shots: 0,
            alarms: 0,
            last_used: 0,
        }
    }

    fn columns(&self) -> usize {
        self.names.len() + 1
    }

    /// The shot's score and feature values, rounded to `f32` like the reference sample (so a
    /// value equal to an edge lands in the same bin as in the reference); `None` where missing.
    fn row(&self, shot: &JudgedShot<'_>) -> Vec<Option<f64>> {
        let usable = |v: f64| Some(f64::from(v as f32)).filter(|v| v.is_finite());
        std::iter::once(usable(shot.score))
            .chain(self.names.iter().map(|n| (shot.value)(n).and_then(usable)))
            .collect()
    }

    /// Takes one shot; returns the period's summary when it closes.
    fn observe(&mut self, shot: &JudgedShot<'_>, settings: &DriftSettings) -> Option<DriftSummary> {
        let row = self.row(shot);
        if self.binnings.is_empty() {
            self.sample.extend(row.iter().map(|v| v.map_or(f32::NAN, |v| v as f32)));
            if (self.sample.len() / self.columns()) as u64 >= settings.reference_shots {
                self.finish_reference(settings.bins);
            }
            return None;
        }
        // The period spans its earliest to its latest shot: a shot clock may step back (an edge
        // or controller clock set), and a summary whose start lies after its end is refused.
        if self.shots == 0 {
            (self.period_start_ms, self.period_end_ms) = (shot.ts_ms, shot.ts_ms);
        }
        self.period_start_ms = self.period_start_ms.min(shot.ts_ms);
        self.period_end_ms = self.period_end_ms.max(shot.ts_ms);
        self.shots += 1;
        self.alarms += u64::from(shot.alarm);
        for ((value, binning), running) in row.iter().zip(&self.binnings).zip(&mut self.running) {
            match value {
                Some(v) => {
                    running.counts[binning.bin(*v)] += 1;
                    running.sum += v;
                }
                None => running.missing += 1,
            }
        }
        let by_time = settings.every_s > 0
            && self.shots >= settings.min_shots
            && shot.ts_ms.saturating_sub(self.period_start_ms)
                >= (settings.every_s as i64).saturating_mul(1000);
        (self.shots >= settings.every_shots || by_time).then(|| self.close(shot.key, settings))
    }

    fn finish_reference(&mut self, bins: usize) {
        let columns = self.columns();
        let rows = self.sample.len() / columns;
        let mut column = Vec::with_capacity(rows);
        self.binnings = (0..columns)
            .map(|c| {
                if c == 0
                    && let Some(v) = &self.score_validation
                {
                    return v.clone();
                }
                column.clear();
                column.extend(self.sample.iter().skip(c).step_by(columns));
                Binning::from_sample(&column, bins)
            })
            .collect();
        self.running = self
            .binnings
            .iter()
            .map(|b| Running { counts: vec![0; b.reference.len()], ..Running::default() })
            .collect();
        self.sample = Vec::new();
    }

    fn close(&mut self, key: &ModelKey, settings: &DriftSettings) -> DriftSummary {
        let histogram = |b: &Binning, r: &Running| {
            let n: u64 = r.counts.iter().sum();
            Histogram {
                counts: r.counts.clone(),
                reference: b.reference.clone(),
                mean: if n > 0 { r.sum / n as f64 } else { 0.0 },
                ref_mean: b.ref_mean,
                ref_std: b.ref_std,
                missing: r.missing,
            }
        };
        let mut hists = self.binnings.iter().zip(&self.running).map(|(b, r)| histogram(b, r));
        let score = hists.next().unwrap_or_default();
        let features = self
            .names
            .iter()
            .zip(hists)
            .map(|(name, histogram)| FeatureDrift { name: name.clone(), histogram })
            .collect();
        let summary = DriftSummary {
            machine_id: key.machine_id.clone(),
            mold: key.mold.clone(),
            stamp: self.stamp.clone(),
            period_start_ms: self.period_start_ms,
            period_end_ms: self.period_end_ms,
            shots: self.shots,
            alarms: self.alarms,
            alarm_target: self.alarm_target,
            reference_shots: settings.reference_shots,
            score_from_validation: self.score_validation.is_some(),
            score,
            features,
        };
        for r in &mut self.running {
            r.counts.iter_mut().for_each(|c| *c = 0);
            (r.sum, r.missing) = (0.0, 0);
        }
        (self.shots, self.alarms) = (0, 0);
        summary
    }
}

/// The drift monitor of one edge: a [`Tracker`] per model key, fed every judged shot.
pub struct DriftMonitor {
    settings: DriftSettings,
    trackers: HashMap<ModelKey, Tracker>,
    tick: u64,
}

impl DriftMonitor {
    /// A monitor with these settings (use [`DriftSettings::enabled`] to decide whether to have
    /// one at all).
    pub fn new(settings: DriftSettings) -> DriftMonitor {
        DriftMonitor { settings, trackers: HashMap::new(), tick: 0 }
    }

    /// Keys tracked now.
    pub fn keys(&self) -> usize {
        self.trackers.len()
    }

    /// Takes one judged shot; returns its key's summary when the shot closes a period.
    pub fn observe(&mut self, shot: &JudgedShot<'_>) -> Option<DriftSummary> {
        let same = self.trackers.get(shot.key).is_some_and(|t| t.stamp.id == shot.stamp.id);
        if !same {
            self.trackers.remove(shot.key);
            while self.trackers.len() >= self.settings.max_keys.max(1) {
                let Some(oldest) =
                    self.trackers.iter().min_by_key(|(_, t)| t.last_used).map(|(k, _)| k.clone())
                else {
                    break;
                };
                self.trackers.remove(&oldest);
            }
            self.trackers.insert(shot.key.clone(), Tracker::new(shot));
        }
        self.tick += 1;
        let tracker = self.trackers.get_mut(shot.key)?;
        tracker.last_used = self.tick;
        tracker.observe(shot, &self.settings)
    }
}

#[cfg(test)]
mod tests;
