//! `moldops-cloud`: every cloud verb (ingest, import, etl, augment, evaluate, train, models,
//! rollout, score, pipeline, api, lake). Logs go to stderr (`RUST_LOG`, default `info`); stdout
//! carries only machine-readable lines and reports.

use clap::Parser;
use moldops_cloud::cli;
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
    cli::exit_code(cli::run(cli.command))
}
