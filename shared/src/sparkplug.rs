//! MQTT Sparkplug B (v3.0), as a moldops edge speaks it and the ingest reads it: the topic
//! namespace, the protobuf payload, the node's birth and death certificates, and a record as one
//! `DDATA` message — lossless, so the ingest rebuilds the very record the native batch carries.
//!
//! Mapping: the Sparkplug group is the site, the edge node is the edge, and each device (machine
//! or peripheral) is a Sparkplug device. A record's values are `Double` metrics named as in the
//! tag map, stamped with the record's time; `moldops/shot_number` and `moldops/mold` show a
//! shot's counter and mould to a SCADA. What a metric cannot hold — the record's identity in the
//! edge's buffer (`epoch`, `seq`), `held_from`, its kind, machine, exact time, out-of-range names
//! and model stamp — travels in the payload's `body` as JSON, marked by `uuid` =
//! [`RECORD_UUID`]. Sparkplug's own `seq` (0–255, per connection) and `bdSeq` only order
//! messages within one session and tie a death to its birth; they name no record, so they
//! cannot make delivery exactly-once. The buffer's `(epoch, seq)` in the body does, as in
//! native batches.

use crate::codec::{Decoded, RefusedRecord, check_record};
use crate::limits;
use crate::record::{Batch, Record, RecordKind, SCHEMA_VERSION};
use crate::score::ModelStamp;
use prost::Message;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use thiserror::Error;

/// First level of every Sparkplug B topic.
pub const NAMESPACE: &str = "spBv1.0";
/// `uuid` of a payload whose `body` is a [`RecordMeta`].
pub const RECORD_UUID: &str = "moldops.record.v1";
/// `uuid` of a moldops edge's `NBIRTH` and `NDEATH`, which tells its death from other nodes'.
pub const NODE_UUID: &str = "moldops.node.v1";
/// Name of the birth/death sequence metric of `NBIRTH` and `NDEATH`.
pub const BD_SEQ: &str = "bdSeq";
/// Name of the node control metric a host sets to `true` in an `NCMD` to ask for a rebirth.
pub const REBIRTH: &str = "Node Control/Rebirth";
/// Metric showing a shot's controller counter.
pub const SHOT_NUMBER: &str = "moldops/shot_number";
/// Metric showing a shot's mould / product code.
pub const MOLD: &str = "moldops/mold";
/// Largest Sparkplug payload read; larger ones are refused unread (one record of
/// [`limits::MAX_VALUES`] values with long names stays below it).
pub const MAX_PAYLOAD_BYTES: usize = 256 << 10;
/// Most metrics a payload may hold; counted on the wire before anything is decoded (an empty
/// metric is 2 bytes there and about a hundred in memory).
pub const MAX_METRICS: usize = limits::MAX_VALUES + 8;
/// Largest node command read (a rebirth request is a few dozen bytes).
pub const MAX_COMMAND_BYTES: usize = 64 << 10;

/// Sparkplug B data types (the `datatype` of a metric) that moldops uses.
pub mod datatype {
    /// 64-bit signed integer (carried in `long_value`, two's complement).
    pub const INT64: u32 = 4;
    /// 64-bit unsigned integer (`long_value`).
    pub const UINT64: u32 = 8;
    /// IEEE 754 double (`double_value`).
    pub const DOUBLE: u32 = 10;
    /// Boolean (`boolean_value`).
    pub const BOOLEAN: u32 = 11;
    /// UTF-8 string (`string_value`).
    pub const STRING: u32 = 12;
}

