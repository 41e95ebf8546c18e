//! One group commit, free of MQTT: a [`Group`] decodes and checks payloads as they are added
//! (a refused payload, or a refused record inside a good batch, is set aside for the
//! quarantine with its reason); [`Committer::commit`] drops records already in the lake or
//! earlier in the group, writes the rest as one part file per (dataset, machine, date,
//! stream), stores what was refused, and persists the dedup state — in that order. When it
//! returns `Ok`, everything in the group is durable and the caller may acknowledge it.
//!
//! Payloads come as native batches (`moldops/v1/…/data`) or as Sparkplug B `DDATA` of moldops
//! edges (one record each, [`moldops_shared::sparkplug`]); both become the same batches and go
//! through the same checks, dedup and commit acks. A Sparkplug node's `NDEATH` is its `offline`
//! event; `DDATA` of other Sparkplug nodes are counted and passed over.
//!
//! A stream is one edge buffer's sequence: `(site, edge_id, epoch)`. A new epoch of a known
//! edge (its buffer was lost or replaced) is a new stream, counted and logged, never taken
//! for duplicates.

use super::events::{self, EventMessage};
use super::state::{DedupState, Recovery, SeqSet, StreamId, now_nanos};
use crate::lake;
use crate::lake::quarantine::{self, QuarantineEntry};
use crate::lake::write::{self, Part, Row, write_parts};
use anyhow::{Context, Result};
use moldops_common::lock::LockFile;
use moldops_shared::gap::DropGap;
use moldops_shared::score;
use moldops_shared::sparkplug::{self, MessageType, SparkplugError};
use moldops_shared::topic::{self, Leaf};
use moldops_shared::{Batch, Decoded, RecordKind, RefusedRecord, decode_lenient};
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

/// Earliest and latest accepted record time: 0001-01-01 and 9999-12-31 (UTC, ms).
const TS_RANGE: std::ops::RangeInclusive<i64> = -62_135_596_800_000..=253_402_300_799_999;
const DAY_MS: i64 = 86_400_000;

/// Something set aside for the quarantine, in arrival order.
#[derive(Debug)]
enum Refused {
    /// A whole payload.
    Payload { at: i64, entry: QuarantineEntry },
    /// One record of the accepted batch `batch` (an index into the group's batches); stored
    /// unless its seq is already accounted for (a replay).
    Record { batch: usize, seq: Option<u64>, at: i64, entry: QuarantineEntry },
}

/// Payloads collected for one commit, decoded and checked as they arrive.
#[derive(Debug, Default)]
pub struct Group {
    accepted: Vec<Batch>,
    refused: Vec<Refused>,
    /// Messages on the edges' retained event topics (status, reported model state).
    events: Vec<EventMessage>,
    records: usize,
    messages: usize,
    /// Sparkplug `DDATA` of nodes that are not moldops edges.
    foreign: u64,
}

impl Group {
    /// Decodes and checks one payload received on `topic` at `received_at_ms` (UTC ms).
    pub fn add(&mut self, topic: &str, payload: &[u8], received_at_ms: i64) {
        let checked = check(topic, payload, received_at_ms);
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
        let checked: Vec<Vec<Result<Checked, String>>> = std::thread::scope(|scope| {
            let handles: Vec<_> = msgs
                .chunks(chunk)
                .map(|c| scope.spawn(move || c.iter().map(|(t, p, at)| check(t, p, *at)).collect::<Vec<_>>()))
                .collect();
            // `check` returns errors rather than panic; a panic is a bug and ends the worker.
            handles.into_iter().map(|h| h.join().unwrap_or_else(|e| std::panic::resume_unwind(e))).collect()
        });
        for ((t, p, at), c) in msgs.iter().zip(checked.into_iter().flatten()) {
            self.push(t, p, *at, c);
        }
    }

