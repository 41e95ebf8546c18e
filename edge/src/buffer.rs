//! Store-and-forward buffer in sled. A record gets its `seq` and is flushed to disk before
//! anyone else sees it; the uplink reads records in `seq` order and removes them once the
//! ingest's commit ack covers them (or on PUBACK, see `uplink.delete_after`). The last shot
//! number read from each machine is written in the same atomic batch as that shot's record,
//! so a restart neither loses nor doubles a shot.
//!
//! Bounded by `max_bytes` of stored record bytes; when full, the oldest records are dropped,
//! logged and counted (policy `drop-oldest`; the count is stored in the buffer, so it
//! survives restarts) and reported to the cloud as gap records per machine and device
//! ([`gaps`]). Writes from all device tasks go through one [`Writer`] task that
//! commits them in groups with one flush each. A write that fails (disk full) is reported as
//! such in [`BufferStats`]; the database is reopened until writes succeed again, so the edge
//! resumes by itself when space returns.
//!
//! Every buffer has an epoch: a random id made when the buffer is created and stored in it.
//! Batches carry it, so the cloud keys records by `(site, edge, epoch, seq)`: a lost, wiped or
//! replaced buffer starts a new epoch at seq 0 and is never taken for duplicates. A buffer
//! that cannot be opened because its files are corrupt is moved aside (kept for forensics)
//! by [`Buffer::open_or_reset`] and a fresh one started, so the edge keeps polling.

mod gaps;
mod open;
mod writer;

pub use open::{BufferReset, OpenError};
pub use writer::{Durable, Writer};

use anyhow::{Context, Result};
use moldops_shared::Record;
use open::Handles;
use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::{Duration, Instant};
use tokio::sync::watch;

const RECORD: u8 = b'r';
const META_NEXT_SEQ: &[u8] = b"m\0next_seq";
const META_EPOCH: &[u8] = b"m\0epoch";
const META_DROPPED: &[u8] = b"m\0dropped";
const META_SHOT: &[u8] = b"m\0shot\0";

/// After a failed write sled refuses every later one, even once the disk has room again: the
/// buffer reopens its database, at most this often, until a write succeeds.
const REOPEN_EVERY: Duration = Duration::from_secs(5);

/// A record to append, with the shot-counter mark it advances (machines only).
#[derive(Debug, Clone)]
pub struct NewRecord {
    /// The record to store; its `seq` is assigned by the buffer.
    pub record: Record,
    /// `(machine_id, shot number)` stored as the machine's last shot in the same atomic batch;
    /// `None` for peripheral samples and backfilled shots.
    pub shot_mark: Option<(String, u64)>,
}

/// Figures for metrics and status.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct BufferStats {
    /// Records currently held.
    pub records: u64,
    /// Stored bytes of those records (record JSON plus an 8-byte store time each); what
    /// `buffer.max_bytes` bounds.
    pub bytes: u64,
    /// Records dropped because the buffer was full, over the buffer's whole life.
    pub dropped: u64,
    /// Of those, how many are not yet written as gap records for the cloud.
    pub dropped_unreported: u64,
    /// Seq the next appended record will get.
    pub next_seq: u64,
    /// Wall-clock time (UTC ms) the oldest buffered record was stored.
    pub oldest_stored_ms: Option<i64>,
    /// Size of the sled database on disk, bytes (0 while it is closed).
    pub disk_bytes: u64,
    /// This buffer's epoch (empty for a buffer created before epochs existed).
    pub epoch: String,
    /// Corrupt buffers moved aside so far (kept next to the buffer as `*.corrupt-*`).
    pub resets: u64,
    /// Appends that failed since the start (disk full, I/O errors).
    pub write_errors: u64,
    /// Set while appends fail; cleared by the first that succeeds.
    pub write_failing: Option<AppendFailed>,
}

impl BufferStats {
    /// Age of the oldest buffered record at `now_ms` (UTC ms), seconds; 0 when empty.
    pub fn oldest_age_s(&self, now_ms: i64) -> f64 {
        self.oldest_stored_ms.map_or(0.0, |t| (now_ms - t).max(0) as f64 / 1e3)
    }
}

