//! The model bundle: the one artifact that carries a trained model from the registry to an edge,
//! and the checks an edge runs before it trusts one.
//!
//! A bundle is a set of named files — `manifest.json`, `manifest.sig` and the files the manifest
//! lists (normally `model.onnx`) — stored as a folder in the registry and moved over MQTT as one
//! byte string ([`Bundle::to_bytes`]). The manifest lists every other file with its sha256 and
//! size; `manifest.sig` is the hex Ed25519 signature over the exact bytes of `manifest.json`.
//! [`Bundle::verify`] checks the signature first, then every file's hash and size, and refuses
//! extra or missing files; [`Manifest::check_features`] checks the feature binding against what
//! an edge can compute. Each failure is a [`BundleError`] whose text says why, for the
//! reported-state topic.
//!
//! The ONNX graph contract ([`INPUT_NAME`], [`SCORE_OUTPUT`], [`CONTRIB_OUTPUT`]): input
//! `window` `f32[N, W, F]` holds the last W shots' raw feature values in manifest order, oldest
//! first, missing values replaced by the feature's `fill`; normalisation is inside the graph.
//! Output `score` `f32[N]` is the anomaly score compared with `threshold`; `contributions`
//! `f32[N, F]` is each feature's share of it (the score is their mean).

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

/// Manifest schema version this code writes and reads.
pub const MANIFEST_SCHEMA: u32 = 1;
/// File name of the manifest inside a bundle.
pub const MANIFEST_FILE: &str = "manifest.json";
/// File name of the signature (hex Ed25519 over the manifest bytes) inside a bundle.
pub const SIGNATURE_FILE: &str = "manifest.sig";
/// File name of the ONNX graph inside a bundle.
pub const MODEL_FILE: &str = "model.onnx";
/// Name of the graph's input: `f32[N, W, F]` raw feature windows.
pub const INPUT_NAME: &str = "window";
/// Name of the graph's score output: `f32[N]`.
pub const SCORE_OUTPUT: &str = "score";
/// Name of the graph's per-feature contribution output: `f32[N, F]`.
pub const CONTRIB_OUTPUT: &str = "contributions";

const MAGIC: &[u8; 8] = b"MOLDBND1";

/// What a model is for: one machine, optionally one mold on it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ModelKey {
    /// Machine whose shots the model scores.
    pub machine_id: String,
    /// Mold / product code the model is for; `None` for the machine's model, which scores the
    /// shots of every mold that has no model of its own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mold: Option<String>,
}

impl ModelKey {
    /// `M1` or `M1/MOLD-A`: the form used in CLI arguments and folder names.
    pub fn label(&self) -> String {
        match &self.mold {
            Some(mold) => format!("{}/{mold}", self.machine_id),
            None => self.machine_id.clone(),
        }
    }

    /// Parses [`ModelKey::label`]'s form.
    pub fn parse(label: &str) -> Result<Self, BundleError> {
        let (machine, mold) = match label.split_once('/') {
            Some((m, mold)) => (m, Some(mold.to_string())),
            None => (label, None),
        };
        if machine.is_empty() || mold.as_deref() == Some("") {
            return Err(BundleError::Manifest(format!("bad model key {label:?}")));
        }
        Ok(Self { machine_id: machine.to_string(), mold })
    }
}

/// One input feature, in the order the graph expects.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeatureSpec {
    /// Feature name as [`crate::features`] builds it: a shot value or `{device}.{value}`.
    pub name: String,
    /// Engineering unit of the feature; informational only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit: Option<String>,
    /// Value fed in place of a missing reading (the training mean).
    pub fill: f32,
}

/// A file the manifest vouches for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileEntry {
    /// File name inside the bundle (no folders), e.g. [`MODEL_FILE`].
    pub path: String,
    /// Hex sha256 of the file's bytes.
    pub sha256: String,
    /// Size of the file in bytes.
    pub bytes: u64,
}

/// Summary of the scores the model gave its validation data: what a rollout compares live
/// scores with.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ScoreStats {
    /// Number of validation windows scored.
    pub count: u64,
    /// Mean of their scores.
    pub mean: f64,
    /// Standard deviation of their scores (population, divided by `count`).
    pub std: f64,
    /// Median score.
    pub p50: f64,
    /// 90th percentile of the scores.
    pub p90: f64,
    /// 99th percentile of the scores.
    pub p99: f64,
    /// Share of validation windows over the threshold.
    pub alarm_rate: f64,
}

