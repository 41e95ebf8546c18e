//! One training run over all keys: dataset, the model families and the baseline, thresholds,
//! evaluation, selection, export, parity check and registration.

use super::TrainArgs;
use super::dataset::{self, Dataset, DatasetConfig, Dropped};
use super::metrics::{self, Evaluation, FalseAlarms, ThresholdChoice};
use super::snapshot::{DataSnapshot, snapshot};
use super::{family, select};
use crate::registry::gate::{HELD_OUT_METRIC, HeldOut};
use crate::registry::{Lineage, NewVersion, Registry, keys};
use anyhow::{Context, Result};
use moldops_models::data::{Normalizer, Windows};
use moldops_models::dense_ae::DenseAeConfig;
use moldops_models::device::TrainingDevice;
use moldops_models::lstm_ae::LstmAeConfig;
use moldops_models::score::{self, Scores};
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
    /// False alarms at the threshold: intended, on calibration, achieved on test.
    pub false_alarms: FalseAlarms,
    /// Fault episodes of the test part: caught or not, how many windows after onset, coverage.
    pub onsets: metrics::Onsets,
    /// Recall at the threshold per defect kind of the test windows (etl_data's `defect`).
    pub test_by_kind: BTreeMap<String, metrics::KindRecall>,
    /// Test windows at the chosen threshold.
    pub test: Option<Evaluation>,
    /// Test windows at the original's fixed 0.1.
    pub test_fixed_0_1: Option<Evaluation>,
    pub validation_scores: ScoreStats,
    /// Labelled test windows as (score / threshold, label), for the pooled summary.
    #[serde(skip)]
    pub test_relative: Vec<(f32, u8)>,
    /// Every test window in time order: end time (UTC ms), score, label (for the HTML report).
    #[serde(skip)]
    pub test_series: Vec<(i64, f32, Option<u8>)>,
    /// Scores of the windows the threshold was picked on, with their labels (for selection).
    #[serde(skip)]
    pub pick_scores: Vec<f32>,
    #[serde(skip)]
    pub pick_labels: Vec<Option<u8>>,
}

