//! The machine page: the machine's recent shots as a trend of one feature, chosen by the user,
//! with the shots the edge alarmed on marked; the models judging it (threshold, alarm rate over
//! the recent verdicts); its recent production runs — consecutive shots on one mold; and its
//! peripherals with their samples and values out of range.

use super::{Failure, Page, Shared};
use crate::lake::{self, columns, verdicts};
use anyhow::Result;
use axum::extract::{Path as UrlPath, Query, State};
use axum::http::HeaderMap;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Shots read for the trend and the production runs (the newest part files until this many).
const RECENT_SHOTS: usize = 2000;

/// Part files read at a time while collecting the recent shots.
const PARTS_AT_ONCE: usize = 32;

/// Shots shown in the trend.
pub const TREND_SHOTS: usize = 400;

/// Verdicts the alarm rates are computed over.
const RATE_VERDICTS: usize = 1000;

/// A model judging the machine, from its recent verdicts.
#[derive(Debug, Clone, Serialize)]
pub struct ModelLive {
    /// The model key.
    pub model_key: String,
    /// Registry id of the bundle that judged the latest shot.
    pub model_id: String,
    /// Its threshold.
    pub threshold: f64,
    /// Recent shots it judged.
    pub scored: usize,
    /// Alarms among them.
    pub alarms: usize,
    /// Alarms over scored.
    pub alarm_rate: f64,
}

/// A production run: consecutive shots on one mold.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Run {
    /// The mold (`–` when unknown).
    pub mold: String,
    /// Shots in the run (among the recent ones).
    pub shots: usize,
    /// First and last shot time (UTC ms).
    pub first_ms: i64,
    /// Last shot time (UTC ms).
    pub last_ms: i64,
}

/// A peripheral of the machine (mold temperature controller, dryer, scale, …), from
/// `peripheral_data`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Peripheral {
    /// The device's id.
    pub device_id: String,
    /// Samples in the lake.
    pub samples: u64,
    /// The latest sample (UTC ms).
    pub last_ms: i64,
    /// Samples with a value outside its engineering range (the device or its mapping is off).
    pub out_of_range: u64,
}

/// The whole page.
#[derive(Debug, Clone, Serialize)]
pub struct MachineDetail {
    /// The machine.
    pub machine_id: String,
    /// Its features (value columns of `raw_data`).
    pub features: Vec<String>,
    /// The feature shown.
    pub feature: String,
    /// The trend as inline SVG (empty without shots).
    pub trend_svg: String,
    /// Shots in the trend, and alarms among them.
    pub shots_shown: usize,
    /// Alarms among the shots shown.
    pub alarms_shown: usize,
    /// Models judging the machine.
    pub models: Vec<ModelLive>,
    /// Recent production runs, newest first.
    pub runs: Vec<Run>,
    /// Its peripherals.
    pub peripherals: Vec<Peripheral>,
}

/// `?feature=`.
#[derive(Debug, Deserialize)]
pub struct Choice {
    /// The feature to plot.
    pub feature: Option<String>,
}

/// `GET /machines/{machine}`.
pub async fn page(
    State(c): State<Shared>,
    headers: HeaderMap,
    UrlPath(machine_id): UrlPath<String>,
    Query(choice): Query<Choice>,
) -> Page {
    let lake_dir = c.folders.lake.clone();
    let id = machine_id.clone();
    let view = super::blocking(move || detail(&lake_dir, &id, choice.feature.as_deref())).await?;
    let Some(view) = view else {
        return Err(Failure::not_found(format!("the lake has no machine {machine_id:?}")));
    };
    let title = format!("Machine {}", view.machine_id);
    c.render("machine.html", "fleet", &title, &headers, view)
}

