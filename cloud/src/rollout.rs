//! The cloud side of closing the loop: the rollout manager that sends a signed bundle to a
//! fleet of edges over MQTT ([`fleet`]: canaries first, stop on failures, status, rollback; the
//! protocol in `docs/rollout.md`) through one MQTT [`link`]. [`cli`] is `moldops-cloud rollout …`.

pub mod cli;
pub mod fleet;
pub mod link;

pub use fleet::{EdgeOutcome, Plan, RolloutReport, publish, rollback, status};
pub use link::Link;