/// The Sparkplug B payload (`org.eclipse.tahu.protobuf.Payload`); fields moldops does not use
/// (metadata, property sets, data sets, templates) are skipped when decoding.
#[derive(Clone, PartialEq, Message)]
pub struct Payload {
    /// When the message was sent (UTC ms).
    #[prost(uint64, optional, tag = "1")]
    pub timestamp: Option<u64>,
    /// The metrics.
    #[prost(message, repeated, tag = "2")]
    pub metrics: Vec<Metric>,
    /// Message sequence number, 0–255, per node and connection (absent in `NDEATH`).
    #[prost(uint64, optional, tag = "3")]
    pub seq: Option<u64>,
    /// What `body` holds.
    #[prost(string, optional, tag = "4")]
    pub uuid: Option<String>,
    /// Application bytes.
    #[prost(bytes = "vec", optional, tag = "5")]
    pub body: Option<Vec<u8>>,
}

/// One metric of a [`Payload`].
#[derive(Clone, PartialEq, Message)]
pub struct Metric {
    /// Metric name (`/` separates folders in most hosts).
    #[prost(string, optional, tag = "1")]
    pub name: Option<String>,
    /// Alias (moldops does not use aliases).
    #[prost(uint64, optional, tag = "2")]
    pub alias: Option<u64>,
    /// When the value was taken (UTC ms).
    #[prost(uint64, optional, tag = "3")]
    pub timestamp: Option<u64>,
    /// One of the [`datatype`] codes.
    #[prost(uint32, optional, tag = "4")]
    pub datatype: Option<u32>,
    /// A value from history rather than live.
    #[prost(bool, optional, tag = "5")]
    pub is_historical: Option<bool>,
    /// A value not to be stored by the host.
    #[prost(bool, optional, tag = "6")]
    pub is_transient: Option<bool>,
    /// The metric has no value now (a birth certificate declaring it).
    #[prost(bool, optional, tag = "7")]
    pub is_null: Option<bool>,
    /// The value.
    #[prost(oneof = "MetricValue", tags = "10, 11, 12, 13, 14, 15, 16")]
    pub value: Option<MetricValue>,
}

/// The value of a [`Metric`] (the scalar members of Sparkplug's `oneof value`).
#[derive(Clone, PartialEq, prost::Oneof)]
pub enum MetricValue {
    /// Int8–32, UInt8–32.
    #[prost(uint32, tag = "10")]
    Int(u32),
    /// Int64, UInt64, DateTime.
    #[prost(uint64, tag = "11")]
    Long(u64),
    /// Float.
    #[prost(float, tag = "12")]
    Float(f32),
    /// Double.
    #[prost(double, tag = "13")]
    Double(f64),
    /// Boolean.
    #[prost(bool, tag = "14")]
    Boolean(bool),
    /// String, Text, UUID.
    #[prost(string, tag = "15")]
    String(String),
    /// Bytes, File.
    #[prost(bytes = "vec", tag = "16")]
    Bytes(Vec<u8>),
}

impl Metric {
    /// A metric with a value.
    pub fn new(name: &str, datatype: u32, timestamp: u64, value: MetricValue) -> Metric {
        Metric {
            name: Some(name.to_string()),
            timestamp: Some(timestamp),
            datatype: Some(datatype),
            value: Some(value),
            ..Metric::default()
        }
    }

    /// A metric declared without a value (in a birth certificate).
    pub fn null(name: &str, datatype: u32, timestamp: u64) -> Metric {
        Metric {
            name: Some(name.to_string()),
            timestamp: Some(timestamp),
            datatype: Some(datatype),
            is_null: Some(true),
            ..Metric::default()
        }
    }
}

impl Payload {
    /// The protobuf bytes.
    pub fn encode(&self) -> Vec<u8> {
        self.encode_to_vec()
    }

    /// Reads protobuf bytes of at most `max` bytes holding at most [`MAX_METRICS`] metrics.
    pub fn decode_bounded(bytes: &[u8], max: usize) -> Result<Payload, SparkplugError> {
        if bytes.len() > max {
            return Err(SparkplugError::TooLarge { len: bytes.len(), max });
        }
        let metrics = count_metrics(bytes).map_err(|e| SparkplugError::Protobuf(e.to_string()))?;
        if metrics > MAX_METRICS {
            return Err(SparkplugError::TooManyMetrics(metrics));
        }
        Payload::decode(bytes).map_err(|e| SparkplugError::Protobuf(e.to_string()))
    }