/// The page of one machine; `None` when the lake has none of its shots or verdicts.
pub fn detail(lake_dir: &Path, machine_id: &str, feature: Option<&str>) -> Result<Option<MachineDetail>> {
    let shots = recent_shots(lake_dir, machine_id)?;
    let query = verdicts::Query { machine_id: machine_id.to_string(), shots: None, alarms_only: false };
    let all = verdicts::verdicts(lake_dir, &query)?;
    if shots.is_none() && all.is_empty() {
        return Ok(None);
    }
    let alarmed: BTreeSet<u64> = all.iter().filter(|v| v.alarm).filter_map(|v| v.shot_number).collect();
    let mut view = MachineDetail {
        machine_id: machine_id.to_string(),
        features: Vec::new(),
        feature: String::new(),
        trend_svg: String::new(),
        shots_shown: 0,
        alarms_shown: 0,
        models: models(&all[all.len().saturating_sub(RATE_VERDICTS)..]),
        runs: Vec::new(),
        peripherals: peripherals(lake_dir, machine_id)?,
    };
    let Some(df) = shots else { return Ok(Some(view)) };
    let mut features: Vec<String> = df
        .columns()
        .iter()
        .filter(|c| !lake::is_lake_column(c.name()) && c.dtype().is_primitive_numeric())
        .map(|c| c.name().to_string())
        .collect();
    features.sort();
    let ts = columns::millis(&df, "ts")?;
    let shot = columns::count(&df, "shot_number")?;
    let mold = columns::text(&df, "mold")?;
    let mut order: Vec<usize> = (0..df.height()).filter(|i| ts[*i].is_some()).collect();
    order.sort_by_key(|i| (ts[*i], shot[*i]));
    view.runs = runs(order.iter().map(|&i| (mold[i].as_deref(), ts[i].unwrap_or_default())));
    let chosen = feature
        .filter(|f| features.iter().any(|x| x == f))
        .map(str::to_string)
        .or_else(|| top_feature(&all, &features))
        .or_else(|| features.first().cloned());
    if let Some(feature) = chosen {
        let values = columns::number(&df, &feature)?;
        let shown = &order[order.len().saturating_sub(TREND_SHOTS)..];
        // The x axis: shot numbers when every shot shown has one and they rise in time order;
        // otherwise (a counter reset, a machine without one) the shots' positions.
        let numbered: Option<Vec<u64>> = shown.iter().map(|&i| shot[i]).collect();
        let by_number = numbered.filter(|n| n.windows(2).all(|w| w[0] < w[1]));
        let x_desc = if by_number.is_some() { "shot" } else { "shot (position, oldest first)" };
        let x = |pos: usize| by_number.as_ref().map_or(pos as f64, |n| n[pos] as f64);
        let points: Vec<(f64, f64)> =
            shown.iter().enumerate().filter_map(|(pos, &i)| Some((x(pos), values[i]?))).collect();
        let marks: Vec<(f64, f64)> = shown
            .iter()
            .enumerate()
            .filter(|(_, i)| shot[**i].is_some_and(|s| alarmed.contains(&s)))
            .filter_map(|(pos, &i)| Some((x(pos), values[i]?)))
            .collect();
        view.shots_shown = shown.len();
        view.alarms_shown = marks.len();
        view.trend_svg = crate::report::plots::trend(
            &format!("{machine_id}: {feature}"),
            (x_desc, &feature),
            &points,
            &marks,
        )?;
        view.feature = feature;
    }
    view.features = features;
    Ok(Some(view))
}

/// The machine's newest shots: part files newest first (by day, then commit time), read until
/// [`RECENT_SHOTS`] rows.
fn recent_shots(lake_dir: &Path, machine_id: &str) -> Result<Option<polars::prelude::DataFrame>> {
    let mut files = lake::list_machine_parts(lake_dir, lake::RAW_DATA, machine_id)?;
    let day = |f: &std::path::PathBuf| f.parent().map(|d| d.as_os_str().to_os_string());
    let nanos = |f: &std::path::PathBuf| f.file_name().and_then(|n| lake::part_nanos(&n.to_string_lossy()));
    files.sort_by_key(|f| (day(f), nanos(f)));
    let (mut frames, mut rows) = (Vec::new(), 0);
    while rows < RECENT_SHOTS && !files.is_empty() {
        let chunk = files.split_off(files.len().saturating_sub(PARTS_AT_ONCE));
        if let Some(df) = lake::read_parts(&chunk, &[])? {
            rows += df.height();
            frames.push(df);
        }
    }
    if frames.is_empty() {
        return Ok(None);
    }
    Ok(Some(polars::functions::concat_df_diagonal(&frames)?))
}

