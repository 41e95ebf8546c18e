//! What has arrived in a lake, for a person (a plain table) or a program (JSON): per dataset
//! and machine the rows, edges, first and last time, files and distinct shots, computed with
//! polars lazy scans reading only the columns needed; and the quarantine's size with the most
//! recent reasons; per edge, its buffer epochs with their seq ranges and gaps (from the
//! ingest's state), so a lost buffer or a hole in a stream is visible; and per machine and
//! device the records edges dropped unsent and how many of them are missing ([`super::dropped`]).

pub use super::dropped::DroppedSummary;
use super::quarantine::{self, rfc3339_ms};
use anyhow::{Context, Result};
use polars::prelude::{DataType, SortMultipleOptions, SortOptions, UnionArgs, col, concat, len};
use serde::{Deserialize, Serialize};
use std::fmt::Write as _;
use std::path::Path;

/// How many recent quarantine reasons a summary shows.
pub const RECENT_REASONS: usize = 5;

/// What has arrived in a lake: per dataset and machine, the quarantine, the edges' buffer
/// epochs and what edges dropped unsent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LakeSummary {
    /// The lake folder summarised.
    pub lake: String,
    /// Every dataset the ingest writes, in [`super::DATASETS`] order, empty ones included.
    pub datasets: Vec<DatasetSummary>,
    /// Payloads in the quarantine and the most recent reasons.
    pub quarantine: QuarantineSummary,
    /// Per edge, every buffer epoch the lake holds, sorted by site and edge.
    #[serde(default)]
    pub edges: Vec<EdgeSummary>,
    /// Records edges dropped unsent (buffer full), per machine and device, sorted.
    #[serde(default)]
    pub dropped_at_edge: Vec<DroppedSummary>,
    /// The database sources `pull` takes history from: watermark, rows, rows left out.
    #[serde(default)]
    pub pulls: Vec<crate::pull::state::PullSummary>,
}

/// One edge and its buffer epochs, from the ingest's dedup state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EdgeSummary {
    /// Site the edge belongs to.
    pub site: String,
    /// The edge's id.
    pub edge_id: String,
    /// Its buffer epochs, sorted by epoch id; more than one means a buffer was lost or replaced.
    pub epochs: Vec<EpochSummary>,
}

/// One buffer epoch of an edge: the seqs the lake accounts for (written or quarantined).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochSummary {
    /// Empty for an edge from before epochs.
    pub epoch: String,
    /// Seqs the lake accounts for in this epoch.
    pub records: u64,
    /// Lowest seq accounted for.
    pub first_seq: u64,
    /// Highest seq accounted for.
    pub last_seq: u64,
    /// Holes between the first and last seq (records never received, or dropped by the edge).
    pub gaps: u64,
    /// Seqs inside those holes.
    pub missing: u64,
}

/// One dataset: its rows and part files, in total and per machine.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DatasetSummary {
    /// Dataset name (one of [`super::DATASETS`]).
    pub dataset: String,
    /// Rows over all machines.
    pub rows: u64,
    /// Part files over all machines.
    pub files: u64,
    /// Sorted by machine id.
    pub machines: Vec<MachineSummary>,
}

/// One machine's rows in one dataset.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MachineSummary {
    /// The machine (the `machine_id` column, not the escaped folder name).
    pub machine_id: String,
    /// Rows of the machine.
    pub rows: u64,
    /// Edges that sent rows for this machine, sorted.
    pub edges: Vec<String>,
    /// Earliest and latest record time, UTC, RFC 3339 with milliseconds, and as epoch ms.
    pub first_ts: String,
    /// Latest record time, UTC, RFC 3339 with milliseconds.
    pub last_ts: String,
    /// Earliest record time, ms since the Unix epoch.
    pub first_ts_ms: i64,
    /// Latest record time, ms since the Unix epoch.
    pub last_ts_ms: i64,
    /// Part files holding the machine's rows.
    pub files: u64,
    /// Distinct shot numbers (0 for peripheral data).
    pub distinct_shots: u64,
}

/// The quarantine's size and most recent entries.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QuarantineSummary {
    /// Entries (refused payloads or rows) in the quarantine.
    pub count: u64,
    /// Newest first, at most [`RECENT_REASONS`].
    pub recent: Vec<QuarantineNote>,
}

