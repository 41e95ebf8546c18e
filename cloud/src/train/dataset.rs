//! From `etl_data` to what the models train and are judged on: one time-ordered series of
//! shots per model key, the features kept for it, and windows of W consecutive shots within
//! one production run, split by time into train / validation / test.
//!
//! - **Features.** Every etl_data column after the id columns, in etl_data's (the shared)
//!   order. Judged on the training part only: a feature missing in more than `max_missing` of
//!   its shots, or constant there (std ≤ 1e-9 · max(1, |mean|)), is dropped, with the reason
//!   kept for the report. A missing value of a kept feature is filled with its training mean
//!   (the manifest's `fill`, which the edge uses too).
//! - **Windows.** Shots `e−W+1 ..= e` of one run; labelled by the last shot `e` (the edge
//!   scores each new shot with the W−1 before it). A window is *clean* when none of its shots is
//!   labelled defective (label 0 or no label).
//! - **Split.** The key's shots in time order: the first `train_frac` are training, the next
//!   `val_frac` validation, the rest test; a window belongs to the part of its last shot, and
//!   the W − 1 windows that would reach back into the part before are left out (a gap: no
//!   validation or test window shares a shot with the part before it). The model trains on
//!   clean training windows; validation chooses the epoch, the threshold and the family; test
//!   is judged once.

use anyhow::{Context, Result, bail};
use moldops_models::data::Windows;
use moldops_shared::bundle::ModelKey;
use polars::prelude::{DataFrame, DataType};
use serde::Serialize;

/// How windows and splits are made.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DatasetConfig {
    /// Shots per window (W, > 0).
    pub window: usize,
    /// Share of the shots, in time order, that is training (> 0).
    pub train_frac: f64,
    /// Share that is validation (≥ 0; `train_frac + val_frac` must stay below 1 to leave a test part).
    pub val_frac: f64,
    /// Drop a feature missing in more than this share (0..=1) of the training shots.
    pub max_missing: f64,
    /// One key per (machine, mold) instead of per machine.
    pub by_mold: bool,
}

/// The kind of a defective shot whose kind etl_data does not record.
pub const UNSPECIFIED_KIND: &str = "unspecified";

/// One shot of a key's series.
#[derive(Debug, Clone, PartialEq)]
pub struct Shot {
    /// Shot time (UTC ms).
    pub ts_ms: i64,
    /// Production run the shot belongs to (empty when etl_data has none); windows never span two.
    pub run_id: String,
    /// 1 defective, 0 good, None unlabelled.
    pub label: Option<u8>,
    /// Defect kind of a defective shot (etl_data's `defect`, e.g. `short_shot`); None when the
    /// shot is not defective or its kind was not recorded.
    pub defect: Option<String>,
    /// One value per feature of the series (`feature_names` order), NaN when missing.
    pub values: Vec<f64>,
}

/// A key's shots in time order, over all etl_data feature columns.
#[derive(Debug, Clone)]
pub struct Series {
    /// The model key: machine, and mold when training by mold.
    pub key: ModelKey,
    /// Every etl_data feature column (all but the id columns and `ts_ms`), in etl_data's order.
    pub feature_names: Vec<String>,
    /// The key's shots, sorted by time.
    pub shots: Vec<Shot>,
}

/// A dropped feature and why.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Dropped {
    /// Feature (etl_data column) name.
    pub feature: String,
    /// Why: missing in too many training shots, or constant there.
    pub reason: String,
}

/// Windows of one split with their labels and where they end.
#[derive(Debug, Clone)]
pub struct Part {
    /// Raw (filled, not standardised) values.
    pub windows: Windows,
    /// Label of each window's last shot.
    pub labels: Vec<Option<u8>>,
    /// Defect kind of each window's last shot when it is defective ([`UNSPECIFIED_KIND`] when
    /// etl_data does not say), else None.
    pub kinds: Vec<Option<String>>,
    /// Whether no shot of the window is defective.
    pub clean: Vec<bool>,
    /// Time of each window's last shot (UTC ms).
    pub end_ts_ms: Vec<i64>,
}

impl Part {
    /// The clean windows only.
    pub fn clean_windows(&self) -> Windows {
        let idx: Vec<usize> = (0..self.windows.n).filter(|&i| self.clean[i]).collect();
        self.windows.select(&idx)
    }
}

