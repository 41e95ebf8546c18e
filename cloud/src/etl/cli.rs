//! The `moldops-cloud etl` command line: runs the ETL over a lake and prints its summary (a
//! table, or JSON); the same JSON is saved as `_etl/last_run.json`.

use super::EtlConfig;
use anyhow::{Context, Result};
use clap::Args;
use std::path::PathBuf;

#[derive(Debug, Clone, Args)]
pub struct EtlArgs {
    /// Lake folder (default: [lake] path of --config, else moldops-data/lake).
    #[arg(long)]
    pub lake: Option<PathBuf>,
    /// Config file to take the lake folder from.
    #[arg(long, env = "MOLDOPS_CLOUD_CONFIG")]
    pub config: Option<PathBuf>,
    /// ETL settings (TOML: tolerance_ms, [rules] sentinel_abs and limits).
    #[arg(long)]
    pub settings: Option<PathBuf>,
    /// As-of tolerance in ms (overrides the settings file; default 30000).
    #[arg(long)]
    pub tolerance_ms: Option<i64>,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// Runs the command.
pub fn run(args: EtlArgs) -> Result<()> {
    let lake = crate::config::lake_path(args.config.as_deref(), args.lake.as_deref())?;
    let mut cfg = match &args.settings {
        Some(p) => {
            let text = std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?;
            toml::from_str::<EtlConfig>(&text).with_context(|| format!("parsing {}", p.display()))?
        }
        None => EtlConfig::default(),
    };
    if let Some(t) = args.tolerance_ms {
        cfg.tolerance_ms = t;
    }
    let summary = super::run(&lake, &cfg)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&summary)?);
    } else {
        print!("{}", summary.to_table());
    }
    Ok(())
}
