//! Machine profiles: the tag map that turns registers into named values, and which tags play
//! the roles of shot counter, mold code, state and timestamp. A profile is data (TOML), so a
//! new machine brand is a file, not code. Decoding of 16/32/64-bit values and ASCII strings in
//! any word and byte order lives here too, so edge and cloud import decode the same way.

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// Modbus register table a tag lives in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RegisterKind {
    /// Holding registers (Modbus function code 3); the default.
    Holding,
    /// Input registers (Modbus function code 4).
    Input,
}

/// Data type of a tag.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DataType {
    /// Unsigned 16-bit integer, one register.
    U16,
    /// Signed 16-bit integer (two's complement), one register.
    I16,
    /// Unsigned 32-bit integer, two registers.
    U32,
    /// Signed 32-bit integer (two's complement), two registers.
    I32,
    /// Unsigned 64-bit integer, four registers.
    U64,
    /// IEEE 754 single-precision float, two registers.
    F32,
    /// IEEE 754 double-precision float, four registers.
    F64,
    /// ASCII text, two characters per register; `len` registers.
    String,
}

/// Order of the 16-bit words of a 32/64-bit value, or of the two bytes in a register.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Order {
    /// Most significant first (Modbus default; "ABCD").
    #[default]
    Big,
    /// Least significant first (word order "CDAB", byte order "BADC").
    Little,
}

/// One named value in a device's register map.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tag {
    /// Name of the value in records, and what the profile's roles refer to.
    pub name: String,
    /// Register table the tag is read from; holding unless given.
    #[serde(default = "default_register")]
    pub register: RegisterKind,
    /// Address of the tag's first register (0-based, as sent in the Modbus request).
    pub address: u16,
    /// How the registers decode (`type` in the profile file).
    #[serde(rename = "type")]
    pub dtype: DataType,
    /// Registers of a string tag (ignored for numbers).
    #[serde(default)]
    pub len: Option<u16>,
    /// Word order of 32/64-bit values; `None` takes the device's default.
    #[serde(default)]
    pub word_order: Option<Order>,
    /// Byte order inside each register; `None` takes the device's default.
    #[serde(default)]
    pub byte_order: Option<Order>,
    /// Factor applied to the raw number: value = raw × `scale` + `offset`; 1 unless given.
    #[serde(default = "one")]
    pub scale: f64,
    /// Added to the scaled raw number; 0 unless given.
    #[serde(default)]
    pub offset: f64,
    /// Engineering unit of the value (e.g. `mm`); informational only.
    #[serde(default)]
    pub unit: Option<String>,
    /// Plausible engineering range `[min, max]`; values outside are flagged.
    #[serde(default)]
    pub range: Option<[f64; 2]>,
}

fn default_register() -> RegisterKind {
    RegisterKind::Holding
}
fn one() -> f64 {
    1.0
}

/// A ring of past shot summaries kept by the controller, so that shots made while the edge
/// was away can be read back. Slot `shot_number % depth` starts at `base + slot * stride` and
/// holds a copy of the live registers starting at `copy_of`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct History {
    /// Address of the first register of slot 0.
    pub base: u16,
    /// Number of slots: how many past shots the ring holds.
    pub depth: u16,
    /// Registers per slot, which is also how many live registers a slot copies.
    pub stride: u16,
    /// Address of the first live register a slot copies: a tag at address `a` sits
    /// `a - copy_of` registers into its slot.
    pub copy_of: u16,
}

/// A device profile: tag map plus the roles some tags play.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    /// Name of the profile (e.g. `moldops-sim-machine`), used in messages about it.
    pub name: String,
    /// Default word order of 32/64-bit tags.
    #[serde(default)]
    pub word_order: Order,
    /// Default byte order inside registers.
    #[serde(default)]
    pub byte_order: Order,
    /// Tag whose change marks a new shot (machines only).
    #[serde(default)]
    pub shot_counter: Option<String>,
    /// Tag holding the mold / product code.
    #[serde(default)]
    pub mold_code: Option<String>,
    /// Tag holding the material or recipe code, where the machine exposes one: a shot's mould
    /// key becomes `{mould}+{material}` ([`crate::mould`]), so each material of a mould gets
    /// its own model (the mould's model scores a material that has none yet).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub material_code: Option<String>,
    /// Tag holding the machine state.
    #[serde(default)]
    pub state: Option<String>,
    /// Tag holding the record's timestamp in ms since the Unix epoch (UTC); without it the
    /// reader's clock is used.
    #[serde(default)]
    pub timestamp: Option<String>,
    /// Tags that form the shot's values; empty means every numeric tag not playing a role.
    #[serde(default)]
    pub shot_values: Vec<String>,
    /// The controller's ring of past shots, when it keeps one: shots the edge missed are read
    /// back from it.
    #[serde(default)]
    pub history: Option<History>,
    /// Every tag of the device.
    pub tags: Vec<Tag>,
}

