//! Contracts spoken by both sides of moldops: the records an edge produces (and the gaps it
//! reports when it had to drop some, the scores it gives each shot and its own health), the
//! batches it uploads and the commit acks it gets back, the MQTT topic layout, the wire codec
//! and its limits, the Sparkplug B mapping of records, the model bundle, the rollout messages
//! and the signed rollback statements that alone allow a downgrade, and the machine profiles
//! (tag maps) that say how registers become named values. No I/O lives here.

#![warn(missing_docs)]

pub mod ack;
pub mod bundle;
pub mod codec;
pub mod decision;
pub mod drift;
pub mod features;
pub mod gap;
pub mod limits;
pub mod mould;
pub mod profile;
pub mod record;
pub mod rollback;
pub mod rollout;
pub mod score;
pub mod sparkplug;
pub mod status;
pub mod topic;

#[cfg(test)]
mod fuzz_tests;

pub use codec::{
    CodecError, Decoded, RecordError, RefusedRecord, decode_batch, decode_lenient, encode_batch,
};
pub use record::{Batch, RESERVED_IDS, Record, RecordKind, SCHEMA_VERSION};
