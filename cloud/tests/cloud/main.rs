//! The cloud package's integration tests, one binary: the ingest through a real broker, the
//! ETL (drop rules, as-of joins, runs, labels, incrementality, edge parity) and the import.

mod api;
mod augment;
mod compact;
mod etl;
mod evaluate;
mod import;
mod ingest_rumqttd;
mod kmock;
mod parity;
mod pipeline_kube;
mod pipeline_local;
mod quality;
mod registry;
mod rollout_fleet;
mod rollout_scores;
mod support;
mod train;
