//! What a machine's quality gate did with each part, read back from `edge_decisions`: the
//! decision and its reason, what the sorting output was told and how the write went
//! (`moldops_shared::decision`). `lake verdicts` shows it beside the model's score.

use anyhow::Result;
use moldops_shared::RecordKind;
use moldops_shared::decision::{Decision, Outcome, Reason, value};
use polars::prelude::DataFrame;
use serde::Serialize;
use std::collections::BTreeMap;
use std::ops::RangeInclusive;
use std::path::Path;

/// The gate's handling of one part.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GateDecision {
    /// What the evidence said.
    pub decision: Decision,
    /// Why.
    pub reason: Reason,
    /// What the output was told (the decision, or the fail-safe).
    pub actuated: Decision,
    /// How the write went.
    pub outcome: Outcome,
    /// Shot detection to the output's acknowledgement, ms (negative when nothing was timed).
    pub latency_ms: f64,
}

impl GateDecision {
    /// One short phrase: `reject (model_alarm), written in 3.1 ms`.
    pub fn describe(&self) -> String {
        if self.outcome == Outcome::Skipped {
            return format!(
                "{} ({}), skipped: the part was gone, nothing written",
                self.decision, self.reason
            );
        }
        let told =
            if self.actuated == self.decision { String::new() } else { format!(", told {}", self.actuated) };
        let timing = match self.outcome {
            Outcome::Written | Outcome::Late | Outcome::Failed => format!(" in {:.1} ms", self.latency_ms),
            _ => String::new(),
        };
        format!("{} ({}){told}, {}{timing}", self.decision, self.reason, self.outcome)
    }
}

/// The gate's decisions on `machine_id`'s shots (those in `shots`, when given), by shot number.
pub fn decisions(
    lake: &Path,
    machine_id: &str,
    shots: Option<&RangeInclusive<u64>>,
) -> Result<BTreeMap<u64, GateDecision>> {
    super::retry_vanished(|| {
        let files = super::list_machine_parts(lake, RecordKind::Decision.dataset(), machine_id)?;
        let Some(df) = super::read_parts(&files, &[])? else { return Ok(BTreeMap::new()) };
        let mut out = rows(&df)?;
        if let Some(r) = shots {
            out.retain(|n, _| r.contains(n));
        }
        Ok(out)
    })
}

fn rows(df: &DataFrame) -> Result<BTreeMap<u64, GateDecision>> {
    use super::columns::{count, number};
    let shot = count(df, "shot_number")?;
    let (decision, reason, actuated, outcome, latency) = (
        number(df, value::DECISION)?,
        number(df, value::REASON)?,
        number(df, value::ACTUATED)?,
        number(df, value::OUTCOME)?,
        number(df, value::LATENCY_MS)?,
    );
    let mut out = BTreeMap::new();
    for i in 0..df.height() {
        let row = (|| {
            Some((
                shot[i]?,
                GateDecision {
                    decision: Decision::from_code(decision[i]?)?,
                    reason: Reason::from_code(reason[i]?)?,
                    actuated: Decision::from_code(actuated[i]?)?,
                    outcome: Outcome::from_code(outcome[i]?)?,
                    latency_ms: latency[i].unwrap_or(-1.0),
                },
            ))
        })();
        if let Some((n, d)) = row {
            out.insert(n, d);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_decision_reads_as_one_phrase() {
        let d = GateDecision {
            decision: Decision::Reject,
            reason: Reason::ModelAlarm,
            actuated: Decision::Uncertain,
            outcome: Outcome::Late,
            latency_ms: 61.25,
        };
        assert_eq!(d.describe(), "reject (model_alarm), told uncertain, late in 61.2 ms");
    }
}
