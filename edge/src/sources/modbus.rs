//! Modbus TCP and RTU client for one device: connects on demand, wraps every request in a
//! timeout (tokio-modbus has none of its own) and drops the connection on any error so the
//! next poll reconnects. Back-off between attempts is the caller's ([`crate::schedule`]).

use super::Registers;
use crate::config::{DeviceConfig, Protocol, SerialConfig};
use moldops_shared::profile::{ReadBlock, RegisterKind};
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
    ctx: Option<Context>,
    timeout: Duration,
}

impl ModbusSource {
    /// A source for `cfg`; it connects on the first read and waits `timeout_ms` per request.
    pub fn new(cfg: DeviceConfig) -> Self {
        let timeout = Duration::from_millis(cfg.timeout_ms);
        ModbusSource { cfg, ctx: None, timeout }
    }

    /// Human-readable target (address or serial path).
    pub fn target(&self) -> String {
        match (&self.cfg.address, &self.cfg.serial) {
            (Some(a), _) => a.clone(),
            (None, Some(s)) => s.path.clone(),
            (None, None) => "?".into(),
        }
    }

    /// True while a connection is open (dropped after any error).
    pub fn is_connected(&self) -> bool {
        self.ctx.is_some()
    }

    async fn connect(&mut self) -> Result<&mut Context, SourceError> {
        if self.ctx.is_none() {
            let slave = Slave(self.cfg.unit_id);
            let target = self.target();
            let err = |msg: String| SourceError::Connect { target: target.clone(), msg };
            let ctx = match self.cfg.protocol {
                Protocol::ModbusTcp => {
                    let addr = self.cfg.address.clone().unwrap_or_default();
                    let stream = timeout(self.timeout, tokio::net::TcpStream::connect(addr))
                        .await
                        .map_err(|_| err(format!("timeout after {:?}", self.timeout)))?
                        .map_err(|e| err(e.to_string()))?;
                    let _ = stream.set_nodelay(true);
                    tokio_modbus::client::tcp::attach_slave(stream, slave)
                }
                Protocol::Opcua => return Err(err("not a Modbus device".into())),
                Protocol::ModbusRtu => {
                    let serial = self.cfg.serial.as_ref().ok_or_else(|| err("no serial settings".into()))?;
                    let port = open_serial(serial).map_err(|e| err(e.to_string()))?;
                    tokio_modbus::client::rtu::attach_slave(port, slave)
                }
            };
            self.ctx = Some(ctx);
        }
        let target = self.target();
        self.ctx.as_mut().ok_or(SourceError::Connect { target, msg: "lost".into() })
    }

    /// Reads every block; on any failure the connection is dropped and the error returned.
    pub async fn read(&mut self, blocks: &[ReadBlock]) -> Result<Registers, SourceError> {
        let result = self.read_inner(blocks).await;
        if result.is_err() {
            self.ctx = None;
        }
        result
    }

    async fn read_inner(&mut self, blocks: &[ReadBlock]) -> Result<Registers, SourceError> {
        let limit = self.timeout;
        let ctx = self.connect().await?;
        let mut regs = Registers::default();
        for b in blocks {
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
            regs.push(b.clone(), words);
        }
        Ok(regs)
    }
}

fn open_serial(s: &SerialConfig) -> Result<tokio_serial::SerialStream, tokio_serial::Error> {
    use tokio_serial::{DataBits, Parity, SerialPortBuilderExt, StopBits};
    let parity = match s.parity.as_str() {
        "even" => Parity::Even,
        "odd" => Parity::Odd,
        _ => Parity::None,
    };
    let data_bits = match s.data_bits {
        5 => DataBits::Five,
        6 => DataBits::Six,
        7 => DataBits::Seven,
        _ => DataBits::Eight,
    };
    let stop_bits = if s.stop_bits == 2 { StopBits::Two } else { StopBits::One };
    tokio_serial::new(&s.path, s.baud)
        .parity(parity)
        .data_bits(data_bits)
        .stop_bits(stop_bits)
        .open_native_async()
}
