//! Scoring of shots, shared by the edge (live, every shot) and the cloud (batch scoring of the
//! lake), so that both compute the same score for the same shot.
//!
//! A shot's path through this crate:
//! - [`features`]: the shot's feature vector — its own values plus each peripheral's latest
//!   reading within the model's tolerance — exactly as the cloud ETL builds `etl_data`.
//! - [`baseline`]: the cold start of a mould without a model of its own — a robust per-feature
//!   baseline that learns without alarms, then alarms on its limits until the model arrives.
//! - [`history`]: the per-machine run of recent shots a model's window is cut from.
//! - [`inference`]: the bundle's ONNX graph run by [`tract`](inference::tract) or ONNX Runtime
//!   (cargo feature `ort`); [`inference::reference`] builds small graphs for tests.
//! - [`scorer`]: the live scorer — active and shadow model per model key, scores and alarms.
//! - [`drift`]: per model key, histograms of the score and the features over a period, the
//!   drift summaries the edge uploads for the cloud to judge.
//! - [`judge`]: whether a model in shadow may replace the active one.
//! - [`metrics`]: Prometheus metrics of scoring.
#![warn(missing_docs, unreachable_pub)]

pub mod baseline;
pub mod drift;
pub mod features;
pub mod history;
pub mod inference;
pub mod judge;
pub mod metrics;
pub mod scorer;

pub use baseline::{Baseline, ColdStart};
pub use drift::{DriftMonitor, DriftSettings};
pub use features::FeatureAssembler;
pub use inference::{Backend, BackendKind, Model};
pub use scorer::{LoadedModel, Scorer, Verdict};
