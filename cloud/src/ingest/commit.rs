//! One group commit, free of MQTT: a [`Group`] decodes and checks payloads as they are added
//! (refused ones are set aside for the quarantine with their reason); [`Committer::commit`]
//! drops records already in the lake or earlier in the group, writes the rest as one part file
//! per (dataset, machine, date, edge), stores the refused payloads, and persists the dedup
//! state — in that order. When it returns `Ok`, everything in the group is durable and the
//! caller may acknowledge it.

use super::state::{DedupState, Recovery, SeqSet, now_nanos};
use crate::lake::quarantine::{self, QuarantineEntry};
use crate::lake::write::{Part, Row, write_parts};
use crate::lake::{self, FIXED_COLUMNS};
use anyhow::Result;
use moldops_common::lock::LockFile;
use moldops_shared::topic::{self, Leaf};
use moldops_shared::{Batch, RecordKind, decode_batch};
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

/// Earliest and latest accepted record time: 0001-01-01 and 9999-12-31 (UTC, ms).
const TS_RANGE: std::ops::RangeInclusive<i64> = -62_135_596_800_000..=253_402_300_799_999;
const DAY_MS: i64 = 86_400_000;

/// Payloads collected for one commit, decoded and checked as they arrive.
#[derive(Debug, Default)]
pub struct Group {
    accepted: Vec<Batch>,
    refused: Vec<(i64, QuarantineEntry)>,
    records: usize,
    messages: usize,
}

impl Group {
    /// Decodes and checks one payload received on `topic` at `received_at_ms` (UTC ms).
    pub fn add(&mut self, topic: &str, payload: &[u8], received_at_ms: i64) {
        let checked = check(topic, payload);
        self.push(topic, payload, received_at_ms, checked);
    }

    /// Like [`Group::add`] for many payloads `(topic, payload, received_at_ms)`, decoding them
    /// on several cores; they keep their order.
    pub fn add_all(&mut self, msgs: &[(&str, &[u8], i64)]) {
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).min(msgs.len() / 2);
        if threads <= 1 {
            msgs.iter().for_each(|(t, p, at)| self.add(t, p, *at));
            return;
        }
        let chunk = msgs.len().div_ceil(threads);
        let checked: Vec<Vec<Result<Batch, String>>> = std::thread::scope(|scope| {
            let handles: Vec<_> = msgs
                .chunks(chunk)
                .map(|c| scope.spawn(move || c.iter().map(|(t, p, _)| check(t, p)).collect::<Vec<_>>()))
                .collect();
            // `check` returns errors rather than panic; a panic is a bug and ends the worker.
            handles.into_iter().map(|h| h.join().unwrap_or_else(|e| std::panic::resume_unwind(e))).collect()
        });
        for ((t, p, at), c) in msgs.iter().zip(checked.into_iter().flatten()) {
            self.push(t, p, *at, c);
        }
    }

    fn push(&mut self, topic: &str, payload: &[u8], received_at_ms: i64, checked: Result<Batch, String>) {
        self.messages += 1;
        match checked {
            Ok(batch) => {
                self.records += batch.records.len();
                self.accepted.push(batch);
            }
            Err(reason) => {
                tracing::warn!(topic, %reason, bytes = payload.len(), "payload quarantined");
                self.refused
                    .push((received_at_ms, QuarantineEntry::new(reason, topic, received_at_ms, payload)));
            }
        }
    }

    /// Records in the accepted batches so far.
    pub fn records(&self) -> usize {
        self.records
    }

    /// Payloads added so far.
    pub fn messages(&self) -> usize {
        self.messages
    }
}

/// Decodes a payload and checks it against its topic and the lake's needs.
fn check(topic_name: &str, payload: &[u8]) -> Result<Batch, String> {
    let Some((site, edge_id, leaf)) = topic::parse(topic_name) else {
        return Err(format!("topic {topic_name:?} is not in the moldops tree"));
    };
    if leaf != Leaf::Data.as_str() {
        return Err(format!("topic {topic_name:?} is not a data topic"));
    }
    let batch = decode_batch(payload).map_err(|e| e.to_string())?;
    if batch.site != site || batch.edge_id != edge_id {
        return Err(format!(
            "topic says site {site:?} edge {edge_id:?} but the batch says site {:?} edge {:?}",
            batch.site, batch.edge_id
        ));
    }
    for (i, r) in batch.records.iter().enumerate() {
        if !TS_RANGE.contains(&r.ts_ms) {
            return Err(format!("record {i} (seq {}): ts_ms {} is outside years 1..=9999", r.seq, r.ts_ms));
        }
        if let Some(name) = r.values.keys().find(|k| FIXED_COLUMNS.contains(&k.as_str())) {
            return Err(format!(
                "record {i} (seq {}): value name {name:?} collides with a lake column",
                r.seq
            ));
        }
    }
    Ok(batch)
}