/// A decoded value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// A number in engineering units (scale and offset applied); NaN when the tag was given
    /// the wrong number of registers.
    Number(f64),
    /// The text of a string tag, padding trimmed.
    Text(String),
}

/// A problem [`Profile::validate`] found.
#[derive(Debug, Error, PartialEq)]
pub enum ProfileError {
    /// One tag is wrong: a bad or duplicate name, a string without `len`, an address past
    /// 65535, a bad scale or offset, or an empty range.
    #[error("tag {tag}: {msg}")]
    Tag {
        /// Name of the tag.
        tag: String,
        /// What is wrong with it.
        msg: String,
    },
    /// The profile as a whole is wrong: a tag without a name, a role or `shot_values` naming
    /// an unknown tag, a shot counter that is not unsigned, or a bad history ring.
    #[error("{0}")]
    Profile(String),
}

impl Tag {
    /// Number of 16-bit registers the tag occupies.
    pub fn registers(&self) -> u16 {
        match self.dtype {
            DataType::U16 | DataType::I16 => 1,
            DataType::U32 | DataType::I32 | DataType::F32 => 2,
            DataType::U64 | DataType::F64 => 4,
            DataType::String => self.len.unwrap_or(1),
        }
    }

    /// Last register address (inclusive), or `None` when the tag runs past 65535 or has no
    /// registers (a string tag with `len = 0`, which `validate` refuses).
    pub fn end(&self) -> Option<u16> {
        self.address.checked_add(self.registers().checked_sub(1)?)
    }

    /// True when the value is outside the configured engineering range.
    pub fn out_of_range(&self, v: f64) -> bool {
        self.range.is_some_and(|[lo, hi]| v < lo || v > hi)
    }
}

impl Profile {
    /// The tag called `name`, if the profile has one.
    pub fn tag(&self, name: &str) -> Option<&Tag> {
        self.tags.iter().find(|t| t.name == name)
    }

    /// Effective word and byte order of a tag.
    pub fn orders(&self, tag: &Tag) -> (Order, Order) {
        (tag.word_order.unwrap_or(self.word_order), tag.byte_order.unwrap_or(self.byte_order))
    }

    /// Names of the tags that form a shot's (or a sample's) values.
    pub fn value_tags(&self) -> Vec<&Tag> {
        if !self.shot_values.is_empty() {
            return self.shot_values.iter().filter_map(|n| self.tag(n)).collect();
        }
        let roles = [&self.shot_counter, &self.mold_code, &self.material_code, &self.state, &self.timestamp];
        self.tags
            .iter()
            .filter(|t| t.dtype != DataType::String)
            .filter(|t| !roles.iter().any(|r| r.as_deref() == Some(t.name.as_str())))
            .collect()
    }

