//! The promotion gate: whether a candidate version may become its key's production version,
//! decided from its held-out summary, its false-alarm target and a measurement of it beside the
//! production version on the same held-out shots.
//!
//! The checks ([`decide`]), each a [`Finding`]:
//! - **data**: at least `min_train_windows` clean training windows, `min_validation_windows`
//!   validation windows and `min_held_out_good` good held-out (test) windows ([`HeldOut`], which
//!   `train` records in the version's metrics under [`HELD_OUT_METRIC`]);
//! - **false alarms**: the share of good held-out windows over the candidate's own threshold at
//!   most its `false_alarm_target` + `false_alarm_tolerance`, where the target is the lower of
//!   the manifest's and the key's `max_false_alarm_target` (a candidate calibrated to a lax
//!   target of its own is not held to it);
//! - **versus production** (only when the key has a production version): both scored on the
//!   candidate's held-out shots ([`Comparison`], made by `registry::compare`), the candidate's
//!   false-alarm rate at most production's + `max_false_alarm_increase`, and — with at least
//!   `min_defects` defective shots there — its recall at least production's − `max_recall_drop`.
//!
//! Settings ([`GateSettings`]) have built-in defaults, overridden for every key by the
//! `[defaults]` table of a gate file and per key by its `[keys."M1/MOLD"]` tables
//! ([`GateFile`]). The outcome of a run is a [`GateRecord`], kept per version in the key's
//! `stages.json`.

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

/// Key of the [`HeldOut`] summary inside a version's metrics.
pub const HELD_OUT_METRIC: &str = "held_out";
/// Name of the gate file inside the registry folder (optional).
pub const GATE_FILE: &str = "gate.toml";

/// What `train` measured on the data a candidate never saw while fitted or calibrated, kept in
/// the version's metrics under [`HELD_OUT_METRIC`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HeldOut {
    /// Time (UTC ms) of the last shot of the first held-out (test) window.
    pub from_ts_ms: i64,
    /// Time (UTC ms) of the last shot of the last held-out window.
    pub to_ts_ms: i64,
    /// Clean training windows the model was fitted on.
    pub train_windows: usize,
    /// Validation windows (epoch, threshold and family were chosen on them).
    pub validation_windows: usize,
    /// Held-out windows not labelled defective.
    pub good_windows: usize,
    /// Held-out windows labelled defective.
    pub defective_windows: usize,
    /// Share of the good held-out windows over the threshold; `None` without any.
    pub false_alarm_rate: Option<f64>,
}

impl HeldOut {
    /// The summary in a version's metrics; `None` when it has none (versions registered before
    /// the gate, or not by `train`) or it does not parse.
    pub fn from_metrics(metrics: &serde_json::Value) -> Option<HeldOut> {
        serde_json::from_value(metrics.get(HELD_OUT_METRIC)?.clone()).ok()
    }
}

/// The gate's thresholds for one key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GateSettings {
    /// Fewest clean training windows.
    pub min_train_windows: usize,
    /// Fewest validation windows.
    pub min_validation_windows: usize,
    /// Fewest good held-out windows (the false-alarm rates are measured on them).
    pub min_held_out_good: usize,
    /// How far (absolute share) the held-out false-alarm rate may exceed the target.
    pub false_alarm_tolerance: f64,
    /// The laxest false-alarm target a candidate is held to: one whose manifest declares a
    /// higher target (trained with `--quantile 0.5`, say) is held to this one instead.
    pub max_false_alarm_target: f64,
    /// How far (absolute share) the candidate's false-alarm rate may exceed production's on
    /// the same held-out shots.
    pub max_false_alarm_increase: f64,
    /// How far (absolute share) the candidate's recall may fall below production's on the
    /// same held-out shots.
    pub max_recall_drop: f64,
    /// Fewest defective held-out shots for the recall comparison (fewer: not compared).
    pub min_defects: usize,
}

impl Default for GateSettings {
    fn default() -> Self {
        GateSettings {
            min_train_windows: 100,
            min_validation_windows: 30,
            min_held_out_good: 30,
            false_alarm_tolerance: 0.02,
            max_false_alarm_target: 0.01,
            max_false_alarm_increase: 0.02,
            max_recall_drop: 0.10,
            min_defects: 10,
        }
    }
}

