//! moldops cloud: the MQTT [`ingest`] that lands every edge's batches in the Parquet
//! [`lake`] — deduplicated on `(edge_id, seq)`, durable before acknowledged, bad payloads
//! kept in a quarantine — and the lake's inspection ([`lake::summary`], [`lake::read_dataset`]).
//! [`config`] reads `cloud.toml` and the command-line overrides.

pub mod config;
pub mod ingest;
pub mod lake;
