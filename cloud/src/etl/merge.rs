//! The merge of one machine over a span of dates, as one lazy polars query: shots sorted by
//! time, drop reasons ([`super::clean`]), the peripheral as-of joins and the labels
//! ([`super::join`]); then the production runs ([`super::runs`]) and the output columns in
//! the shared feature order ([`moldops_shared::features::feature_names`]).

use super::clean::{CleanRules, REASON_COLUMN, REASONS};
use super::join;
use super::runs;
use super::state::Tail;
use super::tolerance::{MachineTolerance, Tolerance};
use anyhow::{Context, Result};
use polars::prelude::*;
use std::collections::BTreeMap;
use std::path::PathBuf;

/// Identifying columns of `etl_data`, in this order; the features follow.
pub const ID_COLUMNS: [&str; 10] = [
    "machine_id",
    "ts",
    "shot_number",
    "mold",
    "run_id",
    "label",
    "label_source",
    "defect",
    "edge_id",
    "seq",
];

/// The input files of one machine's merge.
#[derive(Debug, Clone, Default)]
pub struct MachineInput {
    /// Shot part files of the dates to build.
    pub raw: Vec<PathBuf>,
    /// Peripheral part files of those dates and the date before the first.
    pub peripherals: Vec<PathBuf>,
    /// Shot-level label part files of those dates.
    pub labels: Vec<PathBuf>,
    /// Every lot-level label part file of the machine.
    pub lots: Vec<PathBuf>,
}

/// What one merge produced.
#[derive(Debug)]
pub struct Merged {
    /// Kept shots with `ts_ms`, run ids, labels and features, sorted by time.
    pub frame: DataFrame,
    /// Shots read, before the drop rules.
    pub rows_in: u64,
    /// Dropped rows per reason.
    pub dropped: BTreeMap<String, u64>,
    /// The ordered feature names.
    pub features: Vec<String>,
    /// The as-of tolerance the peripherals were joined with.
    pub tolerance: MachineTolerance,
}

/// Lake columns of shot part files the merge never uses (not read).
const SHOT_COLUMNS_UNUSED: [&str; 4] = ["site", "out_of_range", "device_id", "epoch"];
/// Lake columns of peripheral part files the merge never uses (not read).
const READING_COLUMNS_UNUSED: [&str; 6] =
    ["site", "out_of_range", "machine_id", "shot_number", "mold", "epoch"];

/// Part files without the columns in `skip`, with `ts_ms` (`i64`) from `ts`.
fn read_timed(files: &[PathBuf], skip: &[&str]) -> Result<Option<DataFrame>> {
    let Some(mut df) = crate::lake::read_parts(files, skip)? else { return Ok(None) };
    let ts_ms = df.column("ts")?.cast(&DataType::Int64)?.with_name("ts_ms".into());
    df.with_column(ts_ms)?;
    Ok(Some(df))
}

/// Merges one machine's inputs. `seed` is the tail of the date before the first one built;
/// an auto `tolerance` is derived from the kept shots.
pub fn merge(
    input: &MachineInput,
    rules: &CleanRules,
    tolerance: Tolerance,
    seed: Option<&Tail>,
) -> Result<Merged> {
    let Some(raw) = read_timed(&input.raw, &SHOT_COLUMNS_UNUSED)? else {
        return Ok(Merged {
            frame: DataFrame::empty(),
            rows_in: 0,
            dropped: BTreeMap::new(),
            features: Vec::new(),
            tolerance: tolerance.resolve(&[]),
        });
    };
    let values: Vec<PlSmallStr> = raw
        .get_column_names()
        .into_iter()
        .filter(|c| !crate::lake::is_lake_column(c.as_str()) && c.as_str() != "ts_ms")
        .cloned()
        .collect();
    let sort = SortMultipleOptions::default().with_maintain_order(true);
    let classified = raw
        .lazy()
        .sort(["ts_ms", "shot_number", "edge_id", "seq"], sort)
        .with_column(rules.reason(&values)?.alias(REASON_COLUMN))
        .collect()
        .map_err(anyhow::Error::from)
        .context("classifying shots")?;
    let rows_in = classified.height() as u64;
    let mut dropped: BTreeMap<String, u64> = REASONS.iter().map(|r| (r.to_string(), 0)).collect();
    for reason in classified.column(REASON_COLUMN)?.str()?.iter().flatten() {
        *dropped.entry(reason.to_string()).or_default() += 1;
    }
    let machine_id =
        classified.column("machine_id")?.str()?.get(0).context("a shot without machine_id")?.to_string();
    let kept_ts: Vec<i64> = {
        let ts = classified.column("ts_ms")?.i64()?;
        let reason = classified.column(REASON_COLUMN)?.str()?;
        ts.iter().zip(reason.iter()).filter(|(_, r)| r.is_none()).filter_map(|(t, _)| t).collect()
    };
    let tolerance = tolerance.resolve(&kept_ts);
    let tolerance_ms = tolerance.ms;
    let kept = classified.lazy().filter(col(REASON_COLUMN).is_null()).drop(cols([REASON_COLUMN]));

    let peripherals = read_timed(&input.peripherals, &READING_COLUMNS_UNUSED)?;
    let (joined, added) = join::peripherals(kept, peripherals, &machine_id, tolerance_ms)?;
    let labels = crate::lake::read_parts(&input.labels, &[])?;
    // Scrap counts share `lot_labels` but say how many parts of a span were bad, not which:
    // they label no shot (docs/labels.md).
    let lots = match crate::lake::read_parts(&input.lots, &[])? {
        Some(df) if df.column(crate::labels::scrap::SCRAP_COLUMN).is_ok() => Some(
            df.lazy()
                .filter(col(crate::labels::scrap::SCRAP_COLUMN).is_null())
                .collect()
                .map_err(anyhow::Error::from)
                .context("leaving the scrap counts out of the lot labels")?,
        ),
        other => other,
    };
    let mut frame = join::labels(joined, labels, lots)?
        .collect()
        .map_err(anyhow::Error::from)
        .context("joining peripherals and labels")?;

    let (ids, _) = {
        let ts = frame.column("ts_ms")?.i64()?;
        let mold = frame.column("mold")?.str()?;
        let shots = ts.iter().zip(mold.iter()).map(|(t, m)| (t.unwrap_or(i64::MIN), m));
        runs::segment(&machine_id, shots, seed)
    };
    frame.with_column(Column::new("run_id".into(), ids))?;

    let features = moldops_shared::features::feature_names(values.iter().map(|v| v.as_str()), added);
    let order: Vec<PlSmallStr> = ID_COLUMNS
        .iter()
        .copied()
        .chain(["ts_ms"])
        .chain(features.iter().map(String::as_str))
        .map(PlSmallStr::from)
        .collect();
    let frame = frame.select(order).map_err(anyhow::Error::from).context("ordering the etl_data columns")?;
    Ok(Merged { frame, rows_in, dropped, features, tolerance })
}