/// Everything an edge must know about a model, signed by the registry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// Manifest schema version; [`Bundle::verify`] refuses any but [`MANIFEST_SCHEMA`].
    pub schema: u32,
    /// Registry id: `{model_key label}@{version}` is unique.
    pub model_id: String,
    /// Version of the model within its key, set by the registry: rising, never reused.
    pub version: u32,
    /// Machine (and optionally mold) the model is for.
    pub model_key: ModelKey,
    /// Architecture, e.g. `lstm_ae` or `dense_ae`.
    pub kind: String,
    /// Input features in the order of the graph's last input axis (F).
    pub features: Vec<FeatureSpec>,
    /// Window length W (shots per input).
    pub window: u32,
    /// As-of tolerance (ms) of the peripheral join the training data was built with: the edge
    /// joins live readings with the same one, so a feature is missing exactly when it was
    /// missing in training. Bundles without it were built with the old fixed default.
    #[serde(default = "default_tolerance_ms")]
    pub tolerance_ms: i64,
    /// Score above which a shot alarms (`score > threshold`).
    pub threshold: f32,
    /// Share of good shots (0 to 1) the model should alarm on at most at `threshold`, as
    /// calibrated on a held-out slice of time: what the edge's live alarm rate is read against.
    /// Absent in bundles from before calibration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub false_alarm_target: Option<f64>,
    /// How the model scored its validation data: the baseline a shadow run is judged against.
    pub validation_scores: ScoreStats,
    /// sha256 of the training data snapshot.
    pub data_snapshot: String,
    /// Version of the code that trained the model, e.g. `moldops-cloud {version} ({git})`.
    pub code_version: String,
    /// Training parameters (architecture, window, split, threshold choice, …) as free JSON;
    /// informational.
    #[serde(default)]
    pub params: serde_json::Value,
    /// Test metrics of the model (ROC AUC, PR AUC, F1, …) as free JSON; informational.
    #[serde(default)]
    pub metrics: serde_json::Value,
    /// RFC 3339, UTC.
    pub created_at: String,
    /// Every file of the bundle but the manifest and its signature, with hash and size.
    pub files: Vec<FileEntry>,
}

/// Why a bundle was refused.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum BundleError {
    /// The bytes are not a bundle's transport form (bad magic, truncated, a bad or duplicate
    /// file name), or [`Bundle::seal`] was given a file with a reserved name.
    #[error("bundle is not in the moldops bundle format: {0}")]
    Format(String),
    /// A file the bundle needs (manifest, signature, [`MODEL_FILE`] or a listed file) is
    /// absent; holds its name.
    #[error("bundle has no {0}")]
    MissingFile(String),
    /// The bundle carries a file its manifest does not list; holds its name.
    #[error("bundle carries a file the manifest does not list: {0}")]
    UnlistedFile(String),
    /// The signature is not 64 hex bytes or not by the configured key, or a key is malformed.
    #[error("bad signature: {0}")]
    Signature(String),
    /// A listed file's sha256 or size differs from what the manifest says.
    #[error("hash mismatch for {path}: manifest says {expected}, file has {actual}")]
    Hash {
        /// Name of the file.
        path: String,
        /// Hex sha256 the manifest lists.
        expected: String,
        /// Hex sha256 of the file's bytes.
        actual: String,
    },
    /// The manifest does not parse, has another schema or a bad shape (no features, window 0,
    /// non-finite threshold, `tolerance_ms` out of range), or a model key label is malformed.
    #[error("manifest: {0}")]
    Manifest(String),
    /// The manifest needs features the edge does not compute ([`Manifest::check_features`]).
    #[error("feature binding: {0}")]
    Features(String),
}

/// A bundle's files by name.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Bundle {
    /// File contents by file name; a sealed bundle includes [`MANIFEST_FILE`] and
    /// [`SIGNATURE_FILE`].
    pub files: BTreeMap<String, Vec<u8>>,
}

/// Hex sha256 of bytes.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

impl Bundle {
    /// Builds a signed bundle: fills the manifest's file list from `files`, serialises it and
    /// signs it with the registry's private key (32-byte Ed25519 seed).
    pub fn seal(
        mut manifest: Manifest,
        files: BTreeMap<String, Vec<u8>>,
        signing_seed: &[u8; 32],
    ) -> Result<Self, BundleError> {
        use ed25519_dalek::Signer;
        for reserved in [MANIFEST_FILE, SIGNATURE_FILE] {
            if files.contains_key(reserved) {
                return Err(BundleError::Format(format!("{reserved} is reserved")));
            }
        }
        manifest.schema = MANIFEST_SCHEMA;
        manifest.files = files
            .iter()
            .map(|(path, data)| FileEntry {
                path: path.clone(),
                sha256: sha256_hex(data),
                bytes: data.len() as u64,
            })
            .collect();
        let manifest_bytes =
            serde_json::to_vec_pretty(&manifest).map_err(|e| BundleError::Manifest(e.to_string()))?;
        let key = ed25519_dalek::SigningKey::from_bytes(signing_seed);
        let signature = key.sign(&manifest_bytes);
        let mut all = files;
        all.insert(SIGNATURE_FILE.into(), hex::encode(signature.to_bytes()).into_bytes());
        all.insert(MANIFEST_FILE.into(), manifest_bytes);
        Ok(Self { files: all })
    }

