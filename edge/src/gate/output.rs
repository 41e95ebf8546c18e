//! The sorting output of one gate — Modbus TCP ([`modbus`]) or OPC UA ([`opcua`]) — kept
//! connected between shots (a connect would eat the deadline), each write bounded by the time
//! left, the connection dropped after any failure so the next shot reconnects.

mod modbus;
mod opcua;

use super::config::{OutputConfig, OutputProtocol};
use moldops_shared::decision::Decision;
use std::path::Path;
use std::time::Duration;
use tokio::time::timeout;

/// One gate's output.
pub(crate) enum Output {
    Modbus(modbus::ModbusOutput),
    OpcUa(Box<opcua::OpcUaOutput>),
}

impl Output {
    /// The output of gate `machine` as configured (checked at load; a setting that fails here —
    /// a file removed since — is an error that stops the edge's start).
    pub(crate) fn new(
        machine: &str,
        cfg: &OutputConfig,
        base: &Path,
        deadline: Duration,
    ) -> Result<Output, String> {
        match cfg.protocol {
            OutputProtocol::ModbusTcp => Ok(Output::Modbus(modbus::ModbusOutput {
                address: cfg.address.clone().unwrap_or_default(),
                unit_id: cfg.unit_id,
                kind: cfg.kind,
                register: cfg.register.unwrap_or_default(),
                codes: cfg.codes,
                ctx: None,
            })),
            OutputProtocol::Opcua => {
                let mut errs = Vec::new();
                let ua = cfg.opcua_resolved("output", base, &mut errs).filter(|_| errs.is_empty());
                let ua = ua.ok_or_else(|| errs.join("; "))?;
                Ok(Output::OpcUa(Box::new(opcua::OpcUaOutput::new(machine, ua, cfg.codes, deadline))))
            }
        }
    }

    /// The controller: `host:port` or the endpoint.
    pub(crate) fn target(&self) -> &str {
        match self {
            Output::Modbus(m) => &m.address,
            Output::OpcUa(u) => u.target(),
        }
    }

    /// True while a connection (Modbus) or session (OPC UA) is open.
    pub(crate) fn is_connected(&self) -> bool {
        match self {
            Output::Modbus(m) => m.ctx.is_some(),
            Output::OpcUa(u) => u.is_connected(),
        }
    }

    /// Opens the connection (ahead of the first shot, or after a failure); the error says why
    /// it could not.
    pub(crate) async fn connect(&mut self, limit: Duration) -> Result<(), String> {
        let result = match self {
            Output::Modbus(m) => timeout(limit, m.connect(limit)).await,
            Output::OpcUa(u) => timeout(limit, u.connect(limit)).await,
        };
        result.unwrap_or_else(|_| Err(format!("no connection within {limit:?}")))
    }

    /// Writes `decision` for shot `shot` and waits for the acknowledgement, all within `limit`.
    pub(crate) async fn write(
        &mut self,
        decision: Decision,
        shot: u64,
        limit: Duration,
    ) -> Result<(), String> {
        let result = match self {
            Output::Modbus(m) => timeout(limit, m.write(decision, shot, limit)).await,
            Output::OpcUa(u) => timeout(limit, u.write(decision, shot, limit)).await,
        };
        let result = result.unwrap_or_else(|_| Err(format!("no acknowledgement within {limit:?}")));
        if result.is_err() {
            match self {
                Output::Modbus(m) => m.ctx = None,
                Output::OpcUa(u) => u.drop_connection(),
            }
        }
        result
    }
}
