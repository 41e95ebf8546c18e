//! One training run over all keys: dataset, the two models, thresholds, evaluation, export,
//! parity check and registration.

use super::TrainArgs;
use super::dataset::{self, Dataset, DatasetConfig, Dropped};
use super::metrics::{self, Evaluation, ThresholdChoice};
use super::snapshot::{DataSnapshot, snapshot};
use crate::registry::{Lineage, NewVersion, Registry, keys};
use anyhow::{Context, Result};
use moldops_models::autoencoder::Autoencoder;
use moldops_models::data::{Normalizer, Windows};
use moldops_models::dense_ae::DenseAeConfig;
use moldops_models::lstm_ae::LstmAeConfig;
use moldops_models::score::{self, ScoreMode, Scores};
use moldops_models::train::{EpochLog, TrainConfig, fit};
use moldops_shared::bundle::{FeatureSpec, MODEL_FILE, Manifest, ModelKey, ScoreStats};
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The original's fixed threshold (there on min–max scaled MAE; here on standardised MAE).
pub(super) const ORIGINAL_THRESHOLD: f32 = 0.1;
/// Largest |tract − burn| / max(1, |burn|) accepted after export.
pub(super) const PARITY_TOLERANCE: f32 = 1e-4;
/// Fewest clean training windows a key needs.
pub(super) const MIN_TRAIN_WINDOWS: usize = 8;

/// One model's result on one key.
#[derive(Debug, Clone, Serialize)]
pub struct ModelOutcome {
    pub kind: String,
    pub epochs_run: usize,
    pub best_epoch: usize,
    pub stopped_early: bool,
    pub train_seconds: f64,
    pub history: Vec<EpochLog>,
    pub threshold: ThresholdChoice,
    /// Test windows at the chosen threshold.
    pub test: Option<Evaluation>,
    /// Test windows at the original's fixed 0.1.
    pub test_fixed_0_1: Option<Evaluation>,
    pub validation_scores: ScoreStats,
    /// Labelled test windows as (score / threshold, label), for the pooled summary.
    #[serde(skip)]
    pub test_relative: Vec<(f32, u8)>,
}

/// Test windows of all trained keys together, each flagged at its own key's threshold;
/// PR-AUC and ROC-AUC rank `score / threshold`.
#[derive(Debug, Clone, Serialize)]
pub struct Pooled {
    pub lstm_ae: Option<Evaluation>,
    pub baseline: Option<Evaluation>,
}

/// Result for one key.
#[derive(Debug, Clone, Serialize)]
pub struct KeyOutcome {
    /// The model key: machine, and mold with `--by-mold`.
    pub key: ModelKey,
    /// Why the key was not trained, if it was not.
    pub skipped: Option<String>,
    /// Shots of the key in etl_data, all parts.
    pub shots: usize,
    /// Features kept for the model, in etl_data's order.
    pub features: Vec<String>,
    /// Features dropped on the training part (too often missing, or constant), with the reason.
    pub dropped_features: Vec<Dropped>,
    /// Windows per part: train (clean), validation, test; and the defective ones among them.
    pub windows: BTreeMap<String, usize>,
    /// The LSTM autoencoder's training and evaluation (the candidate); `None` when skipped.
    pub lstm_ae: Option<ModelOutcome>,
    /// The per-shot dense autoencoder baseline's; `None` when skipped or `--no-baseline`.
    pub baseline: Option<ModelOutcome>,
    /// Largest |tract − burn| / max(1, |burn|) over score and contributions on validation
    /// windows (what [`PARITY_TOLERANCE`] bounds).
    pub onnx_parity_max_diff: Option<f32>,
    /// Id of the etl_data trained on: sha256 over the list of the machine's files with their sha256s.
    pub data_snapshot: Option<String>,
    /// Registered version and its bundle folder.
    pub registered: Option<(u32, PathBuf)>,
    /// Targets: ROC-AUC ≥ 0.95, F1 ≥ 0.8, better than the baseline (on test).
    pub targets: BTreeMap<String, bool>,
}

/// The whole run.
#[derive(Debug, Clone, Serialize)]
pub struct TrainReport {
    /// Lake folder whose etl_data was read.
    pub lake: PathBuf,
    /// Code version that trained ([`super::code_version`]).
    pub code_version: String,
    /// When the run ended (UTC, RFC 3339 with milliseconds).
    pub created_at: String,
    /// The run's settings (`--config`, registry, signing key, `--report` and `--json` left out).
    pub settings: TrainArgs,
    /// One entry per model key, trained or skipped, in key order.
    pub keys: Vec<KeyOutcome>,
    /// Test windows of all trained keys together, LSTM-AE and baseline.
    pub pooled: Pooled,
    /// Wall-clock duration of the run (s).
    pub seconds: f64,
}

