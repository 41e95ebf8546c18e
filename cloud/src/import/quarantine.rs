//! The quarantine of an import's refused rows: one entry per row,
//! `quarantine/date=…/import-{sha}-{line}.json` (a pull's: `pull-{source}-{epoch}-{seq}.json`), with file,
//! line, column and reason. Entries are named by source and line, so importing the same file again
//! (or finishing an import that was killed) writes only the entries not there yet.

use crate::lake::quarantine::QuarantineEntry;
use crate::lake::{self, write};
use anyhow::{Context, Result};
use std::collections::{BTreeSet, HashSet};
use std::path::{Path, PathBuf};

/// One refused row.
#[derive(Debug, Clone, PartialEq)]
pub struct BadRow {
    /// Line the row starts on.
    pub line: usize,
    /// The column to blame, if one is.
    pub column: Option<String>,
    /// Why the row was refused.
    pub reason: String,
    /// The row's text, stored with the entry.
    pub text: String,
}

/// Quarantines the rows of `table` (read from `file`) refused with (line, column to blame,
/// reason), each with its text; returns how many were refused.
pub fn table_rows(
    lake_dir: &Path,
    file: &Path,
    source: &str,
    table: &super::table::Table,
    refused: Vec<(usize, Option<String>, String)>,
) -> Result<u64> {
    let mut quarantine = Quarantine::open(lake_dir, file, source)?;
    // Rows are in line order: a binary search keeps a table of many refusals linear.
    for (line, column, reason) in refused {
        let text = match table.rows.binary_search_by_key(&line, |r| r.line) {
            Ok(i) => table.rows[i].text(),
            Err(_) => String::new(),
        };
        quarantine.add(BadRow { line, column, reason, text })?;
    }
    quarantine.finish()
}

/// Writes the quarantine entries of one imported file.
pub struct Quarantine {
    lake: PathBuf,
    file: String,
    source: String,
    /// What a row's number is called in messages (`line` of a file, `row` of a pull).
    position: &'static str,
    prefix: String,
    /// Lines with an entry already (any date folder).
    existing: HashSet<usize>,
    /// Folders to fsync before [`Quarantine::finish`] returns.
    sync: BTreeSet<PathBuf>,
    refused: u64,
}

impl Quarantine {
    /// Looks up the entries an earlier import of `source` left.
    pub fn open(lake_dir: &Path, file: &Path, source: &str) -> Result<Quarantine> {
        let prefix = format!("import-{}-", lake::escape(source.trim_start_matches("import:")));
        Quarantine::open_as(lake_dir, file.display().to_string(), "line", source, prefix)
    }

    /// Looks up the entries earlier pulls of source `name` into lake stream epoch `epoch` left;
    /// rows are named by their seq in that epoch.
    pub fn open_pull(lake_dir: &Path, name: &str, epoch: &str) -> Result<Quarantine> {
        let (source, prefix) =
            (format!("pull:{name}"), format!("pull-{}-{}-", lake::escape(name), lake::escape(epoch)));
        Quarantine::open_as(lake_dir, source.clone(), "row", &source, prefix)
    }

    fn open_as(
        lake_dir: &Path,
        file: String,
        position: &'static str,
        source: &str,
        prefix: String,
    ) -> Result<Quarantine> {
        let mut existing = HashSet::new();
        for d in lake::date_dirs(&lake_dir.join(lake::QUARANTINE_DIR))? {
            for e in lake::read_dir(&d)? {
                let name = e.file_name().to_string_lossy().into_owned();
                if let Some(line) = name.strip_prefix(&prefix).and_then(|r| r.strip_suffix(".json")) {
                    existing.extend(line.parse::<usize>());
                }
            }
        }
        Ok(Quarantine {
            lake: lake_dir.to_path_buf(),
            file,
            source: source.to_string(),
            position,
            prefix,
            existing,
            sync: BTreeSet::new(),
            refused: 0,
        })
    }

    /// Stores one refused row (unless an entry for its line is there already).
    pub fn add(&mut self, bad: BadRow) -> Result<()> {
        self.refused += 1;
        if !self.existing.insert(bad.line) {
            return Ok(());
        }
        let now = chrono::Utc::now().timestamp_millis();
        let dir = self.lake.join(lake::QUARANTINE_DIR).join(lake::day_folder(now.div_euclid(86_400_000)));
        if !self.sync.contains(&dir) {
            self.sync.extend(write::prepare_dirs(&self.lake, std::iter::once(dir.as_path()))?);
        }
        let column = bad.column.as_deref().map(|c| format!(", column {c:?}")).unwrap_or_default();
        let reason = format!("{} {} {}{column}: {}", self.file, self.position, bad.line, bad.reason);
        let entry = QuarantineEntry::new(reason, &self.source, now, bad.text.as_bytes());
        let bytes = serde_json::to_vec_pretty(&entry).context("encoding a quarantine entry")?;
        write::write_file(&dir.join(format!("{}{:09}.json", self.prefix, bad.line)), &bytes)
    }

    /// Makes the entries written so far durable.
    pub fn sync(&mut self) -> Result<()> {
        write::sync_dirs(&std::mem::take(&mut self.sync))
    }

    /// Makes the entries durable; returns how many rows were refused.
    pub fn finish(self) -> Result<u64> {
        write::sync_dirs(&self.sync)?;
        Ok(self.refused)
    }
}
