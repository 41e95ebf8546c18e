//! The lake side of drift: the edges' summaries read back from `edge_drift` as
//! [`DriftSummary`]s with the stream and seq they came in, and the judged periods kept in
//! `drift_events` (one row per summary, by its event id: a re-run adds none twice).

use super::assess::{Assessment, Figures, Level};
use crate::lake::columns::{count, millis, number, text};
use crate::lake::write::{prepare_dirs, sync_dirs, write_parquet};
use crate::lake::{self, MODEL_COLUMNS, is_lake_column};
use anyhow::{Context, Result};
use moldops_shared::drift::DriftSummary;
use moldops_shared::score::ModelStamp;
use moldops_shared::{Record, RecordKind};
use polars::prelude::{Column, DataFrame, Int64Chunked, IntoColumn, NewChunkedArray, TimeUnit, TimeZone};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// The dataset of judged periods.
pub const DATASET: &str = "drift_events";

const DAY_MS: i64 = 86_400_000;

/// A summary with where it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct Stored {
    /// `{site}/{edge_id}/{epoch}/{seq}`: the summary record's idempotency key (`/` cannot occur
    /// in a site, an edge id or an epoch, so distinct streams never share an event id).
    pub event_id: String,
    /// Edge that sent it.
    pub edge_id: String,
    /// The summary.
    pub summary: DriftSummary,
}

/// The event id of a record from stream (`site`, `edge_id`, `epoch`) with `seq`.
pub fn event_id(site: &str, edge_id: &str, epoch: &str, seq: u64) -> String {
    format!("{site}/{edge_id}/{epoch}/{seq}")
}

/// Every drift summary in the lake, oldest period first; rows that do not read back as a valid
/// summary are skipped with a warning (the ingest checked them; an older file may differ).
pub fn summaries(lake_dir: &Path) -> Result<Vec<Stored>> {
    lake::retry_vanished(|| {
        let files = lake::list_parts(lake_dir, RecordKind::Drift.dataset())?;
        let Some(df) = lake::read_parts(&files, &["out_of_range"])? else { return Ok(Vec::new()) };
        rows(&df).context("reading edge_drift")
    })
}

fn rows(df: &DataFrame) -> Result<Vec<Stored>> {
    let (site, edge, epoch) = (text(df, "site")?, text(df, "edge_id")?, text(df, "epoch")?);
    let (seq, ts, machine, mold) =
        (count(df, "seq")?, millis(df, "ts")?, text(df, "machine_id")?, text(df, "mold")?);
    let (key, id, version, sha) = (
        text(df, MODEL_COLUMNS[0])?,
        text(df, MODEL_COLUMNS[1])?,
        count(df, MODEL_COLUMNS[2])?,
        text(df, MODEL_COLUMNS[3])?,
    );
    let names: Vec<String> =
        df.get_column_names().into_iter().map(|c| c.to_string()).filter(|c| !is_lake_column(c)).collect();
    let values: Vec<Vec<Option<f64>>> = names.iter().map(|n| number(df, n)).collect::<Result<_>>()?;
    let mut out = Vec::with_capacity(df.height());
    for i in 0..df.height() {
        let (Some(seq), Some(ts), Some(machine)) = (seq[i], ts[i], machine[i].clone()) else {
            tracing::warn!(row = i, "edge_drift row skipped: no seq, ts or machine_id");
            continue;
        };
        let mut r = Record::new(
            RecordKind::Drift,
            &machine,
            moldops_shared::drift::DEVICE_ID,
            ts,
            names.iter().zip(&values).filter_map(|(n, v)| v[i].map(|v| (n.clone(), v))),
        );
        r.seq = seq;
        r.mold = mold[i].clone();
        r.model = Some(ModelStamp {
            key: key[i].clone().unwrap_or_default(),
            id: id[i].clone().unwrap_or_default(),
            version: version[i].and_then(|v| u32::try_from(v).ok()).unwrap_or_default(),
            bundle_sha256: sha[i].clone().unwrap_or_default(),
        });
        let (site, edge, epoch) = (
            site[i].clone().unwrap_or_default(),
            edge[i].clone().unwrap_or_default(),
            epoch[i].clone().unwrap_or_default(),
        );
        match DriftSummary::from_record(&r) {
            Ok(summary) => {
                out.push(Stored { event_id: event_id(&site, &edge, &epoch, seq), edge_id: edge, summary })
            }
            Err(e) => tracing::warn!(site, edge, seq, error = %e, "edge_drift row skipped"),
        }
    }
    out.sort_by(|a, b| (a.summary.period_end_ms, &a.event_id).cmp(&(b.summary.period_end_ms, &b.event_id)));
    Ok(out)
}

