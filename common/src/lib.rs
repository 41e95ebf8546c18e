//! Plumbing shared by every moldops daemon and tool, written once.
//!
//! Modelled on vector's `common/`: each module is one piece of infrastructure that the edge,
//! the cloud stages and the tests use the same way, so its semantics cannot drift apart.
//!
//! - [`mqtt`]: the broker connection settings ([`mqtt::BrokerConfig`], one validator) and the
//!   `rumqttc` options built from them (credentials, keep-alive, TLS with rustls).
//! - [`config`]: configuration problems listed all at once ([`config::ConfigErrors`]).
//! - [`fs`]: durable, atomic file replacement (temporary file, fsync, rename, folder fsync).
//! - [`lock`]: exclusive lock files that a dead process releases.
//! - [`secret`]: secrets read from their own files, with ssh-like permission checks.
//! - [`logging`]: stderr logs filtered by `RUST_LOG`.
//! - [`backoff`]: exponential back-off with jitter for reconnect and retry loops.
//! - [`shutdown`]: SIGINT/SIGTERM as a `CancellationToken`.
//! - [`runtime`]: the Tokio runtime every binary starts.
#![warn(missing_docs, unreachable_pub)]

pub mod backoff;
pub mod config;
pub mod fs;
pub mod lock;
pub mod logging;
pub mod mqtt;
pub mod runtime;
pub mod secret;
pub mod shutdown;