    /// The parsed manifest, without any check. Use [`Bundle::verify`] before trusting it.
    pub fn manifest_unverified(&self) -> Result<Manifest, BundleError> {
        let bytes = self.file(MANIFEST_FILE)?;
        serde_json::from_slice(bytes).map_err(|e| BundleError::Manifest(e.to_string()))
    }

    /// Checks signature, schema, hashes and the file list; returns the manifest.
    pub fn verify(&self, public_key: &[u8; 32]) -> Result<Manifest, BundleError> {
        let manifest_bytes = self.file(MANIFEST_FILE)?;
        let sig_hex = std::str::from_utf8(self.file(SIGNATURE_FILE)?)
            .map_err(|_| BundleError::Signature("signature file is not text".into()))?;
        let sig_bytes: [u8; 64] = hex::decode(sig_hex.trim())
            .ok()
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| BundleError::Signature("signature is not 64 hex bytes".into()))?;
        let key = ed25519_dalek::VerifyingKey::from_bytes(public_key)
            .map_err(|e| BundleError::Signature(format!("public key: {e}")))?;
        key.verify_strict(manifest_bytes, &ed25519_dalek::Signature::from_bytes(&sig_bytes))
            .map_err(|_| BundleError::Signature("manifest was not signed by the configured key".into()))?;
        let manifest = self.manifest_unverified()?;
        if manifest.schema != MANIFEST_SCHEMA {
            return Err(BundleError::Manifest(format!(
                "schema {} (this edge reads {MANIFEST_SCHEMA})",
                manifest.schema
            )));
        }
        manifest.check_shape()?;
        for entry in &manifest.files {
            let data = self.file(&entry.path)?;
            let actual = sha256_hex(data);
            if actual != entry.sha256 || data.len() as u64 != entry.bytes {
                return Err(BundleError::Hash {
                    path: entry.path.clone(),
                    expected: entry.sha256.clone(),
                    actual,
                });
            }
        }
        for name in self.files.keys() {
            let listed = manifest.files.iter().any(|e| &e.path == name);
            if !listed && name != MANIFEST_FILE && name != SIGNATURE_FILE {
                return Err(BundleError::UnlistedFile(name.clone()));
            }
        }
        Ok(manifest)
    }

    fn file(&self, name: &str) -> Result<&[u8], BundleError> {
        self.files.get(name).map(Vec::as_slice).ok_or_else(|| BundleError::MissingFile(name.into()))
    }

    /// One byte string for transport: magic, then per file a u32 name length, the name, a u64
    /// data length and the data (little endian).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = MAGIC.to_vec();
        for (name, data) in &self.files {
            out.extend_from_slice(&(name.len() as u32).to_le_bytes());
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(&(data.len() as u64).to_le_bytes());
            out.extend_from_slice(data);
        }
        out
    }

    /// Parses [`Bundle::to_bytes`]; refuses truncated input, bad names and duplicates.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, BundleError> {
        let mut rest =
            bytes.strip_prefix(MAGIC.as_slice()).ok_or_else(|| BundleError::Format("bad magic".into()))?;
        let mut files = BTreeMap::new();
        while !rest.is_empty() {
            let name_len = take_len::<4>(&mut rest)?;
            let name = std::str::from_utf8(take(&mut rest, name_len)?)
                .map_err(|_| BundleError::Format("file name is not UTF-8".into()))?;
            if name.is_empty() || name.contains(['/', '\\']) || name.starts_with('.') {
                return Err(BundleError::Format(format!("bad file name {name:?}")));
            }
            let data_len = take_len::<8>(&mut rest)?;
            let data = take(&mut rest, data_len)?.to_vec();
            if files.insert(name.to_string(), data).is_some() {
                return Err(BundleError::Format(format!("file {name} twice")));
            }
        }
        Ok(Self { files })
    }

    /// Writes the files into `dir` (created if needed).
    pub fn write_dir(&self, dir: &std::path::Path) -> std::io::Result<()> {
        std::fs::create_dir_all(dir)?;
        for (name, data) in &self.files {
            std::fs::write(dir.join(name), data)?;
        }
        Ok(())
    }

    /// Reads every plain file of `dir`.
    pub fn read_dir(dir: &std::path::Path) -> std::io::Result<Self> {
        let mut files = BTreeMap::new();
        for entry in std::fs::read_dir(dir)? {
            let entry = entry?;
            if entry.file_type()?.is_file() {
                let name = entry.file_name().to_string_lossy().into_owned();
                files.insert(name, std::fs::read(entry.path())?);
            }
        }
        Ok(Self { files })
    }
}

