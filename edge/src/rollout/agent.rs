//! The rollout state machine of every model key on this edge, and the scorer it drives. One
//! task owns both, so records, MQTT messages and finished model loads are handled one at a
//! time: a model swap happens between two shots, never during one.
//!
//! Per key: desired bundle new → `downloading` (chunks) → [`transfer::check`] → `verified` →
//! load + warm (blocking pool) → `shadow` for N shots → `active`, or `rejected` (any check or
//! the load failed) / `rolled_back` (the shadow verdict failed), with the reason. A desired
//! bundle equal to the previous active one is a rollback: loaded from the store and activated
//! at once. Every change is persisted before it is reported.
//!
//! The cold-start baselines of moulds without a model of their own (`[models.cold_start]`,
//! docs/mould-lifecycle.md) live in the scorer; the agent saves them to the store when the
//! scorer asks (checkpoints while learning, the end of learning, the stop) and deletes the ones
//! it retires, and loads them back on a restart.

use super::store::{KeyState, Store};
use super::transfer::{self, RefusedBundle, Transfer};
use crate::buffer::Durable;
use crate::gate::Shot;
use moldops_scoring::inference::{Backend, Model};
use moldops_scoring::metrics::ScoringMetrics;
use moldops_scoring::scorer::{LoadedModel, Scorer, ShadowDone};
use moldops_shared::bundle::{MODEL_FILE, ModelKey};
use moldops_shared::rollback;
use moldops_shared::rollout::{
    BundleRef, DesiredModel, DesiredModels, ReportedModel, ReportedModels, RolloutState,
};
use moldops_shared::topic::{self, Leaf};
use moldops_shared::{Record, RecordKind};
use rumqttc::{AsyncClient, QoS};
use std::collections::HashMap;
use std::sync::Arc;
use tokio::sync::mpsc;

/// Whether `ks` already reports `sha` as its rejected target (a retained desired state seen
/// again: nothing to persist or report).
fn same_target_rejected(ks: &KeyState, sha: &str) -> bool {
    ks.state == Some(RolloutState::Rejected) && ks.target.as_ref().is_some_and(|t| t.sha256 == sha)
}

/// A model load finished on the blocking pool.
pub(crate) struct Loaded {
    pub key: ModelKey,
    pub bundle: BundleRef,
    /// Activate at once (a rollback to the previous bundle) instead of shadowing.
    pub immediate: bool,
    pub result: Result<Model, RefusedBundle>,
}

pub(crate) struct Agent {
    pub site: String,
    pub edge_id: String,
    pub client: AsyncClient,
    pub store: Store,
    pub scorer: Scorer,
    pub public_key: [u8; 32],
    /// Features this edge computes, per machine.
    pub available: HashMap<String, Vec<String>>,
    pub backend: Backend,
    /// Largest bundle this edge downloads.
    pub max_bundle_bytes: u64,
    pub shadow_shots: u64,
    pub metrics: Arc<ScoringMetrics>,
    pub load_tx: mpsc::UnboundedSender<Loaded>,
    /// Downloads in progress, by key label.
    pub transfers: HashMap<String, Transfer>,
    /// Loads in progress: key label → sha256.
    pub loading: HashMap<String, String>,
    /// To the task that appends score records to the buffer ([`super::record_scores`]).
    pub score_records: mpsc::Sender<Vec<Record>>,
    /// Score records (and drift summaries) of the records handled since the last
    /// [`Agent::flush_scores`].
    pub pending_scores: Vec<Record>,
    /// The quality gates, which get every shot of their machines with its verdict.
    pub gates: crate::gate::Feed,
    /// `[models.cold_start]` is configured: saved baselines are loaded on a restart.
    pub cold_start: bool,
}

impl Agent {
    fn topic(&self, leaf: Leaf) -> String {
        topic::topic(&self.site, &self.edge_id, leaf)
    }

