//! Messages of the model rollout, spoken by the cloud's rollout manager and the edge's rollout
//! agent (see `docs/mqtt-contract.md` and `docs/rollout.md`):
//!
//! - [`DesiredModels`], retained on `…/{edge_id}/model/desired` (cloud → edge): which bundle each
//!   model key of that edge should run, named by the sha256 of its transport bytes.
//! - bundle chunks, retained on [`crate::topic::bundle_chunk`] (cloud → edges): the bundle's
//!   [`crate::bundle::Bundle::to_bytes`] cut into pieces of `chunk_bytes`; chunk `i` holds bytes
//!   `[i·chunk_bytes, (i+1)·chunk_bytes)`.
//! - [`ReportedModels`], retained on `…/{edge_id}/model/reported` (edge → cloud): each key's
//!   rollout state, active and previous versions, and the reason of a refusal or rollback.
//! - [`ScoreMessage`] on `…/scores` for every scored shot and on `…/alarms` when it alarms.

use crate::bundle::ModelKey;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Default size of one bundle chunk.
pub const DEFAULT_CHUNK_BYTES: u32 = 256 * 1024;
/// Largest chunk an edge takes (under the shipped broker's 5 MiB packet limit).
pub const MAX_CHUNK_BYTES: u32 = 4 << 20;
/// Default upper bound of a bundle an edge downloads (`models.max_bundle_bytes`).
pub const DEFAULT_MAX_BUNDLE_BYTES: u64 = 256 << 20;
/// Most chunks a bundle may be cut into: the edge sizes its chunk table from the count before
/// any chunk arrives, so 1-byte chunks of a large bundle must not size gigabytes.
pub const MAX_CHUNKS: u32 = 65_536;
/// Largest desired-state payload an edge reads.
pub const MAX_DESIRED_BYTES: usize = 1 << 20;

/// Why a desired model was refused before anything was allocated or stored.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BadDesired {
    /// The key's machine id or mold, or the bundle's model id, breaks the identifier limits.
    #[error("desired model key: {0}")]
    Key(#[from] crate::limits::IdError),
    /// The bundle's `sha256` is not 64 lowercase hex digits (holds its first 80 characters).
    #[error("bundle sha256 {0:?} is not 64 lowercase hex digits")]
    Sha(String),
    /// The bundle is empty or larger than this edge takes (`models.max_bundle_bytes`).
    #[error("bundle of {bytes} bytes (this edge takes 1 to {max})")]
    Size {
        /// The bundle's declared size in bytes.
        bytes: u64,
        /// The largest bundle this edge takes, in bytes.
        max: u64,
    },
    /// `chunk_bytes` is 0 or above [`MAX_CHUNK_BYTES`] (holds it).
    #[error("chunks of {0} bytes (1 to {MAX_CHUNK_BYTES})")]
    ChunkSize(u32),
    /// `chunks` is above [`MAX_CHUNKS`] (holds it).
    #[error("{0} chunks (at most {MAX_CHUNKS}: use larger chunks)")]
    TooManyChunks(u32),
    /// `chunks` is not `bytes` divided by `chunk_bytes`, rounded up.
    #[error("{chunks} chunks do not cut {bytes} bytes into pieces of {chunk_bytes}")]
    ChunkCount {
        /// The declared number of chunks.
        chunks: u32,
        /// The declared bundle size in bytes.
        bytes: u64,
        /// The declared chunk size in bytes.
        chunk_bytes: u32,
    },
}

impl DesiredModel {
    /// Checks every field against the edge's limits before the edge acts on it.
    pub fn check(&self, max_bundle_bytes: u64) -> Result<(), BadDesired> {
        crate::limits::check_name("machine_id", &self.model_key.machine_id)?;
        if let Some(mold) = &self.model_key.mold {
            crate::limits::check_name("mold", mold)?;
        }
        crate::limits::check_name("model_id", &self.bundle.model_id)?;
        self.bundle.check(max_bundle_bytes)
    }
}

/// Where a bundle can be fetched and how to check it arrived whole.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BundleRef {
    /// Registry id of the model (`{key}@{version}`).
    pub model_id: String,
    /// Version of the model within its key (the manifest's `version`).
    pub version: u32,
    /// Hex sha256 of the whole transport byte string.
    pub sha256: String,
    /// Size of the transport byte string in bytes.
    pub bytes: u64,
    /// Number of chunks it is cut into: `bytes / chunk_bytes`, rounded up.
    pub chunks: u32,
    /// Size of every chunk but the last (which may be shorter), in bytes.
    pub chunk_bytes: u32,
}

