//! Live scoring: every record the edge makes durable passes through [`Scorer::observe`] in seq
//! order. Peripheral readings feed the [`FeatureAssembler`]; a shot becomes its feature vector
//! (the same one ETL computes), joins its machine's [`History`], and is scored by the active
//! model of its model key — `machine/mold` when that key has a model, else `machine` — once the
//! run holds a full window. A candidate in shadow scores the same shots beside it without
//! publishing; after its N shots the [`judge`](crate::judge) decides, and the caller promotes it or drops it
//! between two shots, so no shot is scored twice or skipped by a swap.

use crate::features::FeatureAssembler;
use crate::history::{History, ShotValues};
use crate::inference::Model;
use crate::judge::{self, Declared, Limits, Rejection, ShadowShot, ShadowSummary};
use crate::metrics::{KeyLabel, ScoringMetrics};
use moldops_shared::bundle::ModelKey;
use moldops_shared::features::MAX_TOLERANCE_MS;
use moldops_shared::rollout::{BundleRef, ScoreMessage};
use moldops_shared::{Record, RecordKind};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Instant;

/// A model with the bundle it came from.
pub struct LoadedModel {
    /// The bundle the model was loaded from; its model id and version go into score messages
    /// and `/status`, its sha256 into [`ShadowDone`].
    pub bundle: BundleRef,
    /// The bundle's graph, built and warmed for the edge's backend.
    pub model: Model,
}

struct Shadow {
    candidate: LoadedModel,
    shots: Vec<ShadowShot>,
    needed: u64,
}

#[derive(Default)]
struct Slot {
    active: Option<LoadedModel>,
    shadow: Option<Shadow>,
}

/// A shadow run that has scored its N shots, with the verdict.
#[derive(Debug, Clone, PartialEq)]
pub struct ShadowDone {
    /// Model key the candidate was in shadow for.
    pub key: ModelKey,
    /// Hex sha256 of the candidate's bundle ([`BundleRef::sha256`]): which candidate this is.
    pub sha256: String,
    /// The [`judge`](judge::judge)'s verdict: the summary when the candidate may be promoted,
    /// the reason to roll it back otherwise.
    pub verdict: Result<ShadowSummary, Rejection>,
}

/// What the active model made of one shot: the evidence a quality gate decides on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// No model is active for the shot's keys.
    NoModel,
    /// A model is active but the run holds fewer shots than its window (after a start, a
    /// restart, a mold change or a stop).
    Warming,
    /// The active model failed to score the shot.
    Failed,
    /// The active model scored the shot ([`Observed::scores`] holds the message); `missing`
    /// of its features were filled in for this shot (absent or older than the tolerance).
    Scored {
        /// Features of this shot the window filled in.
        missing: usize,
    },
}

/// What one record produced.
#[derive(Debug, Default)]
pub struct Observed {
    /// For a shot: what its active model made of it; `None` for any other record.
    pub verdict: Option<Verdict>,
    /// The active model's score message for this shot, at most one: none for a reading or gap,
    /// a shot without a model, a run shorter than the window or a failed inference. The edge
    /// publishes it to `…/scores`, and an alarm also to `…/alarms`.
    pub scores: Vec<ScoreMessage>,
    /// Shadow runs of this shot's keys (its machine's and its machine/mold's) that have reached
    /// their shot count; the caller promotes or drops each candidate, else it comes back with
    /// every later shot.
    pub shadow_done: Vec<ShadowDone>,
}

/// The live scorer of one edge: the active and shadow model of each model key and each
/// machine's [`History`], fed every durable record in seq order through [`Scorer::observe`].
pub struct Scorer {
    edge_id: String,
    assembler: FeatureAssembler,
    history: HashMap<String, History>,
    slots: BTreeMap<ModelKey, Slot>,
    limits: Limits,
    metrics: Arc<ScoringMetrics>,
}

impl Scorer {
    /// A scorer without models for edge `edge_id` (stamped on every score message), judging
    /// shadow runs against `limits` and counting into `metrics`.
    pub fn new(edge_id: &str, limits: Limits, metrics: Arc<ScoringMetrics>) -> Self {
        Scorer {
            edge_id: edge_id.to_string(),
            // Every value with its age; each model cuts at its own (the manifest's) tolerance.
            assembler: FeatureAssembler::new(MAX_TOLERANCE_MS),
            history: HashMap::new(),
            slots: BTreeMap::new(),
            limits,
            metrics,
        }
    }

