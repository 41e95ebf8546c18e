//! A local working copy of a bucket prefix, so that a batch stage written against a folder
//! (polars scans, the registry's files, the ETL's state) runs unchanged on object storage.
//!
//! [`Mirror::open`] brings the folder to the bucket's state, fetching only the objects whose
//! version (ETag) changed since the last pull and removing what the bucket no longer holds; the
//! stage then works on the folder; [`Mirror::push`] publishes what it changed with the storage
//! layer's conditional writes: a new object is created only if its name is still free, a
//! changed one replaced only if it is still at the version pulled, a removed one deleted. Data
//! goes first, the stage's state (keys under a `_` folder: `_etl/`, `_ingest/`, …; the registry's
//! `stages.json`) after it and
//! deletions last, so a crash mid-push leaves orphan data at worst, never state naming data
//! that is not there — the order every stage already keeps on a folder. When another writer
//! changed an object this stage changed too, the push fails (the stage runs again on the new
//! state), except for the JSON documents that writers of disjoint parts share
//! ([`MERGEABLE`]), which take a three-way merge.
//!
//! A stage fails before it pushes, so nothing of a failed stage reaches the bucket. The copy
//! lives under the cache folder (`$MOLDOPS_CACHE_DIR`, else `$XDG_CACHE_HOME/moldops` or
//! `~/.cache/moldops`), one per URL and process at a time (a lock; a second process on the
//! same host takes another slot), and is kept for the next pull. Its manifest
//! (`.moldops-mirror.json`) is checked like any state file: when it is unreadable, the next
//! pull fetches everything again.
//!
//! [`local`] is the process-wide entry the command line uses: a location that is an `s3://`
//! URL becomes its mirror's folder (pulled once per process), any other stays as it is, and
//! [`push_all`] publishes every mirror of the process once its verb succeeded.

use super::{Listed, Store, Version, hex};
use anyhow::{Context, Result, bail};
use futures::StreamExt;
use moldops_common::lock::{LockError, LockFile};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// JSON documents that writers of disjoint parts change at once and that a push merges
/// (three-way, by object member) instead of failing: the ETL's state, where each shard
/// records its own machines.
pub const MERGEABLE: &[&str] = &["_etl/state.json"];

/// Name of the manifest in the mirror's folder.
const MANIFEST: &str = ".moldops-mirror.json";
/// Version of the manifest's format.
const MANIFEST_VERSION: u32 = 1;
/// Objects fetched or written at once.
const PARALLEL: usize = 16;
/// Slots (copies of one URL) a host keeps, one per process at a time.
const SLOTS: usize = 8;

/// What the mirror knows of one object it pulled or pushed.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Entry {
    tag: String,
    object_version: Option<String>,
    /// sha256 of the bytes.
    sha256: String,
    size: u64,
    /// Modification time of the local file when it matched the object (ns since the epoch).
    mtime_ns: u128,
    /// The document as pulled, for the three-way merge of a [`MERGEABLE`] key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    base: Option<serde_json::Value>,
}

/// The mirror's memory between runs.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Manifest {
    version: u32,
    url: String,
    objects: BTreeMap<String, Entry>,
}

/// What a pull moved.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Pulled {
    /// Objects in the bucket.
    pub objects: usize,
    /// Objects fetched (new or changed since the last pull).
    pub fetched: usize,
    /// Bytes fetched.
    pub bytes: u64,
    /// Local files removed (gone from the bucket, or left by a stage that failed).
    pub removed: usize,
}

/// What a push wrote.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Pushed {
    /// Objects created.
    pub created: usize,
    /// Objects replaced.
    pub replaced: usize,
    /// Objects merged with another writer's change.
    pub merged: usize,
    /// Objects deleted.
    pub deleted: usize,
    /// Bytes written.
    pub bytes: u64,
}

/// A local copy of a bucket prefix, held by this process.
#[derive(Debug)]
pub struct Mirror {
    remote: Store,
    folder: PathBuf,
    manifest: Manifest,
    _lock: LockFile,
}

/// One local change a push publishes.
#[derive(Debug)]
enum Change {
    Create { key: String, path: PathBuf },
    Replace { key: String, path: PathBuf, pulled: Entry },
    Delete { key: String },
}

