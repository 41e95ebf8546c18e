//! The model registry: every trained model version per model key (machine, optionally mold),
//! its signed bundle, metrics and lineage, and its stage — `candidate`, `production` or
//! `archived` — on disk under one folder (default `moldops-data/registry/`).
//!
//! Rules: a new version enters as a candidate; at most one production version per key;
//! [`Registry::promote`] makes a candidate or archived version production and archives the
//! previous production (so re-promoting an archived version is the rollback);
//! [`Registry::archive`] takes a candidate or production version out. Version folders are
//! written once (tmp folder, fsync, rename); the stage file is replaced atomically under a
//! per-key lock, with every transition kept in its history.
//!
//! Promotion by `models promote` passes the [`gate`] first (held-out data, false alarms, not
//! worse than production on the same held-out shots); its decision is kept per version in the
//! key's state ([`Registry::promote_gated`], [`Registry::record_gate`]).
//!
//! For the rollout: [`Registry::open`] then [`Registry::production`] (version, bundle folder,
//! manifest) or [`Registry::bundle_bytes`] (the transport form of a version's bundle).

pub mod cli;
pub mod compare;
pub mod gate;
pub mod keys;
pub mod promote;
mod store;

use anyhow::{Context, Result, bail};
use gate::{GateRecord, Outcome};
use moldops_shared::bundle::{Bundle, Manifest, ModelKey};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use store::KeyLock;

/// Folder of a version's bundle, inside the version folder.
pub const BUNDLE_DIR: &str = "bundle";
/// The immutable record of a version, inside the version folder.
pub const RECORD_FILE: &str = "version.json";
/// The training report of a version, inside the version folder.
pub const REPORT_FILE: &str = "report.json";
/// Stages and history of a key, inside the key folder.
pub const STATE_FILE: &str = "stages.json";

/// Where a version stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    /// Registered by `train`, not serving yet; may be promoted or archived.
    Candidate,
    /// The version the rollout ships for its key; at most one per key.
    Production,
    /// Out of service (replaced or archived); re-promoting it is the rollback.
    Archived,
}

impl std::fmt::Display for Stage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Stage::Candidate => "candidate",
            Stage::Production => "production",
            Stage::Archived => "archived",
        })
    }
}

/// Where a model came from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Lineage {
    /// sha256 over the etl_data files used (see `train::snapshot`).
    pub data_snapshot: String,
    /// Those files, relative to the lake.
    pub data_files: Vec<String>,
    /// Training parameters (architecture, optimiser, windows, split, seed).
    pub params: serde_json::Value,
    /// `moldops-cloud` version and git description at build time.
    pub code_version: String,
    /// Where the networks trained: `cpu`, or the GPU's description (`train --device`). Absent
    /// in versions registered before it was recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device: Option<String>,
}

/// The immutable record of one version (`version.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VersionRecord {
    /// Model key the version belongs to.
    pub key: ModelKey,
    /// Version number within the key: 1, 2, …, never reused.
    pub version: u32,
    /// Model architecture from the manifest (`lstm_ae` for what `train` registers).
    pub kind: String,
    /// When the model was built, from the manifest (RFC 3339, UTC).
    pub created_at: String,
    /// Anomaly-score alarm threshold, from the manifest (a shot alarms when `score > threshold`).
    pub threshold: f32,
    /// Test metrics as free JSON (`train`: `roc_auc`, `pr_auc`, `f1`, `precision`, `recall`, …).
    pub metrics: serde_json::Value,
    /// Data, parameters and code the model was trained from.
    pub lineage: Lineage,
    /// Hex public key whose private half signed the bundle.
    pub signed_by: String,
}

/// A change of stage.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Transition {
    /// When it happened (RFC 3339, UTC, milliseconds).
    pub at: String,
    /// Version whose stage changed.
    pub version: u32,
    /// Stage before; `None` when the version was registered.
    pub from: Option<Stage>,
    /// Stage after.
    pub to: Stage,
    /// Why, in words: `registered by train`, `promoted`, `promoted (gate passed)`,
    /// `promoted with --force (gate not applied)`, `replaced by version N`,
    /// `rollback: re-promoted` or `archived`.
    pub reason: String,
}

