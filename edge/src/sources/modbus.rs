//! Modbus TCP and RTU client for one device: connects on demand, wraps every request in a
//! timeout (tokio-modbus has none of its own) and drops the connection on any error so the
//! next poll reconnects. An RTU device talks through the serial line it shares with the other
//! devices on the same path ([`super::serial_line`]). Back-off between attempts is the
//! caller's ([`crate::schedule`]).

use super::Registers;
use super::serial_line::{Lines, SerialLine, Turn};
use crate::config::{DeviceConfig, Protocol};
use moldops_shared::profile::{ReadBlock, RegisterKind};
use std::sync::Arc;
use std::time::Duration;
use thiserror::Error;
use tokio::time::timeout;
use tokio_modbus::client::{Context, Reader};
use tokio_modbus::slave::Slave;

/// Why a Modbus read failed; the connection is dropped after any of them.
#[derive(Debug, Error)]
pub enum SourceError {
    /// No connection could be opened (TCP connect, serial port or settings).
    #[error("connect to {target}: {msg}")]
    Connect {
        /// `host:port` or serial port.
        target: String,
        /// What failed.
        msg: String,
    },
    /// A read got no answer within the device's `timeout_ms` (the duration given).
    #[error("timeout after {0:?}")]
    Timeout(Duration),
    /// A read failed on the transport, or the answer had fewer registers than asked for.
    #[error("read {kind:?} {start}+{count}: {msg}")]
    Read {
        /// Holding or input registers.
        kind: RegisterKind,
        /// First register address of the block.
        start: u16,
        /// Registers in the block.
        count: u16,
        /// The transport's error, or how short the answer was.
        msg: String,
    },
    /// The device answered with a Modbus exception (e.g. illegal data address).
    #[error("read {kind:?} {start}+{count}: device answered exception {code}")]
    Exception {
        /// Holding or input registers.
        kind: RegisterKind,
        /// First register address of the block.
        start: u16,
        /// Registers in the block.
        count: u16,
        /// The exception code, as tokio-modbus names it.
        code: String,
    },
}

/// A Modbus connection to one device, re-established on demand.
pub struct ModbusSource {
    cfg: DeviceConfig,
    link: Link,
    timeout: Duration,
    /// Address or serial path, for messages.
    target: String,
}

/// How requests reach the device.
enum Link {
    /// Its own TCP connection (`None` until the first read and after any error).
    Tcp(Option<Context>),
    /// A turn on the serial line it shares with the other RTU devices on the same path.
    Rtu(Arc<SerialLine>),
    /// Settings that cannot work (the configuration check refuses them first).
    Unusable(&'static str),
}

impl ModbusSource {
    /// A source for `cfg`; it connects on the first read and waits `timeout_ms` per request.
    /// An RTU device takes its line from `lines`.
    pub fn new(cfg: DeviceConfig, lines: &mut Lines) -> Self {
        let timeout = Duration::from_millis(cfg.timeout_ms);
        let link = match (cfg.protocol, &cfg.serial) {
            (Protocol::ModbusTcp, _) => Link::Tcp(None),
            (Protocol::ModbusRtu, Some(serial)) => Link::Rtu(lines.line(serial)),
            (Protocol::ModbusRtu, None) => Link::Unusable("no serial settings"),
            (Protocol::Opcua, _) => Link::Unusable("not a Modbus device"),
        };
        let target = match (&cfg.address, &cfg.serial) {
            (Some(a), _) => a.clone(),
            (None, Some(s)) => s.path.clone(),
            (None, None) => "?".into(),
        };
        ModbusSource { cfg, link, timeout, target }
    }

    /// Human-readable target (address or serial path).
    pub fn target(&self) -> &str {
        &self.target
    }

    /// Reads every block; on any failure the connection (or the shared line's port) is closed
    /// and the error returned.
    pub async fn read(&mut self, blocks: &[ReadBlock]) -> Result<Registers, SourceError> {
        let (limit, unit, target) = (self.timeout, self.cfg.unit_id, self.target.as_str());
        let err = |msg: String| SourceError::Connect { target: target.to_string(), msg };
        match &mut self.link {
            Link::Tcp(slot) => {
                if slot.is_none() {
                    let addr = self.cfg.address.clone().unwrap_or_default();
                    let stream = timeout(limit, tokio::net::TcpStream::connect(addr))
                        .await
                        .map_err(|_| err(format!("timeout after {limit:?}")))?
                        .map_err(|e| err(e.to_string()))?;
                    let _ = stream.set_nodelay(true);
                    *slot = Some(tokio_modbus::client::tcp::attach_slave(stream, Slave(unit)));
                }
                let ctx = slot.as_mut().ok_or_else(|| err("lost".into()))?;
                let result = read_all(ctx, blocks, limit).await;
                if result.is_err() {
                    *slot = None;
                }
                result
            }
            Link::Rtu(line) => {
                let mut turn = line.lock().await;
                let result = read_on_line(&mut turn, unit, blocks, limit, target).await;
                if result.is_err() {
                    turn.fail(limit);
                }
                result
            }
            Link::Unusable(why) => Err(err((*why).into())),
        }
    }
}

/// Reads `blocks` in order over `ctx`.
async fn read_all(
    ctx: &mut Context,
    blocks: &[ReadBlock],
    limit: Duration,
) -> Result<Registers, SourceError> {
    let mut regs = Registers::default();
    for b in blocks {
        regs.push(b.clone(), read_block(ctx, b, limit).await?);
    }
    Ok(regs)
}

/// Reads `blocks` in order on this turn of a shared serial line, silent for the line's gap
/// between two requests.
async fn read_on_line(
    turn: &mut Turn<'_>,
    unit: u8,
    blocks: &[ReadBlock],
    limit: Duration,
    target: &str,
) -> Result<Registers, SourceError> {
    let mut regs = Registers::default();
    for (i, b) in blocks.iter().enumerate() {
        if i > 0 {
            let gap = turn.gap();
            tokio::time::sleep(gap).await;
        }
        let connect =
            |e: tokio_serial::Error| SourceError::Connect { target: target.to_string(), msg: e.to_string() };
        let ctx = turn.context(unit).map_err(connect)?;
        regs.push(b.clone(), read_block(ctx, b, limit).await?);
    }
    Ok(regs)
}

/// Reads one block over `ctx` within `limit`.
async fn read_block(ctx: &mut Context, b: &ReadBlock, limit: Duration) -> Result<Vec<u16>, SourceError> {
    let call = async {
        match b.register {
            RegisterKind::Holding => ctx.read_holding_registers(b.start, b.count).await,
            RegisterKind::Input => ctx.read_input_registers(b.start, b.count).await,
        }
    };
    let (kind, start, count) = (b.register, b.start, b.count);
    let words = timeout(limit, call)
        .await
        .map_err(|_| SourceError::Timeout(limit))?
        .map_err(|e| SourceError::Read { kind, start, count, msg: e.to_string() })?
        .map_err(|e| SourceError::Exception { kind, start, count, code: format!("{e:?}") })?;
    if words.len() != usize::from(count) {
        let msg = format!("short answer: {} of {count} registers", words.len());
        return Err(SourceError::Read { kind, start, count, msg });
    }
    Ok(words)
}