fn lake_dir(args: &TrainArgs) -> Result<PathBuf> {
    if let Some(l) = &args.lake {
        return Ok(std::path::absolute(l).unwrap_or_else(|_| l.clone()));
    }
    if let Some(d) = &args.loc.data_dir {
        return Ok(d.join("lake"));
    }
    Ok(crate::config::lake_path(args.config.as_deref(), None)?)
}

/// Trains every key of the lake's etl_data; see the module doc.
pub fn run_training(args: &TrainArgs) -> Result<TrainReport> {
    let started = std::time::Instant::now();
    let lake = lake_dir(args)?;
    let device = moldops_models::device::device(&args.backend)?;
    let signing = if args.no_register {
        None
    } else {
        let path = keys::key_path(args.signing_key.as_deref())?;
        Some(keys::load_signing_key(&path)?)
    };
    let registry = if args.no_register { None } else { Some(Registry::open(&args.loc.path())?) };
    let df =
        crate::etl::read_etl(&lake).with_context(|| format!("reading etl_data of {}", lake.display()))?;
    let all = dataset::series(&df, args.by_mold)?;
    let cfg = DatasetConfig {
        window: args.window,
        train_frac: args.train_frac,
        val_frac: args.val_frac,
        max_missing: args.max_missing,
        by_mold: args.by_mold,
    };
    let mut keys_out = Vec::new();
    for series in all.iter().filter(|s| args.machine.is_empty() || args.machine.contains(&s.key.machine_id)) {
        let ds = dataset::build(series, &cfg)?;
        let mut out = key_outcome(&ds);
        let clean = ds.train.clean.iter().filter(|c| **c).count();
        if clean < MIN_TRAIN_WINDOWS {
            out.skipped = Some(format!("{clean} clean training windows (need {MIN_TRAIN_WINDOWS})"));
            tracing::warn!(key = %ds.key.label(), reason = out.skipped.as_deref(), "skipped");
            keys_out.push(out);
            continue;
        }
        train_key(args, &lake, &ds, &device, &mut out, registry.as_ref().zip(signing.as_ref()))?;
        keys_out.push(out);
    }
    anyhow::ensure!(
        !keys_out.is_empty(),
        "etl_data of {} has no shots of the machines asked for",
        lake.display()
    );
    let pool = |pick: fn(&KeyOutcome) -> Option<&ModelOutcome>| {
        let (s, l): (Vec<f32>, Vec<u8>) =
            keys_out.iter().filter_map(pick).flat_map(|m| m.test_relative.iter().copied()).unzip();
        (!s.is_empty()).then(|| metrics::evaluate(&s, &l, 1.0, args.bootstrap, args.seed ^ 3))
    };
    let pooled = Pooled { lstm_ae: pool(|k| k.lstm_ae.as_ref()), baseline: pool(|k| k.baseline.as_ref()) };
    Ok(TrainReport {
        pooled,
        lake,
        code_version: super::code_version(),
        created_at: crate::registry::now_rfc3339(),
        settings: args.clone(),
        keys: keys_out,
        seconds: started.elapsed().as_secs_f64(),
    })
}

fn key_outcome(ds: &Dataset) -> KeyOutcome {
    let defects = |p: &dataset::Part| p.labels.iter().filter(|l| **l == Some(1)).count();
    let windows = BTreeMap::from([
        ("train_clean".to_string(), ds.train.clean.iter().filter(|c| **c).count()),
        ("validation".to_string(), ds.val.windows.n),
        ("validation_defective".to_string(), defects(&ds.val)),
        ("test".to_string(), ds.test.windows.n),
        ("test_defective".to_string(), defects(&ds.test)),
    ]);
    KeyOutcome {
        key: ds.key.clone(),
        skipped: None,
        shots: ds.shots,
        features: ds.features.clone(),
        dropped_features: ds.dropped.clone(),
        windows,
        lstm_ae: None,
        baseline: None,
        onnx_parity_max_diff: None,
        data_snapshot: None,
        registered: None,
        targets: BTreeMap::new(),
    }
}

/// Standardised parts of a dataset.
struct Prepared {
    norm: Normalizer,
    train: Windows,
    val_clean: Windows,
    val: Windows,
    test: Windows,
    /// The training part's windows with a defective shot: never fitted on, so their scores
    /// are as honest as validation's; they join validation when the threshold is chosen.
    held: Windows,
    held_labels: Vec<Option<u8>>,
}

