//! The label loop: labels that come back from the plant — operator verdicts on alarms,
//! quality-control lot results, scrap counts — joined to the shots the edges scored, and per
//! (model, mould) how right the alarms were.
//!
//! - [`operator`]: the console's verdicts on alarms (`operator_labels`), the latest per shot.
//! - [`scrap`]: scrap counts per lot or period, imported as lot-level labels (`lot_labels`).
//! - [`sources`]: reading the scored shots and every label from the lake, again each time.
//! - [`join`]: each scored shot's truth, its lot and its cluster.
//! - [`metrics`]: precision and recall with intervals over lots, and what a lot's counts allow.
//! - [`report`]: the table per (model key, version, mould) with a row per lot; [`cli`]:
//!   `moldops-cloud labels report`. The console shows the same on its model quality page.
//! - [`evidence`]: per model key, its newest version's labelled counts, precision and recall
//!   with intervals — what a retraining trigger reads.

pub mod cli;
pub mod join;
pub mod metrics;
pub mod operator;
pub mod report;
pub mod scrap;
pub mod sources;

#[cfg(test)]
mod tests;

use anyhow::Result;
use metrics::{Counts, Quality, Rate};
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::Path;

/// The label report over everything the lake holds now.
pub fn report(lake_dir: &Path) -> Result<report::Report> {
    let shots = sources::scored_shots(lake_dir)?;
    let labels = sources::labels(lake_dir)?;
    Ok(report::build(&shots, &labels, metrics::ROUNDS))
}

/// What the labels say about one model key's newest version, over all its moulds.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct KeyEvidence {
    /// The registry key label (`M1` or `M1/MOLD-A`).
    pub model_key: String,
    /// The newest version that scored shots of the key (0: its cold-start baseline).
    pub model_version: u32,
    /// Shots that version scored.
    pub scored: u64,
    /// Alarms among them.
    pub alarms: u64,
    /// Shots with a label of any source (what precision counts).
    pub labelled: u64,
    /// Shots with an alarm-blind label, inspection or lot (what recall counts).
    pub blind_labelled: u64,
    /// Confusion counts over every labelled shot.
    pub counts: Counts,
    /// Confusion counts over the alarm-blind labels.
    pub recall_counts: Counts,
    /// Clusters (lots, else production runs) the intervals resampled.
    pub clusters: usize,
    /// Precision and recall with 95 % intervals over clusters; a rate is all `None` when
    /// undefined (no labelled alarm, no alarm-blind defect).
    pub quality: Quality,
}

impl KeyEvidence {
    /// Precision's upper bound is below `target`: the alarms are wrong too often, clearly.
    pub fn precision_below(&self, target: f64) -> bool {
        below(self.quality.precision, target)
    }

    /// Recall's upper bound is below `target`: the model misses too many defects, clearly.
    pub fn recall_below(&self, target: f64) -> bool {
        below(self.quality.recall, target)
    }
}

fn below(rate: Rate, target: f64) -> bool {
    rate.high.is_some_and(|h| h < target)
}

/// Per model key, the evidence of the labels on its newest version: keys with fewer than
/// `min_labelled` labelled shots are left out, so a trigger never acts on a handful of labels.
/// Sorted by key.
pub fn evidence(lake_dir: &Path, min_labelled: u64) -> Result<Vec<KeyEvidence>> {
    let shots = sources::scored_shots(lake_dir)?;
    let labels = sources::labels(lake_dir)?;
    Ok(evidence_of(&shots, &labels, min_labelled, metrics::ROUNDS))
}

/// [`evidence`] over shots and labels already read.
pub fn evidence_of(
    shots: &[join::ScoredShot],
    labels: &join::Labels,
    min_labelled: u64,
    rounds: usize,
) -> Vec<KeyEvidence> {
    let joined = join::join(shots, labels);
    let mut newest: BTreeMap<&str, u32> = BTreeMap::new();
    for s in shots {
        if let Some(v) = s.model_version {
            let n = newest.entry(s.model_key.as_str()).or_insert(v);
            *n = (*n).max(v);
        }
    }
    let mut keys: BTreeMap<&str, Vec<&join::Joined<'_>>> = BTreeMap::new();
    for j in &joined {
        let key = j.shot.model_key.as_str();
        if newest.get(key).is_some_and(|v| j.shot.model_version == Some(*v)) {
            keys.entry(key).or_default().push(j);
        }
    }
    keys.into_iter()
        .enumerate()
        .filter_map(|(n, (key, rows))| {
            let version = newest.get(key).copied()?;
            let key =
                report::GroupKey { model_key: key.to_string(), model_version: Some(version), mold: None };
            let g = report::group(key, &rows, labels, rounds, n as u64);
            (g.labelled >= min_labelled).then(|| KeyEvidence {
                model_key: g.model_key,
                model_version: version,
                scored: g.scored,
                alarms: g.alarms,
                labelled: g.labelled,
                blind_labelled: g.recall_counts.total(),
                counts: g.counts,
                recall_counts: g.recall_counts,
                clusters: g.clusters,
                quality: g.quality,
            })
        })
        .collect()
}
