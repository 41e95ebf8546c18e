//! `moldops-cloud etl`: the machine + peripheral merge from the lake's `raw_data`,
//! `peripheral_data`, `labels` and `lot_labels` into `etl_data`, per machine and in time order
//! ([`merge`]: drop rules, as-of joins, labels, production runs). Incremental and idempotent
//! ([`state`]): a date is rebuilt only when its inputs (its shots, its and the previous day's
//! peripheral readings, its labels, the machine's lots) or the run it continues changed, and its
//! output `etl_data/machine={m}/date={d}/part.parquet` is replaced atomically.

pub mod clean;
pub mod cli;
mod inputs;
pub mod join;
pub mod merge;
pub mod runs;
pub mod state;
mod summary;
pub mod tolerance;

pub use clean::CleanRules;
pub use merge::{ID_COLUMNS, MachineInput};
pub use summary::{EtlSummary, MachineSummary};
pub use tolerance::{MachineTolerance, Tolerance};

use crate::lake::{self, write};
use crate::shard::MachineSelection;
use anyhow::{Context, Result};
use inputs::{all_parts, date_dir, date_inputs, day_number, file_name};
use polars::prelude::*;
use serde::{Deserialize, Serialize};
use state::{DateState, EtlState, MachineBuilt, Tail};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Shot-level labels dataset (written by `import`).
pub const LABELS: &str = "labels";
/// Lot-level labels dataset (written by `import`).
pub const LOT_LABELS: &str = "lot_labels";
/// The ETL's output dataset.
pub const ETL_DATA: &str = "etl_data";
/// File name of a date's output.
pub const OUTPUT_FILE: &str = "part.parquet";

const DAY_MS: i64 = 86_400_000;

/// Settings of the ETL.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EtlConfig {
    /// How much older than a shot a peripheral reading may be and still count: ms (≤ 1 day),
    /// or `auto` (half each machine's typical cycle, see [`tolerance`]).
    pub tolerance_ms: Tolerance,
    /// The drop rules (`[rules]`; default: sentinel at |value| ≥ 1e8, and `Cycle_Time`,
    /// `Injection_Time`, `Filling_Time`, `Plasticizing_Time`, `Clamp_Close_Time` within 0–3600 s).
    pub rules: CleanRules,
    /// Machines merged at once (0: one per core). Not a setting of the output, so not part of
    /// the settings fingerprint; from the command line only (`--jobs`).
    #[serde(skip)]
    pub jobs: usize,
}

impl Default for EtlConfig {
    fn default() -> Self {
        EtlConfig { tolerance_ms: Tolerance::Auto, rules: CleanRules::default(), jobs: 0 }
    }
}

/// Runs the ETL over a lake: every machine of `raw_data`, rebuilding what changed, up to
/// `cfg.jobs` machines at once. Saves the state and the summary (`_etl/last_run.json`). A
/// machine that fails does not stop the others: the state is saved without it (its dates are
/// rebuilt next time) and the run fails naming it.
pub fn run(lake_dir: &Path, cfg: &EtlConfig) -> Result<EtlSummary> {
    run_selected(lake_dir, cfg, &MachineSelection::default())
}

/// [`run`] over the machines `select` takes only (`--machine`, `--shard`): runs over disjoint
/// selections may run at once, each saving only its own machines' state (merged into the
/// state file under a lock). The summary file is written by a run over every machine only.
pub fn run_selected(lake_dir: &Path, cfg: &EtlConfig, select: &MachineSelection) -> Result<EtlSummary> {
    cfg.tolerance_ms.validate()?;
    let started = std::time::Instant::now();
    let settings = state::hex_digest(&serde_json::to_vec(cfg).context("encoding the ETL settings")?);
    let mut st = EtlState::load(lake_dir)?;
    if st.settings != settings {
        st.machines.clear();
        st.tolerances.clear();
        st.settings = settings;
    }
    let mut out = EtlSummary { tolerance: cfg.tolerance_ms, ..Default::default() };
    let jobs: Vec<Job> = lake::machine_dirs(lake_dir, lake::RAW_DATA)?
        .iter()
        .filter(|dir| select.includes_folder(&file_name(dir)))
        .map(|dir| {
            let folder = file_name(dir);
            let built = st.machines.remove(&folder).unwrap_or_default();
            let previous = st.tolerances.get(&folder).copied();
            Job { folder, built, previous }
        })
        .collect();
    // Machines side by side (polars parallelises inside a query too; this keeps the cores busy
    // through the serial parts: opening files, run segmentation, writing and fsyncing).
    let pool =
        rayon::ThreadPoolBuilder::new().num_threads(cfg.jobs).build().context("starting the ETL workers")?;
    let results: Vec<(Job, Result<Built>)> = pool.install(|| {
        use rayon::prelude::*;
        jobs.into_par_iter()
            .map(|job| {
                let result = build_machine(lake_dir, &job, cfg);
                (job, result)
            })
            .collect()
    });
    let mut failed = Vec::new();
    let mut updates = BTreeMap::new();
    for (job, result) in results {
        match result {
            Ok((mut m, built, used)) => {
                // Nothing merged: the tolerance its outputs were built with.
                m.tolerance_ms = used.or(job.previous).map_or(0, |t| t.ms);
                let tolerance = match used.filter(|_| !job.previous.is_some_and(|t| t.settled())) {
                    Some(used) => Some(used),
                    None => job.previous,
                };
                updates.insert(job.folder, Some(MachineBuilt { dates: built, tolerance }));
                out.add(m);
            }
            Err(e) => {
                failed.push(format!("{}: {e:#}", job.folder));
                updates.insert(job.folder, None);
            }
        }
    }
    EtlState::save_merged(lake_dir, &st.settings, updates)?;
    anyhow::ensure!(
        failed.is_empty(),
        "the ETL failed for {} machine(s): {}",
        failed.len(),
        failed.join("; ")
    );
    out.seconds = started.elapsed().as_secs_f64();
    if select.is_all() {
        let json = serde_json::to_vec_pretty(&out).context("encoding the ETL summary")?;
        write::write_atomic(&lake_dir.join(state::ETL_DIR).join("last_run.json"), &json)?;
    }
    Ok(out)
}

