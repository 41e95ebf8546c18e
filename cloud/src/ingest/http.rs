//! The ingest's own small HTTP endpoint, for Kubernetes probes and monitoring: `/healthz`
//! (alive), `/readyz` (connected to the broker and subscribed: 503 otherwise), `/status` (the
//! counters as JSON) and `/metrics` (the same in Prometheus text format).

use super::stats::{IngestStats, StatsSnapshot};
use anyhow::{Context, Result};
use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Json};
use axum::routing::get;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;

/// Binds `listen` and serves until the runtime ends; returns the bound address.
pub async fn serve(listen: &str, stats: Arc<IngestStats>) -> Result<SocketAddr> {
    let listener =
        tokio::net::TcpListener::bind(listen).await.with_context(|| format!("ingest.listen {listen}"))?;
    let addr = listener.local_addr()?;
    let app = Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(ready))
        .route("/status", get(status))
        .route("/metrics", get(metrics))
        .with_state(stats);
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!(error = %e, "the ingest's HTTP endpoint stopped");
        }
    });
    Ok(addr)
}

async fn ready(State(stats): State<Arc<IngestStats>>) -> (StatusCode, &'static str) {
    let s = stats.snapshot();
    match (s.connected, s.subscribed) {
        (true, true) => (StatusCode::OK, "ready"),
        (false, _) => (StatusCode::SERVICE_UNAVAILABLE, "not connected to the broker"),
        (true, false) => (StatusCode::SERVICE_UNAVAILABLE, "not subscribed yet"),
    }
}

async fn status(State(stats): State<Arc<IngestStats>>) -> Json<StatsSnapshot> {
    Json(stats.snapshot())
}

async fn metrics(State(stats): State<Arc<IngestStats>>) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], exposition(&stats.snapshot()))
}

/// The counters in Prometheus text format.
fn exposition(s: &StatsSnapshot) -> String {
    let counters = [
        ("messages", "Publishes received on data topics", s.messages),
        ("raw_records", "Rows committed to raw_data", s.raw_records),
        ("peripheral_records", "Rows committed to peripheral_data", s.peripheral_records),
        ("gap_records", "Gap records committed to edge_gaps", s.gap_records),
        (
            "dropped_at_edge",
            "Records edges report they dropped unsent because their buffer was full",
            s.dropped_at_edge,
        ),
        (
            "duplicates",
            "Records dropped because their (site, edge, epoch, seq) was already committed",
            s.duplicates,
        ),
        ("quarantined", "Payloads and single records stored in the quarantine", s.quarantined),
        (
            "new_epochs",
            "New buffer epochs of edges already in the lake (a buffer lost or replaced)",
            s.new_epochs,
        ),
        ("commits", "Group commits", s.commits),
        ("files", "Part files written", s.files),
    ];
    let mut out = String::new();
    for (name, help, v) in counters {
        let _ = writeln!(out, "# HELP moldops_ingest_{name} {help}.\n# TYPE moldops_ingest_{name} counter");
        let _ = writeln!(out, "moldops_ingest_{name}_total {v}");
    }
    for (name, help, v) in [
        ("connected", "1 while connected to the broker", s.connected),
        ("subscribed", "1 once the data subscription is in place", s.subscribed),
    ] {
        let _ = writeln!(out, "# HELP moldops_ingest_{name} {help}.\n# TYPE moldops_ingest_{name} gauge");
        let _ = writeln!(out, "moldops_ingest_{name} {}", u8::from(v));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposition_names_every_counter() {
        let s = StatsSnapshot {
            quarantined: 3,
            new_epochs: 1,
            dropped_at_edge: 42,
            connected: true,
            ..Default::default()
        };
        let text = exposition(&s);
        assert!(text.contains("moldops_ingest_dropped_at_edge_total 42"), "{text}");
        assert!(text.contains("moldops_ingest_quarantined_total 3"), "{text}");
        assert!(text.contains("moldops_ingest_new_epochs_total 1"), "{text}");
        assert!(
            text.contains("moldops_ingest_connected 1") && text.contains("moldops_ingest_subscribed 0"),
            "{text}"
        );
        assert_eq!(text.matches("# TYPE").count(), 12);
    }
}