#[derive(Debug, Default)]
struct State {
    next_seq: u64,
    records: u64,
    bytes: u64,
    dropped: u64,
    write_errors: u64,
    /// The last append's failure, cleared by the next append that succeeds.
    failing: Option<AppendFailed>,
    /// When the database was last reopened after a failure.
    reopened: Option<Instant>,
    /// Dropped records not yet written as gap records (stored under `m\0gaps`).
    gaps: moldops_shared::gap::GapTally,
    /// When gap records were last written.
    gaps_written: Option<Instant>,
}

/// The database is closed: a write failed and reopening it has not yet succeeded.
#[derive(Debug, thiserror::Error)]
#[error("the buffer database is closed (reopen after a write failure)")]
struct Closed;

/// An append that did not reach the disk: its records were not acknowledged to the caller.
#[derive(Debug, Clone, serde::Serialize, thiserror::Error)]
#[error("writing the buffer failed{}: {message}", if *disk_full { " (disk full)" } else { "" })]
pub struct AppendFailed {
    /// The file system is full (ENOSPC): polling goes on and appends resume when space returns.
    pub disk_full: bool,
    /// The error and its causes, as text.
    pub message: String,
}

impl AppendFailed {
    fn of(e: &anyhow::Error) -> AppendFailed {
        let full = |io: &std::io::Error| {
            io.raw_os_error() == Some(28) || io.kind() == std::io::ErrorKind::StorageFull
        };
        let disk_full = e.chain().any(|c| {
            c.downcast_ref::<std::io::Error>().is_some_and(full)
                || matches!(c.downcast_ref::<sled::Error>(), Some(sled::Error::Io(io)) if full(io))
        });
        AppendFailed { disk_full, message: format!("{e:#}") }
    }
}

/// The store-and-forward buffer of one edge (a sled database), shared by the writer, the
/// uplink and health; see the module docs.
pub struct Buffer {
    path: PathBuf,
    /// This buffer's epoch (empty for a buffer created before epochs existed).
    epoch: String,
    /// Buffers moved aside as corrupt before this one was started (their folders remain).
    resets: u64,
    /// `None` only after a reopen failed (the next append tries again).
    handles: RwLock<Option<Handles>>,
    max_bytes: u64,
    state: Mutex<State>,
    appended: watch::Sender<u64>,
}

fn record_key(seq: u64) -> [u8; 9] {
    let mut k = [RECORD; 9];
    k[1..].copy_from_slice(&seq.to_be_bytes());
    k
}

fn seq_of(key: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(key.get(1..9)?.try_into().ok()?))
}

fn be_u64(v: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(v.get(..8)?.try_into().ok()?))
}

fn shot_key(machine: &str) -> Vec<u8> {
    [META_SHOT, machine.as_bytes()].concat()
}

impl Buffer {
    /// Opens (or creates) the buffer and recounts what it holds.
    pub fn open(path: &Path, max_bytes: u64) -> Result<Arc<Buffer>, OpenError> {
        let new = !path.exists();
        let (handles, st) = open::load(path)?;
        let epoch = open::epoch(path, &handles.tree, new, &st)?;
        let (appended, _) = watch::channel(st.next_seq);
        Ok(Arc::new(Buffer {
            path: path.to_path_buf(),
            epoch,
            resets: open::aside_count(path),
            handles: RwLock::new(Some(handles)),
            max_bytes,
            state: Mutex::new(st),
            appended,
        }))
    }

