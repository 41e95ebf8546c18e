//! Counters the ingest shares with whoever runs it (the CLI, the demo, tests): what arrived,
//! what was written, dropped and quarantined, and whether the subscription is in place.

use super::commit::Outcome;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use serde::Serialize;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use tokio::sync::watch;

/// Live counters of one ingest; share it with `Arc` and read it with [`IngestStats::snapshot`].
#[derive(Debug)]
pub struct IngestStats {
    messages: AtomicU64,
    raw_records: AtomicU64,
    peripheral_records: AtomicU64,
    gap_records: AtomicU64,
    score_records: AtomicU64,
    alarm_records: AtomicU64,
    status_records: AtomicU64,
    decision_records: AtomicU64,
    drift_records: AtomicU64,
    event_records: AtomicU64,
    dropped_at_edge: AtomicU64,
    duplicates: AtomicU64,
    quarantined: AtomicU64,
    foreign_sparkplug: AtomicU64,
    new_epochs: AtomicU64,
    commits: AtomicU64,
    files: AtomicU64,
    connected: AtomicBool,
    subscribed: watch::Sender<bool>,
    /// Group commits done, for whoever waits for the next one ([`IngestStats::watch_commits`]).
    committed: watch::Sender<u64>,
    commit_seconds: Histogram,
    commit_lag_seconds: Histogram,
}

/// A copy of the counters at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct StatsSnapshot {
    /// Publishes received on data topics.
    pub messages: u64,
    /// Rows committed to `raw_data`.
    pub raw_records: u64,
    /// Rows committed to `peripheral_data`.
    pub peripheral_records: u64,
    /// Gap records committed to `edge_gaps`.
    pub gap_records: u64,
    /// Score records (one per shot an edge scored) committed to `edge_scores`.
    pub score_records: u64,
    /// Of those, the alarms (score above the model's threshold).
    pub alarm_records: u64,
    /// Edge health snapshots committed to `edge_status`.
    pub status_records: u64,
    /// Quality-gate decisions committed to `edge_decisions`.
    pub decision_records: u64,
    /// Drift summaries of edges committed to `edge_drift`.
    pub drift_records: u64,
    /// Link and rollout events of edges committed to `edge_events`.
    pub event_records: u64,
    /// Records the edges' gap records say were dropped at the edge (buffer full).
    pub dropped_at_edge: u64,
    /// Records dropped because their `(site, edge_id, epoch, seq)` was already committed.
    pub duplicates: u64,
    /// Payloads and single records stored in the quarantine.
    pub quarantined: u64,
    /// Sparkplug B `DDATA` of nodes that are not moldops edges (no moldops record body),
    /// passed over: they are another system's data, not this lake's.
    pub foreign_sparkplug: u64,
    /// New buffer epochs of edges already in the lake (a buffer lost or replaced).
    pub new_epochs: u64,
    /// Group commits done.
    pub commits: u64,
    /// Part files written.
    pub files: u64,
    /// Connected to the broker now (set on CONNACK, cleared on a connection error or at stop).
    pub connected: bool,
    /// The broker has acknowledged the subscription at least once since the start.
    pub subscribed: bool,
}

impl Default for IngestStats {
    fn default() -> Self {
        IngestStats {
            messages: AtomicU64::new(0),
            raw_records: AtomicU64::new(0),
            peripheral_records: AtomicU64::new(0),
            gap_records: AtomicU64::new(0),
            score_records: AtomicU64::new(0),
            alarm_records: AtomicU64::new(0),
            status_records: AtomicU64::new(0),
            decision_records: AtomicU64::new(0),
            drift_records: AtomicU64::new(0),
            event_records: AtomicU64::new(0),
            dropped_at_edge: AtomicU64::new(0),
            duplicates: AtomicU64::new(0),
            quarantined: AtomicU64::new(0),
            foreign_sparkplug: AtomicU64::new(0),
            new_epochs: AtomicU64::new(0),
            commits: AtomicU64::new(0),
            files: AtomicU64::new(0),
            connected: AtomicBool::new(false),
            subscribed: watch::Sender::new(false),
            committed: watch::Sender::new(0),
            commit_seconds: Histogram::new([
                0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
            ]),
            commit_lag_seconds: Histogram::new([0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0]),
        }
    }
}

