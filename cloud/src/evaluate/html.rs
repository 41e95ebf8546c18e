//! The evaluation record as a page (`{stamp}.html` beside each `{stamp}.json`): per group, every
//! classifier's F1, PR-AUC and balanced accuracy over the folds (mean ± std, as bars), real rows
//! only and with synthetic rows, the best parameters, the confusion matrix over the folds, ROC
//! and PR curves of the out-of-fold scores, the per-fold scores and the whole grid.

use super::record::{EvaluationRecord, ModeResult};
use anyhow::Result;
use serde::Serialize;

const TEMPLATE: &str = include_str!("evaluate.html");

/// A score as the page shows it: mean, std and the bar's width.
#[derive(Serialize)]
struct Score {
    mean: Option<f64>,
    std: Option<f64>,
    percent: f64,
}

impl Score {
    fn of(m: super::record::MeanStd) -> Score {
        let finite = |v: f64| v.is_finite().then_some(v);
        Score {
            mean: finite(m.mean),
            std: finite(m.std),
            percent: finite(m.mean).map_or(0.0, |v| 100.0 * v.clamp(0.0, 1.0)),
        }
    }
}

/// One grid candidate.
#[derive(Serialize)]
struct Candidate {
    params: String,
    mean_f1: Option<f64>,
    error: Option<String>,
    best: bool,
}

/// One classifier trained one way.
#[derive(Serialize)]
struct Row {
    classifier: String,
    mode: &'static str,
    f1: Score,
    /// The choice judged on folds it did not look at (see `record::HeldOutSelection`).
    held_out_f1: Score,
    pr_auc: Score,
    balanced_accuracy: Score,
    fit_time_s: Option<f64>,
    best_params: String,
    per_fold_f1: Vec<Option<f64>>,
    per_fold_pr_auc: Vec<Option<f64>>,
    candidates: Vec<Candidate>,
    /// Confusion counts over the folds.
    confusion: super::grid::Confusion,
    /// ROC and PR curves of the out-of-fold scores, inline SVG (empty without both classes).
    roc_svg: String,
    pr_svg: String,
}

/// One group.
#[derive(Serialize)]
struct Group {
    name: String,
    real_rows: usize,
    defective: usize,
    synthetic_rows: usize,
    folds: usize,
    features: usize,
    skipped: Option<String>,
    failed: Vec<String>,
    rows: Vec<Row>,
}

#[derive(Serialize)]
struct Page {
    machine_id: String,
    created_at: String,
    source: String,
    grid: String,
    seed: u64,
    groups: Vec<Group>,
}

/// Points kept per curve: enough for the eye, few enough for a page with many curves.
const CURVE_POINTS: usize = 200;

/// Every `k`-th point of a curve and its last, at most about [`CURVE_POINTS`].
fn thin(curve: Vec<(f64, f64)>) -> Vec<(f64, f64)> {
    let step = curve.len().div_ceil(CURVE_POINTS).max(1);
    let last = curve.last().copied();
    let mut out: Vec<(f64, f64)> = curve.into_iter().step_by(step).collect();
    if let Some(l) = last.filter(|l| out.last() != Some(l)) {
        out.push(l);
    }
    out
}

fn row(classifier: &str, mode: &'static str, m: &ModeResult) -> Result<Row> {
    let finite = |v: &f64| v.is_finite().then_some(*v);
    let best = serde_json::to_string(&m.best_params).unwrap_or_default();
    let scores: Vec<f32> = m.out_of_fold.iter().map(|s| s.0 as f32).collect();
    let labels: Vec<u8> = m.out_of_fold.iter().map(|s| s.1).collect();
    let (roc, pr) = crate::train::metrics::curves(&scores, &labels);
    let title = format!("{classifier} ({mode})");
    let (roc_svg, pr_svg) = if roc.is_empty() {
        (String::new(), String::new())
    } else {
        let plot = |kind: &str, x: &str, y: &str, c: Vec<(f64, f64)>| {
            crate::report::plots::curves(
                &format!("{kind}: {title}"),
                x,
                y,
                &[("out of fold".to_string(), thin(c))],
            )
        };
        (
            plot("ROC", "false positive rate", "true positive rate", roc)?,
            plot("PR", "recall", "precision", pr)?,
        )
    };
    Ok(Row {
        confusion: m.confusion,
        roc_svg,
        pr_svg,
        classifier: classifier.to_string(),
        mode,
        f1: Score::of(m.f1),
        held_out_f1: Score::of(
            m.held_out_selection
                .as_ref()
                .map_or(super::record::MeanStd { mean: f64::NAN, std: f64::NAN }, |h| h.f1),
        ),
        pr_auc: Score::of(m.pr_auc),
        balanced_accuracy: Score::of(m.balanced_accuracy),
        fit_time_s: finite(&m.fit_time_s.mean),
        per_fold_f1: m.per_fold.f1.iter().map(finite).collect(),
        per_fold_pr_auc: m.per_fold.pr_auc.iter().map(finite).collect(),
        candidates: m
            .candidates
            .iter()
            .map(|c| {
                let params = serde_json::to_string(&c.params).unwrap_or_default();
                Candidate { best: params == best, params, mean_f1: c.mean_f1, error: c.error.clone() }
            })
            .collect(),
        best_params: best,
    })
}

/// The page of one evaluation record.
pub fn html(r: &EvaluationRecord) -> Result<String> {
    let groups = r
        .groups
        .iter()
        .map(|g| -> Result<Group> {
            Ok(Group {
                name: g.name.clone(),
                real_rows: g.real_rows,
                defective: g.defective,
                synthetic_rows: g.synthetic_rows,
                folds: g.folds,
                features: g.features.len(),
                skipped: g.skipped.clone(),
                failed: g
                    .classifiers
                    .iter()
                    .filter_map(|c| Some(format!("{}: {}", c.name, c.error.as_ref()?)))
                    .collect(),
                rows: g
                    .classifiers
                    .iter()
                    .flat_map(|c| {
                        let real = c.real.as_ref().map(|m| row(c.name, "real", m));
                        let plus = c.real_plus_synthetic.as_ref().map(|m| row(c.name, "real + synthetic", m));
                        real.into_iter().chain(plus)
                    })
                    .collect::<Result<_>>()?,
            })
        })
        .collect::<Result<_>>()?;
    let page = Page {
        machine_id: r.machine_id.clone(),
        created_at: r.created_at.clone(),
        source: r.source.clone(),
        grid: serde_json::to_value(r.grid)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default(),
        seed: r.seed,
        groups,
    };
    let mut env = minijinja::Environment::new();
    env.add_filter("fixed", |v: f64, digits: usize| format!("{v:.digits$}"));
    env.add_template("evaluate.html", TEMPLATE)?;
    Ok(env.get_template("evaluate.html")?.render(&page)?)
}