    fn push(&mut self, topic: &str, payload: &[u8], received_at_ms: i64, checked: Result<Checked, String>) {
        self.messages += 1;
        match checked {
            Ok(Checked::Event(message)) => self.events.extend(message),
            Ok(Checked::Foreign(reason)) => {
                tracing::debug!(topic, %reason, "passed over");
                self.foreign += 1;
            }
            Ok(Checked::Batch(decoded)) => {
                let batch = self.accepted.len();
                for r in decoded.refused {
                    tracing::warn!(topic, index = r.index, seq = r.seq, reason = %r.reason, "record quarantined");
                    let reason = match r.seq {
                        Some(seq) => format!("record {} (seq {seq}): {}", r.index, r.reason),
                        None => format!("record {}: {}", r.index, r.reason),
                    };
                    let entry = QuarantineEntry::new(reason, topic, received_at_ms, r.json.as_bytes());
                    self.refused.push(Refused::Record { batch, seq: r.seq, at: received_at_ms, entry });
                }
                self.records += decoded.batch.records.len();
                self.accepted.push(decoded.batch);
            }
            Err(reason) => {
                tracing::warn!(topic, %reason, bytes = payload.len(), "payload quarantined");
                let entry = QuarantineEntry::new(reason, topic, received_at_ms, payload);
                self.refused.push(Refused::Payload { at: received_at_ms, entry });
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

/// A payload that passed [`check`].
#[derive(Debug)]
enum Checked {
    /// A batch of records from a data topic (its refused records set aside inside).
    Batch(Decoded),
    /// A message on an edge's status or reported-state topic (or a Sparkplug death); `None`
    /// for a cleared retained one.
    Event(Option<EventMessage>),
    /// A Sparkplug `DDATA` of a node that is no moldops edge, with the reason.
    Foreign(String),
}

/// Decodes a payload and checks it against its topic and the lake's needs: a bad header or
/// a topic that disagrees refuses the payload; a record the lake cannot hold (time outside
/// years 1..=9999, a value named like a lake column) is refused alone. Payloads on the edges'
/// event topics are read as [`events`].
fn check(topic_name: &str, payload: &[u8], received_at_ms: i64) -> Result<Checked, String> {
    if let Some(t) = sparkplug::parse_topic(topic_name) {
        return check_sparkplug(&t, payload, received_at_ms);
    }
    let Some((site, edge_id, leaf)) = topic::parse(topic_name) else {
        return Err(format!("topic {topic_name:?} is not in the moldops tree"));
    };
    if events::is_event_leaf(leaf) {
        return events::parse(site, edge_id, leaf, payload, received_at_ms).map(Checked::Event);
    }
    if leaf != Leaf::Data.as_str() {
        return Err(format!("topic {topic_name:?} is not a data topic"));
    }
    let mut decoded = decode_lenient(payload).map_err(|e| e.to_string())?;
    let batch = &mut decoded.batch;
    if batch.site != site || batch.edge_id != edge_id {
        return Err(format!(
            "topic says site {site:?} edge {edge_id:?} but the batch says site {:?} edge {:?}",
            batch.site, batch.edge_id
        ));
    }
    lake_checks(&mut decoded);
    Ok(Checked::Batch(decoded))
}

/// A Sparkplug B message: a moldops edge's `DDATA` is a batch of its one record, its `NDEATH`
/// its `offline` event (other nodes' are counted and passed over); other kinds are not
/// subscribed to and refused.
fn check_sparkplug(t: &sparkplug::Topic<'_>, payload: &[u8], received_at_ms: i64) -> Result<Checked, String> {
    match (t.kind, t.device) {
        (MessageType::DData, Some(device)) => match sparkplug::decode_ddata(t.group, t.node, device, payload)
        {
            Ok(mut decoded) => {
                lake_checks(&mut decoded);
                Ok(Checked::Batch(decoded))
            }
            Err(e @ SparkplugError::NotMoldops(_)) => Ok(Checked::Foreign(e.to_string())),
            Err(e) => Err(e.to_string()),
        },
        (MessageType::NDeath, None) => {
            match sparkplug::Payload::decode_bounded(payload, events::MAX_EVENT_BYTES) {
                Ok(p) if !sparkplug::is_moldops_node(&p) => {
                    Ok(Checked::Foreign("NDEATH of a node that is no moldops edge".into()))
                }
                _ => events::parse_death(t.group, t.node, payload, received_at_ms).map(Checked::Event),
            }
        }
        (kind, _) => Err(format!("Sparkplug {} messages are not ingested", kind.as_str())),
    }
}

/// Sets aside the records the lake cannot hold: a time outside years 1..=9999, a value named
/// like a lake column.
fn lake_checks(decoded: &mut Decoded) {
    let batch = &mut decoded.batch;
    let records = std::mem::take(&mut batch.records);
    for (i, r) in records.into_iter().enumerate() {
        let problem = if !TS_RANGE.contains(&r.ts_ms) {
            Some(format!("ts_ms {} is outside years 1..=9999", r.ts_ms))
        } else {
            r.values
                .keys()
                .find(|k| lake::is_lake_column(k))
                .map(|name| format!("value name {name:?} collides with a lake column"))
        };
        match problem {
            None => batch.records.push(r),
            Some(reason) => decoded.refused.push(RefusedRecord {
                index: i,
                seq: Some(r.seq),
                reason,
                json: serde_json::to_string(&r).unwrap_or_default(),
            }),
        }
    }
}

/// Logs a gap record an edge sent; returns how many records it says were dropped.
fn report_gap(row: &Row) -> u64 {
    // Records reach the committer only after `check_record`, which validates gaps.
    let Ok(gap) = DropGap::from_record(row.record) else { return 0 };
    tracing::warn!(
        site = row.site,
        edge = row.edge_id,
        machine = gap.machine_id,
        device = gap.device_id,
        dropped = gap.dropped,
        from = %quarantine::rfc3339_ms(gap.first_ts_ms),
        to = %quarantine::rfc3339_ms(gap.last_ts_ms),
        "an edge dropped records unsent (its buffer was full); the gap is in edge_gaps"
    );
    gap.dropped
}

/// What one commit did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Outcome {
    /// Payloads in the group, quarantined ones included.
    pub messages: usize,
    /// Shot records written to `raw_data`.
    pub raw_records: u64,
    /// Peripheral records written to `peripheral_data`.
    pub peripheral_records: u64,
    /// Gap records committed to `edge_gaps` (records an edge dropped, per machine and device).
    pub gap_records: u64,
    /// Records those gap records say an edge dropped because its buffer was full.
    pub dropped_at_edge: u64,
    /// Score records written to `edge_scores` (one per shot an edge scored live).
    pub score_records: u64,
    /// Of those, the alarms.
    pub alarm_records: u64,
    /// Health snapshots of edges written to `edge_status`.
    pub status_records: u64,
    /// Quality-gate decisions written to `edge_decisions` (one per gated shot).
    pub decision_records: u64,
    /// Drift summaries written to `edge_drift` (one per model key and period at an edge).
    pub drift_records: u64,
    /// Rows written to `edge_events` (link and rollout states from retained topics).
    pub event_records: u64,
    /// Records dropped as replays: already in the lake, or earlier in the same group.
    pub duplicates: u64,
    /// Quarantine entries stored: whole payloads and single records.
    pub quarantined: u64,
    /// Sparkplug B `DDATA` of nodes that are not moldops edges, passed over.
    pub foreign_sparkplug: u64,
    /// Streams that are a new buffer epoch of an edge already in the lake.
    pub new_epochs: u64,
    /// Part files written, relative to the lake.
    pub files: Vec<String>,
    /// How far each stream the group touched is committed, for the edges' commit acks.
    pub acks: Vec<StreamAck>,
}

/// One stream's contiguous committed mark (see [`moldops_shared::ack`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StreamAck {
    /// The stream (site, edge id, buffer epoch) the mark belongs to.
    pub stream: StreamId,
    /// Every seq of the stream from the edge's `held_from` up to and including this one is
    /// durable in the lake (or its quarantine).
    pub committed_through: u64,
}

/// Writes groups into one lake, keeping its dedup state.
#[derive(Debug)]
pub struct Committer {
    lake: PathBuf,
    state: DedupState,
    /// Per stream, the highest `held_from` its batches declared: seqs below it are final.
    held_from: HashMap<StreamId, u64>,
    last_nanos: u64,
    writer: Writer,
}

/// How a committer shares the lake with other ingests.
#[derive(Debug)]
enum Writer {
    /// The lake's only ingest: its lock is held while the committer lives.
    Sole(#[allow(dead_code, reason = "held, not read")] LockFile),
    /// One of several replicas on one host (each with its own MQTT client id, sharing the
    /// data topics through a `$share/` subscription): each commit takes the lock, reads the
    /// state the others left, commits and lets go, so the dedup state stays one and exact.
    /// `flock` does not exclude processes of other hosts on a network filesystem: replicas on
    /// several hosts write a bucket ([`Writer::Bucket`]).
    Replica,
    /// A lake in a bucket: each commit is a turn under a lease (one writer or several
    /// replicas alike), written into a scratch folder and published ([`super::bucket`]).
    Bucket(Box<super::bucket::BucketWriter>),
}

/// How long a replica waits for its turn to commit before the commit fails.
const TURN_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);
/// Written (fsynced) by a replica before it writes part files, removed once the state covers
/// them: found by the next replica to commit, it means a commit stopped half-way and the
/// lake's part files above the mark must be folded into the state.
const PENDING_FILE: &str = "commit-pending";

fn lock_path(lake: &Path) -> PathBuf {
    lake.join(lake::INGEST_DIR).join("lock")
}

/// Creates the lake and takes its writer lock (`_ingest/lock`), so that two ingests never
/// write one lake; readers need no lock.
fn lock_lake(lake: &Path) -> Result<LockFile> {
    let what = format!("the lake {} (another ingest is writing to it)", lake.display());
    Ok(LockFile::try_acquire(&lock_path(lake), &what)?)
}

/// (dataset, machine, day, stream): one part file each per group.
type BucketKey<'a> = (&'static str, &'a str, i64, &'a StreamId);

/// The records of one group sorted into part files, and what else the commit must store.
#[derive(Default)]
struct Sorted<'a> {
    buckets: BTreeMap<BucketKey<'a>, Vec<Row<'a>>>,
    /// Seqs this group accounts for, per stream (written or quarantined).
    seen: HashMap<StreamId, SeqSet>,
    /// Per stream, the highest `held_from` in the group.
    held_from: HashMap<&'a StreamId, u64>,
    quarantine: Vec<(i64, QuarantineEntry)>,
}