impl IngestStats {
    /// Reads every counter now (each read on its own, so not one atomic snapshot).
    pub fn snapshot(&self) -> StatsSnapshot {
        StatsSnapshot {
            messages: self.messages.load(Ordering::Relaxed),
            raw_records: self.raw_records.load(Ordering::Relaxed),
            peripheral_records: self.peripheral_records.load(Ordering::Relaxed),
            gap_records: self.gap_records.load(Ordering::Relaxed),
            score_records: self.score_records.load(Ordering::Relaxed),
            alarm_records: self.alarm_records.load(Ordering::Relaxed),
            status_records: self.status_records.load(Ordering::Relaxed),
            decision_records: self.decision_records.load(Ordering::Relaxed),
            drift_records: self.drift_records.load(Ordering::Relaxed),
            event_records: self.event_records.load(Ordering::Relaxed),
            dropped_at_edge: self.dropped_at_edge.load(Ordering::Relaxed),
            duplicates: self.duplicates.load(Ordering::Relaxed),
            quarantined: self.quarantined.load(Ordering::Relaxed),
            foreign_sparkplug: self.foreign_sparkplug.load(Ordering::Relaxed),
            new_epochs: self.new_epochs.load(Ordering::Relaxed),
            commits: self.commits.load(Ordering::Relaxed),
            files: self.files.load(Ordering::Relaxed),
            connected: self.connected.load(Ordering::Relaxed),
            subscribed: *self.subscribed.borrow(),
        }
    }

    /// A receiver that sees each group commit (the count of them) as it is done: to wait for
    /// what the ingest lands instead of polling.
    pub fn watch_commits(&self) -> watch::Receiver<u64> {
        self.committed.subscribe()
    }

    /// Resolves once the first subscription has been acknowledged by the broker.
    pub async fn wait_subscribed(&self) {
        let mut rx = self.subscribed.subscribe();
        // The sender lives in `self`, so the channel cannot close while we wait.
        let _ = rx.wait_for(|s| *s).await;
    }

    pub(super) fn message(&self) {
        self.messages.fetch_add(1, Ordering::Relaxed);
    }

    pub(super) fn set_connected(&self, up: bool) {
        self.connected.store(up, Ordering::Relaxed);
    }

    /// Marks the subscription in place; true the first time.
    pub(super) fn set_subscribed(&self) -> bool {
        !self.subscribed.send_replace(true)
    }

    /// Records one group commit: how long writing it took, and its lag — from the arrival of
    /// its oldest publish to the commit being durable (seconds).
    pub(super) fn observe_commit(&self, commit_seconds: f64, lag_seconds: f64) {
        self.commit_seconds.observe(commit_seconds);
        self.commit_lag_seconds.observe(lag_seconds);
    }

    /// Adds the commit latency and lag histograms to `r` (for `/metrics`).
    pub(super) fn register_histograms(&self, r: &mut Registry) {
        r.register("commit_seconds", "Time to write one group commit durably", self.commit_seconds.clone());
        r.register(
            "commit_lag_seconds",
            "From the arrival of a group's oldest publish to its commit being durable",
            self.commit_lag_seconds.clone(),
        );
    }

    pub(super) fn commit(&self, out: &Outcome) {
        self.raw_records.fetch_add(out.raw_records, Ordering::Relaxed);
        self.peripheral_records.fetch_add(out.peripheral_records, Ordering::Relaxed);
        self.gap_records.fetch_add(out.gap_records, Ordering::Relaxed);
        self.score_records.fetch_add(out.score_records, Ordering::Relaxed);
        self.alarm_records.fetch_add(out.alarm_records, Ordering::Relaxed);
        self.status_records.fetch_add(out.status_records, Ordering::Relaxed);
        self.decision_records.fetch_add(out.decision_records, Ordering::Relaxed);
        self.drift_records.fetch_add(out.drift_records, Ordering::Relaxed);
        self.event_records.fetch_add(out.event_records, Ordering::Relaxed);
        self.dropped_at_edge.fetch_add(out.dropped_at_edge, Ordering::Relaxed);
        self.duplicates.fetch_add(out.duplicates, Ordering::Relaxed);
        self.quarantined.fetch_add(out.quarantined, Ordering::Relaxed);
        self.foreign_sparkplug.fetch_add(out.foreign_sparkplug, Ordering::Relaxed);
        self.new_epochs.fetch_add(out.new_epochs, Ordering::Relaxed);
        self.files.fetch_add(out.files.len() as u64, Ordering::Relaxed);
        self.commits.fetch_add(1, Ordering::Relaxed);
        self.committed.send_modify(|n| *n += 1);
    }
}