    /// Loads the saved cold-start baselines (when a cold start is configured; the least
    /// recently used first, so the key cap drops the oldest), the active models, and resumes
    /// unfinished rollouts (after a start or restart).
    pub(crate) fn restore(&mut self) {
        if self.cold_start {
            let saved = self.store.read_baselines();
            let n = saved.len();
            for (key, baseline) in saved {
                for dropped in self.scorer.restore_baseline(key, baseline) {
                    self.store.remove_baseline(&dropped);
                }
            }
            if n > 0 {
                tracing::info!(baselines = n, "cold-start baselines loaded");
            }
        }
        let keys: Vec<KeyState> = self.store.state.keys.values().cloned().collect();
        for ks in keys {
            let label = ks.model_key.label();
            if let Some(active) = &ks.active {
                match self.load_stored(&ks.model_key, active) {
                    Ok(model) => {
                        tracing::info!(key = %label, version = active.version, "active model loaded");
                        self.scorer.set_active(&ks.model_key, LoadedModel { bundle: active.clone(), model });
                    }
                    Err(e) => {
                        tracing::error!(key = %label, error = %e, "stored active model does not load; not scoring this key")
                    }
                }
            }
            let Some(target) = ks.target.clone() else { continue };
            if let Err(e) = target.check(self.max_bundle_bytes) {
                tracing::warn!(key = %label, error = %e, "stored rollout target is not valid; dropped");
                self.store.key(&ks.model_key).target = None;
                continue;
            }
            match ks.state {
                Some(RolloutState::Downloading) => {
                    self.transfers.insert(label, Transfer::new(target));
                }
                Some(RolloutState::Verified | RolloutState::Shadow) => {
                    tracing::info!(key = %label, version = target.version, "resuming the rollout after a restart: shadow starts again");
                    self.spawn_load(ks.model_key.clone(), target, false);
                }
                _ => {}
            }
        }
    }

    /// Subscribes to the desired state and to the chunks of downloads in progress, and
    /// publishes the reported state (on every connection).
    pub(crate) fn on_connected(&mut self) {
        let desired = self.topic(Leaf::ModelDesired);
        if let Err(e) = self.client.try_subscribe(desired, QoS::AtLeastOnce) {
            tracing::warn!(error = %e, "cannot subscribe to the desired model state");
        }
        let shas: Vec<String> = self.transfers.values().map(|t| t.bundle.sha256.clone()).collect();
        for sha in shas {
            let _ = self.client.try_subscribe(topic::bundle_chunks(&self.site, &sha), QoS::AtLeastOnce);
        }
        self.report();
    }

    /// Routes one MQTT message.
    pub(crate) fn on_message(&mut self, topic_name: &str, payload: &[u8]) {
        if topic_name == self.topic(Leaf::ModelDesired) {
            if payload.is_empty() {
                return;
            }
            if payload.len() > moldops_shared::rollout::MAX_DESIRED_BYTES {
                tracing::warn!(bytes = payload.len(), "desired model state too large; ignored");
                return;
            }
            match serde_json::from_slice::<DesiredModels>(payload) {
                Ok(d) => d.models.into_iter().for_each(|m| self.on_desired_at(m, d.issued_at_ms)),
                Err(e) => tracing::warn!(error = %e, "desired model state is not valid JSON; ignored"),
            }
            return;
        }
        let prefix = format!("{}/{}/{}/", topic::ROOT, self.site, topic::BUNDLES);
        let Some((sha, index)) = topic_name.strip_prefix(&prefix).and_then(|r| r.split_once('/')) else {
            return;
        };
        let Ok(index) = index.parse::<u32>() else { return };
        self.on_chunk(sha, index, payload);
    }

    /// Acts on one desired entry; the reports it causes echo `issued_at_ms`, and one is sent
    /// even when nothing changed, so the manager knows this desired state was seen.
    fn on_desired_at(&mut self, desired: DesiredModel, issued_at_ms: i64) {
        // A refused entry creates no key state (hostile keys must not grow the store).
        let valid = desired.check(self.max_bundle_bytes).is_ok();
        let label = desired.model_key.label();
        if valid {
            self.store.key(&desired.model_key).desired_at_ms = issued_at_ms;
        }
        self.on_desired(desired);
        if valid {
            self.commit(&label);
        }
    }