/// The machine's peripherals: samples, the latest, and samples with values out of range.
fn peripherals(lake_dir: &Path, machine_id: &str) -> Result<Vec<Peripheral>> {
    use polars::prelude::{DataType, SortMultipleOptions, UnionArgs, col, concat, len, lit};
    let parts = lake::list_machine_parts(lake_dir, lake::PERIPHERAL_DATA, machine_id)?;
    if parts.is_empty() {
        return Ok(Vec::new());
    }
    let scans = parts
        .iter()
        .map(|p| {
            lake::scan_part(p, None).map(|lf| lf.select([col("device_id"), col("ts"), col("out_of_range")]))
        })
        .collect::<Result<Vec<_>>>()?;
    let flagged = col("out_of_range").is_not_null().and(col("out_of_range").neq(lit("")));
    let df = concat(scans, UnionArgs::default())?
        .group_by([col("device_id")])
        .agg([
            len().cast(DataType::UInt64).alias("samples"),
            col("ts").max().cast(DataType::Int64).alias("last"),
            flagged.cast(DataType::UInt64).sum().alias("out_of_range"),
        ])
        .sort(["device_id"], SortMultipleOptions::default())
        .collect()?;
    let (device, samples, last, out) = (
        columns::text(&df, "device_id")?,
        columns::count(&df, "samples")?,
        columns::millis(&df, "last")?,
        columns::count(&df, "out_of_range")?,
    );
    Ok((0..df.height())
        .filter_map(|i| {
            Some(Peripheral {
                device_id: device[i].clone()?,
                samples: samples[i].unwrap_or_default(),
                last_ms: last[i].unwrap_or_default(),
                out_of_range: out[i].unwrap_or_default(),
            })
        })
        .collect())
}

/// The feature that most often leads an alarm's contributions.
fn top_feature(all: &[verdicts::Verdict], features: &[String]) -> Option<String> {
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for v in all.iter().filter(|v| v.alarm) {
        if let Some((f, _)) = v.contributions.first() {
            *counts.entry(f.as_str()).or_default() += 1;
        }
    }
    counts
        .into_iter()
        .filter(|(f, _)| features.iter().any(|x| x == f))
        .max_by_key(|(_, n)| *n)
        .map(|(f, _)| f.to_string())
}

/// Per model key, what its verdicts say.
fn models(recent: &[verdicts::Verdict]) -> Vec<ModelLive> {
    let mut by_key: BTreeMap<&str, ModelLive> = BTreeMap::new();
    for v in recent {
        let m = by_key.entry(v.model_key.as_str()).or_insert_with(|| ModelLive {
            model_key: v.model_key.clone(),
            model_id: String::new(),
            threshold: f64::NAN,
            scored: 0,
            alarms: 0,
            alarm_rate: 0.0,
        });
        m.model_id.clone_from(&v.model_id);
        m.threshold = v.threshold;
        m.scored += 1;
        m.alarms += usize::from(v.alarm);
    }
    by_key
        .into_values()
        .map(|mut m| {
            m.alarm_rate = m.alarms as f64 / m.scored.max(1) as f64;
            m
        })
        .collect()
}

/// Consecutive shots on one mold, newest first, from (mold, time) in time order.
fn runs<'a>(shots: impl Iterator<Item = (Option<&'a str>, i64)>) -> Vec<Run> {
    let mut out: Vec<Run> = Vec::new();
    for (mold, ts) in shots {
        let mold = mold.unwrap_or("–");
        match out.last_mut() {
            Some(r) if r.mold == mold => {
                r.shots += 1;
                r.last_ms = ts;
            }
            _ => out.push(Run { mold: mold.to_string(), shots: 1, first_ms: ts, last_ms: ts }),
        }
    }
    out.reverse();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn production_runs_are_consecutive_shots_on_one_mold_newest_first() {
        let shots = [(Some("A"), 1), (Some("A"), 2), (None, 3), (Some("B"), 4), (Some("A"), 5)];
        let r = runs(shots.into_iter());
        let molds: Vec<(&str, usize)> = r.iter().map(|r| (r.mold.as_str(), r.shots)).collect();
        assert_eq!(molds, [("A", 1), ("B", 1), ("–", 1), ("A", 2)]);
        assert_eq!((r[3].first_ms, r[3].last_ms), (1, 2));
    }
}
