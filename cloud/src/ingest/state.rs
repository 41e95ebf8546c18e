//! Dedup state of the ingest: for every stream (one edge buffer's sequence: site, edge id,
//! buffer epoch), the set of `seq`s already committed to the lake, kept as merged intervals,
//! persisted atomically at `lake/_ingest/state.json` after each commit, and rebuilt on start
//! from the lake itself when a crash left part files the state does not know yet (or when the
//! file is missing, corrupt or from an older version).
//!
//! Part file names carry a `nanos` stamp that only grows; the state records the highest stamp
//! it covers (`mark_nanos`). A commit writes its files first and the state last, so after a
//! crash the orphans are exactly the part files stamped above the mark: [`DedupState::recover`]
//! reads their `(site, edge_id, epoch, seq)` columns and folds them in.

pub use crate::lake::StreamId;
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
    /// True when `seq` is in the set.
    pub fn contains(&self, seq: u64) -> bool {
        self.ranges.range(..=seq).next_back().is_some_and(|(_, &end)| end >= seq)
    }

    /// True when any of `lo..=hi` is in the set.
    pub fn overlaps(&self, lo: u64, hi: u64) -> bool {
        self.ranges.range(..=hi).next_back().is_some_and(|(_, &end)| end >= lo)
    }

    /// Adds one seq, merging it with adjacent intervals.
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

    /// The last element of the interval holding `seq`: every seq from `seq` up to it is in
    /// the set. `None` when `seq` is not.
    pub fn contiguous_end(&self, seq: u64) -> Option<u64> {
        self.ranges.range(..=seq).next_back().and_then(|(_, &end)| (end >= seq).then_some(end))
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

    /// True when the set holds no seq.
    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }

    /// The intervals, ascending.
    pub fn iter(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        self.ranges.iter().map(|(&a, &b)| (a, b))
    }
}

/// One stream's entry in the state file.
#[derive(Serialize, Deserialize)]
struct StreamEntry {
    #[serde(flatten)]
    stream: StreamId,
    seqs: SeqSet,
}

/// The streams map as a JSON list (its keys are not strings).
mod stream_list {
    use super::{SeqSet, StreamEntry, StreamId};
    use serde::{Deserialize, Deserializer, Serialize, Serializer};
    use std::collections::BTreeMap;

    pub(super) fn serialize<S: Serializer>(m: &BTreeMap<StreamId, SeqSet>, s: S) -> Result<S::Ok, S::Error> {
        let list: Vec<StreamEntry> =
            m.iter().map(|(k, v)| StreamEntry { stream: k.clone(), seqs: v.clone() }).collect();
        list.serialize(s)
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<BTreeMap<StreamId, SeqSet>, D::Error> {
        let list = Vec::<StreamEntry>::deserialize(d)?;
        let mut out: BTreeMap<StreamId, SeqSet> = BTreeMap::new();
        for e in list {
            out.entry(e.stream).or_default().extend(&e.seqs);
        }
        Ok(out)
    }
}

/// Everything the ingest has committed: per stream the seqs in the lake, and the highest part
/// file stamp covered.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DedupState {
    /// Format version of the state file: [`DedupState::save`] writes 2; a file of any other
    /// version is rebuilt from the lake.
    pub version: u32,
    /// Highest `nanos` stamp of a part file whose rows are in `streams`.
    pub mark_nanos: u64,
    /// Per stream (site, edge id, buffer epoch), the seqs already committed to the lake.
    #[serde(with = "stream_list")]
    pub streams: BTreeMap<StreamId, SeqSet>,
    /// Part files (relative to the lake) written by the last commit, for people and tools.
    #[serde(default)]
    pub last_commit_files: Vec<String>,
    /// The edge events recorded last, per `{site}/{edge_id}/{leaf}` (see
    /// [`super::events::fresh`]): retained messages that come again are recognised.
    #[serde(default)]
    pub events: BTreeMap<String, Vec<super::events::EventMark>>,
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

/// Version 2 keys by stream; a version-1 file (keyed by edge id alone) is rebuilt from the lake.
const STATE_VERSION: u32 = 2;

#[derive(Deserialize)]
struct VersionOnly {
    version: u32,
}

impl DedupState {
    /// Path of the state file in a lake.
    pub fn path(lake: &Path) -> PathBuf {
        lake.join(lake::INGEST_DIR).join("state.json")
    }

    /// True when `seq` of `stream` is already in the lake (a replay to drop).
    pub fn contains(&self, stream: &StreamId, seq: u64) -> bool {
        self.streams.get(stream).is_some_and(|s| s.contains(seq))
    }

    /// How many epochs of one edge the lake holds.
    pub fn epochs_of(&self, site: &str, edge_id: &str) -> usize {
        self.streams.keys().filter(|k| k.site == site && k.edge_id == edge_id).count()
    }

    /// Adds what a commit wrote.
    pub fn merge(&mut self, committed: &HashMap<StreamId, SeqSet>) {
        for (stream, seqs) in committed {
            self.streams.entry(stream.clone()).or_default().extend(seqs);
        }
    }

