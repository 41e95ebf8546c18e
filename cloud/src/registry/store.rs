//! The registry's files: `{root}/{machine}/{all | mold=<mold>}/` per key (names escaped like
//! lake partitions), holding `stages.json`, a `.lock` while a process changes it, and one
//! `v{NNNN}/` folder per version with `version.json`, `report.json` and `bundle/`.

use super::{BUNDLE_DIR, KeyState, RECORD_FILE, REPORT_FILE, STATE_FILE, VersionRecord};
use crate::lake::{escape, write};
use anyhow::{Context, Result, bail};
use moldops_common::lock::LockFile;
use moldops_shared::bundle::{Bundle, ModelKey};
use std::path::{Path, PathBuf};

const LOCK_FILE: &str = ".lock";
const NO_MOLD: &str = "all";

/// Folder of a key.
pub(super) fn key_dir(root: &Path, key: &ModelKey) -> PathBuf {
    let sub = match &key.mold {
        Some(m) => format!("mold={}", escape(m)),
        None => NO_MOLD.to_string(),
    };
    root.join(escape(&key.machine_id)).join(sub)
}

/// Folder of a version.
pub(super) fn version_dir(key_dir: &Path, version: u32) -> PathBuf {
    key_dir.join(format!("v{version:04}"))
}

/// Reads and parses a JSON file, naming it in errors.
pub(super) fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_slice(&bytes).with_context(|| format!("parsing {}", path.display()))
}

/// The key's stages (empty when it has none yet).
pub(super) fn read_state(key_dir: &Path) -> Result<KeyState> {
    let path = key_dir.join(STATE_FILE);
    if !path.exists() {
        return Ok(KeyState::default());
    }
    read_json(&path)
}

/// Replaces the key's stages atomically.
pub(super) fn write_state(key_dir: &Path, state: &KeyState) -> Result<()> {
    let json = serde_json::to_vec_pretty(state).context("encoding stages")?;
    write::write_atomic(&key_dir.join(STATE_FILE), &json)
}

/// One more than the highest version in the state or on disk (a crash may leave a version
/// folder the state does not list; its number is not reused).
pub(super) fn next_version(key_dir: &Path, state: &KeyState) -> Result<u32> {
    let mut top = state.stages.keys().copied().max().unwrap_or(0);
    if key_dir.is_dir() {
        for entry in std::fs::read_dir(key_dir).with_context(|| format!("listing {}", key_dir.display()))? {
            let name = entry?.file_name().to_string_lossy().into_owned();
            if let Some(v) = name.strip_prefix('v').and_then(|n| n.parse::<u32>().ok()) {
                top = top.max(v);
            }
        }
    }
    top.checked_add(1).context("version numbers exhausted")
}

/// Writes a version folder once: into a tmp folder, every file fsynced, then renamed.
pub(super) fn write_version(
    key_dir: &Path,
    version: u32,
    bundle: &Bundle,
    record: &VersionRecord,
    report: Option<&serde_json::Value>,
) -> Result<()> {
    let final_dir = version_dir(key_dir, version);
    if final_dir.exists() {
        bail!("{} exists already", final_dir.display());
    }
    let tmp = key_dir.join(format!(".v{version:04}.tmp"));
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp).with_context(|| format!("removing stale {}", tmp.display()))?;
    }
    let bundle_dir = tmp.join(BUNDLE_DIR);
    std::fs::create_dir_all(&bundle_dir).with_context(|| format!("creating {}", bundle_dir.display()))?;
    for (name, data) in &bundle.files {
        write::write_file(&bundle_dir.join(name), data)?;
    }
    write::sync_dir(&bundle_dir)?;
    let json = serde_json::to_vec_pretty(record).context("encoding the version record")?;
    write::write_file(&tmp.join(RECORD_FILE), &json)?;
    if let Some(r) = report {
        let json = serde_json::to_vec_pretty(r).context("encoding the report")?;
        write::write_file(&tmp.join(REPORT_FILE), &json)?;
    }
    write::sync_dir(&tmp)?;
    std::fs::rename(&tmp, &final_dir).with_context(|| format!("renaming {} into place", tmp.display()))?;
    write::sync_dir(key_dir)
}

/// Every key with a stages file, sorted.
pub(super) fn keys(root: &Path) -> Result<Vec<ModelKey>> {
    let mut out = Vec::new();
    for machine in subdirs(root)? {
        for key in subdirs(&machine)? {
            if key.join(STATE_FILE).is_file() {
                let state: KeyState = read_json(&key.join(STATE_FILE))?;
                if let Some(k) = state.key {
                    out.push(k);
                }
            }
        }
    }
    out.sort();
    Ok(out)
}

fn subdirs(dir: &Path) -> Result<Vec<PathBuf>> {
    if !dir.is_dir() {
        return Ok(Vec::new());
    }
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).with_context(|| format!("listing {}", dir.display()))? {
        let entry = entry?;
        if entry.file_type()?.is_dir() && !entry.file_name().to_string_lossy().starts_with('.') {
            out.push(entry.path());
        }
    }
    out.sort();
    Ok(out)
}

/// An exclusive lock on one key's folder (`.lock`, see `moldops_common::lock`), so that two
/// registrations or promotions of one key never interleave. Released on drop or process death.
pub(super) struct KeyLock {
    _lock: LockFile,
}

impl KeyLock {
    /// Waits up to 30 s for the lock.
    pub(super) fn acquire(key_dir: &Path) -> Result<KeyLock> {
        let what = format!("registry key {}", key_dir.display());
        let lock =
            LockFile::acquire_within(&key_dir.join(LOCK_FILE), &what, std::time::Duration::from_secs(30))?;
        Ok(KeyLock { _lock: lock })
    }
}