/// Test windows of all trained keys together, each flagged at its own key's threshold;
/// PR-AUC and ROC-AUC rank `score / threshold`.
#[derive(Debug, Clone, Serialize)]
pub struct Pooled {
    /// Each key's selected family.
    pub selected: Option<Evaluation>,
    pub lstm_ae: Option<Evaluation>,
    pub pca: Option<Evaluation>,
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
    /// The family that became the candidate, and why; `None` when skipped.
    pub selection: Option<select::Selection>,
    /// The LSTM autoencoder's training and evaluation; `None` when skipped or not fitted.
    pub lstm_ae: Option<ModelOutcome>,
    /// The PCA monitor's; `None` when skipped or not fitted.
    pub pca: Option<ModelOutcome>,
    /// The per-shot dense autoencoder baseline's; `None` when skipped or `--no-baseline`.
    pub baseline: Option<ModelOutcome>,
    /// The fitted families' scores combined (each over its own label-free scale, the largest
    /// per window; [`super::combine`]), judged like a family: measured beside the selection,
    /// never shipped. `None` with fewer than two families.
    pub combined: Option<ModelOutcome>,
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

impl KeyOutcome {
    /// The outcome of the family selected as the candidate.
    pub fn selected(&self) -> Option<&ModelOutcome> {
        let kind = &self.selection.as_ref()?.kind;
        [&self.pca, &self.lstm_ae].into_iter().flatten().find(|m| &m.kind == kind)
    }
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
    /// Where the networks trained: `cpu`, or the GPU's description (`--device`).
    pub device: String,
    /// One entry per model key, trained or skipped, in key order.
    pub keys: Vec<KeyOutcome>,
    /// Test windows of all trained keys together, LSTM-AE and baseline.
    pub pooled: Pooled,
    /// Wall-clock duration of the run (s).
    pub seconds: f64,
}

fn lake_dir(args: &TrainArgs) -> Result<PathBuf> {
    if let Some(l) = &args.lake {
        return crate::config::working_folder(l);
    }
    if let Some(d) = &args.loc.data_dir {
        return crate::config::working_folder(&d.join("lake"));
    }
    crate::config::lake_path(args.config.as_deref(), None)
}

/// Trains every key of the lake's etl_data; see the module doc.
pub fn run_training(args: &TrainArgs) -> Result<TrainReport> {
    let started = std::time::Instant::now();
    let lake = lake_dir(args)?;
    let device = args.device.resolve()?;
    tracing::info!(device = %device.description, "training device");
    let signing = if args.no_register {
        None
    } else {
        let path = keys::key_path(args.signing_key.as_deref())?;
        Some(keys::load_signing_key(&path)?)
    };
    let registry = if args.no_register { None } else { Some(Registry::open(&args.loc.path()?)?) };
    let df = crate::etl::read_etl_of(&lake, &args.select)
        .with_context(|| format!("reading etl_data of {}", lake.display()))?;
    // A shard may hold none of the lake's machines: it trains nothing, and that is no failure.
    let empty_shard = args.select.shard.is_some()
        && df.height() == 0
        && !crate::lake::machine_dirs(&lake, crate::etl::ETL_DATA)?.is_empty();
    if empty_shard {
        tracing::info!(shard = ?args.select.shard.map(|s| s.to_string()), "no machine of etl_data in this shard");
    }
    let wanted = wanted_keys(args)?;
    // Machine keys and (machine, mould) keys are series of different cuts: a plan may list both.
    let mut cuts: Vec<bool> = if wanted.is_empty() {
        vec![args.by_mold]
    } else {
        wanted.iter().map(|k| k.mold.is_some()).collect()
    };
    cuts.sort_unstable();
    cuts.dedup();
    let asked = |s: &&dataset::Series| {
        args.select.includes(&s.key.machine_id) && (wanted.is_empty() || wanted.contains(&s.key))
    };
    let mut keys_out = Vec::new();
    for by_mold in cuts.into_iter().filter(|_| !empty_shard) {
        let all = dataset::series(&df, by_mold)?;
        let cfg = DatasetConfig {
            window: args.window,
            train_frac: args.train_frac,
            val_frac: args.val_frac,
            max_missing: args.max_missing,
            by_mold,
        };
        for series in all.iter().filter(asked) {
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
    }
    let missing =
        |k: &&ModelKey| args.select.includes(&k.machine_id) && !keys_out.iter().any(|o| o.key == **k);
    for k in wanted.iter().filter(missing) {
        tracing::warn!(key = %k.label(), "asked for, but etl_data has no shots of it; not trained");
    }
    // A shard holding none of the keys asked for (a plan's) trains nothing either.
    anyhow::ensure!(
        !keys_out.is_empty() || args.select.shard.is_some(),
        "etl_data of {} has no shots of the machines or keys asked for",
        lake.display()
    );
    let pool = |pick: fn(&KeyOutcome) -> Option<&ModelOutcome>| {
        let (s, l): (Vec<f32>, Vec<u8>) =
            keys_out.iter().filter_map(pick).flat_map(|m| m.test_relative.iter().copied()).unzip();
        (!s.is_empty()).then(|| {
            let block = metrics::block_len(s.len(), args.window);
            metrics::evaluate(&s, &l, 1.0, args.bootstrap, block, args.seed ^ 3)
        })
    };
    let pooled = Pooled {
        selected: pool(KeyOutcome::selected),
        lstm_ae: pool(|k| k.lstm_ae.as_ref()),
        pca: pool(|k| k.pca.as_ref()),
        baseline: pool(|k| k.baseline.as_ref()),
    };
    Ok(TrainReport {
        pooled,
        lake,
        code_version: super::code_version(),
        created_at: crate::registry::now_rfc3339(),
        settings: args.clone(),
        device: device.description.clone(),
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
        selection: None,
        lstm_ae: None,
        pca: None,
        baseline: None,
        combined: None,
        onnx_parity_max_diff: None,
        data_snapshot: None,
        registered: None,
        targets: BTreeMap::new(),
    }
}

/// The raw windows every family is scored on; see [`PartScores`].
struct Parts {
    /// Clean training windows (what the autoencoders fit on).
    train: Windows,
    /// The training part's windows with a defective shot: never fitted on, so their scores
    /// are as honest as validation's; they join validation when the threshold is chosen.
    held: Windows,
    held_labels: Vec<Option<u8>>,
}

impl Parts {
    fn new(ds: &Dataset) -> Self {
        let held_idx: Vec<usize> = (0..ds.train.windows.n).filter(|&i| !ds.train.clean[i]).collect();
        Parts {
            train: ds.train.clean_windows(),
            held: ds.train.windows.select(&held_idx),
            held_labels: held_idx.iter().map(|&i| ds.train.labels[i]).collect(),
        }
    }
}

/// One model's scores on each part.
pub(super) struct PartScores {
    pub(super) train: Scores,
    pub(super) val: Scores,
    pub(super) held: Scores,
    pub(super) test: Scores,
}

impl PartScores {
    fn of(ds: &Dataset, parts: &Parts, score: impl Fn(&Windows) -> Result<Scores>) -> Result<Self> {
        Ok(PartScores {
            train: score(&parts.train)?,
            val: score(&ds.val.windows)?,
            held: score(&parts.held)?,
            test: score(&ds.test.windows)?,
        })
    }
}

/// Trains, checks and (optionally) registers one key's candidate, in phases: fit the
/// families, select one, export and check parity, then register with lineage.
fn train_key(
    args: &TrainArgs,
    lake: &Path,
    ds: &Dataset,
    trained_on: &TrainingDevice,
    out: &mut KeyOutcome,
    register: Option<(&Registry, &[u8; 32])>,
) -> Result<()> {
    let device = &trained_on.device;
    let parts = Parts::new(ds);
    let mut fitted = fit_families(args, ds, &parts, device, out)?;
    let families: Vec<&PartScores> = fitted.iter().map(|c| &c.scores).collect();
    out.combined = super::combine::combine(&families, &ds.val.labels, args.quantile)
        .map(|scores| judge(args, ds, &parts, &scores, "combined", family::FitSummary::default()));
    let selection = {
        let scored: Vec<select::Scored<'_>> = fitted.iter().map(|c| c.scored(ds)).collect();
        select::select(&scored, args.min_val_defects, args.quantile)
    };
    tracing::info!(key = %ds.key.label(), family = %selection.kind, reason = %selection.reason, "selected");
    let at = fitted.iter().position(|c| c.fitted.kind() == selection.kind).unwrap_or(0);
    let champion = fitted.swap_remove(at);
    out.selection = Some(selection);
    let onnx = export_checked(args, ds, &champion, device, out)?;
    targets(out, &champion.outcome);
    let snap = snapshot(lake, &ds.key.machine_id)?;
    out.data_snapshot = Some(snap.id.clone());
    if let Some((reg, seed)) = register {
        let candidate = Candidate { champion: &champion, onnx, data: snap, device: &trained_on.description };
        register_candidate(args, lake, ds, candidate, out, reg, seed)?;
    }
    Ok(())
}

/// A fitted family with its scores, threshold and evaluation.
struct Champion {
    fitted: family::Fitted,
    scores: PartScores,
    outcome: ModelOutcome,
}

impl Champion {
    fn scored<'a>(&'a self, ds: &'a Dataset) -> select::Scored<'a> {
        select::Scored {
            kind: self.fitted.kind(),
            pick: (&self.outcome.pick_scores, &self.outcome.pick_labels),
            val: (&self.scores.val.score, &ds.val.labels),
        }
    }
}

/// Fits the families `--family` asks for (simplest first) and, unless turned off, the
/// per-shot dense baseline (its outcome goes into `out.baseline`). Every family's outcome
/// goes into `out` too.
fn fit_families(
    args: &TrainArgs,
    ds: &Dataset,
    parts: &Parts,
    device: &moldops_models::device::Device,
    out: &mut KeyOutcome,
) -> Result<Vec<Champion>> {
    let label = ds.key.label();
    let f = ds.features.len();
    let tc = TrainConfig {
        epochs: args.epochs,
        batch_size: args.batch_size,
        learning_rate: args.learning_rate,
        patience: args.patience,
        seed: args.seed,
    };
    let global = Normalizer::fit(&ds.train_rows, f);
    let mut fitted = Vec::new();
    if args.family.pca() {
        let started = std::time::Instant::now();
        let pca = family::fit_pca(args, &ds.train_rows, f)?;
        fitted.push((pca, started.elapsed().as_secs_f64()));
    }
    if args.family.lstm_ae() {
        let centre = !args.no_centre;
        let norm = if centre { Normalizer::fit_centred(&parts.train) } else { global.clone() };
        let cfg = LstmAeConfig {
            features: f,
            encoder: args.hidden.clone(),
            predict_last: !args.no_predict_last,
            centre,
            centre_clip: args.centre_clip,
        };
        let (train, val) = (norm.apply(&parts.train), norm.apply(&ds.val.clean_windows()));
        let trained =
            fit(cfg.init(args.seed, device)?, &train, &val, &tc, device, &format!("{label} lstm_ae"))?;
        let seconds = trained.seconds;
        fitted.push((
            family::Fitted::LstmAe { trained: Box::new(trained), cfg, train: tc.clone(), norm },
            seconds,
        ));
    }
    let mut champions = Vec::new();
    for (model, seconds) in fitted {
        let scores = PartScores::of(ds, parts, |w| model.score_raw(w, args, device))?;
        let outcome = judge(args, ds, parts, &scores, model.kind(), model.fit_summary(seconds));
        match &model {
            family::Fitted::Pca { .. } => out.pca = Some(outcome.clone()),
            family::Fitted::LstmAe { .. } => out.lstm_ae = Some(outcome.clone()),
        }
        champions.push(Champion { fitted: model, scores, outcome });
    }
    if !args.no_baseline {
        // The per-shot baseline keeps the plain standardisation.
        let (train, val) = (global.apply(&parts.train), global.apply(&ds.val.clean_windows()));
        let dense = fit(
            DenseAeConfig::new(f).init(args.seed, device)?,
            &train,
            &val,
            &tc,
            device,
            &format!("{label} dense_ae"),
        )?;
        let scores = PartScores::of(ds, parts, |w| {
            score::score(&dense.model, &global.apply(w), args.score_mode, 256, device)
        })?;
        let summary = family::FitSummary {
            epochs_run: dense.history.len(),
            best_epoch: dense.best_epoch,
            stopped_early: dense.stopped_early,
            train_seconds: dense.seconds,
            history: dense.history.clone(),
        };
        out.baseline = Some(judge(args, ds, parts, &scores, "dense_ae", summary));
    }
    anyhow::ensure!(!champions.is_empty(), "no model family to fit");
    Ok(champions)
}

/// Exports the champion to ONNX and checks that tract scores it as the family's own code does.
fn export_checked(
    args: &TrainArgs,
    ds: &Dataset,
    champion: &Champion,
    device: &moldops_models::device::Device,
    out: &mut KeyOutcome,
) -> Result<Vec<u8>> {
    let onnx = champion.fitted.export(args)?;
    let raw_val = if ds.val.windows.n > 0 { &ds.val.windows } else { &ds.train.windows };
    let sample = raw_val.select(&(0..raw_val.n.min(128)).collect::<Vec<_>>());
    let own = champion.fitted.score_raw(&sample, args, device)?;
    let tract = moldops_models::onnx::tract_scores(&onnx, &sample)?;
    // Squared errors of a far-off shot reach tens to hundreds, where f32 rounding alone
    // exceeds 1e-4: the check is relative above 1 (|tract − own| ≤ 1e-4 · max(1, |own|)).
    let diff = max_diff(&own, &tract, |b| b.abs().max(1.0));
    out.onnx_parity_max_diff = Some(diff);
    anyhow::ensure!(
        diff <= PARITY_TOLERANCE,
        "{}: exported {} model differs from its own scores by {diff} (relative above 1; > {PARITY_TOLERANCE})",
        ds.key.label(),
        champion.fitted.kind()
    );
    Ok(onnx)
}

/// What gets registered for one key: the champion, its ONNX bytes and the data it saw.
struct Candidate<'a> {
    champion: &'a Champion,
    onnx: Vec<u8>,
    data: DataSnapshot,
    /// Where it trained ([`TrainingDevice::description`]).
    device: &'a str,
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
    let mut params = serde_json::json!({
        "family": ch.fitted.kind(),
        "selection": out.selection,
        "window": args.window,
        "score_mode": args.score_mode,
        "split": {"train_frac": args.train_frac, "val_frac": args.val_frac},
        "max_missing": args.max_missing,
        "dropped_features": ds.dropped,
        "threshold": ch.outcome.threshold,
    });
    if let (Some(all), serde_json::Value::Object(own)) = (params.as_object_mut(), ch.fitted.params()) {
        all.extend(own);
    }
    let m = ch.outcome.test.as_ref();
    let held_out = held_out(ds, out, &ch.outcome);
    let metrics = serde_json::json!({
        "family": ch.fitted.kind(),
        "roc_auc": m.and_then(|e| e.roc_auc.value),
        "pr_auc": m.and_then(|e| e.pr_auc.value),
        "f1": m.and_then(|e| e.f1.value),
        "precision": m.and_then(|e| e.precision.value),
        "recall": m.and_then(|e| e.recall.value),
        "test": m,
        "baseline_test": out.baseline.as_ref().and_then(|b| b.test.as_ref()),
        (HELD_OUT_METRIC): held_out,
    });
    let manifest = Manifest {
        schema: moldops_shared::bundle::MANIFEST_SCHEMA,
        model_id: String::new(),
        version: 0,
        model_key: ds.key.clone(),
        kind: ch.fitted.kind().into(),
        features: ds
            .features
            .iter()
            .zip(&ds.fill)
            .map(|(n, &fill)| FeatureSpec { name: n.clone(), unit: None, fill })
            .collect(),
        window: args.window as u32,
        tolerance_ms: join_tolerance(lake, &ds.key.machine_id)?,
        threshold: ch.outcome.threshold.threshold,
        false_alarm_target: Some(ch.outcome.false_alarms.target),
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
            device: Some(c.device.to_string()),
        },
        report: Some(serde_json::to_value(&*out)?),
    };
    let info = reg.register(new, seed)?;
    tracing::info!(key = %ds.key.label(), version = info.record.version, "registered candidate");
    out.registered = Some((info.record.version, info.bundle_dir));
    Ok(())
}

/// What the promotion gate reads: the held-out (test) window's span, the data counts and the
/// false-alarm rate on its good windows; `None` without test windows.
fn held_out(ds: &Dataset, out: &KeyOutcome, chosen: &ModelOutcome) -> Option<HeldOut> {
    let (&from_ts_ms, &to_ts_ms) = (ds.test.end_ts_ms.first()?, ds.test.end_ts_ms.last()?);
    let defective_windows = ds.test.labels.iter().filter(|l| **l == Some(1)).count();
    Some(HeldOut {
        from_ts_ms,
        to_ts_ms,
        train_windows: out.windows.get("train_clean").copied().unwrap_or_default(),
        validation_windows: ds.val.windows.n,
        good_windows: chosen.false_alarms.test_windows,
        defective_windows,
        false_alarm_rate: chosen.false_alarms.test_rate.value,
    })
}

/// The model keys `--key` and `--keys-from` ask for (none: every key).
pub(crate) fn wanted_keys(args: &TrainArgs) -> Result<Vec<ModelKey>> {
    let mut keys: Vec<ModelKey> = args
        .keys
        .iter()
        .map(|k| ModelKey::parse(k).with_context(|| format!("--key {k:?}")))
        .collect::<Result<_>>()?;
    if let Some(path) = &args.keys_from {
        let planned = crate::lifecycle::plan::Plan::read(path)?.keys()?;
        // An empty list must not mean "every key": the whole fleet would be trained.
        anyhow::ensure!(!planned.is_empty(), "{} lists no key to train", path.display());
        keys.extend(planned);
    }
    Ok(keys)
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
fn judge(
    args: &TrainArgs,
    ds: &Dataset,
    parts: &Parts,
    scores: &PartScores,
    kind: &str,
    fit: family::FitSummary,
) -> ModelOutcome {
    // Labelled windows the model was not fitted on: validation and, unless asked not to,
    // the training part's windows with a defect (a machine with no defect in its validation
    // months still gets a threshold set against defects and the shots right after them).
    let (mut pick_scores, mut pick_labels) = (scores.val.score.clone(), ds.val.labels.clone());
    if !args.val_only_threshold {
        pick_scores.extend(&scores.held.score);
        pick_labels.extend(parts.held_labels.iter().copied());
    }
    // Calibration: the good validation windows, a slice of time after training (with the
    // split's gap); the clean training windows only when validation has none.
    let good = |sc: &Scores, labels: &[Option<u8>]| -> Vec<f32> {
        sc.score.iter().zip(labels).filter(|(_, l)| **l != Some(1)).map(|(s, _)| *s).collect()
    };
    let mut calibration = good(&scores.val, &ds.val.labels);
    if calibration.is_empty() {
        calibration = scores.train.score.clone();
    }
    let choice = metrics::choose_threshold(
        &pick_scores,
        &pick_labels,
        args.min_val_defects,
        args.quantile,
        &calibration,
    );
    let test_good = good(&scores.test, &ds.test.labels);
    let false_alarms = metrics::false_alarms(
        &choice,
        &calibration,
        &test_good,
        args.bootstrap,
        metrics::block_len(test_good.len(), args.window),
        args.seed ^ 4,
    );
    let (ts, tl): (Vec<f32>, Vec<u8>) =
        scores.test.score.iter().zip(&ds.test.labels).filter_map(|(s, l)| l.map(|l| (*s, l))).unzip();
    let block = metrics::block_len(ts.len(), args.window);
    let eval = |t: f32, salt: u64| {
        (!ts.is_empty()).then(|| metrics::evaluate(&ts, &tl, t, args.bootstrap, block, args.seed ^ salt))
    };
    let val = &scores.val.score;
    let stats = score_stats(if val.is_empty() { &scores.train.score } else { val }, choice.threshold);
    ModelOutcome {
        kind: kind.into(),
        epochs_run: fit.epochs_run,
        best_epoch: fit.best_epoch,
        stopped_early: fit.stopped_early,
        train_seconds: fit.train_seconds,
        history: fit.history,
        threshold: choice.clone(),
        false_alarms,
        onsets: metrics::onsets(
            &ts.iter().copied().zip(tl.iter().copied()).collect::<Vec<_>>(),
            choice.threshold,
        ),
        test_by_kind: metrics::recall_by_kind(
            &scores.test.score,
            &ds.test.kinds,
            choice.threshold,
            args.bootstrap,
            args.window,
            args.seed ^ 5,
        ),
        test: eval(choice.threshold, 1),
        test_fixed_0_1: eval(ORIGINAL_THRESHOLD, 2),
        validation_scores: stats,
        test_relative: ts
            .iter()
            .zip(&tl)
            .map(|(&s, &l)| (s / choice.threshold.max(f32::MIN_POSITIVE), l))
            .collect(),
        test_series: ds
            .test
            .end_ts_ms
            .iter()
            .zip(&scores.test.score)
            .zip(&ds.test.labels)
            .map(|((t, s), l)| (*t, *s, *l))
            .collect(),
        pick_scores,
        pick_labels,
    }
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
