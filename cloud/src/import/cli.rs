//! The `moldops-cloud import` command line: tables through a profile file (or the generic
//! profile), the simulator's quality log or lot tables as labels; a report per file, as a line of text
//! or JSON.

use super::{ImportProfile, ImportReport, TableKind};
use anyhow::Result;
use clap::Args;
use std::path::PathBuf;

/// Arguments of `moldops-cloud import`.
#[derive(Debug, Clone, Args)]
pub struct ImportArgs {
    /// Files to import (CSV or Parquet tables; JSON lines with --labels): paths or `s3://` objects.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// Lake folder (default: [lake] path of --config, else moldops-data/lake).
    #[arg(long)]
    pub lake: Option<PathBuf>,
    /// Config file to take the lake folder from.
    #[arg(long, env = "MOLDOPS_CLOUD_CONFIG")]
    pub config: Option<PathBuf>,
    /// Import profile (TOML), e.g. deploy/profiles/import-woojin.toml.
    #[arg(long, conflicts_with_all = ["labels", "lot_labels", "scrap_counts", "time_column"])]
    pub profile: Option<PathBuf>,
    /// The files are quality logs (JSON lines of machine_id, shot_number, ts_ms, label, defect).
    #[arg(long, conflicts_with_all = ["lot_labels", "scrap_counts"])]
    pub labels: bool,
    /// The files are lot tables (CSV or Parquet: machine_id, from_ts, to_ts, defect_ratio[, lot];
    /// times RFC 3339 with offset or epoch ms).
    #[arg(long, conflicts_with = "scrap_counts")]
    pub lot_labels: bool,
    /// The files are scrap counts (CSV, workbook or Parquet: machine_id, from_ts, to_ts, scrap[,
    /// parts][, lot]), stored as lot-level labels; see docs/etl.md.
    #[arg(long)]
    pub scrap_counts: bool,
    /// Generic profile: the time column (every numeric column becomes a value).
    #[arg(long, requires = "machine")]
    pub time_column: Option<String>,
    /// Generic profile: the machine id of every row.
    #[arg(long)]
    pub machine: Option<String>,
    /// Generic profile: the rows are readings of this peripheral device (short name).
    #[arg(long)]
    pub peripheral: Option<String>,
    /// Encoding of text files (overrides the profile's): auto, utf-8, cp949, utf-16le, …
    #[arg(long)]
    pub encoding: Option<String>,
    /// Cell delimiter of text files (overrides the profile's): auto, tab, or one character.
    #[arg(long)]
    pub delimiter: Option<String>,
    /// Workbook sheet to import (overrides the profile's; default the first).
    #[arg(long)]
    pub sheet: Option<String>,
    /// Print JSON reports.
    #[arg(long)]
    pub json: bool,
}

impl ImportArgs {
    /// `p` with the reading options given on the command line.
    fn with_overrides(&self, mut p: ImportProfile) -> Result<ImportProfile> {
        if let Some(e) = &self.encoding {
            p.encoding = e.clone();
        }
        if let Some(d) = &self.delimiter {
            p.delimiter = d.clone();
        }
        if let Some(s) = &self.sheet {
            p.sheet = Some(s.clone());
        }
        p.check()?;
        Ok(p)
    }
}

/// A progress bar on stderr (drawn only when stderr is a terminal): bytes read, bytes/s.
fn progress_bar() -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new(0);
    if let Ok(style) = indicatif::ProgressStyle::with_template(
        "{spinner} {bytes}/{total_bytes} {binary_bytes_per_sec} {elapsed_precise} {wide_bar}",
    ) {
        bar.set_style(style);
    }
    bar
}

/// Runs the command.
pub fn run(args: ImportArgs) -> Result<()> {
    let lake = crate::config::lake_path(args.config.as_deref(), args.lake.as_deref())?;
    let profile = match (&args.profile, &args.time_column, &args.machine) {
        (Some(p), _, _) => Some(args.with_overrides(ImportProfile::load(p)?)?),
        (None, Some(t), Some(m)) => {
            let kind = if args.peripheral.is_some() { TableKind::Peripheral } else { TableKind::Shots };
            let p = ImportProfile { device: args.peripheral.clone(), ..ImportProfile::generic(t, m, kind) };
            Some(args.with_overrides(p)?)
        }
        _ => None,
    };
    // Lot tables have no profile: the reading options come from the command line alone.
    let lot_options = super::table::ReadOptions {
        encoding: super::table::encoding::by_label(args.encoding.as_deref().unwrap_or("auto"))?,
        delimiter: super::profile::parse_delimiter(args.delimiter.as_deref().unwrap_or("auto"))?,
        sheet: args.sheet.clone(),
        ..Default::default()
    };
    anyhow::ensure!(
        args.labels || args.lot_labels || args.scrap_counts || profile.is_some(),
        "give --profile, --labels, --lot-labels, --scrap-counts, or --time-column with --machine"
    );
    let mut failed = 0;
    for given in &args.files {
        let file = &match crate::storage::object::local_file(given) {
            Ok(f) => f,
            Err(e) => {
                failed += 1;
                eprintln!("error: {e:#}");
                continue;
            }
        };
        let report = match &profile {
            Some(p) => super::import_table_with(&lake, file, p, progress_bar()),
            None if args.lot_labels => super::import_lot_labels(&lake, file, &lot_options),
            None if args.scrap_counts => crate::labels::scrap::import(&lake, file, &lot_options),
            None => super::import_quality_log(&lake, file),
        };
        match report {
            Ok(r) => print(&r, args.json)?,
            Err(e) => {
                failed += 1;
                eprintln!("error: {}: {e:#}", given.display());
            }
        }
    }
    anyhow::ensure!(failed == 0, "{failed} of {} file(s) failed", args.files.len());
    Ok(())
}

fn print(r: &ImportReport, json: bool) -> Result<()> {
    if json {
        println!("{}", serde_json::to_string(r)?);
    } else {
        println!(
            "{}: {} rows -> {} written to {}, {} already there, {} quarantined, {} header rows, {} excluded ({}; {}; {:.0} rows/s)",
            r.file,
            r.rows,
            r.written,
            r.dataset,
            r.duplicates,
            r.quarantined,
            r.header_rows,
            r.excluded,
            r.source,
            r.decoding,
            r.rows as f64 / r.elapsed_s.max(1e-9)
        );
    }
    Ok(())
}
