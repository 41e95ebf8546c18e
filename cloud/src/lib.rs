//! moldops cloud: the MQTT [`ingest`] that lands every edge's batches in the Parquet
//! [`lake`] — deduplicated on `(edge_id, seq)`, durable before acknowledged, bad payloads
//! kept in a quarantine — and the lake's inspection ([`lake::summary`], [`lake::read_dataset`]).
//! [`config`] reads `cloud.toml` and the command-line overrides; [`demo`] runs the whole data
//! path on one machine with an embedded [`broker`].

pub mod api;
pub mod augment;
pub mod broker;
pub mod config;
pub mod demo;
pub mod etl;
pub mod evaluate;
pub mod import;
pub mod ingest;
pub mod lake;
pub mod pipeline;
pub mod quality;
pub mod registry;
pub mod report;
pub mod rollout;
pub mod train;
