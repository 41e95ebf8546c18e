//! The synthetic-data gate: synthetic rows of the positive (defect) class go downstream only
//! when all four checks pass. Thresholds are [`GateConfig`]; defaults are documented there and
//! in `docs/augment.md`.
//!
//! 1. **Distributions** — per column, the two-sample KS statistic of synthetic vs real positive
//!    rows; passes when the mean over columns is at most `ks_max_mean`.
//! 2. **Correlations** — mean absolute difference of the off-diagonal Pearson correlations of
//!    synthetic vs real positive rows; passes at most `corr_max_mean_abs_diff`.
//! 3. **Privacy (DCR)** — distance to the closest real training row, in the training rows'
//!    standardized space. No synthetic row may lie within `copy_distance` of one (a copy), and
//!    the median synthetic DCR must be at least `dcr_min_ratio` × the median DCR of the real
//!    holdout rows to the same training rows (synthetic rows no closer to the training data
//!    than unseen real rows are).
//! 4. **Efficacy** — a balanced logistic regression ([`logistic`]) trained on real training
//!    rows, and on real + synthetic; both scored on the real holdout. Passes when neither F1
//!    nor average precision (PR-AUC) drops by more than `efficacy_tolerance`.

pub mod logistic;

use super::stats::{self, Standardizer};
use logistic::Logistic;
use serde::{Deserialize, Serialize};

/// Thresholds of the gate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GateConfig {
    /// Largest mean KS statistic over columns.
    pub ks_max_mean: f64,
    /// Largest mean |Δ correlation| (off-diagonal).
    pub corr_max_mean_abs_diff: f64,
    /// Smallest median DCR of synthetic rows relative to the real holdout's.
    pub dcr_min_ratio: f64,
    /// A synthetic row this close (standardized units) to a real training row is a copy.
    pub copy_distance: f64,
    /// Largest allowed drop of F1 and PR-AUC on the real holdout.
    pub efficacy_tolerance: f64,
}

impl Default for GateConfig {
    fn default() -> Self {
        GateConfig {
            ks_max_mean: 0.35,
            corr_max_mean_abs_diff: 0.35,
            dcr_min_ratio: 0.5,
            copy_distance: 1e-6,
            efficacy_tolerance: 0.05,
        }
    }
}

/// The rows the gate judges. Labels: true = positive (defect). Synthetic rows are positive.
#[derive(Debug, Clone, Copy)]
pub struct GateInput<'a> {
    /// Real training rows: the logistic models' training data and the DCR reference.
    pub train: &'a [Vec<f64>],
    /// Label per `train` row (true = defect).
    pub train_labels: &'a [bool],
    /// Real rows held out from training: scored by the efficacy check and the DCR baseline.
    pub holdout: &'a [Vec<f64>],
    /// Label per `holdout` row (true = defect).
    pub holdout_labels: &'a [bool],
    /// Synthetic positive rows under judgement, with the same columns as the real rows.
    pub synthetic: &'a [Vec<f64>],
    /// Column names, one per value of every row, in order.
    pub columns: &'a [String],
}

/// One check's outcome: its value against its threshold.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Check {
    /// Human-readable name of the check.
    pub name: String,
    /// Whether the check passed.
    pub passed: bool,
    /// The measured value (mean KS, mean |Δr|, DCR ratio or largest score drop).
    pub value: f64,
    /// The threshold `value` was compared with, from [`GateConfig`].
    pub threshold: f64,
    /// Human-readable explanation of the value (worst column, row counts, medians, scores).
    pub detail: String,
}

/// KS of one column.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ColumnKs {
    /// Column name.
    pub column: String,
    /// Two-sample KS statistic of synthetic vs real positive values, in [0, 1].
    pub statistic: f64,
    /// p-value of the KS statistic.
    pub p_value: f64,
}

/// Scores of the efficacy check.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Scores {
    /// F1 of the positive class on the real holdout, in [0, 1].
    pub f1: f64,
    /// Average precision (PR-AUC) on the real holdout, in [0, 1]; 0 without positive rows.
    pub pr_auc: f64,
}

/// Everything the gate measured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GateReport {
    /// Whether all four checks passed, i.e. the synthetic rows may go downstream.
    pub passed: bool,
    /// The four checks in order: distributions, correlations, privacy, efficacy.
    pub checks: Vec<Check>,
    /// KS of every column, in column order.
    pub columns: Vec<ColumnKs>,
    /// Median distance of synthetic rows to their closest training row (standardized units).
    pub dcr_synthetic_median: f64,
    /// Median distance of holdout rows to their closest training row (standardized units).
    pub dcr_holdout_median: f64,
    /// Number of synthetic rows within `copy_distance` of a training row.
    pub copies: usize,
    /// Efficacy scores of the model trained on the real training rows only.
    pub real_only: Scores,
    /// Efficacy scores of the model trained on real plus synthetic rows.
    pub real_plus_synthetic: Scores,
}

fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 { v[n / 2] } else { (v[n / 2 - 1] + v[n / 2]) / 2.0 }
}

/// Distance from each of `rows` to its closest row of `reference`.
fn dcr(rows: &[Vec<f64>], reference: &[Vec<f64>]) -> Vec<f64> {
    rows.iter()
        .map(|r| {
            reference
                .iter()
                .map(|q| r.iter().zip(q).map(|(a, b)| (a - b) * (a - b)).sum::<f64>())
                .fold(f64::INFINITY, f64::min)
                .sqrt()
        })
        .collect()
}