impl Prepared {
    fn new(ds: &Dataset, norm: Normalizer) -> Self {
        let held_idx: Vec<usize> = (0..ds.train.windows.n).filter(|&i| !ds.train.clean[i]).collect();
        Prepared {
            train: norm.apply(&ds.train.clean_windows()),
            val_clean: norm.apply(&ds.val.clean_windows()),
            val: norm.apply(&ds.val.windows),
            test: norm.apply(&ds.test.windows),
            held: norm.apply(&ds.train.windows.select(&held_idx)),
            held_labels: held_idx.iter().map(|&i| ds.train.labels[i]).collect(),
            norm,
        }
    }
}

/// Trains, checks and (optionally) registers one key's candidate, in phases: fit both
/// models, export and check parity, then register with lineage.
fn train_key(
    args: &TrainArgs,
    lake: &Path,
    ds: &Dataset,
    device: &moldops_models::device::Device,
    out: &mut KeyOutcome,
    register: Option<(&Registry, &[u8; 32])>,
) -> Result<()> {
    let champion = fit_models(args, ds, device, out)?;
    let onnx = export_checked(args, ds, &champion, device, out)?;
    targets(out, &champion.outcome);
    out.lstm_ae = Some(champion.outcome.clone());
    let snap = snapshot(lake, &ds.key.machine_id)?;
    out.data_snapshot = Some(snap.id.clone());
    if let Some((reg, seed)) = register {
        let candidate = Candidate { champion: &champion, onnx, data: snap };
        register_candidate(args, lake, ds, candidate, out, reg, seed)?;
    }
    Ok(())
}

/// The LSTM autoencoder that becomes the candidate, with what its bundle needs.
struct Champion {
    trained: moldops_models::train::Trained<moldops_models::lstm_ae::LstmAe>,
    cfg: LstmAeConfig,
    train: TrainConfig,
    norm: Normalizer,
    /// Its scores, threshold and evaluation.
    outcome: ModelOutcome,
}

/// Fits the LSTM autoencoder (and, unless turned off, the per-shot dense baseline, whose
/// outcome goes into `out.baseline`).
fn fit_models(
    args: &TrainArgs,
    ds: &Dataset,
    device: &moldops_models::device::Device,
    out: &mut KeyOutcome,
) -> Result<Champion> {
    let label = ds.key.label();
    let f = ds.features.len();
    let centre = !args.no_centre;
    let global = Normalizer::fit(&ds.train_rows, f);
    let p = if centre {
        Prepared::new(ds, Normalizer::fit_centred(&ds.train.clean_windows()))
    } else {
        Prepared::new(ds, global.clone())
    };
    let tc = TrainConfig {
        epochs: args.epochs,
        batch_size: args.batch_size,
        learning_rate: args.learning_rate,
        patience: args.patience,
        seed: args.seed,
    };
    let cfg = LstmAeConfig {
        features: f,
        encoder: args.hidden.clone(),
        predict_last: !args.no_predict_last,
        centre,
        centre_clip: args.centre_clip,
    };
    let lstm =
        fit(cfg.init(args.seed, device)?, &p.train, &p.val_clean, &tc, device, &format!("{label} lstm_ae"))?;
    let outcome = judge(args, ds, &p, &lstm.model, "lstm_ae", &lstm, device)?;
    if !args.no_baseline {
        // The per-shot baseline keeps the plain standardisation.
        let p = Prepared::new(ds, global);
        let dense = fit(
            DenseAeConfig::new(f).init(args.seed, device)?,
            &p.train,
            &p.val_clean,
            &tc,
            device,
            &format!("{label} dense_ae"),
        )?;
        out.baseline = Some(judge(args, ds, &p, &dense.model, "dense_ae", &dense, device)?);
    }
    Ok(Champion { trained: lstm, cfg, train: tc, norm: p.norm, outcome })
}

/// Exports the champion to ONNX and checks that tract scores it as burn does.
fn export_checked(
    args: &TrainArgs,
    ds: &Dataset,
    champion: &Champion,
    device: &moldops_models::device::Device,
    out: &mut KeyOutcome,
) -> Result<Vec<u8>> {
    let model = &champion.trained.model;
    let onnx = moldops_models::onnx::export_lstm_ae(model, &champion.norm, args.window, args.score_mode)?;
    let raw_val = if ds.val.windows.n > 0 { &ds.val.windows } else { &ds.train.windows };
    let sample = raw_val.select(&(0..raw_val.n.min(128)).collect::<Vec<_>>());
    let burn_scores = score::score(model, &champion.norm.apply(&sample), args.score_mode, 256, device)?;
    let tract = moldops_models::onnx::tract_scores(&onnx, &sample)?;
    // Squared errors of a far-off shot reach tens to hundreds, where f32 rounding alone
    // exceeds 1e-4: the check is relative above 1 (|tract − burn| ≤ 1e-4 · max(1, |burn|)).
    let diff = max_diff(&burn_scores, &tract, |b| b.abs().max(1.0));
    out.onnx_parity_max_diff = Some(diff);
    anyhow::ensure!(
        diff <= PARITY_TOLERANCE,
        "{}: exported model differs from burn by {diff} (relative above 1; > {PARITY_TOLERANCE})",
        ds.key.label()
    );
    Ok(onnx)
}

