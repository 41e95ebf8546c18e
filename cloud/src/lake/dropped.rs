//! What edges dropped unsent, per machine and device, reconciled with the lake: each gap
//! record (dataset `edge_gaps`) says how many records of a source an edge dropped within a
//! seq range of one buffer epoch; records of that source inside the range that are in the
//! lake anyway were sent before they were dropped, the rest are missing.

use super::StreamId;
use super::quarantine::rfc3339_ms;
use anyhow::{Context, Result};
use moldops_shared::RecordKind;
use moldops_shared::gap::value;
use polars::prelude::{DataFrame, DataType, Expr, UnionArgs, col, concat, lit};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;

/// What edges reported dropping for one machine and device, over all their gap records.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DroppedSummary {
    /// Machine the dropped records belonged to.
    pub machine_id: String,
    /// Device that produced them (the machine id for shots).
    pub device_id: String,
    /// Edges that reported drops, sorted.
    pub edges: Vec<String>,
    /// Records the edges dropped from their buffers unconfirmed.
    pub dropped: u64,
    /// Of those, how many are not in the lake (the rest had been sent before the drop).
    pub missing: u64,
    /// Time range of the dropped records, UTC, RFC 3339 with milliseconds.
    pub first_ts: String,
    /// End of that time range, same format.
    pub last_ts: String,
    /// Gap records that reported them.
    pub gaps: u64,
}

/// One gap record as stored.
struct Gap {
    stream: StreamId,
    machine_id: String,
    device_id: String,
    dropped: u64,
    first_ts_ms: i64,
    last_ts_ms: i64,
    seqs: (u64, u64),
}

/// Per stream and device, the sorted seqs of the rows the lake holds.
type Arrived = HashMap<(StreamId, String), Vec<u64>>;

/// The gaps of one machine and device, summed.
#[derive(Default)]
struct Totals {
    dropped: u64,
    missing: u64,
    gaps: u64,
    first_ts_ms: Option<i64>,
    last_ts_ms: Option<i64>,
    edges: BTreeSet<String>,
}

impl Totals {
    fn add(&mut self, gap: &Gap, missing: u64) {
        self.dropped += gap.dropped;
        self.missing += missing;
        self.gaps += 1;
        self.first_ts_ms = Some(self.first_ts_ms.map_or(gap.first_ts_ms, |t| t.min(gap.first_ts_ms)));
        self.last_ts_ms = Some(self.last_ts_ms.map_or(gap.last_ts_ms, |t| t.max(gap.last_ts_ms)));
        self.edges.insert(gap.stream.edge_id.clone());
    }
}

/// Sums the gap records per machine and device and counts what is still missing.
pub fn dropped_at_edge(lake: &Path) -> Result<Vec<DroppedSummary>> {
    let gaps = read_gaps(lake)?;
    if gaps.is_empty() {
        return Ok(Vec::new());
    }
    let arrived = arrived(lake, &gaps)?;
    let mut sources: BTreeMap<(String, String), Totals> = BTreeMap::new();
    for g in &gaps {
        let seqs = arrived.get(&(g.stream.clone(), g.device_id.clone())).map_or(&[][..], Vec::as_slice);
        let inside = seqs.partition_point(|s| *s <= g.seqs.1) - seqs.partition_point(|s| *s < g.seqs.0);
        let missing = g.dropped.saturating_sub(inside as u64);
        sources.entry((g.machine_id.clone(), g.device_id.clone())).or_default().add(g, missing);
    }
    Ok(sources
        .into_iter()
        .map(|((machine_id, device_id), t)| DroppedSummary {
            machine_id,
            device_id,
            edges: t.edges.into_iter().collect(),
            dropped: t.dropped,
            missing: t.missing,
            first_ts: rfc3339_ms(t.first_ts_ms.unwrap_or_default()),
            last_ts: rfc3339_ms(t.last_ts_ms.unwrap_or_default()),
            gaps: t.gaps,
        })
        .collect())
}

