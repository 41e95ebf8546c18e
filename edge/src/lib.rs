//! moldops edge gateway.
//!
//! Shaped like a vector pipeline: **sources** (Modbus TCP/RTU devices) are polled by
//! per-device tasks in [`schedule`], machines' registers become shot records in [`shot`],
//! every record is made durable in the sled [`buffer`] before anything else sees it, and the
//! [`uplink`] sink publishes ordered batches over MQTT, deleting them only after PUBACK.
//! [`api`] serves health, status and Prometheus metrics; [`sim`] is a simulated plant that
//! speaks real Modbus TCP. With `[models]`, [`rollout`] scores every shot with the active
//! model ([`scoring`], [`inference`]) and installs new models from the registry over MQTT.

pub mod api;
pub mod buffer;
pub mod config;
pub mod features;
pub mod health;
pub mod inference;
pub mod mqtt;
pub mod rollout;
pub mod run;
pub mod schedule;
pub mod scoring;
pub mod shot;
pub mod sim;
pub mod sources;
pub mod uplink;