/// One machine's work: its folder, what was built and its tolerance so far.
struct Job {
    folder: String,
    built: std::collections::BTreeMap<String, DateState>,
    previous: Option<MachineTolerance>,
}

type Built = (MachineSummary, std::collections::BTreeMap<String, DateState>, Option<MachineTolerance>);

fn build_machine(lake_dir: &Path, job: &Job, cfg: &EtlConfig) -> Result<Built> {
    let tolerance = match (cfg.tolerance_ms, job.previous) {
        (Tolerance::Auto, Some(t)) if t.settled() => Tolerance::Fixed(t.ms),
        (setting, _) => setting,
    };
    machine(lake_dir, &job.folder, job.built.clone(), tolerance, job.previous, cfg)
}

/// Builds one machine: finds the first date whose fingerprint changed, merges it and every
/// later date in one query, and writes the dates whose inputs or run ids changed. An `Auto`
/// tolerance (not settled yet) is derived from all of the machine's dates, and when it differs
/// from the `previous` one every date is rewritten. Returns the tolerance the merge used (none
/// when nothing was merged).
fn machine(
    lake_dir: &Path,
    folder: &str,
    mut built: std::collections::BTreeMap<String, DateState>,
    tolerance: Tolerance,
    previous: Option<MachineTolerance>,
    cfg: &EtlConfig,
) -> Result<Built> {
    let dates: Vec<String> = lake::date_dirs(&lake_dir.join(lake::RAW_DATA).join(folder))?
        .iter()
        .filter_map(|d| lake::folder_value(&file_name(d), lake::DATE_KEY).map(str::to_string))
        .collect();
    let lots = all_parts(lake_dir, LOT_LABELS, folder)?;
    let mut inputs = Vec::with_capacity(dates.len());
    for d in &dates {
        let input = date_inputs(lake_dir, folder, d, &lots)?;
        let files: Vec<PathBuf> = input
            .raw
            .iter()
            .chain(&input.peripherals)
            .chain(&input.labels)
            .chain(&input.lots)
            .cloned()
            .collect();
        inputs.push((input, state::fingerprint(lake_dir, &files)?));
    }
    let mut summary = MachineSummary {
        machine: lake::folder_value(folder, lake::MACHINE_KEY).unwrap_or(folder).to_string(),
        ..Default::default()
    };
    let Some(first) =
        dates.iter().zip(&inputs).position(|(d, (_, fp))| built.get(d).is_none_or(|b| &b.fingerprint != fp))
    else {
        return Ok((summary, built, None));
    };
    // Another tolerance than the outputs were built with (an auto one not settled yet, or the
    // first run that records it) may change every date: merge them all.
    let retune = match tolerance {
        Tolerance::Auto => true,
        Tolerance::Fixed(ms) => previous.map(|p| p.ms) != Some(ms),
    };
    let first = if retune { 0 } else { first };
    let mut seed: Option<Tail> =
        first.checked_sub(1).and_then(|i| built.get(&dates[i])).and_then(|b| b.tail.clone());
    let mut all = MachineInput { lots, ..Default::default() };
    let mut peripherals = std::collections::BTreeSet::new();
    for (input, _) in inputs.iter().skip(first) {
        all.raw.extend(input.raw.iter().cloned());
        all.labels.extend(input.labels.iter().cloned());
        peripherals.extend(input.peripherals.iter().cloned());
    }
    all.peripherals = peripherals.into_iter().collect();
    tracing::info!(machine = %summary.machine, dates = dates.len() - first, "etl: merging");
    let merged = merge::merge(&all, &cfg.rules, tolerance, seed.as_ref())?;
    if previous.map(|p| p.ms) != Some(merged.tolerance.ms) {
        built.clear();
    }
    summary.rows_in = merged.rows_in;
    summary.dropped = merged.dropped;
    let frame = merged.frame;
    let ts: Vec<i64> = if frame.height() > 0 {
        frame.column("ts_ms")?.i64()?.into_no_null_iter().collect()
    } else {
        Vec::new()
    };
    let mut start = 0usize;
    let mut written_dirs = std::collections::BTreeSet::new();
    for (d, (_, fp)) in dates.iter().zip(&inputs).skip(first) {
        let day = day_number(d).with_context(|| format!("{folder}: bad date folder {d}"))?;
        let end = start + ts[start..].iter().take_while(|t| t.div_euclid(DAY_MS) <= day).count();
        let part = frame.slice(start as i64, end - start);
        start = end;
        let tail = last_tail(&part)?.or_else(|| seed.clone());
        let new = DateState {
            fingerprint: fp.clone(),
            runs: run_digest(&part)?,
            tail: tail.clone(),
            rows: part.height() as u64,
        };
        summary.dates_processed += 1;
        summary.rows_out += new.rows;
        summary.labelled += part.column("label").map(|c| (c.len() - c.null_count()) as u64).unwrap_or(0);
        if !built.get(d).is_some_and(|b| b.same_output(&new)) {
            written_dirs.extend(write_output(lake_dir, folder, d, part)?);
            summary.dates_written += 1;
        }
        built.insert(d.clone(), new);
        seed = tail;
    }
    // The folders once for all the dates (each file is fsynced already); before the state
    // that records them is saved.
    write::sync_dirs(&written_dirs)?;
    summary.runs = runs_in(&frame)?;
    Ok((summary, built, Some(merged.tolerance)))
}