/// Everything one key trains and is judged on.
#[derive(Debug, Clone)]
pub struct Dataset {
    /// The model key.
    pub key: ModelKey,
    /// Kept features, in etl_data's order (the bundle's feature list).
    pub features: Vec<String>,
    /// Training mean of each kept feature (fill value for missing readings).
    pub fill: Vec<f32>,
    /// Features dropped, with the reason.
    pub dropped: Vec<Dropped>,
    /// Shots of the key, all parts.
    pub shots: usize,
    /// Shots in the training part (the first `train_frac` of them, rounded).
    pub train_shots: usize,
    /// Filled values of the training part's shots not labelled defective (`[rows, F]`), for
    /// the standardisation.
    pub train_rows: Vec<f32>,
    /// Training windows (the model fits on the clean ones).
    pub train: Part,
    /// Validation windows: choose the best epoch and the threshold.
    pub val: Part,
    /// Test windows: judged once.
    pub test: Part,
}

fn strings(df: &DataFrame, name: &str) -> Result<Vec<Option<String>>> {
    let c = df.column(name).with_context(|| format!("etl_data has no column {name}"))?;
    let c = c.cast(&DataType::String).with_context(|| format!("etl_data column {name} as text"))?;
    Ok(c.str()?.iter().map(|v| v.map(str::to_string)).collect())
}

/// Splits etl_data into one series per key (machine, or machine and mold), sorted by key.
pub fn series(df: &DataFrame, by_mold: bool) -> Result<Vec<Series>> {
    if df.height() == 0 {
        bail!("etl_data is empty: run `moldops-cloud etl` first");
    }
    let ids = crate::etl::ID_COLUMNS;
    let feature_names: Vec<String> = df
        .get_column_names()
        .iter()
        .map(|c| c.to_string())
        .filter(|c| !ids.contains(&c.as_str()) && c != "ts_ms")
        .collect();
    let machines = strings(df, "machine_id")?;
    let molds = strings(df, "mold")?;
    let runs = strings(df, "run_id")?;
    // Older lakes and imported tables may have no defect kinds: every defect is then unspecified.
    let defects = if df.column("defect").is_ok() { strings(df, "defect")? } else { vec![None; df.height()] };
    let ts: Vec<Option<i64>> =
        df.column("ts").context("etl_data has no ts")?.cast(&DataType::Int64)?.i64()?.iter().collect();
    let labels: Vec<Option<f64>> = df
        .column("label")
        .context("etl_data has no label")?
        .cast(&DataType::Float64)?
        .f64()?
        .iter()
        .collect();
    let mut columns = Vec::with_capacity(feature_names.len());
    for n in &feature_names {
        let c = df
            .column(n)?
            .cast(&DataType::Float64)
            .with_context(|| format!("etl_data column {n} as a number"))?;
        columns.push(c.f64()?.iter().map(|v| v.unwrap_or(f64::NAN)).collect::<Vec<f64>>());
    }
    let mut by_key: std::collections::BTreeMap<ModelKey, Vec<Shot>> = Default::default();
    for i in 0..df.height() {
        let machine = machines[i].clone().with_context(|| format!("etl_data row {i}: no machine_id"))?;
        let ts_ms = ts[i].with_context(|| format!("etl_data row {i}: no ts"))?;
        let key = ModelKey { machine_id: machine, mold: if by_mold { molds[i].clone() } else { None } };
        let label = labels[i].filter(|v| v.is_finite()).map(|v| u8::from(moldops_learn::data::is_defect(v)));
        let values = columns.iter().map(|c| c[i]).collect();
        let run_id = runs[i].clone().unwrap_or_default();
        let defect = defects[i].clone().filter(|d| label == Some(1) && !d.is_empty() && d != "none");
        by_key.entry(key).or_default().push(Shot { ts_ms, run_id, label, defect, values });
    }
    Ok(by_key
        .into_iter()
        .map(|(key, mut shots)| {
            shots.sort_by_key(|s| s.ts_ms);
            Series { key, feature_names: feature_names.clone(), shots }
        })
        .collect())
}

