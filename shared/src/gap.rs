//! Records an edge had to drop, summarised per machine and device: when its buffer is full
//! the edge drops the oldest records and uploads, in their place, one gap record per source
//! with how many it dropped and their time and seq ranges, so the cloud shows where data is
//! missing instead of a silent hole. Gap records travel as [`RecordKind::Gap`] records in
//! ordinary batches (dataset `edge_gaps`), so they are acknowledged exactly once like shots.

use crate::record::{Record, RecordKind};
use serde::{Deserialize, Serialize};
use thiserror::Error;

/// Names of the values a gap record carries.
pub mod value {
    /// How many records the gap stands for (a whole number, at least 1).
    pub const DROPPED: &str = "dropped";
    /// Time of the earliest dropped record (UTC ms).
    pub const FIRST_TS_MS: &str = "first_ts_ms";
    /// Time of the latest dropped record (UTC ms).
    pub const LAST_TS_MS: &str = "last_ts_ms";
    /// Lowest seq of the dropped records in the edge's buffer epoch.
    pub const FIRST_SEQ: &str = "first_seq";
    /// Highest seq of the dropped records in the edge's buffer epoch.
    pub const LAST_SEQ: &str = "last_seq";
}

/// Largest integer an `f64` value holds exactly; gap figures above it are refused.
const MAX_EXACT: f64 = 9_007_199_254_740_992.0;

/// Records of one machine and device that an edge dropped unsent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DropGap {
    /// Machine the dropped records belong to (for peripherals: the machine the device serves).
    pub machine_id: String,
    /// The machine id for shots; the peripheral's id for its readings.
    pub device_id: String,
    /// How many records were dropped (at least 1).
    pub dropped: u64,
    /// Time range of the dropped records (UTC ms).
    pub first_ts_ms: i64,
    /// End of that range: time of the latest dropped record (UTC ms).
    pub last_ts_ms: i64,
    /// Seq range they had in the edge's buffer epoch (with other sources' seqs between).
    pub first_seq: u64,
    /// End of that range: highest seq of the dropped records.
    pub last_seq: u64,
}

/// Why a record of kind `gap` is not a valid gap.
#[derive(Debug, Clone, Error, PartialEq)]
pub enum GapError {
    /// The record's values lack one of the [`value`] names (the one held).
    #[error("gap record without value {0}")]
    Missing(&'static str),
    /// A gap value has a fraction, is negative where a count or seq is expected, or is beyond
    /// 2^53 in size (the largest integer an `f64` holds exactly).
    #[error("gap value {name} is not a whole number in range ({value})")]
    NotWhole {
        /// Name of the value.
        name: &'static str,
        /// The value as found.
        value: f64,
    },
    /// The gap's `dropped` is 0.
    #[error("gap record drops no records")]
    Empty,
    /// `first_ts_ms` is after `last_ts_ms`, or `first_seq` is above `last_seq`.
    #[error("gap ranges are reversed")]
    Reversed,
}

impl DropGap {
    /// What dropping `record` loses: the record itself, or, for a gap record that is dropped
    /// in turn, the gap it described (so no count is ever lost, only detail).
    pub fn of(record: &Record) -> DropGap {
        if record.kind == RecordKind::Gap
            && let Ok(gap) = DropGap::from_record(record)
        {
            return gap;
        }
        DropGap {
            machine_id: record.machine_id.clone(),
            device_id: record.device_id.clone(),
            dropped: 1,
            first_ts_ms: record.ts_ms,
            last_ts_ms: record.ts_ms,
            first_seq: record.seq,
            last_seq: record.seq,
        }
    }

    /// Whether `other` describes the same machine and device.
    pub fn same_source(&self, other: &DropGap) -> bool {
        self.machine_id == other.machine_id && self.device_id == other.device_id
    }

    /// Widens this gap by another of the same source.
    pub fn merge(&mut self, other: &DropGap) {
        self.dropped = self.dropped.saturating_add(other.dropped);
        self.first_ts_ms = self.first_ts_ms.min(other.first_ts_ms);
        self.last_ts_ms = self.last_ts_ms.max(other.last_ts_ms);
        self.first_seq = self.first_seq.min(other.first_seq);
        self.last_seq = self.last_seq.max(other.last_seq);
    }

