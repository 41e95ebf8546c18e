//! `moldops-cloud import`: historical data into the lake. Shot and peripheral tables (CSV or
//! Parquet) go through an import [`profile`] ([`table`] reads the cells, [`rows`] makes the
//! records) into `raw_data` / `peripheral_data` by the ingest's own commit path, so the lake's
//! `(edge_id, seq)` dedup applies: a file's records carry `edge_id = "import:{sha256 prefix}"`
//! and `seq` = their line number, and re-importing the same file adds nothing. Quality labels
//! go into `labels` / `lot_labels` ([`labels`]). A bad row is quarantined with file, line,
//! column and reason (`quarantine/date=…/import-{sha}-{line}.json`), never dropped silently
//! and never aborting the import.

pub mod cli;
pub mod labels;
pub mod profile;
pub mod rows;
pub mod table;

pub use profile::{ImportProfile, TableKind};

use crate::ingest::{Committer, Group};
use crate::lake::quarantine::QuarantineEntry;
use crate::lake::{self, write};
use anyhow::{Context, Result};
use moldops_shared::topic::{Leaf, topic};
use moldops_shared::{Batch, encode_batch};
use serde::Serialize;
use std::path::Path;

/// Records per committed group.
const GROUP_RECORDS: usize = 20_000;

/// What one import did.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ImportReport {
    /// The imported file's path, as given.
    pub file: String,
    /// The import identity: `import:{first 16 hex digits of the file's sha256}`.
    pub source: String,
    /// Lake dataset written: `raw_data`, `peripheral_data`, `labels` or `lot_labels`.
    pub dataset: String,
    /// Data rows read (header line excluded).
    pub rows: u64,
    /// Records or labels written now.
    pub written: u64,
    /// Records already in the lake from an earlier import of the same file.
    pub duplicates: u64,
    /// Header lines repeated inside the file.
    pub header_rows: u64,
    /// Rows of machines the profile excludes.
    pub excluded: u64,
    /// Rows refused (stored in the quarantine).
    pub quarantined: u64,
    /// Value columns taken from the table (tables only; empty for labels).
    pub value_columns: Vec<String>,
}

/// The import identity of a file's bytes.
pub fn source_id(bytes: &[u8]) -> String {
    format!("import:{}", &crate::etl::state::hex_digest(bytes)[..16])
}

/// One refused row.
#[derive(Debug, Clone)]
struct BadRow {
    line: usize,
    column: Option<String>,
    reason: String,
}

/// Imports a shot or peripheral table through a profile.
pub fn import_table(lake_dir: &Path, path: &Path, profile: &ImportProfile) -> Result<ImportReport> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let source = source_id(&bytes);
    let table = table::read(path, &bytes)?;
    let columns = rows::Columns::resolve(profile, &table).with_context(|| format!("{}", path.display()))?;
    let dataset = match profile.kind {
        TableKind::Shots => "raw_data",
        TableKind::Peripheral => "peripheral_data",
    };
    let mut report = ImportReport {
        file: path.display().to_string(),
        source: source.clone(),
        dataset: dataset.into(),
        rows: table.rows.len() as u64,
        value_columns: columns.value_names().iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    };
    let mut records = Vec::new();
    let mut bad = Vec::new();
    for (line, row) in &table.rows {
        match row {
            Err(reason) => bad.push(BadRow { line: *line, column: None, reason: reason.clone() }),
            Ok(cells) => match columns.row(profile, &table, *line, cells) {
                rows::Outcome::Record(r) => records.push(*r),
                rows::Outcome::Header => report.header_rows += 1,
                rows::Outcome::Excluded => report.excluded += 1,
                rows::Outcome::Bad { column, reason } => bad.push(BadRow { line: *line, column, reason }),
            },
        }
    }
    let (mut committer, _) = Committer::open(lake_dir)?;
    for chunk in records.chunks(GROUP_RECORDS) {
        let mut group = Group::default();
        for payload in payloads(&profile.site, &source, chunk) {
            group.add(&topic(&profile.site, &source, Leaf::Data), &payload, now_ms());
        }
        let out = committer.commit(group)?;
        anyhow::ensure!(
            out.quarantined == 0,
            "the lake refused a batch of {}; see its quarantine",
            path.display()
        );
        report.written += out.raw_records + out.peripheral_records;
        report.duplicates += out.duplicates;
    }
    report.quarantined = quarantine(lake_dir, path, &source, &table, &bad)?;
    Ok(report)
}

