//! A lease on one object of a store: one holder at a time among processes on any hosts, taken,
//! renewed and handed back with the store's conditional writes alone (the ingest's commit
//! turns, the lake's compaction on a bucket).
//!
//! The lease object holds its holder and when the lease ends by the holder's clock (for
//! people). It is taken by creating it (`If-None-Match: *`) or by replacing it (`If-Match`)
//! when it is free, already this owner's, or unchanged for longer than a lease lasts plus
//! [`TAKEOVER_GRACE`] — measured on the **taker's own monotonic clock**, so the clocks of
//! different hosts need not agree. A holder renews by replacing its own version (which fails
//! once another process took it over) and frees it by writing it free.

use super::{Store, Version};
use anyhow::{Result, bail};
use serde::{Deserialize, Serialize};
use std::time::{Duration, Instant};

/// A lease is taken over no sooner than this after it has run out by the taker's clock.
pub const TAKEOVER_GRACE: Duration = Duration::from_secs(2);

/// The lease object.
#[derive(Debug, Serialize, Deserialize)]
pub struct Lease {
    /// Who holds it (e.g. client id and process); empty when free.
    pub owner: String,
    /// When it runs out by the holder's clock (UTC ms; for people — takers measure on their
    /// own clock); 0 when free.
    pub expires_ms: i64,
}

/// A lease this process holds.
#[derive(Debug, Clone)]
pub struct Held {
    /// The lease object's version as this holder wrote it.
    pub version: Version,
    /// When it was taken or last renewed, by this process's monotonic clock.
    pub taken_at: Instant,
}

/// A holder's name for `role`, unique to this call: host (a pod's name in Kubernetes), process
/// and a time stamp, since processes in containers share pid numbers and a process may hold
/// two leases it must not confuse.
pub fn owner(role: &str) -> String {
    let host = std::env::var("HOSTNAME").ok().filter(|h| !h.is_empty()).unwrap_or_else(|| "host".into());
    let nanos =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    format!("{role}@{host}:{}:{nanos:x}", std::process::id())
}

fn body(owner: &str, lease_for: Duration) -> Result<Vec<u8>> {
    let expires_ms =
        chrono::Utc::now().timestamp_millis() + i64::try_from(lease_for.as_millis()).unwrap_or(i64::MAX);
    Ok(serde_json::to_vec(&Lease { owner: owner.to_string(), expires_ms })?)
}

/// Waits up to `wait` for the lease at `key` and takes it for `lease_for`.
pub async fn acquire(
    store: &Store,
    key: &str,
    owner: &str,
    lease_for: Duration,
    wait: Duration,
) -> Result<Held> {
    let deadline = Instant::now() + wait;
    let mut holder = String::new();
    // The held lease as first seen: a version unchanged for a whole lease (and the grace) by
    // this clock has run out, whatever the holder's clock says.
    let mut seen: Option<(String, Instant)> = None;
    loop {
        let taken_at = Instant::now();
        let mine = body(owner, lease_for)?;
        let taken = match store.get(key).await? {
            None => store.create_versioned(key, mine).await?,
            Some((bytes, version)) => {
                let lease = serde_json::from_slice::<Lease>(&bytes).ok();
                let free = lease.as_ref().is_some_and(|l| l.owner.is_empty() || l.owner == owner);
                let since = match &seen {
                    Some((tag, at)) if *tag == version.tag => *at,
                    _ => {
                        seen = Some((version.tag.clone(), taken_at));
                        taken_at
                    }
                };
                if free || since.elapsed() >= lease_for + TAKEOVER_GRACE {
                    store.replace_versioned(key, mine, &version).await?
                } else {
                    holder = lease.map_or_else(|| "an unreadable lease".into(), |l| l.owner);
                    None
                }
            }
        };
        if let Some(version) = taken {
            return Ok(Held { version, taken_at });
        }
        if Instant::now() > deadline {
            bail!("{}: {key} is held by {holder} (waited {wait:?})", store.url());
        }
        tokio::time::sleep(Duration::from_millis(20 + u64::from(std::process::id() % 30))).await;
    }
}

/// Extends a lease this process holds by `lease_for` from now; fails when another process took
/// it over meanwhile (the holder must then stop writing).
pub async fn renew(store: &Store, key: &str, owner: &str, lease_for: Duration, held: &Held) -> Result<Held> {
    match try_renew(store, key, owner, lease_for, held).await? {
        Some(held) => Ok(held),
        None => {
            bail!("{}: {key} was taken over by another process (this one outlived its lease)", store.url())
        }
    }
}

