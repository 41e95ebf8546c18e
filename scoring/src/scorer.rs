//! Live scoring: every record the edge makes durable passes through [`Scorer::observe`] in seq
//! order. Peripheral readings feed the [`FeatureAssembler`]; a shot becomes its feature vector
//! (the same one ETL computes), joins its machine's [`History`], and is scored by the active
//! model of its model key — `machine/mold` when that key has a model, else, for a mould key with
//! a material (`mold+material`, [`moldops_shared::mould`]), `machine/mold` without it, else
//! `machine` — once the run holds a full window. With a cold start configured ([`ColdStart`]), a shot whose mould has
//! no model of its own is judged by that (machine, mould)'s [`Baseline`] instead of the
//! machine's model (unless the machine's model covers all moulds): learning at first, without
//! alarms, then against its robust limits, until the mould's own model is active — from the
//! next shot on. A candidate in shadow scores the same shots beside it without
//! publishing; after its N shots the [`judge`](crate::judge) decides, and the caller promotes it or drops it
//! between two shots, so no shot is scored twice or skipped by a swap.
//!
//! With drift monitoring on ([`Scorer::set_drift`]), every shot a model or a watching baseline
//! judged also feeds the [`DriftMonitor`]: the period summaries it closes come out in
//! [`Observed::drift`] for the edge to buffer.

use crate::baseline::{Baseline, ColdStart};
use crate::drift::{DriftMonitor, DriftSettings, JudgedShot};
use crate::features::FeatureAssembler;
use crate::history::{History, ShotValues};
use crate::inference::Model;
use crate::judge::{self, Declared, Limits, Rejection, ShadowShot, ShadowSummary};
use crate::metrics::{ColdStartStatus, KeyLabel, ScoringMetrics};
use moldops_shared::bundle::ModelKey;
use moldops_shared::drift::DriftSummary;
use moldops_shared::features::{DEFAULT_TOLERANCE_MS, MAX_TOLERANCE_MS, within_tolerance};
use moldops_shared::rollout::{BundleRef, ScoreMessage};
use moldops_shared::score::{ColdStartPhase, ModelStamp};
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
    /// No model is active for the shot's keys, or its mould's cold-start baseline is still
    /// learning (its score message, if any, can never alarm).
    NoModel,
    /// A model is active but the run holds fewer shots than its window (after a start, a
    /// restart, a mold change or a stop).
    Warming,
    /// The active model failed to score the shot.
    Failed,
    /// The active model, or its mould's cold-start baseline after learning, scored the shot
    /// ([`Observed::scores`] holds the message); `missing` of its features were filled in for
    /// this shot (absent or older than the tolerance; for a baseline: absent).
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
    /// A copy of the (machine, mould) baseline that judged this shot, when it should be saved
    /// now ([`Judged::checkpoint`](crate::baseline::Judged::checkpoint)).
    pub baseline_checkpoint: Option<(ModelKey, Baseline)>,
    /// Baselines this shot retired: the least recently used one beyond
    /// [`ColdStart::max_keys`], or the one of a mould whose own model now scores it. The caller
    /// deletes their saved copies.
    pub baselines_dropped: Vec<ModelKey>,
    /// Drift summaries this shot closed (at most one: its judge's key); the caller buffers
    /// them as records of kind `drift`.
    pub drift: Vec<DriftSummary>,
}

