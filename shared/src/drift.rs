//! Drift summaries as lake records: every period (N scored shots or T seconds of shot time) an
//! edge writes, per model key it judges with, one record of kind [`RecordKind::Drift`] (dataset
//! `edge_drift`) holding fixed-bin histograms of the score and of each model input feature over
//! the period, beside the reference histogram over the same bins, and the period's alarms; it
//! travels exactly once like the shots. The cloud's `drift` command reads them and judges drift
//! ([`stats`]: PSI, KS, the alarm rate's binomial tail); docs/drift.md.
//!
//! The reference of the score is the model's validation distribution when its manifest has one
//! (bins cut at the validation median, 90th and 99th percentile; reference weights 50/40/9/1 %
//! of the validation count), so the score's PSI reads against validation. Features have no
//! validation statistics in a bundle: their bins are cut at the deciles of the first shots the
//! key scored after its model became active (the reference sample, its counts the reference
//! weights), so a feature's PSI says how far it moved since the model went live.
//!
//! Value names: `shots`, `alarms`, `alarm_target` (absent when the judge has none),
//! `period_start_ms`, `reference_shots`, `score_from_validation` (1 or 0); per histogram with
//! prefix `score` or `f{i}` (the i-th feature): `{p}.c{j}` the period's count in bin j,
//! `{p}.r{j}` the reference weight of bin j, `{p}.mean`, `{p}.ref_mean`, `{p}.ref_std` and
//! `{p}.missing` (shots without a usable value); `feature.{name}` = i names feature i (cut and
//! hashed like contribution names when too long). At most [`MAX_FEATURES`] features and
//! [`MAX_BINS`] bins keep a summary within the record's value limit.

pub mod stats;

use crate::limits;
use crate::record::{Record, RecordKind};
use crate::score::{ModelStamp, ScoreError, limited_name};
use std::collections::BTreeMap;
use thiserror::Error;

/// Device id of drift records: the edge's drift monitor, not a device it polls (an edge refuses
/// a device configured with this id).
pub const DEVICE_ID: &str = "_drift";

/// Most bins one histogram has.
pub const MAX_BINS: usize = 12;
/// Fewest bins one histogram has.
pub const MIN_BINS: usize = 2;
/// Most features one summary covers (a model's first ones, in manifest order).
pub const MAX_FEATURES: usize = 32;
/// Most shots one period may summarise (an edge's `every_shots` is at most this).
pub const MAX_PERIOD_SHOTS: u64 = 1_000_000;

// Record values: 6 + score (2 · MAX_BINS + 4) + MAX_FEATURES · (2 · MAX_BINS + 5) ≤ MAX_VALUES.
const _: () = assert!(6 + (2 * MAX_BINS + 4) + MAX_FEATURES * (2 * MAX_BINS + 5) <= limits::MAX_VALUES);

/// Names of the record-level values of a drift record.
pub mod value {
    /// Shots judged in the period.
    pub const SHOTS: &str = "shots";
    /// Of those, shots that alarmed.
    pub const ALARMS: &str = "alarms";
    /// The alarm rate the judge should keep to (a bundle's `false_alarm_target`, else its
    /// validation alarm rate); absent for a cold-start baseline.
    pub const ALARM_TARGET: &str = "alarm_target";
    /// Time of the period's first shot (UTC ms); the record's `ts` is its last shot's.
    pub const PERIOD_START_MS: &str = "period_start_ms";
    /// Shots in the feature reference sample.
    pub const REFERENCE_SHOTS: &str = "reference_shots";
    /// 1 when the score's reference is the model's validation distribution, 0 when learned.
    pub const SCORE_FROM_VALIDATION: &str = "score_from_validation";
    /// Prefix of the score histogram's values.
    pub const SCORE: &str = "score";
    /// Prefix of a feature's name value: `feature.{name}` = its index.
    pub const FEATURE_NAME_PREFIX: &str = "feature.";
}

/// One histogram of a period against its reference, over the same bins.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Histogram {
    /// The period's values per bin.
    pub counts: Vec<u64>,
    /// Reference weight per bin (reference counts, or validation proportions times the
    /// validation count).
    pub reference: Vec<f64>,
    /// Mean of the period's values (0 when it has none).
    pub mean: f64,
    /// Mean of the reference values.
    pub ref_mean: f64,
    /// Standard deviation of the reference values (population).
    pub ref_std: f64,
    /// Shots of the period without a usable value (absent, not finite, stale).
    pub missing: u64,
}