    /// The metric called `name`.
    pub fn metric(&self, name: &str) -> Option<&Metric> {
        self.metrics.iter().find(|m| m.name.as_deref() == Some(name))
    }
}

/// How many `metrics` (field 2) a payload holds, walking its top-level fields without decoding
/// them (stops counting past [`MAX_METRICS`]).
fn count_metrics(mut buf: &[u8]) -> Result<usize, prost::DecodeError> {
    use prost::encoding::{DecodeContext, decode_key, skip_field};
    let mut n = 0;
    while !buf.is_empty() && n <= MAX_METRICS {
        let (tag, wire_type) = decode_key(&mut buf)?;
        n += usize::from(tag == 2);
        skip_field(wire_type, tag, &mut buf, DecodeContext::default())?;
    }
    Ok(n)
}

/// The kinds of Sparkplug B messages (the topic's second level).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageType {
    /// Birth certificate of an edge node.
    NBirth,
    /// Death certificate of an edge node (its MQTT will).
    NDeath,
    /// Birth certificate of a device.
    DBirth,
    /// Death certificate of a device.
    DDeath,
    /// Data of an edge node.
    NData,
    /// Data of a device.
    DData,
    /// Command to an edge node.
    NCmd,
    /// Command to a device.
    DCmd,
}

impl MessageType {
    /// The topic level (`NBIRTH`, `DDATA`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            MessageType::NBirth => "NBIRTH",
            MessageType::NDeath => "NDEATH",
            MessageType::DBirth => "DBIRTH",
            MessageType::DDeath => "DDEATH",
            MessageType::NData => "NDATA",
            MessageType::DData => "DDATA",
            MessageType::NCmd => "NCMD",
            MessageType::DCmd => "DCMD",
        }
    }

    fn parse(level: &str) -> Option<MessageType> {
        use MessageType::*;
        [NBirth, NDeath, DBirth, DDeath, NData, DData, NCmd, DCmd].into_iter().find(|t| t.as_str() == level)
    }

    /// True for the device-level kinds, whose topic names a device.
    pub fn is_device(self) -> bool {
        matches!(self, MessageType::DBirth | MessageType::DDeath | MessageType::DData | MessageType::DCmd)
    }
}

/// A parsed Sparkplug B topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topic<'a> {
    /// Group id (the site).
    pub group: &'a str,
    /// Message kind.
    pub kind: MessageType,
    /// Edge node id (the edge).
    pub node: &'a str,
    /// Device id, for device-level kinds.
    pub device: Option<&'a str>,
}

/// `spBv1.0/{group}/{kind}/{node}[/{device}]`.
pub fn topic(group: &str, kind: MessageType, node: &str, device: Option<&str>) -> String {
    match device {
        Some(d) => format!("{NAMESPACE}/{group}/{}/{node}/{d}", kind.as_str()),
        None => format!("{NAMESPACE}/{group}/{}/{node}", kind.as_str()),
    }
}

/// Filter of one kind of message of every node of every group.
pub fn filter_all(kind: MessageType) -> String {
    if kind.is_device() {
        format!("{NAMESPACE}/+/{}/+/+", kind.as_str())
    } else {
        format!("{NAMESPACE}/+/{}/+", kind.as_str())
    }
}

/// Splits a Sparkplug B topic; `None` when it is not one (or has the wrong number of levels
/// for its kind).
pub fn parse_topic(topic: &str) -> Option<Topic<'_>> {
    let rest = topic.strip_prefix(NAMESPACE)?.strip_prefix('/')?;
    let levels: Vec<&str> = rest.split('/').collect();
    let kind = MessageType::parse(levels.get(1)?)?;
    let non_empty = |s: &&str| !s.is_empty();
    match (kind.is_device(), levels.as_slice()) {
        (true, [g, _, n, d]) if [g, n, d].iter().all(|s| non_empty(s)) => {
            Some(Topic { group: g, kind, node: n, device: Some(d) })
        }
        (false, [g, _, n]) if non_empty(g) && non_empty(n) => {
            Some(Topic { group: g, kind, node: n, device: None })
        }
        _ => None,
    }
}