impl BundleRef {
    /// Checks the reference is well formed and within `max_bytes`: chunk count and size agree
    /// with the total, so the edge can size its transfer without trusting anything else.
    pub fn check(&self, max_bytes: u64) -> Result<(), BadDesired> {
        let hex = self.sha256.len() == 64
            && self.sha256.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        if !hex {
            return Err(BadDesired::Sha(self.sha256.chars().take(80).collect()));
        }
        if self.bytes == 0 || self.bytes > max_bytes {
            return Err(BadDesired::Size { bytes: self.bytes, max: max_bytes });
        }
        if self.chunk_bytes == 0 || self.chunk_bytes > MAX_CHUNK_BYTES {
            return Err(BadDesired::ChunkSize(self.chunk_bytes));
        }
        if self.chunks > MAX_CHUNKS {
            return Err(BadDesired::TooManyChunks(self.chunks));
        }
        if u64::from(self.chunks) != self.bytes.div_ceil(u64::from(self.chunk_bytes)) {
            return Err(BadDesired::ChunkCount {
                chunks: self.chunks,
                bytes: self.bytes,
                chunk_bytes: self.chunk_bytes,
            });
        }
        Ok(())
    }

    /// Describes `bytes` (a bundle's transport form) cut into `chunk_bytes` pieces.
    pub fn describe(model_id: &str, version: u32, bytes: &[u8], chunk_bytes: u32) -> Self {
        let chunk = chunk_bytes.max(1) as usize;
        BundleRef {
            model_id: model_id.to_string(),
            version,
            sha256: crate::bundle::sha256_hex(bytes),
            bytes: bytes.len() as u64,
            chunks: bytes.len().div_ceil(chunk) as u32,
            chunk_bytes: chunk as u32,
        }
    }
}

/// One model key's desired bundle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DesiredModel {
    /// The model key this entry is for.
    pub model_key: ModelKey,
    /// The bundle the key should run.
    pub bundle: BundleRef,
    /// Needed when the bundle is older than the newest version the edge has run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollback: Option<crate::rollback::SignedRollback>,
}

impl DesiredModel {
    /// A desired bundle without a rollback statement.
    pub fn new(model_key: ModelKey, bundle: BundleRef) -> DesiredModel {
        DesiredModel { model_key, bundle, rollback: None }
    }
}

/// The retained desired state of one edge: every key it should run.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct DesiredModels {
    /// One entry per model key, kept sorted by key by [`DesiredModels::set`].
    pub models: Vec<DesiredModel>,
    /// When the manager issued it (UTC ms).
    #[serde(default)]
    pub issued_at_ms: i64,
}

impl DesiredModels {
    /// Sets (or replaces) the entry of `desired.model_key`.
    pub fn set(&mut self, desired: DesiredModel) {
        self.models.retain(|m| m.model_key != desired.model_key);
        self.models.push(desired);
        self.models.sort_by(|a, b| a.model_key.cmp(&b.model_key));
    }

    /// The entry of `key`, if the desired state has one.
    pub fn get(&self, key: &ModelKey) -> Option<&DesiredModel> {
        self.models.iter().find(|m| &m.model_key == key)
    }
}

/// Rollout state of one model key on one edge.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RolloutState {
    /// Fetching the desired bundle's chunks.
    Downloading,
    /// Signature, hashes and feature binding checked; loading the model.
    Verified,
    /// Scoring next to the active model, not yet trusted.
    Shadow,
    /// The desired bundle scores live shots.
    Active,
    /// The desired bundle was refused (`reason` says why); the old model keeps scoring.
    Rejected,
    /// The desired bundle failed its shadow run (`reason` says why); the old model keeps scoring.
    RolledBack,
}

impl RolloutState {
    /// True when the rollout of the desired bundle has ended (well or not).
    pub fn is_final(self) -> bool {
        matches!(self, Self::Active | Self::Rejected | Self::RolledBack)
    }

    /// The state as written on the wire (`downloading`, …, `rolled_back`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Downloading => "downloading",
            Self::Verified => "verified",
            Self::Shadow => "shadow",
            Self::Active => "active",
            Self::Rejected => "rejected",
            Self::RolledBack => "rolled_back",
        }
    }
}

