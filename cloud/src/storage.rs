//! Shared state on a folder or an S3-compatible bucket, chosen by URL, with the two conditional
//! writes a commit protocol needs where there is no rename and no lock: **create if absent**
//! and **replace if unchanged** (ETag match). [`Store::update_json`] builds read-modify-write
//! on them, so concurrent writers (ingest replicas, ETL shards, promotions) each see their
//! change land exactly once or retry on the new state.
//!
//! URLs: a path or `file:///…` (a local folder on **one host**: create is a hard link that fails
//! when the name exists, replace a compare-and-swap under a lock file, both fsynced —
//! object_store's local backend neither syncs nor updates conditionally; its temporary files
//! and locks live in `.moldops-store/`, which no key can name), and `s3://bucket/prefix`
//! (AWS S3, MinIO, Ceph RGW, any server that honours `If-None-Match: *` and `If-Match`;
//! endpoint, region and credentials from the usual `AWS_*` environment, path-style requests,
//! plain HTTP allowed when the endpoint is `http://`; [`Store::verify_conditional_writes`]
//! refuses a server that ignores the conditions). Versions are ETags on S3, the sha256 of the
//! bytes locally.
//!
//! Built on it: [`mirror`] (a batch verb's local copy of a bucket prefix, published with those
//! writes), [`follow`] (a server's copy, kept current), [`lease`] (one holder at a time, on
//! any host) and [`object`] (single input files by URL).

use anyhow::{Context, Result, bail};
use object_store::aws::AmazonS3Builder;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload, UpdateVersion};
use serde::Serialize;
use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

pub mod follow;
pub mod lease;
pub mod mirror;
pub mod object;

/// Tries [`Store::update_json`] makes before it gives up (each a re-read after another
/// writer's change landed first).
pub const MAX_UPDATE_TRIES: u32 = 64;

/// Where a [`Store`] keeps its objects.
#[derive(Debug, Clone)]
enum Backend {
    /// A local folder.
    Local { root: PathBuf },
    /// A bucket (and prefix) of an S3-compatible server.
    S3 { store: Arc<dyn ObjectStore>, prefix: ObjectPath },
}

/// A folder or bucket holding shared state.
#[derive(Debug, Clone)]
pub struct Store {
    backend: Backend,
    url: String,
}

/// What a read saw: the version a conditional replace must still find.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Version {
    /// The ETag (S3) or the sha256 of the bytes (local).
    pub tag: String,
    /// The object version, where the server keeps versions.
    pub object_version: Option<String>,
}

impl Store {
    /// Opens the store a URL names: a path or `file://` URL (created when missing), or
    /// `s3://bucket[/prefix]` configured from the `AWS_*` environment.
    pub fn open(url: &str) -> Result<Store> {
        Self::open_with(url, &[])
    }

