//! What live scoring shows: Prometheus metrics (inference latency histogram and p50/p99 of the
//! last 1024 inferences, scored shots, alarms, shadow shots, model version per model key) and
//! the `models` part of `/status` (per key: rollout state, active version, backend, counts,
//! alarm rate, last score, cold-start phase), and the cold-start baselines' shots and alarms.

use moldops_shared::rollout::ReportedModels;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use serde::Serialize;
use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;

const LATENCY_WINDOW: usize = 1024;

/// The label set of the per-model-key metrics: `model_key="m1"` or `model_key="m1/A"`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KeyLabel {
    /// The model key's label ([`ModelKey::label`](moldops_shared::bundle::ModelKey::label)).
    pub model_key: String,
}

/// Live figures of one model key, for `/status`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct KeyStatus {
    /// Registry id of the active model (`{key}@{version}`); `None` before one is active.
    pub model_id: Option<String>,
    /// Version of the active model within its key; `None` before one is active.
    pub version: Option<u32>,
    /// Engine of the active model, `tract` or `ort`; `None` before one is active.
    pub backend: Option<String>,
    /// Shots the key's active models have scored since the edge started.
    pub scored: u64,
    /// Of those, the shots whose score was above the model's threshold.
    pub alarms: u64,
    /// `alarms / scored`, 0 before the first scored shot.
    pub alarm_rate: f64,
    /// The active model's calibrated false-alarm rate (its manifest's `false_alarm_target`):
    /// on good production `alarm_rate` should sit near it; well above it, the process or the
    /// sensors moved away from the training data.
    pub false_alarm_target: Option<f64>,
    /// Shots candidates in shadow for this key have taken since the edge started.
    pub shadow_scored: u64,
    /// Score of the last shot the active model scored.
    pub last_score: Option<f32>,
    /// Controller shot number of the last shot that alarmed; `None` before the first alarm or
    /// when that shot had no number.
    pub last_alarm_shot: Option<u64>,
    /// The largest PSI (the score's or a feature's, against its reference) in the key's latest
    /// drift summary: above 0.25 its scores or inputs moved (docs/drift.md).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drift_psi: Option<f64>,
    /// The (machine, mould)'s cold-start baseline, while one judges the key's shots.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cold_start: Option<ColdStartStatus>,
}

/// Where a (machine, mould)'s cold-start baseline stands, for `/status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ColdStartStatus {
    /// `learning` (no alarms) or `baseline` (alarms on its robust limits).
    pub phase: &'static str,
    /// Shots the baseline has judged since it was created (restarts included).
    pub shots: u64,
    /// Shots it learns from before it may alarm.
    pub learning_shots: u64,
}

/// The `models` object of `/status`: inference latency, live figures per key, rollout states.
#[derive(Debug, Clone, Serialize)]
pub struct ModelsStatus {
    /// Latency percentiles of the last 1024 inferences, active and shadow, in milliseconds.
    pub inference_ms: Percentiles,
    /// Live figures by model key label (`m1` or `m1/A`).
    pub keys: BTreeMap<String, KeyStatus>,
    /// The rollout state last reported, by model key label (absent before the first report).
    pub rollout: Option<BTreeMap<String, moldops_shared::rollout::ReportedModel>>,
    /// Score records that never reached the buffer since the start (the buffer refused them);
    /// each was logged.
    pub score_records_lost: u64,
}

/// Median and 99th percentile of recent inference latencies, in milliseconds.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Percentiles {
    /// Median latency; `None` before the first inference.
    pub p50: Option<f64>,
    /// 99th percentile latency; `None` before the first inference.
    pub p99: Option<f64>,
}

/// The metrics and `/status` figures of live scoring, shared (in an `Arc`) by the
/// [`Scorer`](crate::Scorer), the edge's rollout agent and its HTTP server. Metric names below
/// are with the edge's `moldops_` prefix.
pub struct ScoringMetrics {
    /// Latency of each inference, active or shadow, per model key, in seconds
    /// (`moldops_inference_seconds`).
    pub inference_seconds: Family<KeyLabel, Histogram, fn() -> Histogram>,
    /// Shots scored by the active model, per model key (`moldops_scored_shots_total`).
    pub scored: Family<KeyLabel, Counter>,
    /// Scored shots whose score was above the model's threshold, per model key
    /// (`moldops_alarms_total`).
    pub alarms: Family<KeyLabel, Counter>,
    /// Shots a candidate in shadow took, failed inferences included, per model key
    /// (`moldops_shadow_shots_total`).
    pub shadow_scored: Family<KeyLabel, Counter>,
    /// Version of the active model, per model key (`moldops_model_version`).
    pub model_version: Family<KeyLabel, Gauge>,
    /// Shots not scored because their run holds fewer shots than the active model's window
    /// (`moldops_unscored_warming_shots_total`).
    pub unscored_warming: Counter,
    /// Inferences that failed, active or shadow (`moldops_inference_errors_total`).
    pub inference_errors: Counter,
    /// Score and alarm messages dropped because the MQTT queue was full; counted by the edge's
    /// rollout agent, not the scorer (`moldops_score_publish_dropped_total`).
    pub publish_dropped: Counter,
    /// Score records (the durable copy of each score, see `moldops_shared::score`) the buffer
    /// refused, so they never reach the lake; counted by the edge's rollout agent
    /// (`moldops_score_records_lost_total`).
    pub records_lost: Counter,
    /// Shots a cold-start baseline learned from (no alarm possible), per (machine, mould) key
    /// (`moldops_learning_shots_total`).
    pub learning_shots: Family<KeyLabel, Counter>,
    /// Shots a cold-start baseline judged after learning, per key
    /// (`moldops_baseline_shots_total`).
    pub baseline_shots: Family<KeyLabel, Counter>,
    /// Of those, the shots above the z limit, per key (`moldops_baseline_alarms_total`).
    pub baseline_alarms: Family<KeyLabel, Counter>,
    /// Cold-start baselines held (`moldops_cold_start_baselines`).
    pub baselines_held: Gauge,
    /// Baselines dropped because more (machine, mould) keys than `max_keys` came
    /// (`moldops_cold_start_baselines_dropped_total`).
    pub baselines_dropped: Counter,
    latencies: Mutex<VecDeque<f64>>,
    keys: Mutex<BTreeMap<String, KeyStatus>>,
    rollout: Mutex<Option<ReportedModels>>,
}