/// [`renew`], with `None` when another process took the lease over.
async fn try_renew(
    store: &Store,
    key: &str,
    owner: &str,
    lease_for: Duration,
    held: &Held,
) -> Result<Option<Held>> {
    let taken_at = Instant::now();
    let replaced = store.replace_versioned(key, body(owner, lease_for)?, &held.version).await?;
    Ok(replaced.map(|version| Held { version, taken_at }))
}

/// Frees a lease this process holds (nothing when another process took it over meanwhile).
pub async fn release(store: &Store, key: &str, held: &Held) -> Result<()> {
    let free = serde_json::to_vec(&Lease { owner: String::new(), expires_ms: 0 })?;
    store.replace(key, free, &held.version).await.map(drop)
}

/// A lease renewed by a thread of its own every third of its length until dropped (then
/// freed): for a holder that runs long between checkpoints of its own (a pipeline run).
#[derive(Debug)]
pub struct Keeper {
    stop: Option<std::sync::mpsc::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
    lost: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl Keeper {
    /// Takes the lease at `key` (waiting up to `wait`) and keeps it.
    pub fn take(store: Store, key: &str, owner: &str, lease_for: Duration, wait: Duration) -> Result<Keeper> {
        let mut held = super::block_on(acquire(&store, key, owner, lease_for, wait))?;
        let (stop, stopped) = std::sync::mpsc::channel::<()>();
        let lost = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (key, owner, flag) = (key.to_string(), owner.to_string(), lost.clone());
        let thread = std::thread::Builder::new().name("moldops-lease".into()).spawn(move || {
            use std::sync::mpsc::RecvTimeoutError;
            while let Err(RecvTimeoutError::Timeout) = stopped.recv_timeout(lease_for / 3) {
                match super::block_on(try_renew(&store, &key, &owner, lease_for, &held)) {
                    Ok(Some(h)) => held = h,
                    Ok(None) => {
                        tracing::error!("{}: {key} was taken over by another process", store.url());
                        flag.store(true, std::sync::atomic::Ordering::Relaxed);
                        return;
                    }
                    // The store unreachable: the next renewal tries again.
                    Err(e) => tracing::error!("renewing {key}: {e:#}"),
                }
            }
            if let Err(e) = super::block_on(release(&store, &key, &held)) {
                tracing::warn!("freeing {key}: {e:#}");
            }
        })?;
        Ok(Keeper { stop: Some(stop), thread: Some(thread), lost })
    }

    /// Whether another holder took the lease over (this one must stop writing).
    pub fn lost(&self) -> bool {
        self.lost.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The flag behind [`Keeper::lost`], for a watcher elsewhere.
    pub fn lost_flag(&self) -> std::sync::Arc<std::sync::atomic::AtomicBool> {
        self.lost.clone()
    }
}

impl Drop for Keeper {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Whether the lease document `bytes` says a holder has it now, by this host's clock (for
/// display: clocks of different hosts may differ by a little).
pub fn held_now(bytes: &[u8]) -> bool {
    serde_json::from_slice::<Lease>(bytes)
        .is_ok_and(|l| !l.owner.is_empty() && l.expires_ms > chrono::Utc::now().timestamp_millis())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_kept_lease_is_renewed_and_a_takeover_is_noticed() {
        let bucket = tempfile::tempdir().expect("bucket");
        let store = Store::open(&bucket.path().display().to_string()).expect("store");
        let short = Duration::from_millis(300);
        let kept =
            Keeper::take(store.clone(), "runs/r1/lease.json", "a", short, Duration::ZERO).expect("take");
        let path = bucket.path().join("runs/r1/lease.json");
        let first = std::fs::read(&path).expect("lease");
        let wait_for = |done: &dyn Fn() -> bool| {
            let started = std::time::Instant::now();
            while !done() && started.elapsed() < Duration::from_secs(5) {
                std::thread::sleep(Duration::from_millis(10));
            }
            done()
        };
        assert!(wait_for(&|| std::fs::read(&path).ok() != Some(first.clone())), "the keeper renews it");
        assert!(!kept.lost());
        // Another holder replaces it (as a takeover after a stall would): noticed at the next renewal.
        std::fs::write(&path, br#"{"owner":"b","expires_ms":0}"#).expect("takeover");
        assert!(wait_for(&|| kept.lost()), "the keeper noticed the takeover");
        drop(kept);
        assert!(
            std::fs::read(&path).expect("lease").starts_with(br#"{"owner":"b""#),
            "b's lease is left alone"
        );
    }
}
