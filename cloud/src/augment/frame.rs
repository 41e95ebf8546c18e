//! Tables in and out of `augment`: the (machine, mold) groups of `etl_data`, their feature
//! matrices, and the `aug_data` frames — real rows with `outlier`, `weak_defect`, `synthetic`
//! and (where truth is missing) the weak label, plus synthetic rows — written one Parquet file
//! per machine, atomically.

use crate::etl::ID_COLUMNS;
use crate::lake::{self, write};
use anyhow::{Context, Result};
use polars::prelude::{Column, DataFrame, DataType, IdxCa, IdxSize, PlSmallStr};
use std::path::Path;

/// The output dataset.
pub const AUG_DATA: &str = "aug_data";
/// File name of a machine's output.
pub const OUTPUT_FILE: &str = "part.parquet";
/// Label source of a weak label.
pub const WEAK: &str = "weak";
/// Boolean column of the weak label (true: presumed defect; null: the run got none). Not
/// numeric on purpose, so that no consumer mistakes it for a feature.
pub const WEAK_DEFECT: &str = "weak_defect";
/// Label source of a synthetic row.
pub const SYNTHETIC: &str = "synthetic";

/// The rows of one machine and mold.
#[derive(Debug, Clone)]
pub struct Group {
    /// Machine of every row in the group.
    pub machine_id: String,
    /// Mold / product code of every row (`None`: rows without a mold).
    pub mold: Option<String>,
    /// The group's `etl_data` rows, all columns, in their order in `etl_data`.
    pub frame: DataFrame,
}

/// The numeric feature columns of `etl_data` (everything after the id columns), in order.
pub fn feature_columns(df: &DataFrame) -> Vec<String> {
    df.columns()
        .iter()
        .filter(|c| !ID_COLUMNS.contains(&c.name().as_str()) && c.name().as_str() != "ts_ms")
        .filter(|c| c.dtype().is_primitive_numeric())
        .map(|c| c.name().to_string())
        .collect()
}

/// Splits `etl_data` by machine and mold, keeping the row order within each group.
pub fn groups(df: &DataFrame) -> Result<Vec<Group>> {
    if df.height() == 0 {
        return Ok(Vec::new());
    }
    let machines = df.column("machine_id").context("etl_data: no machine_id column")?.str()?.clone();
    let molds = df.column("mold").context("etl_data: no mold column")?.str()?.clone();
    let mut keys: Vec<(String, Option<String>)> = Vec::new();
    let mut rows: Vec<Vec<IdxSize>> = Vec::new();
    for i in 0..df.height() {
        let key = (machines.get(i).unwrap_or("").to_string(), molds.get(i).map(str::to_string));
        let k = match keys.iter().position(|k| *k == key) {
            Some(k) => k,
            None => {
                keys.push(key);
                rows.push(Vec::new());
                keys.len() - 1
            }
        };
        rows[k].push(i as IdxSize);
    }
    let mut out = Vec::with_capacity(keys.len());
    for ((machine_id, mold), idx) in keys.into_iter().zip(rows) {
        let frame = df.take(&IdxCa::from_vec("idx".into(), idx))?;
        out.push(Group { machine_id, mold, frame });
    }
    out.sort_by(|a, b| (&a.machine_id, &a.mold).cmp(&(&b.machine_id, &b.mold)));
    Ok(out)
}

/// Columns `names` of `df` as f64 column vectors (null → NaN).
pub fn columns(df: &DataFrame, names: &[String]) -> Result<Vec<Vec<f64>>> {
    names
        .iter()
        .map(|n| {
            let c = df.column(n).with_context(|| format!("no column {n}"))?.cast(&DataType::Float64)?;
            Ok(c.f64()?.iter().map(|v| v.unwrap_or(f64::NAN)).collect())
        })
        .collect()
}

/// Row-major copy of column vectors.
pub fn rows(columns: &[Vec<f64>]) -> Vec<Vec<f64>> {
    let n = columns.first().map_or(0, Vec::len);
    (0..n).map(|i| columns.iter().map(|c| c[i]).collect()).collect()
}

/// Columns of `names` with no null and no non-finite value in `df`.
pub fn complete(df: &DataFrame, names: &[String]) -> Result<Vec<String>> {
    let cols = columns(df, names)?;
    Ok(names
        .iter()
        .zip(cols)
        .filter(|(_, c)| c.iter().all(|v| v.is_finite()))
        .map(|(n, _)| n.clone())
        .collect())
}