    /// [`Store::open`] with S3 settings that override the environment's, as object_store names
    /// them (`aws_endpoint`, `aws_access_key_id`, `aws_secret_access_key`, `aws_region`, …).
    pub fn open_with(url: &str, s3_settings: &[(&str, &str)]) -> Result<Store> {
        let backend = if let Some(rest) = url.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            anyhow::ensure!(!bucket.is_empty(), "{url}: no bucket");
            let mut builder = AmazonS3Builder::from_env().with_bucket_name(bucket);
            for (key, value) in s3_settings {
                let key = key.parse().with_context(|| format!("S3 setting {key:?}"))?;
                builder = builder.with_config(key, *value);
            }
            let endpoint = s3_settings
                .iter()
                .find(|(k, _)| {
                    matches!(*k, "aws_endpoint" | "aws_endpoint_url" | "endpoint" | "endpoint_url")
                })
                .map(|(_, v)| v.to_string())
                .or_else(|| std::env::var("AWS_ENDPOINT_URL").ok());
            if let Some(endpoint) = endpoint {
                builder = builder.with_allow_http(endpoint.starts_with("http://")).with_endpoint(endpoint);
            }
            let store = builder.build().with_context(|| format!("opening {url}"))?;
            Backend::S3 { store: Arc::new(store), prefix: ObjectPath::from(prefix.trim_matches('/')) }
        } else {
            let root = PathBuf::from(url.strip_prefix("file://").unwrap_or(url));
            std::fs::create_dir_all(&root).with_context(|| format!("creating {}", root.display()))?;
            Backend::Local { root }
        };
        Ok(Store { backend, url: url.to_string() })
    }

    /// The URL it was opened with.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The object path of `key`: a relative path of at least one segment, none of them
    /// starting with `.` (the local backend keeps its own files under such a name).
    fn path(&self, key: &str) -> Result<ObjectPath> {
        let parsed = ObjectPath::parse(key).with_context(|| format!("object key {key:?}"))?;
        anyhow::ensure!(
            parsed.parts().next().is_some() && parsed.parts().all(|p| !p.as_ref().starts_with('.')),
            "object key {key:?}: empty, or a segment starts with `.`"
        );
        let key = parsed;
        Ok(match &self.backend {
            Backend::S3 { prefix, .. } if !prefix.as_ref().is_empty() => {
                ObjectPath::from_iter(prefix.parts().chain(key.parts()))
            }
            _ => key,
        })
    }

    /// The object at `key` and its version; `None` when there is none.
    pub async fn get(&self, key: &str) -> Result<Option<(Vec<u8>, Version)>> {
        let path = self.path(key)?;
        match &self.backend {
            Backend::Local { root } => {
                let file = root.join(path.as_ref());
                match tokio::fs::read(&file).await {
                    Ok(bytes) => {
                        let tag = hex(&bytes);
                        Ok(Some((bytes, Version { tag, object_version: None })))
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                    Err(e) => Err(e).with_context(|| format!("reading {}", file.display())),
                }
            }
            Backend::S3 { store, .. } => {
                let got = match store.get(&path).await {
                    Ok(got) => got,
                    Err(object_store::Error::NotFound { .. }) => return Ok(None),
                    Err(e) => return Err(e).with_context(|| format!("reading {key} in {}", self.url)),
                };
                let (e_tag, object_version) = (got.meta.e_tag.clone(), got.meta.version.clone());
                let bytes = got.bytes().await.with_context(|| format!("reading {key} in {}", self.url))?;
                let tag = e_tag.with_context(|| format!("{key} in {}: the server gave no ETag", self.url))?;
                Ok(Some((bytes.to_vec(), Version { tag, object_version })))
            }
        }
    }

    /// Writes `bytes` at `key` unless an object is there already; whether it was written.
    pub async fn create(&self, key: &str, bytes: Vec<u8>) -> Result<bool> {
        Ok(self.create_versioned(key, bytes).await?.is_some())
    }

    /// [`Store::create`] that returns the version written (`None`: the name was taken).
    pub async fn create_versioned(&self, key: &str, bytes: Vec<u8>) -> Result<Option<Version>> {
        let path = self.path(key)?;
        match &self.backend {
            Backend::Local { root } => {
                let (root, file) = (root.clone(), root.join(path.as_ref()));
                let version = Version { tag: hex(&bytes), object_version: None };
                let created = tokio::task::spawn_blocking(move || create_local(&root, &file, &bytes))
                    .await
                    .context("the local create stopped")??;
                Ok(created.then_some(version))
            }
            Backend::S3 { store, .. } => {
                let opts = PutOptions { mode: PutMode::Create, ..Default::default() };
                match store.put_opts(&path, PutPayload::from(bytes), opts).await {
                    Ok(put) => Ok(Some(self.written(key, put)?)),
                    Err(
                        object_store::Error::AlreadyExists { .. } | object_store::Error::Precondition { .. },
                    ) => Ok(None),
                    Err(e) => Err(e).with_context(|| format!("creating {key} in {}", self.url)),
                }
            }
        }
    }

    /// Replaces the object at `key` with `bytes` if it is still at `expected`; whether it was
    /// replaced (false: another writer changed it since it was read).
    pub async fn replace(&self, key: &str, bytes: Vec<u8>, expected: &Version) -> Result<bool> {
        Ok(self.replace_versioned(key, bytes, expected).await?.is_some())
    }

    /// [`Store::replace`] that returns the version written (`None`: another writer changed it).
    pub async fn replace_versioned(
        &self,
        key: &str,
        bytes: Vec<u8>,
        expected: &Version,
    ) -> Result<Option<Version>> {
        let path = self.path(key)?;
        match &self.backend {
            Backend::S3 { store, .. } => {
                let version = UpdateVersion {
                    e_tag: Some(expected.tag.clone()),
                    version: expected.object_version.clone(),
                };
                let opts = PutOptions { mode: PutMode::Update(version), ..Default::default() };
                match store.put_opts(&path, PutPayload::from(bytes), opts).await {
                    Ok(put) => Ok(Some(self.written(key, put)?)),
                    Err(object_store::Error::Precondition { .. } | object_store::Error::NotFound { .. }) => {
                        Ok(None)
                    }
                    Err(e) => Err(e).with_context(|| format!("replacing {key} in {}", self.url)),
                }
            }
            Backend::Local { root } => {
                let (root, file) = (root.clone(), root.join(path.as_ref()));
                let version = Version { tag: hex(&bytes), object_version: None };
                let (key, expected) = (key.to_string(), expected.tag.clone());
                let replaced =
                    tokio::task::spawn_blocking(move || replace_local(&root, &key, &file, &bytes, &expected))
                        .await
                        .context("the local replace stopped")??;
                Ok(replaced.then_some(version))
            }
        }
    }

    /// The version of an object the server just stored.
    fn written(&self, key: &str, put: object_store::PutResult) -> Result<Version> {
        let tag = put.e_tag.with_context(|| format!("{key} in {}: the server gave no ETag", self.url))?;
        Ok(Version { tag, object_version: put.version })
    }

    /// Read-modify-write of the JSON document at `key`: `change` gets the current document
    /// (`None` when there is none) and returns the new one, which is written only if no other
    /// writer got there first — else `change` runs again on what that writer left. Returns the
    /// document written. Fails after [`MAX_UPDATE_TRIES`] lost races.
    ///
    /// `change` should be idempotent (add a range, set a stage — not a bare `+= 1`): when a
    /// server stores a conditional write but its answer is lost, the client's retry is refused
    /// by that very write, and `change` then runs again on its own result. Telling that case
    /// from another writer's would need a nonce in every document.
    pub async fn update_json<T, F>(&self, key: &str, mut change: F) -> Result<T>
    where
        T: Serialize + DeserializeOwned,
        F: FnMut(Option<T>) -> Result<T>,
    {
        for attempt in 0..MAX_UPDATE_TRIES {
            let current = self.get(key).await?;
            let (doc, version) = match current {
                Some((bytes, version)) => {
                    let doc: T = serde_json::from_slice(&bytes)
                        .with_context(|| format!("{key} in {} is not the JSON expected", self.url))?;
                    (Some(doc), Some(version))
                }
                None => (None, None),
            };
            let next = change(doc)?;
            let bytes = serde_json::to_vec_pretty(&next).context("encoding the document")?;
            let written = match &version {
                Some(v) => self.replace(key, bytes, v).await?,
                None => self.create(key, bytes).await?,
            };
            if written {
                return Ok(next);
            }
            // Another writer's change landed in between: read it and try again, after a
            // growing, jittered pause so that many writers do not keep colliding.
            let jitter =
                rand_suffix().bytes().fold(0u64, |h, b| h.wrapping_mul(31).wrapping_add(u64::from(b)));
            let pause = u64::from(attempt.min(20)) + jitter % (u64::from(attempt.min(20)) + 2);
            tokio::time::sleep(Duration::from_millis(pause)).await;
        }
        bail!("{key} in {}: still changed by other writers after {MAX_UPDATE_TRIES} tries", self.url)
    }

    /// Every object under `prefix` (a key folder; `""` for all), with its version and size,
    /// sorted by key. Keys are relative to the store (its own prefix removed); the local
    /// backend's internal files and the `_probe/` objects are left out.
    pub async fn list(&self, prefix: &str) -> Result<Vec<Listed>> {
        let mut out = match &self.backend {
            Backend::Local { root } => {
                let root = root.clone();
                let start =
                    if prefix.is_empty() { root.clone() } else { root.join(self.path(prefix)?.as_ref()) };
                tokio::task::spawn_blocking(move || list_local(&root, &start))
                    .await
                    .context("the local listing stopped")??
            }
            Backend::S3 { store, prefix: own } => {
                use futures::TryStreamExt;
                let at = if prefix.is_empty() {
                    (!own.as_ref().is_empty()).then(|| own.clone())
                } else {
                    Some(self.path(prefix)?)
                };
                let metas: Vec<object_store::ObjectMeta> = store
                    .list(at.as_ref())
                    .try_collect()
                    .await
                    .with_context(|| format!("listing {prefix:?} in {}", self.url))?;
                let skip = own.parts().count();
                let mut out = Vec::with_capacity(metas.len());
                for m in metas {
                    let parts: Vec<String> =
                        m.location.parts().skip(skip).map(|p| p.as_ref().to_string()).collect();
                    // Objects other tools leave (`.DS_Store`, `.crc` files) are not ours: keys
                    // with a segment starting with `.` are refused by [`Store::path`].
                    if parts.iter().any(|p| p.starts_with('.')) {
                        continue;
                    }
                    let key = parts.join("/");
                    let tag =
                        m.e_tag.with_context(|| format!("{key} in {}: the server gave no ETag", self.url))?;
                    out.push(Listed {
                        key,
                        version: Version { tag, object_version: m.version },
                        size: m.size,
                    });
                }
                out
            }
        };
        out.retain(|l| !l.key.starts_with("_probe/"));
        out.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(out)
    }

    /// The version of the object at `key` without its bytes; `None` when there is none.
    pub async fn head(&self, key: &str) -> Result<Option<Version>> {
        let path = self.path(key)?;
        match &self.backend {
            Backend::Local { .. } => Ok(self.get(key).await?.map(|(_, v)| v)),
            Backend::S3 { store, .. } => match store.head(&path).await {
                Ok(meta) => {
                    let tag = meta
                        .e_tag
                        .with_context(|| format!("{key} in {}: the server gave no ETag", self.url))?;
                    Ok(Some(Version { tag, object_version: meta.version }))
                }
                Err(object_store::Error::NotFound { .. }) => Ok(None),
                Err(e) => Err(e).with_context(|| format!("inspecting {key} in {}", self.url)),
            },
        }
    }

    /// The size in bytes of the object at `key`; `None` when there is none.
    pub async fn size(&self, key: &str) -> Result<Option<u64>> {
        let path = self.path(key)?;
        match &self.backend {
            Backend::Local { root } => match std::fs::metadata(root.join(path.as_ref())) {
                Ok(meta) => Ok(Some(meta.len())),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(e).with_context(|| format!("inspecting {key} in {}", self.url)),
            },
            Backend::S3 { store, .. } => match store.head(&path).await {
                Ok(meta) => Ok(Some(meta.size)),
                Err(object_store::Error::NotFound { .. }) => Ok(None),
                Err(e) => Err(e).with_context(|| format!("inspecting {key} in {}", self.url)),
            },
        }
    }

    /// Removes the object at `key` (nothing when there is none).
    pub async fn delete(&self, key: &str) -> Result<()> {
        let path = self.path(key)?;
        match &self.backend {
            Backend::Local { root } => match std::fs::remove_file(root.join(path.as_ref())) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    Err(e).with_context(|| format!("removing {key} in {}", self.url))
                }
                _ => Ok(()),
            },
            Backend::S3 { store, .. } => match store.delete(&path).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
                Err(e) => Err(e).with_context(|| format!("removing {key} in {}", self.url)),
            },
        }
    }

    /// Checks that the server honours conditional writes (S3 servers that ignore `If-Match`
    /// or `If-None-Match` would let every writer win): a second create of one probe object and
    /// a replace with a made-up ETag must both be refused. Call it once before relying on the
    /// store; a local folder always passes. The probe object (under `_probe/`) is removed
    /// again.
    pub async fn verify_conditional_writes(&self) -> Result<()> {
        let key = format!("_probe/{}", rand_suffix());
        anyhow::ensure!(self.create(&key, b"1".to_vec()).await?, "{}: cannot create {key}", self.url);
        anyhow::ensure!(
            !self.create(&key, b"2".to_vec()).await?,
            "{}: the server ignores If-None-Match (a second create of {key} succeeded): not safe for \
             concurrent writers",
            self.url
        );
        let made_up = Version { tag: "\"moldops-made-up-etag\"".into(), object_version: None };
        anyhow::ensure!(
            !self.replace(&key, b"3".to_vec(), &made_up).await?,
            "{}: the server ignores If-Match (a replace with a made-up ETag succeeded): not safe for \
             concurrent writers",
            self.url
        );
        self.delete(&key).await
    }
}