    /// Persists the state atomically (tmp, fsync, rename, fsync folder).
    pub fn save(&self, lake: &Path) -> Result<()> {
        write::write_atomic(&Self::path(lake), &self.to_bytes()?)
    }

    /// The state file's bytes.
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        let state = DedupState { version: STATE_VERSION, ..self.clone() };
        serde_json::to_vec(&state).context("encoding the ingest state")
    }

    /// A state file's bytes parsed; the error says why they are not a state of this version.
    pub fn from_bytes(bytes: &[u8]) -> std::result::Result<DedupState, String> {
        parse(bytes)
    }

    /// The saved state as it is, without looking at the lake: `None` when the file is missing
    /// or unreadable (then [`DedupState::recover`] rebuilds it).
    pub fn load(lake: &Path) -> Result<Option<DedupState>> {
        let path = Self::path(lake);
        match std::fs::read(&path) {
            Ok(bytes) => Ok(parse(&bytes).ok()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
        }
    }

    /// Loads the state and makes it cover the whole lake: removes leftover `.tmp` files, then
    /// folds in every part file stamped above the mark (or not named like a part file). When
    /// the state file is missing or unreadable, the state is rebuilt from every part file (an
    /// unreadable one is kept aside as `state.json.corrupt-{nanos}`). Saves it when it changed.
    pub fn recover(lake: &Path) -> Result<(DedupState, Recovery)> {
        let mut report = Recovery { tmp_removed: write::remove_tmp_files(lake)?, ..Default::default() };
        let path = Self::path(lake);
        let mut state = match std::fs::read(&path) {
            Ok(bytes) => match parse(&bytes) {
                Ok(s) => s,
                Err(why) => {
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
        for dataset in recovered_datasets() {
            for part in lake::list_parts(lake, dataset)? {
                let nanos = part.file_name().and_then(|n| lake::part_nanos(&n.to_string_lossy()));
                if nanos.is_some_and(|n| n <= state.mark_nanos) {
                    continue;
                }
                let rows = fold_dataset_part(&mut state, dataset, &part)?;
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

/// A state file of this version; the error says why it is not one.
fn parse(bytes: &[u8]) -> std::result::Result<DedupState, String> {
    match serde_json::from_slice::<VersionOnly>(bytes) {
        Ok(v) if v.version != STATE_VERSION => {
            return Err(format!("version {} (this build writes {STATE_VERSION})", v.version));
        }
        Err(e) => return Err(e.to_string()),
        Ok(_) => {}
    }
    serde_json::from_slice::<DedupState>(bytes).map_err(|e| e.to_string())
}

/// The datasets a recovery folds in above the mark: the ingest's record datasets and its
/// edge events.
pub(crate) fn recovered_datasets() -> impl Iterator<Item = &'static str> {
    lake::DATASETS.into_iter().chain([super::events::DATASET])
}

/// Folds one part file of `dataset` into the state: a record dataset's `(stream, seq)`
/// ([`fold_part`]), an edge events file's message marks ([`super::events::fold_marks`]).
pub(crate) fn fold_dataset_part(state: &mut DedupState, dataset: &str, part: &Path) -> Result<usize> {
    if dataset == super::events::DATASET {
        return super::events::fold_marks(&mut state.events, part);
    }
    fold_part(state, part)
}

/// Adds the `(site, edge_id, epoch, seq)` of one part file to the state; returns its row
/// count. Files from before epochs have no `epoch` column: their epoch is empty.
pub(crate) fn fold_part(state: &mut DedupState, part: &Path) -> Result<usize> {
    let file = std::fs::File::open(part).with_context(|| format!("opening {}", part.display()))?;
    let mut reader = ParquetReader::new(file);
    let has_epoch = reader
        .schema()
        .with_context(|| format!("reading the schema of {}", part.display()))?
        .iter_names()
        .any(|n| n.as_str() == "epoch");
    let mut columns = vec!["site".into(), "edge_id".into(), "seq".into()];
    if has_epoch {
        columns.push("epoch".into());
    }
    let df = reader
        .with_columns(Some(columns))
        .finish()
        .with_context(|| format!("reading the stream and seq columns of {}", part.display()))?;
    let sites = df.column("site")?.str()?.clone();
    let edges = df.column("edge_id")?.str()?.clone();
    let seqs = df.column("seq")?.u64()?.clone();
    let epochs = if has_epoch { Some(df.column("epoch")?.str()?.clone()) } else { None };
    let mut current: Option<(StreamId, SeqSet)> = None;
    for i in 0..df.height() {
        let (Some(site), Some(edge), Some(seq)) = (sites.get(i), edges.get(i), seqs.get(i)) else { continue };
        let epoch = epochs.as_ref().and_then(|e| e.get(i)).unwrap_or("");
        let same =
            current.as_ref().is_some_and(|(s, _)| s.site == site && s.edge_id == edge && s.epoch == epoch);
        if !same && let Some((stream, set)) = current.take() {
            state.streams.entry(stream).or_default().extend(&set);
        }
        current.get_or_insert_with(|| (StreamId::new(site, edge, epoch), SeqSet::default())).1.insert(seq);
    }
    if let Some((stream, set)) = current {
        state.streams.entry(stream).or_default().extend(&set);
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
