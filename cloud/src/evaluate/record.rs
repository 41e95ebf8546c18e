//! The evaluation record: what was evaluated on which rows, each classifier's best parameters
//! and scores (real-only and, when synthetic rows exist, real + synthetic training, both
//! scored on real held-out rows), written as JSON under `evaluations/{machine}/{time}.json`
//! (atomically: a temporary file renamed into place) and printed as a table.

use super::classifiers::Kind;
use super::grid::{CandidateResult, Confusion, FoldScore, held_out_selection};
use super::metrics::mean_std;
use anyhow::{Context, Result};
use serde::Serialize;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// Record format version.
pub const SCHEMA: u32 = 1;

/// Mean and population standard deviation of a score over the folds.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct MeanStd {
    /// Mean over the folds (NaN when there is none).
    pub mean: f64,
    /// Population standard deviation (ddof 0) over the folds.
    pub std: f64,
}

impl MeanStd {
    /// Mean and population standard deviation of `v`.
    pub fn of(v: &[f64]) -> Self {
        let (mean, std) = mean_std(v);
        Self { mean, std }
    }
}

/// Per-fold values of the best candidate.
#[derive(Debug, Clone, Serialize)]
pub struct PerFold {
    /// F1 of the defective class on each fold's real test rows, in [0, 1].
    pub f1: Vec<f64>,
    /// Average precision (PR-AUC) on each fold, in [0, 1]; NaN for a fold without a defective row.
    pub pr_auc: Vec<f64>,
    /// Mean recall of the two classes on each fold, in [0, 1].
    pub balanced_accuracy: Vec<f64>,
    /// Seconds to scale, fit and predict each fold.
    pub fit_time_s: Vec<f64>,
}

/// The grid's choice judged on folds it did not look at.
#[derive(Debug, Clone, Serialize)]
pub struct HeldOutSelection {
    /// F1 of each fold's pick on that fold, mean and standard deviation over the folds.
    pub f1: MeanStd,
    /// Per fold, that F1.
    pub per_fold_f1: Vec<f64>,
    /// Folds whose pick is the best-of-grid candidate: all of them when the choice is stable.
    pub folds_agreeing_with_best: usize,
}

