//! The input files of the ETL in the lake: a partition's part files, and per machine and date
//! the shots, readings (its own and the day before's), shot labels and lots that date is
//! merged from.

use super::LABELS;
use super::merge::MachineInput;
use crate::lake;
use anyhow::Result;
use std::path::{Path, PathBuf};

/// The last component of a path (a partition folder's `machine=…` or `date=…`).
pub(super) fn file_name(p: &Path) -> String {
    p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
}

/// Part files of one partition folder (none when it does not exist).
fn parts(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut out: Vec<PathBuf> = lake::read_dir(dir)?
        .into_iter()
        .map(|e| e.path())
        .filter(|p| {
            let n = file_name(p);
            n.starts_with("part-") && n.ends_with(".parquet")
        })
        .collect();
    out.sort();
    Ok(out)
}

/// Part files of every date folder of a machine in a dataset.
pub(super) fn all_parts(lake_dir: &Path, dataset: &str, folder: &str) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for d in lake::date_dirs(&lake_dir.join(dataset).join(folder))? {
        out.extend(parts(&d)?);
    }
    Ok(out)
}

/// A partition folder of one machine (`machine=…` folder name) and date.
pub(super) fn date_dir(lake_dir: &Path, dataset: &str, folder: &str, date: &str) -> PathBuf {
    lake_dir.join(dataset).join(folder).join(lake::date_folder(date))
}

/// The date before `date` (`YYYY-MM-DD`), if it parses.
fn previous_date(date: &str) -> Option<String> {
    let d = chrono::NaiveDate::parse_from_str(date, "%Y-%m-%d").ok()?;
    d.pred_opt().map(|p| p.to_string())
}

/// Days since the epoch of `YYYY-MM-DD`.
pub(super) fn day_number(date: &str) -> Option<i64> {
    let d = chrono::NaiveDate::parse_from_str(date, "%Y-%m-%d").ok()?;
    Some(d.signed_duration_since(chrono::NaiveDate::default()).num_days())
}

/// The inputs of one date (see the module doc).
pub(super) fn date_inputs(
    lake_dir: &Path,
    folder: &str,
    date: &str,
    lots: &[PathBuf],
) -> Result<MachineInput> {
    let mut peripherals = Vec::new();
    if let Some(prev) = previous_date(date) {
        peripherals.extend(parts(&date_dir(lake_dir, lake::PERIPHERAL_DATA, folder, &prev))?);
    }
    peripherals.extend(parts(&date_dir(lake_dir, lake::PERIPHERAL_DATA, folder, date))?);
    Ok(MachineInput {
        raw: parts(&date_dir(lake_dir, lake::RAW_DATA, folder, date))?,
        peripherals,
        labels: parts(&date_dir(lake_dir, LABELS, folder, date))?,
        lots: lots.to_vec(),
    })
}
