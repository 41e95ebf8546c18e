//! The lake summary behind `GET /lake`, computed once and served until the lake changes: a
//! summary scans every part file, which a dashboard polling every few seconds must not cause.
//!
//! The cache is keyed by a cheap fingerprint of the lake — a hash of the ingest's state file
//! (small, and different after every commit: it holds the last commit's mark) and the
//! modification time and size of each dataset, quarantine and machine folder — and never
//! served older than [`MAX_AGE`] (files an import adds to an
//! existing day folder change no fingerprint). Concurrent requests wait for one computation.

use crate::lake::{self, summary::LakeSummary};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};
use tokio::sync::Mutex;

/// Longest a summary is served without being computed again.
pub const MAX_AGE: Duration = Duration::from_secs(30);

/// One folder's modification time and size.
type Stamp = (PathBuf, Option<SystemTime>, u64);

/// What says the lake changed.
#[derive(PartialEq)]
struct Fingerprint {
    /// Hash of the ingest's state file (0 when there is none).
    ingest_state: u64,
    folders: Vec<Stamp>,
}

struct Entry {
    fingerprint: Fingerprint,
    made: Instant,
    summary: Arc<LakeSummary>,
}

/// A lake summary cached per lake.
pub struct SummaryCache {
    lake: PathBuf,
    entry: Mutex<Option<Entry>>,
}

impl SummaryCache {
    /// An empty cache for the lake at `lake`; the first [`get`](Self::get) computes the summary.
    pub fn new(lake: &Path) -> Self {
        SummaryCache { lake: lake.to_path_buf(), entry: Mutex::new(None) }
    }

    /// The summary, from the cache while the lake looks unchanged and it is fresh enough.
    pub async fn get(&self) -> anyhow::Result<Arc<LakeSummary>> {
        let mut entry = self.entry.lock().await;
        let lake = self.lake.clone();
        let fingerprint = tokio::task::spawn_blocking(move || fingerprint(&lake)).await?;
        if let Some(e) = entry.as_ref().filter(|e| e.fingerprint == fingerprint && e.made.elapsed() < MAX_AGE)
        {
            return Ok(e.summary.clone());
        }
        let lake = self.lake.clone();
        let summary = Arc::new(tokio::task::spawn_blocking(move || lake::summary(&lake)).await??);
        *entry = Some(Entry { fingerprint, made: Instant::now(), summary: summary.clone() });
        Ok(summary)
    }
}

/// The ingest state's hash and the stamps of the quarantine and every dataset and machine
/// folder.
fn fingerprint(lake: &Path) -> Fingerprint {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::hash::DefaultHasher::new();
    std::fs::read(crate::ingest::state::DedupState::path(lake)).unwrap_or_default().hash(&mut hasher);
    let mut paths = vec![lake.join(lake::QUARANTINE_DIR)];
    for dataset in lake::DATASETS {
        let dir = lake.join(dataset);
        paths.extend(lake::machine_dirs(lake, dataset).unwrap_or_default());
        paths.push(dir);
    }
    let folders = paths
        .into_iter()
        .map(|p| {
            let meta = std::fs::metadata(&p).ok();
            let modified = meta.as_ref().and_then(|m| m.modified().ok());
            let len = meta.map_or(0, |m| m.len());
            (p, modified, len)
        })
        .collect();
    Fingerprint { ingest_state: hasher.finish(), folders }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingest::commit::tests::{T0, data_topic, payload, shot};
    use crate::ingest::commit::{Committer, Group};

    #[tokio::test]
    async fn serves_the_cached_summary_until_the_ingest_commits() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (mut c, _) = Committer::open(dir.path()).expect("open");
        let mut g = Group::default();
        g.add(&data_topic("e1"), &payload("e1", vec![shot(1, "M1", &[("a", 1.0)])]), T0);
        c.commit(g).expect("commit");
        let cache = SummaryCache::new(dir.path());
        let first = cache.get().await.expect("summary");
        let again = cache.get().await.expect("summary");
        assert!(Arc::ptr_eq(&first, &again), "an unchanged lake is not scanned again");
        assert_eq!(first.datasets[0].rows, 1);

        // A commit rewrites the ingest's state: the next request sees the new rows.
        let mut g = Group::default();
        g.add(&data_topic("e1"), &payload("e1", vec![shot(2, "M1", &[("a", 1.0)])]), T0);
        c.commit(g).expect("commit");
        let after = cache.get().await.expect("summary");
        assert_eq!(after.datasets[0].rows, 2);
    }
}
