//! The commit acknowledgement, cloud → edge: after a group commit the ingest publishes, per
//! edge it touched, how far that edge's current buffer epoch is durable in the lake (retained,
//! on `moldops/v1/{site}/{edge_id}/ack`, a topic only the ingest may write). The edge removes a
//! record from its buffer only when an ack covers it, so neither a broker that crashes after
//! its PUBACK nor a lost broker queue can lose data: whatever is not acknowledged is sent again.
//!
//! `committed_through` is contiguous: every seq of the epoch from the edge's `held_from` (the
//! lowest seq its buffer held when it sent the batch) up to it is in the lake (or its
//! quarantine). A gap — a batch lost in the broker — holds the mark back until the edge
//! sends the batch again.

use crate::limits;
use serde::{Deserialize, Serialize};

/// Largest ack payload an edge reads.
pub const MAX_ACK_BYTES: usize = 1024;

/// How far one buffer epoch of an edge is committed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommitAck {
    /// The edge buffer epoch the mark belongs to; an edge ignores acks of another epoch.
    pub epoch: String,
    /// Every seq of `epoch` up to and including this one is durable in the lake.
    pub committed_through: u64,
    /// When the ingest published it (UTC ms); informational.
    pub ts_ms: i64,
}

/// Why an ack payload was ignored.
#[derive(Debug, thiserror::Error)]
pub enum AckError {
    /// The payload is longer than [`MAX_ACK_BYTES`] (its length); it is not parsed.
    #[error("ack is {0} bytes (at most {MAX_ACK_BYTES})")]
    TooLarge(usize),
    /// The payload is not the JSON of a [`CommitAck`].
    #[error("ack is not valid: {0}")]
    Json(#[from] serde_json::Error),
    /// The ack's `epoch` is not a valid buffer epoch ([`limits::check_epoch`]).
    #[error("ack is not valid: {0}")]
    Epoch(#[from] limits::IdError),
}

impl CommitAck {
    /// The ack as the JSON payload the ingest publishes.
    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Decodes an ack, bounded and validated before use.
    pub fn decode(payload: &[u8]) -> Result<CommitAck, AckError> {
        if payload.len() > MAX_ACK_BYTES {
            return Err(AckError::TooLarge(payload.len()));
        }
        let ack: CommitAck = serde_json::from_slice(payload)?;
        limits::check_epoch(&ack.epoch)?;
        Ok(ack)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_refusals() {
        let a = CommitAck { epoch: "0a1b".into(), committed_through: 41, ts_ms: 5 };
        assert_eq!(CommitAck::decode(&a.encode()).expect("valid"), a);
        assert!(matches!(CommitAck::decode(b"{}"), Err(AckError::Json(_))));
        assert!(matches!(CommitAck::decode(&vec![b' '; 2000]), Err(AckError::TooLarge(2000))));
        let bad = br#"{"epoch":"../x","committed_through":1,"ts_ms":0}"#;
        assert!(matches!(CommitAck::decode(bad), Err(AckError::Epoch(_))));
    }
}
