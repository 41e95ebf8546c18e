//! Batch scoring (the original's `inference_dag`): scores `etl_data` with a bundle's model
//! through the edge's own inference code (tract), with the edge's windowing — per machine
//! (and mold, for a mold model), the last W shots of the same production run, oldest first,
//! missing values replaced by the feature's fill — so a shot the ETL keeps gets the score the
//! edge gave it (both through `moldops-scoring`). Results go to `scores/machine={m}/model={key}/part-v{version}.parquet`.

pub mod cli;

use crate::etl::read_etl;
use crate::lake::{self, write};
use anyhow::{Result, anyhow};
use moldops_scoring::history::fill;
use moldops_scoring::inference::{Backend, Model};
use moldops_shared::bundle::{Bundle, MODEL_FILE, Manifest};
use polars::prelude::*;
use serde::Serialize;
use std::collections::VecDeque;
use std::path::{Path, PathBuf};

/// Name of the dataset batch scores are written to.
pub const SCORES: &str = "scores";

/// One scored shot.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ScoredShot {
    /// Machine the shot was made on (the model key's).
    pub machine_id: String,
    /// Shot time (UTC ms; 0 when etl_data has none).
    pub ts_ms: i64,
    /// The machine's shot counter, when etl_data has it.
    pub shot_number: Option<u64>,
    /// Production run of the shot, when etl_data has it.
    pub run_id: Option<String>,
    /// Edge that sent the shot, when etl_data has it.
    pub edge_id: Option<String>,
    /// The shot record's seq in its edge's buffer, when etl_data has it.
    pub seq: Option<u64>,
    /// Anomaly score of the window ending at this shot (higher: more anomalous).
    pub score: f32,
    /// `score` is above the bundle's threshold.
    pub alarm: bool,
    /// The feature contributing most.
    pub top_feature: String,
}

/// What a batch run did.
#[derive(Debug, Clone, Serialize)]
pub struct BatchSummary {
    /// Registry id of the bundle's model.
    pub model_id: String,
    /// Version of the model within its key.
    pub version: u32,
    /// etl_data shots of the model's key: scored plus warming.
    pub rows: usize,
    /// Shots scored.
    pub scored: usize,
    /// Scored shots whose score is above the threshold.
    pub alarms: usize,
    /// Shots not scored because their run had fewer than W−1 shots before them (a window is
    /// the shot and the W−1 before it).
    pub warming: usize,
    /// The Parquet file written; `None` when no shot was scored.
    pub file: Option<PathBuf>,
}

/// Loads a bundle's model with tract, verifying it against `public_key` (`None`: a bundle
/// the registry has verified already).
pub fn load_model(bundle: &Bundle, public_key: Option<&[u8; 32]>) -> Result<Model> {
    let manifest = match public_key {
        Some(k) => bundle.verify(k),
        None => bundle.manifest_unverified(),
    }
    .map_err(|e| anyhow!("bundle refused: {e}"))?;
    let onnx = bundle.files.get(MODEL_FILE).ok_or_else(|| anyhow!("bundle has no {MODEL_FILE}"))?;
    Model::load(manifest, onnx, &Backend::tract())
}

