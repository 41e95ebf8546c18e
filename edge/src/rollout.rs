//! The model rollout agent and live scoring task of the edge (`[models]` in the config).
//!
//! [`start`] checks the inference backend (ONNX Runtime loads, or falls back to tract when
//! configured) and opens the model store, then spawns two tasks — loading the active models
//! happens in the second, on the blocking pool, so it never delays polling: the MQTT
//! link (its own connection: desired state and bundle chunks in; reported state, scores and
//! alarms out) and the [`agent::Agent`], which receives every durable record from the buffer
//! writer in seq order and scores it. Each score also goes back into the buffer as a score
//! record ([`record_scores`]), which the uplink sends to the lake like the shot. The wire
//! format is in `docs/mqtt-contract.md`, the states and checks in `docs/rollout.md`.

pub(crate) mod agent;
pub(crate) mod store;
pub(crate) mod transfer;

use crate::buffer::{Durable, NewRecord, Writer};
use crate::config::{Device, DeviceRole, EdgeConfig};
use crate::health::Health;
use agent::{Agent, Loaded};
use anyhow::{Context, Result, anyhow};
use moldops_common::backoff::Backoff;
use moldops_scoring::Scorer;
use moldops_scoring::inference::Backend;
use moldops_scoring::judge::Limits;
use moldops_scoring::metrics::ScoringMetrics;
use moldops_shared::Record;
use moldops_shared::features::{device_alias, feature_names, peripheral_column};
use rumqttc::{AsyncClient, Event, EventLoop, Packet};
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch};

/// The feature names this edge computes per machine: its machine profile's values, then
/// `{device}.{value}` of every peripheral serving it (the shared schema's order).
pub(crate) fn available_features(devices: &[Device]) -> HashMap<String, Vec<String>> {
    let mut out = HashMap::new();
    for m in devices.iter().filter(|d| d.cfg.role == DeviceRole::Machine) {
        let machine = m.cfg.machine_id();
        let shot_values: Vec<&str> = m.profile.value_tags().iter().map(|t| t.name.as_str()).collect();
        let peripherals = devices
            .iter()
            .filter(|d| d.cfg.role == DeviceRole::Peripheral && d.cfg.machine_id() == machine)
            .flat_map(|d| {
                let alias = device_alias(machine, &d.cfg.id).to_string();
                d.profile.value_tags().into_iter().map(move |t| peripheral_column(&alias, &t.name))
            });
        out.insert(machine.to_string(), feature_names(shot_values, peripherals));
    }
    out
}

enum LinkEvent {
    Connected,
    Message(String, Vec<u8>),
}

/// Score records waiting for the buffer, in batches (one per batch of records scored); a
/// stalled buffer fills it and further score records are counted as lost.
const SCORE_BATCHES_QUEUED: usize = 4096;

/// Appends the agent's score records to the buffer, off the agent's task (it never waits for
/// a flush); a record the buffer refuses is counted and logged. Ends when the agent is gone.
async fn record_scores(writer: Writer, mut rx: mpsc::Receiver<Vec<Record>>, metrics: Arc<ScoringMetrics>) {
    while let Some(records) = rx.recv().await {
        let n = records.len();
        let items = records.into_iter().map(|record| NewRecord { record, shot_mark: None }).collect();
        if let Err(e) = writer.append(items).await {
            metrics.records_lost.inc_by(n as u64);
            tracing::error!(records = n, error = %format!("{e:#}"), "score records not buffered: lost");
        }
    }
}

