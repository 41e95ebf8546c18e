//! The evaluation record: what was evaluated on which rows, each classifier's best parameters
//! and scores (real-only and, when synthetic rows exist, real + synthetic training, both
//! scored on real held-out rows), written as JSON under `evaluations/{machine}/{time}.json`
//! (atomically: a temporary file renamed into place) and printed as a table.

use super::classifiers::Kind;
use super::grid::{CandidateResult, FoldScore};
use super::metrics::mean_std;
use anyhow::{Context, Result};
use serde::Serialize;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// Record format version.
pub const SCHEMA: u32 = 1;

#[derive(Debug, Clone, Copy, Serialize)]
pub struct MeanStd {
    pub mean: f64,
    pub std: f64,
}

impl MeanStd {
    pub fn of(v: &[f64]) -> Self {
        let (mean, std) = mean_std(v);
        Self { mean, std }
    }
}

/// Per-fold values of the best candidate.
#[derive(Debug, Clone, Serialize)]
pub struct PerFold {
    pub f1: Vec<f64>,
    pub pr_auc: Vec<f64>,
    pub balanced_accuracy: Vec<f64>,
    pub fit_time_s: Vec<f64>,
}

/// One candidate's mean F1 (or why it failed), for the record.
#[derive(Debug, Clone, Serialize)]
pub struct CandidateSummary {
    pub params: serde_json::Value,
    pub mean_f1: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The grid search of one classifier with one kind of training data.
#[derive(Debug, Clone, Serialize)]
pub struct ModeResult {
    pub best_params: serde_json::Value,
    pub f1: MeanStd,
    pub pr_auc: MeanStd,
    pub balanced_accuracy: MeanStd,
    /// Seconds to scale, fit and predict one fold (mean ± std over the folds).
    pub fit_time_s: MeanStd,
    pub per_fold: PerFold,
    /// Wall-clock seconds of the whole grid search (all candidates × folds, in parallel).
    pub search_s: f64,
    pub candidates: Vec<CandidateSummary>,
}

impl ModeResult {
    /// Summary of a finished search whose best candidate is `best`.
    pub fn new(results: &[CandidateResult], best: usize, search_s: f64) -> Self {
        let folds: &[FoldScore] = results[best].folds.as_deref().unwrap_or(&[]);
        let col = |f: fn(&FoldScore) -> f64| folds.iter().map(f).collect::<Vec<f64>>();
        let per_fold = PerFold {
            f1: col(|s| s.f1),
            pr_auc: col(|s| s.pr_auc),
            balanced_accuracy: col(|s| s.balanced_accuracy),
            fit_time_s: col(|s| s.seconds),
        };
        Self {
            best_params: results[best].params.to_json(),
            f1: MeanStd::of(&per_fold.f1),
            pr_auc: MeanStd::of(&per_fold.pr_auc),
            balanced_accuracy: MeanStd::of(&per_fold.balanced_accuracy),
            fit_time_s: MeanStd::of(&per_fold.fit_time_s),
            per_fold,
            search_s,
            candidates: results
                .iter()
                .map(|r| CandidateSummary {
                    params: r.params.to_json(),
                    mean_f1: r.mean_f1(),
                    error: r.folds.as_ref().err().cloned(),
                })
                .collect(),
        }
    }
}

/// One classifier's outcome in one group.
#[derive(Debug, Clone, Serialize)]
pub struct ClassifierResult {
    pub classifier: Kind,
    pub name: &'static str,
    /// Trained on real rows only.
    pub real: Option<ModeResult>,
    /// Trained on real + synthetic rows (only when the input has synthetic rows).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub real_plus_synthetic: Option<ModeResult>,
    /// Set when no candidate fitted on every fold.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// One machine (or machine and mold).
#[derive(Debug, Clone, Serialize)]
pub struct GroupResult {
    pub name: String,
    pub mold: Option<String>,
    pub real_rows: usize,
    pub defective: usize,
    pub synthetic_rows: usize,
    pub folds: usize,
    pub features: Vec<String>,
    pub dropped_features: Vec<String>,
    pub dropped_rows: Vec<(String, usize)>,
    /// Why the group was not evaluated (e.g. too few defective shots).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub skipped: Option<String>,
    pub classifiers: Vec<ClassifierResult>,
}

/// Everything one `evaluate` run found for one machine.
#[derive(Debug, Clone, Serialize)]
pub struct EvaluationRecord {
    pub schema: u32,
    pub created_at: String,
    pub machine_id: String,
    pub source: String,
    pub lake: String,
    pub grid: super::grid::GridName,
    pub folds_requested: usize,
    pub seed: u64,
    pub groups: Vec<GroupResult>,
}

impl EvaluationRecord {
    /// Writes the record to `dir/{machine}/{stamp}.json` via a synced temporary file and a rename.
    pub fn write(&self, dir: &Path, stamp: &str) -> Result<PathBuf> {
        let machine_dir = dir.join(crate::lake::escape(&self.machine_id));
        std::fs::create_dir_all(&machine_dir)
            .with_context(|| format!("creating {}", machine_dir.display()))?;
        let path = machine_dir.join(format!("{stamp}.json"));
        let text = serde_json::to_string_pretty(self)?;
        moldops_common::fs::write_atomic(&path, text.as_bytes())?;
        Ok(path)
    }

    /// A table: one line per group, classifier and training mode.
    pub fn to_table(&self) -> String {
        let mut s = String::new();
        for g in &self.groups {
            let _ = writeln!(
                s,
                "{} — {} real rows ({} defective), {} synthetic, {} folds, {} features",
                g.name,
                g.real_rows,
                g.defective,
                g.synthetic_rows,
                g.folds,
                g.features.len()
            );
            if let Some(why) = &g.skipped {
                let _ = writeln!(s, "  skipped: {why}");
                continue;
            }
            let _ = writeln!(
                s,
                "  {:<18} {:<6} {:>15} {:>15} {:>15} {:>9}  best parameters",
                "classifier", "train", "F1", "PR-AUC", "bal. accuracy", "fit s"
            );
            for c in &g.classifiers {
                if let Some(e) = &c.error {
                    let _ = writeln!(s, "  {:<18} FAILED: {e}", c.name);
                }
                let modes = [("real", &c.real), ("+syn", &c.real_plus_synthetic)];
                for (mode, r) in modes {
                    let Some(r) = r else { continue };
                    let ms = |m: MeanStd| format!("{:.3} ± {:.3}", m.mean, m.std);
                    let _ = writeln!(
                        s,
                        "  {:<18} {:<6} {:>15} {:>15} {:>15} {:>9.4}  {}",
                        c.name,
                        mode,
                        ms(r.f1),
                        ms(r.pr_auc),
                        ms(r.balanced_accuracy),
                        r.fit_time_s.mean,
                        r.best_params
                    );
                }
            }
        }
        s
    }

    /// Classifiers that failed outright, as "group: classifier: reason".
    pub fn failures(&self) -> Vec<String> {
        let mut out = Vec::new();
        for g in &self.groups {
            for c in &g.classifiers {
                if let Some(e) = &c.error {
                    out.push(format!("{}: {}: {e}", g.name, c.name));
                }
            }
        }
        out
    }
}
