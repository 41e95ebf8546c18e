//! Health of the edge: per-device status for `/status`, and the Prometheus metrics served
//! on `/metrics` (poll latency and errors per device, shots, buffer depth/bytes/oldest age,
//! MQTT state, records sent). Every task reports here; nothing here does I/O.

use crate::buffer::{Buffer, BufferStats};
use moldops_shared::status::EdgeHealth;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};

/// Label set of the per-device metrics: `device="<device id>"`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DeviceLabel {
    /// The device's `id` from the config.
    pub device: String,
}

/// What `/status` says about one device.
#[derive(Debug, Clone, Default, Serialize)]
pub struct DeviceStatus {
    /// `machine` or `peripheral`.
    pub role: String,
    /// Machine the device belongs to.
    pub machine_id: String,
    /// What is polled: Modbus `host:port`, serial port or OPC UA endpoint.
    pub target: String,
    /// True when the last poll succeeded.
    pub connected: bool,
    /// Successful polls since the start.
    pub polls: u64,
    /// Failed polls since the start.
    pub errors: u64,
    /// Error of the latest failed poll (kept after the device answers again).
    pub last_error: Option<String>,
    /// Wall-clock time (UTC ms) of the last successful poll.
    pub last_ok_ms: Option<i64>,
    /// Shot number of the last shot recorded (machines).
    pub last_shot: Option<u64>,
    /// Shot records made since the start, backfilled ones included (machines).
    pub shots: u64,
    /// Shots the controller made that could not be read back since the start.
    pub missed_shots: u64,
}

type LatencyFamily = Family<DeviceLabel, Histogram, fn() -> Histogram>;

/// The Prometheus metrics served on `/metrics`; names get the prefix `moldops_` (and counters
/// `_total`).
pub struct Metrics {
    /// `poll_duration_seconds`: latency of a device poll, s, per device (buckets 1 ms to 2.5 s).
    pub poll_seconds: LatencyFamily,
    /// `poll_errors`: failed polls per device.
    pub poll_errors: Family<DeviceLabel, Counter>,
    /// `device_up`: 1 when the device answered its last poll, else 0.
    pub device_up: Family<DeviceLabel, Gauge>,
    /// `shots`: shot records assembled per machine.
    pub shots: Family<DeviceLabel, Counter>,
    /// `shots_missed`: shots the controller made that could not be read back, per machine.
    pub shots_missed: Family<DeviceLabel, Counter>,
    /// `out_of_range_values`: values decoded outside their engineering range, per device.
    pub out_of_range: Family<DeviceLabel, Counter>,
    /// `mqtt_connected`: 1 while the uplink is connected to the broker.
    pub mqtt_connected: Gauge,
    /// `mqtt_connects`: successful broker connections.
    pub mqtt_connects: Counter,
    /// `records_sent`: records the broker acknowledged (PUBACK).
    pub records_sent: Counter,
    /// `batches_sent`: batches the broker acknowledged (PUBACK).
    pub batches_sent: Counter,
    /// `records_committed`: records the ingest confirmed durable in the lake (commit acks),
    /// removed from the buffer.
    pub records_committed: Counter,
    /// `resend_rounds`: times records the ingest had not confirmed were sent again.
    pub records_resent_rounds: Counter,
    /// `buffer_records`: records waiting in the buffer (buffer gauges are refreshed on each
    /// scrape).
    pub buffer_records: Gauge,
    /// `buffer_bytes`: stored record bytes in the buffer.
    pub buffer_bytes: Gauge,
    /// `buffer_disk_bytes`: size of the buffer's database on disk, bytes.
    pub buffer_disk_bytes: Gauge,
    /// `buffer_oldest_age_seconds`: age of the oldest buffered record, s (0 when empty).
    pub buffer_oldest_age: Gauge<f64, AtomicU64>,
    /// `buffer_dropped_records`: records dropped because the buffer was full, over its whole life.
    pub buffer_dropped: Counter,
    /// `buffer_dropped_unreported`: dropped records not yet written as gap records.
    pub buffer_dropped_unreported: Gauge,
    /// `buffer_resets`: corrupt buffers moved aside and replaced by a new one.
    pub buffer_resets: Counter,
    /// `buffer_write_errors`: buffer appends that failed since the start.
    pub buffer_write_errors: Counter,
    /// `buffer_disk_full`: 1 while appends fail because the disk is full.
    pub buffer_disk_full: Gauge,
}

fn latency_histogram() -> Histogram {
    Histogram::new([0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5])
}

/// The uplink's connection to the broker, as `/status` shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MqttState {
    /// The uplink has not tried yet.
    #[default]
    Starting,
    /// Waiting for the broker's CONNACK.
    Connecting,
    /// Connected; records flow.
    Connected,
    /// Lost; records stay in the buffer until the link is back.
    Disconnected,
}

