//! Drift of the models on the floor, judged in the cloud: `moldops-cloud drift` reads the
//! edges' period summaries from `edge_drift` (score and feature histograms per model key,
//! `moldops_shared::drift`), judges each period not judged before ([`assess`]: PSI and KS
//! against the reference, alarm rate against the target, a verdict `ok` / `warn` / `drift`),
//! records it in `drift_events` ([`store`]) and, when a new period drifted, writes the
//! retraining trigger a pipeline task runs on (`when_exists`); docs/drift.md.

pub mod assess;
pub mod cli;
pub mod store;

#[cfg(test)]
mod tests;

use anyhow::Result;
use assess::{Level, Thresholds};
use moldops_common::lock::LockFile;
use serde::{Deserialize, Serialize};
use std::path::Path;
use store::DriftEvent;

/// Folder of the drift command's lock, relative to the lake.
pub const DRIFT_DIR: &str = "_drift";

/// What one run found.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Outcome {
    /// Periods judged in this run (not recorded before), oldest first.
    pub events: Vec<DriftEvent>,
    /// Summaries in the lake already judged by an earlier run.
    pub already_recorded: usize,
    /// Files written to `drift_events`, relative to the lake.
    pub files: Vec<String>,
}

impl Outcome {
    /// The model keys whose new periods drifted, each with its latest drifted event.
    pub fn drifted(&self) -> Vec<&DriftEvent> {
        let mut latest: std::collections::BTreeMap<&str, &DriftEvent> = Default::default();
        for e in self.events.iter().filter(|e| e.assessment.level == Level::Drift) {
            latest.insert(e.model_key.as_str(), e);
        }
        latest.into_values().collect()
    }
}

/// Judges every summary in `lake_dir` not judged before and records the events (unless
/// `dry_run`). One run at a time per lake (a lock in [`DRIFT_DIR`]).
pub fn run(lake_dir: &Path, thresholds: &Thresholds, dry_run: bool) -> Result<Outcome> {
    let _lock = LockFile::try_acquire(
        &lake_dir.join(DRIFT_DIR).join("lock"),
        &format!("drift events of {} (another drift run)", lake_dir.display()),
    )?;
    let summaries = store::summaries(lake_dir)?;
    let recorded = store::recorded(lake_dir)?;
    let mut already_recorded = 0;
    let mut events = Vec::new();
    for s in &summaries {
        if recorded.contains(&s.event_id) {
            already_recorded += 1;
            continue;
        }
        events.push(DriftEvent::new(s, assess::assess(&s.summary, thresholds)));
    }
    let files = if events.is_empty() || dry_run {
        Vec::new()
    } else {
        store::write(lake_dir, &events, crate::ingest::state::now_nanos())?
    };
    Ok(Outcome { events, already_recorded, files })
}

/// The retraining trigger: the keys whose new periods drifted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Trigger {
    /// One entry per drifted key.
    pub keys: Vec<TriggerKey>,
}

/// One drifted key in the [`Trigger`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TriggerKey {
    /// Model key label.
    pub key: String,
    /// The judge that drifted.
    pub model_id: String,
    /// End of its latest drifted period (UTC ms).
    pub period_end_ms: i64,
    /// Why.
    pub reasons: Vec<String>,
}

/// Writes the trigger file when `outcome` has drifted keys, and removes it when it has none
/// (so a pipeline task with `when_exists` runs exactly after a run that found new drift).
/// Returns whether the file now exists.
pub fn write_trigger(path: &Path, outcome: &Outcome) -> Result<bool> {
    let keys: Vec<TriggerKey> = outcome
        .drifted()
        .into_iter()
        .map(|e| TriggerKey {
            key: e.model_key.clone(),
            model_id: e.model_id.clone(),
            period_end_ms: e.period_end_ms,
            reasons: e.assessment.reasons.clone(),
        })
        .collect();
    if keys.is_empty() {
        match std::fs::remove_file(path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(anyhow::Error::from(e).context(format!("removing {}", path.display()))),
        }
        return Ok(false);
    }
    let bytes = serde_json::to_vec_pretty(&Trigger { keys })?;
    moldops_common::fs::write_atomic(path, &bytes)?;
    Ok(true)
}