/// The truth labels (`label`, 1.0 = defect) of a group.
pub fn truth(df: &DataFrame) -> Result<Vec<Option<f64>>> {
    Ok(df
        .column("label")
        .context("etl_data: no label column")?
        .cast(&DataType::Float64)?
        .f64()?
        .iter()
        .collect())
}

/// Strings of a column (null stays `None`).
pub fn strings(df: &DataFrame, name: &str) -> Result<Vec<Option<String>>> {
    Ok(df
        .column(name)
        .with_context(|| format!("etl_data: no {name} column"))?
        .str()?
        .iter()
        .map(|s| s.map(str::to_string))
        .collect())
}

/// The real rows of a group as `aug_data`: the weak label fills `label` where truth is
/// missing (with `label_source = "weak"`), and the flags are added.
pub fn real_rows(group: &Group, weak: &[Option<u8>], outlier: &[bool]) -> Result<DataFrame> {
    let mut df = group.frame.clone();
    let truth = truth(&df)?;
    let sources = strings(&df, "label_source")?;
    let mut label = Vec::with_capacity(truth.len());
    let mut source = Vec::with_capacity(truth.len());
    for ((t, s), w) in truth.iter().zip(&sources).zip(weak) {
        match (t, w) {
            (None, Some(w)) => {
                label.push(Some(f64::from(*w)));
                source.push(Some(WEAK.to_string()));
            }
            _ => {
                label.push(*t);
                source.push(s.clone());
            }
        }
    }
    let n = df.height();
    df.with_column(Column::new("label".into(), label))?;
    df.with_column(Column::new("label_source".into(), source))?;
    df.with_column(Column::new(
        WEAK_DEFECT.into(),
        weak.iter().map(|w| w.map(|v| v == 1)).collect::<Vec<_>>(),
    ))?;
    df.with_column(Column::new("outlier".into(), outlier.to_vec()))?;
    df.with_column(Column::new("synthetic".into(), vec![false; n]))?;
    Ok(df)
}

/// Synthetic defect rows of a group: machine, mold, label 1 from source "synthetic", the
/// generated `features`; every other column null.
pub fn synthetic_rows(group: &Group, features: &[String], rows: &[Vec<f64>]) -> Result<DataFrame> {
    let n = rows.len();
    let mut cols = vec![
        Column::new("machine_id".into(), vec![group.machine_id.clone(); n]),
        Column::new("mold".into(), vec![group.mold.clone(); n]),
        Column::new("label".into(), vec![1.0f64; n]),
        Column::new("label_source".into(), vec![SYNTHETIC; n]),
        Column::new(WEAK_DEFECT.into(), vec![None::<bool>; n]),
        Column::new("outlier".into(), vec![false; n]),
        Column::new("synthetic".into(), vec![true; n]),
    ];
    for (j, name) in features.iter().enumerate() {
        cols.push(Column::new(name.as_str().into(), rows.iter().map(|r| r[j]).collect::<Vec<f64>>()));
    }
    DataFrame::new(n, cols).context("building synthetic rows")
}

/// Writes one machine's `aug_data` (`aug_data/machine={m}/part.parquet`), replacing the last.
/// Columns follow `etl_data`'s order with the new ones after the id columns.
pub fn write_machine(lake_dir: &Path, machine_id: &str, parts: &[DataFrame]) -> Result<()> {
    let df = polars::functions::concat_df_diagonal(parts).context("joining aug_data parts")?;
    let mut order: Vec<PlSmallStr> = Vec::new();
    for name in ID_COLUMNS.iter().copied().chain(["synthetic", "outlier", WEAK_DEFECT]) {
        order.push(name.into());
    }
    for c in df.get_column_names() {
        if !order.contains(c) && c.as_str() != "ts_ms" {
            order.push(c.clone());
        }
    }
    let mut df = df.select(order).context("ordering aug_data columns")?;
    let dir = lake::machine_dir(lake_dir, AUG_DATA, machine_id);
    let dirs = write::prepare_dirs(lake_dir, std::iter::once(dir.as_path()))?;
    write::write_parquet(&dir, OUTPUT_FILE, &mut df)?;
    write::sync_dirs(&dirs)
}

/// Reads all of `aug_data` (every machine, columns unioned). An empty frame when there is none.
pub fn read_aug(lake_dir: &Path) -> Result<DataFrame> {
    let mut files = Vec::new();
    for m in lake::machine_dirs(lake_dir, AUG_DATA)? {
        let f = m.join(OUTPUT_FILE);
        if f.is_file() {
            files.push(f);
        }
    }
    Ok(lake::read_parts(&files, &[]).context("reading aug_data")?.unwrap_or_default())
}