/// The node's birth certificate: `bdSeq` (the one its will carries; `Int64` as in Eclipse
/// Tahu) and the rebirth control; `seq` is 0.
pub fn nbirth(bd_seq: u8, now_ms: u64) -> Payload {
    Payload {
        timestamp: Some(now_ms),
        metrics: vec![
            Metric::new(BD_SEQ, datatype::INT64, now_ms, MetricValue::Long(bd_seq.into())),
            Metric::new(REBIRTH, datatype::BOOLEAN, now_ms, MetricValue::Boolean(false)),
        ],
        seq: Some(0),
        uuid: Some(NODE_UUID.into()),
        ..Payload::default()
    }
}

/// The node's death certificate (its MQTT will): `bdSeq` only, no `seq`.
pub fn ndeath(bd_seq: u8, now_ms: u64) -> Payload {
    Payload {
        timestamp: Some(now_ms),
        metrics: vec![Metric::new(BD_SEQ, datatype::INT64, now_ms, MetricValue::Long(bd_seq.into()))],
        uuid: Some(NODE_UUID.into()),
        ..Payload::default()
    }
}

/// Whether a birth or death certificate is a moldops edge's.
pub fn is_moldops_node(p: &Payload) -> bool {
    p.uuid.as_deref() == Some(NODE_UUID)
}

/// The `bdSeq` of a birth or death certificate.
pub fn bd_seq(p: &Payload) -> Option<u64> {
    match p.metric(BD_SEQ)?.value {
        Some(MetricValue::Long(v)) => Some(v),
        Some(MetricValue::Int(v)) => Some(v.into()),
        _ => None,
    }
}

/// One metric a device declares in its birth certificate.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct MetricDef {
    /// Metric name.
    pub name: String,
    /// One of the [`datatype`] codes.
    pub datatype: u32,
}

impl MetricDef {
    /// A `Double` metric (a record value).
    pub fn double(name: &str) -> MetricDef {
        MetricDef { name: name.to_string(), datatype: datatype::DOUBLE }
    }
}

/// The metrics a machine's shots carry: its values, the shot counter and the mould.
pub fn shot_metrics<'a>(values: impl IntoIterator<Item = &'a str>) -> Vec<MetricDef> {
    let mut defs: Vec<MetricDef> = values.into_iter().map(MetricDef::double).collect();
    defs.push(MetricDef { name: SHOT_NUMBER.into(), datatype: datatype::UINT64 });
    defs.push(MetricDef { name: MOLD.into(), datatype: datatype::STRING });
    defs
}

/// A device's birth certificate declaring `metrics` (without values).
pub fn dbirth(seq: u8, now_ms: u64, metrics: &[MetricDef]) -> Payload {
    Payload {
        timestamp: Some(now_ms),
        metrics: metrics.iter().map(|d| Metric::null(&d.name, d.datatype, now_ms)).collect(),
        seq: Some(seq.into()),
        ..Payload::default()
    }
}

/// Whether a node command asks for a rebirth.
pub fn is_rebirth_request(p: &Payload) -> bool {
    p.metric(REBIRTH).is_some_and(|m| m.value == Some(MetricValue::Boolean(true)))
}

