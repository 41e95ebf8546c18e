//! Periodic runs on a cron expression (`pipeline schedule`): the same syntax as a Kubernetes
//! CronJob (5 fields, UTC; a 6th leading seconds field is accepted). Runs never overlap: the
//! next run starts at the first time the expression matches after the previous run ended,
//! and missed times are skipped, not caught up (the original's `catchup=True` replayed them).

use anyhow::{Context, Result};
use chrono::{DateTime, Utc};
use croner::Cron;
use std::future::Future;
use std::str::FromStr;
use tokio_util::sync::CancellationToken;

/// Parses a cron expression.
pub fn parse_cron(expr: &str) -> Result<Cron> {
    Cron::from_str(expr).with_context(|| format!("`{expr}` is not a cron expression"))
}

/// The first time after `now` that `cron` matches.
pub fn next_after(cron: &Cron, now: DateTime<Utc>) -> Result<DateTime<Utc>> {
    cron.find_next_occurrence(&now, false).with_context(|| format!("no time matches `{}`", cron.pattern))
}

/// Calls `run_once` at every match of `cron` until cancelled or `max_runs` runs were made.
/// A failed run is logged and the schedule goes on. Returns the number of runs made.
pub async fn run_schedule<F, Fut>(
    cron: &Cron,
    max_runs: Option<u64>,
    cancel: &CancellationToken,
    mut run_once: F,
) -> Result<u64>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<()>>,
{
    let mut runs = 0;
    while max_runs.is_none_or(|m| runs < m) {
        let next = next_after(cron, Utc::now())?;
        tracing::info!(next = %next.to_rfc3339(), "next pipeline run");
        let wait = (next - Utc::now()).to_std().unwrap_or_default();
        if super::runner::sleep_or_cancel(wait, cancel).await {
            break;
        }
        runs += 1;
        if let Err(e) = run_once().await {
            tracing::error!("scheduled run failed: {e:#}");
        }
        if cancel.is_cancelled() {
            break;
        }
    }
    Ok(runs)
}