    /// Makes `model` the active model of `key` at once; returns the one it replaces.
    pub fn set_active(&mut self, key: &ModelKey, model: LoadedModel) -> Option<LoadedModel> {
        let label = key.label();
        let (version, id, backend) =
            (model.bundle.version, model.bundle.model_id.clone(), model.model.backend().as_str());
        let target = model.model.manifest().false_alarm_target;
        self.metrics
            .model_version
            .get_or_create(&KeyLabel { model_key: label.clone() })
            .set(i64::from(version));
        self.metrics.key(&label, |s| {
            s.version = Some(version);
            s.model_id = Some(id);
            s.backend = Some(backend.to_string());
            s.false_alarm_target = target;
        });
        self.slots.entry(key.clone()).or_default().active.replace(model)
    }

    /// Starts a shadow run of `candidate` for `needed` shots (replacing any other candidate).
    pub fn start_shadow(&mut self, key: &ModelKey, candidate: LoadedModel, needed: u64) {
        let shadow = Shadow { candidate, shots: Vec::new(), needed: needed.max(1) };
        self.slots.entry(key.clone()).or_default().shadow = Some(shadow);
    }

    /// Promotes the candidate of `key` (if any); returns the model it replaces.
    pub fn promote(&mut self, key: &ModelKey) -> Option<LoadedModel> {
        let shadow = self.slots.get_mut(key)?.shadow.take()?;
        self.set_active(key, shadow.candidate)
    }

    /// Drops the candidate of `key`.
    pub fn drop_shadow(&mut self, key: &ModelKey) {
        if let Some(slot) = self.slots.get_mut(key) {
            slot.shadow = None;
        }
    }

    /// Shadow progress of `key`: `(scored, needed)` and the candidate's sha256.
    pub fn shadow_progress(&self, key: &ModelKey) -> Option<(u64, u64, &str)> {
        let s = self.slots.get(key)?.shadow.as_ref()?;
        Some((s.shots.len() as u64, s.needed, s.candidate.bundle.sha256.as_str()))
    }

