//! The `moldops-cloud etl` command line: runs the ETL over a lake and prints its summary (a
//! table, or JSON); the same JSON is saved as `_etl/last_run.json`.

use super::EtlConfig;
use anyhow::Result;
use clap::Args;
use std::path::PathBuf;

/// Arguments of `moldops-cloud etl`.
#[derive(Debug, Clone, Args)]
pub struct EtlArgs {
    /// `--lake` / `--config`: the lake to read the inputs from and write `etl_data` into.
    #[command(flatten)]
    pub lake: crate::config::LakeArgs,
    /// ETL settings (TOML: tolerance_ms, [rules] sentinel_abs and limits).
    #[arg(long)]
    pub settings: Option<PathBuf>,
    /// As-of tolerance: ms, or `auto` (half each machine's median cycle; the default).
    /// Overrides the settings file.
    #[arg(long)]
    pub tolerance_ms: Option<super::Tolerance>,
    /// Machines merged at once (0: one per core).
    #[arg(long, default_value_t = 0)]
    pub jobs: usize,
    /// `--machine`, `--shard I/N`: only these machines (fan-out over N runs at once).
    #[command(flatten)]
    pub select: crate::shard::MachineSelection,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// Runs the command.
pub fn run(args: EtlArgs) -> Result<()> {
    let lake = args.lake.path()?;
    let mut cfg: EtlConfig = crate::config::settings(args.settings.as_deref())?;
    if let Some(t) = args.tolerance_ms {
        cfg.tolerance_ms = t;
    }
    cfg.jobs = args.jobs;
    let summary = super::run_selected(&lake, &cfg, &args.select)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&summary)?);
    } else {
        print!("{}", summary.to_table());
    }
    Ok(())
}
