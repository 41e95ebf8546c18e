//! `moldops-cloud score`: batch scoring of etl_data with registry or file bundles.

use crate::config;
use crate::rollout::cli::{BundleSource, read_key};
use anyhow::{Result, bail};
use clap::Args;
use std::path::PathBuf;

/// Arguments of `moldops-cloud score`.
#[derive(Debug, Args)]
pub struct ScoreArgs {
    /// Lake folder (default: [lake] path of --config, else moldops-data/lake).
    #[arg(long)]
    pub lake: Option<PathBuf>,
    /// Config file to take the lake folder from.
    #[arg(long, env = "MOLDOPS_CLOUD_CONFIG")]
    pub config: Option<PathBuf>,
    /// Which bundles to score with (default: every key's production version in the registry).
    #[command(flatten)]
    pub source: BundleSource,
    /// Registry public key (hex, or a file holding it); needed with --bundle.
    #[arg(long)]
    pub public_key: Option<String>,
    /// Print one JSON summary per bundle instead of a line.
    #[arg(long)]
    pub json: bool,
    /// `--machine`, `--shard I/N`: score only these machines' keys (fan-out over N runs at once).
    #[command(flatten)]
    pub select: crate::shard::MachineSelection,
}

/// Scores the lake with each bundle and prints a summary per bundle.
pub fn run(args: ScoreArgs) -> Result<()> {
    let lake = config::lake_path(args.config.as_deref(), args.lake.as_deref())?;
    let (bundles, verified) = args.source.load()?;
    let key = match &args.public_key {
        Some(k) => Some(read_key(k)?),
        None if verified => None,
        None => bail!("--public-key: needed to verify a bundle that does not come from the registry"),
    };
    for bundle in &bundles {
        let machine = bundle.manifest_unverified().map(|m| m.model_key.machine_id).unwrap_or_default();
        if !args.select.includes(&machine) {
            continue;
        }
        let mut model = super::load_model(bundle, key.as_ref())?;
        let summary = super::score_lake(&lake, &mut model)?;
        print_summary(&summary, args.json)?;
    }
    Ok(())
}

fn print_summary(summary: &super::BatchSummary, json: bool) -> Result<()> {
    if json {
        println!("{}", serde_json::to_string(&summary)?);
    } else {
        println!(
            "{} v{}: {} shots scored, {} alarms, {} in warming windows{}",
            summary.model_id,
            summary.version,
            summary.scored,
            summary.alarms,
            summary.warming,
            summary.file.as_ref().map_or(String::new(), |f| format!(" → {}", f.display()))
        );
    }
    Ok(())
}
