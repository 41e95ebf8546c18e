//! The moldops cloud: from the edges' MQTT batches to models running back on the floor.
//!
//! A tour in the order data flows:
//! - [`ingest`]: the MQTT ingest that lands every edge's batches in the [`lake`] exactly once
//!   per record, durable before acknowledged, malformed payloads kept in a quarantine
//!   (the one-machine [`broker`] embeds an MQTT broker for demos and tests).
//! - [`lake`]: the Parquet lake's layout, reading, writing, summary and compaction.
//! - [`import`]: historical shot tables, peripheral series and quality labels from files.
//! - [`pull`]: the same history pulled incrementally from PostgreSQL, MS-SQL and InfluxDB.
//! - [`etl`]: machines merged with their peripherals and labels into `etl_data`, the same
//!   features the edge computes.
//! - [`quality`] and [`augment`]: outlier fence, weak labels (MDS + DBSCAN), GAN defect rows
//!   behind a synthetic-data gate, and the augment [`report`].
//! - [`evaluate`]: the original's eight classifiers, grid-searched on stratified folds (the
//!   numeric kernels, like [`quality`]'s, are in `moldops-learn`, optimised even in dev builds).
//! - [`train`]: the LSTM autoencoder and its baseline per model key, ONNX export.
//! - [`registry`]: signed model bundles, versions and stages.
//! - [`rollout`]: sending a bundle to a fleet of edges over MQTT, canaries first.
//! - [`score`]: batch scoring of the lake with the edge's own scoring code.
//! - [`labels`]: the label loop — operator verdicts, QC lot results and scrap counts joined
//!   to the scored shots, precision and recall per model and mould.
//! - [`pipeline`]: all of it as one DAG, locally or as Kubernetes Jobs, on a schedule.
//! - [`drift`]: the edges' score and feature summaries judged for drift (PSI, KS, alarm rate
//!   against target) into `drift_events`, and the retraining trigger.
//! - [`lifecycle`]: which mould keys are due for a model of their own, the trigger of the
//!   lifecycle pipeline that trains, gates and rolls them out without a human step.
//! - [`api`]: a read-only HTTP API over a data folder or bucket; [`console`]: the operator
//!   console, a web UI over the same data with signed-in, audited actions.
//! - [`shard`]: `--machine` / `--shard I/N`, the machine selection of a fan-out over N runs.
//! - [`storage`]: shared state on a folder or an S3 bucket by URL, with the conditional writes
//!   (create if absent, replace if unchanged) a commit protocol on object storage needs, and
//!   built on them the local copies the verbs and servers work on and the leases of the
//!   ingest and compaction.
//! - [`config`]: `cloud.toml` and command-line overrides; [`cli`]: the `moldops-cloud` verbs.
//!
//! Shared plumbing (broker config, atomic writes, locks, back-off, shutdown) is in
//! `moldops-common`; the scoring code shared with the edge is in `moldops-scoring`.

#![warn(missing_docs)]

pub mod api;
pub mod augment;
pub mod broker;
pub mod cli;
pub mod config;
pub mod console;
pub mod drift;
pub mod etl;
pub mod evaluate;
pub mod import;
pub mod ingest;
pub mod labels;
pub mod lake;
pub mod lifecycle;
pub mod pipeline;
pub mod pull;
pub mod registry;
pub mod report;
pub mod rollout;
pub mod score;
pub mod shard;
pub mod storage;
pub mod train;

#[cfg(test)]
mod fuzz_tests;

/// The data-quality statistics `augment` applies (crate `moldops-learn`).
pub use moldops_learn::quality;
