//! The label report: per (model key, model version, mould) the scored shots, the labelled
//! ones and where their labels came from, TP/FP/FN/TN, precision and recall with intervals
//! ([`super::metrics`]), and one row per lot: its alarms against its QC result or scrap count.

use super::join::{Joined, Labels, LotSource, ScoredShot, Source, join};
use super::metrics::{self, Counts, LotBounds, Quality};
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// What one model version did on one mould.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GroupReport {
    /// The model key.
    pub model_key: String,
    /// The registry version.
    pub model_version: Option<u32>,
    /// The mould (none when the machine reports none).
    pub mold: Option<String>,
    /// Shots it scored.
    pub scored: u64,
    /// Alarms among them.
    pub alarms: u64,
    /// Shots with a label of their own.
    pub labelled: u64,
    /// Labelled shots per source of their label.
    pub by_source: BTreeMap<Source, u64>,
    /// Shots whose inspection label and operator verdict disagree (the inspection counts).
    pub conflicts: u64,
    /// Confusion counts over every labelled shot.
    pub counts: Counts,
    /// Confusion counts over the alarm-blind truth of the labelled shots (inspection, else a
    /// lot of 0 or 1; never an operator verdict): what recall is computed from.
    pub recall_counts: Counts,
    /// Clusters (lots, else production runs) holding labelled shots: what the intervals
    /// resample.
    pub clusters: usize,
    /// Precision from `counts`, recall from `recall_counts`, with 95 % intervals.
    pub quality: Quality,
    /// What the lots' results alone allow, summed over the lots (none without a lot).
    pub lot_bounds: Option<LotBounds>,
    /// Precision `[low, high]` the lot results allow.
    pub lot_precision: Option<[f64; 2]>,
    /// Recall `[low, high]` the lot results allow.
    pub lot_recall: Option<[f64; 2]>,
    /// One row per lot with shots of this group.
    pub lots: Vec<LotRow>,
}

/// One lot's alarms against its result.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LotRow {
    /// The lot's name, or machine and span.
    pub lot: String,
    /// The machine.
    pub machine_id: String,
    /// First moment (UTC ms).
    pub from_ms: i64,
    /// Last moment (UTC ms).
    pub to_ms: i64,
    /// QC result or scrap count.
    pub source: LotSource,
    /// The lot's share of defective parts.
    pub defect_ratio: f64,
    /// Scrapped parts, for a scrap count.
    pub scrap: Option<u64>,
    /// Parts the scrap count is out of.
    pub parts: Option<u64>,
    /// Scored shots, alarms, defective shots the result implies and the bounds on alarms that
    /// were right.
    pub bounds: LotBounds,
    /// Precision `[low, high]` the result allows (equal ends when it is exact).
    pub precision: Option<[f64; 2]>,
    /// Recall `[low, high]` the result allows.
    pub recall: Option<[f64; 2]>,
    /// Counts over the lot's shots with a label of their own.
    pub counts: Counts,
}

/// The whole report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    /// Scored shots read from `edge_scores`.
    pub scored: u64,
    /// Shot-level inspection labels read.
    pub inspection_labels: u64,
    /// Shots with an operator verdict (latest per shot).
    pub operator_verdicts: u64,
    /// Lot results read (QC results and scrap counts).
    pub lots: u64,
    /// One entry per (model key, version, mould), in that order.
    pub groups: Vec<GroupReport>,
}

/// What the report groups scored shots by.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct GroupKey {
    /// The model key.
    pub model_key: String,
    /// The registry version.
    pub model_version: Option<u32>,
    /// The mould (none: all of them, or the machine reports none).
    pub mold: Option<String>,
}

/// The report of `shots` against `labels`, intervals from `rounds` cluster-bootstrap resamples.
pub fn build(shots: &[ScoredShot], labels: &Labels, rounds: usize) -> Report {
    let joined = join(shots, labels);
    let mut groups: BTreeMap<GroupKey, Vec<&Joined<'_>>> = BTreeMap::new();
    for j in &joined {
        let s = j.shot;
        let key =
            GroupKey { model_key: s.model_key.clone(), model_version: s.model_version, mold: s.mold.clone() };
        groups.entry(key).or_default().push(j);
    }
    Report {
        scored: shots.len() as u64,
        inspection_labels: labels.inspected.len() as u64,
        operator_verdicts: labels.marks.len() as u64,
        lots: labels.lots.len() as u64,
        groups: groups
            .into_iter()
            .enumerate()
            .map(|(n, (key, rows))| group(key, &rows, labels, rounds, n as u64))
            .collect(),
    }
}

