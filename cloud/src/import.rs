//! `moldops-cloud import`: historical data into the lake. Shot and peripheral tables (CSV and
//! other delimited text in any common encoding, Excel/OpenDocument workbooks, Parquet) go
//! through an import [`profile`] ([`table`] reads the cells as a stream, [`rows`] makes the
//! records) into `raw_data` / `peripheral_data` by the ingest's own commit path, so the lake's
//! `(edge_id, seq)` dedup applies: a file's records carry `edge_id = "import:{sha256 prefix}"`
//! and `seq` = the line their row starts on, and re-importing the same file adds nothing (an
//! import killed half-way adds the rest). Quality labels go into `labels` / `lot_labels`
//! ([`labels`]). A bad row is quarantined with file, line, column and reason
//! ([`quarantine`]), never dropped silently and never aborting the import.

pub mod cli;
pub mod labels;
pub mod profile;
pub mod quarantine;
pub mod rows;
pub mod table;

pub use profile::{ImportProfile, TableKind};

use crate::ingest::{Committer, Group};
use anyhow::{Context, Result};
use moldops_shared::topic::{Leaf, topic};
use moldops_shared::{Batch, Record, encode_batch};
use quarantine::{BadRow, Quarantine};
use serde::Serialize;
use std::path::Path;
use table::{ReadOptions, Row, RowSink};

/// Records per committed group: what one import holds in memory at most.
const GROUP_RECORDS: usize = 20_000;

/// What one import did.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ImportReport {
    /// The file imported, as given.
    pub file: String,
    /// The import identity: `import:{first 16 hex digits of the file's sha256}`.
    pub source: String,
    /// The lake dataset written: `raw_data`, `peripheral_data`, `labels` or `lot_labels`.
    pub dataset: String,
    /// How the file was read: its encoding and delimiter (`EUC-KR (detected), delimiter ','`),
    /// workbook sheet or `parquet`.
    pub decoding: String,
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
    /// Value columns taken (the profile's, or every mostly numeric one).
    pub value_columns: Vec<String>,
    /// Seconds the import took.
    pub elapsed_s: f64,
}

/// The import identity of a file's bytes.
pub fn source_id(bytes: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    source_of_digest(&Sha256::digest(bytes))
}

/// `import:` and the first 16 hex digits of a sha256.
fn source_of_digest(digest: &[u8]) -> String {
    format!("import:{}", hex::encode(&digest[..8]))
}

/// The import identity of the file at `path`, read in constant memory.
pub fn file_source_id(path: &Path) -> Result<String> {
    use sha2::{Digest, Sha256};
    let mut file = std::fs::File::open(path).with_context(|| format!("reading {}", path.display()))?;
    let mut hasher = Sha256::new();
    std::io::copy(&mut file, &mut hasher).with_context(|| format!("reading {}", path.display()))?;
    Ok(source_of_digest(&hasher.finalize()))
}

/// Imports a shot or peripheral table through a profile (no progress shown).
pub fn import_table(lake_dir: &Path, path: &Path, profile: &ImportProfile) -> Result<ImportReport> {
    import_table_with(lake_dir, path, profile, indicatif::ProgressBar::hidden())
}

/// Imports a shot or peripheral table through a profile, streaming: rows are read, turned
/// into records and committed [`GROUP_RECORDS`] at a time, refused rows quarantined as they come.
/// When the profile names no value columns, a first pass over the file finds the numeric ones.
/// A killed import loses nothing: run again, it adds what is missing (the lake dedups by line).
pub fn import_table_with(
    lake_dir: &Path,
    path: &Path,
    profile: &ImportProfile,
    progress: indicatif::ProgressBar,
) -> Result<ImportReport> {
    let started = std::time::Instant::now();
    let source = file_source_id(path)?;
    let opts = ReadOptions { progress, ..profile.read_options()? };
    let census = if profile.values.is_empty() {
        let mut census = rows::Census::new(profile);
        table::read(
            path,
            &ReadOptions { progress: indicatif::ProgressBar::hidden(), ..opts.clone() },
            &mut census,
        )?;
        Some(census)
    } else {
        None
    };
    let dataset = match profile.kind {
        TableKind::Shots => crate::lake::RAW_DATA,
        TableKind::Peripheral => crate::lake::PERIPHERAL_DATA,
    };
    let (committer, _) = Committer::open(lake_dir)?;
    let mut import = TableImport {
        profile,
        census,
        columns: None,
        committer,
        records: Vec::new(),
        quarantine: Quarantine::open(lake_dir, path, &source)?,
        report: ImportReport {
            file: path.display().to_string(),
            source: source.clone(),
            dataset: dataset.into(),
            ..Default::default()
        },
    };
    let summary = table::read(path, &opts, &mut import)?;
    import.commit()?;
    let mut report = import.report;
    report.quarantined = import.quarantine.finish()?;
    report.decoding = summary.decoding;
    report.elapsed_s = started.elapsed().as_secs_f64();
    Ok(report)
}

/// The import of one table as its rows stream by.
struct TableImport<'p> {
    profile: &'p ImportProfile,
    census: Option<rows::Census>,
    columns: Option<rows::Columns>,
    committer: Committer,
    /// Records not committed yet (at most [`GROUP_RECORDS`]).
    records: Vec<Record>,
    quarantine: Quarantine,
    report: ImportReport,
}