/// One quarantine entry, without its payload.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QuarantineNote {
    /// When it was received, UTC, RFC 3339 with milliseconds.
    pub received_at: String,
    /// MQTT topic it arrived on (an import's identity, `import:…`, for a refused import row).
    pub topic: String,
    /// Why it was refused.
    pub reason: String,
}

/// Summarises a lake (an empty or missing lake gives zeros).
pub fn summary(lake: &Path) -> Result<LakeSummary> {
    super::retry_vanished(|| summary_once(lake))
}

fn summary_once(lake: &Path) -> Result<LakeSummary> {
    let datasets = super::DATASETS.iter().map(|d| dataset_summary(lake, d)).collect::<Result<Vec<_>>>()?;
    let (count, recent) = quarantine::scan(lake, RECENT_REASONS)?;
    let recent = recent
        .into_iter()
        .map(|e| QuarantineNote { received_at: e.received_at, topic: e.topic, reason: e.reason })
        .collect();
    Ok(LakeSummary {
        lake: lake.display().to_string(),
        datasets,
        quarantine: QuarantineSummary { count, recent },
        edges: edges(lake)?,
        dropped_at_edge: super::dropped::dropped_at_edge(lake)?,
        pulls: crate::pull::state::summaries(lake)?,
    })
}

/// The strings of a list cell (empty when null).
fn list_strings(cell: Option<polars::prelude::Series>) -> Result<Vec<String>> {
    Ok(match cell {
        Some(s) => s.str()?.iter().flatten().map(str::to_string).collect(),
        None => vec![],
    })
}

/// The edges and epochs of the ingest's state; none when no ingest has written the lake (or
/// its state is unreadable: the next ingest start rebuilds it).
fn edges(lake: &Path) -> Result<Vec<EdgeSummary>> {
    let path = crate::ingest::state::DedupState::path(lake);
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    let Ok(state) = serde_json::from_slice::<crate::ingest::state::DedupState>(&bytes) else {
        return Ok(Vec::new());
    };
    let mut out: Vec<EdgeSummary> = Vec::new();
    for (stream, seqs) in &state.streams {
        let (Some((first, _)), Some((_, last))) = (seqs.iter().next(), seqs.iter().last()) else { continue };
        let records = seqs.len();
        let epoch = EpochSummary {
            epoch: stream.epoch.clone(),
            records,
            first_seq: first,
            last_seq: last,
            gaps: seqs.intervals().saturating_sub(1) as u64,
            missing: (last - first).saturating_add(1).saturating_sub(records),
        };
        match out.last_mut() {
            Some(e) if e.site == stream.site && e.edge_id == stream.edge_id => e.epochs.push(epoch),
            _ => out.push(EdgeSummary {
                site: stream.site.clone(),
                edge_id: stream.edge_id.clone(),
                epochs: vec![epoch],
            }),
        }
    }
    Ok(out)
}

fn dataset_summary(lake: &Path, dataset: &str) -> Result<DatasetSummary> {
    let parts = super::list_parts(lake, dataset)?;
    let mut out =
        DatasetSummary { dataset: dataset.to_string(), rows: 0, files: parts.len() as u64, machines: vec![] };
    if parts.is_empty() {
        return Ok(out);
    }
    let cols = [col("machine_id"), col("edge_id"), col("ts"), col("shot_number"), col("__file")];
    let scans = parts
        .iter()
        .map(|p| super::scan_part(p, Some("__file")).map(|lf| lf.select(cols.clone())))
        .collect::<Result<Vec<_>>>()?;
    let df = concat(scans, UnionArgs::default())?
        .group_by([col("machine_id")])
        .agg([
            len().cast(DataType::UInt64).alias("rows"),
            col("edge_id").unique().sort(SortOptions::default()).alias("edges"),
            col("ts").min().cast(DataType::Int64).alias("first"),
            col("ts").max().cast(DataType::Int64).alias("last"),
            col("__file").n_unique().cast(DataType::UInt64).alias("files"),
            col("shot_number").drop_nulls().n_unique().cast(DataType::UInt64).alias("shots"),
        ])
        .sort(["machine_id"], SortMultipleOptions::default())
        .collect()
        .with_context(|| format!("summarising {dataset} in {}", lake.display()))?;
    let machine = df.column("machine_id")?.str()?;
    let rows = df.column("rows")?.u64()?;
    let edges = df.column("edges")?.list()?;
    let first = df.column("first")?.i64()?;
    let last = df.column("last")?.i64()?;
    let files = df.column("files")?.u64()?;
    let shots = df.column("shots")?.u64()?;
    for i in 0..df.height() {
        let edges = list_strings(edges.get_as_series(i))?;
        let (first_ms, last_ms) = (first.get(i).unwrap_or_default(), last.get(i).unwrap_or_default());
        out.machines.push(MachineSummary {
            machine_id: machine.get(i).unwrap_or_default().to_string(),
            rows: rows.get(i).unwrap_or_default(),
            edges,
            first_ts: rfc3339_ms(first_ms),
            last_ts: rfc3339_ms(last_ms),
            first_ts_ms: first_ms,
            last_ts_ms: last_ms,
            files: files.get(i).unwrap_or_default(),
            distinct_shots: shots.get(i).unwrap_or_default(),
        });
    }
    out.rows = out.machines.iter().map(|m| m.rows).sum();
    Ok(out)
}

