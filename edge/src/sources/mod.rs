//! Device sources: how a device is read — registers over Modbus ([`modbus`], decoded through
//! the register image [`Registers`]; RTU devices on one RS-485 line share it through
//! [`serial_line`]) or nodes over OPC UA ([`opcua`]) — and [`Source`], which gives the poller
//! the same [`Snapshot`] from either, so shot assembly is protocol-blind.

pub mod modbus;
pub mod opcua;
pub mod serial_line;

use crate::config::{Device, Protocol};
use crate::shot::Snapshot;
use moldops_shared::profile::{Profile, ReadBlock, RegisterKind, Tag, plan_reads};

/// The source of one device.
pub enum Source {
    /// A Modbus TCP/RTU device and the register blocks each poll reads.
    Modbus {
        /// The connection to the device.
        client: Box<modbus::ModbusSource>,
        /// Register blocks every poll reads, planned from the profile's tags.
        blocks: Vec<ReadBlock>,
    },
    /// An OPC UA device.
    OpcUa(Box<opcua::OpcUaSource>),
}

impl Source {
    /// The source for `device`'s protocol; nothing connects before the first snapshot. Modbus
    /// reads are planned from the profile's tags, reading through gaps of up to 8 registers; an
    /// RTU device takes its serial line from `lines`, shared with the devices on the same path.
    pub fn new(device: &Device, lines: &mut serial_line::Lines) -> Source {
        match device.cfg.protocol {
            Protocol::Opcua => Source::OpcUa(Box::new(opcua::OpcUaSource::new(device.cfg.clone()))),
            Protocol::ModbusTcp | Protocol::ModbusRtu => Source::Modbus {
                client: Box::new(modbus::ModbusSource::new(device.cfg.clone(), lines)),
                blocks: plan_reads(&device.profile.tags, 8),
            },
        }
    }

    /// Human-readable target (address, serial path or endpoint).
    pub fn target(&self) -> String {
        match self {
            Source::Modbus { client, .. } => client.target().to_string(),
            Source::OpcUa(s) => s.target(),
        }
    }

    /// True when [`Source::snapshot`] itself waits for the next change (OPC UA subscription).
    pub fn paces_itself(&self) -> bool {
        matches!(self, Source::OpcUa(s) if s.paces_itself())
    }

    /// Duration of the last request when it differs from the whole snapshot call (an OPC UA
    /// subscription waits for a change first); `None`: the call's duration is the latency.
    pub fn read_latency(&self) -> Option<std::time::Duration> {
        match self {
            Source::OpcUa(s) if s.paces_itself() => s.read_latency(),
            _ => None,
        }
    }

    /// Reads the device's live values as a snapshot of `profile`.
    pub async fn snapshot(&mut self, profile: &Profile) -> anyhow::Result<Snapshot> {
        match self {
            Source::Modbus { client, blocks } => {
                let regs = client.read(blocks).await?;
                Ok(Snapshot::decode(profile, &regs, 0))
            }
            Source::OpcUa(s) => s.snapshot().await,
        }
    }

    /// The Modbus client, for reads beyond the live image (history ring).
    pub fn modbus(&mut self) -> Option<&mut modbus::ModbusSource> {
        match self {
            Source::Modbus { client, .. } => Some(client),
            Source::OpcUa(_) => None,
        }
    }
}

/// The registers returned by one poll: each planned block with its words.
#[derive(Debug, Default, Clone)]
pub struct Registers {
    blocks: Vec<(ReadBlock, Vec<u16>)>,
}

impl Registers {
    /// Adds one block as read, with its words.
    pub fn push(&mut self, block: ReadBlock, words: Vec<u16>) {
        self.blocks.push((block, words));
    }

    /// The words of `tag`, with its address moved by `shift` registers (for history slots).
    pub fn words(&self, tag: &Tag, shift: i32) -> Option<&[u16]> {
        let start = i32::from(tag.address) + shift;
        let start = u16::try_from(start).ok()?;
        let n = tag.registers();
        self.slice(tag.register, start, n)
    }

    fn slice(&self, register: RegisterKind, start: u16, n: u16) -> Option<&[u16]> {
        self.blocks.iter().find_map(|(b, words)| {
            let end = u32::from(start) + u32::from(n);
            let inside =
                b.register == register && start >= b.start && end <= u32::from(b.start) + u32::from(b.count);
            if !inside {
                return None;
            }
            let off = usize::from(start - b.start);
            words.get(off..off + usize::from(n))
        })
    }
}
