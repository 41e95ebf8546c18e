//! Contracts spoken by both sides of moldops: the records an edge produces, the batches it
//! uploads, the MQTT topic layout, the wire codec, and the machine profiles (tag maps) that
//! say how registers become named values. No I/O lives here.

pub mod bundle;
pub mod codec;
pub mod features;
pub mod profile;
pub mod record;
pub mod rollout;
pub mod topic;

pub use codec::{CodecError, decode_batch, encode_batch};
pub use record::{Batch, Record, RecordKind, SCHEMA_VERSION};