impl Mirror {
    /// Takes a free slot for `remote` under `cache` and pulls it.
    pub async fn open(remote: Store, cache: &Path) -> Result<(Mirror, Pulled)> {
        let name = &hex(remote.url().as_bytes())[..16];
        let mut taken = None;
        for slot in 0..SLOTS {
            let folder = cache.join("mirrors").join(format!("{name}-{slot}"));
            match LockFile::try_acquire(&folder.join(".moldops-mirror.lock"), remote.url()) {
                Ok(lock) => {
                    taken = Some((folder, lock));
                    break;
                }
                Err(LockError::Held { .. }) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        let Some((folder, lock)) = taken else {
            bail!("{}: all {SLOTS} local copies under {} are in use", remote.url(), cache.display())
        };
        let manifest = load_manifest(&folder, remote.url());
        let mut mirror = Mirror { remote, folder, manifest, _lock: lock };
        let pulled = mirror.pull().await?;
        Ok((mirror, pulled))
    }

    /// The local folder.
    pub fn folder(&self) -> &Path {
        &self.folder
    }

    /// Brings the folder to the bucket's state.
    pub async fn pull(&mut self) -> Result<Pulled> {
        let mut listed = self.remote.list("").await?;
        // Lock files an older version published are not data: never fetched.
        listed.retain(|l| !is_own_file(l.key.rsplit('/').next().unwrap_or_default()));
        let mut pulled = Pulled { objects: listed.len(), ..Pulled::default() };
        let local = local_files(&self.folder)?;
        for (key, path) in &local {
            if !listed.iter().any(|l| &l.key == key) {
                remove_file(path)?;
                self.manifest.objects.remove(key);
                pulled.removed += 1;
            }
        }
        let mut fetches = Vec::new();
        for l in &listed {
            if !self.is_current(l, local.get(&l.key)) {
                fetches.push(self.fetch(l));
            }
        }
        let mut fetches = futures::stream::iter(fetches).buffer_unordered(PARALLEL);
        let (mut fetched, mut failed) = (Vec::new(), None);
        while let Some(one) = fetches.next().await {
            match one {
                Ok(f) => fetched.push(f),
                Err(e) => {
                    failed.get_or_insert(e);
                }
            }
        }
        drop(fetches);
        if let Some(e) = failed {
            // What did arrive is known as pulled (not taken for a local change later).
            for (key, entry) in fetched {
                if let Some(entry) = entry {
                    self.manifest.objects.insert(key, entry);
                }
            }
            save_manifest(&self.folder, &self.manifest)?;
            return Err(e);
        }
        let mut vanished = Vec::new();
        for (key, entry) in fetched {
            match entry {
                Some(entry) => {
                    pulled.fetched += 1;
                    pulled.bytes += entry.size;
                    self.manifest.objects.insert(key, entry);
                }
                None => vanished.push(key),
            }
        }
        // Removed by a writer between the listing and the fetch: gone here too.
        for key in &vanished {
            remove_file(&self.folder.join(key))?;
            pulled.removed += 1;
        }
        self.manifest.objects.retain(|k, _| listed.iter().any(|l| &l.key == k) && !vanished.contains(k));
        remove_empty_folders(&self.folder)?;
        save_manifest(&self.folder, &self.manifest)?;
        Ok(pulled)
    }

    /// Whether the local file at `path` still holds the object `listed` as last pulled.
    fn is_current(&self, listed: &Listed, path: Option<&PathBuf>) -> bool {
        let (Some(entry), Some(path)) = (self.manifest.objects.get(&listed.key), path) else { return false };
        entry.tag == listed.version.tag
            && entry.size == listed.size
            && file_stamp(path).ok() == Some((entry.size, entry.mtime_ns))
    }

    /// Fetches one object into the folder; `None` when it was removed since the listing.
    async fn fetch(&self, listed: &Listed) -> Result<(String, Option<Entry>)> {
        let Some((bytes, version)) = self.remote.get(&listed.key).await? else {
            return Ok((listed.key.clone(), None));
        };
        let path = self.folder.join(&listed.key);
        write_local(&path, &bytes)?;
        let entry = self.entry(&listed.key, &path, &bytes, version)?;
        Ok((listed.key.clone(), Some(entry)))
    }

    /// The manifest entry of `key` whose local file at `path` holds `bytes` at `version`.
    fn entry(&self, key: &str, path: &Path, bytes: &[u8], version: Version) -> Result<Entry> {
        self.entry_stamped(key, file_stamp(path)?, bytes, version)
    }

    /// [`Mirror::entry`] with the file's stamp as it was when `bytes` were read from it (a
    /// file that grew since, such as a running task's log, then looks changed again).
    fn entry_stamped(&self, key: &str, stamp: (u64, u128), bytes: &[u8], version: Version) -> Result<Entry> {
        let (size, mtime_ns) = stamp;
        let base = if MERGEABLE.contains(&key) { serde_json::from_slice(bytes).ok() } else { None };
        Ok(Entry {
            tag: version.tag,
            object_version: version.object_version,
            sha256: hex(bytes),
            size,
            mtime_ns,
            base,
        })
    }

    /// Publishes what changed in the folder since the pull (see the module docs for the order
    /// and the conflicts).
    pub async fn push(&mut self) -> Result<Pushed> {
        let changes = self.changes()?;
        let mut pushed = Pushed::default();
        let is_state = |key: &str| {
            key.split('/').any(|seg| seg.starts_with('_'))
                || key.rsplit('/').next() == Some(crate::registry::STATE_FILE)
        };
        let (mut data, mut state, mut deletes) = (Vec::new(), Vec::new(), Vec::new());
        for change in changes {
            match &change {
                Change::Delete { .. } => deletes.push(change),
                Change::Create { key, .. } | Change::Replace { key, .. } if is_state(key) => {
                    state.push(change)
                }
                _ => data.push(change),
            }
        }
        for batch in [data, state] {
            let writes: Vec<_> = batch.into_iter().map(|c| self.write(c)).collect();
            let mut writes = futures::stream::iter(writes).buffer_unordered(PARALLEL);
            let mut done = Vec::new();
            while let Some(one) = writes.next().await {
                done.push(one?);
            }
            drop(writes);
            for (key, entry, how) in done {
                pushed.bytes += entry.size;
                match how {
                    Written::Created => pushed.created += 1,
                    Written::Replaced => pushed.replaced += 1,
                    Written::Merged => pushed.merged += 1,
                }
                self.manifest.objects.insert(key, entry);
            }
            save_manifest(&self.folder, &self.manifest)?;
        }
        // Data goes before the state that names it (a compaction's inputs before its journal).
        deletes.sort_by_key(|c| matches!(c, Change::Delete { key } if is_state(key)));
        for change in deletes {
            if let Change::Delete { key } = change {
                // Only what this stage saw: an object another writer replaced or created again
                // since the pull stays (S3 has no conditional delete; this narrows the window
                // to the time between these two requests).
                let pulled = self.manifest.objects.get(&key).map(|e| e.tag.clone());
                let now = self.remote.head(&key).await?;
                if now.is_some() && now.as_ref().map(|v| &v.tag) != pulled.as_ref() {
                    bail!(
                        "{key} in {}: another writer changed it since this stage read it; not removed, run the stage again",
                        self.remote.url()
                    );
                }
                self.remote.delete(&key).await?;
                self.manifest.objects.remove(&key);
                pushed.deleted += 1;
            }
        }
        save_manifest(&self.folder, &self.manifest)?;
        Ok(pushed)
    }

    /// The folder's changes since the last pull or push.
    fn changes(&self) -> Result<Vec<Change>> {
        let local = local_files(&self.folder)?;
        let mut changes = Vec::new();
        for (key, path) in &local {
            match self.manifest.objects.get(key) {
                None => changes.push(Change::Create { key: key.clone(), path: path.clone() }),
                Some(entry) => {
                    // A state document can be rewritten with the same size within one tick of
                    // the file system's clock: those are always compared by content.
                    if !key.ends_with(".json") && file_stamp(path)? == (entry.size, entry.mtime_ns) {
                        continue;
                    }
                    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
                    if hex(&bytes) != entry.sha256 {
                        changes.push(Change::Replace {
                            key: key.clone(),
                            path: path.clone(),
                            pulled: entry.clone(),
                        });
                    }
                }
            }
        }
        for key in self.manifest.objects.keys() {
            if !local.contains_key(key) {
                changes.push(Change::Delete { key: key.clone() });
            }
        }
        Ok(changes)
    }

    /// Publishes one created or changed file.
    async fn write(&self, change: Change) -> Result<(String, Entry, Written)> {
        let url = self.remote.url();
        match change {
            Change::Create { key, path } => {
                let stamp = file_stamp(&path)?;
                let bytes = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
                if let Some(version) = self.remote.create_versioned(&key, bytes.clone()).await? {
                    return Ok((
                        key.clone(),
                        self.entry_stamped(&key, stamp, &bytes, version)?,
                        Written::Created,
                    ));
                }
                // Taken: fine when it holds these very bytes (a push that ran again); a shared
                // document another writer created first is merged with it.
                match self.remote.get(&key).await? {
                    Some((theirs, version)) if theirs == bytes => {
                        Ok((key.clone(), self.entry_stamped(&key, stamp, &bytes, version)?, Written::Created))
                    }
                    _ if MERGEABLE.contains(&key.as_str()) => self.merge(key, path, &bytes, None).await,
                    _ => bail!(
                        "{key} in {url}: another writer created it since this stage read the store; run the stage again"
                    ),
                }
            }
            Change::Replace { key, path, pulled } => {
                let stamp = file_stamp(&path)?;
                let bytes = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
                let expected =
                    Version { tag: pulled.tag.clone(), object_version: pulled.object_version.clone() };
                if let Some(version) = self.remote.replace_versioned(&key, bytes.clone(), &expected).await? {
                    return Ok((
                        key.clone(),
                        self.entry_stamped(&key, stamp, &bytes, version)?,
                        Written::Replaced,
                    ));
                }
                // Changed since the pull: fine when it holds these very bytes (an earlier push
                // whose answer was lost landed them).
                if let Some((theirs, version)) = self.remote.get(&key).await?
                    && theirs == bytes
                {
                    return Ok((
                        key.clone(),
                        self.entry_stamped(&key, stamp, &bytes, version)?,
                        Written::Replaced,
                    ));
                }
                if !MERGEABLE.contains(&key.as_str()) {
                    bail!(
                        "{key} in {url}: another writer changed it since this stage read it; run the stage again"
                    );
                }
                self.merge(key, path, &bytes, pulled.base).await
            }
            Change::Delete { key } => bail!("{key}: a deletion is not a write"),
        }
    }
}

impl Mirror {
    /// Publishes a [`MERGEABLE`] document that another writer changed too: a three-way merge
    /// of `ours` with the bucket's current one over `base` (as pulled; `None`: it had none),
    /// retried until it lands or the two changed one member differently.
    async fn merge(
        &self,
        key: String,
        path: PathBuf,
        ours: &[u8],
        base: Option<serde_json::Value>,
    ) -> Result<(String, Entry, Written)> {
        let url = self.remote.url();
        let ours: serde_json::Value =
            serde_json::from_slice(ours).with_context(|| format!("{key}: not JSON"))?;
        for _ in 0..super::MAX_UPDATE_TRIES {
            let Some((theirs_bytes, version)) = self.remote.get(&key).await? else {
                bail!("{key} in {url}: removed by another writer while this stage changed it")
            };
            let theirs: serde_json::Value =
                serde_json::from_slice(&theirs_bytes).with_context(|| format!("{key} in {url}: not JSON"))?;
            let Ok(Some(merged)) = merge3(base.as_ref(), Some(&ours), Some(&theirs)) else {
                bail!(
                    "{key} in {url}: this stage and another writer changed the same part of it; run the stage again"
                )
            };
            let merged = serde_json::to_vec_pretty(&merged).context("encoding the merged document")?;
            if let Some(version) = self.remote.replace_versioned(&key, merged.clone(), &version).await? {
                write_local(&path, &merged)?;
                return Ok((key.clone(), self.entry(&key, &path, &merged, version)?, Written::Merged));
            }
        }
        bail!("{key} in {url}: still changed by other writers after {} tries", super::MAX_UPDATE_TRIES)
    }
}

/// How [`Mirror::write`] published a file.
#[derive(Debug, Clone, Copy)]
enum Written {
    Created,
    Replaced,
    Merged,
}

/// Two writers changed one member of a JSON document differently.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Conflict;

/// Three-way merge of JSON values by object member: a side that left a member as it was takes
/// the other side's; members both sides changed merge again when both are objects. `None` is an
/// absent member (`Ok(None)`: absent in the result).
pub fn merge3(
    base: Option<&serde_json::Value>,
    ours: Option<&serde_json::Value>,
    theirs: Option<&serde_json::Value>,
) -> Result<Option<serde_json::Value>, Conflict> {
    use serde_json::Value;
    if ours == base || ours == theirs {
        return Ok(theirs.cloned());
    }
    if theirs == base {
        return Ok(ours.cloned());
    }
    let (Some(Value::Object(o)), Some(Value::Object(t))) = (ours, theirs) else { return Err(Conflict) };
    let b = base.and_then(Value::as_object);
    let keys: std::collections::BTreeSet<&String> =
        o.keys().chain(t.keys()).chain(b.into_iter().flat_map(|b| b.keys())).collect();
    let mut out = serde_json::Map::new();
    for k in keys {
        if let Some(v) = merge3(b.and_then(|b| b.get(k)), o.get(k), t.get(k))? {
            out.insert(k.clone(), v);
        }
    }
    Ok(Some(Value::Object(out)))
}

/// The manifest in `folder` when it is readable and copies `url`, else an empty one (the pull
/// then fetches everything).
fn load_manifest(folder: &Path, url: &str) -> Manifest {
    let fresh = Manifest { version: MANIFEST_VERSION, url: url.to_string(), objects: BTreeMap::new() };
    let path = folder.join(MANIFEST);
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return fresh,
        Err(e) => {
            tracing::warn!("{}: {e}; the copy is fetched again", path.display());
            return fresh;
        }
    };
    match serde_json::from_slice::<Manifest>(&bytes) {
        Ok(m) if m.version == MANIFEST_VERSION && m.url == url => m,
        Ok(_) => {
            tracing::warn!("{}: another version or URL; the copy is fetched again", path.display());
            fresh
        }
        Err(e) => {
            tracing::warn!("{}: unreadable ({e}); the copy is fetched again", path.display());
            fresh
        }
    }
}

fn save_manifest(folder: &Path, manifest: &Manifest) -> Result<()> {
    let json = serde_json::to_vec(manifest).context("encoding the mirror's manifest")?;
    write_local(&folder.join(MANIFEST), &json)
}

/// Writes a file of the copy through a temporary file and a rename (a cache: no fsync; a crash
/// leaves a file whose stamp the manifest does not know, which the next pull fetches again).
fn write_local(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path.parent().context("a file in a folder")?;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let tmp = dir
        .join(format!(".{}.moldops-tmp", path.file_name().map(|n| n.to_string_lossy()).unwrap_or_default()));
    std::fs::write(&tmp, bytes).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))
}