/// What an edge says about one model key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReportedModel {
    /// The model key this entry is about.
    pub model_key: ModelKey,
    /// Where the rollout of `target` stands.
    pub state: RolloutState,
    /// The bundle the state is about (the desired one).
    pub target: Option<BundleRef>,
    /// The bundle scoring live shots now.
    pub active: Option<BundleRef>,
    /// The bundle active before it (kept in the edge's store for a quick rollback).
    pub previous: Option<BundleRef>,
    /// Why the target was rejected or rolled back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Shadow progress: shots scored by the candidate so far, and needed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shadow: Option<(u64, u64)>,
    /// The newest version of the key this edge has run: an older one needs a signed
    /// rollback statement covering it ([`crate::rollback`]).
    #[serde(default)]
    pub newest: u32,
    /// `issued_at_ms` of the desired state this report answers (0 from older edges), so the
    /// manager can tell a fresh answer from an earlier one about the same bundle.
    #[serde(default)]
    pub desired_at_ms: i64,
    /// When the edge published this report (UTC ms).
    pub ts_ms: i64,
}

/// The retained reported state of one edge.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ReportedModels {
    /// Site of the reporting edge.
    pub site: String,
    /// Id of the reporting edge.
    pub edge_id: String,
    /// By model key label ([`ModelKey::label`]).
    pub models: BTreeMap<String, ReportedModel>,
    /// When the edge published it (UTC ms).
    pub ts_ms: i64,
}

/// One scored shot (on `scores`; also on `alarms` when `alarm`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScoreMessage {
    /// Edge that recorded and scored the shot.
    pub edge_id: String,
    /// Machine that made the shot.
    pub machine_id: String,
    /// Mold / product code of the shot, when it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mold: Option<String>,
    /// Controller shot counter of the shot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shot_number: Option<u64>,
    /// The shot record's seq: `(edge_id, seq)` names the shot in the lake too.
    pub seq: u64,
    /// Time of the shot: the record's `ts_ms` (UTC ms).
    pub ts_ms: i64,
    /// Label of the model key that scored it.
    pub model_key: String,
    /// Registry id of the scoring model (`{key}@{version}`).
    pub model_id: String,
    /// Version of the scoring model.
    pub version: u32,
    /// Sha256 of the bundle the scoring model came from ([`BundleRef::sha256`]); empty from
    /// edges before it was sent.
    #[serde(default)]
    pub bundle_sha256: String,
    /// Anomaly score of the window ending with this shot.
    pub score: f32,
    /// The scoring model's alarm threshold.
    pub threshold: f32,
    /// True when `score > threshold`; the message then also goes to `alarms`.
    pub alarm: bool,
    /// Each feature's contribution to the score, largest first.
    pub contributions: Vec<(String, f32)>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn desired_references_are_bounded_before_use() {
        let bytes = vec![7u8; 1000];
        let good = BundleRef::describe("m1@1", 1, &bytes, 256);
        assert_eq!(good.check(1 << 20), Ok(()));
        let huge = BundleRef { chunks: u32::MAX, ..good.clone() };
        assert!(matches!(huge.check(1 << 20), Err(BadDesired::TooManyChunks(_))));
        let crumbs = BundleRef::describe("m1@1", 1, &vec![0u8; 200_000], 1);
        assert_eq!(crumbs.check(1 << 20), Err(BadDesired::TooManyChunks(200_000)), "1-byte chunks");
        let big = BundleRef { bytes: 1 << 40, chunks: 1 << 22, chunk_bytes: 1 << 18, ..good.clone() };
        assert!(matches!(big.check(1 << 20), Err(BadDesired::Size { .. })));
        let sha = BundleRef { sha256: "../../etc".into(), ..good.clone() };
        assert!(matches!(sha.check(1 << 20), Err(BadDesired::Sha(_))));
        let zero = BundleRef { chunk_bytes: 0, ..good.clone() };
        assert!(matches!(zero.check(1 << 20), Err(BadDesired::ChunkSize(0))));
        let key = ModelKey { machine_id: "m\u{0}".into(), mold: None };
        let d = DesiredModel::new(key, good);
        assert!(matches!(d.check(1 << 20), Err(BadDesired::Key(_))));
    }
}
