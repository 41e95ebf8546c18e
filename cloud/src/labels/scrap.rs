//! Scrap counts as lot-level labels (`moldops-cloud import --scrap-counts`): a table of how
//! many parts of a machine's lot or period were scrapped, without saying which, stored in
//! `lot_labels` with the defect ratio it implies beside the count.
//!
//! Columns: `machine_id, from_ts, to_ts, scrap` and optionally `parts` (what the count is out
//! of) and `lot`; times RFC 3339 with an offset or epoch ms. Without `parts` the count is out
//! of the machine's shots the lake holds in the span, counted at import. A row is refused
//! (quarantined with its column and reason) when the machine or lot is not a valid name, a time
//! does not parse, the span is backwards or longer than [`MAX_SPAN_DAYS`], the count is not a
//! whole number, it is larger than its lot, or the lake holds no shot to take it out of. A
//! table without the required columns is refused whole, naming them.

use crate::import::ImportReport;
use crate::import::labels::{LotRefusal, LotRow, lot_columns, parse_time_ms, write_groups};
use crate::import::table::{ReadOptions, Table};
use crate::lake::{self, columns};
use anyhow::{Context, Result};
use moldops_shared::limits;
use polars::prelude::{Column, DataFrame};
use std::collections::BTreeMap;
use std::path::Path;

/// Column of `lot_labels` holding a scrap count (null in QC lot results).
pub const SCRAP_COLUMN: &str = "scrap";
/// Column of `lot_labels` holding what a scrap count is out of.
pub const PARTS_COLUMN: &str = "parts";

const DAY_MS: i64 = 86_400_000;

/// Longest span one scrap count may cover: a count over more than a year is no lot label.
pub const MAX_SPAN_DAYS: i64 = 366;

/// One row of a scrap table, checked.
#[derive(Debug, Clone, PartialEq)]
pub struct ScrapCount {
    /// The machine.
    pub machine_id: String,
    /// Start of the lot or period (UTC ms).
    pub from_ms: i64,
    /// End of it (UTC ms), inclusive.
    pub to_ms: i64,
    /// Parts scrapped.
    pub scrap: u64,
    /// What the count is out of: the table's `parts`, else the shots the lake holds.
    pub parts: u64,
    /// The lot's name, when given.
    pub lot: Option<String>,
}

/// Reads the scrap counts of `table`; `shots(machine, from, to)` counts the machine's shots
/// in the span when a row gives no `parts`.
pub fn parse(
    table: &Table,
    mut shots: impl FnMut(&str, i64, i64) -> Result<u64>,
) -> Result<(Vec<ScrapCount>, Vec<LotRefusal>)> {
    let find = |name: &str| table.header.iter().position(|h| h.eq_ignore_ascii_case(name));
    let required = ["machine_id", "from_ts", "to_ts", SCRAP_COLUMN];
    let missing: Vec<&str> = required.iter().copied().filter(|c| find(c).is_none()).collect();
    anyhow::ensure!(missing.is_empty(), "a scrap table needs the column(s) {}", missing.join(", "));
    let [machine, from, to, scrap] = required.map(|c| find(c).unwrap_or_default());
    let (parts, lot) = (find(PARTS_COLUMN), find("lot"));
    let mut out = Vec::new();
    let mut bad = Vec::new();
    for row in &table.rows {
        let cells = match &row.cells {
            Ok(cells) => cells,
            Err(e) => {
                bad.push((row.line, None, e.reason.clone()));
                continue;
            }
        };
        let cell = |i: usize| cells.get(i).and_then(|c| c.as_deref()).map(str::trim).unwrap_or("");
        let blame = |col: &str, why: String| (Some(col.to_string()), why);
        let parsed = (|| -> Result<ScrapCount, (Option<String>, String)> {
            let machine_id = cell(machine);
            limits::check_name("machine_id", machine_id).map_err(|e| blame("machine_id", e.to_string()))?;
            let from_ms = parse_time_ms(cell(from)).map_err(|e| blame("from_ts", e.to_string()))?;
            let to_ms = parse_time_ms(cell(to)).map_err(|e| blame("to_ts", e.to_string()))?;
            if to_ms < from_ms {
                return Err(blame("to_ts", "before from_ts".into()));
            }
            if to_ms.saturating_sub(from_ms) > MAX_SPAN_DAYS * DAY_MS {
                return Err(blame("to_ts", format!("the span is longer than {MAX_SPAN_DAYS} days")));
            }
            let count = |col: &str, text: &str| {
                text.parse::<u64>()
                    .map_err(|_| blame(col, format!("{text:?} is not a whole number of parts")))
            };
            let scrapped = count(SCRAP_COLUMN, cell(scrap))?;
            let given =
                parts.map(cell).filter(|p| !p.is_empty()).map(|p| count(PARTS_COLUMN, p)).transpose()?;
            let out_of = match given {
                Some(0) => return Err(blame(PARTS_COLUMN, "a lot of 0 parts".into())),
                Some(p) if scrapped > p => {
                    return Err(blame(
                        SCRAP_COLUMN,
                        format!("{scrapped} scrapped is more than the lot's {p} parts"),
                    ));
                }
                Some(p) => p,
                None => {
                    let span = format!(
                        "{}..{}",
                        lake::quarantine::rfc3339_ms(from_ms),
                        lake::quarantine::rfc3339_ms(to_ms)
                    );
                    let n = shots(machine_id, from_ms, to_ms).map_err(|e| (None, format!("{e:#}")))?;
                    if n == 0 {
                        return Err(blame(
                            "from_ts",
                            format!(
                                "the lake holds no shot of {machine_id} in {span}: import the shots first, or give `parts`"
                            ),
                        ));
                    }
                    if scrapped > n {
                        return Err(blame(
                            SCRAP_COLUMN,
                            format!(
                                "{scrapped} scrapped is more than the {n} shots of {machine_id} the lake holds in {span}"
                            ),
                        ));
                    }
                    n
                }
            };
            let lot = lot.map(cell).filter(|l| !l.is_empty()).map(str::to_string);
            if let Some(name) = &lot {
                limits::check_name("lot", name).map_err(|e| blame("lot", e.to_string()))?;
            }
            Ok(ScrapCount {
                machine_id: machine_id.to_string(),
                from_ms,
                to_ms,
                scrap: scrapped,
                parts: out_of,
                lot,
            })
        })();
        match parsed {
            Ok(s) => out.push(s),
            Err((column, reason)) => bad.push((row.line, column, reason)),
        }
    }
    Ok((out, bad))
}

