//! Quality control's lot results arrive after production (`--new-mould`): once the plant has
//! stopped and the lake holds every shot, the demo cuts the new mould's shots into lots of
//! [`LOT_SHOTS`], writes what QC found in each (its share of defective parts, from the
//! simulator's quality log) as a lot table, imports it as a user would
//! (`moldops-cloud import --lot-labels`), and shows the label report's rows for the mould's
//! key: no labelled lot before, then each lot's alarms against its result with the precision
//! and recall the result allows (docs/labels.md).

use anyhow::{Context, Result};
use moldops_cloud::import::table::ReadOptions;
use moldops_cloud::labels::report::{LotRow, Report};
use moldops_shared::bundle::ModelKey;
use serde::{Deserialize, Serialize};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// Consecutive shots in one lot.
pub const LOT_SHOTS: usize = 100;

/// The lot results and the report rows they brought.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LateLabels {
    /// The lot table written and imported.
    pub table: PathBuf,
    /// Lots in the table.
    pub lots: u64,
    /// The key's lot rows in the label report before the import.
    pub rows_before: usize,
    /// … and after it: one per lot and model version that scored shots of it.
    pub rows: Vec<LotResult>,
}

/// One lot row of the report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LotResult {
    /// The lot's name.
    pub lot: String,
    /// The model version that scored these shots (0: the cold-start baseline).
    pub model_version: Option<u32>,
    /// First and last moment of the lot (UTC ms).
    pub from_ms: i64,
    pub to_ms: i64,
    /// Shots of the lot this version scored, its alarms, and the defective parts the result
    /// implies among them.
    pub shots: u64,
    pub alarms: u64,
    pub defects: u64,
    /// Precision and recall `[low, high]` the result allows.
    pub precision: Option<[f64; 2]>,
    pub recall: Option<[f64; 2]>,
}

/// One line of the simulator's quality log, as far as lots need it.
#[derive(Debug, Deserialize)]
struct Inspected {
    machine_id: String,
    shot_number: u64,
    ts_ms: i64,
    mold: String,
    label: u8,
}

/// One lot of the table.
#[derive(Debug)]
struct Lot {
    name: String,
    from_ms: i64,
    to_ms: i64,
    defect_ratio: f64,
}

/// Writes and imports the lot results of `key`'s shots up to shot `last_read` (the last one the
/// edge read; the lake holds every shot up to it) and reports what they show.
pub fn run(dir: &Path, lake: &Path, quality_log: &Path, key: &str, last_read: u64) -> Result<LateLabels> {
    let parsed = ModelKey::parse(key)?;
    let mold = parsed.mold.clone().context("a mould key")?;
    let rows_before = rows_of(&moldops_cloud::labels::report(lake)?, key).len();
    let text =
        std::fs::read_to_string(quality_log).with_context(|| format!("reading {}", quality_log.display()))?;
    let mut shots: Vec<Inspected> = text
        .lines()
        .filter_map(|l| serde_json::from_str::<Inspected>(l).ok())
        .filter(|s| s.machine_id == parsed.machine_id && s.mold == mold && s.shot_number <= last_read)
        .collect();
    shots.sort_by_key(|s| s.shot_number);
    let lots: Vec<Lot> = shots
        .chunks_exact(LOT_SHOTS)
        .enumerate()
        .map(|(i, c)| Lot {
            name: format!("LOT-{:03}", i + 1),
            from_ms: c[0].ts_ms,
            to_ms: c[c.len() - 1].ts_ms,
            defect_ratio: c.iter().filter(|s| s.label == 1).count() as f64 / c.len() as f64,
        })
        .collect();
    let mut table = String::from("machine_id,from_ts,to_ts,defect_ratio,lot\n");
    for l in &lots {
        writeln!(table, "{},{},{},{},{}", parsed.machine_id, l.from_ms, l.to_ms, l.defect_ratio, l.name)?;
    }
    let path = dir.join("qc-lots.csv");
    moldops_common::fs::write_atomic(&path, table.as_bytes())?;
    let imported = moldops_cloud::import::import_lot_labels(lake, &path, &ReadOptions::default())?;
    anyhow::ensure!(
        imported.written == lots.len() as u64 && imported.quarantined == 0,
        "the lot table was not taken whole: {imported:?}"
    );
    let rows = rows_of(&moldops_cloud::labels::report(lake)?, key);
    Ok(LateLabels { table: path, lots: lots.len() as u64, rows_before, rows })
}

/// The key's lot rows in `report`.
fn rows_of(report: &Report, key: &str) -> Vec<LotResult> {
    let mut out: Vec<LotResult> = report
        .groups
        .iter()
        .filter(|g| g.model_key == key)
        .flat_map(|g| g.lots.iter().map(move |row| result(g.model_version, row)))
        .collect();
    out.sort_by_key(|r| (r.from_ms, r.model_version));
    out
}

fn result(model_version: Option<u32>, row: &LotRow) -> LotResult {
    LotResult {
        lot: row.lot.clone(),
        model_version,
        from_ms: row.from_ms,
        to_ms: row.to_ms,
        shots: row.bounds.shots,
        alarms: row.bounds.alarms,
        defects: row.bounds.defects,
        precision: row.precision,
        recall: row.recall,
    }
}

impl LateLabels {
    /// The demo's output: one line per lot row.
    pub fn to_text(&self) -> String {
        let range = |r: Option<[f64; 2]>| match r {
            Some([lo, hi]) if lo == hi => format!("{lo:.2}"),
            Some([lo, hi]) => format!("{lo:.2}–{hi:.2}"),
            None => "–".into(),
        };
        let mut out = format!(
            "QC lot results arrive late: {} lots of {LOT_SHOTS} shots imported from {} \
             (the report had {} lot rows for the mould before)\n",
            self.lots,
            self.table.display(),
            self.rows_before
        );
        for r in &self.rows {
            let judge = match r.model_version {
                Some(0) | None => "baseline".to_string(),
                Some(v) => format!("model v{v}"),
            };
            let _ = writeln!(
                out,
                "  {} ({judge}): {} shots, {} alarms, {} defective → precision {}, recall {}",
                r.lot,
                r.shots,
                r.alarms,
                r.defects,
                range(r.precision),
                range(r.recall)
            );
        }
        out
    }
}
