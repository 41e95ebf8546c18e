//! Ground-truth labels in the lake: shot-level (`labels`: machine, shot number, time, label,
//! defect) and lot-level (`lot_labels`: machine, time span, defect ratio), partitioned by
//! machine and UTC date (of the shot, or of the lot's start) like the other datasets, with the
//! import identity `(edge_id, seq)` in every row. Reading the simulator's quality log and
//! lot tables (CSV or Parquet: `machine_id, from_ts, to_ts, defect_ratio[, lot]`).

use super::rows::BadTime;
use crate::etl::{LABELS, LOT_LABELS};
use crate::lake::{self, write};
use anyhow::{Context, Result};
use polars::prelude::{Column, DataFrame, Int64Chunked, IntoColumn, NewChunkedArray, TimeUnit, TimeZone};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::Path;

const DAY_MS: i64 = 86_400_000;

/// One inspected shot.
#[derive(Debug, Clone, PartialEq)]
pub struct ShotLabel {
    /// Machine that made the shot.
    pub machine_id: String,
    /// The machine's shot counter.
    pub shot_number: u64,
    /// Time of the shot, ms since the Unix epoch (UTC).
    pub ts_ms: i64,
    /// 1 = defective, 0 = good.
    pub label: f64,
    /// Defect type, when the log names one (an empty name counts as none).
    pub defect: Option<String>,
}

/// One inspected lot: the shots of `machine_id` from `from_ms` to `to_ms` (inclusive) had
/// `defect_ratio` of defective parts.
#[derive(Debug, Clone, PartialEq)]
pub struct LotLabel {
    /// Machine that made the lot.
    pub machine_id: String,
    /// Start of the lot, ms since the Unix epoch (UTC).
    pub from_ms: i64,
    /// End of the lot, ms since the Unix epoch (UTC), not before `from_ms`.
    pub to_ms: i64,
    /// Share of defective parts in the lot, in [0, 1].
    pub defect_ratio: f64,
    /// Lot name, when the table has one.
    pub lot: Option<String>,
}

/// True when a label part file of `source` (an import identity) is already in `dataset`.
pub fn already_imported(lake_dir: &Path, dataset: &str, source: &str) -> Result<bool> {
    let prefix = format!("part-{}-", lake::escape(source));
    Ok(lake::list_parts(lake_dir, dataset)?
        .iter()
        .any(|p| p.file_name().is_some_and(|n| n.to_string_lossy().starts_with(&prefix))))
}

pub(crate) fn ts_column(name: &str, ms: impl Iterator<Item = i64>) -> Column {
    Int64Chunked::from_iter_values(name.into(), ms)
        .into_datetime(TimeUnit::Milliseconds, Some(TimeZone::UTC))
        .into_column()
}

/// Writes shot labels from `source` (row `i` gets `seq = i + 1`); one part file per machine
/// and date. Returns the number of files.
pub fn write_shot_labels(lake_dir: &Path, source: &str, labels: &[ShotLabel]) -> Result<usize> {
    let groups = by_machine_day(labels, |l| (&l.machine_id, l.ts_ms));
    write_groups(lake_dir, LABELS, source, groups, |rows| {
        let n = rows.len();
        let cols = vec![
            Column::new("edge_id".into(), vec![source; n]),
            Column::new("seq".into(), rows.iter().map(|r| r.0).collect::<Vec<_>>()),
            Column::new(
                "machine_id".into(),
                rows.iter().map(|r| r.1.machine_id.as_str()).collect::<Vec<_>>(),
            ),
            Column::new("shot_number".into(), rows.iter().map(|r| r.1.shot_number).collect::<Vec<_>>()),
            ts_column("ts", rows.iter().map(|r| r.1.ts_ms)),
            Column::new("label".into(), rows.iter().map(|r| r.1.label).collect::<Vec<_>>()),
            Column::new("defect".into(), rows.iter().map(|r| r.1.defect.as_deref()).collect::<Vec<_>>()),
        ];
        DataFrame::new(n, cols).context("building a labels frame")
    })
}

