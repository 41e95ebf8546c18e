//! The `moldops-cloud pull` command line: a `pull.toml`, optionally some of its sources, a report
//! per source as a line of text or JSON.

use super::{PullOptions, PullReport};
use anyhow::Result;
use clap::Args;
use std::path::PathBuf;

/// Arguments of `moldops-cloud pull`.
#[derive(Debug, Clone, Args)]
pub struct PullArgs {
    /// The sources file (`[[source]]` tables, see docs/etl.md), e.g.
    /// deploy/pull/pull.example.toml: a path or an `s3://` object.
    pub sources: PathBuf,
    /// Pull only these sources (by name; default every one).
    #[arg(long = "source")]
    pub only: Vec<String>,
    /// Lake folder (default: [lake] path of --config, else moldops-data/lake).
    #[arg(long)]
    pub lake: Option<PathBuf>,
    /// Config file to take the lake folder from.
    #[arg(long, env = "MOLDOPS_CLOUD_CONFIG")]
    pub config: Option<PathBuf>,
    /// Start the named sources over from their first row, in a new lake stream (for a pull
    /// state lost or corrupt; rows already in the lake come again).
    #[arg(long, requires = "only")]
    pub restart: bool,
    /// Print JSON reports.
    #[arg(long)]
    pub json: bool,
}

/// A progress bar on stderr (drawn only when stderr is a terminal): rows read, rows/s.
fn progress_bar() -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new_spinner();
    if let Ok(style) =
        indicatif::ProgressStyle::with_template("{spinner} {msg} {pos} rows {per_sec} {elapsed_precise}")
    {
        bar.set_style(style);
    }
    bar
}

/// Runs the command.
pub fn run(args: PullArgs) -> Result<()> {
    let lake = crate::config::lake_path(args.config.as_deref(), args.lake.as_deref())?;
    let mut sources =
        super::config::load_at(&crate::storage::object::local_file(&args.sources)?, &args.sources)?;
    if !args.only.is_empty() {
        if let Some(unknown) = args.only.iter().find(|n| !sources.iter().any(|s| &s.config.name == *n)) {
            anyhow::bail!("no source {unknown:?} in {}", args.sources.display());
        }
        sources.retain(|s| args.only.contains(&s.config.name));
    }
    // One source failing (its server down, its state refused) does not keep the others back.
    let failed = moldops_common::runtime::block_on(async {
        let mut failed = 0;
        for source in &sources {
            let bar = progress_bar();
            bar.set_message(source.config.name.clone());
            let opts = PullOptions { restart: args.restart, progress: Some(bar.clone()) };
            let report = super::pull_source(&lake, source, &opts).await;
            bar.finish_and_clear();
            match report {
                Ok(r) => print(&r, args.json)?,
                Err(e) => {
                    failed += 1;
                    eprintln!("error: source {}: {e:#}", source.config.name);
                }
            }
        }
        anyhow::Ok(failed)
    })??;
    anyhow::ensure!(failed == 0, "{failed} of {} source(s) failed", sources.len());
    Ok(())
}

fn print(r: &PullReport, json: bool) -> Result<()> {
    if json {
        println!("{}", serde_json::to_string(r)?);
    } else {
        println!(
            "{}: {} rows read in {} pages, {} new -> {} written, {} already pulled, {} already in the lake, \
             {} quarantined, {} excluded, {} without time, {} in the future; watermark {} ({:.0} rows/s)",
            r.source,
            r.rows_read,
            r.pages,
            r.new_rows,
            r.written,
            r.already_pulled,
            r.duplicates,
            r.quarantined,
            r.excluded,
            r.without_time,
            r.in_future,
            r.watermark.as_deref().unwrap_or("none"),
            r.rows_per_s
        );
    }
    Ok(())
}