impl Committer {
    /// Opens a lake (creating it) as its only ingest, recovering the dedup state from it.
    pub fn open(lake: &Path) -> Result<(Committer, Recovery)> {
        let lock = lock_lake(lake)?;
        let (state, recovery) = DedupState::recover(lake)?;
        let last_nanos = state.mark_nanos;
        let held_from = HashMap::new();
        let writer = Writer::Sole(lock);
        Ok((Committer { lake: lake.to_path_buf(), state, held_from, last_nanos, writer }, recovery))
    }

    /// Opens a lake (creating it) as one of several replicas that write it in turns (see
    /// [`Writer::Replica`]), recovering the dedup state from it during a turn of its own.
    pub fn open_replica(lake: &Path) -> Result<(Committer, Recovery)> {
        let what = format!("the lake {} (its ingest replicas' turn to commit)", lake.display());
        let _turn = LockFile::acquire_within(&lock_path(lake), &what, TURN_TIMEOUT)?;
        let (state, recovery) = DedupState::recover(lake)?;
        remove_pending(lake)?;
        let last_nanos = state.mark_nanos;
        let writer = Writer::Replica;
        Ok((
            Committer { lake: lake.to_path_buf(), state, held_from: HashMap::new(), last_nanos, writer },
            recovery,
        ))
    }

