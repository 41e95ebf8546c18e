//! Dedup state of the ingest: for every edge, the set of `seq`s already committed to the lake,
//! kept as merged intervals, persisted atomically at `lake/_ingest/state.json` after each
//! commit, and rebuilt on start from the lake itself when a crash left part files the state
//! does not know yet.
//!
//! Part file names carry a `nanos` stamp that only grows; the state records the highest stamp
//! it covers (`mark_nanos`). A commit writes its files first and the state last, so after a
//! crash the orphans are exactly the part files stamped above the mark: [`DedupState::recover`]
//! reads their `(edge_id, seq)` columns and folds them in.

use crate::lake::{self, write};
use anyhow::{Context, Result};
use polars::prelude::{ParquetReader, SerReader};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

/// A set of u64 kept as disjoint, non-adjacent inclusive intervals `start -> end`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "Vec<[u64; 2]>", into = "Vec<[u64; 2]>")]
pub struct SeqSet {
    ranges: BTreeMap<u64, u64>,
}

impl From<Vec<[u64; 2]>> for SeqSet {
    fn from(v: Vec<[u64; 2]>) -> Self {
        let mut set = SeqSet::default();
        for [a, b] in v {
            set.insert_range(a.min(b), a.max(b));
        }
        set
    }
}

impl From<SeqSet> for Vec<[u64; 2]> {
    fn from(s: SeqSet) -> Self {
        s.ranges.into_iter().map(|(a, b)| [a, b]).collect()
    }
}

impl SeqSet {
    pub fn contains(&self, seq: u64) -> bool {
        self.ranges.range(..=seq).next_back().is_some_and(|(_, &end)| end >= seq)
    }

    /// True when any of `lo..=hi` is in the set.
    pub fn overlaps(&self, lo: u64, hi: u64) -> bool {
        self.ranges.range(..=hi).next_back().is_some_and(|(_, &end)| end >= lo)
    }

    pub fn insert(&mut self, seq: u64) {
        self.insert_range(seq, seq);
    }

    /// Adds `lo..=hi` (`lo <= hi`), merging with overlapping and adjacent intervals.
    pub fn insert_range(&mut self, lo: u64, hi: u64) {
        let (mut lo, mut hi) = (lo, hi);
        if let Some((&start, &end)) = self.ranges.range(..=lo).next_back()
            && end.saturating_add(1) >= lo
        {
            lo = start;
            hi = hi.max(end);
        }
        while let Some((&start, &end)) = self.ranges.range(lo..).next() {
            if start > hi.saturating_add(1) {
                break;
            }
            self.ranges.remove(&start);
            hi = hi.max(end);
        }
        self.ranges.insert(lo, hi);
    }

    /// Adds every element of `other`.
    pub fn extend(&mut self, other: &SeqSet) {
        for (&a, &b) in &other.ranges {
            self.insert_range(a, b);
        }
    }

    /// Number of intervals.
    pub fn intervals(&self) -> usize {
        self.ranges.len()
    }

    /// Number of elements (saturating).
    pub fn len(&self) -> u64 {
        self.ranges.iter().fold(0u64, |n, (a, b)| n.saturating_add(b - a + 1))
    }

    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }

    /// The intervals, ascending.
    pub fn iter(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        self.ranges.iter().map(|(&a, &b)| (a, b))
    }
}

/// Everything the ingest has committed: per edge the seqs in the lake, and the highest part
/// file stamp covered.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DedupState {
    pub version: u32,
    /// Highest `nanos` stamp of a part file whose rows are in `edges`.
    pub mark_nanos: u64,
    pub edges: BTreeMap<String, SeqSet>,
    /// Part files (relative to the lake) written by the last commit, for people and tools.
    #[serde(default)]
    pub last_commit_files: Vec<String>,
}

/// What [`DedupState::recover`] found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Recovery {
    /// The state file was missing or unreadable and the state was rebuilt from the whole lake.
    pub rebuilt: bool,
    /// Part files found that the state did not cover.
    pub orphan_files: usize,
    /// Rows read from those files.
    pub orphan_rows: usize,
    /// Leftover `.tmp` files removed.
    pub tmp_removed: usize,
}

const STATE_VERSION: u32 = 1;

