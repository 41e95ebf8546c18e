//! Store-and-forward buffer in sled. A record gets its `seq` and is flushed to disk before
//! anyone else sees it; the uplink reads records in `seq` order and removes them only after
//! the broker's PUBACK. The last shot number read from each machine is written in the same
//! atomic batch as that shot's record, so a restart neither loses nor doubles a shot.
//!
//! Bounded by `max_bytes` of stored record bytes; when full, the oldest records are dropped,
//! logged and counted (policy `drop-oldest`; the count is stored in the buffer, so it
//! survives restarts). Writes from all device tasks go through one [`Writer`] task that
//! commits them in groups with one flush each.
//!
//! Every buffer has an epoch: a random id made when the buffer is created and stored in it.
//! Batches carry it, so the cloud keys records by `(site, edge, epoch, seq)`: a lost, wiped or
//! replaced buffer starts a new epoch at seq 0 and is never taken for duplicates. A buffer
//! that cannot be opened because its files are corrupt is moved aside (kept for forensics)
//! by [`Buffer::open_or_reset`] and a fresh one started, so the edge keeps polling.

use anyhow::{Context, Result};
use moldops_shared::Record;
use std::ops::RangeInclusive;
use std::path::Path;
use std::sync::{Arc, Mutex};
use tokio::sync::{mpsc, oneshot, watch};

const RECORD: u8 = b'r';
const META_NEXT_SEQ: &[u8] = b"m\0next_seq";
const META_EPOCH: &[u8] = b"m\0epoch";
const META_DROPPED: &[u8] = b"m\0dropped";
const META_SHOT: &[u8] = b"m\0shot\0";

/// A record to append, with the shot-counter mark it advances (machines only).
#[derive(Debug, Clone)]
pub struct NewRecord {
    pub record: Record,
    pub shot_mark: Option<(String, u64)>,
}

/// Figures for metrics and status.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct BufferStats {
    pub records: u64,
    pub bytes: u64,
    /// Records dropped because the buffer was full, over the buffer's whole life.
    pub dropped: u64,
    pub next_seq: u64,
    /// Wall-clock time (UTC ms) the oldest buffered record was stored.
    pub oldest_stored_ms: Option<i64>,
    pub disk_bytes: u64,
    pub epoch: String,
    /// Corrupt buffers moved aside so far (kept next to the buffer as `*.corrupt-*`).
    pub resets: u64,
}

#[derive(Debug, Default)]
struct State {
    next_seq: u64,
    records: u64,
    bytes: u64,
    dropped: u64,
}

pub struct Buffer {
    /// This buffer's epoch (empty for a buffer created before epochs existed).
    epoch: String,
    /// Buffers moved aside as corrupt before this one was started (their folders remain).
    resets: u64,
    db: sled::Db,
    tree: sled::Tree,
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

/// Why a buffer could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// The files are damaged (truncated, overwritten, from an incompatible version): moving
    /// them aside and starting afresh is the only way to keep polling.
    #[error("the buffer at {} is corrupt: {reason}", path.display())]
    Corrupt { path: std::path::PathBuf, reason: String },
    /// Anything else (permissions, disk, another process holding it): not fixed by a reset.
    #[error("opening the buffer at {}: {source:#}", path.display())]
    Other { path: std::path::PathBuf, source: anyhow::Error },
}

/// A corrupt buffer that was moved aside.
#[derive(Debug, Clone, serde::Serialize)]
pub struct BufferReset {
    pub moved_to: String,
    pub reason: String,
}

impl Buffer {
    /// Opens (or creates) the buffer and recounts what it holds.
    pub fn open(path: &Path, max_bytes: u64) -> Result<Arc<Buffer>, OpenError> {
        let other = |source: anyhow::Error| OpenError::Other { path: path.to_path_buf(), source };
        let corrupt = |e: &dyn std::fmt::Display| OpenError::Corrupt {
            path: path.to_path_buf(),
            reason: e.to_string(),
        };
        let classify = |e: sled::Error| match e {
            sled::Error::Corruption { .. } | sled::Error::Unsupported(_) | sled::Error::ReportableBug(_) => {
                corrupt(&e)
            }
            sled::Error::Io(ref io)
                if matches!(
                    io.kind(),
                    std::io::ErrorKind::UnexpectedEof | std::io::ErrorKind::InvalidData
                ) =>
            {
                corrupt(&e)
            }
            e => other(e.into()),
        };
        let fresh = !path.exists();
        let db = sled::Config::new().path(path).flush_every_ms(Some(1000)).open().map_err(classify)?;
        let tree = db.open_tree("buffer").map_err(classify)?;
        let mut st = State::default();
        for kv in tree.range(record_key(0)..) {
            let (k, v) = kv.map_err(classify)?;
            st.records += 1;
            st.bytes += v.len() as u64;
            st.next_seq = seq_of(&k).map_or(st.next_seq, |s| s + 1);
        }
        if let Some(v) = tree.get(META_NEXT_SEQ).map_err(classify)? {
            st.next_seq = st.next_seq.max(be_u64(&v).unwrap_or(0));
        }
        st.dropped = tree.get(META_DROPPED).map_err(classify)?.and_then(|v| be_u64(&v)).unwrap_or(0);
        let epoch = match tree.get(META_EPOCH).map_err(classify)? {
            Some(v) => String::from_utf8(v.to_vec()).map_err(|e| corrupt(&e))?,
            // A buffer from before epochs keeps the empty epoch: its seqs continue its old stream.
            None if !fresh && (st.next_seq > 0 || st.records > 0) => String::new(),
            None => {
                let epoch = format!("{:016x}", rand::random::<u64>());
                tree.insert(META_EPOCH, epoch.as_bytes()).map_err(classify)?;
                tree.flush().map_err(classify)?;
                epoch
            }
        };
        let resets = aside_count(path);
        let (appended, _) = watch::channel(st.next_seq);
        Ok(Arc::new(Buffer { epoch, resets, db, tree, max_bytes, state: Mutex::new(st), appended }))
    }