/// Starts scoring and the rollout agent; `records` carries every durable record in seq order,
/// and score records go back through `writer`. The stored models are loaded only after
/// `polling` fires (or is dropped): the caller fires it once the pollers run, so rollout work
/// never delays polling.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn start(
    cfg: &EdgeConfig,
    devices: &[Device],
    base: &Path,
    health: Arc<Health>,
    writer: Writer,
    mut records: mpsc::UnboundedReceiver<Vec<Durable>>,
    gates: crate::gate::Feed,
    polling: tokio::sync::oneshot::Receiver<()>,
    mut shutdown: watch::Receiver<bool>,
) -> Result<tokio::task::JoinHandle<()>> {
    let models = cfg.models.clone().ok_or_else(|| anyhow!("no [models] section"))?;
    let public_key = models.key(base).map_err(|e| anyhow!(e))?;
    let ort_library =
        models.ort_library.as_ref().map(|p| if p.is_absolute() { p.clone() } else { base.join(p) });
    let backend = Backend::open(models.backend, ort_library, models.fallback)?;
    let store_dir = base.join(&models.store);
    let store = store::Store::open(&store_dir)?;
    let limits = Limits {
        max_alarm_rate: models.max_alarm_rate,
        max_score_shift: models.max_score_shift,
        false_alarm_tolerance: models.false_alarm_tolerance,
    };
    let metrics = health.scoring.clone();
    let mut scorer = Scorer::new(&cfg.edge_id, limits, metrics.clone());
    scorer.set_cold_start(models.cold_start.clone());
    scorer.set_drift(Some(models.drift.clone()));
    let mut opts =
        moldops_common::mqtt::options(&cfg.broker, &format!("moldops-edge-{}-models", cfg.edge_id), base)
            .context("models MQTT connection")?;
    opts.set_clean_session(true);
    let (client, events) = AsyncClient::new(opts, 10_000);
    let (load_tx, mut load_rx) = mpsc::unbounded_channel::<Loaded>();
    let (score_tx, score_rx) = mpsc::channel(SCORE_BATCHES_QUEUED);
    let score_sink = tokio::spawn(record_scores(writer, score_rx, metrics.clone()));
    let mut agent = Agent {
        site: cfg.site.clone(),
        edge_id: cfg.edge_id.clone(),
        client,
        store,
        scorer,
        public_key,
        available: available_features(devices),
        backend,
        max_bundle_bytes: models.max_bundle_bytes,
        shadow_shots: models.shadow_shots,
        metrics,
        load_tx,
        transfers: HashMap::new(),
        loading: HashMap::new(),
        score_records: score_tx,
        pending_scores: Vec::new(),
        gates,
        cold_start: models.cold_start.is_some(),
    };
    tracing::info!(store = %store_dir.display(), backend = agent.backend.kind().as_str(), "live scoring on");
    let (link_tx, mut link_rx) = mpsc::channel::<LinkEvent>(1024);
    tokio::spawn(drive(events, link_tx, shutdown.clone()));
    Ok(tokio::spawn(async move {
        // Loading the stored models takes time: it starts once the pollers poll (`polling`)
        // and runs on the blocking pool; records made meanwhile wait in `records`.
        let _ = polling.await;
        let mut agent = match tokio::task::spawn_blocking(move || {
            agent.restore();
            agent
        })
        .await
        {
            Ok(agent) => agent,
            Err(e) => {
                tracing::error!(error = %e, "restoring the stored models failed; live scoring is off");
                return;
            }
        };
        agent.report();
        loop {
            tokio::select! {
                batch = records.recv() => match batch {
                    Some(batch) => {
                        batch.iter().for_each(|d| agent.on_record(d));
                        agent.flush_scores();
                    }
                    None => break,
                },
                ev = link_rx.recv() => match ev {
                    Some(LinkEvent::Connected) => agent.on_connected(),
                    Some(LinkEvent::Message(topic, payload)) => agent.on_message(&topic, &payload),
                    None => break,
                },
                Some(done) = load_rx.recv() => agent.on_loaded(done),
                _ = shutdown.changed() => if *shutdown.borrow() {
                    // Score what the writer already made durable, then stop.
                    while let Ok(batch) = records.try_recv() {
                        batch.iter().for_each(|d| agent.on_record(d));
                    }
                    agent.flush_scores();
                    agent.save_baselines();
                    let _ = agent.client.try_disconnect();
                    break;
                },
            }
        }
        // The last score records reach the buffer before the edge flushes it.
        drop(agent);
        let _ = score_sink.await;
    }))
}

/// Drives the MQTT event loop, forwarding connections and messages; reconnects with back-off.
async fn drive(mut events: EventLoop, tx: mpsc::Sender<LinkEvent>, mut shutdown: watch::Receiver<bool>) {
    let mut backoff = Backoff::reconnect();
    loop {
        tokio::select! {
            ev = events.poll() => match ev {
                Ok(Event::Incoming(Packet::ConnAck(_))) => {
                    backoff.reset();
                    if tx.send(LinkEvent::Connected).await.is_err() { return; }
                }
                Ok(Event::Incoming(Packet::Publish(p))) => {
                    let msg = LinkEvent::Message(p.topic.clone(), p.payload.to_vec());
                    if tx.send(msg).await.is_err() { return; }
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::debug!(error = %e, "models MQTT connection lost; reconnecting");
                    tokio::select! {
                        _ = tokio::time::sleep(backoff.next_delay()) => {}
                        _ = shutdown.changed() => {}
                    }
                }
            },
            _ = shutdown.changed() => if *shutdown.borrow() {
                // Let the last reported state and scores go out.
                let _ = tokio::time::timeout(Duration::from_millis(500), async {
                    while events.poll().await.is_ok() {}
                }).await;
                return;
            },
        }
        if *shutdown.borrow() {
            return;
        }
    }
}