/// One judged period: a row of `drift_events`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DriftEvent {
    /// The summary's idempotency key ([`event_id`]).
    pub event_id: String,
    /// Edge that summarised the period.
    pub edge_id: String,
    /// Machine of the model key.
    pub machine_id: String,
    /// Model key label (`M1` or `M1/MOLD-A`).
    pub model_key: String,
    /// Registry id of the judge (`{key}@{version}`, or `{key}@baseline`).
    pub model_id: String,
    /// First shot of the period (UTC ms).
    pub period_start_ms: i64,
    /// Last shot of the period (UTC ms).
    pub period_end_ms: i64,
    /// Shots judged in the period.
    pub shots: u64,
    /// Of those, alarms.
    pub alarms: u64,
    /// The judge's alarm-rate target, if any.
    pub alarm_target: Option<f64>,
    /// Whether the score was read against the validation distribution.
    pub score_from_validation: bool,
    /// The judgement.
    #[serde(flatten)]
    pub assessment: Assessment,
}

impl DriftEvent {
    /// The event of a stored summary judged as `assessment`.
    pub fn new(stored: &Stored, assessment: Assessment) -> DriftEvent {
        let s = &stored.summary;
        DriftEvent {
            event_id: stored.event_id.clone(),
            edge_id: stored.edge_id.clone(),
            machine_id: s.machine_id.clone(),
            model_key: s.stamp.key.clone(),
            model_id: s.stamp.id.clone(),
            period_start_ms: s.period_start_ms,
            period_end_ms: s.period_end_ms,
            shots: s.shots,
            alarms: s.alarms,
            alarm_target: s.alarm_target,
            score_from_validation: s.score_from_validation,
            assessment,
        }
    }
}

/// Event ids already in `drift_events`.
pub fn recorded(lake_dir: &Path) -> Result<BTreeSet<String>> {
    lake::retry_vanished(|| {
        let files = lake::list_parts(lake_dir, DATASET)?;
        let Some(df) = lake::read_parts(&files, &[])? else { return Ok(BTreeSet::new()) };
        Ok(text(&df, "event_id")?.into_iter().flatten().collect())
    })
}

/// Every row of `drift_events` as one frame, oldest period end first (an empty frame when none).
/// Not [`lake::read_dataset`]: the ingest's columns (`site`, `seq`, …) are not in this dataset.
pub fn read_events(lake_dir: &Path) -> Result<DataFrame> {
    lake::retry_vanished(|| {
        let files = lake::list_parts(lake_dir, DATASET)?;
        let Some(df) = lake::read_parts(&files, &[])? else { return Ok(DataFrame::empty()) };
        let sort = polars::prelude::SortMultipleOptions::default().with_maintain_order(true);
        Ok(df.sort(["period_end", "event_id"], sort)?)
    })
}

/// The levels recorded in `drift_events`, by event id (for a table of the latest state).
pub fn recorded_levels(lake_dir: &Path) -> Result<BTreeMap<String, Level>> {
    let files = lake::list_parts(lake_dir, DATASET)?;
    let Some(df) = lake::read_parts(&files, &[])? else { return Ok(BTreeMap::new()) };
    let (ids, levels) = (text(&df, "event_id")?, text(&df, "level")?);
    Ok(ids
        .into_iter()
        .zip(levels)
        .filter_map(|(id, level)| Some((id?, Level::parse(level.as_deref()?)?)))
        .collect())
}