fn score(model: &Logistic, rows: &[Vec<f64>], truth: &[bool]) -> Scores {
    let p: Vec<f64> = rows.iter().map(|r| model.predict_proba(r)).collect();
    let predicted: Vec<bool> = p.iter().map(|&v| v >= 0.5).collect();
    Scores { f1: stats::Confusion::of(&predicted, truth).f1(), pr_auc: stats::average_precision(&p, truth) }
}

/// Runs the four checks.
pub fn evaluate(input: &GateInput<'_>, cfg: &GateConfig) -> GateReport {
    let real_pos: Vec<Vec<f64>> = input
        .train
        .iter()
        .zip(input.train_labels)
        .chain(input.holdout.iter().zip(input.holdout_labels))
        .filter(|(_, l)| **l)
        .map(|(r, _)| r.clone())
        .collect();
    let width = input.columns.len();
    let columns: Vec<ColumnKs> = (0..width)
        .map(|j| {
            let a: Vec<f64> = input.synthetic.iter().map(|r| r[j]).collect();
            let b: Vec<f64> = real_pos.iter().map(|r| r[j]).collect();
            let ks = stats::ks_2samp(&a, &b);
            ColumnKs { column: input.columns[j].clone(), statistic: ks.statistic, p_value: ks.p_value }
        })
        .collect();
    let ks_mean = columns.iter().map(|c| c.statistic).sum::<f64>() / width.max(1) as f64;
    let worst = columns.iter().max_by(|a, b| a.statistic.total_cmp(&b.statistic));
    let mut checks = vec![Check {
        name: "distributions (mean KS)".into(),
        passed: ks_mean <= cfg.ks_max_mean,
        value: ks_mean,
        threshold: cfg.ks_max_mean,
        detail: worst
            .map_or(String::new(), |w| format!("worst column {} (D = {:.3})", w.column, w.statistic)),
    }];

    let (cs, cr) = (stats::correlation(input.synthetic), stats::correlation(&real_pos));
    let mut diffs = Vec::new();
    for a in 0..width {
        for b in a + 1..width {
            diffs.push((cs[a][b] - cr[a][b]).abs());
        }
    }
    let corr = if diffs.is_empty() { 0.0 } else { diffs.iter().sum::<f64>() / diffs.len() as f64 };
    checks.push(Check {
        name: "correlations (mean |Δr|)".into(),
        passed: corr <= cfg.corr_max_mean_abs_diff,
        value: corr,
        threshold: cfg.corr_max_mean_abs_diff,
        detail: format!("{} synthetic vs {} real positive rows", input.synthetic.len(), real_pos.len()),
    });

    let scaler = Standardizer::fit(input.train);
    let train_z = scaler.transform_all(input.train);
    let synth_z = scaler.transform_all(input.synthetic);
    let hold_z = scaler.transform_all(input.holdout);
    let d_syn = dcr(&synth_z, &train_z);
    let copies = d_syn.iter().filter(|&&d| d <= cfg.copy_distance).count();
    let (m_syn, m_hold) = (median(d_syn), median(dcr(&hold_z, &train_z)));
    let ratio = if m_hold > 0.0 { m_syn / m_hold } else { f64::INFINITY };
    checks.push(Check {
        name: "privacy (DCR ratio, no copies)".into(),
        passed: copies == 0 && ratio >= cfg.dcr_min_ratio,
        value: ratio,
        threshold: cfg.dcr_min_ratio,
        detail: format!(
            "median DCR synthetic {m_syn:.3} vs holdout {m_hold:.3}; {copies} copies of real rows"
        ),
    });

    let real_model = Logistic::fit(&train_z, input.train_labels, 1.0);
    let mut aug_rows = train_z.clone();
    aug_rows.extend(synth_z.iter().cloned());
    let mut aug_labels = input.train_labels.to_vec();
    aug_labels.extend(std::iter::repeat_n(true, synth_z.len()));
    let aug_model = Logistic::fit(&aug_rows, &aug_labels, 1.0);
    let real_only = score(&real_model, &hold_z, input.holdout_labels);
    let real_plus_synthetic = score(&aug_model, &hold_z, input.holdout_labels);
    let drop = (real_only.f1 - real_plus_synthetic.f1).max(real_only.pr_auc - real_plus_synthetic.pr_auc);
    let scorable = input.holdout_labels.iter().any(|&l| l);
    checks.push(Check {
        name: "efficacy (largest drop of F1 / PR-AUC)".into(),
        passed: scorable && drop <= cfg.efficacy_tolerance,
        value: drop,
        threshold: cfg.efficacy_tolerance,
        detail: if scorable {
            format!(
                "holdout F1 {:.3} → {:.3}, PR-AUC {:.3} → {:.3}",
                real_only.f1, real_plus_synthetic.f1, real_only.pr_auc, real_plus_synthetic.pr_auc
            )
        } else {
            "the holdout has no positive row to score".into()
        },
    });
    GateReport {
        passed: checks.iter().all(|c| c.passed),
        checks,
        columns,
        dcr_synthetic_median: m_syn,
        dcr_holdout_median: m_hold,
        copies,
        real_only,
        real_plus_synthetic,
    }
}
