//! `moldops-cloud train`: the training settings as flags ([`TrainArgs`], recorded in every
//! report) and the command's run: train, write and print the report.

use super::family::FamilyChoice;
use super::{report, run_training};
use crate::registry::cli::RegistryLocation;
use anyhow::Result;
use clap::Args;
use moldops_models::score::ScoreMode;
use serde::Serialize;
use std::path::PathBuf;

/// Settings of a training run (all flags have defaults).
#[derive(Debug, Clone, Args, Serialize)]
pub struct TrainArgs {
    /// Lake folder (default: <data-dir>/lake, else [lake] path of --config, else moldops-data/lake).
    #[arg(long)]
    pub lake: Option<PathBuf>,
    /// Config file to take the lake folder from.
    #[arg(long, env = "MOLDOPS_CLOUD_CONFIG")]
    #[serde(skip)]
    pub config: Option<PathBuf>,
    /// Where the registry is (`--registry`, `--data-dir`).
    #[command(flatten)]
    #[serde(skip)]
    pub loc: RegistryLocation,
    /// Private signing key file (see `models keygen`).
    #[arg(long, env = "MOLDOPS_SIGNING_KEY")]
    #[serde(skip)]
    pub signing_key: Option<PathBuf>,
    /// `--machine` (repeatable), `--shard I/N`: train only these machines' keys (fan-out over N
    /// runs at once; default: all).
    #[command(flatten)]
    #[serde(flatten)]
    pub select: crate::shard::MachineSelection,
    /// One model per (machine, mold) instead of per machine.
    #[arg(long)]
    pub by_mold: bool,
    /// Train only these model keys (`M1` or `M1/MOLD`, repeatable); a key with a mould trains
    /// per (machine, mould), as `--by-mold`.
    #[arg(long = "key")]
    pub keys: Vec<String>,
    /// Train the keys a lifecycle plan lists (`moldops-cloud lifecycle plan --out FILE`).
    #[arg(long)]
    #[serde(skip)]
    pub keys_from: Option<PathBuf>,
    /// Shots per window (W).
    #[arg(long, default_value_t = 16)]
    pub window: usize,
    /// Model families to fit: `auto` (the PCA monitor and the LSTM autoencoder, validation
    /// picks one per key), `pca` or `lstm_ae`.
    #[arg(long, value_enum, default_value_t = FamilyChoice::Auto)]
    pub family: FamilyChoice,
    /// PCA monitor: share of the variance its kept components explain.
    #[arg(long, default_value_t = 0.9)]
    pub pca_variance: f64,
    /// Encoder LSTM sizes (decoder mirrors them).
    #[arg(long, value_delimiter = ',', default_value = "16,4")]
    pub hidden: Vec<usize>,
    /// Most training epochs (early stopping may end sooner).
    #[arg(long, default_value_t = 100)]
    pub epochs: usize,
    /// Training windows per mini-batch.
    #[arg(long, default_value_t = 32)]
    pub batch_size: usize,
    /// Adam learning rate.
    #[arg(long, default_value_t = 1e-3)]
    pub learning_rate: f64,
    /// Early stopping: epochs without a better validation loss.
    #[arg(long, default_value_t = 10)]
    pub patience: usize,
    /// Seed of the initial weights, the batch order and the bootstrap resamples.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Let the LSTM encoder see the whole window, last shot included (default: the first W−1
    /// shots only, so the last one is predicted from those before it).
    #[arg(long)]
    pub no_predict_last: bool,
    /// Feed the LSTM-AE raw standardised windows (default: each window centred on the mean of
    /// its first W−1 shots, scaled by the spread of shots around that mean, so a run at a new
    /// operating point is not an anomaly but a sudden jump is).
    #[arg(long)]
    pub no_centre: bool,
    /// Robust centre: clip each context shot's deviation from the mean to ± this many
    /// (centred) standard deviations before averaging it in (0: plain mean).
    #[arg(long, default_value_t = 1.0)]
    pub centre_clip: f32,
    /// Window score: `last_squared` (the last shot's squared errors), `last` (its absolute
    /// errors) or `window` (absolute errors averaged over the window).
    #[arg(long, default_value = "last_squared")]
    #[serde(serialize_with = "ser_mode")]
    pub score_mode: ScoreMode,
    /// Share of each key's shots, earliest first, that is the training part.
    #[arg(long, default_value_t = 0.6)]
    pub train_frac: f64,
    /// Share of each key's shots (of all of them) that is validation, right after training; the rest is test.
    #[arg(long, default_value_t = 0.2)]
    pub val_frac: f64,
    /// Drop a feature missing in more than this share of training shots.
    #[arg(long, default_value_t = 0.5)]
    pub max_missing: f64,
    /// 1 − the false-alarm target: the threshold is conformal for at most `1 − quantile` false
    /// alarms on good validation windows (labelled defects may only raise it, by best F1).
    #[arg(long, default_value_t = 0.99)]
    pub quantile: f64,
    /// Choose the threshold on validation windows only (default: also on the training part's
    /// windows holding a defect, which training never fits on).
    #[arg(long)]
    pub val_only_threshold: bool,
    /// Defective windows (validation, plus the training part's unless --val-only-threshold)
    /// needed to choose the threshold by best F1.
    #[arg(long, default_value_t = 3)]
    pub min_val_defects: usize,
    /// Bootstrap resamples for the confidence intervals.
    #[arg(long, default_value_t = 1000)]
    pub bootstrap: usize,
    /// `--device`: where the networks train.
    #[command(flatten)]
    #[serde(flatten)]
    pub device: crate::config::DeviceArgs,
    /// Skip the baseline.
    #[arg(long)]
    pub no_baseline: bool,
    /// Train and evaluate only: no bundle, no registry entry.
    #[arg(long)]
    pub no_register: bool,
    /// Also write the JSON report to this file.
    #[arg(long)]
    #[serde(skip)]
    pub report: Option<PathBuf>,
    /// Also write the report as an HTML page (curves, scores over time) to this file.
    #[arg(long)]
    #[serde(skip)]
    pub html: Option<PathBuf>,
    /// Print the JSON report instead of the table.
    #[arg(long)]
    #[serde(skip)]
    pub json: bool,
}

fn ser_mode<S: serde::Serializer>(m: &ScoreMode, s: S) -> Result<S::Ok, S::Error> {
    m.serialize(s)
}

/// Runs the command: trains, prints the report, fails when no key could be trained.
pub fn run(args: TrainArgs) -> Result<()> {
    let report = run_training(&args)?;
    let json = serde_json::to_string_pretty(&report)?;
    if let Some(p) = &args.report {
        // Absolute, so a bare file name has a parent folder to sync.
        let p = std::path::absolute(p).unwrap_or_else(|_| p.clone());
        moldops_common::fs::write_atomic(&p, json.as_bytes())?;
    }
    if let Some(p) = &args.html {
        let p = std::path::absolute(p).unwrap_or_else(|_| p.clone());
        moldops_common::fs::write_atomic(&p, super::html::render(&report)?.as_bytes())?;
    }
    if args.json {
        println!("{json}");
    } else {
        print!("{}", report::table(&report));
    }
    // A shard with none of the keys trains nothing and succeeds; one whose keys all failed
    // to train fails like a whole run (so N shards that each had none cannot tell that the
    // fleet as a whole trained nothing: see docs/training.md).
    let empty_shard = report.keys.is_empty() && args.select.shard.is_some();
    anyhow::ensure!(
        empty_shard || report.keys.iter().any(|k| k.skipped.is_none()),
        "no model key could be trained (see the report)"
    );
    Ok(())
}