/// One object of a listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    /// Its key, relative to the store.
    pub key: String,
    /// Its version.
    pub version: Version,
    /// Its size in bytes.
    pub size: u64,
}

/// Runs a storage future to its end from synchronous code (the ETL, the registry, the ingest's
/// commits), on a thread of its own, so that a caller already inside an async runtime is not
/// blocked, and on one runtime for the whole process: the S3 client's pooled connections are
/// driven by tasks of the runtime that opened them, which must outlive each call.
pub fn block_on<T: Send>(work: impl std::future::Future<Output = Result<T>> + Send) -> Result<T> {
    static RUNTIME: std::sync::OnceLock<std::io::Result<tokio::runtime::Runtime>> =
        std::sync::OnceLock::new();
    let rt = RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("moldops-storage")
            .enable_all()
            .build()
    });
    let rt = rt.as_ref().map_err(|e| anyhow::anyhow!("starting the storage runtime: {e}"))?;
    std::thread::scope(|s| {
        s.spawn(|| rt.block_on(work)).join().map_err(|_| anyhow::anyhow!("the storage thread panicked"))?
    })
}

/// Folder of the local backend's own files (temporary files, locks), inside the root: keys
/// cannot name it (no key segment starts with `.`).
const LOCAL_INTERNAL: &str = ".moldops-store";

