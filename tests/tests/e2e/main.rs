//! End-to-end and fault tests across processes and real peers: the simulator and the edge
//! binary, Mosquitto, the cloud ingest, pymodbus over TCP and over RTU through a socat pty
//! pair, an asyncua OPC UA server; and the parity of the edge's scoring with the cloud's ETL and batch
//! scoring on the simulator's process model. One test binary; each module is one theme.

// Test helpers share `pub` items between modules and may panic on failure: neither is a
// public API nor a daemon reading outside input.
#![allow(unreachable_pub, clippy::unwrap_used)]

mod acl;
mod admission;
mod buffer_full;
mod closed_loop;
mod common;
mod console;
mod data_path;
mod faults;
mod gate;
mod ingest_replicas;
mod lake_on_s3;
mod lake_support;
mod modbus_peers;
mod mould_lifecycle;
mod opcua;
mod parity;
mod pipeline;
mod pipeline_export;
mod process_data;
mod pull;
mod rollout;
mod rollout_scores;
mod soak;
mod sparkplug;
mod storage;
mod tls;
