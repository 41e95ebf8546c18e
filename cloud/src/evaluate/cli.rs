//! The `evaluate` command line: flags, writing the records, the table or JSON on stdout, the
//! exit status (non-zero when nothing could be evaluated or, unless `--keep-going`, a
//! classifier failed outright), and
//! `--dump` (each group's rows and folds as JSON, for the scikit-learn benchmark).

use super::classifiers::Kind;
use super::grid::GridName;
use super::load::Source;
use super::{EvaluateConfig, cv, data::Dataset, default_out, load, run};
use anyhow::{Context, Result, bail};
use clap::Args;
use std::path::{Path, PathBuf};

/// Arguments of `moldops-cloud evaluate`.
#[derive(Debug, Args)]
pub struct EvaluateArgs {
    /// Lake folder (holds etl_data, and aug_data once `augment` ran).
    #[arg(long, default_value = "moldops-data/lake")]
    pub lake: PathBuf,
    /// Folder for the records (default: `evaluations/` next to the lake).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Folds of the stratified k-fold (fewer when the rarer class has fewer rows).
    #[arg(long, default_value_t = 5)]
    pub folds: usize,
    /// Seed of the fold shuffle and of every randomised classifier.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Print the records as JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Comma-separated subset: knn,svm,tree,forest,mlp,adaboost,nb,qda (default: all).
    #[arg(long, value_delimiter = ',')]
    pub classifiers: Vec<String>,
    /// Parameter grids.
    #[arg(long, value_enum, default_value = "original")]
    pub grid: GridName,
    /// Input dataset.
    #[arg(long, value_enum, default_value = "auto")]
    pub source: Source,
    /// Also write each group's rows, labels and folds as JSON into this folder (benchmark input).
    #[arg(long)]
    pub dump: Option<PathBuf>,
    /// Exit 0 even when a classifier could not be fitted at all (e.g. QDA on a class with one
    /// training row); the errors stay in the record and the table.
    #[arg(long)]
    pub keep_going: bool,
}

/// Runs the command: evaluates, writes one record per machine, prints them; fails when no group
/// could be evaluated or (without `--keep-going`) a classifier failed outright.
pub fn run_cli(args: EvaluateArgs) -> Result<()> {
    if args.folds < 2 {
        bail!("--folds must be at least 2, got {}", args.folds);
    }
    let classifiers = if args.classifiers.is_empty() {
        Kind::ALL.to_vec()
    } else {
        args.classifiers.iter().map(|s| Kind::parse(s.trim())).collect::<Result<Vec<_>>>()?
    };
    let lake = crate::config::working_folder(&args.lake)?;
    let cfg = EvaluateConfig {
        lake: lake.clone(),
        source: args.source,
        folds: args.folds,
        seed: args.seed,
        classifiers,
        grid: args.grid,
    };
    if let Some(dir) = &args.dump {
        dump(&cfg, dir)?;
    }
    let records = run(&cfg)?;
    let out = args.out.clone().unwrap_or_else(|| default_out(&lake));
    let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%S%.3fZ").to_string();
    let mut failures = Vec::new();
    for r in &records {
        let path = r.write(&out, &stamp)?;
        tracing::info!(path = %path.display(), "evaluation record written");
        failures.extend(r.failures());
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&records)?);
    } else {
        for r in &records {
            print!("{}", r.to_table());
        }
    }
    if records.iter().all(|r| r.groups.iter().all(|g| g.skipped.is_some())) {
        let why: Vec<String> = records
            .iter()
            .flat_map(|r| {
                r.groups.iter().map(|g| format!("{}: {}", g.name, g.skipped.as_deref().unwrap_or("")))
            })
            .collect();
        bail!("no group could be evaluated: {}", why.join("; "));
    }
    if !failures.is_empty() && args.keep_going {
        tracing::warn!(failures = failures.len(), "classifier(s) failed: {}", failures.join("; "));
    } else if !failures.is_empty() {
        bail!("{} classifier(s) failed: {}", failures.len(), failures.join("; "));
    }
    Ok(())
}

/// Writes `dir/{n}.json` for each group: name, features, x, y (real rows only), and the test
/// indices (into those rows) of the same folds `evaluate` uses.
fn dump(cfg: &EvaluateConfig, dir: &Path) -> Result<()> {
    let (df, _) = load::read_input(&cfg.lake, cfg.source)?;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    for (n, ds) in load::datasets(&df)?.iter().enumerate() {
        let Some(json) = dump_group(ds, cfg)? else { continue };
        let path = dir.join(format!("{n}.json"));
        std::fs::write(&path, serde_json::to_string(&json)?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

fn dump_group(ds: &Dataset, cfg: &EvaluateConfig) -> Result<Option<serde_json::Value>> {
    let real = ds.real();
    let y: Vec<u8> = real.iter().map(|&i| ds.y[i]).collect();
    let (good, bad) = ds.class_counts();
    let Ok(k) = cv::effective_folds(cfg.folds, good.min(bad)) else { return Ok(None) };
    let folds = cv::stratified_folds(&y, k, cfg.seed)?;
    let x: Vec<&[f64]> = real.iter().map(|&i| ds.x.row(i)).collect();
    Ok(Some(serde_json::json!({
        "name": ds.name, "features": ds.features, "x": x, "y": y, "folds": folds,
    })))
}
