//! A mould's model without a human step: which model keys need a model trained now, written as
//! the trigger file the lifecycle pipeline's tasks run on (`deploy/pipelines/mould-lifecycle.toml`,
//! docs/mould-lifecycle.md). Training, the promotion gate, the edges' shadow runs and the canary
//! rollout do the rest.
//!
//! - [`plan`]: the rules — a (machine, mould) the lake has enough shots of and the registry has
//!   no model for; a key whose model drifted since its newest version was built; a key whose
//!   labels show it clearly below its precision or recall target.
//! - [`sources`]: what the rules read — the lake's shots, the registry, the drift trigger and
//!   the labels' evidence.
//! - [`cli`]: `moldops-cloud lifecycle plan`.

pub mod cli;
pub mod plan;
pub mod sources;

/// The lifecycle pipeline as shipped (`deploy/pipelines/mould-lifecycle.toml`): drift → plan →
/// etl → train → register → rollout, every task after `plan` only when the plan has keys.
pub const PIPELINE_TOML: &str = include_str!("../../deploy/pipelines/mould-lifecycle.toml");