/// What one commit did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Outcome {
    pub messages: usize,
    pub raw_records: u64,
    pub peripheral_records: u64,
    pub duplicates: u64,
    pub quarantined: u64,
    /// Part files written, relative to the lake.
    pub files: Vec<String>,
}

/// Writes groups into one lake, keeping its dedup state.
#[derive(Debug)]
pub struct Committer {
    lake: PathBuf,
    state: DedupState,
    last_nanos: u64,
    /// Held while this committer lives: one writer per lake.
    _lock: LockFile,
}

/// Creates the lake and takes its writer lock (`_ingest/lock`), so that two ingests never
/// write one lake; readers need no lock.
fn lock_lake(lake: &Path) -> Result<LockFile> {
    let what = format!("the lake {} (another ingest is writing to it)", lake.display());
    Ok(LockFile::try_acquire(&lake.join(lake::INGEST_DIR).join("lock"), &what)?)
}

/// (dataset, machine, day, edge): one part file each per group.
type BucketKey<'a> = (&'static str, &'a str, i64, &'a str);

impl Committer {
    /// Opens a lake (creating it), recovering the dedup state from it.
    pub fn open(lake: &Path) -> Result<(Committer, Recovery)> {
        let lock = lock_lake(lake)?;
        let (state, recovery) = DedupState::recover(lake)?;
        let last_nanos = state.mark_nanos;
        Ok((Committer { lake: lake.to_path_buf(), state, last_nanos, _lock: lock }, recovery))
    }

    pub fn state(&self) -> &DedupState {
        &self.state
    }

    /// A file stamp above every stamp used before, even if the clock stepped back.
    fn next_nanos(&mut self) -> u64 {
        self.last_nanos = now_nanos().max(self.last_nanos.saturating_add(1));
        self.last_nanos
    }

    /// Commits a group durably (see the module doc). An error means nothing may be acknowledged.
    pub fn commit(&mut self, group: Group) -> Result<Outcome> {
        let mut out = Outcome {
            messages: group.messages,
            quarantined: group.refused.len() as u64,
            ..Default::default()
        };
        let mut seen: HashMap<String, SeqSet> = HashMap::new();
        let mut buckets: BTreeMap<BucketKey<'_>, Vec<Row<'_>>> = BTreeMap::new();
        for b in &group.accepted {
            let known = self.state.edges.get(&b.edge_id);
            let fresh = !known.is_some_and(|s| s.overlaps(b.first_seq, b.last_seq))
                && !seen.get(&b.edge_id).is_some_and(|s| s.overlaps(b.first_seq, b.last_seq));
            if !seen.contains_key(&b.edge_id) {
                seen.insert(b.edge_id.clone(), SeqSet::default());
            }
            let Some(mine) = seen.get_mut(&b.edge_id) else { continue };
            for r in &b.records {
                if !fresh && (known.is_some_and(|s| s.contains(r.seq)) || mine.contains(r.seq)) {
                    out.duplicates += 1;
                    continue;
                }
                mine.insert(r.seq);
                let key =
                    (r.kind.dataset(), r.machine_id.as_str(), r.ts_ms.div_euclid(DAY_MS), b.edge_id.as_str());
                buckets.entry(key).or_default().push(Row { edge_id: &b.edge_id, site: &b.site, record: r });
            }
        }

        let mut parts = Vec::with_capacity(buckets.len());
        for ((dataset, machine, day, edge), mut rows) in buckets {
            rows.sort_unstable_by_key(|r| r.record.seq);
            let (first, last) = (rows[0].record.seq, rows[rows.len() - 1].record.seq);
            let dir = lake::partition_dir(&self.lake, dataset, machine, &lake::day_string(day));
            let name = lake::part_file_name(edge, first, last, self.next_nanos());
            if dataset == RecordKind::Shot.dataset() {
                out.raw_records += rows.len() as u64;
            } else {
                out.peripheral_records += rows.len() as u64;
            }
            let rel = dir.join(&name);
            out.files.push(rel.strip_prefix(&self.lake).unwrap_or(&rel).to_string_lossy().into_owned());
            parts.push(Part { dir, name, rows });
        }
        write_parts(&self.lake, &parts)?;
        if !group.refused.is_empty() {
            let nanos = self.next_nanos();
            quarantine::store(&self.lake, &group.refused, nanos)?;
        }
        if !out.files.is_empty() {
            self.state.merge(&seen);
            self.state.mark_nanos = self.last_nanos;
            self.state.last_commit_files = out.files.clone();
            self.state.save(&self.lake)?;
        }
        Ok(out)
    }
}

#[cfg(test)]
#[path = "commit_tests.rs"]
pub(crate) mod tests;
