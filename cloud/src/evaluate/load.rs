//! Reading the evaluation input and cutting it into per-machine (and per-mold) [`Dataset`]s.
//!
//! Input is aug_data when the lake has it (etl_data's columns plus a boolean `synthetic`,
//! written by `augment`), else etl_data. Rows count as labelled when `label` is present and
//! `label_source` does not mark a weak label (contains `weak`); synthetic rows are kept for
//! training. Features are every numeric column except the bookkeeping ones; within a group a
//! feature that is constant or missing in more than 5 % of the real rows is left out, then rows
//! with a missing feature are left out. Everything left out is counted in the dataset.

use super::data::{Dataset, Matrix};
use crate::{etl, lake};
use anyhow::{Context, Result, bail};
use polars::prelude::{DataFrame, DataType};
use std::path::{Path, PathBuf};

/// The aug_data folder under the lake (augment's output).
pub use crate::augment::frame::AUG_DATA;
/// Name of the synthetic-row flag column in aug_data.
pub const SYNTHETIC: &str = "synthetic";
/// Columns augment adds to etl_data's; with etl_data's identifying columns
/// ([`crate::etl::ID_COLUMNS`]) they are never features.
pub const AUG_COLUMNS: [&str; 3] = [SYNTHETIC, "outlier", "weak_defect"];

/// True for a column that is never a feature.
fn is_meta(name: &str) -> bool {
    crate::etl::ID_COLUMNS.contains(&name) || AUG_COLUMNS.contains(&name)
}
/// A feature missing in more rows than this share is dropped rather than its rows.
const MAX_MISSING: f64 = 0.05;

/// Which dataset to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    /// aug_data when the lake has any, else etl_data.
    Auto,
    /// etl_data (real rows only), even when aug_data exists.
    Etl,
    /// aug_data; an error when the lake has none.
    Aug,
}

fn parquet_files(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("listing {}", dir.display()))?
        .map(|e| e.map(|e| e.path()))
        .collect::<std::io::Result<_>>()
        .with_context(|| format!("listing {}", dir.display()))?;
    entries.sort();
    for p in entries {
        if p.is_dir() {
            parquet_files(&p, out)?;
        } else if p.extension().is_some_and(|e| e == "parquet") {
            out.push(p);
        }
    }
    Ok(())
}

/// Reads the input frame; returns it with the name of the dataset read.
pub fn read_input(lake_dir: &Path, source: Source) -> Result<(DataFrame, &'static str)> {
    let aug_dir = lake_dir.join(AUG_DATA);
    let mut aug = Vec::new();
    if aug_dir.is_dir() && source != Source::Etl {
        parquet_files(&aug_dir, &mut aug)?;
    }
    if source == Source::Aug && aug.is_empty() {
        bail!("no aug_data under {} (run `moldops-cloud augment` first)", aug_dir.display());
    }
    if aug.is_empty() {
        return Ok((etl::read_etl(lake_dir)?, etl::ETL_DATA));
    }
    let df = lake::read_parts(&aug, &[])
        .with_context(|| format!("reading {}", aug_dir.display()))?
        .unwrap_or_default();
    Ok((df, AUG_DATA))
}

fn strings(df: &DataFrame, name: &str) -> Result<Vec<Option<String>>> {
    let Ok(c) = df.column(name) else { return Ok(vec![None; df.height()]) };
    let c = c.cast(&DataType::String).with_context(|| format!("column {name} as text"))?;
    Ok(c.str()?.iter().map(|v| v.map(str::to_string)).collect())
}

fn floats(df: &DataFrame, name: &str) -> Result<Vec<Option<f64>>> {
    let c = df.column(name).with_context(|| format!("no column {name}"))?;
    let c = c.cast(&DataType::Float64).with_context(|| format!("column {name} as a number"))?;
    Ok(c.f64()?.iter().map(|v| v.filter(|x| x.is_finite())).collect())
}