/// Writes lot labels from `source`, partitioned by the date of each lot's start.
pub fn write_lot_labels(lake_dir: &Path, source: &str, lots: &[LotLabel]) -> Result<usize> {
    let groups = by_machine_day(lots, |l| (&l.machine_id, l.from_ms));
    write_groups(lake_dir, LOT_LABELS, source, groups, |rows| {
        let lots: Vec<LotRow<'_>> = rows
            .iter()
            .map(|(seq, l)| LotRow {
                seq: *seq,
                machine_id: &l.machine_id,
                from_ms: l.from_ms,
                to_ms: l.to_ms,
                defect_ratio: l.defect_ratio,
                lot: l.lot.as_deref(),
            })
            .collect();
        DataFrame::new(lots.len(), lot_columns(source, &lots)).context("building a lot labels frame")
    })
}

/// One row of `lot_labels` as every source of lot-level labels stores it.
pub(crate) struct LotRow<'a> {
    /// The row's number within its import (`seq`).
    pub seq: u64,
    /// Machine of the lot.
    pub machine_id: &'a str,
    /// First and last moment of the lot (UTC ms).
    pub from_ms: i64,
    /// See `from_ms`.
    pub to_ms: i64,
    /// Share of defective parts in the lot.
    pub defect_ratio: f64,
    /// The lot's name, if it has one.
    pub lot: Option<&'a str>,
}

/// The columns every `lot_labels` row has, for `rows` imported from `source`.
pub(crate) fn lot_columns(source: &str, rows: &[LotRow<'_>]) -> Vec<Column> {
    vec![
        Column::new("edge_id".into(), vec![source; rows.len()]),
        Column::new("seq".into(), rows.iter().map(|r| r.seq).collect::<Vec<_>>()),
        Column::new("machine_id".into(), rows.iter().map(|r| r.machine_id).collect::<Vec<_>>()),
        ts_column("from_ts", rows.iter().map(|r| r.from_ms)),
        ts_column("to_ts", rows.iter().map(|r| r.to_ms)),
        Column::new("defect_ratio".into(), rows.iter().map(|r| r.defect_ratio).collect::<Vec<_>>()),
        Column::new("lot".into(), rows.iter().map(|r| r.lot).collect::<Vec<_>>()),
    ]
}

pub(crate) type Groups<'a, T> = BTreeMap<(&'a str, i64), Vec<(u64, &'a T)>>;

/// `rows` grouped by machine and UTC day of the time `at` gives, each row numbered by its place
/// in `rows` from 1 (its `seq`).
pub(crate) fn by_machine_day<'a, T>(rows: &'a [T], at: impl Fn(&'a T) -> (&'a str, i64)) -> Groups<'a, T> {
    let mut groups: Groups<'a, T> = BTreeMap::new();
    for (i, row) in rows.iter().enumerate() {
        let (machine, ms) = at(row);
        groups.entry((machine, ms.div_euclid(DAY_MS))).or_default().push((i as u64 + 1, row));
    }
    groups
}

pub(crate) fn write_groups<T>(
    lake_dir: &Path,
    dataset: &str,
    source: &str,
    groups: Groups<'_, T>,
    frame: impl Fn(&[(u64, &T)]) -> Result<DataFrame>,
) -> Result<usize> {
    let dirs: Vec<_> = groups
        .keys()
        .map(|(m, day)| lake::partition_dir(lake_dir, dataset, m, &lake::day_string(*day)))
        .collect();
    let sync = write::prepare_dirs(lake_dir, dirs.iter().map(|d| d.as_path()))?;
    let nanos = crate::ingest::state::now_nanos();
    for (((_, _), rows), dir) in groups.iter().zip(&dirs) {
        let (first, last) = (rows.first().map_or(0, |r| r.0), rows.last().map_or(0, |r| r.0));
        let mut df = frame(rows)?;
        write::write_parquet(dir, &lake::source_part_name(source, first, last, nanos), &mut df)?;
    }
    write::sync_dirs(&sync)?;
    Ok(dirs.len())
}

#[derive(Deserialize)]
struct QualityLine {
    machine_id: String,
    shot_number: u64,
    ts_ms: i64,
    label: f64,
    #[serde(default)]
    defect: Option<String>,
}