impl Histogram {
    /// Values binned in the period.
    pub fn total(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// PSI of the period against the reference ([`stats::psi`]); `None` when either is empty.
    pub fn psi(&self) -> Option<f64> {
        let counts: Vec<f64> = self.counts.iter().map(|&c| c as f64).collect();
        stats::psi(&self.reference, &counts)
    }

    /// Binned KS distance of the period against the reference ([`stats::ks_distance`]).
    pub fn ks(&self) -> Option<f64> {
        let counts: Vec<f64> = self.counts.iter().map(|&c| c as f64).collect();
        stats::ks_distance(&self.reference, &counts)
    }

    /// How far the period's mean moved from the reference mean, in reference standard
    /// deviations (`None` when the reference has no spread, the period no values, or the
    /// figure is not finite).
    pub fn shift_in_std(&self) -> Option<f64> {
        (self.ref_std > 0.0 && self.total() > 0)
            .then(|| (self.mean - self.ref_mean) / self.ref_std)
            .filter(|s| s.is_finite())
    }
}

/// One feature's histogram.
#[derive(Debug, Clone, PartialEq)]
pub struct FeatureDrift {
    /// Feature name (as the value name carries it: cut and hashed when too long).
    pub name: String,
    /// Its histogram.
    pub histogram: Histogram,
}

/// One period of one model key at one edge.
#[derive(Debug, Clone, PartialEq)]
pub struct DriftSummary {
    /// Machine of the model key.
    pub machine_id: String,
    /// Mould of the model key (`None` for a machine's model).
    pub mold: Option<String>,
    /// The model (or cold-start baseline) that judged the period's shots.
    pub stamp: ModelStamp,
    /// Time of the period's first shot (UTC ms).
    pub period_start_ms: i64,
    /// Time of the period's last shot (UTC ms).
    pub period_end_ms: i64,
    /// Shots judged in the period.
    pub shots: u64,
    /// Of those, alarms.
    pub alarms: u64,
    /// The judge's alarm-rate target, if it has one.
    pub alarm_target: Option<f64>,
    /// Shots in the feature reference sample.
    pub reference_shots: u64,
    /// Whether the score's reference is the validation distribution.
    pub score_from_validation: bool,
    /// The score's histogram.
    pub score: Histogram,
    /// Each feature's histogram, at most [`MAX_FEATURES`].
    pub features: Vec<FeatureDrift>,
}

/// Why a drift record is not a valid summary.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum DriftError {
    /// The record carries no model stamp, or a bad one.
    #[error("drift record: {0}")]
    Stamp(#[from] ScoreError),
    /// The stamp's model key is not the record's (machine, mould).
    #[error("drift record of {record} stamped with the model key {stamp}")]
    Key {
        /// The stamp's key.
        stamp: String,
        /// The record's (machine, mould) as a key.
        record: String,
    },
    /// A value the summary needs is absent (its name).
    #[error("drift record without value {0}")]
    Missing(String),
    /// A value is out of its range: a count not a whole number ≥ 0, a weight < 0, a target
    /// outside 0..=1, no shots or more than [`MAX_PERIOD_SHOTS`], more alarms than shots (the
    /// name).
    #[error("drift value {0} is out of range")]
    Range(String),
    /// A histogram has fewer than [`MIN_BINS`] or more than [`MAX_BINS`] bins, or its counts
    /// and reference differ in number (its prefix).
    #[error("drift histogram {0} has a bad number of bins")]
    Bins(String),
    /// A histogram's counts and missing shots do not add up to the period's shots (its prefix).
    #[error("drift histogram {0} does not add up to the period's shots")]
    Total(String),
    /// More than [`MAX_FEATURES`] features, or feature indices that are not 0..n.
    #[error("drift record features are not numbered 0..n (at most {MAX_FEATURES})")]
    Features,
}

/// Largest integer an `f64` value holds exactly.
const MAX_EXACT: f64 = 9_007_199_254_740_992.0;

fn put_histogram(values: &mut Vec<(String, f64)>, prefix: &str, h: &Histogram) {
    for (j, c) in h.counts.iter().enumerate() {
        values.push((format!("{prefix}.c{j}"), *c as f64));
    }
    for (j, r) in h.reference.iter().enumerate() {
        values.push((format!("{prefix}.r{j}"), *r));
    }
    values.push((format!("{prefix}.mean"), h.mean));
    values.push((format!("{prefix}.ref_mean"), h.ref_mean));
    values.push((format!("{prefix}.ref_std"), h.ref_std));
    values.push((format!("{prefix}.missing"), h.missing as f64));
}

fn whole(values: &BTreeMap<String, f64>, name: &str) -> Result<u64, DriftError> {
    let v = *values.get(name).ok_or_else(|| DriftError::Missing(name.to_string()))?;
    if v.fract() != 0.0 || !(0.0..=MAX_EXACT).contains(&v) {
        return Err(DriftError::Range(name.to_string()));
    }
    Ok(v as u64)
}

fn number(values: &BTreeMap<String, f64>, name: &str) -> Result<f64, DriftError> {
    values.get(name).copied().ok_or_else(|| DriftError::Missing(name.to_string()))
}

fn get_histogram(values: &BTreeMap<String, f64>, prefix: &str, shots: u64) -> Result<Histogram, DriftError> {
    let mut h = Histogram::default();
    for j in 0..=MAX_BINS {
        let name = format!("{prefix}.c{j}");
        if !values.contains_key(&name) {
            break;
        }
        h.counts.push(whole(values, &name)?);
    }
    for j in 0..=MAX_BINS {
        let name = format!("{prefix}.r{j}");
        let Some(&r) = values.get(&name) else { break };
        if r < 0.0 {
            return Err(DriftError::Range(name));
        }
        h.reference.push(r);
    }
    let bins = h.counts.len();
    if !(MIN_BINS..=MAX_BINS).contains(&bins) || h.reference.len() != bins {
        return Err(DriftError::Bins(prefix.to_string()));
    }
    h.mean = number(values, &format!("{prefix}.mean"))?;
    h.ref_mean = number(values, &format!("{prefix}.ref_mean"))?;
    h.ref_std = number(values, &format!("{prefix}.ref_std"))?;
    if h.ref_std < 0.0 {
        return Err(DriftError::Range(format!("{prefix}.ref_std")));
    }
    h.missing = whole(values, &format!("{prefix}.missing"))?;
    if h.total().checked_add(h.missing) != Some(shots) {
        return Err(DriftError::Total(prefix.to_string()));
    }
    Ok(h)
}

impl DriftSummary {
    /// The summary as a record for the edge's buffer (its seq is assigned there); `ts_ms` is
    /// the period's last shot's time, `machine_id`/`mold` the key's.
    pub fn to_record(&self) -> Record {
        let mut values = vec![
            (value::SHOTS.to_string(), self.shots as f64),
            (value::ALARMS.to_string(), self.alarms as f64),
            (value::PERIOD_START_MS.to_string(), self.period_start_ms as f64),
            (value::REFERENCE_SHOTS.to_string(), self.reference_shots as f64),
            (value::SCORE_FROM_VALIDATION.to_string(), if self.score_from_validation { 1.0 } else { 0.0 }),
        ];
        if let Some(t) = self.alarm_target {
            values.push((value::ALARM_TARGET.to_string(), t));
        }
        put_histogram(&mut values, value::SCORE, &self.score);
        for (i, f) in self.features.iter().take(MAX_FEATURES).enumerate() {
            values.push((limited_name(value::FEATURE_NAME_PREFIX, &f.name), i as f64));
            put_histogram(&mut values, &format!("f{i}"), &f.histogram);
        }
        let mut r = Record::new(RecordKind::Drift, &self.machine_id, DEVICE_ID, self.period_end_ms, values);
        r.mold = self.mold.clone();
        r.model = Some(self.stamp.clone());
        r
    }