/// What a record carries besides its values: the `body` of its `DDATA` (JSON).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordMeta {
    /// The id of the edge buffer that assigned `seq`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub epoch: String,
    /// The record's seq in that buffer.
    pub seq: u64,
    /// The lowest seq the buffer held when this was sent (see [`Batch::held_from`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub held_from: Option<u64>,
    /// What the record describes.
    pub kind: RecordKind,
    /// The machine it belongs to (the topic names the device).
    pub machine_id: String,
    /// Its exact time (UTC ms; metric timestamps cannot be negative).
    pub ts_ms: i64,
    /// Controller shot counter (shots).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shot_number: Option<u64>,
    /// Mould / product code (shots).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mold: Option<String>,
    /// Values decoded outside their range.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub out_of_range: Vec<String>,
    /// The model that judged the record (scores).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<ModelStamp>,
}

/// The metrics a record becomes: its values (`Double`), and for a shot its counter and mould
/// unless a value already has that name.
pub fn record_metrics(r: &Record) -> Vec<MetricDef> {
    let mut defs: Vec<MetricDef> = r.values.keys().map(|n| MetricDef::double(n)).collect();
    if r.shot_number.is_some() && !r.values.contains_key(SHOT_NUMBER) {
        defs.push(MetricDef { name: SHOT_NUMBER.into(), datatype: datatype::UINT64 });
    }
    if r.mold.is_some() && !r.values.contains_key(MOLD) {
        defs.push(MetricDef { name: MOLD.into(), datatype: datatype::STRING });
    }
    defs
}

/// One record as the payload of a `DDATA` on its device's topic, with Sparkplug `seq`.
pub fn ddata(r: &Record, epoch: &str, held_from: Option<u64>, seq: u8, now_ms: u64) -> Payload {
    let ts = u64::try_from(r.ts_ms).unwrap_or(0);
    let mut metrics: Vec<Metric> = r
        .values
        .iter()
        .map(|(name, v)| Metric::new(name, datatype::DOUBLE, ts, MetricValue::Double(*v)))
        .collect();
    if let Some(n) = r.shot_number
        && !r.values.contains_key(SHOT_NUMBER)
    {
        metrics.push(Metric::new(SHOT_NUMBER, datatype::UINT64, ts, MetricValue::Long(n)));
    }
    if let Some(m) = &r.mold
        && !r.values.contains_key(MOLD)
    {
        metrics.push(Metric::new(MOLD, datatype::STRING, ts, MetricValue::String(m.clone())));
    }
    let meta = RecordMeta {
        epoch: epoch.to_string(),
        seq: r.seq,
        held_from,
        kind: r.kind,
        machine_id: r.machine_id.clone(),
        ts_ms: r.ts_ms,
        shot_number: r.shot_number,
        mold: r.mold.clone(),
        out_of_range: r.out_of_range.clone(),
        model: r.model.clone(),
    };
    Payload {
        timestamp: Some(now_ms),
        metrics,
        seq: Some(seq.into()),
        uuid: Some(RECORD_UUID.into()),
        // Serialising a plain struct to a Vec cannot fail.
        body: Some(serde_json::to_vec(&meta).unwrap_or_default()),
    }
}

/// Why a Sparkplug payload was refused.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum SparkplugError {
    /// The payload is longer than allowed; it is not parsed.
    #[error("Sparkplug payload is {len} bytes (at most {max})")]
    TooLarge {
        /// Its length.
        len: usize,
        /// The most allowed.
        max: usize,
    },
    /// Not a Sparkplug B protobuf payload.
    #[error("not a Sparkplug B payload: {0}")]
    Protobuf(String),
    /// More metrics than [`MAX_METRICS`] (how many were counted, up to one past the limit).
    #[error("Sparkplug payload holds more than {MAX_METRICS} metrics")]
    TooManyMetrics(usize),
    /// A `DDATA` without a moldops record body (e.g. from another Sparkplug node): it names no
    /// record of an edge buffer, so it cannot be stored exactly once.
    #[error("DDATA carries no moldops record (uuid {0:?}): only moldops edges' DDATA are ingested")]
    NotMoldops(Option<String>),
    /// The record body is not valid.
    #[error("DDATA record body is not valid: {0}")]
    Body(String),
    /// The topic's group, node or device, or the body's epoch, breaks the identifier limits.
    #[error("invalid DDATA: {0}")]
    Id(#[from] limits::IdError),
}

