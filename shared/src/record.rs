//! Record and batch types: one shot of a machine, one sample of a peripheral or one gap of
//! dropped records, and the self-describing batch an edge uploads. `(site, edge_id, epoch, seq)` is the idempotency key
//! end to end: the epoch is a random id the edge's buffer gets when it is created, so a lost or
//! replaced buffer that counts from 0 again is a new stream, never mistaken for duplicates.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Version of the batch schema on the wire. Receivers reject batches with another version.
pub const SCHEMA_VERSION: u32 = 1;

/// What a record describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RecordKind {
    /// One injection cycle of a machine (dataset `raw_data`).
    Shot,
    /// One reading of a peripheral device (dataset `peripheral_data`).
    Peripheral,
    /// Records the edge dropped unsent because its buffer was full, per machine and device
    /// (dataset `edge_gaps`; see [`crate::gap`]).
    Gap,
    /// One shot scored live at the edge, stamped with the model that judged it (dataset
    /// `edge_scores`; see [`crate::score`]).
    Score,
    /// A snapshot of the edge's own health (dataset `edge_status`; see [`crate::status`]).
    Status,
    /// What a machine's quality gate decided for one shot and wrote to its sorting output
    /// (dataset `edge_decisions`; see [`crate::decision`]).
    Decision,
    /// One period's score and feature histograms of one model key, for drift monitoring
    /// (dataset `edge_drift`; see [`crate::drift`]).
    Drift,
}

impl RecordKind {
    /// Name of the lake dataset this kind of record lands in.
    pub const fn dataset(self) -> &'static str {
        match self {
            RecordKind::Shot => "raw_data",
            RecordKind::Peripheral => "peripheral_data",
            RecordKind::Gap => "edge_gaps",
            RecordKind::Score => "edge_scores",
            RecordKind::Status => "edge_status",
            RecordKind::Decision => "edge_decisions",
            RecordKind::Drift => "edge_drift",
        }
    }
}

/// Machine and device ids the edge uses for its own records (health snapshots, scores): no
/// configured device or machine may take them.
pub const RESERVED_IDS: [&str; 4] =
    [crate::status::MACHINE_ID, crate::score::DEVICE_ID, crate::decision::DEVICE_ID, crate::drift::DEVICE_ID];

/// One record: a shot, a peripheral sample, a gap, a score or an edge's health, with its
/// named values.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// Per-edge, strictly increasing sequence number.
    pub seq: u64,
    /// What the record describes; decides the lake dataset it lands in.
    pub kind: RecordKind,
    /// Machine this record belongs to (for peripherals: the machine the device serves).
    pub machine_id: String,
    /// Device that produced the record (equal to `machine_id` for shots).
    pub device_id: String,
    /// UTC timestamp in milliseconds since the Unix epoch.
    pub ts_ms: i64,
    /// Controller shot counter (shots only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shot_number: Option<u64>,
    /// Mold / product code (shots only): the mould key, `{mould}+{material}` when the machine
    /// reports a material ([`crate::mould`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mold: Option<String>,
    /// The material or recipe code joined to `mold` (shots only; `mold` then ends in
    /// `+{material}`): what tells the scorer that the mould's own model may stand in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub material: Option<String>,
    /// Named process values in engineering units.
    pub values: BTreeMap<String, f64>,
    /// Names of values that were decoded outside their configured engineering range.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub out_of_range: Vec<String>,
    /// The model that judged this record: on score records (see [`crate::score`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<crate::score::ModelStamp>,
}

impl Record {
    /// A record without seq (the edge's buffer assigns it), shot number, mold or flags.
    pub fn new<K: Into<String>>(
        kind: RecordKind,
        machine_id: &str,
        device_id: &str,
        ts_ms: i64,
        values: impl IntoIterator<Item = (K, f64)>,
    ) -> Record {
        Record {
            seq: 0,
            kind,
            machine_id: machine_id.to_string(),
            device_id: device_id.to_string(),
            ts_ms,
            shot_number: None,
            mold: None,
            material: None,
            values: values.into_iter().map(|(k, v)| (k.into(), v)).collect(),
            out_of_range: Vec::new(),
            model: None,
        }
    }
}

/// A batch of records as uploaded by one edge, in ascending `seq` order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Batch {
    /// Batch schema version, [`SCHEMA_VERSION`] when sent; receivers refuse any other.
    pub schema: u32,
    /// Site of the sending edge (one MQTT topic level); must match the topic it arrives on.
    pub site: String,
    /// Id of the sending edge (one MQTT topic level); must match the topic it arrives on.
    pub edge_id: String,
    /// The id of the edge buffer that assigned these seqs (empty from edges before epochs).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub epoch: String,
    /// Lowest seq the batch declares: every record's `seq` lies in `first_seq..=last_seq`.
    pub first_seq: u64,
    /// Highest seq the batch declares (at least `first_seq`).
    pub last_seq: u64,
    /// The lowest seq the edge's buffer held when it sent this batch: every lower seq of the
    /// epoch is final (committed, or dropped by the edge). Absent from edges before commit acks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub held_from: Option<u64>,
    /// When the edge sent the batch (UTC ms); informational only.
    pub sent_at_ms: i64,
    /// The records, 1 to [`crate::limits::MAX_RECORDS`] of them, in strictly increasing `seq`.
    pub records: Vec<Record>,
}

impl Batch {
    /// Builds a batch from records already sorted by `seq`. Returns `None` when empty.
    pub fn new(site: &str, edge_id: &str, sent_at_ms: i64, records: Vec<Record>) -> Option<Batch> {
        let first_seq = records.first()?.seq;
        let last_seq = records.last()?.seq;
        Some(Batch {
            schema: SCHEMA_VERSION,
            site: site.to_string(),
            edge_id: edge_id.to_string(),
            epoch: String::new(),
            held_from: None,
            first_seq,
            last_seq,
            sent_at_ms,
            records,
        })
    }

    /// The batch with its buffer epoch set.
    pub fn with_epoch(mut self, epoch: &str) -> Batch {
        self.epoch = epoch.to_string();
        self
    }
}