fn take<'a>(rest: &mut &'a [u8], n: usize) -> Result<&'a [u8], BundleError> {
    if rest.len() < n {
        return Err(BundleError::Format("truncated".into()));
    }
    let (head, tail) = rest.split_at(n);
    *rest = tail;
    Ok(head)
}

fn take_len<const N: usize>(rest: &mut &[u8]) -> Result<usize, BundleError> {
    let mut buf = [0u8; 8];
    buf[..N].copy_from_slice(take(rest, N)?);
    usize::try_from(u64::from_le_bytes(buf)).map_err(|_| BundleError::Format("length".into()))
}

fn default_tolerance_ms() -> i64 {
    crate::features::DEFAULT_TOLERANCE_MS
}

impl Manifest {
    /// A version-1 manifest of `key` with the given inputs, window and threshold; lineage,
    /// metrics and the creation time empty (the registry fills them; tests and benches use it
    /// as is).
    pub fn new(key: ModelKey, kind: &str, features: Vec<FeatureSpec>, window: u32, threshold: f32) -> Self {
        Manifest {
            schema: MANIFEST_SCHEMA,
            model_id: format!("{}@1", key.label()),
            version: 1,
            model_key: key,
            kind: kind.to_string(),
            features,
            window,
            tolerance_ms: crate::features::DEFAULT_TOLERANCE_MS,
            threshold,
            false_alarm_target: None,
            validation_scores: ScoreStats::default(),
            data_snapshot: String::new(),
            code_version: String::new(),
            params: serde_json::Value::Null,
            metrics: serde_json::Value::Null,
            created_at: String::new(),
            files: vec![],
        }
    }

    fn check_shape(&self) -> Result<(), BundleError> {
        if self.features.is_empty() || self.window == 0 {
            return Err(BundleError::Manifest("no features or window 0".into()));
        }
        if !self.threshold.is_finite() {
            return Err(BundleError::Manifest("threshold is not finite".into()));
        }
        if let Some(t) = self.false_alarm_target.filter(|t| !(0.0..=1.0).contains(t)) {
            return Err(BundleError::Manifest(format!("false_alarm_target {t} is not a share in 0..=1")));
        }
        if !(0..=crate::features::MAX_TOLERANCE_MS).contains(&self.tolerance_ms) {
            return Err(BundleError::Manifest(format!(
                "tolerance_ms {} is outside 0..={}",
                self.tolerance_ms,
                crate::features::MAX_TOLERANCE_MS
            )));
        }
        if !self.files.iter().any(|f| f.path == MODEL_FILE) {
            return Err(BundleError::MissingFile(MODEL_FILE.into()));
        }
        Ok(())
    }

    /// The feature binding: every input feature must be one the edge computes for this
    /// machine (`available`, e.g. from [`crate::features::feature_names`]).
    pub fn check_features(&self, available: &[String]) -> Result<(), BundleError> {
        let missing: Vec<&str> = self
            .features
            .iter()
            .map(|f| f.name.as_str())
            .filter(|name| !available.iter().any(|a| a == name))
            .collect();
        if missing.is_empty() {
            Ok(())
        } else {
            Err(BundleError::Features(format!("this edge does not compute {}", missing.join(", "))))
        }
    }

    /// The ordered feature names.
    pub fn feature_names(&self) -> Vec<String> {
        self.features.iter().map(|f| f.name.clone()).collect()
    }
}

/// The public key (32 bytes) of a 32-byte private seed, for `keygen`.
pub fn public_key(signing_seed: &[u8; 32]) -> [u8; 32] {
    ed25519_dalek::SigningKey::from_bytes(signing_seed).verifying_key().to_bytes()
}

/// Parses a 32-byte key written as 64 hex digits (surrounding whitespace ignored).
pub fn parse_key_hex(text: &str) -> Result<[u8; 32], BundleError> {
    hex::decode(text.trim())
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| BundleError::Signature("a key must be 64 hex digits".into()))
}

#[cfg(test)]
mod tests;
