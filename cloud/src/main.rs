//! `moldops-cloud`: every cloud verb (ingest, import, etl, augment, evaluate, train, models,
//! rollout, score, pipeline, api, lake). Logs go to stderr (`RUST_LOG`, default `info`); stdout
//! carries only machine-readable lines and reports.

use clap::Parser;
use moldops_cloud::cli;
use moldops_cloud::pipeline::export::skip_unless_exists;
use std::process::ExitCode;

#[derive(Debug, Parser)]
#[command(
    name = "moldops-cloud",
    version,
    about = "moldops cloud: ingest edges' data into a Parquet lake, build datasets, evaluate and \
             train models, keep a signed registry, roll models out, run it all as a pipeline"
)]
struct Cli {
    #[command(subcommand)]
    command: cli::Command,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    cli::init_tracing("info");
    // A task of an exported DAG with `when_exists` (`pipeline export`): skipped when the path is absent.
    match skip_unless_exists(|name| std::env::var(name).ok(), moldops_cloud::storage::object::exists) {
        Ok(Some(code)) => ExitCode::from(code),
        Ok(None) => cli::exit_code(cli::run(cli.command)),
        Err(e) => cli::exit_code(Err(e)),
    }
}