/// Stages and history of one key (`stages.json`).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct KeyState {
    /// The key; `None` only in the empty state of a key without versions.
    pub key: Option<ModelKey>,
    /// Current stage of every version, by version number.
    pub stages: BTreeMap<u32, Stage>,
    /// Every transition, oldest first.
    pub history: Vec<Transition>,
    /// The last gate decision on each version that went through the gate, by version number.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub gate: BTreeMap<u32, GateRecord>,
}

impl KeyState {
    /// The production version, if any.
    pub fn production(&self) -> Option<u32> {
        self.stages.iter().find(|(_, s)| **s == Stage::Production).map(|(v, _)| *v)
    }
}

/// One version with its stage and where its bundle lies.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VersionInfo {
    /// The version's record (`version.json`), serialised inline.
    #[serde(flatten)]
    pub record: VersionRecord,
    /// Current stage.
    pub stage: Stage,
    /// Folder holding the version's bundle (`manifest.json`, `manifest.sig`, `model.onnx`).
    pub bundle_dir: PathBuf,
    /// The last gate decision on the version, if it went through the gate.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gate: Option<GateRecord>,
}

/// The production version of a key, for the rollout.
#[derive(Debug, Clone, PartialEq)]
pub struct Production {
    /// The production version number.
    pub version: u32,
    /// Folder holding `manifest.json`, `manifest.sig` and `model.onnx`.
    pub bundle_dir: PathBuf,
    /// The bundle's manifest (checked against the recorded signing key).
    pub manifest: Manifest,
}

/// What `train` hands the registry for a new version.
#[derive(Debug, Clone)]
pub struct NewVersion {
    /// Manifest to seal; `version` and `model_id` are set by [`Registry::register`].
    pub manifest: Manifest,
    /// Files of the bundle besides the manifest and signature (normally `model.onnx`).
    pub files: BTreeMap<String, Vec<u8>>,
    /// Test metrics as free JSON, kept in the version record.
    pub metrics: serde_json::Value,
    /// Where the model came from, kept in the version record.
    pub lineage: Lineage,
    /// The training report, kept beside the bundle (not in it).
    pub report: Option<serde_json::Value>,
}

/// A registry folder.
#[derive(Debug, Clone)]
pub struct Registry {
    root: PathBuf,
}

/// UTC now, RFC 3339 with milliseconds.
pub fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

