//! Wire codec for batches: plain JSON (decodable by any MQTT client with a JSON parser),
//! validated on decode so that a malformed payload is refused with a reason.
//!
//! A batch is checked in two layers. Its header (schema, site, edge id, epoch, seq range, the
//! record count, the payload size) identifies every record in it: when that is wrong the
//! whole payload is refused ([`CodecError`]). Each record is then checked on its own (shape,
//! identifiers, finite values): [`decode_lenient`] keeps the good records and sets the bad
//! ones aside ([`RefusedRecord`]) so that one bad record never costs its neighbours;
//! [`decode_batch`] refuses the batch at the first bad record.

use crate::limits::{self, IdError};
use crate::record::{Batch, Record, SCHEMA_VERSION};
use serde::Deserialize;
use serde_json::value::RawValue;
use thiserror::Error;

/// Why a whole payload was refused.
#[derive(Debug, Error)]
pub enum CodecError {
    /// The payload is longer than [`limits::MAX_PAYLOAD_BYTES`] (its length); it is not parsed.
    #[error("payload is {0} bytes (at most {max})", max = limits::MAX_PAYLOAD_BYTES)]
    TooLarge(usize),
    /// The payload is not a JSON object with a batch's header fields and a `records` array.
    #[error("payload is not a valid batch: {0}")]
    Json(#[from] serde_json::Error),
    /// The batch declares a `schema` other than [`SCHEMA_VERSION`] (the version it declared).
    #[error("unsupported schema version {0} (this build speaks {SCHEMA_VERSION})")]
    Schema(u32),
    /// The batch's `records` array is empty.
    #[error("batch has no records")]
    Empty,
    /// `site`, `edge_id` or `epoch` breaks the identifier limits of [`crate::limits`].
    #[error("invalid batch: {0}")]
    Id(#[from] IdError),
    /// The header contradicts itself or its records (over [`limits::MAX_RECORDS`] records,
    /// `first_seq > last_seq`, `held_from > first_seq`, a seq outside the range or not
    /// increasing), or [`decode_batch`] met a bad record; the text says which.
    #[error("invalid batch: {0}")]
    Invalid(String),
}

/// One record refused on its own, with the reason and its JSON text.
#[derive(Debug, Clone, PartialEq)]
pub struct RefusedRecord {
    /// Position in the batch's `records`.
    pub index: usize,
    /// Its seq when it could be read.
    pub seq: Option<u64>,
    /// Why it was refused: the parse error or the [`RecordError`] text.
    pub reason: String,
    /// The record's JSON as received.
    pub json: String,
}

/// A batch with a valid header: its good records (in `batch`) and the refused ones.
#[derive(Debug, Clone, PartialEq)]
pub struct Decoded {
    /// The batch's header with only the records that passed [`check_record`], in order.
    pub batch: Batch,
    /// The records set aside, in the order they appeared in the payload.
    pub refused: Vec<RefusedRecord>,
}

/// Encodes a batch as JSON bytes.
pub fn encode_batch(batch: &Batch) -> Vec<u8> {
    // Serialising plain data structures to a Vec cannot fail.
    serde_json::to_vec(batch).unwrap_or_default()
}

/// Decodes and validates a batch, refusing it whole if any record is bad.
pub fn decode_batch(payload: &[u8]) -> Result<Batch, CodecError> {
    let d = decode_lenient(payload)?;
    match d.refused.first() {
        Some(r) => Err(CodecError::Invalid(format!("record {}: {}", r.index, r.reason))),
        None if d.batch.records.is_empty() => Err(CodecError::Empty),
        None => Ok(d.batch),
    }
}

/// The wire shape with records left unparsed, so that each can be judged alone.
#[derive(Deserialize)]
struct WireBatch<'a> {
    schema: u32,
    site: String,
    edge_id: String,
    #[serde(default)]
    epoch: String,
    first_seq: u64,
    last_seq: u64,
    #[serde(default)]
    held_from: Option<u64>,
    sent_at_ms: i64,
    #[serde(borrow)]
    records: Vec<&'a RawValue>,
}

#[derive(Deserialize)]
struct SchemaOnly {
    schema: u32,
}

#[derive(Deserialize)]
struct SeqOnly {
    seq: u64,
}

/// Decodes a batch whose header is valid, keeping the good records and setting the bad ones
/// aside. Seqs (of every record whose seq can be read) must lie in the declared range and
/// strictly increase, else the whole batch is refused: its identity cannot be trusted.
pub fn decode_lenient(payload: &[u8]) -> Result<Decoded, CodecError> {
    if payload.len() > limits::MAX_PAYLOAD_BYTES {
        return Err(CodecError::TooLarge(payload.len()));
    }
    let wire: WireBatch<'_> = match serde_json::from_slice(payload) {
        Ok(w) => w,
        Err(e) => {
            return Err(match serde_json::from_slice::<SchemaOnly>(payload) {
                Ok(s) if s.schema != SCHEMA_VERSION => CodecError::Schema(s.schema),
                _ => CodecError::Json(e),
            });
        }
    };
    check_header(&wire)?;
    let mut batch = Batch {
        schema: wire.schema,
        site: wire.site,
        edge_id: wire.edge_id,
        epoch: wire.epoch,
        first_seq: wire.first_seq,
        last_seq: wire.last_seq,
        held_from: wire.held_from,
        sent_at_ms: wire.sent_at_ms,
        records: Vec::with_capacity(wire.records.len()),
    };
    let mut refused = Vec::new();
    let mut prev: Option<u64> = None;
    for (index, raw) in wire.records.iter().enumerate() {
        let parsed = serde_json::from_str::<Record>(raw.get());
        let seq = match &parsed {
            Ok(r) => Some(r.seq),
            Err(_) => serde_json::from_str::<SeqOnly>(raw.get()).ok().map(|s| s.seq),
        };
        if let Some(seq) = seq {
            if seq < batch.first_seq || seq > batch.last_seq {
                return Err(CodecError::Invalid(format!(
                    "record {index}: seq {seq} outside declared range {}..={}",
                    batch.first_seq, batch.last_seq
                )));
            }
            if prev.is_some_and(|p| seq <= p) {
                return Err(CodecError::Invalid(format!("record {index}: seq {seq} not increasing")));
            }
            prev = Some(seq);
        }
        let checked = parsed
            .map_err(|e| format!("not a valid record: {e}"))
            .and_then(|r| check_record(&r).map(|()| r).map_err(|e| e.to_string()));
        match checked {
            Ok(r) => batch.records.push(r),
            Err(reason) => refused.push(RefusedRecord { index, seq, reason, json: raw.get().to_string() }),
        }
    }
    Ok(Decoded { batch, refused })
}