    /// The gap as a record to buffer and upload (its seq is assigned by the buffer; its time
    /// is the start of the gap, so it lands in the day the loss began).
    pub fn to_record(&self) -> Record {
        let as_f64 = |v: u64| v as f64;
        Record::new(
            RecordKind::Gap,
            &self.machine_id,
            &self.device_id,
            self.first_ts_ms,
            [
                (value::DROPPED, as_f64(self.dropped)),
                (value::FIRST_TS_MS, self.first_ts_ms as f64),
                (value::LAST_TS_MS, self.last_ts_ms as f64),
                (value::FIRST_SEQ, as_f64(self.first_seq)),
                (value::LAST_SEQ, as_f64(self.last_seq)),
            ],
        )
    }

    /// Reads a gap record back, checking every figure.
    pub fn from_record(r: &Record) -> Result<DropGap, GapError> {
        let get = |name: &'static str, min: f64| -> Result<f64, GapError> {
            let v = *r.values.get(name).ok_or(GapError::Missing(name))?;
            if v.fract() != 0.0 || !(min..=MAX_EXACT).contains(&v) {
                return Err(GapError::NotWhole { name, value: v });
            }
            Ok(v)
        };
        let gap = DropGap {
            machine_id: r.machine_id.clone(),
            device_id: r.device_id.clone(),
            dropped: get(value::DROPPED, 0.0)? as u64,
            first_ts_ms: get(value::FIRST_TS_MS, -MAX_EXACT)? as i64,
            last_ts_ms: get(value::LAST_TS_MS, -MAX_EXACT)? as i64,
            first_seq: get(value::FIRST_SEQ, 0.0)? as u64,
            last_seq: get(value::LAST_SEQ, 0.0)? as u64,
        };
        if gap.dropped == 0 {
            return Err(GapError::Empty);
        }
        if gap.first_ts_ms > gap.last_ts_ms || gap.first_seq > gap.last_seq {
            return Err(GapError::Reversed);
        }
        Ok(gap)
    }
}

/// Most gaps a tally keeps apart; past it, closed gaps of one source are merged (their seq
/// ranges then may cover records that were confirmed, not dropped, so the cloud's count of
/// what is missing becomes a lower bound; logged when it happens).
pub const MAX_TALLY_GAPS: usize = 256;

/// Folds dropped records into gaps per source. A gap covers one *run* of drops (seqs that
/// follow each other with nothing confirmed in between), so every record of its source with
/// a seq inside its range was dropped: the cloud can count exactly which of them arrived
/// anyway (sent before they were dropped) and which are missing.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct GapTally {
    /// Gaps of earlier runs (and gaps of dropped gap records), not merged into any more.
    closed: Vec<DropGap>,
    /// Gaps of the current run, one per source.
    open: Vec<DropGap>,
    /// Seq of the last record dropped (the run goes on while drops follow it).
    #[serde(default)]
    last_seq: Option<u64>,
}

impl GapTally {
    /// Counts one dropped record. True when the tally had to merge gaps of earlier runs to
    /// stay within [`MAX_TALLY_GAPS`].
    pub fn add(&mut self, record: &Record) -> bool {
        let follows = self.last_seq.is_some_and(|last| last.checked_add(1) == Some(record.seq));
        self.last_seq = Some(record.seq);
        if !follows {
            self.closed.append(&mut self.open);
        }
        let gap = DropGap::of(record);
        if record.kind == RecordKind::Gap {
            // Its seq range is from another run: kept as it is.
            self.closed.push(gap);
        } else {
            match self.open.iter_mut().find(|g| g.same_source(&gap)) {
                Some(held) => held.merge(&gap),
                None => self.open.push(gap),
            }
        }
        let full = self.len() > MAX_TALLY_GAPS;
        if full {
            self.compact();
        }
        full
    }

    /// Merges closed gaps per source to stay within [`MAX_TALLY_GAPS`].
    fn compact(&mut self) {
        let mut merged: Vec<DropGap> = Vec::new();
        for gap in self.closed.drain(..) {
            match merged.iter_mut().find(|g| g.same_source(&gap)) {
                Some(held) => held.merge(&gap),
                None => merged.push(gap),
            }
        }
        self.closed = merged;
    }

    /// Total records dropped.
    pub fn dropped(&self) -> u64 {
        self.gaps().fold(0u64, |sum, g| sum.saturating_add(g.dropped))
    }

    /// True when the tally holds no gap.
    pub fn is_empty(&self) -> bool {
        self.closed.is_empty() && self.open.is_empty()
    }

    /// Gaps held.
    pub fn len(&self) -> usize {
        self.closed.len() + self.open.len()
    }

    /// Every gap: closed ones first, then the current run's.
    pub fn gaps(&self) -> impl Iterator<Item = &DropGap> {
        self.closed.iter().chain(&self.open)
    }