    /// Opens a lake in a bucket (`s3://…`, or any [`crate::storage::Store`] URL), committing
    /// through `scratch` as `owner` (see [`Writer::Bucket`]), recovering the dedup state in a
    /// first turn.
    pub fn open_bucket(url: &str, scratch: &Path, owner: &str) -> Result<(Committer, Recovery)> {
        let (writer, state, recovery) = super::bucket::BucketWriter::open(url, scratch, owner)?;
        let last_nanos = state.mark_nanos;
        let lake = writer.scratch().to_path_buf();
        let writer = Writer::Bucket(Box::new(writer));
        Ok((Committer { lake, state, held_from: HashMap::new(), last_nanos, writer }, recovery))
    }

    /// A replica's turn: waits for the lock, then brings the state up to what the other
    /// replicas committed (a full recovery when one of them stopped half-way) and marks a
    /// commit as pending; a bucket's turn likewise under its lease. `None` for the lake's only
    /// ingest and for a bucket (whose turn holds no lock file).
    fn take_turn(&mut self) -> Result<Option<LockFile>> {
        if let Writer::Bucket(w) = &mut self.writer {
            w.take_turn(&mut self.state)?;
            self.last_nanos = self.last_nanos.max(self.state.mark_nanos);
            return Ok(None);
        }
        let Writer::Replica = &self.writer else { return Ok(None) };
        let what = format!("the lake {} (its ingest replicas' turn to commit)", self.lake.display());
        let turn = LockFile::acquire_within(&lock_path(&self.lake), &what, TURN_TIMEOUT)?;
        let pending = self.lake.join(lake::INGEST_DIR).join(PENDING_FILE);
        if pending.exists() {
            let (state, recovery) = DedupState::recover(&self.lake)?;
            tracing::warn!(
                orphan_files = recovery.orphan_files,
                orphan_rows = recovery.orphan_rows,
                "a replica's commit stopped half-way; its part files are folded into the dedup state"
            );
            self.state = state;
        } else {
            // Read in full each turn: a size and modification time can stay the same across
            // another replica's write (coarse timestamps), its content cannot be trusted to.
            self.state = match DedupState::load(&self.lake)? {
                Some(state) => state,
                None => DedupState::recover(&self.lake)?.0,
            };
        }
        self.last_nanos = self.last_nanos.max(self.state.mark_nanos);
        write::write_atomic(&pending, b"")?;
        Ok(Some(turn))
    }

