//! Local HTTP API (axum): `/healthz` for liveness, `/metrics` in Prometheus text format,
//! `/status` as JSON (devices, buffer, broker connection).

use crate::buffer::Buffer;
use crate::health::Health;
use axum::Router;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Json};
use axum::routing::get;
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
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], body)
}

async fn status(State(s): State<ApiState>) -> Json<serde_json::Value> {
    let m = &s.health.metrics;
    Json(serde_json::json!({
        "site": s.site,
        "edge_id": s.edge_id,
        "mqtt": {
            "state": s.health.mqtt_state(),
            "records_sent": m.records_sent.get(),
            "batches_sent": m.batches_sent.get(),
        },
        "buffer": s.buffer.stats(),
        "devices": s.health.devices(),
        "models": s.health.scoring.status(),
    }))
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