fn check_header(w: &WireBatch<'_>) -> Result<(), CodecError> {
    if w.schema != SCHEMA_VERSION {
        return Err(CodecError::Schema(w.schema));
    }
    limits::check_level("site", &w.site)?;
    limits::check_level("edge_id", &w.edge_id)?;
    limits::check_epoch(&w.epoch)?;
    if w.records.is_empty() {
        return Err(CodecError::Empty);
    }
    if w.records.len() > limits::MAX_RECORDS {
        return Err(CodecError::Invalid(format!(
            "{} records (at most {})",
            w.records.len(),
            limits::MAX_RECORDS
        )));
    }
    if w.first_seq > w.last_seq {
        return Err(CodecError::Invalid(format!("first_seq {} > last_seq {}", w.first_seq, w.last_seq)));
    }
    if let Some(h) = w.held_from
        && h > w.first_seq
    {
        return Err(CodecError::Invalid(format!("held_from {h} > first_seq {}", w.first_seq)));
    }
    Ok(())
}

/// Why one record was refused on its own.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum RecordError {
    /// `machine_id`, `device_id`, `mold`, a value name or an `out_of_range` name breaks the
    /// identifier limits of [`crate::limits`].
    #[error("{0}")]
    Id(#[from] IdError),
    /// The record carries more than [`limits::MAX_VALUES`] values (how many it carries).
    #[error("{0} values (at most {max})", max = limits::MAX_VALUES)]
    TooManyValues(usize),
    /// A value is NaN or infinite.
    #[error("value {name} is not finite ({value})")]
    NotFinite {
        /// Name of the value.
        name: String,
        /// The value as found.
        value: f64,
    },
    /// A record of kind `shot` has no `shot_number`.
    #[error("shot without shot_number")]
    NoShotNumber,
    /// The record names a material that its mould key does not end in (`{mould}+{material}`),
    /// or is not a shot.
    #[error(
        "material {material:?} on a record whose mould key {mold:?} does not end in +{material} (or not a shot)"
    )]
    Material {
        /// The record's mould key.
        mold: Option<String>,
        /// The material it names.
        material: String,
    },
    /// A record of kind `gap` is not a valid gap ([`crate::gap::DropGap::from_record`]).
    #[error("{0}")]
    Gap(#[from] crate::gap::GapError),
    /// The record's model stamp is not valid, or a record of kind `score` is not a valid score
    /// ([`crate::score::check_record`]).
    #[error("{0}")]
    Score(#[from] crate::score::ScoreError),
    /// A record of kind `decision` is not a valid decision ([`crate::decision::check_record`]).
    #[error("{0}")]
    Decision(#[from] crate::decision::DecisionError),
    /// A record of kind `drift` is not a valid drift summary ([`crate::drift::check_record`]).
    #[error("{0}")]
    Drift(#[from] crate::drift::DriftError),
}

/// Checks one record on its own: identifiers, value count and names, finite values, a shot
/// number on shots, whole and ordered figures on gaps, a model stamp and a score on scores.
pub fn check_record(r: &Record) -> Result<(), RecordError> {
    limits::check_name("machine_id", &r.machine_id)?;
    limits::check_name("device_id", &r.device_id)?;
    if let Some(mold) = &r.mold {
        limits::check_name("mold", mold)?;
    }
    if let Some(material) = &r.material {
        limits::check_name("material", material)?;
        let joined = r.mold.as_deref().and_then(|m| crate::mould::mould_of(m, material)).is_some();
        if r.kind != crate::RecordKind::Shot || !joined {
            return Err(RecordError::Material { mold: r.mold.clone(), material: material.clone() });
        }
    }
    if r.values.len() > limits::MAX_VALUES {
        return Err(RecordError::TooManyValues(r.values.len()));
    }
    for (name, &value) in &r.values {
        limits::check_name("value name", name)?;
        if !value.is_finite() {
            return Err(RecordError::NotFinite { name: name.clone(), value });
        }
    }
    for name in &r.out_of_range {
        limits::check_name("out_of_range name", name)?;
    }
    if let Some(stamp) = &r.model {
        stamp.check()?;
    }
    match r.kind {
        crate::RecordKind::Shot if r.shot_number.is_none() => return Err(RecordError::NoShotNumber),
        crate::RecordKind::Gap => {
            crate::gap::DropGap::from_record(r)?;
        }
        crate::RecordKind::Score => crate::score::check_record(r)?,
        crate::RecordKind::Decision => crate::decision::check_record(r)?,
        crate::RecordKind::Drift => crate::drift::check_record(r)?,
        _ => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{Record, RecordKind};

    fn rec(seq: u64) -> Record {
        Record {
            seq,
            kind: RecordKind::Shot,
            machine_id: "m1".into(),
            device_id: "m1".into(),
            ts_ms: 1_700_000_000_000,
            shot_number: Some(seq),
            mold: Some("A".into()),
            material: None,
            values: [("Cycle_Time".to_string(), 61.5)].into_iter().collect(),
            out_of_range: vec![],
            model: None,
        }
    }

    #[test]
    fn a_material_must_be_the_end_of_its_mould_key() {
        let mut r = rec(1);
        r.material = Some("PA6".into());
        assert!(
            matches!(check_record(&r), Err(RecordError::Material { .. })),
            "mould A does not end in +PA6"
        );
        r.mold = Some("A+PA6".into());
        assert_eq!(check_record(&r), Ok(()));
        r.kind = RecordKind::Peripheral;
        assert!(matches!(check_record(&r), Err(RecordError::Material { .. })), "shots only");
        r.kind = RecordKind::Shot;
        r.material = Some("PA\u{7}".into());
        r.mold = Some("A+PA\u{7}".into());
        assert!(matches!(check_record(&r), Err(RecordError::Id(_))), "a control character is refused");
    }

    #[test]
    fn round_trip() {
        let b = Batch::new("s", "e", 1, vec![rec(3), rec(4)]).expect("non-empty");
        let back = decode_batch(&encode_batch(&b)).expect("valid");
        assert_eq!(back, b);
    }

    #[test]
    fn rejects_malformed() {
        assert!(matches!(decode_batch(b"not json"), Err(CodecError::Json(_))));
        let mut b = Batch::new("s", "e", 1, vec![rec(3), rec(4)]).expect("non-empty");
        b.schema = 99;
        assert!(matches!(decode_batch(&encode_batch(&b)), Err(CodecError::Schema(99))));
        let mut b = Batch::new("s", "e", 1, vec![rec(4), rec(3)]).expect("non-empty");
        b.first_seq = 3;
        b.last_seq = 4;
        assert!(matches!(decode_batch(&encode_batch(&b)), Err(CodecError::Invalid(_))));
        let json =
            r#"{"schema":1,"site":"s","edge_id":"e","first_seq":1,"last_seq":1,"sent_at_ms":0,"records":[]}"#;
        assert!(matches!(decode_batch(json.as_bytes()), Err(CodecError::Empty)));
        let b = Batch::new("s", "e/1", 1, vec![rec(3)]).expect("non-empty");
        assert!(matches!(decode_batch(&encode_batch(&b)), Err(CodecError::Id(_))));
        let big = vec![b' '; crate::limits::MAX_PAYLOAD_BYTES + 1];
        assert!(matches!(decode_batch(&big), Err(CodecError::TooLarge(_))));
    }

    #[test]
    fn a_bad_record_is_refused_alone() {
        let mut long = rec(4);
        long.machine_id = "가".repeat(50);
        let mut unnamed = rec(6);
        unnamed.values.insert(String::new(), 1.0);
        let b = Batch::new("s", "e", 1, vec![rec(3), long, rec(5), unnamed, rec(7)]).expect("batch");
        let mut json = String::from_utf8(encode_batch(&b)).expect("utf8");
        // A record whose value is null (how serde_json writes NaN) and one that is not a record.
        json = json.replacen("\"Cycle_Time\":61.5", "\"Cycle_Time\":null", 1);
        json = json.replacen("]}", ",{\"seq\":8,\"kind\":\"bogus\"}]}", 1);
        json = json.replace("\"last_seq\":7", "\"last_seq\":8");
        let d = decode_lenient(json.as_bytes()).expect("header is fine");
        let kept: Vec<u64> = d.batch.records.iter().map(|r| r.seq).collect();
        assert_eq!(kept, vec![5, 7]);
        let refused: Vec<(Option<u64>, &str)> =
            d.refused.iter().map(|r| (r.seq, r.reason.as_str())).collect();
        assert_eq!(refused.len(), 4, "{refused:?}");
        assert_eq!(refused[0].0, Some(3));
        assert!(refused[0].1.contains("not a valid record"), "{refused:?}");
        assert!(refused[1].1.contains("machine_id is 150 bytes"), "{refused:?}");
        assert!(refused[2].1.contains("value name is empty"), "{refused:?}");
        assert_eq!(refused[3].0, Some(8));
        assert!(d.refused[1].json.contains(&"가".repeat(50)));
        assert!(matches!(decode_batch(json.as_bytes()), Err(CodecError::Invalid(_))));
    }

    #[test]
    fn epochs_travel_and_old_batches_have_none() {
        let b = Batch::new("s", "e", 1, vec![rec(3)]).expect("batch").with_epoch("a1b2");
        let text = String::from_utf8(encode_batch(&b)).expect("utf8");
        assert!(text.contains("\"epoch\":\"a1b2\""));
        assert_eq!(decode_batch(text.as_bytes()).expect("valid").epoch, "a1b2");
        let old = Batch::new("s", "e", 1, vec![rec(3)]).expect("batch");
        assert!(!String::from_utf8(encode_batch(&old)).expect("utf8").contains("epoch"));
        let bad = b.clone().with_epoch("../x");
        assert!(matches!(decode_batch(&encode_batch(&bad)), Err(CodecError::Id(_))));
    }
}
