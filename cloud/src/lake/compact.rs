//! Compaction of the lake: the ingest writes one part file per commit and partition, so a
//! machine's day of live data is hundreds or thousands of small files, and every reader (ETL,
//! training, summaries) pays per file. `moldops-cloud lake compact` rewrites each partition's
//! committed part files as one, sorted by time, edge and seq.
//!
//! Safe next to a running ingest: only files the ingest's dedup state already covers (stamped
//! at or below its `mark_nanos`) are merged, and the merged file carries the highest stamp of
//! its inputs, so a recovery never folds it in again (and one that rebuilds the state from the
//! lake reads its `(edge_id, seq)` like any part file). Two compactions never run at once:
//! on a folder, `_compact/lock`; on a bucket, on any host, the lease [`BucketLease`]
//! (`_leases/compact.json`), taken before the copy is pulled and renewed before each
//! publication, so a compaction never works from a copy older than another's last change.
//!
//! Crash-safe: the merged file is written and fsynced as `.tmp`, then a journal naming it and
//! its inputs is saved, then it is renamed into place, the inputs removed, the journal removed.
//! A journal found on start is completed first: inputs removed if the merged file is in place,
//! else the journal dropped (the `.tmp` is discarded). On a bucket's copy the same order holds
//! in the bucket ([`compact_publishing`]): journal, merged file, then the inputs and the
//! journal removed. Between the rename and the removal of
//! the inputs — milliseconds, or until the next compaction after a crash right there — a reader
//! sees those rows twice.

use super::write;
use crate::storage::{Store, block_on, lease};
use anyhow::{Context, Result};
use moldops_common::lock::LockFile;
use polars::prelude::SortMultipleOptions;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

/// Folder of the compaction's lock and journals, relative to the lake.
pub const COMPACT_DIR: &str = "_compact";

/// Key of the lease a compaction of a bucket holds (outside [`COMPACT_DIR`], whose JSON files
/// are journals).
pub const LEASE_KEY: &str = "_leases/compact.json";
/// How long a compaction's lease lasts; renewed before each publication (one partition's).
pub const LEASE: Duration = Duration::from_secs(300);

/// A compaction's hold on a bucket's lake: one compaction at a time on any host.
#[derive(Debug)]
pub struct BucketLease {
    store: Store,
    owner: String,
    lease_for: Duration,
    held: Mutex<lease::Held>,
}

impl BucketLease {
    /// Takes the lease of the lake at `url`, waiting for a running compaction to end (or for a
    /// dead one's lease to run out).
    pub fn take(url: &str) -> Result<BucketLease> {
        Self::take_as(url, &lease::owner("compact"), LEASE, 2 * LEASE)
    }

    /// [`BucketLease::take`] as `owner`, for `lease_for`, waiting at most `wait`.
    pub fn take_as(url: &str, owner: &str, lease_for: Duration, wait: Duration) -> Result<BucketLease> {
        let store = Store::open(url)?;
        let held = block_on(lease::acquire(&store, LEASE_KEY, owner, lease_for, wait))
            .context("another compaction of this lake is running")?;
        Ok(BucketLease { store, owner: owner.to_string(), lease_for, held: Mutex::new(held) })
    }

    /// Extends the lease; fails when another compaction took it over (this one must stop).
    pub fn renew(&self) -> Result<()> {
        let mut held = self.held.lock().map_err(|_| anyhow::anyhow!("the compaction lease was poisoned"))?;
        *held = block_on(lease::renew(&self.store, LEASE_KEY, &self.owner, self.lease_for, &held))?;
        Ok(())
    }
}

impl Drop for BucketLease {
    /// Frees the lease, whether the compaction succeeded or not (logged when that fails: it
    /// then runs out by itself).
    fn drop(&mut self) {
        let Ok(held) = self.held.lock() else { return };
        if let Err(e) = block_on(lease::release(&self.store, LEASE_KEY, &held)) {
            tracing::warn!("freeing the compaction lease: {e:#}");
        }
    }
}

