//! Wiring of the edge daemon: opens the buffer, starts one poller per device, the uplink, the
//! heartbeat and the local API, and stops them all in order on shutdown. Also the capacity estimate
//! `check-config` prints (how long a broker outage the buffer covers).

use crate::api::{self, ApiState};
use crate::buffer::{Buffer, Writer};
use crate::config::{Device, DeviceRole, EdgeConfig};
use crate::health::Health;
use crate::schedule::DevicePoller;
use crate::uplink::Uplink;
use anyhow::Result;
use std::path::Path;
use tokio::sync::watch;

/// Handles of a running edge, for callers that embed it (demo, tests).
pub struct RunningEdge {
    /// Address the local API listens on; `None` when `api.listen` is empty.
    pub api_addr: Option<std::net::SocketAddr>,
    /// Health and metrics of the running edge.
    pub health: std::sync::Arc<Health>,
    /// The open buffer (flushed by [`RunningEdge::join`]).
    pub buffer: std::sync::Arc<Buffer>,
    poll_stop: std::sync::Arc<watch::Sender<bool>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl RunningEdge {
    /// Stops polling devices while the uplink keeps draining the buffer (for a clean end of a
    /// run: nothing new arrives, everything buffered still goes out).
    pub fn stop_polling(&self) {
        self.poll_stop.send_replace(true);
    }

    /// Waits for every task to finish (after shutdown was signalled) and flushes the buffer.
    pub async fn join(self) -> Result<()> {
        for t in self.tasks {
            let _ = t.await;
        }
        self.buffer.flush().await
    }
}

/// Starts the edge. `base_dir` resolves relative paths of the config (buffer, TLS files).
pub async fn start(
    cfg: EdgeConfig,
    devices: Vec<Device>,
    base_dir: &Path,
    shutdown: watch::Receiver<bool>,
) -> Result<RunningEdge> {
    let buffer_path = base_dir.join(&cfg.buffer.path);
    let (buffer, _reset) = Buffer::open_or_reset(&buffer_path, cfg.buffer.max_bytes)?;
    let health = Health::new();
    let (tap, tapped) = if cfg.models.is_some() || !cfg.gates.is_empty() {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        (Some(tx), Some(rx))
    } else {
        (None, None)
    };
    let writer = Writer::spawn_tapped(buffer.clone(), tap);
    let (gates, gate_tasks) =
        start_gates(&cfg, &devices, base_dir, &buffer, writer.clone(), health.clone(), &shutdown)?;
    let (scoring, feeder) = match (cfg.models.is_some(), tapped) {
        (true, tapped) => (tapped, None),
        (false, Some(rx)) => {
            (None, Some(tokio::spawn(crate::gate::feed_without_models(gates.clone(), rx, shutdown.clone()))))
        }
        (false, None) => (None, None),
    };
    // Live scoring is set up before polling: a backend that cannot run stops the edge before
    // it polls. Its models load only once the pollers run (`polling_tx` below).
    let (polling_tx, polling_rx) = tokio::sync::oneshot::channel();
    let scoring_task = match scoring {
        Some(rx) => Some(
            crate::rollout::start(
                &cfg,
                &devices,
                base_dir,
                health.clone(),
                writer.clone(),
                rx,
                gates,
                polling_rx,
                shutdown.clone(),
            )
            .await?,
        ),
        None => None,
    };
    let (poll_stop, poll_rx) = watch::channel(false);
    let poll_stop = std::sync::Arc::new(poll_stop);
    let mut tasks = vec![tokio::spawn(forward_stop(shutdown.clone(), poll_stop.clone()))];
    tasks.extend(scoring_task);
    tasks.extend(feeder);
    tasks.extend(gate_tasks);
    let heartbeat = crate::heartbeat::run(
        writer.clone(),
        health.clone(),
        buffer.clone(),
        devices.len(),
        shutdown.clone(),
    );
    tasks.push(tokio::spawn(heartbeat));
    // The uplink's Sparkplug births declare the devices' tag maps.
    let uplink = Uplink::new(cfg.clone(), base_dir.to_path_buf(), buffer.clone(), health.clone())
        .with_devices(&devices);
    // RTU devices on one serial path share one port (RS-485 multi-drop).
    let mut lines = crate::sources::serial_line::Lines::default();
    for d in devices {
        let last =
            if d.cfg.role == DeviceRole::Machine { buffer.last_shot(d.cfg.machine_id())? } else { None };
        let poller = DevicePoller::new(d, &mut lines, writer.clone(), health.clone(), last);
        tasks.push(tokio::spawn(poller.run(poll_rx.clone())));
    }
    tasks.push(tokio::spawn(uplink.run(shutdown.clone())));
    let api_addr = if cfg.api.listen.trim().is_empty() {
        None
    } else {
        let state = ApiState {
            site: cfg.site.clone(),
            edge_id: cfg.edge_id.clone(),
            health: health.clone(),
            buffer: buffer.clone(),
        };
        Some(api::serve(&cfg.api.listen, state, shutdown.clone()).await?)
    };
    let stats = buffer.stats();
    tracing::info!(edge_id = %cfg.edge_id, epoch = %stats.epoch, buffered = stats.records, next_seq = stats.next_seq,
        dropped = stats.dropped, buffer_resets = stats.resets, api = ?api_addr, "edge started");
    let _ = polling_tx.send(());
    Ok(RunningEdge { api_addr, health, buffer, poll_stop, tasks })
}

/// Starts the quality gates of `[[gates]]` (none: an empty feed). Their journal lies beside
/// the buffer (`{buffer}.gate.json`), outside the folder a corrupt buffer is moved aside with.
fn start_gates(
    cfg: &EdgeConfig,
    devices: &[Device],
    base: &Path,
    buffer: &Buffer,
    writer: Writer,
    health: std::sync::Arc<Health>,
    shutdown: &watch::Receiver<bool>,
) -> Result<(crate::gate::Feed, Vec<tokio::task::JoinHandle<()>>)> {
    if cfg.gates.is_empty() {
        return Ok((crate::gate::Feed::default(), Vec::new()));
    }
    let mut recorded = std::collections::HashMap::new();
    for d in devices.iter().filter(|d| d.cfg.role == DeviceRole::Machine) {
        let machine = d.cfg.machine_id().to_string();
        let shot = buffer.last_shot(&machine)?;
        recorded.insert(machine, crate::gate::LastRecorded { shot, bits: d.profile.counter_bits() });
    }
    let mut journal_path = base.join(&cfg.buffer.path).into_os_string();
    journal_path.push(".gate.json");
    let journal = crate::gate::Journal::open(Path::new(&journal_path));
    let ctx = crate::gate::Context {
        writer,
        metrics: health.gate.clone(),
        journal: std::sync::Arc::new(std::sync::Mutex::new(journal)),
        recorded,
        base: base.to_path_buf(),
    };
    crate::gate::start(&cfg.gates, ctx, shutdown)
}

/// Stops the pollers when the whole edge shuts down.
async fn forward_stop(mut shutdown: watch::Receiver<bool>, poll_stop: std::sync::Arc<watch::Sender<bool>>) {
    let _ = shutdown.wait_for(|s| *s).await;
    poll_stop.send_replace(true);
}

/// Estimated bytes per second the devices produce, assuming one shot per `cycle_s` seconds.
pub fn estimated_bytes_per_s(devices: &[Device], cycle_s: f64) -> f64 {
    devices
        .iter()
        .map(|d| {
            let values = d.profile.value_tags();
            let per_record = 160.0 + values.iter().map(|t| t.name.len() as f64 + 14.0).sum::<f64>();
            let per_s = match d.cfg.role {
                DeviceRole::Machine => 1.0 / cycle_s.max(0.1),
                DeviceRole::Peripheral => 1000.0 / d.cfg.poll_interval_ms.max(1) as f64,
            };
            per_record * per_s
        })
        .sum()
}

/// Stored bytes of one score record (the durable copy of a live score), without an alarm's
/// contributions: the record JSON with its model stamp, plus the 8-byte store time.
pub const SCORE_RECORD_BYTES: f64 = 400.0;

/// Stored bytes of one decision record of a quality gate, with a model stamp.
pub const DECISION_RECORD_BYTES: f64 = 450.0;

/// Estimated bytes per second the edge buffers: what the devices produce, plus a score record
/// per shot when live scoring is on (`[models]`) and a decision record per shot of each gated
/// machine (`[[gates]]`).
pub fn estimated_buffer_bytes_per_s(cfg: &EdgeConfig, devices: &[Device], cycle_s: f64) -> f64 {
    let machines = devices.iter().filter(|d| d.cfg.role == DeviceRole::Machine).count() as f64;
    let scores = if cfg.models.is_some() { machines * SCORE_RECORD_BYTES / cycle_s.max(0.1) } else { 0.0 };
    let decisions = cfg.gates.len() as f64 * DECISION_RECORD_BYTES / cycle_s.max(0.1);
    estimated_bytes_per_s(devices, cycle_s) + scores + decisions
}

/// Hours of broker outage the buffer covers at the estimated rate.
pub fn outage_hours(cfg: &EdgeConfig, devices: &[Device], cycle_s: f64) -> f64 {
    let rate = estimated_buffer_bytes_per_s(cfg, devices, cycle_s);
    if rate <= 0.0 { f64::INFINITY } else { cfg.buffer.max_bytes as f64 / rate / 3600.0 }
}