/// Counts a machine's shots in a span from the lake's `raw_data` (distinct shot times): each
/// machine's partitions are listed once, and each (machine, day) partition read once however
/// many rows of a table ask for it. Memory follows the days the lake has, not the spans asked
/// for.
#[derive(Debug)]
pub struct ShotCounter<'a> {
    lake_dir: &'a Path,
    /// Per machine, its days with part files: the files until read, then the sorted times.
    machines: BTreeMap<String, BTreeMap<i64, Day>>,
}

#[derive(Debug)]
enum Day {
    Unread(Vec<std::path::PathBuf>),
    Read(Vec<i64>),
}

impl<'a> ShotCounter<'a> {
    /// A counter over the lake at `lake_dir`.
    pub fn new(lake_dir: &'a Path) -> ShotCounter<'a> {
        ShotCounter { lake_dir, machines: BTreeMap::new() }
    }

    /// The shots of `machine_id` from `from_ms` to `to_ms` inclusive; only the date
    /// partitions of the span that exist are read.
    pub fn count(&mut self, machine_id: &str, from_ms: i64, to_ms: i64) -> Result<u64> {
        if !self.machines.contains_key(machine_id) {
            let mut days: BTreeMap<i64, Day> = BTreeMap::new();
            for f in lake::list_machine_parts(self.lake_dir, lake::RAW_DATA, machine_id)? {
                let day = f.parent().and_then(Path::file_name).and_then(|d| {
                    let d = d.to_string_lossy();
                    let date = chrono::NaiveDate::parse_from_str(
                        lake::folder_value(&d, lake::DATE_KEY)?,
                        "%Y-%m-%d",
                    )
                    .ok()?;
                    Some(date.and_hms_opt(0, 0, 0)?.and_utc().timestamp_millis().div_euclid(DAY_MS))
                });
                if let Some(day) = day {
                    match days.entry(day).or_insert_with(|| Day::Unread(Vec::new())) {
                        Day::Unread(files) => files.push(f),
                        Day::Read(_) => {}
                    }
                }
            }
            self.machines.insert(machine_id.to_string(), days);
        }
        let Some(days) = self.machines.get_mut(machine_id) else { return Ok(0) };
        let (first, last) = (from_ms.div_euclid(DAY_MS), to_ms.div_euclid(DAY_MS));
        let mut n = 0u64;
        for day in days.range_mut(first..=last).map(|(_, d)| d) {
            if let Day::Unread(files) = day {
                let mut times: Vec<i64> = match lake::read_parts(files, &[])? {
                    Some(df) => columns::millis(&df, "ts")?.into_iter().flatten().collect(),
                    None => Vec::new(),
                };
                times.sort_unstable();
                times.dedup();
                *day = Day::Read(times);
            }
            if let Day::Read(times) = day {
                let (lo, hi) =
                    (times.partition_point(|t| *t < from_ms), times.partition_point(|t| *t <= to_ms));
                n += (hi - lo) as u64;
            }
        }
        Ok(n)
    }
}

/// Writes scrap counts from `source` into `lot_labels` (the defect ratio `scrap / parts`
/// beside the counts), partitioned by machine and the date of each lot's start.
pub fn write(lake_dir: &Path, source: &str, counts: &[ScrapCount]) -> Result<usize> {
    let groups = crate::import::labels::by_machine_day(counts, |s| (&s.machine_id, s.from_ms));
    write_groups(lake_dir, crate::etl::LOT_LABELS, source, groups, |rows| {
        let each = |f: fn(&ScrapCount) -> u64| rows.iter().map(|r| f(r.1)).collect::<Vec<_>>();
        let lots: Vec<LotRow<'_>> = rows
            .iter()
            .map(|(seq, s)| LotRow {
                seq: *seq,
                machine_id: &s.machine_id,
                from_ms: s.from_ms,
                to_ms: s.to_ms,
                defect_ratio: s.scrap as f64 / s.parts as f64,
                lot: s.lot.as_deref(),
            })
            .collect();
        let mut cols = lot_columns(source, &lots);
        cols.push(Column::new(SCRAP_COLUMN.into(), each(|s| s.scrap)));
        cols.push(Column::new(PARTS_COLUMN.into(), each(|s| s.parts)));
        DataFrame::new(lots.len(), cols).context("building a scrap counts frame")
    })
}

/// Imports a scrap table (CSV, workbook or Parquet; `opts` say how to read it) into
/// `lot_labels`; importing the same file again adds nothing.
pub fn import(lake_dir: &Path, path: &Path, opts: &ReadOptions) -> Result<ImportReport> {
    let mut shots = ShotCounter::new(lake_dir);
    crate::import::import_lot_table(
        lake_dir,
        path,
        opts,
        |table| parse(table, |m, from, to| shots.count(m, from, to)),
        write,
    )
}