/// The edge id part of a merged file's name: `~` never occurs in an escaped edge id.
const MERGED_EDGE: &str = "~compact";

/// What one compaction did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct CompactReport {
    /// Partitions rewritten as one file.
    pub partitions: u64,
    /// Part files merged (and removed).
    pub files_in: u64,
    /// Rows in the merged files.
    pub rows: u64,
    /// Interrupted compactions completed on start.
    pub journals_completed: u64,
}

#[derive(Debug, Serialize, Deserialize)]
struct Journal {
    /// Merged file, relative to the lake.
    output: String,
    /// Its inputs, relative to the lake.
    inputs: Vec<String>,
}

/// Compacts every partition of the ingest's datasets that has at least `min_files` committed
/// part files.
pub fn compact(lake: &Path, min_files: usize) -> Result<CompactReport> {
    compact_publishing(lake, min_files, &|| Ok(()))
}

/// [`compact`] for a lake that is a bucket's local copy: `publish` makes the copy's changes
/// durable in the bucket ([`crate::storage::mirror::push_all`]) and is called after each
/// partition's journal is written and again after its merged file is in place, so the bucket
/// holds the journal before the merged file, and both before any input goes — the order the
/// folder keeps with fsyncs. Call `publish` once more at the end (the inputs' removal).
pub fn compact_publishing(
    lake: &Path,
    min_files: usize,
    publish: &dyn Fn() -> Result<()>,
) -> Result<CompactReport> {
    let dir = lake.join(COMPACT_DIR);
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let _lock =
        LockFile::try_acquire(&dir.join("lock"), "the lake's compaction (another compaction is running)")?;
    let mut report = CompactReport { journals_completed: complete_journals(lake)?, ..Default::default() };
    let Some(mark) = ingest_mark(lake)? else {
        tracing::info!(lake = %lake.display(), "no ingest state yet: nothing is known to be committed");
        return Ok(report);
    };
    for dataset in super::DATASETS {
        for machine in super::machine_dirs(lake, dataset)? {
            for date in super::date_dirs(&machine)? {
                let parts: Vec<(PathBuf, u64)> = super::read_dir(&date)?
                    .into_iter()
                    .filter_map(|e| {
                        let nanos = super::part_nanos(&e.file_name().to_string_lossy())?;
                        (nanos <= mark).then(|| (e.path(), nanos))
                    })
                    .collect();
                if parts.len() >= min_files.max(2) {
                    report.rows += merge_partition(lake, &date, &parts, publish)?;
                    report.partitions += 1;
                    report.files_in += parts.len() as u64;
                }
            }
        }
    }
    Ok(report)
}

