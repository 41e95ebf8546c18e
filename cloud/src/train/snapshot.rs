//! The data snapshot a model is trained on: sha256 over a machine's etl_data files, recorded
//! in the model's lineage.

use anyhow::{Context, Result};
use moldops_shared::bundle::sha256_hex;
use std::path::{Path, PathBuf};

/// The etl_data a model was trained on.
pub(super) struct DataSnapshot {
    /// sha256 over the listing "relative path \t sha256" of every file, sorted.
    pub id: String,
    /// The files, relative to the lake.
    pub files: Vec<String>,
}

/// The snapshot of the etl_data files of `machine`.
pub(super) fn snapshot(lake: &Path, machine: &str) -> Result<DataSnapshot> {
    let dir = crate::lake::machine_dir(lake, crate::etl::ETL_DATA, machine);
    let mut files = Vec::new();
    collect_files(&dir, &mut files)?;
    files.sort();
    let mut listing = String::new();
    let mut rel = Vec::new();
    for f in &files {
        let bytes = std::fs::read(f).with_context(|| format!("reading {}", f.display()))?;
        let r = f.strip_prefix(lake).unwrap_or(f).to_string_lossy().into_owned();
        listing.push_str(&format!("{r}\t{}\n", sha256_hex(&bytes)));
        rel.push(r);
    }
    Ok(DataSnapshot { id: sha256_hex(listing.as_bytes()), files: rel })
}

fn collect_files(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    if !dir.is_dir() {
        return Ok(());
    }
    for entry in std::fs::read_dir(dir).with_context(|| format!("listing {}", dir.display()))? {
        let entry = entry?;
        let path = entry.path();
        if entry.file_type()?.is_dir() {
            collect_files(&path, out)?;
        } else if path.extension().is_some_and(|e| e == "parquet") {
            out.push(path);
        }
    }
    Ok(())
}