    /// Takes one durable record (seq assigned).
    pub fn observe(&mut self, record: &Record) -> Observed {
        let mut out = Observed::default();
        let Some(features) = self.assembler.observe(record) else { return out };
        debug_assert_eq!(record.kind, RecordKind::Shot);
        let values: ShotValues =
            features.names.into_iter().zip(features.values.into_iter().zip(features.ages_ms)).collect();
        let machine = &record.machine_id;
        let keep = self
            .slots
            .iter()
            .filter(|(k, _)| &k.machine_id == machine)
            .flat_map(|(_, s)| s.active.iter().chain(s.shadow.as_ref().map(|s| &s.candidate)))
            .map(|m| m.model.window())
            .max()
            .unwrap_or(1);
        let history = self.history.entry(machine.clone()).or_default();
        history.push(record.ts_ms, record.mold.as_deref(), values, keep);
        let mold_key = ModelKey { machine_id: machine.clone(), mold: record.mold.clone() };
        let machine_key = ModelKey { machine_id: machine.clone(), mold: None };
        let has_active = |k: &ModelKey| self.slots.get(k).is_some_and(|s| s.active.is_some());
        let official = if record.mold.is_some() && has_active(&mold_key) {
            Some(mold_key.clone())
        } else if has_active(&machine_key) {
            Some(machine_key.clone())
        } else {
            None
        };
        let history = &self.history[machine];
        let metrics = self.metrics.clone();
        out.verdict = Some(Verdict::NoModel);
        if let Some(key) = official
            && let Some(slot) = self.slots.get_mut(&key)
            && let Some(active) = slot.active.as_mut()
        {
            let label = key.label();
            let manifest = active.model.manifest();
            match history.window(active.model.window(), &manifest.features, manifest.tolerance_ms) {
                None => {
                    metrics.unscored_warming.inc();
                    out.verdict = Some(Verdict::Warming);
                }
                Some(window) => {
                    let missing = history.missing(&manifest.features, manifest.tolerance_ms);
                    out.verdict = Some(Verdict::Failed);
                    if let Some(msg) = score_one(&self.edge_id, record, &label, active, &window, &metrics) {
                        out.scores.push(msg);
                        out.verdict = Some(Verdict::Scored { missing });
                    }
                }
            }
        }
        // What the model in charge made of this shot, for the judge (shared alarms are not held
        // against a candidate).
        let active_alarmed = out.scores.first().map(|m| m.alarm);
        let mut candidates = vec![machine_key];
        if record.mold.is_some() {
            candidates.push(mold_key);
        }
        for key in candidates {
            let Some(slot) = self.slots.get_mut(&key) else { continue };
            let Some(shadow) = slot.shadow.as_mut() else { continue };
            let model = &mut shadow.candidate.model;
            let m = model.manifest();
            let Some(window) = history.window(model.window(), &m.features, m.tolerance_ms) else { continue };
            let started = Instant::now();
            let score = match model.score(&window) {
                Ok(o) => {
                    metrics.observe_latency(&key.label(), started.elapsed().as_secs_f64());
                    o.score
                }
                Err(e) => {
                    metrics.inference_errors.inc();
                    tracing::warn!(key = %key.label(), error = %format!("{e:#}"), "candidate inference failed");
                    f32::NAN
                }
            };
            shadow.shots.push(ShadowShot { score, active_alarmed });
            let label = KeyLabel { model_key: key.label() };
            metrics.shadow_scored.get_or_create(&label).inc();
            metrics.key(&label.model_key, |s| s.shadow_scored += 1);
            if shadow.shots.len() as u64 >= shadow.needed {
                let m = shadow.candidate.model.manifest();
                let declared = Declared {
                    threshold: m.threshold,
                    false_alarm_target: m.false_alarm_target,
                    validation: &m.validation_scores,
                };
                let verdict = judge::judge(&shadow.shots, &declared, &self.limits);
                let sha256 = shadow.candidate.bundle.sha256.clone();
                out.shadow_done.push(ShadowDone { key: key.clone(), sha256, verdict });
            }
        }
        out
    }
}

/// Scores one shot with the active model; `None` when inference failed (counted and logged).
fn score_one(
    edge_id: &str,
    record: &Record,
    label: &str,
    active: &mut LoadedModel,
    window: &[f32],
    metrics: &ScoringMetrics,
) -> Option<ScoreMessage> {
    let started = Instant::now();
    let result = active.model.score(window);
    let seconds = started.elapsed().as_secs_f64();
    let out = match result {
        Ok(o) => o,
        Err(e) => {
            metrics.inference_errors.inc();
            tracing::warn!(key = %label, error = %format!("{e:#}"), "inference failed");
            return None;
        }
    };
    metrics.observe_latency(label, seconds);
    let manifest = active.model.manifest();
    let alarm = out.score > manifest.threshold;
    let key_label = KeyLabel { model_key: label.to_string() };
    metrics.scored.get_or_create(&key_label).inc();
    if alarm {
        metrics.alarms.get_or_create(&key_label).inc();
    }
    metrics.key(label, |s| {
        s.scored += 1;
        s.alarms += u64::from(alarm);
        s.last_score = Some(out.score);
        if alarm {
            s.last_alarm_shot = record.shot_number;
        }
    });
    let mut contributions: Vec<(String, f32)> =
        manifest.features.iter().map(|f| f.name.clone()).zip(out.contributions).collect();
    contributions.sort_by(|a, b| b.1.total_cmp(&a.1));
    Some(ScoreMessage {
        edge_id: edge_id.to_string(),
        machine_id: record.machine_id.clone(),
        mold: record.mold.clone(),
        shot_number: record.shot_number,
        seq: record.seq,
        ts_ms: record.ts_ms,
        model_key: label.to_string(),
        model_id: active.bundle.model_id.clone(),
        version: active.bundle.version,
        bundle_sha256: active.bundle.sha256.clone(),
        score: out.score,
        threshold: manifest.threshold,
        alarm,
        contributions,
    })
}

#[cfg(test)]
mod tests;
