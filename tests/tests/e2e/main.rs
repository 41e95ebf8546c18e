//! End-to-end and fault tests across processes and real peers: the simulator and the edge
//! binary, Mosquitto, the cloud ingest, pymodbus over TCP and over RTU through a socat pty
//! pair, an asyncua OPC UA server. One test binary; each module is one theme.

mod closed_loop;
mod common;
mod data_path;
mod faults;
mod modbus_peers;
mod opcua;
mod pipeline;
mod rollout;
mod tls;
