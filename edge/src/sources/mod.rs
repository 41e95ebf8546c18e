//! Device sources: how registers are fetched from a device ([`modbus`]) and the register
//! image a poll returns, from which tags are decoded.

pub mod modbus;

use moldops_shared::profile::{ReadBlock, RegisterKind, Tag};

/// The registers returned by one poll: each planned block with its words.
#[derive(Debug, Default, Clone)]
pub struct Registers {
    blocks: Vec<(ReadBlock, Vec<u16>)>,
}

impl Registers {
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
