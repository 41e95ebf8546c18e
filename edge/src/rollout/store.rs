//! The model store: a folder holding the bundles this edge knows (`bundles/{sha256}.bundle`,
//! their transport bytes, content-addressed and immutable) and `state.json`, the rollout state
//! of every model key (active, previous and target bundle, phase, reasons, refused bundles), and
//! `baselines/{hash of the key}.json`, the cold-start baseline of each (machine, mould) still
//! learning or judging without a model of its own (docs/mould-lifecycle.md).
//! Every write goes to a temporary file that is synced and renamed over the old one, so a crash
//! leaves either the old or the new version, never a torn one.

use anyhow::{Context, Result};
use moldops_common::fs::write_atomic;
use moldops_scoring::Baseline;
use moldops_shared::bundle::ModelKey;
use moldops_shared::rollout::{BundleRef, RolloutState};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Refused bundles remembered per key (so a retained desired state is not retried forever).
const REFUSED_KEPT: usize = 32;

/// Rollout state of one model key, as persisted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct KeyState {
    pub model_key: ModelKey,
    /// Phase of the rollout of `target`; `None` before any.
    pub state: Option<RolloutState>,
    pub target: Option<BundleRef>,
    pub active: Option<BundleRef>,
    pub previous: Option<BundleRef>,
    pub reason: Option<String>,
    /// sha256 → why it was refused or rolled back.
    #[serde(default)]
    pub refused: BTreeMap<String, String>,
    /// The newest version of this key that was ever active here: an older one is installed
    /// only with a signed rollback statement (`moldops_shared::rollback`).
    #[serde(default)]
    pub newest: u32,
    /// `issued_at_ms` of the last desired state seen for this key (echoed in reports).
    #[serde(default)]
    pub desired_at_ms: i64,
}

impl KeyState {
    pub(crate) fn new(model_key: ModelKey) -> Self {
        KeyState {
            model_key,
            state: None,
            target: None,
            active: None,
            previous: None,
            reason: None,
            refused: BTreeMap::new(),
            newest: 0,
            desired_at_ms: 0,
        }
    }

    /// The newest version ever active (state files from before `newest` count the active one).
    pub(crate) fn newest_version(&self) -> u32 {
        self.newest.max(self.active.as_ref().map_or(0, |a| a.version))
    }

    /// Marks the target refused (`state` is `Rejected` or `RolledBack`).
    pub(crate) fn refuse(&mut self, state: RolloutState, reason: String) {
        if let Some(t) = &self.target {
            if self.refused.len() >= REFUSED_KEPT
                && let Some(first) = self.refused.keys().next().cloned()
            {
                self.refused.remove(&first);
            }
            self.refused.insert(t.sha256.clone(), reason.clone());
        }
        self.state = Some(state);
        self.reason = Some(reason);
    }
}

/// A cold-start baseline as saved: its key and itself.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct SavedBaseline {
    model_key: ModelKey,
    baseline: Baseline,
}

/// Folder of the saved baselines inside the store.
const BASELINES: &str = "baselines";

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct StoreState {
    /// By model key label.
    pub keys: BTreeMap<String, KeyState>,
}

pub(crate) struct Store {
    dir: PathBuf,
    pub state: StoreState,
}