/// Feature selection, fill, windows and split of one series.
pub fn build(series: &Series, cfg: &DatasetConfig) -> Result<Dataset> {
    let n = series.shots.len();
    let w = cfg.window;
    anyhow::ensure!(w > 0, "window must be > 0");
    anyhow::ensure!(
        cfg.train_frac > 0.0 && cfg.val_frac >= 0.0 && cfg.train_frac + cfg.val_frac < 1.0,
        "train_frac {} and val_frac {} must leave a test part",
        cfg.train_frac,
        cfg.val_frac
    );
    let train_end = ((n as f64) * cfg.train_frac).round() as usize;
    let val_end = ((n as f64) * (cfg.train_frac + cfg.val_frac)).round() as usize;
    let (keep, fill, dropped) = select_features(series, train_end, cfg.max_missing);
    if keep.is_empty() {
        bail!("{}: no usable feature in the training part ({} shots)", series.key.label(), train_end);
    }
    let f = keep.len();
    let row = |s: &Shot| -> Vec<f32> {
        keep.iter()
            .zip(&fill)
            .map(|(&j, &m)| {
                let v = s.values[j];
                if v.is_finite() { v as f32 } else { m }
            })
            .collect()
    };
    let rows: Vec<Vec<f32>> = series.shots.iter().map(row).collect();
    let mut parts = [new_part(w, f), new_part(w, f), new_part(w, f)];
    let mut run_start = 0;
    for e in 0..n {
        if e > 0 && series.shots[e].run_id != series.shots[e - 1].run_id {
            run_start = e;
        }
        if e + 1 - run_start < w {
            continue;
        }
        let start = e + 1 - w;
        let (which, part_start) = if e < train_end {
            (0, 0)
        } else if e < val_end {
            (1, train_end)
        } else {
            (2, val_end)
        };
        if start < part_start {
            // The gap: a window that reaches back into the part before would share shots
            // with what was fitted on (or chosen on) there.
            continue;
        }
        let p = &mut parts[which];
        for r in &rows[start..=e] {
            p.windows.data.extend_from_slice(r);
        }
        p.windows.n += 1;
        p.labels.push(series.shots[e].label);
        let last = &series.shots[e];
        p.kinds.push(
            (last.label == Some(1)).then(|| last.defect.clone().unwrap_or_else(|| UNSPECIFIED_KIND.into())),
        );
        p.clean.push(series.shots[start..=e].iter().all(|s| s.label != Some(1)));
        p.end_ts_ms.push(series.shots[e].ts_ms);
    }
    let [train, val, test] = parts;
    let train_rows = rows[..train_end.min(n)]
        .iter()
        .zip(&series.shots)
        .filter(|(_, s)| s.label != Some(1))
        .flat_map(|(r, _)| r.iter().copied())
        .collect();
    Ok(Dataset {
        train_rows,
        key: series.key.clone(),
        features: keep.iter().map(|&j| series.feature_names[j].clone()).collect(),
        fill,
        dropped,
        shots: n,
        train_shots: train_end,
        train,
        val,
        test,
    })
}

fn new_part(w: usize, f: usize) -> Part {
    Part {
        windows: Windows::empty(w, f),
        labels: Vec::new(),
        kinds: Vec::new(),
        clean: Vec::new(),
        end_ts_ms: Vec::new(),
    }
}

/// Indices of kept features, their training means, and the dropped ones.
fn select_features(
    series: &Series,
    train_end: usize,
    max_missing: f64,
) -> (Vec<usize>, Vec<f32>, Vec<Dropped>) {
    let train = &series.shots[..train_end.min(series.shots.len())];
    let (mut keep, mut fill, mut dropped) = (Vec::new(), Vec::new(), Vec::new());
    for (j, name) in series.feature_names.iter().enumerate() {
        let vals: Vec<f64> = train.iter().map(|s| s.values[j]).filter(|v| v.is_finite()).collect();
        let missing = 1.0 - vals.len() as f64 / train.len().max(1) as f64;
        if vals.is_empty() || missing > max_missing {
            dropped.push(Dropped {
                feature: name.clone(),
                reason: format!("missing in {:.0}% of training shots", missing * 100.0),
            });
            continue;
        }
        let mean = vals.iter().sum::<f64>() / vals.len() as f64;
        let var = vals.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / vals.len() as f64;
        if var.sqrt() <= 1e-9 * mean.abs().max(1.0) {
            dropped.push(Dropped {
                feature: name.clone(),
                reason: format!("constant ({mean}) in training shots"),
            });
            continue;
        }
        keep.push(j);
        fill.push(mean as f32);
    }
    (keep, fill, dropped)
}