fn remove_file(path: &Path) -> Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(e).with_context(|| format!("removing {}", path.display()))
        }
        _ => Ok(()),
    }
}

/// Size and modification time (ns) of a file.
fn file_stamp(path: &Path) -> Result<(u64, u128)> {
    let meta = std::fs::metadata(path).with_context(|| format!("inspecting {}", path.display()))?;
    let mtime = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos());
    Ok((meta.len(), mtime))
}

/// Whether a file is a process's own, meaningless in a bucket: lock files (`lock`, `*.lock`).
fn is_own_file(name: &str) -> bool {
    name == "lock" || name.ends_with(".lock")
}

/// The files of the copy by key, leaving out every path with a segment that starts with `.`
/// (the manifest, the lock, temporary and lock files of the stages).
fn local_files(folder: &Path) -> Result<BTreeMap<String, PathBuf>> {
    let mut out = BTreeMap::new();
    let mut pending = vec![folder.to_path_buf()];
    while let Some(dir) = pending.pop() {
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e).with_context(|| format!("listing {}", dir.display())),
        };
        for entry in entries {
            let entry = entry.with_context(|| format!("listing {}", dir.display()))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') || name.ends_with(".tmp") || is_own_file(&name) {
                continue;
            }
            let path = entry.path();
            let kind = entry.file_type().with_context(|| format!("inspecting {}", path.display()))?;
            if kind.is_dir() {
                pending.push(path);
            } else if kind.is_file() {
                let rel = path.strip_prefix(folder).context("a file in the copy")?;
                let key: Vec<String> =
                    rel.components().map(|c| c.as_os_str().to_string_lossy().into_owned()).collect();
                out.insert(key.join("/"), path);
            }
        }
    }
    Ok(out)
}