/// The ingest's mark: the highest part file stamp its state covers (`None` without a state).
fn ingest_mark(lake: &Path) -> Result<Option<u64>> {
    #[derive(Deserialize)]
    struct Mark {
        mark_nanos: u64,
    }
    let path = lake.join(super::INGEST_DIR).join("state.json");
    match std::fs::read(&path) {
        Ok(bytes) => {
            let m: Mark =
                serde_json::from_slice(&bytes).with_context(|| format!("reading {}", path.display()))?;
            Ok(Some(m.mark_nanos))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

/// Rewrites `parts` of one partition folder as one file; returns its rows.
fn merge_partition(
    lake: &Path,
    dir: &Path,
    parts: &[(PathBuf, u64)],
    publish: &dyn Fn() -> Result<()>,
) -> Result<u64> {
    let files: Vec<PathBuf> = parts.iter().map(|(p, _)| p.clone()).collect();
    let df = super::read_parts(&files, &[])
        .with_context(|| format!("reading the part files of {}", dir.display()))?
        .context("a partition without part files")?;
    let sort = SortMultipleOptions::default().with_maintain_order(true);
    let mut df = super::in_lake_order(df.sort(["ts", "edge_id", "seq"], sort)?)?;
    let seqs: Vec<u64> = df.column("seq")?.u64()?.into_no_null_iter().collect();
    let (first, last) = (seqs.iter().min().copied().unwrap_or(0), seqs.iter().max().copied().unwrap_or(0));
    let nanos = parts.iter().map(|(_, n)| *n).max().unwrap_or(0);
    let name = format!("part-{MERGED_EDGE}-{first}-{last}-{nanos:020}.parquet");
    let rel = |p: &Path| p.strip_prefix(lake).unwrap_or(p).to_string_lossy().into_owned();
    let output = dir.join(&name);
    let journal = Journal { output: rel(&output), inputs: parts.iter().map(|(p, _)| rel(p)).collect() };
    // The merged file as .tmp (fsynced), the journal, then the rename.
    let tmp_name = format!("{name}.tmp");
    write::write_parquet(dir, &tmp_name, &mut df)?;
    let journal_path = lake.join(COMPACT_DIR).join(format!("{nanos:020}-{}.json", super::escape(&rel(dir))));
    write::write_atomic(&journal_path, &serde_json::to_vec(&journal)?)?;
    publish()?;
    std::fs::rename(dir.join(&tmp_name), &output)
        .with_context(|| format!("renaming into {}", output.display()))?;
    write::sync_dir(dir)?;
    publish()?;
    finish(lake, &journal, &journal_path)?;
    Ok(df.height() as u64)
}

/// Removes a journal's inputs (except the merged file itself) and then the journal.
fn finish(lake: &Path, journal: &Journal, journal_path: &Path) -> Result<()> {
    let mut dirs = std::collections::BTreeSet::new();
    for input in journal.inputs.iter().filter(|i| **i != journal.output) {
        let path = lake.join(input);
        match std::fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e).with_context(|| format!("removing {}", path.display())),
        }
        dirs.extend(path.parent().map(Path::to_path_buf));
    }
    write::sync_dirs(&dirs)?;
    std::fs::remove_file(journal_path).with_context(|| format!("removing {}", journal_path.display()))?;
    write::sync_dir(journal_path.parent().context("a journal without a folder")?)
}

/// True for a path a journal may name: relative, inside one of the ingest's datasets, no `..`.
fn in_datasets(rel: &str) -> bool {
    let path = Path::new(rel);
    path.components().all(|c| matches!(c, std::path::Component::Normal(_)))
        && path.components().next().is_some_and(|c| super::DATASETS.iter().any(|d| c.as_os_str() == *d))
}

/// Completes or drops the journals an interrupted compaction left; returns how many it found.
fn complete_journals(lake: &Path) -> Result<u64> {
    let mut n = 0;
    for entry in super::read_dir(&lake.join(COMPACT_DIR))? {
        let path = entry.path();
        if path.extension().is_none_or(|e| e != "json") {
            continue;
        }
        n += 1;
        let bytes = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
        let journal: Journal = serde_json::from_slice(&bytes)
            .with_context(|| format!("reading the compaction journal {}", path.display()))?;
        // Only our own paths are acted on: a journal naming anything else is refused.
        if let Some(bad) = journal.inputs.iter().chain([&journal.output]).find(|p| !in_datasets(p)) {
            anyhow::bail!("{} names {bad:?}, outside the lake's datasets: not acted on", path.display());
        }
        let output = lake.join(&journal.output);
        if output.is_file() {
            tracing::warn!(output = %output.display(), "completing an interrupted compaction");
            finish(lake, &journal, &path)?;
        } else {
            let tmp = output.with_file_name(format!(
                "{}.tmp",
                output.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
            ));
            let _ = std::fs::remove_file(tmp);
            std::fs::remove_file(&path).with_context(|| format!("removing {}", path.display()))?;
        }
    }
    Ok(n)
}