    /// Ends a replica's or a bucket's turn after a commit that succeeded.
    fn end_turn(&mut self) -> Result<()> {
        match &mut self.writer {
            Writer::Replica => remove_pending(&self.lake)?,
            Writer::Bucket(w) => w.end_turn(&self.state)?,
            Writer::Sole(_) => {}
        }
        Ok(())
    }

    /// The dedup state as of the last commit (or the recovery at open).
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
        let _turn = self.take_turn()?;
        let out = match self.commit_in_turn(group) {
            Ok(out) => out,
            Err(e) => {
                if let Writer::Bucket(w) = &mut self.writer {
                    w.abort();
                }
                return Err(e);
            }
        };
        self.end_turn()?;
        Ok(out)
    }

    fn commit_in_turn(&mut self, group: Group) -> Result<Outcome> {
        let mut out =
            Outcome { messages: group.messages, foreign_sparkplug: group.foreign, ..Default::default() };
        let streams: Vec<StreamId> = group.accepted.iter().map(StreamId::of).collect();
        let mut sorted = Sorted::default();
        for (b, stream) in group.accepted.iter().zip(&streams) {
            self.sort_batch(b, stream, &mut sorted, &mut out);
        }
        for r in group.refused {
            match r {
                Refused::Payload { at, entry } => sorted.quarantine.push((at, entry)),
                Refused::Record { batch, seq, at, entry } => {
                    let replayed =
                        seq.is_some_and(|seq| self.account(&streams[batch], seq, &mut sorted.seen));
                    if replayed {
                        out.duplicates += 1;
                    } else {
                        sorted.quarantine.push((at, entry));
                    }
                }
            }
        }

        let mut parts = Vec::with_capacity(sorted.buckets.len());
        for ((dataset, machine, day, stream), mut rows) in sorted.buckets {
            rows.sort_unstable_by_key(|r| r.record.seq);
            let (first, last) = (rows[0].record.seq, rows[rows.len() - 1].record.seq);
            let dir = lake::partition_dir(&self.lake, dataset, machine, &lake::day_string(day));
            let name = lake::part_file_name(stream, first, last, self.next_nanos());
            match rows[0].record.kind {
                RecordKind::Shot => out.raw_records += rows.len() as u64,
                RecordKind::Peripheral => out.peripheral_records += rows.len() as u64,
                RecordKind::Gap => {
                    out.gap_records += rows.len() as u64;
                    out.dropped_at_edge += rows.iter().map(report_gap).sum::<u64>();
                }
                RecordKind::Score => {
                    out.score_records += rows.len() as u64;
                    let alarm = |r: &&Row| r.record.values.get(score::value::ALARM) == Some(&1.0);
                    out.alarm_records += rows.iter().filter(alarm).count() as u64;
                }
                RecordKind::Status => out.status_records += rows.len() as u64,
                RecordKind::Decision => out.decision_records += rows.len() as u64,
                RecordKind::Drift => out.drift_records += rows.len() as u64,
            }
            let rel = dir.join(&name);
            out.files.push(rel.strip_prefix(&self.lake).unwrap_or(&rel).to_string_lossy().into_owned());
            parts.push(Part { dir, name, rows });
        }
        write_parts(&self.lake, &parts)?;
        out.quarantined = sorted.quarantine.len() as u64;
        if !sorted.quarantine.is_empty() {
            let nanos = self.next_nanos();
            quarantine::store(&self.lake, &sorted.quarantine, nanos)?;
        }
        let event_rows = events::fresh(group.events, &mut self.state.events);
        if !event_rows.is_empty() {
            let nanos = self.next_nanos();
            out.files.extend(events::write(&self.lake, &event_rows, nanos)?);
            out.event_records = event_rows.len() as u64;
        }
        if sorted.seen.values().any(|s| !s.is_empty()) || !event_rows.is_empty() {
            self.state.merge(&sorted.seen);
            self.state.mark_nanos = self.last_nanos;
            self.state.last_commit_files = out.files.clone();
            self.state.save(&self.lake)?;
        }
        out.acks = self.acks(sorted.held_from);
        Ok(out)
    }

    /// The committed marks of the streams whose batches declared `held_from` (edges that wait
    /// for commit acks): the end of the committed interval holding their lowest held seq.
    fn acks(&mut self, group: HashMap<&StreamId, u64>) -> Vec<StreamAck> {
        let mut acks = Vec::new();
        for (stream, held) in group {
            let held =
                self.held_from.entry(stream.clone()).and_modify(|h| *h = (*h).max(held)).or_insert(held);
            if let Some(end) = self.state.streams.get(stream).and_then(|s| s.contiguous_end(*held)) {
                acks.push(StreamAck { stream: stream.clone(), committed_through: end });
            }
        }
        acks.sort_by(|a, b| a.stream.cmp(&b.stream));
        acks
    }

    /// Marks `seq` of `stream` as accounted for in this group; true when it already was
    /// (committed before, or earlier in the group): a replay.
    fn account(&self, stream: &StreamId, seq: u64, seen: &mut HashMap<StreamId, SeqSet>) -> bool {
        if self.state.contains(stream, seq) {
            return true;
        }
        let mine = seen.entry(stream.clone()).or_default();
        let replayed = mine.contains(seq);
        mine.insert(seq);
        replayed
    }

    /// Drops the records of one batch already committed (or earlier in the group) and
    /// buckets the rest.
    fn sort_batch<'a>(&self, b: &'a Batch, stream: &'a StreamId, to: &mut Sorted<'a>, out: &mut Outcome) {
        if let Some(h) = b.held_from {
            to.held_from.entry(stream).and_modify(|m| *m = (*m).max(h)).or_insert(h);
        }
        let known = self.state.streams.get(stream);
        if known.is_none() && !to.seen.contains_key(stream) {
            let earlier = self.state.epochs_of(&stream.site, &stream.edge_id);
            if earlier > 0 {
                out.new_epochs += 1;
                tracing::warn!(site = %stream.site, edge = %stream.edge_id, epoch = %stream.epoch, earlier,
                    "a new buffer epoch of a known edge (its buffer was lost or replaced); its seqs start a new stream");
            }
        }
        // A batch that overlaps nothing committed (the usual case) skips the per-record lookups.
        let fresh = !known.is_some_and(|s| s.overlaps(b.first_seq, b.last_seq))
            && !to.seen.get(stream).is_some_and(|s| s.overlaps(b.first_seq, b.last_seq));
        let mine = to.seen.entry(stream.clone()).or_default();
        for r in &b.records {
            if !fresh && (known.is_some_and(|s| s.contains(r.seq)) || mine.contains(r.seq)) {
                out.duplicates += 1;
                continue;
            }
            mine.insert(r.seq);
            let key = (r.kind.dataset(), r.machine_id.as_str(), r.ts_ms.div_euclid(DAY_MS), stream);
            to.buckets.entry(key).or_default().push(Row {
                edge_id: &b.edge_id,
                site: &b.site,
                epoch: &b.epoch,
                record: r,
            });
        }
    }
}

/// Removes the pending-commit marker (nothing when there is none).
fn remove_pending(lake: &Path) -> Result<()> {
    let path = lake.join(lake::INGEST_DIR).join(PENDING_FILE);
    match std::fs::remove_file(&path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(e).with_context(|| format!("removing {}", path.display()))
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
#[path = "commit_tests.rs"]
pub(crate) mod tests;
