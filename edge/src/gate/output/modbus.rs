//! A Modbus TCP sorting output: three holding registers (code, shot number high and low word)
//! in one request, or one coil.

use crate::gate::config::{Codes, OutputKind};
use moldops_shared::decision::Decision;
use std::time::Duration;
use tokio::time::timeout;
use tokio_modbus::client::{Context, Writer as _};
use tokio_modbus::slave::Slave;

/// The Modbus side of one gate's output.
pub(crate) struct ModbusOutput {
    pub address: String,
    pub unit_id: u8,
    pub kind: OutputKind,
    pub register: u16,
    pub codes: Codes,
    pub ctx: Option<Context>,
}

impl ModbusOutput {
    /// Opens the connection (when none is open); the error says why it could not.
    pub(crate) async fn connect(&mut self, limit: Duration) -> Result<(), String> {
        if self.ctx.is_some() {
            return Ok(());
        }
        let stream = timeout(limit, tokio::net::TcpStream::connect(&self.address))
            .await
            .map_err(|_| format!("connect to {}: no answer within {limit:?}", self.address))?
            .map_err(|e| format!("connect to {}: {e}", self.address))?;
        let _ = stream.set_nodelay(true);
        self.ctx = Some(tokio_modbus::client::tcp::attach_slave(stream, Slave(self.unit_id)));
        Ok(())
    }

    /// Writes `decision` for shot `shot` and waits for the acknowledgement (the caller bounds
    /// the time and drops the connection after a failure).
    pub(crate) async fn write(
        &mut self,
        decision: Decision,
        shot: u64,
        limit: Duration,
    ) -> Result<(), String> {
        self.connect(limit).await?;
        let (kind, register, code) = (self.kind, self.register, self.codes.of(decision));
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
