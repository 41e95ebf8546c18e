//! The quality gate (`[[gates]]` in the config): sorts every part of a machine at the press,
//! within the cycle, and keeps the evidence for each.
//!
//! A tour in the order a shot travels:
//! - [`config`]: per machine the limits, the deadline, the fail-safe and the output.
//! - `decide`: the rule — a broken limit rejects; the active model's verdict decides within the
//!   limits; a model warming up, failing or missing features makes the part `uncertain`; with
//!   no model the limits decide alone. A candidate in shadow never decides anything: only the
//!   active model's verdict reaches the gate, and a rollback swaps it between two shots.
//! - `runner`: one task per gated machine — decides, drives the output, hands the decision on.
//! - `output`: the decision written to the sorting controller, bounded by the deadline — over
//!   Modbus TCP (three holding registers carrying the code and the shot number, or one coil) or
//!   OPC UA (two variables); a decision that cannot make the deadline writes the fail-safe.
//! - `recorder`: the decision record to the buffer, then the journal — off the gate's task.
//! - `journal`: the last shot decided per machine, so no shot is actuated twice and shots
//!   recorded but never decided (the edge stopped in between) are recorded after a restart.
//! - `task`: the plumbing — the shot a gate takes, the feed, starting the gates.
//! - [`metrics`]: decisions, write outcomes, latency and the live reject rate on `/metrics`
//!   and `/status`.
//!
//! Each decision becomes a record of kind `decision` (dataset `edge_decisions`,
//! [`moldops_shared::decision`]): the decision, its reason, the model and bundle that judged
//! the part with score and threshold, the limits it broke, what was written and when. Wiring,
//! deadlines and fail-safe choices for a process engineer are in docs/quality-gate.md.

pub mod config;
mod decide;
mod journal;
pub mod metrics;
mod output;
mod recorder;
mod runner;
mod task;

pub use config::GateConfig;
pub(crate) use journal::Journal;
pub use metrics::GateMetrics;
pub(crate) use task::{Context, Feed, LastRecorded, Shot, feed_without_models, start};