    fn on_desired(&mut self, desired: DesiredModel) {
        if let Err(e) = desired.check(self.max_bundle_bytes) {
            // Nothing of it is stored; the key keeps its model and reports why.
            tracing::warn!(key = %desired.model_key.label().chars().take(200).collect::<String>(), error = %e, "desired model refused");
            let label = desired.model_key.label();
            if let Some(k) = self.store.state.keys.get_mut(&label) {
                k.reason = Some(format!("desired bundle refused: {e}"));
                self.commit(&label);
            }
            return;
        }
        let key = desired.model_key.clone();
        let label = key.label();
        let want = desired.bundle;
        let sha = want.sha256.clone();
        let ks = self.store.key(&key).clone();
        if ks.active.as_ref().is_some_and(|a| a.sha256 == sha) {
            if ks.state != Some(RolloutState::Active) || ks.target.as_ref() != ks.active.as_ref() {
                self.cancel(&key);
                let k = self.store.key(&key);
                k.target = k.active.clone();
                k.state = Some(RolloutState::Active);
                k.reason = None;
                self.commit(&label);
            }
            return;
        }
        if let Some(reason) = ks.refused.get(&sha) {
            tracing::debug!(key = %label, %reason, "desired bundle was refused before; not retried");
            return;
        }
        // Versions only rise: an older one needs a rollback statement signed by the registry.
        // (The version is the desired state's; the download's check makes sure the signed
        // manifest says the same.) Not remembered as refused: a signed rollback may follow.
        let now_ms = chrono::Utc::now().timestamp_millis();
        let newest = ks.newest_version();
        let allowed = rollback::may_install(
            desired.rollback.as_ref(),
            &self.public_key,
            &key,
            want.version,
            newest,
            now_ms,
        );
        if let Err(e) = allowed {
            tracing::warn!(key = %label, version = want.version, newest, error = %e, "desired bundle refused");
            if !(same_target_rejected(&ks, &sha)) {
                self.cancel(&key);
                let k = self.store.key(&key);
                k.target = Some(want);
                k.state = Some(RolloutState::Rejected);
                k.reason = Some(format!("desired bundle refused: {e}"));
                self.commit(&label);
            }
            return;
        }
        let same_target = ks.target.as_ref().is_some_and(|t| t.sha256 == sha);
        let busy = self.transfers.get(&label).is_some_and(|t| t.bundle.sha256 == sha)
            || self.loading.get(&label).is_some_and(|s| *s == sha)
            || self.scorer.shadow_progress(&key).is_some_and(|(_, _, s)| s == sha);
        if same_target && busy {
            return;
        }
        self.cancel(&key);
        let rollback = ks.previous.as_ref().is_some_and(|p| p.sha256 == sha) && self.store.has_bundle(&sha);
        let k = self.store.key(&key);
        k.target = Some(want.clone());
        k.reason = None;
        if rollback || self.store.has_bundle(&sha) {
            // Already here (a rollback, or a bundle fetched before): no download.
            self.store.key(&key).state = Some(RolloutState::Verified);
            self.commit(&label);
            tracing::info!(key = %label, version = want.version, rollback, "desired bundle is in the store");
            self.spawn_load(key, want, rollback);
            return;
        }
        self.store.key(&key).state = Some(RolloutState::Downloading);
        self.commit(&label);
        tracing::info!(key = %label, version = want.version, bytes = want.bytes, chunks = want.chunks, "downloading bundle");
        let filter = topic::bundle_chunks(&self.site, &sha);
        self.transfers.insert(label, Transfer::new(want));
        if let Err(e) = self.client.try_subscribe(filter, QoS::AtLeastOnce) {
            tracing::warn!(error = %e, "cannot subscribe to bundle chunks; retried on reconnect");
        }
    }