    /// Opens the buffer; a corrupt one is renamed to `{path}.corrupt-{unix ms}` and a fresh
    /// buffer (a new epoch) is started in its place, which the second value reports.
    pub fn open_or_reset(path: &Path, max_bytes: u64) -> Result<(Arc<Buffer>, Option<BufferReset>)> {
        match Buffer::open(path, max_bytes) {
            Ok(b) => Ok((b, None)),
            Err(OpenError::Corrupt { reason, .. }) => {
                let aside = open::move_aside(path)?;
                tracing::error!(buffer = %path.display(), moved_to = %aside.display(), %reason,
                    "the buffer is corrupt: moved aside, starting a new one (a new epoch); records it held are in the old folder");
                let buffer = Buffer::open(path, max_bytes)?;
                Ok((buffer, Some(BufferReset { moved_to: aside.display().to_string(), reason })))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// This buffer's epoch (empty for a buffer from before epochs).
    pub fn epoch(&self) -> &str {
        &self.epoch
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The records tree (a cheap handle); an error while the database is closed.
    fn tree(&self) -> Result<sled::Tree> {
        let h = self.handles.read().unwrap_or_else(|e| e.into_inner());
        Ok(h.as_ref().map(|h| h.tree.clone()).ok_or(Closed)?)
    }

    /// Reopens the database after a write failure, at most every [`REOPEN_EVERY`]: sled
    /// refuses writes after one failed, even when the disk has room again. The counts are
    /// taken from disk again; `next_seq` never goes back (seqs the uplink may have sent are
    /// never reused).
    fn reopen_if_failing(&self) {
        {
            let mut st = self.state();
            if st.failing.is_none() || st.reopened.is_some_and(|t| t.elapsed() < REOPEN_EVERY) {
                return;
            }
            st.reopened = Some(Instant::now());
        }
        let mut h = self.handles.write().unwrap_or_else(|e| e.into_inner());
        drop(h.take());
        match open::load(&self.path) {
            Ok((handles, disk)) => {
                *h = Some(handles);
                let mut st = self.state();
                st.next_seq = st.next_seq.max(disk.next_seq);
                st.records = disk.records;
                st.bytes = disk.bytes;
                st.dropped = st.dropped.max(disk.dropped);
                tracing::info!(buffer = %self.path.display(), "buffer database reopened after a write failure");
            }
            Err(e) => {
                tracing::warn!(error = %e, "reopening the buffer failed; trying again");
                // The reason it stays closed is the reason writes fail now (a full disk, say).
                self.state().failing = Some(AppendFailed::of(&e.into()));
            }
        }
    }

    /// Assigns seqs, writes records and shot marks atomically and flushes them to disk. A
    /// failure is remembered (and shown in [`BufferStats`]) until an append succeeds again.
    pub async fn append(&self, items: Vec<NewRecord>) -> Result<Vec<u64>, AppendFailed> {
        self.reopen_if_failing();
        match self.try_append(items).await {
            Ok(seqs) => {
                if let Some(was) = self.state().failing.take() {
                    tracing::info!(after = %was, "the buffer accepts writes again");
                }
                Ok(seqs)
            }
            Err(e) => {
                let failed = AppendFailed::of(&e);
                let mut st = self.state();
                st.write_errors += 1;
                if let Some(why) = st.failing.clone().filter(|_| e.is::<Closed>()) {
                    // Closed after an earlier failure: that failure (or the reopen's) says why.
                    return Err(why);
                }
                if st.failing.is_none() {
                    tracing::error!(error = %failed, "cannot write the buffer: polling goes on; shots made meanwhile \
                        are read back from the controller's history when writes succeed again");
                }
                st.failing = Some(failed.clone());
                Err(failed)
            }
        }
    }

    async fn try_append(&self, items: Vec<NewRecord>) -> Result<Vec<u64>> {
        let tree = self.tree()?;
        let now = chrono::Utc::now().timestamp_millis();
        let (seqs, next, added) = {
            let mut st = self.state();
            let mut batch = sled::Batch::default();
            let mut seqs = Vec::with_capacity(items.len());
            let mut added = 0u64;
            let mut seq = st.next_seq;
            for mut item in items {
                item.record.seq = seq;
                let mut value = now.to_be_bytes().to_vec();
                serde_json::to_writer(&mut value, &item.record)?;
                added += value.len() as u64;
                batch.insert(&record_key(seq), value);
                if let Some((machine, shot)) = item.shot_mark {
                    batch.insert(shot_key(&machine), &shot.to_be_bytes());
                }
                seqs.push(seq);
                seq += 1;
            }
            batch.insert(META_NEXT_SEQ, &seq.to_be_bytes());
            tree.apply_batch(batch)?;
            st.next_seq = seq;
            st.records += seqs.len() as u64;
            st.bytes += added;
            (seqs, seq, added)
        };
        let dropping = self.enforce_limit(&tree, 0)?;
        let next = self.write_gap_records(&tree, dropping, now)?.unwrap_or(next);
        tree.flush_async().await.context("flushing buffer")?;
        tracing::trace!(records = seqs.len(), bytes = added, "buffer append durable");
        self.announce(next);
        Ok(seqs)
    }

    /// Last shot number durably recorded for a machine.
    pub fn last_shot(&self, machine: &str) -> Result<Option<u64>> {
        Ok(self.tree()?.get(shot_key(machine))?.and_then(|v| be_u64(&v)))
    }

    /// The lowest seq the buffer holds, if any.
    pub fn lowest_seq(&self) -> Result<Option<u64>> {
        match self.tree()?.range(record_key(0)..).next() {
            Some(kv) => Ok(seq_of(&kv?.0)),
            None => Ok(None),
        }
    }

    /// Seq the next appended record will get.
    pub fn next_seq(&self) -> u64 {
        self.state().next_seq
    }

    /// Tells subscribers the next seq; never goes back when an append and the gap records
    /// written after an ack race each other.
    fn announce(&self, next: u64) {
        self.appended.send_if_modified(|v| {
            let newer = next > *v;
            if newer {
                *v = next;
            }
            newer
        });
    }

    /// Receives the next seq after every durable append.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.appended.subscribe()
    }

    /// Up to `max` records with `from <= seq < until`, as `(seq, record JSON)`.
    pub fn read(&self, from: u64, until: u64, max: usize) -> Result<Vec<(u64, Vec<u8>)>> {
        let mut out = Vec::new();
        if from >= until {
            return Ok(out);
        }
        for kv in self.tree()?.range(record_key(from)..record_key(until)).take(max) {
            let (k, v) = kv?;
            if let (Some(seq), Some(json)) = (seq_of(&k), v.get(8..)) {
                out.push((seq, json.to_vec()));
            }
        }
        Ok(out)
    }

    /// Removes the records in `seqs` (once confirmed), then writes out the tally of dropped
    /// records if it holds any. Returns how many were removed.
    pub fn remove(&self, seqs: RangeInclusive<u64>) -> Result<u64> {
        let tree = self.tree()?;
        let mut batch = sled::Batch::default();
        let (mut n, mut bytes) = (0u64, 0u64);
        let end = seqs.end().saturating_add(1);
        for kv in tree.range(record_key(*seqs.start())..record_key(end)) {
            let (k, v) = kv?;
            bytes += v.len() as u64;
            n += 1;
            batch.remove(k);
        }
        tree.apply_batch(batch)?;
        {
            let mut st = self.state();
            st.records = st.records.saturating_sub(n);
            st.bytes = st.bytes.saturating_sub(bytes);
        }
        // Room again: drops not yet reported go out now, not only with the next shot.
        if let Some(next) = self.write_gap_records(&tree, false, chrono::Utc::now().timestamp_millis())? {
            self.announce(next);
        }
        Ok(n)
    }

    /// Corrupt buffers moved aside next to this one (their folders are kept).
    pub fn resets(&self) -> u64 {
        self.resets
    }

    /// Current figures, for `/status`, `/metrics` and the start-up log.
    pub fn stats(&self) -> BufferStats {
        let (oldest_stored_ms, disk_bytes) = {
            let h = self.handles.read().unwrap_or_else(|e| e.into_inner());
            let oldest = h.as_ref().and_then(|h| {
                h.tree.range(record_key(0)..).next().and_then(|kv| kv.ok()).and_then(|(_, v)| be_u64(&v))
            });
            (oldest.map(|ms| ms as i64), h.as_ref().and_then(|h| h.db.size_on_disk().ok()).unwrap_or(0))
        };
        let st = self.state();
        BufferStats {
            records: st.records,
            bytes: st.bytes,
            dropped: st.dropped,
            dropped_unreported: st.gaps.dropped(),
            next_seq: st.next_seq,
            epoch: self.epoch.clone(),
            resets: self.resets,
            oldest_stored_ms,
            disk_bytes,
            write_errors: st.write_errors,
            write_failing: st.failing.clone(),
        }
    }

    /// Flushes everything (on shutdown).
    pub async fn flush(&self) -> Result<()> {
        let db = {
            let h = self.handles.read().unwrap_or_else(|e| e.into_inner());
            h.as_ref().map(|h| h.db.clone())
        };
        if let Some(db) = db {
            db.flush_async().await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
