//! The cloud package's integration tests, one binary: the ingest through a real broker, the
//! ETL (drop rules, as-of joins, runs, labels, incrementality) and the import; the edge/ETL
//! parity tests need the simulator and live in `tests/`.

// Test helpers share `pub` items between modules and may panic on failure: neither is a
// public API nor a daemon reading outside input.
#![allow(unreachable_pub, clippy::unwrap_used)]

mod api;
mod augment;
mod compact;
mod etl;
mod evaluate;
mod gate;
mod import;
mod ingest_rumqttd;
mod kmock;
mod pipeline_kube;
mod pipeline_local;
mod quality;
mod registry;
mod rollout_fleet;
mod support;
mod train;