impl Registry {
    /// Opens (and creates when missing) the registry folder `dir`.
    pub fn open(dir: &Path) -> Result<Registry> {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("creating registry folder {}", dir.display()))?;
        Ok(Registry { root: dir.to_path_buf() })
    }

    /// Opens the registry folder `dir` for reading; a missing folder is an error, not created
    /// (a page or a read must not write).
    pub fn open_existing(dir: &Path) -> Result<Registry> {
        if !dir.is_dir() {
            anyhow::bail!("no model registry at {}", dir.display());
        }
        Ok(Registry { root: dir.to_path_buf() })
    }

    /// The training report kept beside a version's bundle (`report.json`), when it has one.
    pub fn report(&self, key: &ModelKey, version: u32) -> Result<Option<serde_json::Value>> {
        /// Larger than any report `train` writes; a bigger file is not ours.
        const MAX_REPORT_BYTES: u64 = 64 << 20;
        let info = self.version(key, version)?;
        let Some(path) = info.bundle_dir.parent().map(|d| d.join(REPORT_FILE)) else { return Ok(None) };
        let len = match std::fs::metadata(&path) {
            Ok(m) => m.len(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(anyhow::Error::from(e).context(format!("reading {}", path.display()))),
        };
        if len > MAX_REPORT_BYTES {
            anyhow::bail!("{} is {len} bytes, more than {MAX_REPORT_BYTES}", path.display());
        }
        let bytes = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
        Ok(Some(serde_json::from_slice(&bytes).with_context(|| format!("parsing {}", path.display()))?))
    }

    /// The registry folder.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Every key with at least one version, sorted.
    pub fn keys(&self) -> Result<Vec<ModelKey>> {
        store::keys(&self.root)
    }

    /// Stages and history of `key` (empty when unknown).
    pub fn state(&self, key: &ModelKey) -> Result<KeyState> {
        store::read_state(&store::key_dir(&self.root, key))
    }

    /// Every version of `key`, oldest first.
    pub fn versions(&self, key: &ModelKey) -> Result<Vec<VersionInfo>> {
        let dir = store::key_dir(&self.root, key);
        let state = store::read_state(&dir)?;
        let mut out = Vec::new();
        for v in state.stages.keys() {
            out.push(self.info(&dir, *v, &state)?);
        }
        Ok(out)
    }

    /// One version of `key`.
    pub fn version(&self, key: &ModelKey, version: u32) -> Result<VersionInfo> {
        let dir = store::key_dir(&self.root, key);
        let state = store::read_state(&dir)?;
        if !state.stages.contains_key(&version) {
            bail!("{} has no version {version} in {}", key.label(), self.root.display())
        }
        self.info(&dir, version, &state)
    }

    /// `version`'s record, stage and gate decision; `version` must be in `state`.
    fn info(&self, key_dir: &Path, version: u32, state: &KeyState) -> Result<VersionInfo> {
        let Some(&stage) = state.stages.get(&version) else { bail!("no version {version}") };
        let vdir = store::version_dir(key_dir, version);
        let record: VersionRecord = store::read_json(&vdir.join(RECORD_FILE))?;
        let gate = state.gate.get(&version).cloned();
        Ok(VersionInfo { record, stage, bundle_dir: vdir.join(BUNDLE_DIR), gate })
    }

    /// The production version of `key`, its bundle folder and manifest; `None` when the key
    /// has none. Fails when the bundle does not verify against the key that signed it.
    pub fn production(&self, key: &ModelKey) -> Result<Option<Production>> {
        let Some(version) = self.state(key)?.production() else { return Ok(None) };
        let info = self.version(key, version)?;
        let manifest = verify_info(&info)?;
        Ok(Some(Production { version, bundle_dir: info.bundle_dir, manifest }))
    }

    /// The bundle of a version in transport form ([`Bundle::to_bytes`]), verified first
    /// against the key that signed it.
    pub fn bundle_bytes(&self, key: &ModelKey, version: u32) -> Result<Vec<u8>> {
        let info = self.version(key, version)?;
        verify_info(&info)?;
        let bundle = Bundle::read_dir(&info.bundle_dir)
            .with_context(|| format!("reading bundle {}", info.bundle_dir.display()))?;
        Ok(bundle.to_bytes())
    }

    /// Seals `new` with `signing_seed` as the next version of its key and registers it as a
    /// candidate. Returns the version.
    pub fn register(&self, mut new: NewVersion, signing_seed: &[u8; 32]) -> Result<VersionInfo> {
        let key = new.manifest.model_key.clone();
        let dir = store::key_dir(&self.root, &key);
        let _lock = KeyLock::acquire(&dir)?;
        let mut state = store::read_state(&dir)?;
        let version = store::next_version(&dir, &state)?;
        new.manifest.version = version;
        new.manifest.model_id = format!("{}@{version}", key.label());
        let public = hex::encode(moldops_shared::bundle::public_key(signing_seed));
        let record = VersionRecord {
            key: key.clone(),
            version,
            kind: new.manifest.kind.clone(),
            created_at: new.manifest.created_at.clone(),
            threshold: new.manifest.threshold,
            metrics: new.metrics,
            lineage: new.lineage,
            signed_by: public,
        };
        let bundle = Bundle::seal(new.manifest, new.files, signing_seed).context("sealing the bundle")?;
        store::write_version(&dir, version, &bundle, &record, new.report.as_ref())?;
        state.key = Some(key);
        state.stages.insert(version, Stage::Candidate);
        state.history.push(Transition {
            at: now_rfc3339(),
            version,
            from: None,
            to: Stage::Candidate,
            reason: "registered by train".into(),
        });
        store::write_state(&dir, &state)?;
        self.info(&dir, version, &state)
    }

    /// Makes `version` production (from candidate or archived); the previous production is
    /// archived. Verifies the bundle first. Returns the transitions made.
    pub fn promote(&self, key: &ModelKey, version: u32) -> Result<Vec<Transition>> {
        self.promote_with(key, version, None)
    }

    /// Promotes `version` as [`Registry::promote`] does, after the gate passed it
    /// ([`Outcome::Passed`]) or a person forced it ([`Outcome::Forced`]), and keeps `record` as
    /// its gate decision. A passed record must name the production version the key still has
    /// (else the gate judged against another one: run it again); a forced one gets the current
    /// production filled in.
    pub fn promote_gated(&self, key: &ModelKey, version: u32, record: GateRecord) -> Result<Vec<Transition>> {
        if record.outcome == Outcome::Refused {
            bail!("{}@{version} was refused by the gate; it stays a candidate", key.label());
        }
        self.promote_with(key, version, Some(record))
    }

    /// Keeps `record` as `record.version`'s gate decision without changing any stage (a
    /// refusal: the version stays a candidate).
    pub fn record_gate(&self, key: &ModelKey, record: GateRecord) -> Result<()> {
        let dir = store::key_dir(&self.root, key);
        let _lock = KeyLock::acquire(&dir)?;
        let mut state = store::read_state(&dir)?;
        if !state.stages.contains_key(&record.version) {
            bail!("{} has no version {}", key.label(), record.version);
        }
        state.gate.insert(record.version, record);
        store::write_state(&dir, &state)
    }

    fn promote_with(
        &self,
        key: &ModelKey,
        version: u32,
        gate: Option<GateRecord>,
    ) -> Result<Vec<Transition>> {
        let dir = store::key_dir(&self.root, key);
        let _lock = KeyLock::acquire(&dir)?;
        let mut state = store::read_state(&dir)?;
        let Some(&stage) = state.stages.get(&version) else {
            bail!("{} has no version {version}", key.label())
        };
        if stage == Stage::Production {
            bail!("{}@{version} is already production", key.label());
        }
        verify_info(&self.info(&dir, version, &state)?)
            .with_context(|| format!("refusing to promote {}@{version}", key.label()))?;
        let mut reason =
            if stage == Stage::Archived { "rollback: re-promoted" } else { "promoted" }.to_string();
        if let Some(mut record) = gate {
            let now = state.production();
            match record.outcome {
                Outcome::Forced => {
                    record.production = now;
                    reason = format!("{reason} with --force (gate not applied)");
                }
                _ if record.production != now => bail!(
                    "the production version of {} changed ({} → {}) while the gate judged                      version {version}; run promote again",
                    key.label(),
                    record.production.map_or("none".into(), |v| v.to_string()),
                    now.map_or("none".into(), |v| v.to_string())
                ),
                _ => reason = format!("{reason} (gate passed)"),
            }
            state.gate.insert(version, record);
        }
        let mut done = Vec::new();
        if let Some(previous) = state.production() {
            done.push(transition(
                &mut state,
                previous,
                Stage::Archived,
                format!("replaced by version {version}"),
            ));
        }
        done.push(transition(&mut state, version, Stage::Production, reason));
        store::write_state(&dir, &state)?;
        Ok(done)
    }

    /// Archives a candidate or production version (a production version leaves the key
    /// without one).
    pub fn archive(&self, key: &ModelKey, version: u32) -> Result<Transition> {
        let dir = store::key_dir(&self.root, key);
        let _lock = KeyLock::acquire(&dir)?;
        let mut state = store::read_state(&dir)?;
        match state.stages.get(&version) {
            None => bail!("{} has no version {version}", key.label()),
            Some(Stage::Archived) => bail!("{}@{version} is already archived", key.label()),
            Some(_) => {}
        }
        let t = transition(&mut state, version, Stage::Archived, "archived".into());
        store::write_state(&dir, &state)?;
        Ok(t)
    }
}

fn transition(state: &mut KeyState, version: u32, to: Stage, reason: String) -> Transition {
    let from = state.stages.insert(version, to);
    let t = Transition { at: now_rfc3339(), version, from, to, reason };
    state.history.push(t.clone());
    t
}

/// Verifies a version's bundle against the key recorded as its signer; returns the manifest.
fn verify_info(info: &VersionInfo) -> Result<Manifest> {
    let key = moldops_shared::bundle::parse_key_hex(&info.record.signed_by)
        .with_context(|| format!("{}: signed_by", info.bundle_dir.display()))?;
    let bundle = Bundle::read_dir(&info.bundle_dir)
        .with_context(|| format!("reading bundle {}", info.bundle_dir.display()))?;
    let manifest = bundle
        .verify(&key)
        .with_context(|| format!("bundle {} does not verify", info.bundle_dir.display()))?;
    if manifest.version != info.record.version || manifest.model_key != info.record.key {
        bail!(
            "bundle {} is not {}@{}",
            info.bundle_dir.display(),
            info.record.key.label(),
            info.record.version
        );
    }
    Ok(manifest)
}