/// Who judges a shot.
enum Judge {
    /// The active model of the key.
    Model(ModelKey),
    /// The cold-start baseline of the (machine, mould) key.
    Baseline(ModelKey),
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
    cold_start: Option<ColdStart>,
    /// Baselines by (machine, mould) key, each with the tick of its last use (for eviction).
    baselines: HashMap<ModelKey, (Baseline, u64)>,
    tick: u64,
    drift: Option<DriftMonitor>,
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
            cold_start: None,
            baselines: HashMap::new(),
            tick: 0,
            drift: None,
        }
    }

    /// Turns drift monitoring on with these settings (off when `None` or not
    /// [`enabled`](DriftSettings::enabled)); the keys monitored so far start over.
    pub fn set_drift(&mut self, settings: Option<DriftSettings>) {
        self.drift = settings.filter(DriftSettings::enabled).map(DriftMonitor::new);
    }

    /// Turns the cold start of moulds without a model of their own on (`Some`) or off.
    pub fn set_cold_start(&mut self, cold_start: Option<ColdStart>) {
        self.cold_start = cold_start;
    }

    /// Takes a saved baseline of a (machine, mould) `key` back (after a restart; restore the
    /// most recently used last); returns the keys dropped to stay within
    /// [`ColdStart::max_keys`] (none without a cold start: then nothing is taken).
    pub fn restore_baseline(&mut self, key: ModelKey, baseline: Baseline) -> Vec<ModelKey> {
        let Some(max_keys) = self.cold_start.as_ref().map(|c| c.max_keys) else { return Vec::new() };
        let mut dropped = Vec::new();
        if !self.baselines.contains_key(&key) {
            dropped = make_room(&mut self.baselines, max_keys, &self.metrics);
        }
        self.tick += 1;
        self.baselines.insert(key.clone(), (baseline, self.tick));
        self.metrics.baselines_held.set(self.baselines.len() as i64);
        self.update_baseline_status(&key);
        dropped
    }

    /// The cold-start baselines held, by (machine, mould) key.
    pub fn baselines(&self) -> impl Iterator<Item = (&ModelKey, &Baseline)> {
        self.baselines.iter().map(|(k, (b, _))| (k, b))
    }

    /// The cold-start baseline of a (machine, mould) key, if one is held.
    pub fn baseline(&self, key: &ModelKey) -> Option<&Baseline> {
        self.baselines.get(key).map(|(b, _)| b)
    }

    fn update_baseline_status(&self, key: &ModelKey) {
        let Some((b, _)) = self.baselines.get(key) else { return };
        let status = ColdStartStatus {
            phase: if b.is_learning() { "learning" } else { "baseline" },
            shots: b.shots,
            learning_shots: b.learning_shots,
        };
        self.metrics.key(&key.label(), |s| s.cold_start = Some(status));
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
        // The shot's own values and its peripherals' fresh readings, for a cold-start baseline.
        let flat: Vec<(String, f64)> = if self.cold_start.is_some() && record.mold.is_some() {
            let mut v: Vec<(String, f64)> = values
                .iter()
                .filter(|(_, (v, age))| v.is_finite() && within_tolerance(*age, DEFAULT_TOLERANCE_MS))
                .map(|(n, (v, _))| (n.clone(), *v))
                .collect();
            v.sort_by(|a, b| a.0.cmp(&b.0));
            v
        } else {
            Vec::new()
        };
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
        let covered_by_machine = |c: &ColdStart| c.machine_model_covers_all_molds && has_active(&machine_key);
        // A mould key with a material (`{mould}+{material}`) falls back on the mould's model.
        let base_key = record
            .mold
            .as_deref()
            .zip(record.material.as_deref())
            .and_then(|(key, material)| moldops_shared::mould::mould_of(key, material))
            .map(|m| ModelKey { machine_id: machine.clone(), mold: Some(m.to_string()) })
            .filter(has_active);
        let judge = if record.mold.is_some() && has_active(&mold_key) {
            Some(Judge::Model(mold_key.clone()))
        } else if let Some(base) = base_key {
            Some(Judge::Model(base))
        } else if record.mold.is_some() && self.cold_start.as_ref().is_some_and(|c| !covered_by_machine(c)) {
            Some(Judge::Baseline(mold_key.clone()))
        } else if has_active(&machine_key) {
            Some(Judge::Model(machine_key.clone()))
        } else {
            None
        };
        if matches!(judge, Some(Judge::Model(ref k)) if *k == mold_key)
            && self.baselines.remove(&mold_key).is_some()
        {
            // The mould's own model took over: its baseline is done.
            self.metrics.baselines_held.set(self.baselines.len() as i64);
            self.metrics.key(&mold_key.label(), |s| s.cold_start = None);
            out.baselines_dropped.push(mold_key.clone());
        }
        let history = &self.history[machine];
        let metrics = self.metrics.clone();
        out.verdict = Some(Verdict::NoModel);
        let mut judged_by_model = false;
        if let Some(Judge::Baseline(key)) = &judge
            && let Some(cfg) = &self.cold_start
        {
            if !self.baselines.contains_key(key) {
                out.baselines_dropped.extend(make_room(&mut self.baselines, cfg.max_keys, &metrics));
                self.baselines.insert(key.clone(), (Baseline::new(cfg.learning_shots), 0));
                metrics.baselines_held.set(self.baselines.len() as i64);
            }
            self.tick += 1;
            if let Some((baseline, used)) = self.baselines.get_mut(key) {
                *used = self.tick;
                let judged = baseline.observe(record.ts_ms, &flat, cfg.z_limit);
                if judged.checkpoint {
                    out.baseline_checkpoint = Some((key.clone(), baseline.clone()));
                }
                let label = KeyLabel { model_key: key.label() };
                if judged.learning {
                    metrics.learning_shots.get_or_create(&label).inc();
                } else {
                    metrics.baseline_shots.get_or_create(&label).inc();
                    if judged.alarm {
                        metrics.baseline_alarms.get_or_create(&label).inc();
                    }
                    out.verdict = Some(Verdict::Scored { missing: judged.missing });
                }
                // Only the shots it judged after learning: the one that ends learning is stamped
                // @learning and is not monitored.
                let learning = judged.learning;
                let message = baseline_message(&self.edge_id, record, &label.model_key, judged, cfg.z_limit);
                if let Some(monitor) = self.drift.as_mut()
                    && !learning
                {
                    let value = |name: &str| flat.iter().find(|(n, _)| n == name).map(|(_, v)| *v);
                    let shot = JudgedShot {
                        key,
                        stamp: message.stamp(),
                        validation: None,
                        alarm_target: None,
                        ts_ms: record.ts_ms,
                        score: f64::from(message.score),
                        alarm: message.alarm,
                        features: flat.iter().map(|(n, _)| n.as_str()).collect(),
                        value: &value,
                    };
                    out.drift.extend(monitor.observe(&shot));
                }
                out.scores.push(message);
            }
            self.update_baseline_status(key);
        }
        if let Some(Judge::Model(key)) = judge
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
                        if let Some(monitor) = self.drift.as_mut() {
                            let m = active.model.manifest();
                            let value = |name: &str| history.newest_value(name, m.tolerance_ms);
                            let v = &m.validation_scores;
                            let shot = JudgedShot {
                                key: &key,
                                stamp: msg.stamp(),
                                validation: Some(v),
                                alarm_target: m.false_alarm_target.or((v.count > 0).then_some(v.alarm_rate)),
                                ts_ms: record.ts_ms,
                                score: f64::from(msg.score),
                                alarm: msg.alarm,
                                features: m.features.iter().map(|f| f.name.as_str()).collect(),
                                value: &value,
                            };
                            out.drift.extend(monitor.observe(&shot));
                        }
                        out.scores.push(msg);
                        judged_by_model = true;
                        out.verdict = Some(Verdict::Scored { missing });
                    }
                }
            }
        }
        for summary in &out.drift {
            let psi = summary.max_psi();
            metrics.key(&summary.stamp.key, |s| s.drift_psi = psi);
        }
        // What the model in charge made of this shot, for the judge (shared alarms are not held
        // against a candidate). A cold-start baseline is no model: against it, every alarm counts.
        let active_alarmed = out.scores.first().filter(|_| judged_by_model).map(|m| m.alarm);
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