/// Removes the folders a pull emptied (a bucket has no empty folders, and a stage must not find
/// a partition without files).
fn remove_empty_folders(folder: &Path) -> Result<()> {
    fn visit(dir: &Path, top: bool) -> Result<bool> {
        let mut empty = true;
        for entry in std::fs::read_dir(dir).with_context(|| format!("listing {}", dir.display()))? {
            let entry = entry.with_context(|| format!("listing {}", dir.display()))?;
            let is_dir = entry.file_type().is_ok_and(|t| t.is_dir());
            if !(is_dir
                && !entry.file_name().to_string_lossy().starts_with('.')
                && visit(&entry.path(), false)?)
            {
                empty = false;
            }
        }
        if empty && !top {
            std::fs::remove_dir(dir).with_context(|| format!("removing {}", dir.display()))?;
        }
        Ok(empty)
    }
    visit(folder, true).map(drop)
}

/// Environment variable naming the cache folder.
pub const CACHE_ENV: &str = "MOLDOPS_CACHE_DIR";

/// The cache folder: `$MOLDOPS_CACHE_DIR`, else `$XDG_CACHE_HOME/moldops`, else
/// `~/.cache/moldops`, else one under the temporary folder.
pub fn cache_dir() -> PathBuf {
    let env = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty()).map(PathBuf::from);
    env(CACHE_ENV)
        .or_else(|| env("XDG_CACHE_HOME").map(|d| d.join("moldops")))
        .or_else(|| env("HOME").map(|d| d.join(".cache").join("moldops")))
        .unwrap_or_else(|| std::env::temp_dir().join("moldops-cache"))
}

