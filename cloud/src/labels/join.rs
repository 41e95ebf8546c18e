//! Labels joined to the shots the edges scored: each scored shot gets its truth (defective,
//! good or unknown) and where it came from, the lot it lies in and the cluster its interval
//! resamples (the lot, else its production run).
//!
//! A shot's truth, first found wins:
//! 1. **inspection**: a shot-level label (`labels`, imported quality logs) on (machine, shot
//!    number, UTC day) — the join ETL makes; `label ≥ 0.5` is defective;
//! 2. **operator**: the latest operator verdict on (machine, shot time) — `defect` or
//!    `false_alarm`; `unsure` gives none;
//! 3. **lot**: a lot result of 0 (no defective part) or 1 (all defective) labels every shot in
//!    it. A ratio in between labels no shot: it only bounds the lot's counts
//!    ([`super::metrics::LotBounds`]).
//!
//! Precision counts every labelled shot by that truth. Recall counts only the shot's
//! **alarm-blind** truth ([`Joined::blind`]): the inspection label, else the lot's 0 or 1 —
//! never the operator's verdict, which exists only where an alarm was raised and so can never
//! show a defect the model missed. A shot with both an operator verdict and a lot result
//! counts the verdict for precision and the lot for recall.
//!
//! A shot lies in the lot of its machine that started last at or before it, when the shot is
//! not after the lot's end (ETL's rule). Labels are matched again on every call: a lot result
//! that arrives hours after its shots were scored labels them in the next report.

use super::operator::Verdict;
use serde::Serialize;
use std::collections::BTreeMap;

const DAY_MS: i64 = 86_400_000;

/// One shot as an edge's model scored it (`edge_scores`).
#[derive(Debug, Clone, PartialEq)]
pub struct ScoredShot {
    /// The machine.
    pub machine_id: String,
    /// Time of the shot (UTC ms).
    pub ts_ms: i64,
    /// Controller shot number.
    pub shot_number: Option<u64>,
    /// The mould, when known.
    pub mold: Option<String>,
    /// The model key that judged it.
    pub model_key: String,
    /// The registry version that judged it.
    pub model_version: Option<u32>,
    /// Whether it alarmed.
    pub alarm: bool,
}

/// Where a lot result came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LotSource {
    /// A quality-control lot result (`import --lot-labels`).
    Qc,
    /// A scrap count (`import --scrap-counts`).
    Scrap,
}

/// One lot's result (`lot_labels`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Lot {
    /// The machine that made it.
    pub machine_id: String,
    /// Its first moment (UTC ms).
    pub from_ms: i64,
    /// Its last moment (UTC ms), inclusive.
    pub to_ms: i64,
    /// Its name, when the table gave one.
    pub name: Option<String>,
    /// Share of defective parts, in [0, 1].
    pub defect_ratio: f64,
    /// QC result or scrap count.
    pub source: LotSource,
    /// Scrapped parts, for a scrap count.
    pub scrap: Option<u64>,
    /// Parts the scrap count is out of, for a scrap count.
    pub parts: Option<u64>,
}

impl Lot {
    /// Its name, or `{machine} {from}..{to}`.
    pub fn id(&self) -> String {
        self.name.clone().unwrap_or_else(|| {
            let t = crate::lake::quarantine::rfc3339_ms;
            format!("{} {}..{}", self.machine_id, t(self.from_ms), t(self.to_ms))
        })
    }

    /// The label it gives each of its shots: only a ratio of 0 or 1 does.
    fn shot_truth(&self) -> Option<bool> {
        if self.defect_ratio <= 0.0 {
            Some(false)
        } else if self.defect_ratio >= 1.0 {
            Some(true)
        } else {
            None
        }
    }
}

/// Every label the lake holds, keyed for the join.
#[derive(Debug, Clone, Default)]
pub struct Labels {
    /// Shot-level inspection labels: (machine, shot number, UTC day) → defective.
    pub inspected: BTreeMap<(String, u64, i64), bool>,
    /// The latest operator verdict: (machine, shot time) → verdict.
    pub marks: BTreeMap<(String, i64), Verdict>,
    /// Lot results.
    pub lots: Vec<Lot>,
}

/// Where a shot's truth came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// A shot-level inspection label.
    Inspection,
    /// An operator's verdict on the alarm.
    Operator,
    /// A lot result of 0 or 1.
    Lot,
}