/// Creates `dir` (under `root`) and the folders above it that are missing, fsyncing each new
/// folder's parent, so that a crash cannot lose a folder an object was created in.
fn create_dirs_synced(root: &std::path::Path, dir: &std::path::Path) -> Result<()> {
    let mut missing = Vec::new();
    let mut at = dir;
    while !at.exists() && at.starts_with(root) && at != root {
        missing.push(at.to_path_buf());
        at = at.parent().context("a folder under the root")?;
    }
    for d in missing.iter().rev() {
        match std::fs::create_dir(d) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e).with_context(|| format!("creating {}", d.display())),
        }
        if let Some(parent) = d.parent() {
            moldops_common::fs::sync_dir(parent)?;
        }
    }
    Ok(())
}

/// Writes `bytes` to a new fsynced temporary file in the root's internal folder.
fn write_temp(root: &std::path::Path, bytes: &[u8]) -> Result<PathBuf> {
    use std::io::Write as _;
    let dir = root.join(LOCAL_INTERNAL).join("tmp");
    create_dirs_synced(root, &dir)?;
    let tmp = dir.join(rand_suffix());
    let mut f = std::fs::File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
    f.write_all(bytes).and_then(|()| f.sync_all()).with_context(|| format!("writing {}", tmp.display()))?;
    Ok(tmp)
}