/// Every gap record of the lake.
fn read_gaps(lake: &Path) -> Result<Vec<Gap>> {
    let parts = super::list_parts(lake, RecordKind::Gap.dataset())?;
    let Some(df) = super::read_parts(&parts, &[])? else { return Ok(Vec::new()) };
    let text = |name: &str| -> Result<Vec<String>> {
        let c = df.column(name)?.cast(&DataType::String)?;
        Ok(c.str()?.iter().map(|v| v.unwrap_or_default().to_string()).collect())
    };
    let number = |name: &str| -> Result<Vec<f64>> {
        let c = df.column(name)?.cast(&DataType::Float64)?;
        Ok(c.f64()?.iter().map(|v| v.unwrap_or_default()).collect())
    };
    let (site, edge, epoch) = (text("site")?, text("edge_id")?, text("epoch")?);
    let (machine, device) = (text("machine_id")?, text("device_id")?);
    let dropped = number(value::DROPPED)?;
    let (first_ts, last_ts) = (number(value::FIRST_TS_MS)?, number(value::LAST_TS_MS)?);
    let (first_seq, last_seq) = (number(value::FIRST_SEQ)?, number(value::LAST_SEQ)?);
    Ok((0..df.height())
        .map(|i| Gap {
            stream: StreamId::new(&site[i], &edge[i], &epoch[i]),
            machine_id: machine[i].clone(),
            device_id: device[i].clone(),
            // The ingest admits only gaps with whole, ordered figures (`check_record`).
            dropped: dropped[i] as u64,
            first_ts_ms: first_ts[i] as i64,
            last_ts_ms: last_ts[i] as i64,
            seqs: (first_seq[i] as u64, last_seq[i] as u64),
        })
        .collect())
}

/// The seqs in the lake of the machines and epochs that have gaps.
fn arrived(lake: &Path, gaps: &[Gap]) -> Result<Arrived> {
    let machines: BTreeSet<&str> = gaps.iter().map(|g| g.machine_id.as_str()).collect();
    let epochs: BTreeSet<&str> = gaps.iter().map(|g| g.stream.epoch.as_str()).collect();
    let any_of = |column: &str, values: &BTreeSet<&str>| {
        values.iter().map(|v| col(column).eq(lit(v.to_string()))).reduce(Expr::or).unwrap_or(lit(false))
    };
    let epoch = col("epoch").cast(DataType::String).fill_null(lit(""));
    let mut scans = Vec::new();
    let kinds = [
        RecordKind::Shot,
        RecordKind::Peripheral,
        RecordKind::Score,
        RecordKind::Status,
        RecordKind::Decision,
        RecordKind::Drift,
    ];
    for dataset in kinds.map(RecordKind::dataset) {
        for part in super::list_parts(lake, dataset)? {
            scans.push(super::scan_part(&part, None)?.select([
                col("site"),
                col("edge_id"),
                epoch.clone().alias("epoch"),
                col("machine_id"),
                col("device_id"),
                col("seq"),
            ]));
        }
    }
    let mut out = Arrived::new();
    if scans.is_empty() {
        return Ok(out);
    }
    let df: DataFrame = concat(scans, UnionArgs::default())?
        .filter(any_of("machine_id", &machines).and(any_of("epoch", &epochs)))
        .collect()
        .with_context(|| format!("reading the seqs of streams with gaps in {}", lake.display()))?;
    let (site, edge, ep) =
        (df.column("site")?.str()?, df.column("edge_id")?.str()?, df.column("epoch")?.str()?);
    let (device, seq) = (df.column("device_id")?.str()?, df.column("seq")?.cast(&DataType::UInt64)?);
    let seq = seq.u64()?;
    for i in 0..df.height() {
        let (Some(s), Some(e), Some(d), Some(n)) = (site.get(i), edge.get(i), device.get(i), seq.get(i))
        else {
            continue;
        };
        let stream = StreamId::new(s, e, ep.get(i).unwrap_or_default());
        out.entry((stream, d.to_string())).or_default().push(n);
    }
    out.values_mut().for_each(|v| v.sort_unstable());
    Ok(out)
}