/// The report of one group of joined shots (`seed` seeds its bootstrap).
pub(crate) fn group(
    GroupKey { model_key, model_version, mold }: GroupKey,
    rows: &[&Joined<'_>],
    labels: &Labels,
    rounds: usize,
    seed: u64,
) -> GroupReport {
    let (mut counts, mut recall_counts) = (Counts::default(), Counts::default());
    let mut by_source: BTreeMap<Source, u64> = BTreeMap::new();
    let mut clusters: BTreeMap<&str, (Counts, Counts)> = BTreeMap::new();
    let mut per_lot: BTreeMap<usize, (u64, u64, Counts)> = BTreeMap::new();
    for j in rows {
        let alarm = j.shot.alarm;
        if let Some(lot) = j.lot {
            let entry = per_lot.entry(lot).or_default();
            entry.0 += 1;
            entry.1 += u64::from(alarm);
        }
        let (Some(defective), Some(source)) = (j.defective, j.source) else { continue };
        *by_source.entry(source).or_default() += 1;
        counts.add(alarm, defective);
        let cluster = clusters.entry(j.cluster.as_str()).or_default();
        cluster.0.add(alarm, defective);
        // Recall: only the alarm-blind truth (an operator verdict exists only on alarms).
        if let Some(blind) = j.blind {
            recall_counts.add(alarm, blind);
            cluster.1.add(alarm, blind);
        }
        if let Some(lot) = j.lot {
            per_lot.entry(lot).or_default().2.add(alarm, defective);
        }
    }
    let precision_clusters: Vec<Counts> = clusters.values().map(|c| c.0).collect();
    let recall_clusters: Vec<Counts> = clusters.values().map(|c| c.1).collect();
    let lots: Vec<LotRow> = per_lot
        .into_iter()
        .map(|(i, (shots, alarms, counts))| {
            let lot = &labels.lots[i];
            let defects = (lot.defect_ratio * shots as f64).round() as u64;
            let bounds = LotBounds::of(shots, alarms, defects);
            LotRow {
                lot: lot.id(),
                machine_id: lot.machine_id.clone(),
                from_ms: lot.from_ms,
                to_ms: lot.to_ms,
                source: lot.source,
                defect_ratio: lot.defect_ratio,
                scrap: lot.scrap,
                parts: lot.parts,
                precision: bounds.precision(),
                recall: bounds.recall(),
                bounds,
                counts,
            }
        })
        .collect();
    let lot_bounds = (!lots.is_empty()).then(|| {
        lots.iter().fold(LotBounds::default(), |mut all, l| {
            all.merge(&l.bounds);
            all
        })
    });
    GroupReport {
        model_key,
        model_version,
        mold,
        scored: rows.len() as u64,
        alarms: rows.iter().filter(|j| j.shot.alarm).count() as u64,
        labelled: counts.total(),
        by_source,
        conflicts: rows.iter().filter(|j| j.conflict).count() as u64,
        counts,
        recall_counts,
        clusters: precision_clusters.iter().filter(|c| c.total() > 0).count(),
        quality: metrics::quality(&precision_clusters, &recall_clusters, rounds, seed),
        lot_precision: lot_bounds.and_then(|b| b.precision()),
        lot_recall: lot_bounds.and_then(|b| b.recall()),
        lot_bounds,
        lots,
    }
}

/// The report as text: a block per (model, mould), a line per lot.
pub fn to_text(report: &Report) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{} scored shot(s); labels: {} inspected shot(s), {} operator verdict(s), {} lot result(s)",
        report.scored, report.inspection_labels, report.operator_verdicts, report.lots
    );
    if report.groups.is_empty() {
        let _ = writeln!(out, "no scored shots: edge_scores holds what the edges scored live");
    }
    let pct = |v: Option<f64>| v.map_or("–".to_string(), |v| format!("{:.1} %", 100.0 * v));
    let rate = |r: metrics::Rate| match (r.value, r.low, r.high) {
        (Some(_), Some(l), Some(h)) => format!("{} [{} – {}]", pct(r.value), pct(Some(l)), pct(Some(h))),
        _ => "–".to_string(),
    };
    let range = |r: Option<[f64; 2]>| match r {
        Some([l, h]) if l == h => pct(Some(l)),
        Some([l, h]) => format!("{} – {}", pct(Some(l)), pct(Some(h))),
        None => "–".to_string(),
    };
    for g in &report.groups {
        let version = g.model_version.map_or("?".to_string(), |v| v.to_string());
        let sources: Vec<String> =
            g.by_source.iter().map(|(s, n)| format!("{n} {}", source_name(*s))).collect();
        let _ = writeln!(
            out,
            "\n{}@{} mould {}: {} scored, {} alarm(s), {} labelled ({})",
            g.model_key,
            version,
            g.mold.as_deref().unwrap_or("–"),
            g.scored,
            g.alarms,
            g.labelled,
            if sources.is_empty() { "none".to_string() } else { sources.join(", ") }
        );
        let c = g.counts;
        let _ = writeln!(
            out,
            "  TP {} FP {} FN {} TN {}  precision {}  recall {}  ({} cluster(s){})",
            c.tp,
            c.fp,
            c.fn_,
            c.tn,
            rate(g.quality.precision),
            rate(g.quality.recall),
            g.clusters,
            if g.conflicts > 0 { format!(", {} conflict(s)", g.conflicts) } else { String::new() }
        );
        if g.lot_bounds.is_some() {
            let _ = writeln!(
                out,
                "  from the lot results alone: precision {}  recall {}",
                range(g.lot_precision),
                range(g.lot_recall)
            );
        }
        for l in &g.lots {
            let result = match (l.source, l.scrap) {
                (LotSource::Scrap, Some(s)) => {
                    format!("scrap {s}{}", l.parts.map_or(String::new(), |p| format!(" of {p}")))
                }
                _ => format!("QC defect ratio {:.3}", l.defect_ratio),
            };
            let _ = writeln!(
                out,
                "  lot {}: {} shot(s), {} alarm(s), {}, ≈{} defective → precision {}  recall {}",
                l.lot,
                l.bounds.shots,
                l.bounds.alarms,
                result,
                l.bounds.defects,
                range(l.precision),
                range(l.recall)
            );
        }
    }
    out
}

/// The name of a label source in text.
pub fn source_name(s: Source) -> &'static str {
    match s {
        Source::Inspection => "inspection",
        Source::Operator => "operator",
        Source::Lot => "lot",
    }
}
