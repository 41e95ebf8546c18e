//! The `moldops-cloud` command line as a library: the verbs ([`Command`]), their dispatch
//! ([`run`]) and the exit code of a result ([`exit_code`]).
//!
//! Each stage owns its arguments and their handling in its own `cli` module; this module only
//! lists the verbs. It is a library so that another binary can carry the same verbs: the
//! one-machine demo (`moldops-demo`) runs its learning pipeline's tasks as child processes of
//! itself.

use crate::config::ConfigErrors;
use anyhow::Result;
use clap::Subcommand;
use std::process::ExitCode;

/// Every verb of `moldops-cloud`.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Subscribe to every edge's data topic and write the batches into the lake.
    Ingest(crate::ingest::cli::IngestArgs),
    /// Load historical shot/peripheral tables (CSV, Parquet) or quality labels into the lake.
    Import(crate::import::cli::ImportArgs),
    /// Pull history incrementally from PostgreSQL, MS-SQL or InfluxDB into the lake (watermarks).
    Pull(crate::pull::cli::PullArgs),
    /// Merge shots, peripheral readings and labels into etl_data (incremental).
    Etl(crate::etl::cli::EtlArgs),
    /// Outlier fence, weak labels (MDS + DBSCAN), GAN defect rows behind a quality gate → aug_data + report.
    Augment(crate::augment::cli::AugmentArgs),
    /// Grid search of the original's eight classifiers per machine (and mold): stratified seeded
    /// k-fold, F1 / PR-AUC / balanced accuracy, real vs real + synthetic → evaluation record.
    Evaluate(crate::evaluate::cli::EvaluateArgs),
    /// Train the LSTM autoencoder (and its baseline) per model key on etl_data, evaluate on a
    /// time-ordered held-out split, export ONNX and register a signed candidate bundle.
    Train(crate::train::cli::TrainArgs),
    /// The model registry: list, show, promote, archive, keygen, export-bundle.
    Models(crate::registry::cli::ModelsArgs),
    /// Send a signed model bundle to edges over MQTT (canaries first), show their states, roll back.
    Rollout(crate::rollout::cli::RolloutArgs),
    /// Batch scoring: score etl_data with a bundle's model, as the edge does, into `scores/`.
    Score(crate::score::cli::ScoreArgs),
    /// The learning DAG (import ∥ pull ∥ compact → etl → augment → evaluate ∥ train → register →
    /// rollout), locally or as Kubernetes Jobs; runs, resume, schedule.
    Pipeline(crate::pipeline::cli::PipelineArgs),
    /// Drift of the models on the floor: judge the edges' new score and feature summaries (PSI,
    /// KS, alarm rate against target) into `drift_events`; `--trigger` writes a retraining trigger.
    Drift(crate::drift::cli::DriftArgs),
    /// A mould's model without a human step: which (machine, mould) keys are due for training.
    Lifecycle(crate::lifecycle::cli::LifecycleArgs),
    /// Read-only HTTP API over a data folder: /healthz, /lake, /models, /pipeline/runs.
    Api(crate::api::cli::ApiArgs),
    /// The operator console: fleet, machines, alarms, models, rollouts, pipeline runs and
    /// reports in a browser; acknowledge alarms, promote and archive models (signed in, audited).
    Console(crate::console::cli::ConsoleArgs),
    /// Labels joined to the edges' scored shots: precision and recall per model, version and
    /// mould, with intervals over lots (`labels report`).
    Labels(crate::labels::cli::LabelsArgs),
    /// Inspect the lake, or compact it.
    Lake(crate::lake::cli::LakeArgs),
    /// Where `train` and `augment` would compute with this `--device`: resolves it, runs a small
    /// computation there and prints the device (a GPU pod's check that its GPU is usable).
    Device(crate::config::DeviceArgs),
}

/// Runs one verb to its end; then publishes what it changed in the buckets it worked on
/// (`s3://` lakes and registries: [`crate::storage::mirror`]) — only when it succeeded.
pub fn run(command: Command) -> Result<()> {
    dispatch(command)?;
    crate::storage::mirror::push_all()
}

fn dispatch(command: Command) -> Result<()> {
    match command {
        Command::Ingest(args) => crate::ingest::cli::run(args),
        Command::Import(args) => crate::import::cli::run(args),
        Command::Pull(args) => crate::pull::cli::run(args),
        Command::Etl(args) => crate::etl::cli::run(args),
        Command::Augment(args) => crate::augment::cli::run(args),
        Command::Evaluate(args) => crate::evaluate::cli::run_cli(args),
        Command::Train(args) => crate::train::cli::run(args),
        Command::Models(args) => crate::registry::cli::run(args),
        Command::Rollout(args) => crate::rollout::cli::run(args),
        Command::Score(args) => crate::score::cli::run(args),
        Command::Pipeline(args) => crate::pipeline::cli::run(args),
        Command::Drift(args) => crate::drift::cli::run(args),
        Command::Lifecycle(args) => crate::lifecycle::cli::run(args),
        Command::Api(args) => crate::api::cli::run(args),
        Command::Console(args) => crate::console::cli::run(args),
        Command::Labels(args) => crate::labels::cli::run(args),
        Command::Lake(args) => crate::lake::cli::run(args),
        Command::Device(args) => {
            let device = args.resolve()?;
            device.check()?;
            println!("{}", device.description);
            Ok(())
        }
    }
}

/// The process exit code of a verb's result, printing the error: 2 for a configuration that
/// does not validate (every problem listed), 1 for any other failure.
pub fn exit_code(result: Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.downcast_ref::<ConfigErrors>().is_some() => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Logs to stderr, filtered by `RUST_LOG` or else `default`.
pub fn init_tracing(default: &str) {
    moldops_common::logging::init(default);
}
