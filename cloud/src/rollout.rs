//! The cloud side of closing the loop: the rollout manager that sends a signed bundle to a
//! fleet of edges over MQTT ([`fleet`]: canaries first, stop on failures, status, rollback; the
//! protocol in `docs/rollout.md`) and batch scoring of `etl_data` with the same model and the
//! same windows as the edge ([`score`]). [`cli`] is `moldops-cloud rollout …` and `score`.

pub mod cli;
pub mod fleet;
pub mod link;
pub mod score;

pub use fleet::{EdgeOutcome, Plan, RolloutReport, publish, rollback, status};
pub use link::Link;
