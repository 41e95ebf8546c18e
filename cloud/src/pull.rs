//! `moldops-cloud pull`: history from the databases plants keep it in, pulled incrementally into
//! the lake. Each source of a `pull.toml` ([`config`]) is a table, a query or an InfluxDB
//! measurement; its rows come page by page in time order ([`page`]; [`postgres`], [`mssql`]
//! with the queries of [`sql`], [`influx`]), go through the source's import profile like a
//! file's rows, and land in `raw_data` / `peripheral_data` by the ingest's commit path as
//! stream `pull:{source}`.
//!
//! The watermark ([`state`]) makes pulls incremental and exactly once: a pull reads from the
//! newest time pulled minus the look-back window, skips rows it took before (by identity), and
//! commits each page with the watermark through a write-ahead page ([`intake`]; [`client`]
//! talks to the server), so a pull killed at any point resumes without loss or duplicates and a
//! pull with nothing new adds nothing to the lake.

pub mod cli;
pub mod client;
pub mod config;
pub mod influx;
pub mod intake;
#[cfg(feature = "pull-sql")]
pub mod mssql;
pub mod page;
#[cfg(feature = "pull-sql")]
pub mod postgres;
pub mod sql;
pub mod state;

#[cfg(test)]
mod pull_tests;

use crate::import::ImportProfile;
use crate::ingest::Committer;
use anyhow::{Context, Result, bail};
use client::Client;
use config::{MAX_BATCH_ROWS, Source};
use intake::{Intake, PageEnd};
use page::SourceTime;
use serde::Serialize;
use state::PullState;
use std::path::Path;

/// What one pull of one source did.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct PullReport {
    /// The source's name.
    pub source: String,
    /// Its lake stream (`pull:{source}`).
    pub stream: String,
    /// Queries answered with rows.
    pub pages: u64,
    /// Rows taken from the source's answers (rows of the look-back window come again each pull).
    pub rows_read: u64,
    /// Rows recognised as pulled before (inside the look-back window).
    pub already_pulled: u64,
    /// Rows new to the lake's stream (records, refused and excluded rows).
    pub new_rows: u64,
    /// Records written to the lake now.
    pub written: u64,
    /// Records the lake held already (a page committed again after an interrupted pull).
    pub duplicates: u64,
    /// Rows refused into the quarantine.
    pub quarantined: u64,
    /// Rows of machines the profile excludes.
    pub excluded: u64,
    /// Rows of the source whose time is NULL (or infinite): never pulled, counted each pull.
    pub without_time: u64,
    /// Rows stamped more than a day ahead of now (clock errors, placeholder dates): not pulled,
    /// nor is anything after them; at least this many (counted up to the end of their page).
    pub in_future: u64,
    /// True when a page an interrupted pull had decided was committed first.
    pub resumed_page: bool,
    /// The newest time pulled, as the profile reads it.
    pub watermark: Option<String>,
    /// Seconds the pull took.
    pub elapsed_s: f64,
    /// Rows read per second.
    pub rows_per_s: f64,
}

/// How to pull.
#[derive(Debug, Clone, Default)]
pub struct PullOptions {
    /// Start the source over: a new lake stream from the first row, the old watermark dropped.
    pub restart: bool,
    /// Shows progress (rows read).
    pub progress: Option<indicatif::ProgressBar>,
}

/// Units of an integer time column per second, from the profile's time format.
fn per_second(profile: &ImportProfile) -> Option<i64> {
    match profile.time.format.as_str() {
        "epoch_s" => Some(1),
        "epoch_ms" => Some(1000),
        _ => None,
    }
}

/// Pulls every source in turn; the first failure stops the pull after saying which source.
pub async fn pull_all(lake_dir: &Path, sources: &[Source], opts: &PullOptions) -> Result<Vec<PullReport>> {
    let mut reports = Vec::new();
    for source in sources {
        let report = pull_source(lake_dir, source, opts)
            .await
            .with_context(|| format!("source {}", source.config.name))?;
        reports.push(report);
    }
    Ok(reports)
}