fn last_tail(part: &DataFrame) -> Result<Option<Tail>> {
    let n = part.height();
    if n == 0 {
        return Ok(None);
    }
    let ts = part.column("ts_ms")?.i64()?.get(n - 1).context("a shot without ts")?;
    let mold = part.column("mold")?.str()?.get(n - 1).map(str::to_string);
    let run_id = part.column("run_id")?.str()?.get(n - 1).context("a shot without run id")?.to_string();
    Ok(Some(Tail { ts_ms: ts, mold, run_id }))
}

/// Digest of the run id column of a date's output.
fn run_digest(part: &DataFrame) -> Result<String> {
    let mut text = String::new();
    if part.height() > 0 {
        for id in part.column("run_id")?.str()?.iter() {
            text.push_str(id.unwrap_or(""));
            text.push('\n');
        }
    }
    Ok(state::hex_digest(text.as_bytes()))
}

fn runs_in(frame: &DataFrame) -> Result<u64> {
    if frame.height() == 0 {
        return Ok(0);
    }
    Ok(frame.column("run_id")?.n_unique()? as u64)
}

/// Writes one date's output (Snappy: derived data, rebuilt rather than archived, and faster
/// to write than Zstd); returns the folders to fsync.
fn write_output(
    lake_dir: &Path,
    folder: &str,
    date: &str,
    part: DataFrame,
) -> Result<std::collections::BTreeSet<PathBuf>> {
    let dir = date_dir(lake_dir, ETL_DATA, folder, date);
    let dirs = write::prepare_dirs(lake_dir, std::iter::once(dir.as_path()))?;
    let has_ts = part.get_column_names().iter().any(|c| c.as_str() == "ts_ms");
    let mut df = if has_ts { part.drop("ts_ms")? } else { part };
    write::write_parquet_with(&dir, OUTPUT_FILE, &mut df, ParquetCompression::Snappy)?;
    Ok(dirs)
}

/// The tolerance the ETL joined `machine_id`'s peripherals with (`None` before its first
/// build, or for a lake built before tolerances were recorded).
pub fn machine_tolerance(lake_dir: &Path, machine_id: &str) -> Result<Option<MachineTolerance>> {
    Ok(EtlState::load(lake_dir)?.tolerances.get(&lake::machine_folder(machine_id)).copied())
}

/// Reads all of `etl_data`: every machine and date, columns unioned (null where a file lacks
/// one), rows sorted by machine and time. An empty frame when there is none.
pub fn read_etl(lake_dir: &Path) -> Result<DataFrame> {
    read_etl_of(lake_dir, &MachineSelection::default())
}

/// [`read_etl`] of the machines `select` takes only (a shard reads its own machines' files).
pub fn read_etl_of(lake_dir: &Path, select: &MachineSelection) -> Result<DataFrame> {
    let mut files = Vec::new();
    for m in lake::machine_dirs(lake_dir, ETL_DATA)? {
        if !select.includes_folder(&file_name(&m)) {
            continue;
        }
        for d in lake::date_dirs(&m)? {
            let f = d.join(OUTPUT_FILE);
            if f.is_file() {
                files.push(f);
            }
        }
    }
    let Some(df) = lake::read_parts(&files, &[]).context("reading etl_data")? else {
        return Ok(DataFrame::empty());
    };
    Ok(df.sort(["machine_id", "ts"], SortMultipleOptions::default().with_maintain_order(true))?)
}
