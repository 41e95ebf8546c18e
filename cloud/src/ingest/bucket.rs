//! The ingest's commits on object storage (`--lake s3://…`): each commit is a turn under a
//! lease, so that one ingest, or several replicas, keep one exact dedup state in the bucket
//! without a lock, a rename or an fsync.
//!
//! A turn: take the lease `_ingest/lease.json` (created if absent, or replaced with `If-Match`
//! when it is free, this writer's own, or unchanged for longer than a lease lasts — measured
//! on the taker's own monotonic clock, so clocks of different hosts need not agree); read the dedup state `_ingest/state.json` when
//! another writer changed it since this one's last turn; when the marker
//! `_ingest/commit-pending` is there (a writer stopped half-way), fold the part objects stamped
//! above the state's mark into the state; create the marker. The commit then writes its part
//! files into a scratch folder exactly as into a lake folder. Ending the turn publishes them —
//! each part object created only if its name is free (a retry with the same bytes passes) —,
//! then replaces the state only if it is still the version read at the start of the turn (the
//! fence: a writer whose lease ran out and was taken over cannot overwrite the newer state),
//! removes the marker and frees the lease. Only then are the messages acknowledged. A turn that
//! fails leaves the marker (the next turn recovers) and frees the lease.
//!
//! A holder starts no request later than [`PUBLISH_MARGIN`] before its lease ends (by its own
//! monotonic clock) and each request gives up after [`REQUEST_TIMEOUT`]; another writer takes
//! the lease over no sooner than [`TAKEOVER_GRACE`] after it ends. So a slow holder has
//! published its last part before a taker folds the parts above the mark, and none of its
//! parts can appear after that.

use super::state::{DedupState, Recovery, fold_dataset_part, recovered_datasets};
use crate::lake;
use crate::storage::{Store, Version, block_on, lease};
use anyhow::{Context, Result, bail};
use std::path::{Path, PathBuf};
use std::time::Duration;

const LEASE_KEY: &str = "_ingest/lease.json";
const STATE_KEY: &str = "_ingest/state.json";
const PENDING_KEY: &str = "_ingest/commit-pending";
/// How long a lease lasts: a turn must end within it, and a writer that stopped while holding
/// one blocks the others this long (and [`TAKEOVER_GRACE`]) at most.
pub const LEASE: Duration = Duration::from_secs(30);
/// A holder starts no request when less than this is left of its lease.
pub const PUBLISH_MARGIN: Duration = Duration::from_secs(7);
/// Each request of a turn gives up after this long (shorter than [`PUBLISH_MARGIN`]).
pub const REQUEST_TIMEOUT: &str = "5s";
pub use crate::storage::lease::TAKEOVER_GRACE;
/// How long a writer waits for the lease before its commit fails.
const TURN_WAIT: Duration = Duration::from_secs(120);

/// One ingest's side of the bucket's commit protocol.
#[derive(Debug)]
pub struct BucketWriter {
    store: Store,
    scratch: PathBuf,
    owner: String,
    /// The state object's version as this writer last read or wrote it.
    state_version: Option<Version>,
    /// The lease, while this writer holds it.
    lease: Option<lease::Held>,
    /// How long a lease lasts ([`LEASE`]).
    lease_for: Duration,
    /// This turn changed the state beyond what the commit saves (a recovery).
    recovered: bool,
}

impl BucketWriter {
    /// Opens the lake at `url` with `scratch` as the folder commits write into (emptied now),
    /// recovering the dedup state in a first turn.
    pub fn open(url: &str, scratch: &Path, owner: &str) -> Result<(BucketWriter, DedupState, Recovery)> {
        Self::open_with_lease(url, scratch, owner, LEASE)
    }

