//! The ingest's own small HTTP endpoint, for Kubernetes probes and monitoring: `/healthz`
//! (alive), `/readyz` (connected to the broker and subscribed: 503 otherwise), `/status` (the
//! counters as JSON) and `/metrics` (the same, with commit latency and lag histograms, as
//! OpenMetrics text).

use super::stats::{IngestStats, StatsSnapshot};
use anyhow::{Context, Result};
use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Json};
use axum::routing::get;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;
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
    ([(header::CONTENT_TYPE, METRICS_CONTENT_TYPE)], exposition(&stats))
}

/// The content type of `/metrics`: OpenMetrics text (it ends in `# EOF`).
pub const METRICS_CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The counters (`moldops_ingest_*_total`), gauges and histograms as OpenMetrics text.
fn exposition(stats: &IngestStats) -> String {
    let s = stats.snapshot();
    let counters = [
        ("messages", "Publishes received on data topics", s.messages),
        ("raw_records", "Rows committed to raw_data", s.raw_records),
        ("peripheral_records", "Rows committed to peripheral_data", s.peripheral_records),
        ("gap_records", "Gap records committed to edge_gaps", s.gap_records),
        (
            "score_records",
            "Score records (one per shot scored at an edge) committed to edge_scores",
            s.score_records,
        ),
        ("alarm_records", "Alarms among the score records committed", s.alarm_records),
        ("status_records", "Edge health snapshots committed to edge_status", s.status_records),
        ("decision_records", "Quality-gate decisions committed to edge_decisions", s.decision_records),
        ("drift_records", "Drift summaries of edges committed to edge_drift", s.drift_records),
        ("event_records", "Edge link and rollout events committed to edge_events", s.event_records),
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
            "foreign_sparkplug",
            "Sparkplug B DDATA of nodes that are not moldops edges, passed over",
            s.foreign_sparkplug,
        ),
        (
            "new_epochs",
            "New buffer epochs of edges already in the lake (a buffer lost or replaced)",
            s.new_epochs,
        ),
        ("commits", "Group commits", s.commits),
        ("files", "Part files written", s.files),
    ];
    let mut r = Registry::with_prefix("moldops_ingest");
    for (name, help, v) in counters {
        r.register(name, help, ConstCounter::new(v));
    }
    for (name, help, v) in [
        ("connected", "1 while connected to the broker", s.connected),
        ("subscribed", "1 once the data subscription is in place", s.subscribed),
    ] {
        r.register(name, help, ConstGauge::new(i64::from(v)));
    }
    stats.register_histograms(&mut r);
    let mut out = String::new();
    if prometheus_client::encoding::text::encode(&mut out, &r).is_err() {
        out.push_str("# encoding failed\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposition_names_every_counter() {
        let stats = IngestStats::default();
        stats.observe_commit(0.004, 0.25);
        let text = exposition(&stats);
        assert!(text.contains("moldops_ingest_dropped_at_edge_total 0"), "{text}");
        assert!(text.contains("moldops_ingest_score_records_total 0"), "{text}");
        assert!(text.contains("moldops_ingest_decision_records_total 0"), "{text}");
        assert!(text.contains("moldops_ingest_drift_records_total 0"), "{text}");
        assert!(
            text.contains("moldops_ingest_connected 0") && text.contains("moldops_ingest_subscribed 0"),
            "{text}"
        );
        assert!(text.contains("moldops_ingest_commit_seconds_count 1"), "{text}");
        assert!(text.contains("moldops_ingest_commit_lag_seconds_bucket{le=\"0.5\"} 1"), "{text}");
        assert_eq!(text.matches("# TYPE").count(), 21, "{text}");
        assert!(text.ends_with("# EOF\n"), "OpenMetrics text ends in # EOF");
    }

    /// The example Grafana dashboard only charts ingest metrics the ingest serves.
    #[test]
    fn the_example_dashboard_charts_metrics_the_ingest_serves() {
        let text = exposition(&IngestStats::default());
        let dashboard = include_str!("../../../deploy/grafana/moldops-dashboard.json");
        let ingest_metric = |n: &str| n.starts_with("moldops_ingest_");
        let charted = moldops_testkit::metrics::assert_dashboard_served(dashboard, &text, ingest_metric);
        assert!(charted >= 8, "the dashboard charts the ingest ({charted} expressions)");
    }
}