/// Some of [`GateSettings`]' fields: a table of the gate file.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SettingsTable {
    /// See [`GateSettings::min_train_windows`].
    pub min_train_windows: Option<usize>,
    /// See [`GateSettings::min_validation_windows`].
    pub min_validation_windows: Option<usize>,
    /// See [`GateSettings::min_held_out_good`].
    pub min_held_out_good: Option<usize>,
    /// See [`GateSettings::false_alarm_tolerance`].
    pub false_alarm_tolerance: Option<f64>,
    /// See [`GateSettings::max_false_alarm_target`].
    pub max_false_alarm_target: Option<f64>,
    /// See [`GateSettings::max_false_alarm_increase`].
    pub max_false_alarm_increase: Option<f64>,
    /// See [`GateSettings::max_recall_drop`].
    pub max_recall_drop: Option<f64>,
    /// See [`GateSettings::min_defects`].
    pub min_defects: Option<usize>,
}

impl SettingsTable {
    fn apply(&self, s: &mut GateSettings) {
        let set = |dst: &mut usize, src: Option<usize>| *dst = src.unwrap_or(*dst);
        let setf = |dst: &mut f64, src: Option<f64>| *dst = src.unwrap_or(*dst);
        set(&mut s.min_train_windows, self.min_train_windows);
        set(&mut s.min_validation_windows, self.min_validation_windows);
        set(&mut s.min_held_out_good, self.min_held_out_good);
        setf(&mut s.false_alarm_tolerance, self.false_alarm_tolerance);
        setf(&mut s.max_false_alarm_target, self.max_false_alarm_target);
        setf(&mut s.max_false_alarm_increase, self.max_false_alarm_increase);
        setf(&mut s.max_recall_drop, self.max_recall_drop);
        set(&mut s.min_defects, self.min_defects);
    }

    fn check(&self, table: &str) -> Result<()> {
        let shares = [
            ("false_alarm_tolerance", self.false_alarm_tolerance),
            ("max_false_alarm_target", self.max_false_alarm_target),
            ("max_false_alarm_increase", self.max_false_alarm_increase),
            ("max_recall_drop", self.max_recall_drop),
        ];
        for (name, v) in shares {
            if let Some(v) = v.filter(|v| !(0.0..=1.0).contains(v)) {
                anyhow::bail!("{table}: {name} = {v} is not a share in 0..=1");
            }
        }
        Ok(())
    }
}

/// The gate file: `[defaults]` for every key, `[keys."M1"]` / `[keys."M1/MOLD"]` per key.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GateFile {
    /// Overrides of the built-in defaults, for every key.
    #[serde(default)]
    pub defaults: SettingsTable,
    /// Overrides per key label (`M1` or `M1/MOLD`), over `defaults`.
    #[serde(default)]
    pub keys: BTreeMap<String, SettingsTable>,
}

impl GateFile {
    /// Parses a gate file's text; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> Result<GateFile> {
        let file: GateFile = toml::from_str(text).with_context(|| format!("parsing gate file {origin}"))?;
        file.defaults.check(&format!("{origin} [defaults]"))?;
        for (key, t) in &file.keys {
            t.check(&format!("{origin} [keys.{key:?}]"))?;
        }
        Ok(file)
    }

    /// Reads `path`; `None` when `required` is false and the file does not exist.
    pub fn load(path: &Path, required: bool) -> Result<Option<GateFile>> {
        match std::fs::read_to_string(path) {
            Ok(text) => Ok(Some(GateFile::parse(&text, &path.display().to_string())?)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !required => Ok(None),
            Err(e) => Err(anyhow::Error::from(e).context(format!("reading gate file {}", path.display()))),
        }
    }

    /// The settings of the key labelled `label`: built-in defaults, then `[defaults]`, then
    /// the key's own table.
    pub fn settings(&self, label: &str) -> GateSettings {
        let mut s = GateSettings::default();
        self.defaults.apply(&mut s);
        if let Some(t) = self.keys.get(label) {
            t.apply(&mut s);
        }
        s
    }
}

/// One model scored on the shared held-out shots, at its own threshold.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OnHeldOut {
    /// The version scored.
    pub version: u32,
    /// Its threshold (a shot alarms when `score > threshold`).
    pub threshold: f32,
    /// Share of the good shots that alarmed; `None` without good shots.
    pub false_alarm_rate: Option<f64>,
    /// Share of the defective shots that alarmed; `None` without defective shots.
    pub recall: Option<f64>,
    /// ROC-AUC over the labelled shots (informational); `None` without both classes.
    pub roc_auc: Option<f64>,
}