    /// [`BucketWriter::open`] with leases of `lease_for` (shorter ones for tests).
    pub fn open_with_lease(
        url: &str,
        scratch: &Path,
        owner: &str,
        lease_for: Duration,
    ) -> Result<(BucketWriter, DedupState, Recovery)> {
        let store = Store::open_with(url, &[("timeout", REQUEST_TIMEOUT)])?;
        block_on(store.verify_conditional_writes())?;
        clear(scratch)?;
        let mut w = BucketWriter {
            store,
            scratch: scratch.to_path_buf(),
            owner: owner.to_string(),
            state_version: None,
            lease: None,
            lease_for,
            recovered: false,
        };
        let mut state = DedupState::default();
        let recovery = w.take_turn(&mut state)?;
        w.end_turn(&state)?;
        Ok((w, state, recovery))
    }

    /// The folder commits write into.
    pub fn scratch(&self) -> &Path {
        &self.scratch
    }

    /// Starts a turn: takes the lease and brings `state` up to the bucket's (see the module
    /// docs).
    pub fn take_turn(&mut self, state: &mut DedupState) -> Result<Recovery> {
        // Whatever an earlier turn left here must not be published by this one.
        clear(&self.scratch)?;
        let wait = TURN_WAIT.max(self.lease_for * 3);
        let held = block_on(lease::acquire(&self.store, LEASE_KEY, &self.owner, self.lease_for, wait))?;
        self.lease = Some(held);
        let caught_up = self.catch_up(state);
        if caught_up.is_err() {
            self.abort();
        }
        caught_up
    }

    fn catch_up(&mut self, state: &mut DedupState) -> Result<Recovery> {
        let store = &self.store;
        let (pending, current) =
            block_on(async { Ok((store.get(PENDING_KEY).await?.is_some(), store.get(STATE_KEY).await?)) })?;
        let mut report = Recovery::default();
        match current {
            Some((bytes, version)) => {
                if pending || self.state_version.as_ref() != Some(&version) {
                    *state = DedupState::from_bytes(&bytes).unwrap_or_else(|why| {
                        tracing::warn!(url = %store.url(), "the ingest state is unreadable ({why}); rebuilding it from the lake");
                        report.rebuilt = true;
                        DedupState::default()
                    });
                }
                self.state_version = Some(version);
            }
            None => {
                report.rebuilt = true;
                *state = DedupState::default();
                self.state_version = None;
            }
        }
        if pending || report.rebuilt {
            let (files, rows) = self.fold_above_mark(state)?;
            (report.orphan_files, report.orphan_rows) = (files, rows);
            self.recovered = true;
            if pending {
                tracing::warn!(
                    orphan_files = files,
                    orphan_rows = rows,
                    "a commit stopped half-way; its part objects are folded into the dedup state"
                );
            }
        }
        block_on(store.create(PENDING_KEY, Vec::new()))?;
        Ok(report)
    }

    /// Folds every part object stamped above the state's mark (or not named like a part) into
    /// the state; returns the objects and rows folded.
    fn fold_above_mark(&self, state: &mut DedupState) -> Result<(usize, usize)> {
        let (mut files, mut rows, mut mark) = (0, 0, state.mark_nanos);
        let tmp = self.scratch.join(".recovering.parquet");
        for dataset in recovered_datasets() {
            for listed in block_on(self.store.list(dataset))? {
                let name = listed.key.rsplit('/').next().unwrap_or_default();
                let nanos = lake::part_nanos(name);
                if !name.ends_with(".parquet") || nanos.is_some_and(|n| n <= state.mark_nanos) {
                    continue;
                }
                let Some((bytes, _)) = block_on(self.store.get(&listed.key))? else { continue };
                std::fs::write(&tmp, bytes).with_context(|| format!("writing {}", tmp.display()))?;
                rows += fold_dataset_part(state, dataset, &tmp)
                    .with_context(|| format!("reading {}", listed.key))?;
                files += 1;
                mark = mark.max(nanos.unwrap_or(0));
            }
        }
        let _ = std::fs::remove_file(&tmp);
        state.mark_nanos = mark;
        Ok((files, rows))
    }

    /// Ends a turn whose commit succeeded: publishes the part files, then the state, then
    /// frees the lease (see the module docs). On an error nothing may be acknowledged.
    pub fn end_turn(&mut self, state: &DedupState) -> Result<()> {
        let published = self.publish(state);
        self.abort();
        published
    }