/// Creates a local file only if the name is free: the bytes go to a temporary file (fsynced),
/// which is then hard-linked to the name — a link fails when the name exists, so of two
/// creators exactly one wins — and the folder is fsynced. One host only: `link` over NFS may
/// report a retransmitted success as a failure.
fn create_local(root: &std::path::Path, file: &std::path::Path, bytes: &[u8]) -> Result<bool> {
    let dir = file.parent().context("an object key names a file")?;
    create_dirs_synced(root, dir)?;
    let tmp = write_temp(root, bytes)?;
    let linked = std::fs::hard_link(&tmp, file);
    let _ = std::fs::remove_file(&tmp);
    match linked {
        Ok(()) => {
            moldops_common::fs::sync_dir(dir)?;
            Ok(true)
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(e).with_context(|| format!("creating {}", file.display())),
    }
}

/// The files under `start` (inside `root`) as listed objects, leaving out every path with a
/// segment that starts with `.` (the internal folder, dot files of other tools).
fn list_local(root: &std::path::Path, start: &std::path::Path) -> Result<Vec<Listed>> {
    let mut out = Vec::new();
    let mut pending = vec![start.to_path_buf()];
    while let Some(dir) = pending.pop() {
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e).with_context(|| format!("listing {}", dir.display())),
        };
        for entry in entries {
            let entry = entry.with_context(|| format!("listing {}", dir.display()))?;
            let path = entry.path();
            if entry.file_name().to_string_lossy().starts_with('.') {
                continue;
            }
            let kind = entry.file_type().with_context(|| format!("inspecting {}", path.display()))?;
            if kind.is_dir() {
                pending.push(path);
            } else if kind.is_file() {
                let rel = path.strip_prefix(root).context("a file under the root")?;
                let key =
                    rel.components().map(|c| c.as_os_str().to_string_lossy()).collect::<Vec<_>>().join("/");
                let bytes = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
                let version = Version { tag: hex(&bytes), object_version: None };
                out.push(Listed { key, version, size: bytes.len() as u64 });
            }
        }
    }
    Ok(out)
}