/// One candidate's mean F1 (or why it failed), for the record.
#[derive(Debug, Clone, Serialize)]
pub struct CandidateSummary {
    /// The candidate's parameters.
    pub params: serde_json::Value,
    /// Mean F1 over the folds; `None` when a fold failed or the mean is NaN.
    pub mean_f1: Option<f64>,
    /// The first failing fold's error, when one failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The grid search of one classifier with one kind of training data.
#[derive(Debug, Clone, Serialize)]
pub struct ModeResult {
    /// Parameters of the best candidate (highest mean F1, first on ties).
    pub best_params: serde_json::Value,
    /// F1 of the defective class on the real held-out rows (best candidate, over the folds):
    /// the best of the grid, so optimistic; see `held_out_selection`.
    pub f1: MeanStd,
    /// The same search's choice judged on folds the choice did not look at (for each fold, the
    /// candidate best on the other folds, scored on this one; `grid::held_out_selection`): the
    /// F1 to expect of the chosen parameters. Absent with fewer than two folds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub held_out_selection: Option<HeldOutSelection>,
    /// Average precision (PR-AUC) on the real held-out rows (best candidate, over the folds).
    pub pr_auc: MeanStd,
    /// Balanced accuracy on the real held-out rows (best candidate, over the folds).
    pub balanced_accuracy: MeanStd,
    /// Seconds to scale, fit and predict one fold (mean ± std over the folds).
    pub fit_time_s: MeanStd,
    /// The best candidate's scores on each fold.
    pub per_fold: PerFold,
    /// Wall-clock seconds of the whole grid search (all candidates × folds, in parallel).
    pub search_s: f64,
    /// Every candidate of the grid, in grid order.
    pub candidates: Vec<CandidateSummary>,
    /// The best candidate's confusion counts, summed over the folds.
    pub confusion: Confusion,
    /// The best candidate's out-of-fold scores and labels, every real row once (for the page's
    /// ROC and PR curves; not in the JSON record).
    #[serde(skip)]
    pub out_of_fold: Vec<(f64, u8)>,
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
        let held_out_selection = held_out_selection(results).map(|picks| {
            let per_fold_f1: Vec<f64> = picks.iter().map(|p| p.f1).collect();
            HeldOutSelection {
                f1: MeanStd::of(&per_fold_f1),
                folds_agreeing_with_best: picks.iter().filter(|p| p.candidate == best).count(),
                per_fold_f1,
            }
        });
        Self {
            best_params: results[best].params.to_json(),
            f1: MeanStd::of(&per_fold.f1),
            held_out_selection,
            pr_auc: MeanStd::of(&per_fold.pr_auc),
            balanced_accuracy: MeanStd::of(&per_fold.balanced_accuracy),
            fit_time_s: MeanStd::of(&per_fold.fit_time_s),
            confusion: folds.iter().fold(Confusion::default(), |c, f| c + f.confusion),
            out_of_fold: folds.iter().flat_map(|f| f.scored.iter().copied()).collect(),
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
    /// The classifier, by key (`knn`, `svm`, `tree`, `forest`, `mlp`, `adaboost`, `nb`, `qda`).
    pub classifier: Kind,
    /// The name the original stored its results under (e.g. `RBF SVM`).
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
    /// The group: the machine id, or `{machine} / mold {mold}`.
    pub name: String,
    /// The group's mold; `None` when the machine's rows were not split by mold (one mold at most).
    pub mold: Option<String>,
    /// Real labelled rows with every feature present.
    pub real_rows: usize,
    /// Defective rows among `real_rows`.
    pub defective: usize,
    /// Synthetic rows added to the training folds of the real + synthetic mode.
    pub synthetic_rows: usize,
    /// Folds used: the requested number, fewer when the rarer class has fewer rows (0: skipped).
    pub folds: usize,
    /// Feature columns used, in order.
    pub features: Vec<String>,
    /// Numeric columns left out: constant, or missing in more than 5 % of the real rows.
    pub dropped_features: Vec<String>,
    /// Rows left out, per reason (e.g. `no ground-truth label`, `missing feature values`).
    pub dropped_rows: Vec<(String, usize)>,
    /// Why the group was not evaluated (e.g. too few defective shots).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub skipped: Option<String>,
    /// One result per classifier evaluated, in the requested order.
    pub classifiers: Vec<ClassifierResult>,
}

/// Everything one `evaluate` run found for one machine.
#[derive(Debug, Clone, Serialize)]
pub struct EvaluationRecord {
    /// Record format version ([`SCHEMA`]).
    pub schema: u32,
    /// When the evaluation began (RFC 3339, UTC, milliseconds); the same for every record of a run.
    pub created_at: String,
    /// The machine evaluated.
    pub machine_id: String,
    /// The dataset read: `etl_data` or `aug_data`.
    pub source: String,
    /// The lake folder read.
    pub lake: String,
    /// The parameter grids searched (`original` or `small`).
    pub grid: super::grid::GridName,
    /// Folds asked for (`--folds`); each group's `folds` says how many were used.
    pub folds_requested: usize,
    /// Seed of the fold shuffle and of every randomised classifier.
    pub seed: u64,
    /// The machine's groups: one, or one per mold when it made several.
    pub groups: Vec<GroupResult>,
}

impl EvaluationRecord {
    /// Writes the record to `dir/{machine}/{stamp}.json` (synced temporary file, rename) and its
    /// page beside it, `{stamp}.html`.
    pub fn write(&self, dir: &Path, stamp: &str) -> Result<PathBuf> {
        let machine_dir = dir.join(crate::lake::escape(&self.machine_id));
        std::fs::create_dir_all(&machine_dir)
            .with_context(|| format!("creating {}", machine_dir.display()))?;
        let path = machine_dir.join(format!("{stamp}.json"));
        let text = serde_json::to_string_pretty(self)?;
        moldops_common::fs::write_atomic(&path, text.as_bytes())?;
        let page = super::html::html(self)?;
        moldops_common::fs::write_atomic(&machine_dir.join(format!("{stamp}.html")), page.as_bytes())?;
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
                "  {:<18} {:<6} {:>15} {:>15} {:>15} {:>15} {:>9}  best parameters",
                "classifier", "train", "F1 (best)", "F1 (held out)", "PR-AUC", "bal. accuracy", "fit s"
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
                        "  {:<18} {:<6} {:>15} {:>15} {:>15} {:>15} {:>9.4}  {}",
                        c.name,
                        mode,
                        ms(r.f1),
                        r.held_out_selection.as_ref().map_or("-".into(), |h| ms(h.f1)),
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
