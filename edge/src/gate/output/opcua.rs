//! An OPC UA sorting output: the shot number and the decision's code written to two variables
//! in one Write request (shot first), over a session opened like an OPC UA device's (same
//! security and identity settings, `crate::sources::opcua::session`).

use crate::config::{DeviceConfig, DeviceRole, Protocol};
use crate::gate::config::{Codes, DECISION_NODE, SHOT_NODE};
use crate::sources::opcua::config::OpcUaConfig;
use crate::sources::opcua::node::status_text;
use crate::sources::opcua::session::Connection;
use moldops_shared::decision::Decision;
use opcua::types::{AttributeId, DataValue, NodeId, Variant, WriteValue};
use std::time::Duration;

/// The OPC UA side of one gate's output.
pub(crate) struct OpcUaOutput {
    /// Stands in for a device: the session's name and request timeout come from it.
    device: DeviceConfig,
    ua: OpcUaConfig,
    codes: Codes,
    conn: Option<(Connection, NodeId, Option<NodeId>)>,
}

impl OpcUaOutput {
    /// An output for gate `machine` with the resolved settings `ua` (its node map holds the
    /// decision and, optionally, the shot variable).
    pub(crate) fn new(machine: &str, ua: OpcUaConfig, codes: Codes, timeout: Duration) -> Self {
        let device = DeviceConfig {
            id: format!("gate-{machine}"),
            role: DeviceRole::Machine,
            machine_id: None,
            protocol: Protocol::Opcua,
            address: None,
            serial: None,
            unit_id: 1,
            poll_interval_ms: 1000,
            timeout_ms: u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX).max(1),
            word_order: None,
            byte_order: None,
            profile_file: None,
            profile: None,
            opcua: None,
        };
        OpcUaOutput { device, ua, codes, conn: None }
    }

    /// The endpoint.
    pub(crate) fn target(&self) -> &str {
        &self.ua.endpoint
    }

    /// Opens the session and resolves the two variables (when none is open).
    pub(crate) async fn connect(&mut self, limit: Duration) -> Result<(), String> {
        if self.conn.is_some() {
            return Ok(());
        }
        let Some(profile) = self.ua.profile.as_ref() else { return Err("no output variables".into()) };
        let conn = Connection::open(&self.device, &self.ua, profile, Duration::from_secs(1), false, limit)
            .await
            .map_err(|e| format!("{}: {e:#}", self.ua.endpoint))?;
        let id = |name: &str| {
            let i = profile.nodes.iter().position(|n| n.name == name)?;
            conn.read_ids().get(i).map(|r| r.node_id.clone())
        };
        let decision = id(DECISION_NODE).ok_or("the decision variable did not resolve")?;
        let shot = id(SHOT_NODE);
        self.conn = Some((conn, decision, shot));
        Ok(())
    }

    /// Writes shot number and decision in one request and checks each status (the caller
    /// bounds the time and drops the session after a failure).
    pub(crate) async fn write(
        &mut self,
        decision: Decision,
        shot: u64,
        limit: Duration,
    ) -> Result<(), String> {
        self.connect(limit).await?;
        let Some((conn, decision_id, shot_id)) = &self.conn else { return Err("not connected".into()) };
        let value = |node_id: &NodeId, v: Variant| WriteValue {
            node_id: node_id.clone(),
            attribute_id: AttributeId::Value as u32,
            index_range: Default::default(),
            value: DataValue::value_only(v),
        };
        let mut values = Vec::with_capacity(2);
        if let Some(id) = shot_id {
            values.push(value(id, Variant::UInt32(shot as u32)));
        }
        values.push(value(decision_id, Variant::Int32(i32::from(self.codes.of(decision)))));
        let results = conn.session.write(&values).await.map_err(|e| format!("write: {e}"))?;
        match results.iter().find(|s| !s.is_good()) {
            Some(bad) => Err(format!("server refused the write: {}", status_text(*bad))),
            None if results.len() != values.len() => {
                Err(format!("{} results for {} writes", results.len(), values.len()))
            }
            None => Ok(()),
        }
    }

    /// True while a session is open.
    pub(crate) fn is_connected(&self) -> bool {
        self.conn.is_some()
    }

    /// Drops the session (after a failure: the next write reconnects).
    pub(crate) fn drop_connection(&mut self) {
        self.conn = None;
    }
}