/// Whether a location names a bucket rather than a folder.
pub fn is_remote(location: &Path) -> bool {
    location.to_str().is_some_and(|s| s.starts_with("s3://"))
}

/// The mirrors this process holds, by URL.
static SESSION: Mutex<BTreeMap<String, Mirror>> = Mutex::new(BTreeMap::new());

/// The folder a stage works in for `location`: an `s3://` URL's mirror (pulled the first time
/// this process asks; published by [`push_all`]), a `file://` URL's path, or the path itself.
pub fn local(location: &Path) -> Result<PathBuf> {
    let Some(text) = location.to_str() else { return Ok(location.to_path_buf()) };
    if let Some(path) = text.strip_prefix("file://") {
        return Ok(PathBuf::from(path));
    }
    if !is_remote(location) {
        return Ok(location.to_path_buf());
    }
    let url = text.trim_end_matches('/').to_string();
    let mut session = SESSION.lock().map_err(|_| anyhow::anyhow!("the mirror session was poisoned"))?;
    if let Some(m) = session.get(&url) {
        return Ok(m.folder().to_path_buf());
    }
    let remote = Store::open(&url)?;
    let cache = cache_dir();
    let (mirror, pulled) = super::block_on(async {
        remote.verify_conditional_writes().await?;
        Mirror::open(remote, &cache).await
    })?;
    tracing::info!(
        "{url}: local copy {} ({} objects, {} fetched, {} bytes, {} removed)",
        mirror.folder().display(),
        pulled.objects,
        pulled.fetched,
        pulled.bytes,
        pulled.removed
    );
    let folder = mirror.folder().to_path_buf();
    session.insert(url, mirror);
    Ok(folder)
}