impl Store {
    /// Opens (or creates) the store in `dir` and reads its state.
    pub(crate) fn open(dir: &Path) -> Result<Store> {
        std::fs::create_dir_all(dir.join("bundles"))
            .with_context(|| format!("creating model store {}", dir.display()))?;
        let path = dir.join("state.json");
        let state = match std::fs::read(&path) {
            Ok(bytes) => match serde_json::from_slice(&bytes) {
                Ok(state) => state,
                Err(e) => {
                    // A truncated or corrupt state must not stop the edge: keep it for
                    // forensics and start with no model (polling goes on; the cloud's retained
                    // desired state brings the rollout back).
                    let aside = path
                        .with_extension(format!("json.corrupt-{}", chrono::Utc::now().timestamp_millis()));
                    std::fs::rename(&path, &aside)
                        .with_context(|| format!("moving {} aside", path.display()))?;
                    tracing::error!(state = %path.display(), moved_to = %aside.display(), error = %e,
                        "the model store state is not valid: moved aside, starting with no model");
                    StoreState::default()
                }
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => StoreState::default(),
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        };
        Ok(Store { dir: dir.to_path_buf(), state })
    }

    /// The state of `key`, created empty when new.
    pub(crate) fn key(&mut self, key: &ModelKey) -> &mut KeyState {
        self.state.keys.entry(key.label()).or_insert_with(|| KeyState::new(key.clone()))
    }

    /// Writes `state.json` atomically.
    pub(crate) fn save(&self) -> Result<()> {
        let bytes = serde_json::to_vec_pretty(&self.state)?;
        write_atomic(&self.dir.join("state.json"), &bytes)
    }

    fn bundle_path(&self, sha256: &str) -> PathBuf {
        self.dir.join("bundles").join(format!("{sha256}.bundle"))
    }

    pub(crate) fn has_bundle(&self, sha256: &str) -> bool {
        self.bundle_path(sha256).is_file()
    }

    /// Stores a bundle's transport bytes under their sha256 (atomically).
    pub(crate) fn put_bundle(&self, sha256: &str, bytes: &[u8]) -> Result<()> {
        write_atomic(&self.bundle_path(sha256), bytes)
    }

    pub(crate) fn read_bundle(&self, sha256: &str) -> Result<Vec<u8>> {
        let p = self.bundle_path(sha256);
        std::fs::read(&p).with_context(|| format!("reading stored bundle {}", p.display()))
    }

    fn baseline_path(&self, key: &ModelKey) -> PathBuf {
        let hash = moldops_shared::bundle::sha256_hex(key.label().as_bytes());
        self.dir.join(BASELINES).join(format!("{}.json", &hash[..32]))
    }

    /// Saves the cold-start baseline of `key` (atomically).
    pub(crate) fn put_baseline(&self, key: &ModelKey, baseline: &Baseline) -> Result<()> {
        let saved = SavedBaseline { model_key: key.clone(), baseline: baseline.clone() };
        write_atomic(&self.baseline_path(key), &serde_json::to_vec(&saved)?)
    }

    /// Deletes the saved baseline of `key`, if any.
    pub(crate) fn remove_baseline(&self, key: &ModelKey) {
        let path = self.baseline_path(key);
        if let Err(e) = std::fs::remove_file(&path)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!(file = %path.display(), error = %e, "cannot delete a saved baseline");
        }
    }

    /// The saved baselines, least recently used first. One that does not read back (truncated,
    /// corrupt, not under its key's name) is logged and deleted: its mould learns again.
    pub(crate) fn read_baselines(&self) -> Vec<(ModelKey, Baseline)> {
        let Ok(entries) = std::fs::read_dir(self.dir.join(BASELINES)) else { return Vec::new() };
        let mut out = Vec::new();
        for e in entries.flatten() {
            let path = e.path();
            if path.extension().and_then(|x| x.to_str()) != Some("json") {
                continue; // a temporary file of an interrupted write
            }
            let read = std::fs::read(&path).map_err(anyhow::Error::from).and_then(|bytes| {
                let saved: SavedBaseline = serde_json::from_slice(&bytes)?;
                saved.baseline.check()?;
                anyhow::ensure!(
                    self.baseline_path(&saved.model_key) == path,
                    "saved under another key's name"
                );
                Ok(saved)
            });
            match read {
                Ok(saved) => out.push((saved.model_key, saved.baseline)),
                Err(e) => {
                    tracing::warn!(file = %path.display(), error = %format!("{e:#}"),
                        "a saved cold-start baseline does not read back: deleted, its mould learns again");
                    let _ = std::fs::remove_file(&path);
                }
            }
        }
        out.sort_by_key(|(_, b)| b.last_ts_ms);
        out
    }