impl RowSink for TableImport<'_> {
    fn header(&mut self, header: &[String]) -> Result<()> {
        let columns = rows::Columns::resolve(self.profile, header, self.census.as_ref())
            .with_context(|| self.report.file.clone())?;
        self.report.value_columns = columns.value_names().iter().map(|s| s.to_string()).collect();
        self.columns = Some(columns);
        Ok(())
    }

    fn row(&mut self, row: Row) -> Result<()> {
        let columns = self.columns.as_ref().context("a row before the header")?;
        self.report.rows += 1;
        let outcome = match &row.cells {
            Err(e) => rows::Outcome::Bad { column: None, reason: e.reason.clone() },
            Ok(cells) => columns.row(self.profile, row.line, cells),
        };
        match outcome {
            rows::Outcome::Record(r) => self.records.push(*r),
            rows::Outcome::Header => self.report.header_rows += 1,
            rows::Outcome::Excluded => self.report.excluded += 1,
            rows::Outcome::Bad { column, reason } => {
                self.quarantine.add(BadRow { line: row.line, column, reason, text: row.text() })?
            }
        }
        if self.records.len() >= GROUP_RECORDS {
            self.commit()?;
        }
        Ok(())
    }
}

impl TableImport<'_> {
    /// Commits the records read so far.
    fn commit(&mut self) -> Result<()> {
        if self.records.is_empty() {
            return Ok(());
        }
        let records = std::mem::take(&mut self.records);
        let (site, source) = (&self.profile.site, &self.report.source);
        let mut group = Group::default();
        for payload in payloads(site, source, "", &records) {
            group.add(&topic(site, source, Leaf::Data), &payload, now_ms());
        }
        let out = self.committer.commit(group)?;
        anyhow::ensure!(
            out.quarantined == 0,
            "the lake refused a batch of {}; see its quarantine",
            self.report.file
        );
        self.report.written += out.raw_records + out.peripheral_records;
        self.report.duplicates += out.duplicates;
        Ok(())
    }
}

/// `records` (of stream `source`, `epoch`) as encoded batches the commit takes: at most
/// `MAX_RECORDS` records and `MAX_PAYLOAD_BYTES` bytes each (a batch too large is halved until
/// it fits).
pub(crate) fn payloads(site: &str, source: &str, epoch: &str, records: &[Record]) -> Vec<Vec<u8>> {
    use moldops_shared::limits::{MAX_PAYLOAD_BYTES, MAX_RECORDS};
    let mut out = Vec::new();
    let mut todo: Vec<&[Record]> = records.chunks(MAX_RECORDS).rev().collect();
    while let Some(part) = todo.pop() {
        let Some(mut batch) = Batch::new(site, source, 0, part.to_vec()) else { continue };
        batch.epoch = epoch.to_string();
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
    let started = std::time::Instant::now();
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let source = source_id(&bytes);
    let text = String::from_utf8_lossy(&bytes);
    let (labels, refused) = labels::parse_quality_log(&text);
    let mut report = ImportReport {
        file: path.display().to_string(),
        source: source.clone(),
        dataset: crate::etl::LABELS.into(),
        decoding: "JSON lines".into(),
        rows: (labels.len() + refused.len()) as u64,
        ..Default::default()
    };
    if labels::already_imported(lake_dir, crate::etl::LABELS, &source)? {
        report.duplicates = labels.len() as u64;
    } else {
        labels::write_shot_labels(lake_dir, &source, &labels)?;
        report.written = labels.len() as u64;
    }
    let lines: Vec<&str> = text.lines().collect();
    let mut quarantine = Quarantine::open(lake_dir, path, &source)?;
    for (line, reason) in refused {
        let text = lines.get(line.wrapping_sub(1)).copied().unwrap_or_default().to_string();
        quarantine.add(BadRow { line, column: None, reason, text })?;
    }
    report.quarantined = quarantine.finish()?;
    report.elapsed_s = started.elapsed().as_secs_f64();
    Ok(report)
}

/// Imports a lot table (CSV, workbook or Parquet, see [`labels::parse_lot_table`]) as lot-level
/// labels; `opts` say how to read it (encoding, delimiter, sheet).
pub fn import_lot_labels(lake_dir: &Path, path: &Path, opts: &ReadOptions) -> Result<ImportReport> {
    import_lot_table(lake_dir, path, opts, labels::parse_lot_table, labels::write_lot_labels)
}

/// Imports a table of lot-level labels into `lot_labels`: `parse` turns the rows read from
/// `path` into lots and refused rows, `write` stores the lots unless this file was imported
/// before (then nothing is added), and the refused rows go to the quarantine with the reason.
pub(crate) fn import_lot_table<T>(
    lake_dir: &Path,
    path: &Path,
    opts: &ReadOptions,
    parse: impl FnOnce(&table::Table) -> Result<(Vec<T>, Vec<labels::LotRefusal>)>,
    write: impl FnOnce(&Path, &str, &[T]) -> Result<usize>,
) -> Result<ImportReport> {
    let started = std::time::Instant::now();
    let source = file_source_id(path)?;
    let mut table = table::Table::default();
    let summary = table::read(path, opts, &mut table)?;
    let (lots, refused) = parse(&table).with_context(|| format!("{}", path.display()))?;
    let mut report = ImportReport {
        file: path.display().to_string(),
        source: source.clone(),
        dataset: crate::etl::LOT_LABELS.into(),
        decoding: summary.decoding,
        rows: table.rows.len() as u64,
        ..Default::default()
    };
    if labels::already_imported(lake_dir, crate::etl::LOT_LABELS, &source)? {
        report.duplicates = lots.len() as u64;
    } else {
        write(lake_dir, &source, &lots)?;
        report.written = lots.len() as u64;
    }
    report.quarantined = quarantine::table_rows(lake_dir, path, &source, &table, refused)?;
    report.elapsed_s = started.elapsed().as_secs_f64();
    Ok(report)
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}
