//! Wire codec for batches: plain JSON (decodable by any MQTT client with a JSON parser),
//! with validation on decode so that a malformed payload is rejected with a reason.

use crate::record::{Batch, SCHEMA_VERSION};
use thiserror::Error;

/// Why a payload was rejected.
#[derive(Debug, Error)]
pub enum CodecError {
    #[error("payload is not a valid batch: {0}")]
    Json(#[from] serde_json::Error),
    #[error("unsupported schema version {0} (this build speaks {SCHEMA_VERSION})")]
    Schema(u32),
    #[error("batch has no records")]
    Empty,
    #[error("invalid batch: {0}")]
    Invalid(String),
}

/// Encodes a batch as JSON bytes.
pub fn encode_batch(batch: &Batch) -> Vec<u8> {
    // Serialising plain data structures to a Vec cannot fail.
    serde_json::to_vec(batch).unwrap_or_default()
}

/// Decodes and validates a batch: known schema, non-empty, seqs strictly increasing inside
/// the declared range, identifiers present, finite values.
pub fn decode_batch(payload: &[u8]) -> Result<Batch, CodecError> {
    let batch: Batch = serde_json::from_slice(payload)?;
    validate(&batch)?;
    Ok(batch)
}

fn validate(batch: &Batch) -> Result<(), CodecError> {
    if batch.schema != SCHEMA_VERSION {
        return Err(CodecError::Schema(batch.schema));
    }
    if batch.records.is_empty() {
        return Err(CodecError::Empty);
    }
    if batch.edge_id.trim().is_empty() {
        return Err(CodecError::Invalid("edge_id is empty".into()));
    }
    let mut prev: Option<u64> = None;
    for (i, r) in batch.records.iter().enumerate() {
        if r.seq < batch.first_seq || r.seq > batch.last_seq {
            return Err(CodecError::Invalid(format!(
                "record {i}: seq {} outside declared range {}..={}",
                r.seq, batch.first_seq, batch.last_seq
            )));
        }
        if prev.is_some_and(|p| r.seq <= p) {
            return Err(CodecError::Invalid(format!("record {i}: seq {} not increasing", r.seq)));
        }
        prev = Some(r.seq);
        if r.machine_id.trim().is_empty() || r.device_id.trim().is_empty() {
            return Err(CodecError::Invalid(format!("record {i}: empty machine_id or device_id")));
        }
        if let Some((name, v)) = r.values.iter().find(|(_, v)| !v.is_finite()) {
            return Err(CodecError::Invalid(format!("record {i}: value {name} is not finite ({v})")));
        }
        if r.kind == crate::RecordKind::Shot && r.shot_number.is_none() {
            return Err(CodecError::Invalid(format!("record {i}: shot without shot_number")));
        }
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
            values: [("Cycle_Time".to_string(), 61.5)].into_iter().collect(),
            out_of_range: vec![],
        }
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
    }
}
