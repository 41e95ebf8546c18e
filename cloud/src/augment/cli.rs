//! The `moldops-cloud augment` command line: runs augment over a lake, writes the report
//! (JSON + HTML) and prints a summary table (or the JSON with `--json`).

use super::{AugmentConfig, progress::Progress};
use anyhow::Result;
use clap::Args;
use std::path::PathBuf;

/// Arguments of `moldops-cloud augment`.
#[derive(Debug, Clone, Args)]
pub struct AugmentArgs {
    /// `--lake` / `--config`: the lake to read `etl_data` from and write `aug_data` into.
    #[command(flatten)]
    pub lake: crate::config::LakeArgs,
    /// Augment settings (TOML; see docs/augment.md).
    #[arg(long)]
    pub settings: Option<PathBuf>,
    /// Folder for report.json and report.html (default: <lake>/_augment).
    #[arg(long, alias = "out")]
    pub report: Option<PathBuf>,
    /// Seed of everything random (overrides the settings file).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Synthetic rows per group (overrides the settings file).
    #[arg(long)]
    pub synthetic: Option<usize>,
    /// GAN training steps (overrides the settings file).
    #[arg(long)]
    pub steps: Option<usize>,
    /// `--device`: where the GAN trains.
    #[command(flatten)]
    pub device: crate::config::DeviceArgs,
    /// Print the JSON report instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// Runs the command.
pub fn run(args: AugmentArgs) -> Result<()> {
    let lake = args.lake.path()?;
    let mut cfg: AugmentConfig = crate::config::settings(args.settings.as_deref())?;
    if let Some(s) = args.seed {
        cfg.seed = s;
    }
    if let Some(n) = args.synthetic {
        cfg.synthetic = Some(n);
    }
    if let Some(n) = args.steps {
        cfg.gan.steps = n;
    }
    let device = args.device.resolve()?;
    let (report, plots) = super::run(&lake, &cfg, &device, &Progress::new(args.json))?;
    let dir = args.report.unwrap_or_else(|| lake.join("_augment"));
    super::write_reports(&dir, &report, &plots)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", super::summary_table(&report));
        println!("report: {}", dir.join("report.html").display());
    }
    Ok(())
}