/// Parses the simulator's quality log (JSON lines). Lines that do not parse come back as
/// `(line number, reason)`; empty lines are skipped.
pub fn parse_quality_log(text: &str) -> (Vec<ShotLabel>, Vec<(usize, String)>) {
    let mut out = Vec::new();
    let mut bad = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str::<QualityLine>(line) {
            Ok(q) if q.label.is_finite() => out.push(ShotLabel {
                machine_id: q.machine_id,
                shot_number: q.shot_number,
                ts_ms: q.ts_ms,
                label: q.label,
                defect: q.defect.filter(|d| !d.is_empty()),
            }),
            Ok(_) => bad.push((i + 1, "label is not a finite number".to_string())),
            Err(e) => bad.push((i + 1, e.to_string())),
        }
    }
    (out, bad)
}

/// A lot-table row that was refused: line, column (when one is to blame) and reason.
pub type LotRefusal = (usize, Option<String>, String);

/// Reads lot labels from a table with columns `machine_id`, `from_ts`, `to_ts`,
/// `defect_ratio` and optionally `lot`. Times are RFC 3339 with an offset, or integer epoch
/// milliseconds; the ratio lies in [0, 1] and `to_ts` is not before `from_ts`. Rows breaking
/// a rule come back as refusals naming the column.
pub fn parse_lot_table(table: &super::table::Table) -> Result<(Vec<LotLabel>, Vec<LotRefusal>)> {
    let find = |name: &str| table.header.iter().position(|h| h.eq_ignore_ascii_case(name));
    let required = ["machine_id", "from_ts", "to_ts", "defect_ratio"];
    let missing: Vec<&str> = required.iter().copied().filter(|c| find(c).is_none()).collect();
    anyhow::ensure!(missing.is_empty(), "a lot table needs the column(s) {}", missing.join(", "));
    let [machine, from, to, ratio] = required.map(|c| find(c).unwrap_or_default());
    let lot = find("lot");
    let mut out = Vec::new();
    let mut bad = Vec::new();
    for row in &table.rows {
        let line = &row.line;
        let cells = match &row.cells {
            Ok(cells) => cells,
            Err(e) => {
                bad.push((*line, None, e.reason.clone()));
                continue;
            }
        };
        let cell = |i: usize| cells.get(i).and_then(|c| c.as_deref()).map(str::trim).unwrap_or("");
        let parsed = (|| -> std::result::Result<LotLabel, (String, String)> {
            let machine_id = cell(machine);
            let blame = |col: &str, why: String| (col.to_string(), why);
            if machine_id.is_empty() {
                return Err(blame("machine_id", "empty".into()));
            }
            let from_ms = parse_time_ms(cell(from)).map_err(|e| blame("from_ts", e.to_string()))?;
            let to_ms = parse_time_ms(cell(to)).map_err(|e| blame("to_ts", e.to_string()))?;
            if to_ms < from_ms {
                return Err(blame("to_ts", "before from_ts".into()));
            }
            let defect_ratio =
                cell(ratio).parse::<f64>().ok().filter(|r| (0.0..=1.0).contains(r)).ok_or_else(|| {
                    blame("defect_ratio", format!("{:?} is not a number in [0, 1]", cell(ratio)))
                })?;
            let lot = lot.map(cell).filter(|l| !l.is_empty()).map(str::to_string);
            Ok(LotLabel { machine_id: machine_id.to_string(), from_ms, to_ms, defect_ratio, lot })
        })();
        match parsed {
            Ok(l) => out.push(l),
            Err((column, reason)) => bad.push((*line, Some(column), reason)),
        }
    }
    Ok((out, bad))
}

/// Epoch milliseconds of an RFC 3339 time (with offset) or of an integer of milliseconds.
pub(crate) fn parse_time_ms(text: &str) -> std::result::Result<i64, BadTime> {
    if let Ok(ms) = text.parse::<i64>() {
        return Ok(ms);
    }
    chrono::DateTime::parse_from_rfc3339(text)
        .map(|t| t.timestamp_millis())
        .map_err(|e| BadTime::new(text, format!("is neither RFC 3339 with an offset nor epoch ms ({e})")))
}