    /// Stops whatever rollout `key` had in progress (a newer desired state replaced it).
    fn cancel(&mut self, key: &ModelKey) {
        let label = key.label();
        if let Some(t) = self.transfers.remove(&label) {
            let _ = self.client.try_unsubscribe(topic::bundle_chunks(&self.site, &t.bundle.sha256));
        }
        self.loading.remove(&label);
        self.scorer.drop_shadow(key);
    }

    fn on_chunk(&mut self, sha: &str, index: u32, data: &[u8]) {
        let Some(label) = self.transfers.iter().find(|(_, t)| t.bundle.sha256 == sha).map(|(l, _)| l.clone())
        else {
            return;
        };
        let Some(t) = self.transfers.get_mut(&label) else { return };
        if data.is_empty() {
            return; // a cleared retained chunk
        }
        if let Err(e) = t.accept(index, data) {
            tracing::warn!(key = %label, error = %e, "bad bundle chunk ignored");
            return;
        }
        let Some(bytes) = t.complete() else { return };
        let Some(t) = self.transfers.remove(&label) else { return };
        let _ = self.client.try_unsubscribe(topic::bundle_chunks(&self.site, sha));
        let key = self.store.key_of(&label);
        let machine = key.machine_id.clone();
        let available = self.available.get(&machine).cloned().unwrap_or_default();
        match transfer::check(&bytes, &t.bundle, &key, &self.public_key, &available) {
            Err(reason) => self.refuse(&key, RolloutState::Rejected, reason.to_string()),
            Ok(_) => {
                if let Err(e) = self.store.put_bundle(sha, &bytes) {
                    let reason = RefusedBundle::Store(e.context("cannot store the bundle"));
                    self.refuse(&key, RolloutState::Rejected, reason.to_string());
                    return;
                }
                self.store.key(&key).state = Some(RolloutState::Verified);
                self.commit(&label);
                tracing::info!(key = %label, version = t.bundle.version, "bundle verified");
                self.spawn_load(key, t.bundle, false);
            }
        }
    }

    /// Reads a stored bundle, checks it again and loads its model (blocking).
    fn load_stored(&self, key: &ModelKey, bundle: &BundleRef) -> Result<Model, RefusedBundle> {
        let bytes = self.store.read_bundle(&bundle.sha256).map_err(RefusedBundle::Store)?;
        load(&bytes, bundle, key, &self.public_key, self.available.get(&key.machine_id), &self.backend)
    }

    fn spawn_load(&mut self, key: ModelKey, bundle: BundleRef, immediate: bool) {
        self.loading.insert(key.label(), bundle.sha256.clone());
        let bytes = self.store.read_bundle(&bundle.sha256);
        let (pk, backend, tx) = (self.public_key, self.backend.clone(), self.load_tx.clone());
        let available = self.available.get(&key.machine_id).cloned();
        tokio::task::spawn_blocking(move || {
            let result = bytes
                .map_err(RefusedBundle::Store)
                .and_then(|b| load(&b, &bundle, &key, &pk, available.as_ref(), &backend));
            let _ = tx.send(Loaded { key, bundle, immediate, result });
        });
    }

    /// A load finished: shadow the candidate (or activate it, for a rollback).
    pub(crate) fn on_loaded(&mut self, done: Loaded) {
        let label = done.key.label();
        if self.loading.get(&label) != Some(&done.bundle.sha256) {
            return; // superseded by a newer desired state
        }
        self.loading.remove(&label);
        let model = match done.result {
            Ok(m) => m,
            Err(reason) => return self.refuse(&done.key, RolloutState::Rejected, reason.to_string()),
        };
        let loaded = LoadedModel { bundle: done.bundle.clone(), model };
        if done.immediate {
            self.scorer.start_shadow(&done.key, loaded, 1);
            self.promote(&done.key);
            return;
        }
        self.scorer.start_shadow(&done.key, loaded, self.shadow_shots);
        self.store.key(&done.key).state = Some(RolloutState::Shadow);
        self.commit(&label);
        tracing::info!(key = %label, version = done.bundle.version, shots = self.shadow_shots, "candidate in shadow");
    }