/// Writes `events` to `drift_events` (one part file per machine and UTC day of the period's
/// end), durably; returns the files written, relative to the lake.
pub fn write(lake_dir: &Path, events: &[DriftEvent], nanos: u64) -> Result<Vec<String>> {
    let mut groups: BTreeMap<(&str, i64), Vec<&DriftEvent>> = BTreeMap::new();
    for e in events {
        groups.entry((e.machine_id.as_str(), e.period_end_ms.div_euclid(DAY_MS))).or_default().push(e);
    }
    let dirs: Vec<_> = groups
        .keys()
        .map(|(m, d)| lake::partition_dir(lake_dir, DATASET, m, &lake::day_string(*d)))
        .collect();
    let sync = prepare_dirs(lake_dir, dirs.iter().map(|d| d.as_path()))?;
    let name = format!("part-drift-{nanos:020}.parquet");
    let mut files = Vec::new();
    for (dir, rows) in dirs.iter().zip(groups.values()) {
        let mut df = frame(rows)?;
        write_parquet(dir, &name, &mut df)?;
        let path = dir.join(&name);
        files.push(path.strip_prefix(lake_dir).unwrap_or(&path).to_string_lossy().into_owned());
    }
    sync_dirs(&sync)?;
    Ok(files)
}

fn frame(rows: &[&DriftEvent]) -> Result<DataFrame> {
    let time = |name: &str, f: fn(&DriftEvent) -> i64| {
        Int64Chunked::from_iter_values(name.into(), rows.iter().map(|r| f(r)))
            .into_datetime(TimeUnit::Milliseconds, Some(TimeZone::UTC))
            .into_column()
    };
    let text = |name: &str, f: &dyn Fn(&DriftEvent) -> String| {
        Column::new(name.into(), rows.iter().map(|r| f(r)).collect::<Vec<_>>())
    };
    let num = |name: &str, f: &dyn Fn(&DriftEvent) -> Option<f64>| {
        Column::new(name.into(), rows.iter().map(|r| f(r)).collect::<Vec<_>>())
    };
    let whole = |name: &str, f: fn(&DriftEvent) -> u64| {
        Column::new(name.into(), rows.iter().map(|r| f(r) as i64).collect::<Vec<_>>())
    };
    let worst = |r: &DriftEvent| {
        r.assessment
            .worst_features
            .iter()
            .map(|f: &Figures| format!("{}={:.3}", f.name, f.psi.unwrap_or(f64::NAN)))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let max_feature_psi = |r: &DriftEvent| r.assessment.worst_features.first().and_then(|f| f.psi);
    let columns = vec![
        text("event_id", &|r| r.event_id.clone()),
        text("edge_id", &|r| r.edge_id.clone()),
        text("machine_id", &|r| r.machine_id.clone()),
        text("model_key", &|r| r.model_key.clone()),
        text("model_id", &|r| r.model_id.clone()),
        time("period_start", |r| r.period_start_ms),
        time("period_end", |r| r.period_end_ms),
        whole("shots", |r| r.shots),
        whole("alarms", |r| r.alarms),
        num("alarm_rate", &|r| Some(r.assessment.alarm_rate)),
        num("alarm_target", &|r| r.alarm_target),
        num("alarm_p", &|r| r.assessment.alarm_p),
        num("score_psi", &|r| r.assessment.score.psi),
        num("score_ks", &|r| r.assessment.score.ks),
        num("score_ks_p", &|r| r.assessment.score.ks_p),
        num("max_feature_psi", &max_feature_psi),
        text("worst_features", &worst),
        text("level", &|r| r.assessment.level.as_str().to_string()),
        text("reasons", &|r| r.assessment.reasons.join("; ")),
    ];
    DataFrame::new(rows.len(), columns).context("building drift_events")
}
