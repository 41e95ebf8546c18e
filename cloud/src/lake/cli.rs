//! `moldops-cloud lake summary|compact`: inspecting and compacting the lake.

use crate::config::LakeArgs as LakeLocation;
use anyhow::Result;
use clap::{Args, Subcommand};

/// Arguments of `moldops-cloud lake`.
#[derive(Debug, Args)]
pub struct LakeArgs {
    /// The verb: `summary` or `compact`.
    #[command(subcommand)]
    pub command: LakeCommand,
}

/// The `lake` verbs.
#[derive(Debug, Subcommand)]
pub enum LakeCommand {
    /// What has arrived: rows, edges, time range, files and shots per dataset and machine,
    /// and the quarantine.
    Summary {
        /// `--lake` / `--config`: the lake to summarise.
        #[command(flatten)]
        lake: LakeLocation,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Merge each partition's committed part files (one per ingest commit) into one file, so
    /// readers open a few files per machine and day. Safe next to a running ingest.
    Compact {
        /// `--lake` / `--config`: the lake to compact.
        #[command(flatten)]
        lake: LakeLocation,
        /// Only partitions with at least this many part files.
        #[arg(long, default_value_t = 2)]
        min_files: usize,
    },
}

/// Runs a `lake` verb.
pub fn run(args: LakeArgs) -> Result<()> {
    match args.command {
        LakeCommand::Summary { lake, json } => summary(&lake, json),
        LakeCommand::Compact { lake, min_files } => compact(&lake, min_files),
    }
}

fn compact(lake: &LakeLocation, min_files: usize) -> Result<()> {
    let r = super::compact::compact(&lake.path()?, min_files)?;
    let resumed = if r.journals_completed > 0 {
        format!("; {} interrupted compaction(s) completed", r.journals_completed)
    } else {
        String::new()
    };
    println!(
        "compacted {} partitions: {} part files into {} ({} rows){resumed}",
        r.partitions, r.files_in, r.partitions, r.rows
    );
    Ok(())
}

fn summary(lake: &LakeLocation, json: bool) -> Result<()> {
    let s = super::summary(&lake.path()?)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&s)?);
    } else {
        print!("{}", s.to_table());
    }
    Ok(())
}