    /// Opens the buffer; a corrupt one is renamed to `{path}.corrupt-{unix ms}` and a fresh
    /// buffer (a new epoch) is started in its place, which the second value reports.
    pub fn open_or_reset(path: &Path, max_bytes: u64) -> Result<(Arc<Buffer>, Option<BufferReset>)> {
        match Buffer::open(path, max_bytes) {
            Ok(b) => Ok((b, None)),
            Err(OpenError::Corrupt { reason, .. }) => {
                let mut aside = path.as_os_str().to_owned();
                aside.push(format!(".corrupt-{}", chrono::Utc::now().timestamp_millis()));
                let aside = std::path::PathBuf::from(aside);
                std::fs::rename(path, &aside)
                    .with_context(|| format!("moving the corrupt buffer {} aside", path.display()))?;
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

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Assigns seqs, writes records and shot marks atomically and flushes them to disk.
    pub async fn append(&self, items: Vec<NewRecord>) -> Result<Vec<u64>> {
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
            self.tree.apply_batch(batch)?;
            st.next_seq = seq;
            st.records += seqs.len() as u64;
            st.bytes += added;
            (seqs, seq, added)
        };
        self.tree.flush_async().await.context("flushing buffer")?;
        tracing::trace!(records = seqs.len(), bytes = added, "buffer append durable");
        self.enforce_limit()?;
        self.appended.send_replace(next);
        Ok(seqs)
    }

    /// Drops the oldest records while the buffer is over its size limit, counting them
    /// durably and logging each run of drops with its seq range.
    fn enforce_limit(&self) -> Result<()> {
        let mut dropped: Option<(u64, u64)> = None;
        while self.state().bytes > self.max_bytes {
            let Some(kv) = self.tree.range(record_key(0)..).next() else { break };
            let (k, _) = kv?;
            if let Some(v) = self.tree.remove(&k)? {
                let mut st = self.state();
                st.records = st.records.saturating_sub(1);
                st.bytes = st.bytes.saturating_sub(v.len() as u64);
                st.dropped += 1;
                let seq = seq_of(&k).unwrap_or(0);
                dropped = Some(dropped.map_or((seq, seq), |(first, _)| (first, seq)));
            }
        }
        if let Some((first, last)) = dropped {
            let total = self.state().dropped;
            self.tree.insert(META_DROPPED, &total.to_be_bytes())?;
            tracing::warn!(
                first_seq = first,
                last_seq = last,
                total,
                max_bytes = self.max_bytes,
                "buffer full: dropped the oldest records (the cloud shows the gap in this epoch's seqs)"
            );
        }
        Ok(())
    }

    /// Last shot number durably recorded for a machine.
    pub fn last_shot(&self, machine: &str) -> Result<Option<u64>> {
        Ok(self.tree.get(shot_key(machine))?.and_then(|v| be_u64(&v)))
    }

    /// The lowest seq the buffer holds, if any.
    pub fn lowest_seq(&self) -> Result<Option<u64>> {
        match self.tree.range(record_key(0)..).next() {
            Some(kv) => Ok(seq_of(&kv?.0)),
            None => Ok(None),
        }
    }

    /// Seq the next appended record will get.
    pub fn next_seq(&self) -> u64 {
        self.state().next_seq
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
        for kv in self.tree.range(record_key(from)..record_key(until)).take(max) {
            let (k, v) = kv?;
            if let (Some(seq), Some(json)) = (seq_of(&k), v.get(8..)) {
                out.push((seq, json.to_vec()));
            }
        }
        Ok(out)
    }

    /// Removes the records in `seqs` (after PUBACK). Returns how many were removed.
    pub fn remove(&self, seqs: RangeInclusive<u64>) -> Result<u64> {
        let mut batch = sled::Batch::default();
        let (mut n, mut bytes) = (0u64, 0u64);
        let end = seqs.end().saturating_add(1);
        for kv in self.tree.range(record_key(*seqs.start())..record_key(end)) {
            let (k, v) = kv?;
            bytes += v.len() as u64;
            n += 1;
            batch.remove(k);
        }
        self.tree.apply_batch(batch)?;
        let mut st = self.state();
        st.records = st.records.saturating_sub(n);
        st.bytes = st.bytes.saturating_sub(bytes);
        Ok(n)
    }

    /// Corrupt buffers moved aside next to this one (their folders are kept).
    pub fn resets(&self) -> u64 {
        self.resets
    }

    pub fn stats(&self) -> BufferStats {
        let oldest_stored_ms = self
            .tree
            .range(record_key(0)..)
            .next()
            .and_then(|kv| kv.ok())
            .and_then(|(_, v)| be_u64(&v))
            .map(|ms| ms as i64);
        let st = self.state();
        BufferStats {
            records: st.records,
            bytes: st.bytes,
            dropped: st.dropped,
            next_seq: st.next_seq,
            epoch: self.epoch.clone(),
            resets: self.resets,
            oldest_stored_ms,
            disk_bytes: self.db.size_on_disk().unwrap_or(0),
        }
    }

    /// Flushes everything (on shutdown).
    pub async fn flush(&self) -> Result<()> {
        self.db.flush_async().await?;
        Ok(())
    }
}

/// How many `{path}.corrupt-*` folders sit next to the buffer.
fn aside_count(path: &Path) -> u64 {
    let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else { return 0 };
    let prefix = format!("{}.corrupt-", name.to_string_lossy());
    let dir = if dir.as_os_str().is_empty() { Path::new(".") } else { dir };
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok()).filter(|e| e.file_name().to_string_lossy().starts_with(&prefix)).count()
        })
        .unwrap_or(0) as u64
}