/// Drops the least recently used baselines until one more fits under `max_keys`; returns their
/// keys.
fn make_room(
    baselines: &mut HashMap<ModelKey, (Baseline, u64)>,
    max_keys: usize,
    metrics: &ScoringMetrics,
) -> Vec<ModelKey> {
    let mut dropped = Vec::new();
    while baselines.len() >= max_keys.max(1) {
        let Some(oldest) = baselines.iter().min_by_key(|(_, (_, used))| *used).map(|(k, _)| k.clone()) else {
            break;
        };
        baselines.remove(&oldest);
        metrics.baselines_dropped.inc();
        metrics.key(&oldest.label(), |s| s.cold_start = None);
        tracing::info!(key = %oldest.label(), max_keys, "cold-start baseline dropped (least recently used)");
        dropped.push(oldest);
    }
    metrics.baselines_held.set(baselines.len() as i64);
    dropped
}

/// The score message of a shot its mould's cold-start baseline judged: stamped `{key}@learning`
/// or `{key}@baseline`, version 0, no bundle ([`ModelStamp::cold_start`]); the threshold is
/// the z limit.
fn baseline_message(
    edge_id: &str,
    record: &Record,
    label: &str,
    judged: crate::baseline::Judged,
    z_limit: f64,
) -> ScoreMessage {
    let phase = if judged.learning { ColdStartPhase::Learning } else { ColdStartPhase::Baseline };
    let stamp = ModelStamp::cold_start(label, phase);
    ScoreMessage {
        edge_id: edge_id.to_string(),
        machine_id: record.machine_id.clone(),
        mold: record.mold.clone(),
        shot_number: record.shot_number,
        seq: record.seq,
        ts_ms: record.ts_ms,
        model_key: stamp.key,
        model_id: stamp.id,
        version: stamp.version,
        bundle_sha256: stamp.bundle_sha256,
        score: judged.score,
        threshold: z_limit as f32,
        alarm: judged.alarm && !judged.learning,
        contributions: judged.contributions,
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
