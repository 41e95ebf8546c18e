//! A local copy of a bucket prefix that a long-running server keeps current: the API and the
//! console serve an `s3://` data location from it as they serve a folder.
//!
//! [`Follower::open`] pulls the prefix once ([`Mirror::open`]); [`Follower::run`] pulls again
//! every interval, fetching only what changed. A server that writes (the console's
//! acknowledgements, labels and model changes) does each change through [`Follower::change`]:
//! the change and its publication hold the copy alone, so no pull can overwrite a change not
//! yet published; a change or publication that fails (another writer changed the same object
//! first) returns the copy to the bucket's state and the change fails with the reason.
//!
//! A reader may meet a file the next pull replaces (each one is replaced whole, by a rename) or
//! removes (a compaction's inputs), exactly as on a folder the ingest and the tasks write.

use super::Store;
use super::mirror::{Mirror, Pulled, Pushed, cache_dir, is_remote};
use anyhow::{Context, Result};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::Mutex;

/// Default seconds between pulls.
pub const DEFAULT_REFRESH_S: u64 = 30;

/// A kept-current local copy of one bucket prefix.
#[derive(Debug)]
pub struct Follower {
    mirror: Mutex<Mirror>,
    folder: PathBuf,
    url: String,
    /// Pulls that failed since the start (each logged; the copy stays as it was).
    failed_pulls: AtomicU64,
    /// The copy may hold a change that was not made (its undoing failed): pulled before the
    /// next change.
    dirty: AtomicBool,
}

/// A served data location: a folder as it is, or a bucket through its [`Follower`].
#[derive(Debug, Clone)]
pub enum Served {
    /// A local folder.
    Folder(PathBuf),
    /// A bucket prefix's kept-current copy.
    Bucket(Arc<Follower>),
}

impl Served {
    /// Opens `location`: an `s3://` URL is pulled now (with `writes`, the server's check that
    /// the bucket honours conditional writes first), anything else is served as the folder it
    /// names.
    pub async fn open(location: &Path, writes: bool) -> Result<Served> {
        let text = location.to_string_lossy();
        if !is_remote(location) {
            return Ok(Served::Folder(PathBuf::from(
                text.strip_prefix("file://").unwrap_or(&text).to_string(),
            )));
        }
        Ok(Served::Bucket(Arc::new(Follower::open(text.trim_end_matches('/'), writes).await?)))
    }

    /// The folder to serve from.
    pub fn folder(&self) -> &Path {
        match self {
            Served::Folder(f) => f,
            Served::Bucket(b) => b.folder(),
        }
    }

    /// The follower, for a bucket.
    pub fn follower(&self) -> Option<&Arc<Follower>> {
        match self {
            Served::Folder(_) => None,
            Served::Bucket(b) => Some(b),
        }
    }
}

impl Follower {
    /// Takes a copy of `url` under the cache folder and pulls it.
    pub async fn open(url: &str, writes: bool) -> Result<Follower> {
        Self::open_in(url, &cache_dir(), writes).await
    }

    /// [`Follower::open`] under the cache folder `cache`.
    pub async fn open_in(url: &str, cache: &Path, writes: bool) -> Result<Follower> {
        let remote = Store::open(url)?;
        if writes {
            remote.verify_conditional_writes().await?;
        }
        let (mirror, pulled) = Mirror::open(remote, cache).await?;
        tracing::info!(
            "{url}: serving the local copy {} ({} objects, {} fetched, {} bytes)",
            mirror.folder().display(),
            pulled.objects,
            pulled.fetched,
            pulled.bytes
        );
        let folder = mirror.folder().to_path_buf();
        Ok(Follower {
            mirror: Mutex::new(mirror),
            folder,
            url: url.to_string(),
            failed_pulls: AtomicU64::new(0),
            dirty: AtomicBool::new(false),
        })
    }

    /// The copy's folder.
    pub fn folder(&self) -> &Path {
        &self.folder
    }

    /// Pulls that failed since the start.
    pub fn failed_pulls(&self) -> u64 {
        self.failed_pulls.load(Ordering::Relaxed)
    }

    /// Brings the copy to the bucket's state now.
    pub async fn refresh(&self) -> Result<Pulled> {
        let mut mirror = self.mirror.lock().await;
        let pulled = mirror.pull().await.with_context(|| format!("pulling {}", self.url))?;
        self.dirty.store(false, Ordering::Relaxed);
        Ok(pulled)
    }

    /// Pulls every `every`, for as long as the task runs (the server aborts it when it stops);
    /// a failed pull is logged and counted, and the copy is served as it was until the next
    /// one succeeds.
    pub async fn run(self: Arc<Self>, every: Duration) {
        loop {
            tokio::time::sleep(every).await;
            match self.refresh().await {
                Ok(p) if p.fetched + p.removed > 0 => {
                    tracing::info!(
                        "{}: {} fetched, {} removed ({} bytes)",
                        self.url,
                        p.fetched,
                        p.removed,
                        p.bytes
                    )
                }
                Ok(_) => {}
                Err(e) => {
                    self.failed_pulls.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!("{e:#}; serving the copy as it was");
                }
            }
        }
    }