type Request = (Vec<NewRecord>, oneshot::Sender<Result<Vec<u64>, String>>);

/// Handle through which device tasks append; commits concurrent appends in groups.
#[derive(Clone)]
pub struct Writer {
    tx: mpsc::Sender<Request>,
}

impl Writer {
    /// Spawns the group-commit task for `buffer`.
    pub fn spawn(buffer: Arc<Buffer>) -> Writer {
        Self::spawn_tapped(buffer, None)
    }

    /// Like [`Writer::spawn`]; every record made durable is also sent to `tap` (with its seq,
    /// in seq order) once it is on disk — live scoring reads the shots there.
    pub fn spawn_tapped(buffer: Arc<Buffer>, tap: Option<mpsc::UnboundedSender<Vec<Record>>>) -> Writer {
        let (tx, mut rx) = mpsc::channel::<Request>(1024);
        tokio::spawn(async move {
            while let Some(first) = rx.recv().await {
                let mut group = vec![first];
                while group.len() < 256 {
                    match rx.try_recv() {
                        Ok(r) => group.push(r),
                        Err(_) => break,
                    }
                }
                let sizes: Vec<usize> = group.iter().map(|(items, _)| items.len()).collect();
                let (items, replies): (Vec<_>, Vec<_>) = group.into_iter().unzip();
                let all: Vec<NewRecord> = items.into_iter().flatten().collect();
                let tapped: Option<Vec<Record>> =
                    tap.as_ref().map(|_| all.iter().map(|n| n.record.clone()).collect());
                match buffer.append(all).await {
                    Ok(seqs) => {
                        if let (Some(tap), Some(mut records)) = (tap.as_ref(), tapped) {
                            records.iter_mut().zip(&seqs).for_each(|(r, s)| r.seq = *s);
                            let _ = tap.send(records);
                        }
                        let mut rest = seqs.as_slice();
                        for (n, reply) in sizes.into_iter().zip(replies) {
                            let (mine, tail) = rest.split_at(n.min(rest.len()));
                            rest = tail;
                            let _ = reply.send(Ok(mine.to_vec()));
                        }
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "buffer append failed");
                        for reply in replies {
                            let _ = reply.send(Err(e.to_string()));
                        }
                    }
                }
            }
        });
        Writer { tx }
    }

    /// Appends records durably; returns their seqs once they are on disk.
    pub async fn append(&self, items: Vec<NewRecord>) -> Result<Vec<u64>> {
        let (reply, rx) = oneshot::channel();
        self.tx.send((items, reply)).await.map_err(|_| anyhow::anyhow!("buffer writer stopped"))?;
        rx.await.map_err(|_| anyhow::anyhow!("buffer writer stopped"))?.map_err(anyhow::Error::msg)
    }
}

#[cfg(test)]
mod tests;
