//! Local HTTP API (axum): `/healthz` for liveness, `/metrics` in Prometheus text format,
//! `/status` as JSON (devices, buffer, broker connection).

use crate::buffer::{Buffer, BufferStats};
use crate::health::{DeviceStatus, Health, MqttState};
use axum::Router;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Json};
use axum::routing::get;
use moldops_scoring::metrics::ModelsStatus;
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::Arc;

#[derive(Clone)]
pub(crate) struct ApiState {
    pub site: String,
    pub edge_id: String,
    pub health: Arc<Health>,
    pub buffer: Arc<Buffer>,
}

pub(crate) fn router(state: ApiState) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .route("/status", get(status))
        .with_state(state)
}

async fn healthz() -> Json<serde_json::Value> {
    Json(serde_json::json!({ "status": "ok" }))
}

async fn metrics(State(s): State<ApiState>) -> impl IntoResponse {
    let body = s.health.render(&s.buffer);
    ([(header::CONTENT_TYPE, crate::health::METRICS_CONTENT_TYPE)], body)
}

/// The body of `/status`.
#[derive(Debug, Serialize)]
struct StatusReport {
    site: String,
    edge_id: String,
    mqtt: MqttStatus,
    buffer: BufferStats,
    devices: BTreeMap<String, DeviceStatus>,
    models: ModelsStatus,
    /// Quality gates by machine (empty without `[[gates]]`).
    gates: BTreeMap<String, crate::gate::metrics::GateStatus>,
}

/// The uplink part of `/status`.
#[derive(Debug, Serialize)]
struct MqttStatus {
    state: MqttState,
    records_sent: u64,
    batches_sent: u64,
    /// Records the ingest confirmed durable (commit acks).
    records_committed: u64,
}

async fn status(State(s): State<ApiState>) -> Json<StatusReport> {
    let m = &s.health.metrics;
    Json(StatusReport {
        site: s.site.clone(),
        edge_id: s.edge_id.clone(),
        mqtt: MqttStatus {
            state: s.health.mqtt_state(),
            records_sent: m.records_sent.get(),
            batches_sent: m.batches_sent.get(),
            records_committed: m.records_committed.get(),
        },
        buffer: s.buffer.stats(),
        devices: s.health.devices(),
        models: s.health.scoring.status(),
        gates: s.health.gate.status(),
    })
}

/// Binds and serves the API until `shutdown` turns true.
pub(crate) async fn serve(
    listen: &str,
    state: ApiState,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) -> anyhow::Result<std::net::SocketAddr> {
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|e| anyhow::anyhow!("api.listen {listen}: {e}"))?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        let stop = async move {
            while !*shutdown.borrow() {
                if shutdown.changed().await.is_err() {
                    break;
                }
            }
        };
        if let Err(e) = axum::serve(listener, router(state)).with_graceful_shutdown(stop).await {
            tracing::error!(error = %e, "local API stopped");
        }
    });
    Ok(addr)
}
