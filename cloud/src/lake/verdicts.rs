//! Which model judged which shots, and why: the edges' live scores read back from
//! `edge_scores` for one machine (`moldops-cloud lake verdicts`), so a question about a part —
//! a customer complaint, an audit — traces to the exact bundle that passed or flagged it, its
//! score against its threshold, and for an alarm the features that drove the score.

use anyhow::{Context, Result};
use moldops_shared::RecordKind;
use moldops_shared::score::value;
use polars::prelude::DataFrame;
use serde::Serialize;
use std::fmt::Write as _;
use std::ops::RangeInclusive;
use std::path::Path;

/// What to look up.
#[derive(Debug, Clone)]
pub struct Query {
    /// The machine whose shots to show.
    pub machine_id: String,
    /// Only shots whose controller shot number lies in this range (all when `None`).
    pub shots: Option<RangeInclusive<u64>>,
    /// Only alarms.
    pub alarms_only: bool,
}

/// The verdict on one shot, as the edge recorded it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Verdict {
    /// Controller shot number (absent when the machine has no shot counter).
    pub shot_number: Option<u64>,
    /// Time of the shot (UTC ms).
    pub ts_ms: i64,
    /// Mold of the shot, when known.
    pub mold: Option<String>,
    /// Edge that scored it.
    pub edge_id: String,
    /// The model key, registry id and version, and the exact bundle that judged it.
    pub model_key: String,
    /// Registry id (`{key}@{version}`).
    pub model_id: String,
    /// Registry version.
    pub model_version: Option<u32>,
    /// Sha256 of the bundle the edge had verified and loaded.
    pub bundle_sha256: String,
    /// Anomaly score.
    pub score: f64,
    /// The model's alarm threshold.
    pub threshold: f64,
    /// Whether the score passed the threshold.
    pub alarm: bool,
    /// For an alarm, each feature's contribution to the score, largest first.
    pub contributions: Vec<(String, f64)>,
    /// What the machine's quality gate did with the part, when it has one (`edge_decisions`).
    pub gate: Option<super::decisions::GateDecision>,
}

/// The verdicts on `query`'s shots, in time order.
pub fn verdicts(lake: &Path, query: &Query) -> Result<Vec<Verdict>> {
    super::retry_vanished(|| verdicts_once(lake, query))
}

fn verdicts_once(lake: &Path, query: &Query) -> Result<Vec<Verdict>> {
    let files = super::list_machine_parts(lake, RecordKind::Score.dataset(), &query.machine_id)?;
    let Some(df) = super::read_parts(&files, &[])? else { return Ok(Vec::new()) };
    let mut out = rows(&df).with_context(|| format!("reading edge_scores of {}", query.machine_id))?;
    out.retain(|v| {
        let in_range = match (&query.shots, v.shot_number) {
            (None, _) => true,
            (Some(r), Some(n)) => r.contains(&n),
            (Some(_), None) => false,
        };
        in_range && (v.alarm || !query.alarms_only)
    });
    out.sort_by_key(|v| (v.ts_ms, v.shot_number));
    let gated = super::decisions::decisions(lake, &query.machine_id, query.shots.as_ref())?;
    for v in &mut out {
        v.gate = v.shot_number.and_then(|n| gated.get(&n).cloned());
    }
    Ok(out)
}

/// Every row of a frame of `edge_scores` as a verdict.
fn rows(df: &DataFrame) -> Result<Vec<Verdict>> {
    use super::columns::{count, millis, number, text};
    let (edge, mold, key, id, sha) = (
        text(df, "edge_id")?,
        text(df, "mold")?,
        text(df, "model_key")?,
        text(df, "model_id")?,
        text(df, "bundle_sha256")?,
    );
    let (score, threshold, alarm) =
        (number(df, value::SCORE)?, number(df, value::THRESHOLD)?, number(df, value::ALARM)?);
    let shot = count(df, "shot_number")?;
    let version = count(df, "model_version")?;
    let ts = millis(df, "ts")?;
    let contribution_columns: Vec<(String, Vec<Option<f64>>)> = df
        .get_column_names()
        .into_iter()
        .filter_map(|c| c.as_str().strip_prefix(value::CONTRIBUTION_PREFIX).map(|f| (c.as_str(), f)))
        .map(|(c, f)| Ok((f.to_string(), number(df, c)?)))
        .collect::<Result<_>>()?;
    let mut out = Vec::with_capacity(df.height());
    for i in 0..df.height() {
        let mut contributions: Vec<(String, f64)> =
            contribution_columns.iter().filter_map(|(f, v)| Some((f.clone(), v[i]?))).collect();
        contributions.sort_by(|a, b| b.1.total_cmp(&a.1));
        out.push(Verdict {
            shot_number: shot[i],
            ts_ms: ts[i].unwrap_or_default(),
            mold: mold[i].clone(),
            edge_id: edge[i].clone().unwrap_or_default(),
            model_key: key[i].clone().unwrap_or_default(),
            model_id: id[i].clone().unwrap_or_default(),
            model_version: version[i].and_then(|v| u32::try_from(v).ok()),
            bundle_sha256: sha[i].clone().unwrap_or_default(),
            score: score[i].unwrap_or(f64::NAN),
            threshold: threshold[i].unwrap_or(f64::NAN),
            alarm: alarm[i] == Some(1.0),
            contributions,
            gate: None,
        });
    }
    Ok(out)
}

/// The verdicts as a table: one line per shot, an alarm's three largest contributions, and
/// per model (bundle) how many shots it judged.
pub fn to_table(machine_id: &str, verdicts: &[Verdict]) -> String {
    let mut out = String::new();
    if verdicts.is_empty() {
        let _ =
            writeln!(out, "no scored shots of {machine_id} match (edge_scores holds what edges scored live)");
        return out;
    }
    let _ = writeln!(
        out,
        "{:>10}  {:<24}  {:<16}  {:>10}  {:>10}  verdict",
        "shot", "time (UTC)", "model", "score", "threshold"
    );
    for v in verdicts {
        let shot = v.shot_number.map_or("-".to_string(), |n| n.to_string());
        let verdict = if v.alarm {
            let top: Vec<String> =
                v.contributions.iter().take(3).map(|(f, c)| format!("{f} {c:.3}")).collect();
            format!("ALARM ({})", top.join(", "))
        } else {
            "ok".to_string()
        };
        let _ = writeln!(
            out,
            "{shot:>10}  {:<24}  {:<16}  {:>10.4}  {:>10.4}  {verdict}",
            crate::lake::quarantine::rfc3339_ms(v.ts_ms),
            v.model_id,
            v.score,
            v.threshold
        );
        if let Some(g) = &v.gate {
            let _ = writeln!(out, "{:>10}  gate: {}", "", g.describe());
        }
    }
    let mut models: Vec<(&str, &str, usize)> = Vec::new();
    for v in verdicts {
        match models.iter_mut().find(|(id, sha, _)| *id == v.model_id && *sha == v.bundle_sha256) {
            Some(m) => m.2 += 1,
            None => models.push((&v.model_id, &v.bundle_sha256, 1)),
        }
    }
    let _ = writeln!(out, "\njudged by:");
    for (id, sha, n) in models {
        let _ = writeln!(out, "  {id}  bundle sha256 {sha}  {n} shot(s)");
    }
    out
}