    /// Every problem with the profile, listed at once.
    pub fn validate(&self) -> Vec<ProfileError> {
        let mut errs = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for t in &self.tags {
            let err = |msg: String| ProfileError::Tag { tag: t.name.clone(), msg };
            if t.name.trim().is_empty() {
                errs.push(ProfileError::Profile("a tag has an empty name".into()));
            } else if let Err(e) = crate::limits::check_name("tag name", &t.name) {
                errs.push(err(e.to_string()));
            }
            if !seen.insert(t.name.as_str()) {
                errs.push(err("defined twice".into()));
            }
            if t.dtype == DataType::String && t.len.unwrap_or(0) == 0 {
                errs.push(err("string tags need len = number of registers".into()));
            }
            if t.registers() > 0 && t.end().is_none() {
                errs.push(err(format!("address {} runs past register 65535", t.address)));
            }
            if t.scale == 0.0 || !t.scale.is_finite() || !t.offset.is_finite() {
                errs.push(err("scale must be finite and non-zero, offset finite".into()));
            }
            // A NaN bound would silently disable the check.
            if let Some([lo, hi]) = t.range
                && (lo.is_nan() || hi.is_nan() || lo > hi)
            {
                errs.push(err(format!("range [{lo}, {hi}] is empty or not a number")));
            }
            if t.dtype == DataType::String && t.len.is_some_and(|n| n > MAX_READ) {
                errs.push(err(format!("string tags take at most {MAX_READ} registers (one Modbus read)")));
            }
        }
        let roles = [
            ("shot_counter", &self.shot_counter),
            ("mold_code", &self.mold_code),
            ("material_code", &self.material_code),
            ("state", &self.state),
            ("timestamp", &self.timestamp),
        ];
        for (role, name) in roles {
            if let Some(n) = name
                && self.tag(n).is_none()
            {
                errs.push(ProfileError::Profile(format!("{role} names unknown tag {n:?}")));
            }
        }
        if let Some(n) = &self.shot_counter
            && let Some(t) = self.tag(n)
            && !matches!(t.dtype, DataType::U16 | DataType::U32 | DataType::U64)
        {
            errs.push(ProfileError::Profile(format!("shot_counter {n:?} must be u16, u32 or u64")));
        }
        for n in &self.shot_values {
            if self.tag(n).is_none() {
                errs.push(ProfileError::Profile(format!("shot_values names unknown tag {n:?}")));
            }
        }
        if let Some(h) = &self.history {
            if self.shot_counter.is_none() {
                errs.push(ProfileError::Profile("history needs a shot_counter".into()));
            }
            if h.depth == 0 || h.stride == 0 {
                errs.push(ProfileError::Profile("history depth and stride must be > 0".into()));
            }
            let last = u32::from(h.base) + u32::from(h.depth) * u32::from(h.stride);
            if last > 65536 {
                errs.push(ProfileError::Profile("history ring runs past register 65535".into()));
            }
        }
        errs
    }

    /// Bit width of the shot counter (16, 32 or 64), used for wrap-around arithmetic.
    pub fn counter_bits(&self) -> u32 {
        let t = self.shot_counter.as_deref().and_then(|n| self.tag(n));
        match t.map(|t| t.dtype) {
            Some(DataType::U16) => 16,
            Some(DataType::U64) => 64,
            _ => 32,
        }
    }
}

/// Wrap-aware distance from `prev` to `now` for a counter of `bits` width.
pub fn counter_delta(prev: u64, now: u64, bits: u32) -> u64 {
    if bits >= 64 { now.wrapping_sub(prev) } else { now.wrapping_sub(prev) & ((1u64 << bits) - 1) }
}

/// Reorders the raw registers of one value into big-endian word order with big-endian bytes.
fn normalise(regs: &[u16], word: Order, byte: Order) -> Vec<u16> {
    let mut words: Vec<u16> = regs.to_vec();
    if byte == Order::Little {
        for w in &mut words {
            *w = w.swap_bytes();
        }
    }
    if word == Order::Little {
        words.reverse();
    }
    words
}

fn join(words: &[u16]) -> u64 {
    words.iter().fold(0u64, |acc, w| (acc << 16) | u64::from(*w))
}

/// Decodes the raw registers of one tag (exactly `tag.registers()` of them) into its value,
/// applying scale and offset to numbers. Strings are trimmed of padding (spaces, NULs).
pub fn decode(tag: &Tag, regs: &[u16], word: Order, byte: Order) -> Value {
    if tag.dtype != DataType::String && regs.len() != usize::from(tag.registers()) {
        // Not the tag's register count: no value can be trusted (refused downstream as NaN).
        return Value::Number(f64::NAN);
    }
    if tag.dtype == DataType::String {
        let mut bytes = Vec::with_capacity(regs.len() * 2);
        for r in regs {
            let r = if byte == Order::Little { r.swap_bytes() } else { *r };
            bytes.extend_from_slice(&r.to_be_bytes());
        }
        let text: String =
            bytes.iter().map(|&b| if b.is_ascii_graphic() || b == b' ' { b as char } else { ' ' }).collect();
        return Value::Text(text.trim().to_string());
    }
    let raw = raw_number(tag.dtype, &normalise(regs, word, byte));
    Value::Number(raw * tag.scale + tag.offset)
}

