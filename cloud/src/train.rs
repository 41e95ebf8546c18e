//! `moldops-cloud train`: per model key, the model families ([`family`]: a PCA monitor with
//! Hotelling's T² and Q, an LSTM autoencoder over windows of consecutive good shots) and a
//! per-shot dense autoencoder as the baseline ([`dataset`] makes the windows and the
//! time-ordered split); a threshold for each, chosen on validation windows; an evaluation on
//! the held-out test windows against ground truth — beside the baseline and the original's
//! fixed 0.1 threshold ([`metrics`]); one family selected on data it was not fitted on
//! ([`select`]), exported to ONNX and checked with tract, and a signed bundle registered as a
//! candidate in the [`crate::registry`]. A report goes to stdout (table, or `--json`), into
//! the registry beside the bundle and, with `--html`, to a page with curves ([`html`]).

pub mod cli;
mod combine;
pub mod dataset;
pub mod family;
pub mod html;
pub mod metrics;
pub mod report;
mod run;
pub mod select;
mod snapshot;

pub use cli::TrainArgs;
pub use run::{KeyOutcome, TrainReport, run_training};

/// Code version recorded with every model: crate version and, when the build set it,
/// `MOLDOPS_GIT_DESCRIBE`.
pub fn code_version() -> String {
    match option_env!("MOLDOPS_GIT_DESCRIBE") {
        Some(g) if !g.is_empty() => format!("moldops-cloud {} ({g})", env!("CARGO_PKG_VERSION")),
        _ => format!("moldops-cloud {}", env!("CARGO_PKG_VERSION")),
    }
}

#[cfg(test)]
mod tests;