/// Publishes the mirror of `location` this process pulled ([`local`]), if any: for a verb that
/// makes its progress visible while it runs (the pipeline's run records).
pub fn push_one(location: &Path) -> Result<()> {
    let Some(url) = location.to_str().filter(|_| is_remote(location)) else { return Ok(()) };
    let url = url.trim_end_matches('/');
    let mut session = SESSION.lock().map_err(|_| anyhow::anyhow!("the mirror session was poisoned"))?;
    if let Some(mirror) = session.get_mut(url) {
        super::block_on(mirror.push())?;
    }
    Ok(())
}

/// Publishes every mirror this process pulled (see [`Mirror::push`]); nothing when it pulled none.
pub fn push_all() -> Result<()> {
    let mut session = SESSION.lock().map_err(|_| anyhow::anyhow!("the mirror session was poisoned"))?;
    for (url, mirror) in session.iter_mut() {
        let pushed = super::block_on(mirror.push())?;
        tracing::info!(
            "{url}: published {} created, {} replaced, {} merged, {} deleted ({} bytes)",
            pushed.created,
            pushed.replaced,
            pushed.merged,
            pushed.deleted,
            pushed.bytes
        );
    }
    Ok(())
}

#[cfg(test)]
#[path = "mirror_tests.rs"]
mod tests;