/// The candidate and the production version scored on the same held-out shots: the shots of
/// the candidate's held-out window that both models scored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Comparison {
    /// First shot time (UTC ms) of the window (the candidate's [`HeldOut::from_ts_ms`]).
    pub from_ts_ms: i64,
    /// Last shot time (UTC ms) of the window.
    pub to_ts_ms: i64,
    /// Shots both scored that are not labelled defective.
    pub good: usize,
    /// Shots both scored that are labelled defective.
    pub defective: usize,
    /// The candidate's results.
    pub candidate: OnHeldOut,
    /// The production version's results.
    pub production: OnHeldOut,
}

/// What the gate knows about production when it decides.
#[derive(Debug, Clone, PartialEq)]
pub enum Versus {
    /// The key has no production version: nothing to compare with.
    NoProduction,
    /// Both were scored on the same held-out shots.
    Measured(Comparison),
    /// The key has a production version but the comparison could not be made (no lake, no
    /// held-out shots there, …); the text says why.
    Unavailable {
        /// The production version.
        production: u32,
        /// Why it could not be compared.
        why: String,
    },
}

/// What a candidate brings to the gate.
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    /// The version.
    pub version: u32,
    /// Its held-out summary, when `train` recorded one.
    pub held_out: Option<HeldOut>,
    /// The manifest's false-alarm target, when it has one.
    pub false_alarm_target: Option<f64>,
}

/// The gate's checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Check {
    /// The version records what the gate needs.
    Evidence,
    /// Enough clean training windows.
    TrainingData,
    /// Enough validation windows.
    ValidationData,
    /// Enough good held-out windows.
    HeldOutData,
    /// Held-out false-alarm rate within the target and tolerance.
    FalseAlarms,
    /// Not more false alarms than production on the same shots, beyond the margin.
    FalseAlarmsVsProduction,
    /// Not a lower recall than production on the same shots, beyond the margin.
    RecallVsProduction,
}

/// The result of one check, with the figures in words.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Finding {
    /// Which check.
    pub check: Check,
    /// Whether it passed.
    pub passed: bool,
    /// The figures and the rule, e.g. `false-alarm rate 0.412 on 120 good held-out windows >
    /// target 0.010 + tolerance 0.020`.
    pub detail: String,
}

/// How a gate run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Every check passed: the version was promoted.
    Passed,
    /// A check failed: the version stays a candidate.
    Refused,
    /// A person promoted it with `--force`; the gate was not applied.
    Forced,
}

/// The last gate decision on one version, kept in the key's `stages.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GateRecord {
    /// When (RFC 3339, UTC).
    pub at: String,
    /// The version judged.
    pub version: u32,
    /// How it ended.
    pub outcome: Outcome,
    /// The production version at the time, if any (what it was compared with).
    pub production: Option<u32>,
    /// Every check made (none when forced).
    pub findings: Vec<Finding>,
    /// Both models on the same held-out shots, when measured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comparison: Option<Comparison>,
    /// The settings applied (none when forced).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub settings: Option<GateSettings>,
}

impl GateRecord {
    /// The failed checks' details: why the version was refused.
    pub fn reasons(&self) -> Vec<&str> {
        self.findings.iter().filter(|f| !f.passed).map(|f| f.detail.as_str()).collect()
    }

    /// The record of a promotion by `--force`, without checks.
    pub fn forced(version: u32, production: Option<u32>) -> GateRecord {
        GateRecord {
            at: super::now_rfc3339(),
            version,
            outcome: Outcome::Forced,
            production,
            findings: Vec::new(),
            comparison: None,
            settings: None,
        }
    }
}

fn finding(check: Check, passed: bool, detail: String) -> Finding {
    Finding { check, passed, detail }
}

fn share(v: Option<f64>) -> String {
    v.map_or("none".to_string(), |v| format!("{v:.3}"))
}