/// A suffix that no other writer of this process or another uses at the same moment.
fn rand_suffix() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    format!("{}-{nanos}-{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed))
}

/// Compare-and-swap of a local file under a lock in the root's internal folder (one per key,
/// named by the key's hash): writes `bytes` (temporary file, fsync, rename, folder fsync) only
/// if the file's sha256 is still `expected`. Readers take no lock: a rename is atomic.
fn replace_local(
    root: &std::path::Path,
    key: &str,
    file: &std::path::Path,
    bytes: &[u8],
    expected: &str,
) -> Result<bool> {
    let locks = root.join(LOCAL_INTERNAL).join("locks");
    create_dirs_synced(root, &locks)?;
    let _held = moldops_common::lock::LockFile::acquire_within(
        &locks.join(format!("{}.lock", hex(key.as_bytes()))),
        &format!("{} (another writer is replacing it)", file.display()),
        Duration::from_secs(60),
    )?;
    let current = match std::fs::read(file) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(e).with_context(|| format!("reading {}", file.display())),
    };
    if hex(&current) != expected {
        return Ok(false);
    }
    let tmp = write_temp(root, bytes)?;
    std::fs::rename(&tmp, file).with_context(|| format!("replacing {}", file.display()))?;
    moldops_common::fs::sync_dir(file.parent().context("an object key names a file")?)?;
    Ok(true)
}

/// The sha256 of `bytes` in hex: the local backend's version of an object.
pub fn hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}
