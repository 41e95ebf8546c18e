//! The sorting output of one gate: a Modbus TCP connection kept open between shots (a connect
//! would eat the deadline), each write bounded by the time left, the connection dropped after
//! any failure so the next shot reconnects.

use super::config::{OutputConfig, OutputKind};
use moldops_shared::decision::Decision;
use std::time::Duration;
use tokio::time::timeout;
use tokio_modbus::client::{Context, Writer as _};
use tokio_modbus::slave::Slave;

/// One gate's output.
pub(crate) struct Output {
    cfg: OutputConfig,
    ctx: Option<Context>,
}

impl Output {
    pub(crate) fn new(cfg: OutputConfig) -> Self {
        Output { cfg, ctx: None }
    }

    /// The controller's `host:port`.
    pub(crate) fn target(&self) -> &str {
        &self.cfg.address
    }

    /// Opens the connection ahead of the first shot; the error says why it could not.
    pub(crate) async fn connect(&mut self, limit: Duration) -> Result<(), String> {
        if self.ctx.is_some() {
            return Ok(());
        }
        let stream = timeout(limit, tokio::net::TcpStream::connect(&self.cfg.address))
            .await
            .map_err(|_| format!("connect to {}: no answer within {limit:?}", self.cfg.address))?
            .map_err(|e| format!("connect to {}: {e}", self.cfg.address))?;
        let _ = stream.set_nodelay(true);
        self.ctx = Some(tokio_modbus::client::tcp::attach_slave(stream, Slave(self.cfg.unit_id)));
        Ok(())
    }

    /// Writes `decision` for shot `shot` and waits for the acknowledgement, all within `limit`.
    pub(crate) async fn write(
        &mut self,
        decision: Decision,
        shot: u64,
        limit: Duration,
    ) -> Result<(), String> {
        let result = timeout(limit, self.write_inner(decision, shot, limit))
            .await
            .unwrap_or_else(|_| Err(format!("no acknowledgement within {limit:?}")));
        if result.is_err() {
            self.ctx = None;
        }
        result
    }

    async fn write_inner(&mut self, decision: Decision, shot: u64, limit: Duration) -> Result<(), String> {
        self.connect(limit).await?;
        let (kind, register, code) = (self.cfg.kind, self.cfg.register, self.cfg.codes.of(decision));
        let ctx = self.ctx.as_mut().ok_or("not connected")?;
        let answer = match kind {
            OutputKind::Registers => {
                let low = shot as u32;
                let words = [code, (low >> 16) as u16, low as u16];
                ctx.write_multiple_registers(register, &words).await
            }
            OutputKind::Coil => ctx.write_single_coil(register, decision != Decision::Good).await,
        };
        answer.map_err(|e| format!("write: {e}"))?.map_err(|e| format!("device answered exception {e:?}"))
    }
}