    /// Deletes bundles no key refers to any more (active, previous or target).
    pub(crate) fn collect_garbage(&self) {
        let keep: Vec<&str> = self
            .state
            .keys
            .values()
            .flat_map(|k| [&k.active, &k.previous, &k.target])
            .flatten()
            .map(|b| b.sha256.as_str())
            .collect();
        let Ok(entries) = std::fs::read_dir(self.dir.join("bundles")) else { return };
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let sha = name.strip_suffix(".bundle").unwrap_or(&name);
            if !keep.contains(&sha) {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bref(sha: &str) -> BundleRef {
        BundleRef {
            model_id: "m1@1".into(),
            version: 1,
            sha256: sha.into(),
            bytes: 3,
            chunks: 1,
            chunk_bytes: 3,
        }
    }

    #[test]
    fn a_corrupt_state_is_moved_aside_and_the_store_starts_empty() {
        let dir = tempfile::tempdir().expect("tmp");
        std::fs::create_dir_all(dir.path()).expect("mkdir");
        std::fs::write(dir.path().join("state.json"), b"{\"keys\": {\"m1\": {\"trunc").expect("write");
        let s = Store::open(dir.path()).expect("a corrupt state does not stop the edge");
        assert!(s.state.keys.is_empty());
        let aside = std::fs::read_dir(dir.path())
            .expect("ls")
            .flatten()
            .any(|e| e.file_name().to_string_lossy().starts_with("state.json.corrupt-"));
        assert!(aside, "kept for forensics");
    }

    #[test]
    fn baselines_survive_a_reopen_and_a_corrupt_one_starts_learning_again() {
        let dir = tempfile::tempdir().expect("tmp");
        let s = Store::open(dir.path()).expect("open");
        let key = |mold: &str| ModelKey { machine_id: "m1".into(), mold: Some(mold.into()) };
        let mut a = Baseline::new(10);
        a.observe(2_000, &[("Cycle_Time".into(), 10.0)], 4.5);
        let mut b = Baseline::new(10);
        b.observe(1_000, &[("Cycle_Time".into(), 12.0)], 4.5);
        s.put_baseline(&key("A/1"), &a).expect("put");
        s.put_baseline(&key("B"), &b).expect("put");
        s.put_baseline(&key("C"), &b).expect("put");
        // C is torn (a crash mid-write cannot do it, a disk fault can).
        let torn = s.baseline_path(&key("C"));
        let bytes = std::fs::read(&torn).expect("read");
        std::fs::write(&torn, &bytes[..bytes.len() / 2]).expect("truncate");
        let again = Store::open(dir.path()).expect("reopen");
        let read = again.read_baselines();
        assert_eq!(read, [(key("B"), b), (key("A/1"), a)], "least recently used first; C is gone");
        assert!(!torn.exists(), "the corrupt copy is deleted");
        again.remove_baseline(&key("B"));
        again.remove_baseline(&key("B"));
        assert_eq!(again.read_baselines().len(), 1);
    }

    #[test]
    fn state_and_bundles_survive_a_reopen_and_garbage_goes() {
        let dir = tempfile::tempdir().expect("tmp");
        let key = ModelKey { machine_id: "m1".into(), mold: None };
        let mut s = Store::open(dir.path()).expect("open");
        s.put_bundle("aa", b"one").expect("put");
        s.put_bundle("bb", b"two").expect("put");
        let k = s.key(&key);
        k.active = Some(bref("aa"));
        k.target = Some(bref("bb"));
        k.refuse(RolloutState::Rejected, "bad signature".into());
        s.save().expect("save");
        let mut again = Store::open(dir.path()).expect("reopen");
        assert_eq!(again.state, s.state);
        assert_eq!(again.key(&key).refused.get("bb").map(String::as_str), Some("bad signature"));
        again.key(&key).target = None;
        again.collect_garbage();
        assert!(again.has_bundle("aa") && !again.has_bundle("bb"));
        assert_eq!(again.read_bundle("aa").expect("read"), b"one");
    }
}