impl DedupState {
    /// Path of the state file in a lake.
    pub fn path(lake: &Path) -> PathBuf {
        lake.join(lake::INGEST_DIR).join("state.json")
    }

    pub fn contains(&self, edge_id: &str, seq: u64) -> bool {
        self.edges.get(edge_id).is_some_and(|s| s.contains(seq))
    }

    /// Adds what a commit wrote.
    pub fn merge(&mut self, committed: &HashMap<String, SeqSet>) {
        for (edge, seqs) in committed {
            self.edges.entry(edge.clone()).or_default().extend(seqs);
        }
    }

    /// Persists the state atomically (tmp, fsync, rename, fsync folder).
    pub fn save(&self, lake: &Path) -> Result<()> {
        let state = DedupState { version: STATE_VERSION, ..self.clone() };
        let bytes = serde_json::to_vec(&state).context("encoding the ingest state")?;
        write::write_atomic(&Self::path(lake), &bytes)
    }

    /// Loads the state and makes it cover the whole lake: removes leftover `.tmp` files, then
    /// folds in every part file stamped above the mark (or not named like a part file). When
    /// the state file is missing or unreadable, the state is rebuilt from every part file (an
    /// unreadable one is kept aside as `state.json.corrupt-{nanos}`). Saves it when it changed.
    pub fn recover(lake: &Path) -> Result<(DedupState, Recovery)> {
        let mut report = Recovery { tmp_removed: write::remove_tmp_files(lake)?, ..Default::default() };
        let path = Self::path(lake);
        let mut state = match std::fs::read(&path) {
            Ok(bytes) => match serde_json::from_slice::<DedupState>(&bytes) {
                Ok(s) if s.version == STATE_VERSION => s,
                parsed => {
                    let why = match parsed {
                        Ok(s) => format!("unknown version {}", s.version),
                        Err(e) => e.to_string(),
                    };
                    let aside = path.with_extension(format!("json.corrupt-{}", now_nanos()));
                    tracing::warn!(state = %path.display(), moved_to = %aside.display(), "ingest state unreadable ({why}); rebuilding it from the lake");
                    std::fs::rename(&path, &aside)
                        .with_context(|| format!("moving {} aside", path.display()))?;
                    report.rebuilt = true;
                    DedupState::default()
                }
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                report.rebuilt = true;
                DedupState::default()
            }
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        };
        let mut mark = state.mark_nanos;
        for dataset in lake::DATASETS {
            for part in lake::list_parts(lake, dataset)? {
                let nanos = part.file_name().and_then(|n| lake::part_nanos(&n.to_string_lossy()));
                if nanos.is_some_and(|n| n <= state.mark_nanos) {
                    continue;
                }
                let rows = fold_part(&mut state, &part)?;
                report.orphan_files += 1;
                report.orphan_rows += rows;
                mark = mark.max(nanos.unwrap_or(0));
            }
        }
        state.mark_nanos = mark;
        state.version = STATE_VERSION;
        if report.orphan_files > 0 || report.rebuilt {
            state.save(lake)?;
        }
        Ok((state, report))
    }
}

/// Adds the `(edge_id, seq)` of one part file to the state; returns its row count.
fn fold_part(state: &mut DedupState, part: &Path) -> Result<usize> {
    let file = std::fs::File::open(part).with_context(|| format!("opening {}", part.display()))?;
    let df = ParquetReader::new(file)
        .with_columns(Some(vec!["edge_id".into(), "seq".into()]))
        .finish()
        .with_context(|| format!("reading edge_id and seq from {}", part.display()))?;
    let edges = df.column("edge_id")?.str()?.clone();
    let seqs = df.column("seq")?.u64()?.clone();
    for (edge, seq) in edges.iter().zip(seqs.iter()) {
        if let (Some(edge), Some(seq)) = (edge, seq) {
            match state.edges.get_mut(edge) {
                Some(set) => set.insert(seq),
                None => state.edges.entry(edge.to_string()).or_default().insert(seq),
            }
        }
    }
    Ok(df.height())
}

/// Nanoseconds since the Unix epoch (0 if the clock is before it).
pub fn now_nanos() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

#[cfg(test)]
#[path = "state_tests.rs"]
mod tests;