    /// The largest PSI of the summary's histograms (score and features) against their
    /// references; `None` when none has one.
    pub fn max_psi(&self) -> Option<f64> {
        std::iter::once(&self.score)
            .chain(self.features.iter().map(|f| &f.histogram))
            .filter_map(Histogram::psi)
            .reduce(f64::max)
    }

    /// Reads a drift record back, checking it (see [`check_record`]).
    pub fn from_record(r: &Record) -> Result<DriftSummary, DriftError> {
        let stamp = r.model.clone().ok_or(ScoreError::NoStamp)?;
        stamp.check()?;
        // The judge's key is the record's own (machine, mould): a summary cannot speak for
        // another key (and have that one retrained).
        let own = crate::bundle::ModelKey { machine_id: r.machine_id.clone(), mold: r.mold.clone() };
        if stamp.key != own.label() {
            return Err(DriftError::Key { stamp: stamp.key, record: own.label() });
        }
        let v = &r.values;
        let shots = whole(v, value::SHOTS)?;
        if !(1..=MAX_PERIOD_SHOTS).contains(&shots) {
            return Err(DriftError::Range(value::SHOTS.to_string()));
        }
        let alarms = whole(v, value::ALARMS)?;
        if alarms > shots {
            return Err(DriftError::Range(value::ALARMS.to_string()));
        }
        let alarm_target = v.get(value::ALARM_TARGET).copied();
        if alarm_target.is_some_and(|t| !(0.0..=1.0).contains(&t)) {
            return Err(DriftError::Range(value::ALARM_TARGET.to_string()));
        }
        let start = number(v, value::PERIOD_START_MS)?;
        if start.fract() != 0.0 || start > r.ts_ms as f64 || start < -MAX_EXACT {
            return Err(DriftError::Range(value::PERIOD_START_MS.to_string()));
        }
        let from_validation = number(v, value::SCORE_FROM_VALIDATION)?;
        if from_validation != 0.0 && from_validation != 1.0 {
            return Err(DriftError::Range(value::SCORE_FROM_VALIDATION.to_string()));
        }
        let mut names: Vec<(u64, String)> = Vec::new();
        for (name, &index) in v.range(value::FEATURE_NAME_PREFIX.to_string()..) {
            let Some(feature) = name.strip_prefix(value::FEATURE_NAME_PREFIX) else { break };
            if index.fract() != 0.0 || !(0.0..MAX_FEATURES as f64).contains(&index) {
                return Err(DriftError::Features);
            }
            names.push((index as u64, feature.to_string()));
        }
        names.sort();
        if names.iter().enumerate().any(|(i, (index, _))| *index != i as u64) {
            return Err(DriftError::Features);
        }
        let mut features = Vec::with_capacity(names.len());
        for (i, name) in names {
            features.push(FeatureDrift { name, histogram: get_histogram(v, &format!("f{i}"), shots)? });
        }
        Ok(DriftSummary {
            machine_id: r.machine_id.clone(),
            mold: r.mold.clone(),
            stamp,
            period_start_ms: start as i64,
            period_end_ms: r.ts_ms,
            shots,
            alarms,
            alarm_target,
            reference_shots: whole(v, value::REFERENCE_SHOTS)?,
            score_from_validation: from_validation == 1.0,
            score: get_histogram(v, value::SCORE, shots)?,
            features,
        })
    }
}

/// Checks a record of kind `drift`: a valid model stamp, whole counts, 1 to
/// [`MAX_PERIOD_SHOTS`] shots, 2 to [`MAX_BINS`] bins
/// per histogram with as many reference weights, histograms that add up to the period's shots,
/// features numbered 0..n (n ≤ [`MAX_FEATURES`]), no more alarms than shots.
pub fn check_record(r: &Record) -> Result<(), DriftError> {
    DriftSummary::from_record(r).map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::score::ColdStartPhase;

    fn histogram(counts: Vec<u64>, missing: u64) -> Histogram {
        let bins = counts.len();
        Histogram { counts, reference: vec![10.0; bins], mean: 1.5, ref_mean: 1.0, ref_std: 0.5, missing }
    }

    fn summary(features: usize, bins: usize) -> DriftSummary {
        let per_bin = 100 / bins as u64;
        let shots = per_bin * bins as u64;
        DriftSummary {
            machine_id: "M1".into(),
            mold: Some("A".into()),
            stamp: ModelStamp {
                key: "M1/A".into(),
                id: "M1/A@3".into(),
                version: 3,
                bundle_sha256: "ab".repeat(32),
            },
            period_start_ms: 1_000,
            period_end_ms: 2_000,
            shots,
            alarms: 2,
            alarm_target: Some(0.01),
            reference_shots: 500,
            score_from_validation: true,
            score: histogram(vec![per_bin; bins], 0),
            features: (0..features)
                .map(|i| FeatureDrift {
                    name: format!("{}Barrel_Temp_Zone{i}", "x".repeat(if i == 1 { 200 } else { 0 })),
                    histogram: histogram(vec![per_bin - 1; bins], bins as u64),
                })
                .collect(),
        }
    }

    #[test]
    fn a_summary_round_trips_through_a_record_within_the_limits() {
        let s = summary(3, 10);
        let r = s.to_record();
        assert_eq!((r.kind, r.device_id.as_str(), r.ts_ms), (RecordKind::Drift, DEVICE_ID, 2_000));
        assert_eq!(crate::codec::check_record(&r), Ok(()));
        let back = DriftSummary::from_record(&r).expect("valid");
        assert_eq!(back.features[0], s.features[0]);
        assert!(back.features[1].name.contains('~'), "a long name is cut and hashed");
        assert_eq!((back.score.clone(), back.shots, back.alarm_target), (s.score.clone(), 100, Some(0.01)));
        // The largest summary fits a record.
        let big = summary(MAX_FEATURES, MAX_BINS).to_record();
        assert!(big.values.len() <= limits::MAX_VALUES, "{}", big.values.len());
        assert_eq!(crate::codec::check_record(&big), Ok(()));
        // A cold-start baseline's summary, without target, passes too.
        let mut cold = summary(1, 4);
        cold.stamp = ModelStamp::cold_start("M1/A", ColdStartPhase::Baseline);
        cold.alarm_target = None;
        assert_eq!(DriftSummary::from_record(&cold.to_record()).map(|c| c.alarm_target), Ok(None));
    }

    #[test]
    fn forged_drift_records_are_refused_with_a_reason() {
        let good = summary(2, 4).to_record();
        let with = |name: &str, v: f64| {
            let mut r = good.clone();
            r.values.insert(name.to_string(), v);
            check_record(&r)
        };
        assert_eq!(with("alarms", 1e6), Err(DriftError::Range("alarms".into())));
        assert_eq!(with("shots", 1.5), Err(DriftError::Range("shots".into())));
        assert_eq!(with("shots", 0.0), Err(DriftError::Range("shots".into())));
        assert_eq!(with("shots", 1e7), Err(DriftError::Range("shots".into())));
        assert_eq!(with("score.c0", 26.0), Err(DriftError::Total("score".into())));
        assert_eq!(with("f1.r4", 1.0), Err(DriftError::Bins("f1".into())));
        assert_eq!(with("score.r0", -1.0), Err(DriftError::Range("score.r0".into())));
        assert_eq!(with("feature.extra", 5.0), Err(DriftError::Features));
        assert_eq!(with("alarm_target", 2.0), Err(DriftError::Range("alarm_target".into())));
        assert_eq!(with("period_start_ms", 5_000.0), Err(DriftError::Range("period_start_ms".into())));
        let mut r = good.clone();
        r.values.remove("f0.ref_std");
        assert_eq!(check_record(&r), Err(DriftError::Missing("f0.ref_std".into())));
        let mut r = good.clone();
        r.model.as_mut().expect("stamp").key = "M9/X".into();
        assert_eq!(check_record(&r), Err(DriftError::Key { stamp: "M9/X".into(), record: "M1/A".into() }));
        let mut r = good.clone();
        r.model = None;
        assert_eq!(check_record(&r), Err(DriftError::Stamp(ScoreError::NoStamp)));
        let mut r = good;
        r.kind = RecordKind::Drift;
        r.values.insert("score.c0".into(), f64::NAN);
        assert!(crate::codec::check_record(&r).is_err());
    }

    #[test]
    fn histogram_figures_read_the_period_against_the_reference() {
        let h = Histogram { counts: vec![10, 20, 30, 40], reference: vec![25.0; 4], ..histogram(vec![], 0) };
        assert!((h.psi().expect("psi") - 0.228_217).abs() < 1e-6);
        assert!((h.ks().expect("ks") - 0.2).abs() < 1e-12);
        assert_eq!(h.shift_in_std(), Some(1.0));
        assert_eq!(Histogram { ref_std: f64::from_bits(1), ..h.clone() }.shift_in_std(), None);
        assert_eq!(Histogram { counts: vec![0, 0], ..h }.shift_in_std(), None);
    }
}