    /// Hands the gaps out to be written as records, keeping the run going: a next drop that
    /// follows the last one still belongs to it.
    pub fn take(&mut self) -> GapTally {
        GapTally {
            closed: std::mem::take(&mut self.closed),
            open: std::mem::take(&mut self.open),
            last_seq: None,
        }
    }

    /// Puts gaps taken with [`GapTally::take`] back (writing them failed), before any
    /// drop since.
    pub fn restore(&mut self, taken: GapTally) {
        let mut closed = taken.closed;
        closed.append(&mut self.closed);
        let mut open = taken.open;
        open.append(&mut self.open);
        (self.closed, self.open) = (closed, open);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shot(seq: u64, machine: &str, ts_ms: i64) -> Record {
        let mut r = Record::new(RecordKind::Shot, machine, machine, ts_ms, [("Cycle_Time", 30.0)]);
        r.seq = seq;
        r.shot_number = Some(seq);
        r
    }

    #[test]
    fn tally_folds_per_source_per_run_and_a_dropped_gap_keeps_its_count() {
        let mut t = GapTally::default();
        t.add(&shot(3, "m1", 1_000));
        t.add(&shot(4, "m2", 2_000));
        t.add(&shot(5, "m1", 3_000));
        let earlier = DropGap {
            machine_id: "m1".into(),
            device_id: "m1".into(),
            dropped: 40,
            first_ts_ms: 10,
            last_ts_ms: 900,
            first_seq: 0,
            last_seq: 2,
        };
        let mut rec = earlier.to_record();
        rec.seq = 6;
        t.add(&rec);
        t.add(&shot(7, "m1", 4_000));
        // Seq 8 was confirmed, not dropped: 9 starts a new run, kept apart.
        t.add(&shot(9, "m1", 5_000));
        assert_eq!(t.dropped(), 45);
        let gaps: Vec<_> = t.gaps().cloned().collect();
        let ranges: Vec<_> =
            gaps.iter().map(|g| (g.machine_id.as_str(), g.first_seq, g.last_seq, g.dropped)).collect();
        assert_eq!(ranges, [("m1", 0, 2, 40), ("m1", 3, 7, 3), ("m2", 4, 4, 1), ("m1", 9, 9, 1)]);
        assert_eq!((gaps[1].first_ts_ms, gaps[1].last_ts_ms), (1_000, 4_000));

        let taken = t.take();
        assert!(t.is_empty());
        t.add(&shot(10, "m1", 6_000));
        assert_eq!(t.len(), 1, "the run goes on after the gaps were taken");
        t.restore(taken);
        assert_eq!((t.len(), t.dropped()), (5, 46));
        let json = serde_json::to_string(&t).expect("json");
        assert_eq!(serde_json::from_str::<GapTally>(&json).expect("parse"), t);
    }

    #[test]
    fn a_tally_stays_bounded() {
        let mut t = GapTally::default();
        let compacted =
            (0..2 * MAX_TALLY_GAPS as u64).map(|i| t.add(&shot(i * 2, "m1", 0))).filter(|c| *c).count();
        assert!(compacted > 0 && t.len() <= MAX_TALLY_GAPS + 1, "{}", t.len());
        assert_eq!(t.dropped(), 2 * MAX_TALLY_GAPS as u64, "merging keeps every count");
    }

    #[test]
    fn round_trips_and_refuses_bad_figures() {
        let gap = DropGap {
            machine_id: "m1".into(),
            device_id: "dryer".into(),
            dropped: 7,
            first_ts_ms: 1_700_000_000_000,
            last_ts_ms: 1_700_000_060_000,
            first_seq: 100,
            last_seq: 180,
        };
        let rec = gap.to_record();
        assert_eq!(rec.kind, RecordKind::Gap);
        assert_eq!(DropGap::from_record(&rec), Ok(gap.clone()));
        let mut bad = rec.clone();
        bad.values.insert(value::DROPPED.into(), 1.5);
        assert!(matches!(DropGap::from_record(&bad), Err(GapError::NotWhole { .. })));
        bad.values.insert(value::DROPPED.into(), 0.0);
        assert_eq!(DropGap::from_record(&bad), Err(GapError::Empty));
        bad.values.remove(value::DROPPED);
        assert_eq!(DropGap::from_record(&bad), Err(GapError::Missing(value::DROPPED)));
        let mut reversed = rec;
        reversed.values.insert(value::LAST_SEQ.into(), 1.0);
        assert_eq!(DropGap::from_record(&reversed), Err(GapError::Reversed));
    }
}
