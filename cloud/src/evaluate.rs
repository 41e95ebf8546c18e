//! `moldops-cloud evaluate`: the original's classifier grid search (`data_evaluation.py`),
//! done right — per machine (and mold), on ground-truth labels only, stratified shuffled seeded
//! k-fold with the scaler fitted inside each fold, F1 / PR-AUC / balanced accuracy / fit time,
//! real-only vs real + synthetic training always scored on real held-out rows.
//!
//! Parts: [`load`] (input and groups), [`data`] (matrix, dataset), [`cv`] (folds, scaler),
//! [`classifiers`] (the eight, and which crate each comes from), [`grid`] (grids, parallel
//! search), [`metrics`], [`record`] (the JSON record and table), [`html`] (its page), [`cli`].

pub mod cli;
pub mod html;
pub mod load;
pub mod record;

/// The numeric kernels the evaluation runs (crate `moldops-learn`).
pub use moldops_learn::{classifiers, cv, data, grid, metrics};

use anyhow::{Result, bail};
use classifiers::Kind;
use data::Dataset;
use grid::GridName;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use record::{ClassifierResult, EvaluationRecord, GroupResult, ModeResult};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// What to evaluate and how.
#[derive(Debug, Clone)]
pub struct EvaluateConfig {
    /// The lake folder to read `etl_data` or `aug_data` from.
    pub lake: PathBuf,
    /// Which dataset to read (`--source`, default `auto`).
    pub source: load::Source,
    /// Folds requested (fewer when the rarer class is smaller, see [`cv::effective_folds`]).
    pub folds: usize,
    /// Seed of the fold shuffle and of every randomised classifier.
    pub seed: u64,
    /// Classifiers to grid-search, in this order.
    pub classifiers: Vec<Kind>,
    /// Which parameter grids to search.
    pub grid: GridName,
}

/// Runs the grid search of every classifier on `ds`; `bar` counts fits.
pub fn evaluate_group(ds: &Dataset, cfg: &EvaluateConfig, bar: &ProgressBar) -> GroupResult {
    let real = ds.real();
    let synthetic = ds.synthetic_rows();
    let (good, defective) = ds.class_counts();
    let mut group = GroupResult {
        name: ds.name.clone(),
        mold: ds.mold.clone(),
        real_rows: real.len(),
        defective,
        synthetic_rows: synthetic.len(),
        folds: 0,
        features: ds.features.clone(),
        dropped_features: ds.dropped_features.clone(),
        dropped_rows: ds.dropped.clone(),
        skipped: None,
        classifiers: Vec::new(),
    };
    if ds.features.is_empty() {
        group.skipped = Some("no usable feature column".into());
        return group;
    }
    let y_real: Vec<u8> = real.iter().map(|&i| ds.y[i]).collect();
    let folds = match cv::effective_folds(cfg.folds, good.min(defective))
        .and_then(|k| cv::stratified_folds(&y_real, k, cfg.seed))
    {
        Ok(f) => f,
        Err(e) => {
            group.skipped = Some(format!("{e:#}"));
            return group;
        }
    };
    group.folds = folds.len();
    let mut modes = vec![grid::splits(&real, &folds, &[])];
    if !synthetic.is_empty() {
        modes.push(grid::splits(&real, &folds, &synthetic));
    }
    let tick = || bar.inc(1);
    for &kind in &cfg.classifiers {
        let candidates = grid::grid(kind, cfg.grid);
        let mut out = ClassifierResult {
            classifier: kind,
            name: kind.display(),
            real: None,
            real_plus_synthetic: None,
            error: None,
        };
        for (m, splits) in modes.iter().enumerate() {
            let start = Instant::now();
            let results = grid::search(&candidates, &ds.x, &ds.y, splits, cfg.seed, &tick);
            let seconds = start.elapsed().as_secs_f64();
            match grid::best(&results) {
                Some(b) => {
                    let r = ModeResult::new(&results, b, seconds);
                    bar.suspend(|| {
                        tracing::info!(
                            group = %ds.name, classifier = kind.key(), synthetic = m == 1,
                            f1 = r.f1.mean, seconds, "grid search done"
                        )
                    });
                    if m == 0 { out.real = Some(r) } else { out.real_plus_synthetic = Some(r) }
                }
                None => {
                    let why =
                        results.iter().find_map(|r| r.folds.as_ref().err().cloned()).unwrap_or_default();
                    out.error = Some(format!("no candidate fitted on every fold (first error: {why})"));
                }
            }
        }
        group.classifiers.push(out);
    }
    group
}

/// How many fits `ds` will take (for the progress bar).
fn fits(ds: &Dataset, cfg: &EvaluateConfig) -> u64 {
    let modes = if ds.synthetic.iter().any(|&s| s) { 2 } else { 1 };
    let candidates: usize = cfg.classifiers.iter().map(|&k| grid::grid(k, cfg.grid).len()).sum();
    let (good, defective) = ds.class_counts();
    let folds = cv::effective_folds(cfg.folds, good.min(defective)).unwrap_or(0);
    (modes * candidates * folds) as u64
}

/// Reads the lake and evaluates every group; one record per machine.
pub fn run(cfg: &EvaluateConfig) -> Result<Vec<EvaluationRecord>> {
    let (df, source) = load::read_input(&cfg.lake, cfg.source)?;
    let datasets = load::datasets(&df)?;
    if datasets.iter().all(|d| d.real().is_empty()) {
        bail!("no labelled rows in {source} under {}", cfg.lake.display());
    }
    let total: u64 = datasets.iter().map(|d| fits(d, cfg)).sum();
    let bar = ProgressBar::with_draw_target(
        Some(total),
        if std::io::IsTerminal::is_terminal(&std::io::stderr()) {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        },
    );
    if let Ok(style) = ProgressStyle::with_template("{bar:40} {pos}/{len} fits {elapsed} (eta {eta})") {
        bar.set_style(style);
    }
    let created_at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let mut records: Vec<EvaluationRecord> = Vec::new();
    for ds in &datasets {
        tracing::info!(group = %ds.name, rows = ds.y.len(), features = ds.features.len(), "evaluating");
        let g = evaluate_group(ds, cfg, &bar);
        match records.iter_mut().find(|r| r.machine_id == ds.machine_id) {
            Some(r) => r.groups.push(g),
            None => records.push(EvaluationRecord {
                schema: record::SCHEMA,
                created_at: created_at.clone(),
                machine_id: ds.machine_id.clone(),
                source: source.to_string(),
                lake: cfg.lake.display().to_string(),
                grid: cfg.grid,
                folds_requested: cfg.folds,
                seed: cfg.seed,
                groups: vec![g],
            }),
        }
    }
    bar.finish_and_clear();
    Ok(records)
}

/// Where records go by default: `evaluations/` next to the lake folder.
pub fn default_out(lake: &Path) -> PathBuf {
    lake.parent().unwrap_or(Path::new(".")).join("evaluations")
}
