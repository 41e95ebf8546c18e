//! `moldops-cloud lake summary|verdicts|compact`: inspecting and compacting the lake.

use crate::config::LakeArgs as LakeLocation;
use anyhow::Result;
use clap::{Args, Subcommand};
use std::ops::RangeInclusive;

/// Arguments of `moldops-cloud lake`.
#[derive(Debug, Args)]
pub struct LakeArgs {
    /// The verb: `summary`, `verdicts` or `compact`.
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
    /// Which model judged which shots of one machine, and why: the edges' live scores from
    /// `edge_scores` — score, threshold, the exact bundle (sha256), and for alarms the
    /// features that drove the score.
    Verdicts {
        /// `--lake` / `--config`: the lake to read.
        #[command(flatten)]
        lake: LakeLocation,
        /// The machine.
        #[arg(long)]
        machine: String,
        /// Only these shot numbers: `N` or `FIRST..LAST` (inclusive).
        #[arg(long, value_parser = parse_shots)]
        shots: Option<RangeInclusive<u64>>,
        /// Only alarms.
        #[arg(long)]
        alarms: bool,
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
        LakeCommand::Verdicts { lake, machine, shots, alarms, json } => {
            let query = super::verdicts::Query { machine_id: machine, shots, alarms_only: alarms };
            let found = super::verdicts::verdicts(&lake.path()?, &query)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&found)?);
            } else {
                print!("{}", super::verdicts::to_table(&query.machine_id, &found));
            }
            Ok(())
        }
        LakeCommand::Compact { lake, min_files } => compact(&lake, min_files),
    }
}

/// `N` or `FIRST..LAST` (also `FIRST-LAST`), inclusive.
fn parse_shots(text: &str) -> Result<RangeInclusive<u64>, String> {
    let number = |t: &str| t.trim().parse::<u64>().map_err(|e| format!("{t:?} is not a shot number: {e}"));
    let range = match text.split_once("..").or_else(|| text.split_once('-')) {
        Some((a, b)) => number(a)?..=number(b.trim_start_matches('='))?,
        None => number(text)?..=number(text)?,
    };
    if range.is_empty() {
        return Err(format!("{text}: the first shot is after the last"));
    }
    Ok(range)
}

fn compact(lake: &LakeLocation, min_files: usize) -> Result<()> {
    use crate::storage::mirror;
    let location = lake.location()?;
    // On a bucket: the lease first, then the copy, so that it holds every earlier compaction.
    let lease = match location.to_str().filter(|_| mirror::is_remote(&location)) {
        Some(url) => Some(super::compact::BucketLease::take(url)?),
        None => None,
    };
    let dir = crate::config::working_folder(&location)?;
    let publish = || match &lease {
        Some(held) => {
            held.renew()?;
            mirror::push_all()
        }
        None => Ok(()),
    };
    let r = super::compact::compact_publishing(&dir, min_files, &publish)?;
    if lease.is_some() {
        // The inputs' removal, still under the lease (freed when it is dropped).
        publish()?;
    }
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

#[cfg(test)]
mod tests {
    use super::parse_shots;

    #[test]
    fn shot_ranges_parse_inclusive_and_refuse_nonsense() {
        assert_eq!(parse_shots("100..200"), Ok(100..=200));
        assert_eq!(parse_shots("100..=200"), Ok(100..=200));
        assert_eq!(parse_shots("100-200"), Ok(100..=200));
        assert_eq!(parse_shots("7"), Ok(7..=7));
        assert!(parse_shots("200..100").is_err());
        assert!(parse_shots("a..b").is_err());
    }
}
