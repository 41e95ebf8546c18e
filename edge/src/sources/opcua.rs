//! OPC UA client for one device: connects on demand, reads the node map as a [`Snapshot`]
//! (the same the Modbus decoder yields, so shot assembly, records and health stay shared in
//! [`crate::schedule`]), and drops the session on any error so the next poll reconnects —
//! with the caller's back-off — and re-creates its subscription.
//!
//! Crate: `async-opcua` (imported as `opcua`), the maintained fork of locka99/opcua (the
//! original's last release was 2024-01 and it links OpenSSL). It is async on tokio like the rest
//! of the edge, does its crypto in pure Rust (no OpenSSL to ship or patch on a gateway), and
//! only its `client` feature is built. Its own reconnect loop is disabled (retry limit 0): the
//! poller owns reconnects, so a lost session is visible in health and metrics like a Modbus one.
//!
//! Reading: with `mode = "subscribe"` (default) a subscription is created with publishing and
//! sampling interval = poll interval. A machine monitors its cycle counter and, on each change,
//! reads every node of the map explicitly, so a shot's values are one consistent set taken
//! after the counter moved; a peripheral monitors every node and yields the latest values each
//! poll. If the server refuses subscriptions the device falls back to polling (Read service),
//! which `mode = "poll"` selects outright. Submodules: [`config`] the settings, [`map`] the
//! node map, [`node`] node ids and value conversion, [`browse_path`] browse paths,
//! [`resolve`] turning the map into the server's node ids on every connect, [`session`]
//! connecting and subscribing.

pub mod browse_path;
pub mod config;
pub mod map;
pub mod node;
pub mod resolve;
pub mod session;

use crate::config::{DeviceConfig, DeviceRole};
use crate::shot::Snapshot;
use anyhow::{Context, Result, anyhow};
use config::{NodeProfile, OpcUaConfig, ReadMode};
use opcua::types::TimestampsToReturn;
use session::Connection;
use std::time::Duration;
use tokio::time::timeout;

/// Longest a machine waits for a counter change before reading anyway (a liveness check).
const QUIET_READ: Duration = Duration::from_secs(5);

/// An OPC UA connection to one device, re-established on demand.
pub struct OpcUaSource {
    cfg: DeviceConfig,
    ua: Option<OpcUaConfig>,
    profile: Option<NodeProfile>,
    bits: u32,
    conn: Option<Connection>,
    timeout: Duration,
    read_latency: Option<Duration>,
}

impl OpcUaSource {
    /// `cfg.opcua` should be resolved ([`OpcUaConfig::resolve`]: node map inline); if not,
    /// every snapshot fails saying so.
    pub fn new(cfg: DeviceConfig) -> Self {
        let ua = cfg.opcua.clone();
        let profile = ua.as_ref().and_then(|u| u.profile.clone());
        let bits = profile.as_ref().map_or(32, |p| p.to_profile().counter_bits());
        let timeout = Duration::from_millis(cfg.timeout_ms);
        OpcUaSource { cfg, ua, profile, bits, conn: None, timeout, read_latency: None }
    }

    /// The configured endpoint (`?` without `[devices.opcua]`).
    pub fn target(&self) -> String {
        self.ua.as_ref().map_or_else(|| "?".into(), |u| u.endpoint.clone())
    }

    /// How long the last Read request took.
    pub fn read_latency(&self) -> Option<Duration> {
        self.read_latency
    }

    /// True while a session is open (dropped after any error).
    pub fn is_connected(&self) -> bool {
        self.conn.is_some()
    }

    /// True while values arrive by subscription and a machine waits for its counter to change:
    /// the poller then does not add its own interval.
    pub fn paces_itself(&self) -> bool {
        self.cfg.role == DeviceRole::Machine && self.conn.as_ref().is_some_and(Connection::subscribed)
    }

    /// The next snapshot: on a counter change (machines, subscribed), the latest notified
    /// values (peripherals, subscribed), or a plain read. Any error drops the session.
    pub async fn snapshot(&mut self) -> Result<Snapshot> {
        let (Some(ua), Some(profile)) = (&self.ua, &self.profile) else {
            return Err(anyhow!("device {}: [devices.opcua] or its node map is missing", self.cfg.id));
        };
        if self.conn.is_none() {
            let interval = Duration::from_millis(self.cfg.poll_interval_ms);
            let subscribe = ua.mode == ReadMode::Subscribe;
            let limit = (self.timeout * 4).max(Duration::from_secs(5));
            let conn = Connection::open(&self.cfg, ua, profile, interval, subscribe, limit)
                .await
                .with_context(|| format!("opc ua {}", ua.endpoint))?;
            self.conn = Some(conn);
        }
        let result = match self.conn.as_mut() {
            Some(conn) => {
                next(conn, profile, self.cfg.role, self.bits, self.timeout, &mut self.read_latency).await
            }
            None => Err(anyhow!("not connected")),
        };
        if result.is_err()
            && let Some(conn) = self.conn.take()
        {
            conn.close();
        }
        result
    }
}

/// One snapshot from a live connection (see [`OpcUaSource::snapshot`]).
async fn next(
    conn: &mut Connection,
    profile: &NodeProfile,
    role: DeviceRole,
    bits: u32,
    limit: Duration,
    latency: &mut Option<Duration>,
) -> Result<Snapshot> {
    conn.check_alive()?;
    if conn.subscribed() {
        match role {
            DeviceRole::Machine => conn.wait_for_change(QUIET_READ.max(limit)).await?,
            DeviceRole::Peripheral => {
                if let Some(values) = conn.notified_values() {
                    return node::snapshot(profile, bits, &values).map_err(anyhow::Error::from);
                }
            }
        }
    }
    let started = std::time::Instant::now();
    let read = conn.session.read(conn.read_ids(), TimestampsToReturn::Source, 0.0);
    let values = timeout(limit, read)
        .await
        .map_err(|_| anyhow!("read timed out after {limit:?}"))?
        .map_err(|e| anyhow!("read: {}", node::status_text(e.status())))?;
    *latency = Some(started.elapsed());
    node::snapshot(profile, bits, &values).map_err(anyhow::Error::from)
}

/// Role of the device as OPC UA sees it: which nodes a subscription monitors.
pub fn monitored(profile: &NodeProfile, role: DeviceRole) -> Vec<usize> {
    let counter = profile.shot_counter.as_deref();
    match (role, counter) {
        (DeviceRole::Machine, Some(c)) => {
            profile.nodes.iter().position(|n| n.name == c).into_iter().collect()
        }
        _ => (0..profile.nodes.len()).collect(),
    }
}

#[cfg(test)]
mod tests;