/// Scores the rows of `df` (etl_data, sorted by machine and time) that belong to the model's key.
pub fn score_frame(df: &DataFrame, model: &mut Model) -> Result<(Vec<ScoredShot>, usize)> {
    let manifest: Manifest = model.manifest().clone();
    let key = &manifest.model_key;
    if df.height() == 0 {
        return Ok((vec![], 0));
    }
    let text = |name: &str| -> Result<Vec<Option<String>>> {
        match df.column(name) {
            Ok(c) => Ok(c.cast(&DataType::String)?.str()?.iter().map(|v| v.map(str::to_string)).collect()),
            Err(_) => Ok(vec![None; df.height()]),
        }
    };
    let uint = |name: &str| -> Result<Vec<Option<u64>>> {
        match df.column(name) {
            Ok(c) => Ok(c.cast(&DataType::UInt64)?.u64()?.iter().collect()),
            Err(_) => Ok(vec![None; df.height()]),
        }
    };
    let machines = text("machine_id")?;
    let molds = text("mold")?;
    let runs = text("run_id")?;
    let edges = text("edge_id")?;
    let shots = uint("shot_number")?;
    let seqs = uint("seq")?;
    let ts: Vec<Option<i64>> = df
        .column("ts")
        .map_err(|e| anyhow!("etl_data has no ts: {e}"))?
        .cast(&DataType::Int64)?
        .i64()?
        .iter()
        .collect();
    let features: Vec<Vec<Option<f64>>> = manifest
        .features
        .iter()
        .map(|f| match df.column(&f.name) {
            Ok(c) => Ok(c.cast(&DataType::Float64)?.f64()?.iter().collect()),
            Err(_) => Ok(vec![None; df.height()]),
        })
        .collect::<Result<_>>()?;
    let w = model.window();
    let f = manifest.features.len();
    let mut window: VecDeque<Vec<f32>> = VecDeque::with_capacity(w + 1);
    let mut current_run: Option<&str> = None;
    let (mut out, mut warming) = (Vec::new(), 0usize);
    let mut flat = Vec::with_capacity(w * f);
    for row in 0..df.height() {
        if machines[row].as_deref() != Some(key.machine_id.as_str()) {
            continue;
        }
        if key.mold.is_some() && molds[row] != key.mold {
            continue;
        }
        if runs[row].as_deref() != current_run {
            window.clear();
            current_run = runs[row].as_deref();
        }
        window.push_back(
            manifest.features.iter().enumerate().map(|(j, s)| fill(features[j][row], s.fill)).collect(),
        );
        if window.len() > w {
            window.pop_front();
        }
        if window.len() < w {
            warming += 1;
            continue;
        }
        flat.clear();
        window.iter().for_each(|r| flat.extend_from_slice(r));
        let o = model.score(&flat)?;
        let top = o
            .contributions
            .iter()
            .enumerate()
            .max_by(|a, b| a.1.total_cmp(b.1))
            .map(|(j, _)| manifest.features[j].name.clone())
            .unwrap_or_default();
        out.push(ScoredShot {
            machine_id: key.machine_id.clone(),
            ts_ms: ts[row].unwrap_or_default(),
            shot_number: shots[row],
            run_id: runs[row].clone(),
            edge_id: edges[row].clone(),
            seq: seqs[row],
            score: o.score,
            alarm: o.score > manifest.threshold,
            top_feature: top,
        });
    }
    Ok((out, warming))
}

/// Scores the lake's etl_data with `model` and writes the results to the `scores` dataset.
pub fn score_lake(lake_dir: &Path, model: &mut Model) -> Result<BatchSummary> {
    let df = read_etl(lake_dir)?;
    let (scored, warming) = score_frame(&df, model)?;
    let m = model.manifest();
    let mut summary = BatchSummary {
        model_id: m.model_id.clone(),
        version: m.version,
        rows: scored.len() + warming,
        scored: scored.len(),
        alarms: scored.iter().filter(|s| s.alarm).count(),
        warming,
        file: None,
    };
    if scored.is_empty() {
        return Ok(summary);
    }
    let mut frame = scores_frame(&scored, m)?;
    let key = m.model_key.label().replace('/', "~");
    let dir = lake::machine_dir(lake_dir, SCORES, &m.model_key.machine_id)
        .join(format!("model={}", lake::escape(&key)));
    let dirs = write::prepare_dirs(lake_dir, std::iter::once(dir.as_path()))?;
    let name = format!("part-v{}.parquet", m.version);
    write::write_parquet(&dir, &name, &mut frame)?;
    write::sync_dirs(&dirs)?;
    summary.file = Some(dir.join(name));
    Ok(summary)
}

fn scores_frame(rows: &[ScoredShot], m: &Manifest) -> Result<DataFrame> {
    let n = rows.len();
    let ts = Int64Chunked::from_iter_values("ts".into(), rows.iter().map(|r| r.ts_ms))
        .into_datetime(TimeUnit::Milliseconds, Some(TimeZone::UTC));
    let columns = vec![
        Column::new("machine_id".into(), rows.iter().map(|r| r.machine_id.as_str()).collect::<Vec<_>>()),
        ts.into_column(),
        Column::new("shot_number".into(), rows.iter().map(|r| r.shot_number).collect::<Vec<_>>()),
        Column::new("run_id".into(), rows.iter().map(|r| r.run_id.as_deref()).collect::<Vec<_>>()),
        Column::new("edge_id".into(), rows.iter().map(|r| r.edge_id.as_deref()).collect::<Vec<_>>()),
        Column::new("seq".into(), rows.iter().map(|r| r.seq).collect::<Vec<_>>()),
        Column::new("model_id".into(), vec![m.model_id.as_str(); n]),
        Column::new("version".into(), vec![m.version; n]),
        Column::new("score".into(), rows.iter().map(|r| r.score).collect::<Vec<_>>()),
        Column::new("threshold".into(), vec![m.threshold; n]),
        Column::new("alarm".into(), rows.iter().map(|r| r.alarm).collect::<Vec<_>>()),
        Column::new("top_feature".into(), rows.iter().map(|r| r.top_feature.as_str()).collect::<Vec<_>>()),
    ];
    DataFrame::new(n, columns).map_err(|e| anyhow!("building the scores frame: {e}"))
}