impl Source {
    /// Whether the label was given without looking at the alarm: operators mark alarms only,
    /// so their verdicts say nothing about the defects the model missed (recall leaves them
    /// out).
    pub fn alarm_blind(self) -> bool {
        self != Source::Operator
    }
}

/// One scored shot with its labels.
#[derive(Debug, Clone, PartialEq)]
pub struct Joined<'a> {
    /// The shot.
    pub shot: &'a ScoredShot,
    /// `Some(true)` defective, `Some(false)` good, `None` unknown.
    pub defective: Option<bool>,
    /// Where `defective` came from.
    pub source: Option<Source>,
    /// The truth from labels given without looking at the alarm (inspection, else a lot of 0
    /// or 1): what recall counts.
    pub blind: Option<bool>,
    /// Index into [`Labels::lots`] of the lot the shot lies in.
    pub lot: Option<usize>,
    /// What the intervals resample: `lot:{index}` or `run:{production run id}`.
    pub cluster: String,
    /// An inspection label and an operator verdict on the shot disagree.
    pub conflict: bool,
}

/// Joins `labels` to `shots` (any order); the result is in the order of `shots`.
pub fn join<'a>(shots: &'a [ScoredShot], labels: &Labels) -> Vec<Joined<'a>> {
    let lots_of = lots_by_machine(&labels.lots);
    let runs = production_runs(shots);
    shots
        .iter()
        .zip(runs)
        .map(|(shot, run)| {
            let inspected = shot.shot_number.and_then(|n| {
                labels.inspected.get(&(shot.machine_id.clone(), n, shot.ts_ms.div_euclid(DAY_MS))).copied()
            });
            let operator =
                labels.marks.get(&(shot.machine_id.clone(), shot.ts_ms)).and_then(|v| v.defective());
            let lot =
                lots_of.get(shot.machine_id.as_str()).and_then(|lots| lot_of(lots, &labels.lots, shot.ts_ms));
            let from_lot = lot.and_then(|i| labels.lots[i].shot_truth());
            let (defective, source) = match (inspected, operator, from_lot) {
                (Some(d), _, _) => (Some(d), Some(Source::Inspection)),
                (None, Some(d), _) => (Some(d), Some(Source::Operator)),
                (None, None, Some(d)) => (Some(d), Some(Source::Lot)),
                (None, None, None) => (None, None),
            };
            Joined {
                shot,
                defective,
                source,
                blind: inspected.or(from_lot),
                lot,
                cluster: lot.map_or_else(|| format!("run:{run}"), |i| format!("lot:{i}")),
                conflict: matches!((inspected, operator), (Some(a), Some(b)) if a != b),
            }
        })
        .collect()
}

/// Indices of each machine's lots, by start.
fn lots_by_machine(lots: &[Lot]) -> BTreeMap<&str, Vec<usize>> {
    let mut out: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (i, l) in lots.iter().enumerate() {
        out.entry(l.machine_id.as_str()).or_default().push(i);
    }
    for v in out.values_mut() {
        v.sort_by_key(|&i| (lots[i].from_ms, i));
    }
    out
}

/// The lot (of `order`, one machine's lots by start) that started last at or before `ts_ms`,
/// when `ts_ms` is not after its end.
fn lot_of(order: &[usize], lots: &[Lot], ts_ms: i64) -> Option<usize> {
    let started = order.partition_point(|&i| lots[i].from_ms <= ts_ms);
    let i = *order.get(started.checked_sub(1)?)?;
    (ts_ms <= lots[i].to_ms).then_some(i)
}

/// The production run of each shot (ETL's rule: a new run on a gap of more than 15 minutes
/// or a mould change), over each machine's scored shots in time order.
fn production_runs(shots: &[ScoredShot]) -> Vec<String> {
    let mut by_machine: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (i, s) in shots.iter().enumerate() {
        by_machine.entry(s.machine_id.as_str()).or_default().push(i);
    }
    let mut out = vec![String::new(); shots.len()];
    for (machine, mut idx) in by_machine {
        idx.sort_by_key(|&i| shots[i].ts_ms);
        let (ids, _) = crate::etl::runs::segment(
            machine,
            idx.iter().map(|&i| (shots[i].ts_ms, shots[i].mold.as_deref())),
            None,
        );
        for (i, id) in idx.into_iter().zip(ids) {
            out[i] = id;
        }
    }
    out
}