impl LakeSummary {
    /// A plain-text table for people.
    pub fn to_table(&self) -> String {
        let mut rows = vec![
            ["dataset", "machine", "rows", "files", "shots", "edges", "first ts", "last ts"]
                .map(String::from)
                .to_vec(),
        ];
        for d in &self.datasets {
            if d.machines.is_empty() {
                rows.push(vec![d.dataset.clone(), "-".into(), "0".into(), "0".into()]);
            }
            for m in &d.machines {
                rows.push(vec![
                    d.dataset.clone(),
                    m.machine_id.clone(),
                    m.rows.to_string(),
                    m.files.to_string(),
                    m.distinct_shots.to_string(),
                    m.edges.join(","),
                    m.first_ts.clone(),
                    m.last_ts.clone(),
                ]);
            }
        }
        let mut widths = [0usize; 8];
        for r in &rows {
            for (w, cell) in widths.iter_mut().zip(r) {
                *w = (*w).max(cell.chars().count());
            }
        }
        let mut out = format!("lake {}\n", self.lake);
        for r in &rows {
            let line: Vec<String> = r.iter().zip(widths).map(|(c, w)| format!("{c:<w$}")).collect();
            let _ = writeln!(out, "{}", line.join("  ").trim_end());
        }
        if !self.edges.is_empty() {
            let _ =
                writeln!(out, "\nedges (buffer epochs; more than one means a buffer was lost or replaced):");
        }
        for e in &self.edges {
            for ep in &e.epochs {
                let epoch = if ep.epoch.is_empty() { "-" } else { ep.epoch.as_str() };
                let _ = writeln!(
                    out,
                    "  {}/{}  epoch {epoch}  seq {}..={}  {} record(s)  {} gap(s), {} missing",
                    e.site, e.edge_id, ep.first_seq, ep.last_seq, ep.records, ep.gaps, ep.missing
                );
            }
        }
        if !self.dropped_at_edge.is_empty() {
            let _ = writeln!(out, "\ndropped at the edge (buffer full; gap records in edge_gaps):");
        }
        for d in &self.dropped_at_edge {
            let _ = writeln!(
                out,
                "  {}/{}  {} dropped, {} missing  {} .. {}  edges {}",
                d.machine_id,
                d.device_id,
                d.dropped,
                d.missing,
                d.first_ts,
                d.last_ts,
                d.edges.join(",")
            );
        }
        if !self.pulls.is_empty() {
            let _ = writeln!(out, "\npulled from databases (moldops-cloud pull):");
        }
        for p in &self.pulls {
            let _ = match &p.error {
                Some(e) => writeln!(out, "  {}  unreadable state: {e}", p.source),
                None => writeln!(
                    out,
                    "  {}  up to {}  {} rows, {} quarantined, {} excluded, {} without time, {} in the future{}",
                    p.source,
                    p.watermark.as_deref().unwrap_or("-"),
                    p.rows,
                    p.quarantined,
                    p.excluded,
                    p.without_time,
                    p.in_future,
                    if p.page_pending { ", a page pending" } else { "" }
                ),
            };
        }
        let q = &self.quarantine;
        let _ = writeln!(out, "\nquarantine: {} payload(s)", q.count);
        for n in &q.recent {
            let _ = writeln!(out, "  {}  {}  {}", n.received_at, n.topic, n.reason);
        }
        out
    }
}

#[cfg(test)]
#[path = "summary_tests.rs"]
mod tests;