    /// Fails when the lease has less than [`PUBLISH_MARGIN`] left: no request may start then.
    fn check_lease(&self) -> Result<()> {
        let taken = self.lease.as_ref().map(|held| held.taken_at);
        let left = taken.and_then(|at| self.lease_for.checked_sub(at.elapsed()));
        if left.is_none_or(|left| left < PUBLISH_MARGIN.min(self.lease_for / 4)) {
            bail!(
                "{}: the commit outlived its lease ({:?}); it is not acknowledged and comes again",
                self.store.url(),
                self.lease_for
            );
        }
        Ok(())
    }

    fn publish(&mut self, state: &DedupState) -> Result<()> {
        let files = scratch_files(&self.scratch)?;
        let local_state = DedupState::path(&self.scratch);
        let store = &self.store;
        block_on(async {
            for (key, path) in files.iter().filter(|(k, _)| !k.starts_with(&format!("{}/", lake::INGEST_DIR)))
            {
                self.check_lease()?;
                let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
                if !store.create(key, bytes.clone()).await? {
                    let same = store.get(key).await?.is_some_and(|(theirs, _)| theirs == bytes);
                    anyhow::ensure!(same, "{key} in {}: another writer created it", store.url());
                }
            }
            Ok(())
        })?;
        let bytes = if local_state.exists() {
            Some(std::fs::read(&local_state).with_context(|| format!("reading {}", local_state.display()))?)
        } else if self.recovered {
            Some(state.to_bytes()?)
        } else {
            None
        };
        if let Some(bytes) = bytes {
            self.check_lease()?;
            let written = block_on(async {
                match &self.state_version {
                    Some(v) => store.replace_versioned(STATE_KEY, bytes, v).await,
                    None => store.create_versioned(STATE_KEY, bytes).await,
                }
            })?;
            let Some(version) = written else {
                bail!(
                    "{}: another ingest changed the dedup state during this commit (its lease ran out); \
                     the commit is not acknowledged and comes again",
                    store.url()
                )
            };
            self.state_version = Some(version);
        }
        block_on(store.delete(PENDING_KEY))?;
        self.recovered = false;
        Ok(())
    }

    /// Ends a turn without publishing more: empties the scratch folder and frees the lease
    /// (when it is still this writer's). A marker left in the bucket makes the next turn
    /// recover.
    pub fn abort(&mut self) {
        if let Err(e) = clear(&self.scratch) {
            tracing::warn!("emptying the ingest's scratch folder: {e:#}");
        }
        if let Some(held) = self.lease.take()
            && let Err(e) = block_on(lease::release(&self.store, LEASE_KEY, &held))
        {
            tracing::warn!("freeing the ingest lease: {e:#}");
        }
    }
}

/// Empties `dir` (creating it when missing).
fn clear(dir: &Path) -> Result<()> {
    match std::fs::remove_dir_all(dir) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            return Err(e).with_context(|| format!("emptying {}", dir.display()));
        }
        _ => {}
    }
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))
}

/// The files under the scratch folder by key, dot files left out.
fn scratch_files(dir: &Path) -> Result<Vec<(String, PathBuf)>> {
    let mut out = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(d) = pending.pop() {
        for entry in std::fs::read_dir(&d).with_context(|| format!("listing {}", d.display()))? {
            let entry = entry.with_context(|| format!("listing {}", d.display()))?;
            if entry.file_name().to_string_lossy().starts_with('.') {
                continue;
            }
            let path = entry.path();
            if path.is_dir() {
                pending.push(path);
            } else {
                let rel = path.strip_prefix(dir).context("a file in the scratch folder")?;
                let key: Vec<String> =
                    rel.components().map(|c| c.as_os_str().to_string_lossy().into_owned()).collect();
                out.push((key.join("/"), path));
            }
        }
    }
    out.sort();
    Ok(out)
}

#[cfg(test)]
#[path = "bucket_tests.rs"]
mod tests;
