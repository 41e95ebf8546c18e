//! A process-wide cache of part files read, for long-running readers such as the console.
//!
//! A part file is written once under a unique name and never changed: compaction and dataset
//! rewrites write new files and remove the old ones. So a frame read from a file can be served
//! again for as long as the file has the same path, size and modification time; a file that
//! changed any of them is read again, and one that vanished is never asked for (the caller
//! lists the folder first). The cache is off until [`enable`] is called, so batch stages that
//! read a dataset once keep their memory; it holds at most the budget given there (by polars'
//! estimate of each frame's size) and evicts the files read least recently first.

use anyhow::Result;
use polars::prelude::DataFrame;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};
use std::time::SystemTime;

/// The cache, once enabled.
static CACHE: OnceLock<Mutex<PartCache>> = OnceLock::new();

/// Turns the cache on for this process with a budget of `max_bytes` (the first call wins).
pub fn enable(max_bytes: usize) {
    let _ = CACHE.set(Mutex::new(PartCache::new(max_bytes)));
}

/// What the cache holds now.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// Part files held.
    pub files: usize,
    /// Their estimated size in bytes.
    pub bytes: usize,
    /// Reads answered from the cache since it was enabled.
    pub hits: u64,
    /// Reads that went to the file.
    pub misses: u64,
}

/// What the cache holds, or `None` when it is off.
pub fn stats() -> Option<CacheStats> {
    let cache = CACHE.get()?.lock().unwrap_or_else(|p| p.into_inner());
    Some(CacheStats {
        files: cache.entries.len(),
        bytes: cache.bytes,
        hits: cache.hits,
        misses: cache.misses,
    })
}

/// Whether the cache holds a frame of `path` (false when it is off).
#[cfg(test)]
pub(crate) fn holds(path: &Path) -> bool {
    CACHE
        .get()
        .is_some_and(|c| c.lock().unwrap_or_else(|p| p.into_inner()).entries.keys().any(|k| k.path == path))
}

/// The frame of `path` without the columns in `skip`: from the cache when it holds this very
/// file, else from `read` (kept for the next time). With the cache off, just `read`.
pub(super) fn read_through(
    path: &Path,
    skip: &[&str],
    read: impl FnOnce() -> Result<DataFrame>,
) -> Result<DataFrame> {
    let Some(cache) = CACHE.get() else { return read() };
    let Some(stamp) = Stamp::of(path) else { return read() };
    let key = Key { path: path.to_path_buf(), skip: skip.iter().map(|s| s.to_string()).collect() };
    if let Some(df) = cache.lock().unwrap_or_else(|p| p.into_inner()).get(&key, stamp) {
        return Ok(df);
    }
    // Read outside the lock: pages read different files at the same time.
    let df = read()?;
    cache.lock().unwrap_or_else(|p| p.into_inner()).put(key, stamp, df.clone());
    Ok(df)
}

/// A file and the columns left out of its frame.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Key {
    path: PathBuf,
    skip: Vec<String>,
}

/// What tells one version of a file from another.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    len: u64,
    modified: Option<SystemTime>,
}

impl Stamp {
    fn of(path: &Path) -> Option<Stamp> {
        let meta = std::fs::metadata(path).ok()?;
        Some(Stamp { len: meta.len(), modified: meta.modified().ok() })
    }
}

struct Entry {
    stamp: Stamp,
    frame: DataFrame,
    bytes: usize,
    used: u64,
}

/// Frames by file, within a byte budget, least recently used out first.
struct PartCache {
    max_bytes: usize,
    bytes: usize,
    clock: u64,
    hits: u64,
    misses: u64,
    entries: HashMap<Key, Entry>,
    /// Keys by last use, oldest first: what eviction takes.
    order: BTreeMap<u64, Key>,
}

impl PartCache {
    fn new(max_bytes: usize) -> PartCache {
        PartCache {
            max_bytes,
            bytes: 0,
            clock: 0,
            hits: 0,
            misses: 0,
            entries: HashMap::new(),
            order: BTreeMap::new(),
        }
    }

    fn get(&mut self, key: &Key, stamp: Stamp) -> Option<DataFrame> {
        self.clock += 1;
        match self.entries.get_mut(key) {
            Some(e) if e.stamp == stamp => {
                self.order.remove(&e.used);
                e.used = self.clock;
                self.order.insert(self.clock, key.clone());
                self.hits += 1;
                Some(e.frame.clone())
            }
            _ => {
                self.misses += 1;
                None
            }
        }
    }

    fn put(&mut self, key: Key, stamp: Stamp, frame: DataFrame) {
        let bytes = frame.estimated_size();
        if bytes > self.max_bytes {
            return;
        }
        self.clock += 1;
        if let Some(old) = self.entries.insert(key.clone(), Entry { stamp, frame, bytes, used: self.clock }) {
            self.bytes -= old.bytes;
            self.order.remove(&old.used);
        }
        self.order.insert(self.clock, key);
        self.bytes += bytes;
        while self.bytes > self.max_bytes {
            let Some((_, oldest)) = self.order.pop_first() else { break };
            if let Some(e) = self.entries.remove(&oldest) {
                self.bytes -= e.bytes;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use polars::prelude::Column;

    fn frame(values: &[i64]) -> DataFrame {
        DataFrame::new(values.len(), vec![Column::new("v".into(), values)]).expect("frame")
    }

    fn key(name: &str) -> Key {
        Key { path: PathBuf::from(name), skip: Vec::new() }
    }

    #[test]
    fn a_changed_file_is_read_again_and_the_least_recently_used_leave_first() {
        let stamp = Stamp { len: 1, modified: None };
        let one = frame(&[1; 100]);
        let size = one.estimated_size();
        let mut c = PartCache::new(2 * size);
        c.put(key("a"), stamp, one.clone());
        assert!(c.get(&key("a"), stamp).is_some_and(|df| df.equals(&one)));
        assert!(c.get(&key("a"), Stamp { len: 2, modified: None }).is_none(), "rewritten: read again");
        c.put(key("b"), stamp, frame(&[2; 100]));
        assert!(c.get(&key("a"), stamp).is_some(), "a used after b");
        c.put(key("c"), stamp, frame(&[3; 100]));
        assert_eq!((c.entries.len(), c.order.len(), c.bytes), (2, 2, 2 * size), "within the budget");
        assert!(c.get(&key("b"), stamp).is_none(), "b, used least recently, left");
        assert!(c.get(&key("a"), stamp).is_some() && c.get(&key("c"), stamp).is_some());
        c.put(key("big"), stamp, frame(&[4; 1000]));
        assert!(c.get(&key("big"), stamp).is_none(), "a frame above the whole budget is not kept");
        assert_eq!((c.hits, c.misses), (4, 3));
    }
}