/// Splits `df` into one dataset per machine, or per machine and mold where a machine made
/// several molds.
pub fn datasets(df: &DataFrame) -> Result<Vec<Dataset>> {
    if df.height() == 0 {
        return Ok(Vec::new());
    }
    let machine = strings(df, "machine_id")?;
    let mold = strings(df, "mold")?;
    let label = floats(df, "label").context("the input has no label column")?;
    let source = strings(df, "label_source")?;
    let synthetic: Vec<bool> = match df.column(SYNTHETIC) {
        Ok(c) => c
            .cast(&DataType::Boolean)
            .context("column synthetic as boolean")?
            .bool()?
            .iter()
            .map(|v| v.unwrap_or(false))
            .collect(),
        Err(_) => vec![false; df.height()],
    };
    let feature_names: Vec<String> = df
        .columns()
        .iter()
        .filter(|c| c.dtype().is_primitive_numeric() && !is_meta(c.name().as_str()))
        .map(|c| c.name().to_string())
        .collect();
    let columns = feature_names.iter().map(|n| floats(df, n)).collect::<Result<Vec<_>>>()?;

    let mut machines: Vec<String> = machine.iter().flatten().cloned().collect();
    machines.sort();
    machines.dedup();
    let mut out = Vec::new();
    for m in machines {
        let rows: Vec<usize> =
            (0..df.height()).filter(|&i| machine[i].as_deref() == Some(m.as_str())).collect();
        let mut molds: Vec<Option<String>> = rows.iter().map(|&i| mold[i].clone()).collect();
        molds.sort();
        molds.dedup();
        let groups: Vec<(Option<String>, Vec<usize>)> = if molds.len() <= 1 {
            vec![(None, rows)]
        } else {
            molds
                .into_iter()
                .map(|md| (md.clone(), rows.iter().copied().filter(|&i| mold[i] == md).collect()))
                .collect()
        };
        for (md, rows) in groups {
            let name = match &md {
                Some(md) => format!("{m} / mold {md}"),
                None => m.clone(),
            };
            let mut ds_rows = Vec::new();
            let mut unlabelled = 0;
            for &i in &rows {
                let weak = source[i].as_deref().is_some_and(|s| s.to_ascii_lowercase().contains("weak"));
                if label[i].is_none() || (weak && !synthetic[i]) {
                    unlabelled += 1;
                } else {
                    ds_rows.push(i);
                }
            }
            out.push(build(name, &m, md, &ds_rows, unlabelled, &feature_names, &columns, &label, &synthetic));
        }
    }
    Ok(out)
}

#[allow(clippy::too_many_arguments)]
fn build(
    name: String,
    machine: &str,
    mold: Option<String>,
    rows: &[usize],
    unlabelled: usize,
    feature_names: &[String],
    columns: &[Vec<Option<f64>>],
    label: &[Option<f64>],
    synthetic: &[bool],
) -> Dataset {
    // Which features to keep is decided on the real rows: synthetic rows may lack columns the
    // generator did not produce, and then they are the ones left out.
    let real: Vec<usize> = rows.iter().copied().filter(|&i| !synthetic[i]).collect();
    let n = real.len().max(1) as f64;
    let mut kept = Vec::new();
    let mut dropped_features = Vec::new();
    for (f, col) in feature_names.iter().zip(columns) {
        let present: Vec<f64> = real.iter().filter_map(|&i| col[i]).collect();
        let missing = real.len() - present.len();
        let constant = present.windows(2).all(|w| w[0] == w[1]);
        if missing as f64 > MAX_MISSING * n || constant {
            dropped_features.push(f.clone());
        } else {
            kept.push((f.clone(), col));
        }
    }
    let mut data = Vec::new();
    let (mut y, mut syn) = (Vec::new(), Vec::new());
    let (mut incomplete, mut incomplete_synthetic) = (0, 0);
    for &i in rows {
        if kept.iter().any(|(_, c)| c[i].is_none()) {
            if synthetic[i] {
                incomplete_synthetic += 1;
            } else {
                incomplete += 1;
            }
            continue;
        }
        data.extend(kept.iter().map(|(_, c)| c[i].unwrap_or(f64::NAN)));
        y.push(u8::from(label[i].is_some_and(moldops_learn::data::is_defect)));
        syn.push(synthetic[i]);
    }
    let mut dropped = Vec::new();
    if unlabelled > 0 {
        dropped.push(("no ground-truth label".to_string(), unlabelled));
    }
    if incomplete > 0 {
        dropped.push(("missing feature values".to_string(), incomplete));
    }
    if incomplete_synthetic > 0 {
        dropped.push(("synthetic, missing feature values".to_string(), incomplete_synthetic));
    }
    let cols = kept.len();
    Dataset {
        name,
        machine_id: machine.to_string(),
        mold,
        features: kept.into_iter().map(|(f, _)| f).collect(),
        x: Matrix { rows: y.len(), cols, data },
        y,
        synthetic: syn,
        dropped,
        dropped_features,
    }
}
