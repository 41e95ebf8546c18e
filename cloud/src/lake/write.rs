//! Writing to the lake durably: records become one column-oriented frame per part file, and
//! every file is written under a `.tmp` name, fsynced, renamed into place, and its folder
//! fsynced, so a crash never leaves a half-written file under a committed name.

use anyhow::{Context, Result};
use moldops_shared::Record;
use polars::prelude::*;
use std::collections::{BTreeSet, HashMap};
use std::fs::File;
use std::io::Write;
use std::path::Path;

/// One record to write, with the batch fields it does not carry itself.
#[derive(Debug, Clone, Copy)]
pub struct Row<'a> {
    pub edge_id: &'a str,
    pub site: &'a str,
    pub record: &'a Record,
}

/// Builds the frame of one part file: the fixed columns (see [`super::FIXED_COLUMNS`]), then
/// one f64 column per value name present in `rows`, sorted by name, null where absent.
pub fn frame(rows: &[Row<'_>]) -> Result<DataFrame> {
    let n = rows.len();
    let names: BTreeSet<&str> = rows.iter().flat_map(|r| r.record.values.keys().map(String::as_str)).collect();
    let index: HashMap<&str, usize> = names.iter().enumerate().map(|(i, n)| (*n, i)).collect();
    let mut values: Vec<Vec<Option<f64>>> = vec![vec![None; n]; names.len()];
    for (row, r) in rows.iter().enumerate() {
        for (name, v) in &r.record.values {
            if let Some(&col) = index.get(name.as_str()) {
                values[col][row] = Some(*v);
            }
        }
    }
    let ts = Int64Chunked::from_iter_values("ts".into(), rows.iter().map(|r| r.record.ts_ms))
        .into_datetime(TimeUnit::Milliseconds, Some(TimeZone::UTC));
    let out_of_range: Vec<Option<String>> = rows
        .iter()
        .map(|r| (!r.record.out_of_range.is_empty()).then(|| r.record.out_of_range.join(",")))
        .collect();
    let mut columns = Vec::with_capacity(9 + names.len());
    columns.push(Column::new("edge_id".into(), rows.iter().map(|r| r.edge_id).collect::<Vec<_>>()));
    columns.push(Column::new("seq".into(), rows.iter().map(|r| r.record.seq).collect::<Vec<_>>()));
    columns.push(Column::new("site".into(), rows.iter().map(|r| r.site).collect::<Vec<_>>()));
    columns.push(Column::new(
        "machine_id".into(),
        rows.iter().map(|r| r.record.machine_id.as_str()).collect::<Vec<_>>(),
    ));
    columns.push(Column::new(
        "device_id".into(),
        rows.iter().map(|r| r.record.device_id.as_str()).collect::<Vec<_>>(),
    ));
    columns.push(ts.into_column());
    columns.push(Column::new("shot_number".into(), rows.iter().map(|r| r.record.shot_number).collect::<Vec<_>>()));
    columns.push(Column::new("mold".into(), rows.iter().map(|r| r.record.mold.as_deref()).collect::<Vec<_>>()));
    columns.push(Column::new("out_of_range".into(), out_of_range));
    for (name, col) in names.iter().zip(values) {
        columns.push(Column::new((*name).into(), col));
    }
    DataFrame::new(n, columns).context("building a part frame")
}

/// Writes `df` as Parquet to `dir/name` durably (tmp, fsync, rename). The caller fsyncs the
/// folder (once per group, see [`sync_dir`]).
pub fn write_parquet(dir: &Path, name: &str, df: &mut DataFrame) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let tmp = dir.join(format!("{name}.tmp"));
    let dest = dir.join(name);
    let mut file = File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
    ParquetWriter::new(&mut file).finish(df).with_context(|| format!("writing {}", tmp.display()))?;
    file.sync_all().with_context(|| format!("fsync {}", tmp.display()))?;
    drop(file);
    std::fs::rename(&tmp, &dest).with_context(|| format!("renaming {} into place", tmp.display()))
}

/// Writes `bytes` to `path` durably and atomically: tmp file, fsync, rename, fsync folder.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    write_file(path, bytes)?;
    sync_dir(path.parent().context("a file path without a folder")?)
}

/// Writes `bytes` to `path` via a fsynced tmp file and a rename; the caller fsyncs the folder.
pub fn write_file(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path.parent().context("a file path without a folder")?;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut tmp_name = path.file_name().context("a path without a file name")?.to_os_string();
    tmp_name.push(".tmp");
    let tmp = dir.join(tmp_name);
    let mut file = File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
    file.write_all(bytes).with_context(|| format!("writing {}", tmp.display()))?;
    file.sync_all().with_context(|| format!("fsync {}", tmp.display()))?;
    drop(file);
    std::fs::rename(&tmp, path).with_context(|| format!("renaming {} into place", tmp.display()))
}

/// Fsyncs a folder so that renames and new entries in it survive a crash.
pub fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir).and_then(|d| d.sync_all()).with_context(|| format!("fsync folder {}", dir.display()))
}

/// Fsyncs `dir` and its ancestors up to and including `root`, for folders a group may have
/// just created.
pub fn sync_dir_chain(dir: &Path, root: &Path) -> Result<()> {
    let mut cur = Some(dir);
    while let Some(d) = cur {
        sync_dir(d)?;
        if d == root {
            break;
        }
        cur = d.parent().filter(|p| p.starts_with(root));
    }
    Ok(())
}

/// Removes leftover `*.tmp` files under `dir` (recursively): writes a crash interrupted
/// before their rename, never acknowledged. Returns how many were removed.
pub fn remove_tmp_files(dir: &Path) -> Result<usize> {
    let mut removed = 0;
    for entry in super::read_dir(dir)? {
        let path = entry.path();
        let ty = entry.file_type().with_context(|| format!("inspecting {}", path.display()))?;
        if ty.is_dir() {
            removed += remove_tmp_files(&path)?;
        } else if path.extension().is_some_and(|e| e == "tmp") {
            std::fs::remove_file(&path).with_context(|| format!("removing {}", path.display()))?;
            removed += 1;
        }
    }
    Ok(removed)
}