    /// Runs `change` (which writes into the copy) and publishes what it wrote, holding the
    /// copy alone throughout, to its end even when the caller stops waiting (a write left
    /// half-done and unpublished would be removed by the next pull). When the change fails,
    /// or its publication does, the copy returns to the bucket's state and nothing of it is
    /// made; when even that fails, the copy is brought back before the next change is allowed.
    pub async fn change<T: Send + 'static>(
        self: &Arc<Self>,
        change: impl std::future::Future<Output = Result<T>> + Send + 'static,
    ) -> Result<(T, Pushed), ChangeFailed> {
        let me = self.clone();
        tokio::spawn(async move { me.change_holding(change).await })
            .await
            .map_err(|e| ChangeFailed::Change(anyhow::anyhow!("the change stopped: {e}")))?
    }

    async fn change_holding<T>(
        &self,
        change: impl std::future::Future<Output = Result<T>>,
    ) -> Result<(T, Pushed), ChangeFailed> {
        let mut mirror = self.mirror.lock().await;
        if self.dirty.load(Ordering::Relaxed) {
            mirror.pull().await.map_err(|e| {
                ChangeFailed::Publish(e.context(format!(
                    "{}: the copy still holds a change that was not made and cannot be brought back yet",
                    self.url
                )))
            })?;
            self.dirty.store(false, Ordering::Relaxed);
        }
        let out = match change.await {
            Ok(out) => out,
            Err(e) => {
                self.undo(&mut mirror).await;
                return Err(ChangeFailed::Change(e));
            }
        };
        match mirror.push().await {
            Ok(pushed) => Ok((out, pushed)),
            Err(e) => {
                self.undo(&mut mirror).await;
                Err(ChangeFailed::Publish(e.context(format!("publishing the change to {}", self.url))))
            }
        }
    }

    /// Returns the copy to the bucket's state after a change that is not made.
    async fn undo(&self, mirror: &mut Mirror) {
        if let Err(e) = mirror.pull().await {
            self.dirty.store(true, Ordering::Relaxed);
            tracing::warn!("{}: returning the copy to the bucket's state: {e:#}", self.url);
        }
    }
}

/// Why a change through a [`Follower`] was not made.
#[derive(Debug)]
pub enum ChangeFailed {
    /// The change itself failed.
    Change(anyhow::Error),
    /// It could not be published (another writer changed the same object first, or the bucket
    /// could not be reached).
    Publish(anyhow::Error),
}

impl std::fmt::Display for ChangeFailed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ChangeFailed::Change(e) | ChangeFailed::Publish(e) => write!(f, "{e:#}"),
        }
    }
}

impl std::error::Error for ChangeFailed {}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(bucket: &Path, key: &str, bytes: &[u8]) {
        let path = bucket.join(key);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(path, bytes).expect("write");
    }

    #[tokio::test]
    async fn a_folder_is_served_as_it_is() {
        let dir = tempfile::tempdir().expect("tempdir");
        let url = format!("file://{}", dir.path().display());
        let served = Served::open(Path::new(&url), true).await.expect("folder");
        assert_eq!(served.folder(), dir.path());
        assert!(served.follower().is_none());
    }

    #[tokio::test]
    async fn a_refresh_follows_the_bucket_and_a_change_is_published_or_undone() {
        let (bucket, cache) = (tempfile::tempdir().expect("dir"), tempfile::tempdir().expect("dir"));
        put(bucket.path(), "registry/stages.json", b"{\"v\":1}");
        let url = bucket.path().display().to_string();
        let f = Arc::new(Follower::open_in(&url, cache.path(), true).await.expect("open"));
        let copy = f.folder().join("registry/stages.json");
        assert_eq!(std::fs::read(&copy).expect("copied"), b"{\"v\":1}");

        // Another writer's new object shows up at the next refresh.
        put(bucket.path(), "lake/scores/a.parquet", b"a");
        let pulled = f.refresh().await.expect("refresh");
        assert_eq!((pulled.fetched, pulled.removed), (1, 0));
        assert!(f.folder().join("lake/scores/a.parquet").exists());

        // A change written through the follower lands in the bucket.
        let folder = f.folder().to_path_buf();
        let (_, pushed) = f
            .change(async move {
                put(&folder, "lake/console_actions/b.parquet", b"b");
                Ok(())
            })
            .await
            .expect("published");
        assert_eq!(pushed.created, 1);
        assert_eq!(
            std::fs::read(bucket.path().join("lake/console_actions/b.parquet")).expect("in bucket"),
            b"b"
        );

        // A change that fails half-way publishes nothing and leaves nothing in the copy.
        let folder = f.folder().to_path_buf();
        let failed = f
            .change(async move {
                put(&folder, "lake/console_actions/c.parquet", b"c");
                Err::<(), _>(anyhow::anyhow!("the audit could not be written"))
            })
            .await;
        assert!(matches!(failed, Err(ChangeFailed::Change(_))), "{failed:?}");
        assert!(!bucket.path().join("lake/console_actions/c.parquet").exists());
        assert!(!f.folder().join("lake/console_actions/c.parquet").exists(), "undone in the copy");

        // Another writer changed the document since the pull: the change fails and the copy
        // holds the bucket's version again, not the change that did not land.
        put(bucket.path(), "registry/stages.json", b"{\"v\":2}");
        let target = copy.clone();
        let err = f
            .change(async move {
                std::fs::write(&target, b"{\"v\":3}")?;
                Ok(())
            })
            .await
            .expect_err("a lost race fails the change");
        assert!(matches!(err, ChangeFailed::Publish(_)), "{err:?}");
        assert!(err.to_string().contains("another writer changed it"), "{err}");
        assert_eq!(std::fs::read(&copy).expect("copy"), b"{\"v\":2}");
        assert_eq!(std::fs::read(bucket.path().join("registry/stages.json")).expect("bucket"), b"{\"v\":2}");
    }
}