    /// Scores one durable record, hands a gated machine's shot to its gate (first: the gate
    /// runs against a deadline) and acts on finished shadow runs.
    pub(crate) fn on_record(&mut self, durable: &Durable) {
        let record = &durable.record;
        if record.kind != RecordKind::Shot && record.kind != RecordKind::Peripheral {
            return;
        }
        let observed = self.scorer.observe(record);
        if let Some((key, baseline)) = &observed.baseline_checkpoint {
            self.save_baseline(key, baseline);
        }
        for key in &observed.baselines_dropped {
            self.store.remove_baseline(key);
        }
        if let Some(verdict) = observed.verdict
            && self.gates.gated(&record.machine_id)
        {
            self.gates.offer(Shot {
                record: record.clone(),
                submitted: durable.submitted,
                live: durable.live,
                verdict,
                score: observed.scores.first().cloned(),
            });
        }
        for msg in observed.scores {
            let Ok(payload) = serde_json::to_vec(&msg) else { continue };
            if msg.alarm {
                let alarms = self.topic(Leaf::Alarms);
                if self.client.try_publish(alarms, QoS::AtLeastOnce, false, payload.clone()).is_err() {
                    self.metrics.publish_dropped.inc();
                }
            }
            if self.client.try_publish(self.topic(Leaf::Scores), QoS::AtLeastOnce, false, payload).is_err() {
                self.metrics.publish_dropped.inc();
            }
            self.pending_scores.push(msg.to_record());
        }
        // Drift summaries travel with the score records: buffered, uploaded exactly once.
        self.pending_scores.extend(observed.drift.iter().map(|d| d.to_record()));
        for done in observed.shadow_done {
            self.on_shadow_done(done);
        }
    }

    fn save_baseline(&self, key: &ModelKey, baseline: &moldops_scoring::Baseline) {
        if let Err(e) = self.store.put_baseline(key, baseline) {
            tracing::warn!(key = %key.label(), error = %format!("{e:#}"), "cannot save the cold-start baseline; it learns again after a restart");
        }
    }

    /// Saves every cold-start baseline (at a stop: learning goes on where it was).
    pub(crate) fn save_baselines(&self) {
        for (key, baseline) in self.scorer.baselines() {
            self.save_baseline(key, baseline);
        }
    }

    /// Hands the score records made since the last call to the buffer's appender; when it is
    /// that far behind (the buffer stalls), they are counted as lost and logged.
    pub(crate) fn flush_scores(&mut self) {
        if self.pending_scores.is_empty() {
            return;
        }
        let records = std::mem::take(&mut self.pending_scores);
        let n = records.len();
        if self.score_records.try_send(records).is_err() {
            self.metrics.records_lost.inc_by(n as u64);
            tracing::error!(records = n, "score records not buffered (the buffer is not keeping up): lost");
        }
    }

    fn on_shadow_done(&mut self, done: ShadowDone) {
        match done.verdict {
            Ok(summary) => {
                tracing::info!(key = %done.key.label(), shots = summary.shots, alarm_rate = summary.alarm_rate, "shadow run passed");
                self.promote(&done.key);
            }
            Err(reason) => {
                self.scorer.drop_shadow(&done.key);
                self.refuse(&done.key, RolloutState::RolledBack, reason.to_string());
            }
        }
    }

    /// Makes the candidate of `key` active and the old active the previous one.
    fn promote(&mut self, key: &ModelKey) {
        self.scorer.promote(key);
        let k = self.store.key(key);
        if k.active != k.target {
            k.previous = k.active.take();
        }
        k.active = k.target.clone();
        k.newest = k.newest_version();
        k.state = Some(RolloutState::Active);
        k.reason = None;
        let version = k.active.as_ref().map(|a| a.version);
        self.commit(&key.label());
        self.store.collect_garbage();
        tracing::info!(key = %key.label(), ?version, "model active");
    }

