//! `moldops-cloud labels report`: the label report as text or JSON.

use crate::config::LakeArgs as LakeLocation;
use anyhow::Result;
use clap::{Args, Subcommand};

/// Arguments of `moldops-cloud labels`.
#[derive(Debug, Args)]
pub struct LabelsArgs {
    /// The verb: `report`.
    #[command(subcommand)]
    pub command: LabelsCommand,
}

/// The `labels` verbs.
#[derive(Debug, Subcommand)]
pub enum LabelsCommand {
    /// Labels joined to the edges' scored shots: per model key, version and mould the labelled
    /// shots, TP/FP/FN/TN, precision and recall with 95 % intervals over lots, and a row per
    /// lot (its alarms against its QC result or scrap count). Reads everything each time.
    Report {
        /// `--lake` / `--config`: the lake to read.
        #[command(flatten)]
        lake: LakeLocation,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
}

/// Runs a `labels` verb.
pub fn run(args: LabelsArgs) -> Result<()> {
    match args.command {
        LabelsCommand::Report { lake, json } => {
            let report = super::report(&lake.path()?)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                print!("{}", super::report::to_text(&report));
            }
            Ok(())
        }
    }
}