/// Shared health state of one edge process.
pub struct Health {
    /// The Prometheus metrics every task updates.
    pub metrics: Metrics,
    /// Live scoring's metrics and status (served with the rest).
    pub scoring: Arc<moldops_scoring::metrics::ScoringMetrics>,
    /// The quality gates' metrics and status (served with the rest).
    pub gate: Arc<crate::gate::GateMetrics>,
    registry: Registry,
    devices: Mutex<BTreeMap<String, DeviceStatus>>,
    mqtt_state: Mutex<MqttState>,
}

impl Health {
    /// Registers every metric (live scoring's too) and starts with no devices and MQTT `starting`.
    pub fn new() -> Arc<Health> {
        let metrics = Metrics {
            poll_seconds: Family::new_with_constructor(latency_histogram),
            poll_errors: Family::default(),
            device_up: Family::default(),
            shots: Family::default(),
            shots_missed: Family::default(),
            out_of_range: Family::default(),
            mqtt_connected: Gauge::default(),
            mqtt_connects: Counter::default(),
            records_sent: Counter::default(),
            batches_sent: Counter::default(),
            records_committed: Counter::default(),
            records_resent_rounds: Counter::default(),
            buffer_records: Gauge::default(),
            buffer_bytes: Gauge::default(),
            buffer_disk_bytes: Gauge::default(),
            buffer_oldest_age: Gauge::default(),
            buffer_dropped: Counter::default(),
            buffer_dropped_unreported: Gauge::default(),
            buffer_resets: Counter::default(),
            buffer_write_errors: Counter::default(),
            buffer_disk_full: Gauge::default(),
        };
        let mut r = Registry::with_prefix("moldops");
        let m = &metrics;
        r.register("poll_duration_seconds", "Latency of a device poll", m.poll_seconds.clone());
        r.register("poll_errors", "Failed device polls", m.poll_errors.clone());
        r.register("device_up", "1 when the device answered its last poll", m.device_up.clone());
        r.register("shots", "Shot records assembled per machine", m.shots.clone());
        r.register(
            "shots_missed",
            "Shots the controller made that could not be read back",
            m.shots_missed.clone(),
        );
        r.register(
            "out_of_range_values",
            "Values decoded outside their engineering range",
            m.out_of_range.clone(),
        );
        r.register("mqtt_connected", "1 while connected to the broker", m.mqtt_connected.clone());
        r.register("mqtt_connects", "Successful broker connections", m.mqtt_connects.clone());
        r.register("records_sent", "Records acknowledged by the broker (PUBACK)", m.records_sent.clone());
        r.register("batches_sent", "Batches acknowledged by the broker", m.batches_sent.clone());
        r.register(
            "records_committed",
            "Records the ingest confirmed durable in the lake (commit acks), removed from the buffer",
            m.records_committed.clone(),
        );
        r.register(
            "resend_rounds",
            "Times records unconfirmed by the ingest were sent again",
            m.records_resent_rounds.clone(),
        );
        r.register("buffer_records", "Records waiting in the buffer", m.buffer_records.clone());
        r.register("buffer_bytes", "Record bytes in the buffer", m.buffer_bytes.clone());
        r.register("buffer_disk_bytes", "Size of the buffer on disk", m.buffer_disk_bytes.clone());
        r.register(
            "buffer_oldest_age_seconds",
            "Age of the oldest buffered record",
            m.buffer_oldest_age.clone(),
        );
        r.register(
            "buffer_dropped_records",
            "Records dropped because the buffer was full",
            m.buffer_dropped.clone(),
        );
        r.register(
            "buffer_dropped_unreported",
            "Dropped records not yet written as gap records for the cloud",
            m.buffer_dropped_unreported.clone(),
        );
        r.register(
            "buffer_resets",
            "Corrupt buffers moved aside and replaced by a new one (a new epoch)",
            m.buffer_resets.clone(),
        );
        r.register(
            "buffer_write_errors",
            "Buffer appends that failed since the start (disk full, I/O errors)",
            m.buffer_write_errors.clone(),
        );
        r.register("buffer_disk_full", "1 while the buffer's disk is full", m.buffer_disk_full.clone());
        let scoring = Arc::new(moldops_scoring::metrics::ScoringMetrics::default());
        scoring.register(&mut r);
        let gate = Arc::new(crate::gate::GateMetrics::default());
        gate.register(&mut r);
        Arc::new(Health {
            metrics,
            scoring,
            gate,
            registry: r,
            devices: Mutex::new(BTreeMap::new()),
            mqtt_state: Mutex::new(MqttState::Starting),
        })
    }

    /// Updates one device's status in place.
    pub fn device(&self, id: &str, f: impl FnOnce(&mut DeviceStatus)) {
        let mut devices = self.devices.lock().unwrap_or_else(|e| e.into_inner());
        f(devices.entry(id.to_string()).or_default());
    }

