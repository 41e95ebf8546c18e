//! The console's audit trail in the lake: every write action — an alarm acknowledged (and the
//! operator's verdict on it), a model promoted, archived or rolled out, a pipeline run started — with who did it, when, on what, the comment and how it ended, as
//! one Parquet part per action in `console_actions/machine=_console/date=…/`.
//!
//! Acknowledgements live only here: the alarms page reads them back, so an acknowledgement is
//! exactly as durable as its audit row (written, fsynced and renamed before the page answers).

use crate::lake::write::{prepare_dirs, sync_dirs, write_parquet};
use crate::lake::{self, columns};
use anyhow::{Context, Result};
use polars::prelude::{Column, DataFrame, Int64Chunked, IntoColumn, NewChunkedArray, TimeUnit, TimeZone};
use serde::Serialize;
use std::path::Path;

/// The dataset of console actions.
pub const DATASET: &str = "console_actions";

/// Its one partition value for `machine=` (actions are not a machine's).
const MACHINE: &str = "_console";

/// Longest comment kept (longer ones are refused).
pub const MAX_COMMENT: usize = 2000;

/// The comment of a change, trimmed, or the refusal when it is too long.
pub fn comment(text: &str) -> Result<String, super::Failure> {
    let text = text.trim();
    if text.len() > MAX_COMMENT {
        return Err(super::Failure::bad_request(format!("a comment of at most {MAX_COMMENT} bytes")));
    }
    Ok(text.to_string())
}

/// What was done.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// An alarm acknowledged, with a comment.
    Acknowledge,
    /// A model version made production.
    Promote,
    /// A model version archived.
    Archive,
    /// A production version sent to edges (one row when it starts, one when it ends).
    Rollout,
    /// A pipeline run started (target: the run id).
    PipelineRun,
    /// An operator's verdict on an alarm's part (target: the alarm; comment: the verdict),
    /// stored as a label in `operator_labels` ([`crate::labels::operator`]).
    Label,
}

impl Kind {
    /// The name stored in the `action` column.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Acknowledge => "acknowledge",
            Kind::Promote => "promote",
            Kind::Archive => "archive",
            Kind::Rollout => "rollout",
            Kind::PipelineRun => "pipeline_run",
            Kind::Label => "label",
        }
    }

    fn parse(s: &str) -> Option<Kind> {
        [Kind::Acknowledge, Kind::Promote, Kind::Archive, Kind::Rollout, Kind::PipelineRun, Kind::Label]
            .into_iter()
            .find(|k| k.as_str() == s)
    }
}

/// One action.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Action {
    /// When (UTC ms).
    pub ts_ms: i64,
    /// The signed-in user.
    pub user: String,
    /// What was done.
    pub kind: Kind,
    /// On what: an alarm's id (`{machine}@{ts_ms}`) or a model version (`{key}@{version}`).
    pub target: String,
    /// The user's comment (may be empty).
    pub comment: String,
    /// `ok`, or the error that stopped it.
    pub outcome: String,
}

/// Writes one action durably.
pub fn record(lake_dir: &Path, action: &Action) -> Result<()> {
    let day = action.ts_ms.div_euclid(86_400_000);
    let dir = lake::partition_dir(lake_dir, DATASET, MACHINE, &lake::day_string(day));
    let sync = prepare_dirs(lake_dir, std::iter::once(dir.as_path()))?;
    let nanos =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    let name = format!("part-console-{nanos:020}-{:08x}.parquet", rand::random::<u32>());
    let text = |name: &str, v: &str| Column::new(name.into(), [v]);
    let ts = Int64Chunked::from_iter_values("ts".into(), std::iter::once(action.ts_ms))
        .into_datetime(TimeUnit::Milliseconds, Some(TimeZone::UTC))
        .into_column();
    let mut df = DataFrame::new(
        1,
        vec![
            ts,
            text("user", &action.user),
            text("action", action.kind.as_str()),
            text("target", &action.target),
            text("comment", &action.comment),
            text("outcome", &action.outcome),
        ],
    )
    .context("building the console action row")?;
    write_parquet(&dir, &name, &mut df)?;
    sync_dirs(&sync)
}

/// Every action, oldest first; rows with an unknown action are skipped.
pub fn read(lake_dir: &Path) -> Result<Vec<Action>> {
    let Some(df) = lake::read_parts(&lake::list_parts(lake_dir, DATASET)?, &[])? else {
        return Ok(Vec::new());
    };
    let (ts, user, action, target, comment, outcome) = (
        columns::millis(&df, "ts")?,
        columns::text(&df, "user")?,
        columns::text(&df, "action")?,
        columns::text(&df, "target")?,
        columns::text(&df, "comment")?,
        columns::text(&df, "outcome")?,
    );
    let mut out: Vec<Action> = (0..df.height())
        .filter_map(|i| {
            Some(Action {
                ts_ms: ts[i]?,
                user: user[i].clone().unwrap_or_default(),
                kind: Kind::parse(action[i].as_deref()?)?,
                target: target[i].clone().unwrap_or_default(),
                comment: comment[i].clone().unwrap_or_default(),
                outcome: outcome[i].clone().unwrap_or_default(),
            })
        })
        .collect();
    out.sort_by_key(|a| a.ts_ms);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actions_are_written_durably_and_read_back_in_time_order() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert!(read(dir.path()).expect("empty").is_empty());
        let a = |ts_ms, kind, target: &str| Action {
            ts_ms,
            user: "alice".into(),
            kind,
            target: target.into(),
            comment: "checked the part: short shot".into(),
            outcome: "ok".into(),
        };
        record(dir.path(), &a(2_000, Kind::Promote, "M1@2")).expect("record");
        record(dir.path(), &a(1_000, Kind::Acknowledge, "M1@1000")).expect("record");
        let back = read(dir.path()).expect("read");
        assert_eq!(back, vec![a(1_000, Kind::Acknowledge, "M1@1000"), a(2_000, Kind::Promote, "M1@2")]);
    }
}
