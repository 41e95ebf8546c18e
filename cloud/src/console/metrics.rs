//! The console's `/metrics` (OpenMetrics text): requests and their latency per route and
//! status, write actions per kind and outcome, and the learning pipeline's runs read from the
//! run store at scrape time — runs per status, the latest run's duration and start, and failed
//! attempts per task over the runs kept.

use crate::pipeline::{RunStatus, RunStore};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use std::collections::BTreeMap;
use std::path::Path;

/// A request's route (the route's pattern, not the path: bounded) and status code.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabel {
    /// Route pattern, e.g. `/alarms/{machine}/{ts_ms}`.
    pub route: String,
    /// HTTP status code.
    pub status: u16,
}

/// A route.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabel {
    /// Route pattern.
    pub route: String,
}

/// A write action and how it ended.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ActionLabel {
    /// `acknowledge`, `promote`, `archive` or `rollout`.
    pub action: String,
    /// `ok` or `refused`.
    pub outcome: String,
}

type Latency = Family<RouteLabel, Histogram, fn() -> Histogram>;

fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.001, 2.5, 12))
}

/// The console's live metrics.
pub struct Metrics {
    requests: Family<RequestLabel, Counter>,
    seconds: Latency,
    actions: Family<ActionLabel, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            requests: Family::default(),
            seconds: Family::new_with_constructor(latency_histogram),
            actions: Family::default(),
        }
    }
}

impl Metrics {
    /// Counts one answered request.
    pub fn request(&self, route: &str, status: u16, seconds: f64) {
        self.requests.get_or_create(&RequestLabel { route: route.to_string(), status }).inc();
        self.seconds.get_or_create(&RouteLabel { route: route.to_string() }).observe(seconds);
    }

    /// Counts one write action.
    pub fn action(&self, action: &str, ok: bool) {
        let outcome = if ok { "ok" } else { "refused" };
        self.actions
            .get_or_create(&ActionLabel { action: action.to_string(), outcome: outcome.into() })
            .inc();
    }

    /// The exposition: the live metrics, the pipeline's runs under `data` and, with the data in
    /// a bucket, the pulls of the console's copy that failed (`failed_pulls`).
    pub fn exposition(&self, data: &Path, failed_pulls: Option<u64>) -> String {
        let mut r = Registry::with_prefix("moldops");
        r.register(
            "console_requests",
            "Console and API requests answered, per route and status",
            self.requests.clone(),
        );
        r.register(
            "console_request_seconds",
            "Time to answer a console or API request",
            self.seconds.clone(),
        );
        r.register(
            "console_actions",
            "Write actions (acknowledge, promote, archive, rollout) per outcome",
            self.actions.clone(),
        );
        pipeline(&mut r, data);
        lake_cache(&mut r);
        if let Some(n) = failed_pulls {
            r.register(
                "console_bucket_pull_failures",
                "Pulls of the console's copy of the bucket that failed (the copy was served as it was)",
                prometheus_client::metrics::counter::ConstCounter::new(n),
            );
        }
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &r).is_err() {
            out.push_str("# encoding failed\n");
        }
        out
    }
}

/// The lake's part-file cache, when it is on.
fn lake_cache(r: &mut Registry) {
    let Some(s) = crate::lake::cache::stats() else { return };
    let gauge = |v: usize| ConstGauge::new(i64::try_from(v).unwrap_or(i64::MAX));
    r.register("console_lake_cache_files", "Lake part files held in memory", gauge(s.files));
    r.register("console_lake_cache_bytes", "Estimated size of the lake part files held", gauge(s.bytes));
    let count = |v: u64| prometheus_client::metrics::counter::ConstCounter::new(v);
    r.register("console_lake_cache_hits", "Part file reads answered from memory", count(s.hits));
    r.register("console_lake_cache_misses", "Part file reads that went to the file", count(s.misses));
}

/// A run status.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StatusLabel {
    status: String,
}

/// A pipeline.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PipelineLabel {
    pipeline: String,
}

/// A task.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TaskLabel {
    task: String,
}

/// The pipeline's runs as metrics; a store that cannot be read adds `pipeline_store_readable 0`.
fn pipeline(r: &mut Registry, data: &Path) {
    let runs = RunStore::new(data).list();
    r.register(
        "pipeline_store_readable",
        "1 when the pipeline's run store could be read",
        ConstGauge::new(i64::from(runs.is_ok())),
    );
    let runs = runs.unwrap_or_default();
    let by_status: Family<StatusLabel, Gauge> = Family::default();
    for s in [RunStatus::Running, RunStatus::Succeeded, RunStatus::Failed, RunStatus::Cancelled] {
        let n = runs.iter().filter(|run| run.status == s).count();
        by_status.get_or_create(&StatusLabel { status: status_name(s) }).set(n as i64);
    }
    r.register("pipeline_runs", "Pipeline runs in the run store, per status", by_status);
    let mut latest: BTreeMap<&str, &crate::pipeline::RunRecord> = BTreeMap::new();
    for run in &runs {
        let slot = latest.entry(run.pipeline.as_str()).or_insert(run);
        if run.created > slot.created {
            *slot = run;
        }
    }
    let duration: Family<PipelineLabel, Gauge<f64, std::sync::atomic::AtomicU64>> = Family::default();
    let started: Family<PipelineLabel, Gauge> = Family::default();
    let now = chrono::Utc::now();
    for (name, run) in latest {
        let label = PipelineLabel { pipeline: name.to_string() };
        duration.get_or_create(&label).set(super::pipeline::seconds(run.created, run.ended, now));
        started.get_or_create(&label).set(run.created.timestamp());
    }
    r.register(
        "pipeline_last_run_seconds",
        "Duration of the latest run of each pipeline (so far, while running)",
        duration,
    );
    r.register(
        "pipeline_last_run_start_timestamp_seconds",
        "Start of the latest run of each pipeline",
        started,
    );
    let mut failures: BTreeMap<&str, u64> = BTreeMap::new();
    for run in &runs {
        for (task, t) in &run.tasks {
            let failed = t
                .attempts
                .iter()
                .filter(|a| a.status == crate::pipeline::state::AttemptStatus::Failed)
                .count();
            *failures.entry(task.as_str()).or_default() += failed as u64;
        }
    }
    // A gauge, not a counter: it is counted again from the runs kept, which may be pruned.
    let by_task: Family<TaskLabel, Gauge> = Family::default();
    for (task, n) in failures {
        by_task
            .get_or_create(&TaskLabel { task: task.to_string() })
            .set(i64::try_from(n).unwrap_or(i64::MAX));
    }
    r.register(
        "pipeline_task_failed_attempts",
        "Failed attempts of each task over the runs in the store",
        by_task,
    );
}

fn status_name(s: RunStatus) -> String {
    serde_json::to_value(s)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_else(|| format!("{s:?}"))
}