    /// A copy of every device's status, by device id (for `/status`).
    pub fn devices(&self) -> BTreeMap<String, DeviceStatus> {
        self.devices.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Records the uplink's connection state and sets `mqtt_connected` to match.
    pub fn set_mqtt_state(&self, state: MqttState) {
        self.metrics.mqtt_connected.set(i64::from(state == MqttState::Connected));
        *self.mqtt_state.lock().unwrap_or_else(|e| e.into_inner()) = state;
    }

    /// The uplink's connection state now.
    pub fn mqtt_state(&self) -> MqttState {
        *self.mqtt_state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A snapshot of the edge's health for the lake ([`crate::heartbeat`]): `buffer`'s
    /// figures, the broker link, the `devices` the edge polls (how many are down), the models.
    pub fn snapshot(&self, buffer: &BufferStats, devices: usize, running: bool, uptime_s: f64) -> EdgeHealth {
        let polled = self.devices();
        let models = self.scoring.status();
        let now_ms = chrono::Utc::now().timestamp_millis();
        EdgeHealth {
            running,
            uptime_s,
            buffered_records: buffer.records,
            buffered_bytes: buffer.bytes,
            oldest_buffered_s: buffer.oldest_age_s(now_ms),
            dropped_records: buffer.dropped,
            buffer_write_errors: buffer.write_errors,
            broker_connected: self.mqtt_state() == MqttState::Connected,
            records_sent: self.metrics.records_sent.get(),
            devices: devices as u64,
            // A device that never answered has no entry yet: it counts as down.
            devices_down: devices.saturating_sub(polled.values().filter(|d| d.connected).count()) as u64,
            poll_errors: polled.values().map(|d| d.errors).sum(),
            missed_shots: polled.values().map(|d| d.missed_shots).sum(),
            models_active: models.keys.values().filter(|k| k.model_id.is_some()).count() as u64,
            scored_shots: models.keys.values().map(|k| k.scored).sum(),
            alarms: models.keys.values().map(|k| k.alarms).sum(),
            score_records_lost: models.score_records_lost,
            per_device: polled
                .iter()
                .map(|(id, d)| moldops_shared::status::DeviceHealth {
                    device_id: id.clone(),
                    up: d.connected,
                    poll_errors: d.errors,
                    missed_shots: d.missed_shots,
                })
                .collect(),
        }
    }

    /// Prometheus text exposition, with buffer gauges refreshed from `buffer`.
    pub fn render(&self, buffer: &Buffer) -> String {
        let st = buffer.stats();
        let m = &self.metrics;
        m.buffer_records.set(st.records as i64);
        m.buffer_bytes.set(st.bytes as i64);
        m.buffer_disk_bytes.set(st.disk_bytes as i64);
        // Totals the buffer keeps (persisted, or since the start): counters that catch up.
        catch_up(&m.buffer_dropped, st.dropped);
        m.buffer_dropped_unreported.set(st.dropped_unreported as i64);
        catch_up(&m.buffer_resets, st.resets);
        catch_up(&m.buffer_write_errors, st.write_errors);
        m.buffer_disk_full.set(i64::from(st.write_failing.as_ref().is_some_and(|f| f.disk_full)));
        m.buffer_oldest_age.set(st.oldest_age_s(chrono::Utc::now().timestamp_millis()));
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.push_str("# encoding failed\n");
        }
        out
    }
}

/// The content type of [`Health::render`]'s text: OpenMetrics (it ends in `# EOF`).
pub const METRICS_CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Raises `counter` to `total`, a running total kept elsewhere (it never goes down while the
/// process lives; a restart starts the counter at 0, which Prometheus reads as a reset).
fn catch_up(counter: &Counter, total: u64) {
    let now = counter.get();
    if total > now {
        counter.inc_by(total - now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example Grafana dashboard only charts metrics the edge (or the ingest) serves.
    #[test]
    fn the_example_dashboard_charts_metrics_the_edge_serves() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (buffer, _) = Buffer::open_or_reset(&dir.path().join("buf"), 1 << 20).expect("buffer");
        let health = Health::new();
        // A family shows in the text once it has a member: one device and one model key.
        let (m, device) = (&health.metrics, DeviceLabel { device: "m1".into() });
        m.poll_seconds.get_or_create(&device).observe(0.01);
        m.poll_errors.get_or_create(&device).inc();
        m.device_up.get_or_create(&device).set(1);
        m.shots.get_or_create(&device).inc();
        m.shots_missed.get_or_create(&device).inc();
        m.out_of_range.get_or_create(&device).inc();
        let key = moldops_scoring::metrics::KeyLabel { model_key: "m1".into() };
        health.scoring.observe_latency("m1", 1e-4);
        health.scoring.scored.get_or_create(&key).inc();
        health.scoring.alarms.get_or_create(&key).inc();
        health.scoring.shadow_scored.get_or_create(&key).inc();
        health.scoring.model_version.get_or_create(&key).set(1);
        let text = health.render(&buffer);
        assert!(text.ends_with("# EOF\n"), "OpenMetrics text");
        assert!(text.contains("# TYPE moldops_buffer_dropped_records counter"), "{text}");
        let dashboard = include_str!("../../deploy/grafana/moldops-dashboard.json");
        let edge_metric = |n: &str| n.starts_with("moldops_") && !n.starts_with("moldops_ingest_");
        let charted = moldops_testkit::metrics::assert_dashboard_served(dashboard, &text, edge_metric);
        assert!(charted >= 10, "the dashboard charts the edge ({charted} expressions)");
    }
}
