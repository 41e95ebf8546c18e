//! The moldops edge gateway: every shot of every machine and peripheral, made durable on the
//! floor and delivered to the cloud; every shot scored with the active model.
//!
//! Shaped like a vector pipeline. A tour in the order a record travels:
//! - [`config`]: the edge's TOML (identity, broker, buffer, uplink, API, devices, models),
//!   validated all at once.
//! - [`sources`]: Modbus TCP/RTU and OPC UA devices read through their profiles; `schedule`
//!   polls each device in its own task and `shot` turns a machine's registers into one record
//!   per shot (across counter wrap, restarts and outages).
//! - [`buffer`]: the sled buffer every record is written to before anything else sees it.
//! - [`uplink`]: the MQTT sink publishing ordered batches, deleting them only once the ingest's commit ack
//!   says they are in the lake.
//! - `rollout`: with `[models]`, scores every shot (through `moldops-scoring`, the same code
//!   batch scoring runs) and installs signed bundles from the registry with a shadow run.
//! - [`gate`]: with `[[gates]]`, decides for every shot of a gated machine — good, reject or
//!   uncertain, from limits and the active model — and writes it to the sorting output within
//!   the deadline, or the fail-safe.
//! - [`health`] and `api`: `/healthz`, `/status` and Prometheus `/metrics`; `heartbeat`
//!   buffers a health snapshot every minute, so the lake holds each edge's history.
//! - [`run`]: starts all of the above and stops it in order.
//!
//! Shared plumbing (broker config, MQTT options, back-off, shutdown) is in `moldops-common`;
//! the simulated plant is its own crate and binary, `moldops-sim`.

#![warn(missing_docs)]

pub(crate) mod api;
pub mod buffer;
pub mod config;
pub mod gate;
pub mod health;
pub(crate) mod heartbeat;
pub(crate) mod rollout;
pub mod run;
pub(crate) mod schedule;
pub(crate) mod shot;
pub mod sources;
pub mod uplink;

#[cfg(test)]
mod fuzz_tests;