fn raw_number(dtype: DataType, w: &[u16]) -> f64 {
    let bits = join(w);
    match dtype {
        DataType::U16 => f64::from(w[0]),
        DataType::I16 => f64::from(w[0] as i16),
        DataType::U32 => bits as u32 as f64,
        DataType::I32 => f64::from(bits as u32 as i32),
        DataType::U64 => bits as f64,
        DataType::F32 => f64::from(f32::from_bits(bits as u32)),
        DataType::F64 => f64::from_bits(bits),
        DataType::String => f64::NAN,
    }
}

/// Decodes an unsigned integer tag without scaling (counters, timestamps).
pub fn decode_u64(tag: &Tag, regs: &[u16], word: Order, byte: Order) -> u64 {
    join(&normalise(regs, word, byte)) & mask(tag.registers())
}

fn mask(registers: u16) -> u64 {
    if registers >= 4 { u64::MAX } else { (1u64 << (16 * u32::from(registers))) - 1 }
}

/// Encodes a number into registers (the inverse of [`decode`]), for simulators and tests.
pub fn encode(tag: &Tag, value: f64, word: Order, byte: Order) -> Vec<u16> {
    let raw = (value - tag.offset) / tag.scale;
    let (bits, n): (u64, usize) = match tag.dtype {
        DataType::U16 => (raw.round() as u16 as u64, 1),
        DataType::I16 => (raw.round() as i16 as u16 as u64, 1),
        DataType::U32 => (raw.round() as u32 as u64, 2),
        DataType::I32 => (raw.round() as i32 as u32 as u64, 2),
        DataType::U64 => (raw.round() as u64, 4),
        DataType::F32 => ((raw as f32).to_bits() as u64, 2),
        DataType::F64 => (raw.to_bits(), 4),
        DataType::String => return Vec::new(),
    };
    let words: Vec<u16> = (0..n).rev().map(|i| (bits >> (16 * i)) as u16).collect();
    normalise(&words, word, byte)
}

/// Encodes ASCII text into `len` registers, space padded.
pub fn encode_text(text: &str, len: u16, byte: Order) -> Vec<u16> {
    let mut bytes: Vec<u8> = text.bytes().take(usize::from(len) * 2).collect();
    bytes.resize(usize::from(len) * 2, b' ');
    bytes
        .chunks(2)
        .map(|c| {
            let w = u16::from_be_bytes([c[0], c[1]]);
            if byte == Order::Little { w.swap_bytes() } else { w }
        })
        .collect()
}

/// The word/byte orders under which `regs` decode into the tag's engineering range, for a
/// hint when the configured order gives an implausible value.
pub fn plausible_orders(tag: &Tag, regs: &[u16]) -> Vec<(Order, Order, f64)> {
    let mut out = Vec::new();
    for word in [Order::Big, Order::Little] {
        for byte in [Order::Big, Order::Little] {
            if let Value::Number(v) = decode(tag, regs, word, byte)
                && v.is_finite()
                && !tag.out_of_range(v)
            {
                out.push((word, byte, v));
            }
        }
    }
    out
}

/// A contiguous read of one register table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadBlock {
    /// Register table to read.
    pub register: RegisterKind,
    /// Address of the first register.
    pub start: u16,
    /// Number of registers: at most [`MAX_READ`] unless a single tag spans more.
    pub count: u16,
}

/// Maximum registers in one Modbus read request.
pub const MAX_READ: u16 = 125;

/// Plans the fewest reads (each at most [`MAX_READ`] registers) covering `tags`, merging
/// tags whose gap is at most `max_gap` registers.
pub fn plan_reads<'a>(tags: impl IntoIterator<Item = &'a Tag>, max_gap: u16) -> Vec<ReadBlock> {
    let mut spans: Vec<(RegisterKind, u16, u16)> =
        tags.into_iter().filter_map(|t| Some((t.register, t.address, t.end()?))).collect();
    spans.sort();
    let mut out: Vec<ReadBlock> = Vec::new();
    for (reg, start, end) in spans {
        if let Some(b) = out.last_mut()
            && b.register == reg
        {
            let b_end = u32::from(b.start) + u32::from(b.count) - 1;
            let new_end = u32::from(end).max(b_end);
            let fits = u32::from(start) <= b_end + 1 + u32::from(max_gap)
                && new_end - u32::from(b.start) < u32::from(MAX_READ);
            if fits {
                b.count = (new_end - u32::from(b.start) + 1) as u16;
                continue;
            }
        }
        out.push(ReadBlock { register: reg, start, count: end - start + 1 });
    }
    out
}

#[cfg(test)]
pub(crate) mod tests;