    fn refuse(&mut self, key: &ModelKey, state: RolloutState, reason: String) {
        tracing::warn!(key = %key.label(), state = state.as_str(), %reason, "desired bundle refused; the current model keeps scoring");
        self.store.key(key).refuse(state, reason);
        self.commit(&key.label());
        self.store.collect_garbage();
    }

    /// Persists the store, then reports (a crash between the two re-reports on restart).
    fn commit(&mut self, label: &str) {
        if let Err(e) = self.store.save() {
            tracing::error!(key = %label, error = %format!("{e:#}"), "cannot persist the rollout state");
        }
        self.report();
    }

    /// Publishes the reported state of every key (retained).
    pub(crate) fn report(&mut self) {
        let now = chrono::Utc::now().timestamp_millis();
        let models = self
            .store
            .state
            .keys
            .iter()
            .filter_map(|(label, k)| {
                let state = k.state?;
                let shadow = self.scorer.shadow_progress(&k.model_key).map(|(n, needed, _)| (n, needed));
                let m = ReportedModel {
                    model_key: k.model_key.clone(),
                    state,
                    target: k.target.clone(),
                    active: k.active.clone(),
                    previous: k.previous.clone(),
                    reason: k.reason.clone(),
                    shadow,
                    newest: k.newest_version(),
                    desired_at_ms: k.desired_at_ms,
                    ts_ms: now,
                };
                Some((label.clone(), m))
            })
            .collect();
        let reported =
            ReportedModels { site: self.site.clone(), edge_id: self.edge_id.clone(), models, ts_ms: now };
        self.metrics.set_rollout(&reported);
        let Ok(payload) = serde_json::to_vec(&reported) else { return };
        if let Err(e) =
            self.client.try_publish(self.topic(Leaf::ModelReported), QoS::AtLeastOnce, true, payload)
        {
            tracing::warn!(error = %e, "cannot queue the reported model state");
        }
    }
}

/// Checks a bundle's bytes against the desired reference and loads + warms its model.
fn load(
    bytes: &[u8],
    bundle: &BundleRef,
    key: &ModelKey,
    public_key: &[u8; 32],
    available: Option<&Vec<String>>,
    backend: &Backend,
) -> Result<Model, RefusedBundle> {
    let available = available.map(Vec::as_slice).unwrap_or_default();
    let (b, manifest) = transfer::check(bytes, bundle, key, public_key, available)?;
    let onnx = b.files.get(MODEL_FILE).ok_or(RefusedBundle::NoModel(MODEL_FILE))?;
    Model::load(manifest, onnx, backend).map_err(RefusedBundle::Load)
}

impl Store {
    /// The model key of a label known to the store.
    pub(crate) fn key_of(&self, label: &str) -> ModelKey {
        self.state.keys.get(label).map(|k| k.model_key.clone()).unwrap_or_else(|| {
            ModelKey::parse(label).unwrap_or(ModelKey { machine_id: label.to_string(), mold: None })
        })
    }
}

#[cfg(test)]
mod tests {
    use crate::config::ModelsConfig;

    #[test]
    fn a_cold_start_section_turns_the_cold_start_on_with_defaults() {
        let text = "public_key = \"00\"\n[cold_start]\nlearning_shots = 50\n";
        let m: ModelsConfig = toml::from_str(text).expect("parses");
        let c = m.cold_start.expect("on");
        assert_eq!(
            (c.learning_shots, c.z_limit, c.max_keys, c.machine_model_covers_all_molds),
            (50, 4.5, 256, false)
        );
        let off: ModelsConfig = toml::from_str("public_key = \"00\"\n").expect("parses");
        assert!(off.cold_start.is_none(), "absent: off, as before");
        assert!(
            toml::from_str::<ModelsConfig>("[cold_start]\nlearning_shot = 5\n").is_err(),
            "typos are refused"
        );
    }
}