/// What gets registered for one key: the champion, its ONNX bytes and the data it saw.
struct Candidate<'a> {
    champion: &'a Champion,
    onnx: Vec<u8>,
    data: DataSnapshot,
}

/// Signs and registers the candidate with its manifest, metrics and lineage.
fn register_candidate(
    args: &TrainArgs,
    lake: &Path,
    ds: &Dataset,
    c: Candidate<'_>,
    out: &mut KeyOutcome,
    reg: &Registry,
    seed: &[u8; 32],
) -> Result<()> {
    let ch = c.champion;
    let params = serde_json::json!({
        "architecture": ch.cfg,
        "train": ch.train,
        "window": args.window,
        "score_mode": args.score_mode,
        "split": {"train_frac": args.train_frac, "val_frac": args.val_frac},
        "max_missing": args.max_missing,
        "dropped_features": ds.dropped,
        "normalizer": ch.norm,
        "threshold": ch.outcome.threshold,
        "best_epoch": ch.trained.best_epoch,
    });
    let m = out.lstm_ae.as_ref().and_then(|o| o.test.as_ref());
    let metrics = serde_json::json!({
        "roc_auc": m.and_then(|e| e.roc_auc.value),
        "pr_auc": m.and_then(|e| e.pr_auc.value),
        "f1": m.and_then(|e| e.f1.value),
        "precision": m.and_then(|e| e.precision.value),
        "recall": m.and_then(|e| e.recall.value),
        "test": m,
        "baseline_test": out.baseline.as_ref().and_then(|b| b.test.as_ref()),
    });
    let manifest = Manifest {
        schema: moldops_shared::bundle::MANIFEST_SCHEMA,
        model_id: String::new(),
        version: 0,
        model_key: ds.key.clone(),
        kind: "lstm_ae".into(),
        features: ds
            .features
            .iter()
            .zip(&ds.fill)
            .map(|(n, &fill)| FeatureSpec { name: n.clone(), unit: None, fill })
            .collect(),
        window: args.window as u32,
        tolerance_ms: join_tolerance(lake, &ds.key.machine_id)?,
        threshold: ch.outcome.threshold.threshold,
        validation_scores: ch.outcome.validation_scores.clone(),
        data_snapshot: c.data.id.clone(),
        code_version: super::code_version(),
        params: params.clone(),
        metrics: metrics.clone(),
        created_at: crate::registry::now_rfc3339(),
        files: Vec::new(),
    };
    let new = NewVersion {
        manifest,
        files: BTreeMap::from([(MODEL_FILE.to_string(), c.onnx)]),
        metrics,
        lineage: Lineage {
            data_snapshot: c.data.id,
            data_files: c.data.files,
            params,
            code_version: super::code_version(),
        },
        report: Some(serde_json::to_value(&*out)?),
    };
    let info = reg.register(new, seed)?;
    tracing::info!(key = %ds.key.label(), version = info.record.version, "registered candidate");
    out.registered = Some((info.record.version, info.bundle_dir));
    Ok(())
}

/// The join tolerance the ETL recorded for a machine (the bundle's scorer joins the same way).
fn join_tolerance(lake: &Path, machine_id: &str) -> Result<i64> {
    Ok(match crate::etl::machine_tolerance(lake, machine_id)? {
        Some(t) => t.ms,
        None => {
            tracing::warn!(
                machine = %machine_id,
                "the ETL state records no join tolerance for this machine (etl_data from an older \
                 version?): the bundle says the old default; rerun `moldops-cloud etl` to record it"
            );
            moldops_shared::features::DEFAULT_TOLERANCE_MS
        }
    })
}