/// `records` as encoded batches the commit takes: at most `MAX_RECORDS` records and
/// `MAX_PAYLOAD_BYTES` bytes each (a batch too large is halved until it fits).
fn payloads(site: &str, source: &str, records: &[moldops_shared::Record]) -> Vec<Vec<u8>> {
    use moldops_shared::limits::{MAX_PAYLOAD_BYTES, MAX_RECORDS};
    let mut out = Vec::new();
    let mut todo: Vec<&[moldops_shared::Record]> = records.chunks(MAX_RECORDS).rev().collect();
    while let Some(part) = todo.pop() {
        let Some(batch) = Batch::new(site, source, 0, part.to_vec()) else { continue };
        let bytes = encode_batch(&batch);
        if bytes.len() > MAX_PAYLOAD_BYTES && part.len() > 1 {
            let (first, second) = part.split_at(part.len() / 2);
            todo.push(second);
            todo.push(first);
        } else {
            out.push(bytes);
        }
    }
    out
}

/// Imports the simulator's quality log (JSON lines) as shot-level labels.
pub fn import_quality_log(lake_dir: &Path, path: &Path) -> Result<ImportReport> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let source = source_id(&bytes);
    let text = String::from_utf8_lossy(&bytes);
    let (labels, refused) = labels::parse_quality_log(&text);
    let mut report = ImportReport {
        file: path.display().to_string(),
        source: source.clone(),
        dataset: crate::etl::LABELS.into(),
        rows: (labels.len() + refused.len()) as u64,
        ..Default::default()
    };
    if labels::already_imported(lake_dir, crate::etl::LABELS, &source)? {
        report.duplicates = labels.len() as u64;
    } else {
        labels::write_shot_labels(lake_dir, &source, &labels)?;
        report.written = labels.len() as u64;
    }
    let bad: Vec<BadRow> =
        refused.into_iter().map(|(line, reason)| BadRow { line, column: None, reason }).collect();
    let lines = table::Table {
        header: Vec::new(),
        rows: text.lines().enumerate().map(|(i, l)| (i + 1, Ok(vec![Some(l.to_string())]))).collect(),
    };
    report.quarantined = quarantine(lake_dir, path, &source, &lines, &bad)?;
    Ok(report)
}

/// Imports a lot table (CSV or Parquet, see [`labels::parse_lot_table`]) as lot-level labels.
pub fn import_lot_labels(lake_dir: &Path, path: &Path) -> Result<ImportReport> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let source = source_id(&bytes);
    let table = table::read(path, &bytes)?;
    let (lots, refused) = labels::parse_lot_table(&table).with_context(|| format!("{}", path.display()))?;
    let mut report = ImportReport {
        file: path.display().to_string(),
        source: source.clone(),
        dataset: crate::etl::LOT_LABELS.into(),
        rows: table.rows.len() as u64,
        ..Default::default()
    };
    if labels::already_imported(lake_dir, crate::etl::LOT_LABELS, &source)? {
        report.duplicates = lots.len() as u64;
    } else {
        labels::write_lot_labels(lake_dir, &source, &lots)?;
        report.written = lots.len() as u64;
    }
    let bad: Vec<BadRow> =
        refused.into_iter().map(|(line, column, reason)| BadRow { line, column, reason }).collect();
    report.quarantined = quarantine(lake_dir, path, &source, &table, &bad)?;
    Ok(report)
}

/// Stores refused rows, one quarantine file each, named by source and line so that a
/// re-import stores nothing new. Returns how many rows were refused.
fn quarantine(
    lake_dir: &Path,
    path: &Path,
    source: &str,
    table: &table::Table,
    bad: &[BadRow],
) -> Result<u64> {
    if bad.is_empty() {
        return Ok(0);
    }
    let prefix = format!("import-{}-", lake::escape(source.trim_start_matches("import:")));
    let root = lake_dir.join(lake::QUARANTINE_DIR);
    for d in lake::subdirs(&root, "date=")? {
        if lake::read_dir(&d)?.iter().any(|e| e.file_name().to_string_lossy().starts_with(&prefix)) {
            return Ok(bad.len() as u64);
        }
    }
    let now = now_ms();
    let dir = root.join(format!("date={}", lake::day_string(now.div_euclid(86_400_000))));
    let sync = write::prepare_dirs(lake_dir, std::iter::once(dir.as_path()))?;
    for b in bad {
        let text = table
            .rows
            .iter()
            .find(|(l, _)| *l == b.line)
            .and_then(|(_, r)| r.as_ref().ok())
            .map(|cells| cells.iter().map(|c| c.clone().unwrap_or_default()).collect::<Vec<_>>().join(","))
            .unwrap_or_default();
        let column = b.column.as_deref().map(|c| format!(", column {c:?}")).unwrap_or_default();
        let reason = format!("{} line {}{column}: {}", path.display(), b.line, b.reason);
        let entry = QuarantineEntry::new(reason, source, now, text.as_bytes());
        let bytes = serde_json::to_vec_pretty(&entry).context("encoding a quarantine entry")?;
        write::write_file(&dir.join(format!("{prefix}{:09}.json", b.line)), &bytes)?;
    }
    write::sync_dirs(&sync)?;
    Ok(bad.len() as u64)
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}
