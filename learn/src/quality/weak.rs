//! Weak labels where no ground truth exists (the reference's `MDS_molding` + `customize`, fixed):
//! per production run of at least [`WeakConfig::min_run_shots`] shots, the features are
//! standardized on that run (time is not a feature), embedded in 2-D by classical [`mds`]
//! (landmark MDS for long runs), and the [`dbscan`] grid picks a one-cluster-plus-noise
//! labelling; noise is the presumed defect (1), the rest 0 — and all 0 when no candidate
//! qualifies, as in the reference. Shorter runs get no weak label (the reference dropped them
//! silently; here they stay in the data, unlabelled, and are counted).
//!
//! [`agreement`] scores the weak labels against ground truth where both exist.

use super::dbscan::{self, GridChoice, GridConfig};
use super::mds::{self, MdsConfig};
use super::stats::{Confusion, Standardizer};
use anyhow::Result;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Settings of the weak labelling.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WeakConfig {
    /// Runs with fewer shots get no weak label.
    pub min_run_shots: usize,
    /// Settings of the per-run MDS embedding.
    pub mds: MdsConfig,
    /// Candidate `eps` and `min_samples` values of the DBSCAN grid.
    pub grid: GridConfig,
}

impl Default for WeakConfig {
    fn default() -> Self {
        WeakConfig { min_run_shots: 30, mds: MdsConfig::default(), grid: GridConfig::default() }
    }
}

/// What happened to one run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunOutcome {
    /// Production run identifier, as given in `run_ids`.
    pub run_id: String,
    /// Rows of the run with all features finite (rows with a non-finite value are skipped).
    pub shots: usize,
    /// `labelled`, `no_candidate` (all 0) or `too_short` (no weak label).
    pub status: String,
    /// Whether the run was embedded by landmark MDS rather than exact MDS.
    pub landmark_mds: bool,
    /// The grid's choice, when one qualified.
    pub choice: Option<GridChoice>,
    /// Shots labelled 1.
    pub weak_defects: usize,
}

/// Weak labels of every row (`None`: not labelled) with their 2-D coordinates.
#[derive(Debug, Clone, Default)]
pub struct WeakLabels {
    /// Per input row: 1 (presumed defect), 0, or `None` (short run, or a non-finite value).
    pub labels: Vec<Option<u8>>,
    /// Per input row: its 2-D MDS coordinates, or `None` where `labels` is `None`.
    pub coords: Vec<Option<[f64; 2]>>,
    /// One outcome per run, in ascending order of run id.
    pub runs: Vec<RunOutcome>,
}

/// Labels `rows` (feature vectors) grouped by `run_ids`. `seed` drives landmark sampling.
pub fn label(rows: &[Vec<f64>], run_ids: &[String], cfg: &WeakConfig, seed: u64) -> Result<WeakLabels> {
    let mut out =
        WeakLabels { labels: vec![None; rows.len()], coords: vec![None; rows.len()], runs: Vec::new() };
    let mut runs: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (i, id) in run_ids.iter().enumerate() {
        if rows[i].iter().all(|v| v.is_finite()) {
            runs.entry(id.as_str()).or_default().push(i);
        }
    }
    for (run, idx) in runs {
        let mut outcome = RunOutcome {
            run_id: run.to_string(),
            shots: idx.len(),
            status: "too_short".into(),
            landmark_mds: false,
            choice: None,
            weak_defects: 0,
        };
        if idx.len() >= cfg.min_run_shots {
            let raw: Vec<Vec<f64>> = idx.iter().map(|&i| rows[i].clone()).collect();
            let z = Standardizer::fit(&raw).transform_all(&raw);
            let emb = mds::embed(&z, 2, &cfg.mds, seed)?;
            let points: Vec<[f64; 2]> = emb.coords.iter().map(|c| [c[0], c[1]]).collect();
            let choice = dbscan::grid(&points, &cfg.grid);
            for (k, &i) in idx.iter().enumerate() {
                let noise = choice.as_ref().is_some_and(|c| c.labels[k] == dbscan::NOISE);
                out.labels[i] = Some(u8::from(noise));
                out.coords[i] = Some(points[k]);
            }
            outcome.weak_defects = choice.as_ref().map_or(0, |c| c.noise);
            outcome.status = if choice.is_some() { "labelled" } else { "no_candidate" }.into();
            outcome.landmark_mds = emb.landmark;
            outcome.choice = choice;
        }
        out.runs.push(outcome);
    }
    Ok(out)
}

/// Weak labels scored against ground truth, over the rows that have both.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Agreement {
    /// Number of rows with both a weak label and ground truth.
    pub rows: usize,
    /// Weak labels (predicted) counted against ground truth.
    pub confusion: Confusion,
    /// Share of weak defects that are true defects; 0 when no row is weakly labelled 1.
    pub precision: f64,
    /// Share of true defects that are weakly labelled 1; 0 when there is no true defect.
    pub recall: f64,
    /// F1 of the weak defect labels against the truth, in [0, 1].
    pub f1: f64,
    /// Share of rows where weak label and truth agree.
    pub accuracy: f64,
}

/// Agreement of `weak` with `truth` (1.0 = defect); `None` when no row has both.
pub fn agreement(weak: &[Option<u8>], truth: &[Option<f64>]) -> Option<Agreement> {
    let (p, t): (Vec<bool>, Vec<bool>) = weak
        .iter()
        .zip(truth)
        .filter_map(|(w, t)| Some((w.as_ref()? == &1, crate::data::is_defect(*t.as_ref()?))))
        .unzip();
    if p.is_empty() {
        return None;
    }
    let c = Confusion::of(&p, &t);
    Some(Agreement {
        rows: p.len(),
        confusion: c,
        precision: c.precision(),
        recall: c.recall(),
        f1: c.f1(),
        accuracy: (c.tp + c.tn) as f64 / p.len() as f64,
    })
}