/// Scores, threshold and evaluation of one trained model.
fn judge<M: Autoencoder>(
    args: &TrainArgs,
    ds: &Dataset,
    p: &Prepared,
    model: &M,
    kind: &str,
    trained: &moldops_models::train::Trained<M>,
    device: &moldops_models::device::Device,
) -> Result<ModelOutcome> {
    let mode: ScoreMode = args.score_mode;
    let val = score::score(model, &p.val, mode, 256, device)?;
    let test = score::score(model, &p.test, mode, 256, device)?;
    let train_scores = score::score(model, &p.train, mode, 256, device)?;
    // Labelled windows the weights were not fitted on: validation and, unless asked not to,
    // the training part's windows with a defect (a machine with no defect in its validation
    // months still gets a threshold set against defects and the shots right after them).
    let (mut pick_scores, mut pick_labels) = (val.score.clone(), ds.val.labels.clone());
    if !args.val_only_threshold && p.held.n > 0 {
        pick_scores.extend(score::score(model, &p.held, mode, 256, device)?.score);
        pick_labels.extend(p.held_labels.iter().copied());
    }
    let choice = metrics::choose_threshold(
        &pick_scores,
        &pick_labels,
        args.min_val_defects,
        args.quantile,
        &train_scores.score,
    );
    let (ts, tl): (Vec<f32>, Vec<u8>) =
        test.score.iter().zip(&ds.test.labels).filter_map(|(s, l)| l.map(|l| (*s, l))).unzip();
    let eval = |t: f32, salt: u64| {
        (!ts.is_empty()).then(|| metrics::evaluate(&ts, &tl, t, args.bootstrap, args.seed ^ salt))
    };
    let stats =
        score_stats(if val.score.is_empty() { &train_scores.score } else { &val.score }, choice.threshold);
    let outcome = ModelOutcome {
        kind: kind.into(),
        epochs_run: trained.history.len(),
        best_epoch: trained.best_epoch,
        stopped_early: trained.stopped_early,
        train_seconds: trained.seconds,
        history: trained.history.clone(),
        threshold: choice.clone(),
        test: eval(choice.threshold, 1),
        test_fixed_0_1: eval(ORIGINAL_THRESHOLD, 2),
        validation_scores: stats,
        test_relative: ts
            .iter()
            .zip(&tl)
            .map(|(&s, &l)| (s / choice.threshold.max(f32::MIN_POSITIVE), l))
            .collect(),
    };
    Ok(outcome)
}

fn score_stats(scores: &[f32], threshold: f32) -> ScoreStats {
    if scores.is_empty() {
        return ScoreStats::default();
    }
    let n = scores.len() as f64;
    let mean = scores.iter().map(|&s| f64::from(s)).sum::<f64>() / n;
    let var = scores.iter().map(|&s| (f64::from(s) - mean).powi(2)).sum::<f64>() / n;
    let mut sorted = scores.to_vec();
    sorted.sort_by(f32::total_cmp);
    let q = |p: f64| f64::from(sorted[((sorted.len() - 1) as f64 * p).round() as usize]);
    ScoreStats {
        count: scores.len() as u64,
        mean,
        std: var.sqrt(),
        p50: q(0.5),
        p90: q(0.9),
        p99: q(0.99),
        alarm_rate: scores.iter().filter(|&&s| s > threshold).count() as f64 / n,
    }
}

/// Largest |a − b| / scale(a) over score and contributions (infinite when shapes differ).
fn max_diff(a: &Scores, b: &Scores, scale: impl Fn(f32) -> f32) -> f32 {
    let pairs = a.score.iter().zip(&b.score).chain(a.contributions.iter().zip(&b.contributions));
    let len_ok = a.score.len() == b.score.len() && a.contributions.len() == b.contributions.len();
    if !len_ok {
        return f32::INFINITY;
    }
    pairs.map(|(x, y)| (x - y).abs() / scale(*x)).fold(0.0, f32::max)
}

fn targets(out: &mut KeyOutcome, lstm: &ModelOutcome) {
    let value = |m: Option<&ModelOutcome>, f: fn(&Evaluation) -> Option<f64>| {
        m.and_then(|o| o.test.as_ref()).and_then(f)
    };
    let roc = value(Some(lstm), |e| e.roc_auc.value);
    let f1 = value(Some(lstm), |e| e.f1.value);
    out.targets.insert("roc_auc_ge_0.95".into(), roc.is_some_and(|v| v >= 0.95));
    out.targets.insert("f1_ge_0.8".into(), f1.is_some_and(|v| v >= 0.8));
    if let Some(b) = out.baseline.as_ref() {
        let broc = value(Some(b), |e| e.roc_auc.value);
        let bf1 = value(Some(b), |e| e.f1.value);
        let better = roc.zip(broc).is_some_and(|(a, b)| a >= b) && f1.zip(bf1).is_some_and(|(a, b)| a >= b);
        out.targets.insert("better_than_baseline".into(), better);
    }
}