/// Reads a `DDATA` of a moldops edge (site `group`, edge `node`, device `device`) as a batch of
/// its one record: the header (identity) is refused whole with [`SparkplugError`]; a record
/// that fails [`check_record`] (or carries a metric that is not a finite `Double` value nor the
/// shot counter or mould) is set aside in [`Decoded::refused`], like a bad record of a native
/// batch.
pub fn decode_ddata(group: &str, node: &str, device: &str, bytes: &[u8]) -> Result<Decoded, SparkplugError> {
    let p = Payload::decode_bounded(bytes, MAX_PAYLOAD_BYTES)?;
    if p.uuid.as_deref() != Some(RECORD_UUID) {
        return Err(SparkplugError::NotMoldops(p.uuid.clone()));
    }
    limits::check_level("site", group)?;
    limits::check_level("edge_id", node)?;
    let body = p.body.as_deref().unwrap_or_default();
    let meta: RecordMeta = serde_json::from_slice(body).map_err(|e| SparkplugError::Body(e.to_string()))?;
    limits::check_epoch(&meta.epoch)?;
    if let Some(h) = meta.held_from
        && h > meta.seq
    {
        return Err(SparkplugError::Body(format!("held_from {h} > seq {}", meta.seq)));
    }
    let batch = Batch {
        schema: SCHEMA_VERSION,
        site: group.to_string(),
        edge_id: node.to_string(),
        epoch: meta.epoch.clone(),
        first_seq: meta.seq,
        last_seq: meta.seq,
        held_from: meta.held_from,
        sent_at_ms: p.timestamp.and_then(|t| i64::try_from(t).ok()).unwrap_or(0),
        records: Vec::new(),
    };
    let mut decoded = Decoded { batch, refused: Vec::new() };
    let seq = meta.seq;
    match record(device, meta, &p.metrics) {
        Ok(r) => decoded.batch.records.push(r),
        Err(reason) => decoded.refused.push(RefusedRecord {
            index: 0,
            seq: Some(seq),
            reason,
            json: String::from_utf8_lossy(body).into_owned(),
        }),
    }
    Ok(decoded)
}

/// The record a `DDATA`'s body and metrics describe, checked like a native one.
fn record(device: &str, meta: RecordMeta, metrics: &[Metric]) -> Result<Record, String> {
    if metrics.len() > limits::MAX_VALUES + 2 {
        return Err(format!("{} metrics (at most {})", metrics.len(), limits::MAX_VALUES + 2));
    }
    let mut values = BTreeMap::new();
    for m in metrics {
        let name = m.name.as_deref().unwrap_or_default();
        match (&m.value, m.datatype) {
            (Some(MetricValue::Double(v)), Some(datatype::DOUBLE)) => {
                if values.insert(name.to_string(), *v).is_some() {
                    return Err(format!("metric {name:?} appears twice"));
                }
            }
            // The counter and mould are shown to hosts; the body has them exactly.
            _ if name == SHOT_NUMBER || name == MOLD => {}
            _ => return Err(format!("metric {name:?} is not a Double value")),
        }
    }
    let r = Record {
        seq: meta.seq,
        kind: meta.kind,
        machine_id: meta.machine_id,
        device_id: device.to_string(),
        ts_ms: meta.ts_ms,
        shot_number: meta.shot_number,
        mold: meta.mold,
        // The mould key carries the material; what was joined matters to the edge's scorer only.
        material: None,
        values,
        out_of_range: meta.out_of_range,
        model: meta.model,
    };
    check_record(&r).map_err(|e| e.to_string())?;
    Ok(r)
}

#[cfg(test)]
#[path = "sparkplug_tests.rs"]
mod tests;