fn inference_histogram() -> Histogram {
    Histogram::new([25e-6, 50e-6, 100e-6, 250e-6, 500e-6, 1e-3, 2.5e-3, 5e-3, 10e-3, 50e-3])
}

impl Default for ScoringMetrics {
    fn default() -> Self {
        ScoringMetrics {
            inference_seconds: Family::new_with_constructor(inference_histogram),
            scored: Family::default(),
            alarms: Family::default(),
            shadow_scored: Family::default(),
            model_version: Family::default(),
            unscored_warming: Counter::default(),
            inference_errors: Counter::default(),
            publish_dropped: Counter::default(),
            records_lost: Counter::default(),
            learning_shots: Family::default(),
            baseline_shots: Family::default(),
            baseline_alarms: Family::default(),
            baselines_held: Gauge::default(),
            baselines_dropped: Counter::default(),
            latencies: Mutex::new(VecDeque::new()),
            keys: Mutex::new(BTreeMap::new()),
            rollout: Mutex::new(None),
        }
    }
}

impl ScoringMetrics {
    /// Registers the metrics (prefix of `registry`, e.g. `moldops_`).
    pub fn register(&self, r: &mut Registry) {
        r.register("inference_seconds", "Latency of one model inference", self.inference_seconds.clone());
        r.register("scored_shots", "Shots scored by the active model", self.scored.clone());
        r.register("alarms", "Shots whose score passed the model's threshold", self.alarms.clone());
        r.register("shadow_shots", "Shots scored by a candidate in shadow", self.shadow_scored.clone());
        r.register("model_version", "Version of the active model per model key", self.model_version.clone());
        r.register(
            "unscored_warming_shots",
            "Shots not scored because the run has fewer shots than the window",
            self.unscored_warming.clone(),
        );
        r.register("inference_errors", "Inferences that failed", self.inference_errors.clone());
        r.register(
            "score_publish_dropped",
            "Score messages dropped because the MQTT queue was full",
            self.publish_dropped.clone(),
        );
        r.register(
            "score_records_lost",
            "Score records the buffer refused (they never reach the lake)",
            self.records_lost.clone(),
        );
        r.register(
            "learning_shots",
            "Shots a cold-start baseline learned from, without alarms",
            self.learning_shots.clone(),
        );
        r.register(
            "baseline_shots",
            "Shots a cold-start baseline judged after learning",
            self.baseline_shots.clone(),
        );
        r.register(
            "baseline_alarms",
            "Shots above a cold-start baseline's z limit",
            self.baseline_alarms.clone(),
        );
        r.register("cold_start_baselines", "Cold-start baselines held", self.baselines_held.clone());
        r.register(
            "cold_start_baselines_dropped",
            "Cold-start baselines dropped for the key cap",
            self.baselines_dropped.clone(),
        );
    }

    /// Records one inference's latency.
    pub fn observe_latency(&self, key: &str, seconds: f64) {
        self.inference_seconds.get_or_create(&KeyLabel { model_key: key.into() }).observe(seconds);
        let mut l = self.latencies.lock().unwrap_or_else(|e| e.into_inner());
        if l.len() == LATENCY_WINDOW {
            l.pop_front();
        }
        l.push_back(seconds);
    }

    /// `(p50, p99)` of the recent inference latencies, in seconds.
    pub fn percentiles(&self) -> Option<(f64, f64)> {
        let mut v: Vec<f64> =
            self.latencies.lock().unwrap_or_else(|e| e.into_inner()).iter().copied().collect();
        if v.is_empty() {
            return None;
        }
        v.sort_by(f64::total_cmp);
        let at = |q: f64| v[((v.len() - 1) as f64 * q).round() as usize];
        Some((at(0.5), at(0.99)))
    }

    /// Updates the live figures of one model key.
    pub fn key(&self, key: &str, f: impl FnOnce(&mut KeyStatus)) {
        let mut keys = self.keys.lock().unwrap_or_else(|e| e.into_inner());
        let status = keys.entry(key.to_string()).or_default();
        f(status);
        status.alarm_rate =
            if status.scored == 0 { 0.0 } else { status.alarms as f64 / status.scored as f64 };
    }

    /// Keeps the last reported rollout state for `/status`.
    pub fn set_rollout(&self, reported: &ReportedModels) {
        *self.rollout.lock().unwrap_or_else(|e| e.into_inner()) = Some(reported.clone());
    }

    /// The `models` object of `/status`.
    pub fn status(&self) -> ModelsStatus {
        let keys = self.keys.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let rollout = self.rollout.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let (p50, p99) = self.percentiles().map_or((None, None), |(a, b)| (Some(a * 1e3), Some(b * 1e3)));
        ModelsStatus {
            inference_ms: Percentiles { p50, p99 },
            keys,
            rollout: rollout.map(|r| r.models),
            score_records_lost: self.records_lost.get(),
        }
    }
}