/// Pulls one source: what is new since its watermark (and the late rows of the look-back
/// window), page by page, each page committed with the watermark.
pub async fn pull_source(lake_dir: &Path, source: &Source, opts: &PullOptions) -> Result<PullReport> {
    pull_with(lake_dir, source, opts, Client::connect(source)).await
}

/// [`pull_source`] through the connection `connect` makes (awaited once a page an interrupted
/// pull left is committed: that needs no server).
async fn pull_with(
    lake_dir: &Path,
    source: &Source,
    opts: &PullOptions,
    connect: impl std::future::Future<Output = Result<Client>>,
) -> Result<PullReport> {
    let started = std::time::Instant::now();
    let stream = source.stream();
    let (committer, _) = Committer::open(lake_dir)?;
    let state_path = state::path(lake_dir, &source.config.name);
    let mut state = match PullState::load(lake_dir, &source.config.name)? {
        Some(s) if !opts.restart => s,
        None if !opts.restart && committer.state().streams.keys().any(|s| s.edge_id == stream) => bail!(
            "the lake holds rows of stream {stream} but its pull state {} is missing; run with --source {} \
             --restart to pull the source again from its first row (rows already in the lake come again)",
            state_path.display(),
            source.config.name
        ),
        _ => PullState::fresh(&source.config.name),
    };
    if state.watermark.is_none() {
        state.key = source.config.key.clone();
    } else if state.key != source.config.key {
        bail!(
            "key {:?} differs from the {:?} the rows pulled so far were identified by ({}); put it back, \
             or run with --source {} --restart",
            source.config.key,
            state.key,
            state_path.display(),
            source.config.name
        );
    }
    let mut intake = Intake::new(lake_dir, source, committer, state)?;
    intake.resume()?;
    let mut client = connect.await?;
    intake.report.without_time = client.without_time().await?;
    if intake.report.without_time > 0 {
        tracing::warn!(source = %source.config.name, rows = intake.report.without_time, "rows without a time are not pulled");
    }
    let per_second = per_second(&source.profile).unwrap_or(1);
    let back = |w: SourceTime| w.minus_seconds(source.config.look_back_s, per_second);
    let state = &intake.state;
    let mut since = state.watermark.map(|w| state.recent_from.map_or(back(w), |f| f.max(back(w))));
    let mut limit = source.config.batch_rows;
    loop {
        let page = client.page(since, limit).await?;
        page.check_order()?;
        let (Some(first), Some(last)) = (page.rows.first(), page.rows.last()) else { break };
        let (first, last) = (first.time, last.time);
        if let Some(w) = intake.state.watermark {
            w.same_kind(first)?;
        }
        let horizon = first.horizon(chrono::Utc::now(), per_second);
        if first > horizon {
            // Everything from here on is stamped in the future (the page is in time order).
            intake.report.in_future += page.rows.len() as u64;
            break;
        }
        let full = page.rows.len() >= limit;
        if full && first == last {
            // One time holds a whole page: read more at once, or the pull cannot move past it.
            if limit >= MAX_BATCH_ROWS {
                bail!("more than {MAX_BATCH_ROWS} rows share the time {}", first.cell());
            }
            limit = (limit * 2).min(MAX_BATCH_ROWS);
            continue;
        }
        let end = intake.page(page, horizon)?;
        if let Some(bar) = &opts.progress {
            bar.set_position(intake.report.rows_read);
        }
        if !full || end == PageEnd::Future {
            break;
        }
        since = Some(last);
    }
    if intake.report.in_future > 0 {
        tracing::warn!(
            source = %source.config.name,
            rows = intake.report.in_future,
            "rows stamped more than a day ahead are not pulled (a clock error or a placeholder date?)"
        );
    }
    // The rows left out stay visible in the state file until a pull finds them gone.
    intake.state.totals.without_time = intake.report.without_time;
    intake.state.totals.in_future = intake.report.in_future;
    intake.state.save(lake_dir)?;
    let mut report = intake.report;
    report.watermark = intake.state.watermark.map(SourceTime::cell);
    report.elapsed_s = started.elapsed().as_secs_f64();
    report.rows_per_s = report.rows_read as f64 / report.elapsed_s.max(1e-9);
    Ok(report)
}