/// Runs every check on `candidate` against `versus` with `settings`.
pub fn decide(settings: &GateSettings, candidate: &Candidate, versus: &Versus) -> GateRecord {
    let s = settings;
    let mut findings = Vec::new();
    match &candidate.held_out {
        None => findings.push(finding(
            Check::Evidence,
            false,
            format!(
                "version {} records no held-out summary (metrics.{HELD_OUT_METRIC}: registered before \
                 the gate or not by train); check it by hand and promote with --force",
                candidate.version
            ),
        )),
        Some(h) => {
            let at_least = |check, what: &str, have: usize, need: usize| {
                finding(check, have >= need, format!("{have} {what} (need at least {need})"))
            };
            findings.push(at_least(
                Check::TrainingData,
                "clean training windows",
                h.train_windows,
                s.min_train_windows,
            ));
            findings.push(at_least(
                Check::ValidationData,
                "validation windows",
                h.validation_windows,
                s.min_validation_windows,
            ));
            findings.push(at_least(
                Check::HeldOutData,
                "good held-out windows",
                h.good_windows,
                s.min_held_out_good,
            ));
            findings.push(false_alarms(s, h, candidate.false_alarm_target));
        }
    }
    findings.extend(versus_production(s, versus));
    let outcome = if findings.iter().all(|f| f.passed) { Outcome::Passed } else { Outcome::Refused };
    let (production, comparison) = match versus {
        Versus::NoProduction => (None, None),
        Versus::Measured(c) => (Some(c.production.version), Some(c.clone())),
        Versus::Unavailable { production, .. } => (Some(*production), None),
    };
    GateRecord {
        at: super::now_rfc3339(),
        version: candidate.version,
        outcome,
        production,
        findings,
        comparison,
        settings: Some(s.clone()),
    }
}

fn false_alarms(s: &GateSettings, h: &HeldOut, target: Option<f64>) -> Finding {
    let Some(target) = target else {
        return finding(
            Check::FalseAlarms,
            false,
            "the manifest has no false_alarm_target (a bundle from before calibration)".into(),
        );
    };
    let Some(rate) = h.false_alarm_rate else {
        return finding(
            Check::FalseAlarms,
            false,
            "no good held-out window to measure false alarms on".into(),
        );
    };
    // `train` writes 1 − quantile (0.010000000000000009 for 0.99): equal within rounding.
    let lax = target > s.max_false_alarm_target + 1e-9;
    let target = if lax { s.max_false_alarm_target } else { target };
    let limit = target + s.false_alarm_tolerance;
    let rule = format!(
        "false-alarm rate {rate:.3} on {} good held-out windows {} target {target:.3}{} + tolerance {:.3}",
        h.good_windows,
        if rate <= limit { "≤" } else { ">" },
        if lax { " (the key's; the manifest declares a laxer one)" } else { "" },
        s.false_alarm_tolerance
    );
    finding(Check::FalseAlarms, rate <= limit, rule)
}

fn versus_production(s: &GateSettings, versus: &Versus) -> Vec<Finding> {
    let c = match versus {
        Versus::NoProduction => return Vec::new(),
        Versus::Unavailable { production, why } => {
            return vec![finding(
                Check::FalseAlarmsVsProduction,
                false,
                format!("cannot compare with production version {production}: {why}"),
            )];
        }
        Versus::Measured(c) => c,
    };
    let (cand, prod) = (&c.candidate, &c.production);
    let mut out = Vec::new();
    let far = match (cand.false_alarm_rate, prod.false_alarm_rate) {
        _ if c.good < s.min_held_out_good => finding(
            Check::FalseAlarmsVsProduction,
            false,
            format!(
                "only {} good held-out shots scored by both (need at least {}) to compare with \
                 production version {}",
                c.good, s.min_held_out_good, prod.version
            ),
        ),
        (Some(a), Some(b)) => finding(
            Check::FalseAlarmsVsProduction,
            a <= b + s.max_false_alarm_increase,
            format!(
                "false-alarm rate {a:.3} vs production version {}'s {b:.3} on the same {} good \
                 held-out shots (at most {:.3} more allowed)",
                prod.version, c.good, s.max_false_alarm_increase
            ),
        ),
        (a, b) => finding(
            Check::FalseAlarmsVsProduction,
            false,
            format!("false-alarm rates not measurable: {} vs {}", share(a), share(b)),
        ),
    };
    out.push(far);
    let recall = if c.defective < s.min_defects {
        finding(
            Check::RecallVsProduction,
            true,
            format!(
                "only {} defective held-out shots (recall compared from {}): not compared",
                c.defective, s.min_defects
            ),
        )
    } else {
        match (cand.recall, prod.recall) {
            (Some(a), Some(b)) => finding(
                Check::RecallVsProduction,
                a >= b - s.max_recall_drop,
                format!(
                    "recall {a:.3} vs production version {}'s {b:.3} on the same {} defective \
                     held-out shots (at most {:.3} less allowed)",
                    prod.version, c.defective, s.max_recall_drop
                ),
            ),
            (a, b) => finding(
                Check::RecallVsProduction,
                false,
                format!("recalls not measurable: {} vs {}", share(a), share(b)),
            ),
        }
    };
    out.push(recall);
    out
}

#[cfg(test)]
#[path = "gate_tests.rs"]
mod tests;
