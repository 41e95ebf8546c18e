//! Register images of simulated devices. Every value is encoded through the device's profile
//! tags (`moldops_shared::profile::encode`/`encode_text`) in the device's effective word
//! order, under one lock per device, so a reader sees a shot's live block and history slot
//! change together. The controller clock (`clock_ms`) is refreshed from simulated time on
//! every read that covers it.

use super::clock::SimClock;
use super::process::{Peripherals, Step};
use anyhow::{Context, anyhow};
use moldops_shared::profile::{self, MAX_READ, Order, Profile, Tag};
use std::sync::{Arc, Mutex, MutexGuard};
use tokio_modbus::ExceptionCode;

/// Name of the controller clock tag in every simulator profile.
pub const CLOCK_TAG: &str = "clock_ms";

/// The holding registers of one device.
#[derive(Debug)]
pub struct DeviceImage {
    /// The profile with the device's effective word order as its default.
    profile: Profile,
    clock: SimClock,
    clock_tag: Option<Tag>,
    regs: Mutex<Vec<u16>>,
}

/// Writes values into a locked image; see [`DeviceImage::update`].
pub struct Writer<'a> {
    profile: &'a Profile,
    regs: &'a mut [u16],
}

impl DeviceImage {
    /// An all-zero image sized to `profile`'s tags and history ring, served in `word_order`, whose
    /// `clock_ms` tag (if any) reads `clock`.
    pub fn new(mut profile: Profile, word_order: Order, clock: SimClock) -> Self {
        profile.word_order = word_order;
        let len = super::profiles::image_len(&profile);
        let clock_tag = profile.tag(CLOCK_TAG).cloned();
        DeviceImage { profile, clock, clock_tag, regs: Mutex::new(vec![0; len]) }
    }

    /// The profile as served (its word order is the device's).
    pub fn profile(&self) -> &Profile {
        &self.profile
    }

    fn lock(&self) -> MutexGuard<'_, Vec<u16>> {
        // A panic while holding the lock cannot leave a half-written value behind that is
        // worse than refusing to serve, so a poisoned lock is used as is.
        self.regs.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Reads `count` registers from `addr`, as a Modbus read request would.
    pub fn read(&self, addr: u16, count: u16) -> Result<Vec<u16>, ExceptionCode> {
        if count == 0 || count > MAX_READ {
            return Err(ExceptionCode::IllegalDataValue);
        }
        let (start, end) = (usize::from(addr), usize::from(addr) + usize::from(count));
        let mut regs = self.lock();
        if end > regs.len() {
            return Err(ExceptionCode::IllegalDataAddress);
        }
        if let Some(t) = &self.clock_tag {
            let (a, n) = (usize::from(t.address), usize::from(t.registers()));
            if start < a + n && a < end {
                let (w, b) = self.profile.orders(t);
                let words = profile::encode(t, self.clock.now_ms() as f64, w, b);
                regs[a..a + n].copy_from_slice(&words);
            }
        }
        Ok(regs[start..end].to_vec())
    }

    /// Runs `f` with the image locked: everything it writes becomes visible at once.
    pub fn update<R>(&self, f: impl FnOnce(&mut Writer<'_>) -> R) -> R {
        let mut regs = self.lock();
        f(&mut Writer { profile: &self.profile, regs: &mut regs })
    }
}

impl Writer<'_> {
    fn tag(&self, name: &str) -> anyhow::Result<&Tag> {
        self.profile.tag(name).ok_or_else(|| anyhow!("profile {} has no tag {name}", self.profile.name))
    }

    fn put(&mut self, tag: &Tag, words: &[u16]) -> anyhow::Result<()> {
        let a = usize::from(tag.address);
        let slot = self.regs.get_mut(a..a + words.len()).context("tag outside the image")?;
        slot.copy_from_slice(words);
        Ok(())
    }

    /// Encodes a number into a tag.
    pub fn number(&mut self, name: &str, value: f64) -> anyhow::Result<()> {
        let tag = self.tag(name)?.clone();
        let (w, b) = self.profile.orders(&tag);
        self.put(&tag, &profile::encode(&tag, value, w, b))
    }

    /// Encodes ASCII text into a string tag.
    pub fn text(&mut self, name: &str, value: &str) -> anyhow::Result<()> {
        let tag = self.tag(name)?.clone();
        let (_, b) = self.profile.orders(&tag);
        self.put(&tag, &profile::encode_text(value, tag.registers(), b))
    }

    /// Copies the live block into the history slot of `shot_number`.
    pub fn snapshot_history(&mut self, shot_number: u64) -> anyhow::Result<()> {
        let h = self.profile.history.clone().context("profile has no history ring")?;
        let slot = (shot_number % u64::from(h.depth)) as usize;
        let dst = usize::from(h.base) + slot * usize::from(h.stride);
        let src = usize::from(h.copy_of);
        let n = usize::from(h.stride);
        anyhow::ensure!(
            dst + n <= self.regs.len() && src + n <= self.regs.len(),
            "history outside the image"
        );
        self.regs.copy_within(src..src + n, dst);
        Ok(())
    }
}

/// Writes a machine step: state and mold always; for a shot, counter, clocks and values too,
/// then the history slot, all under one lock.
pub fn write_machine(img: &DeviceImage, step: &Step) -> anyhow::Result<()> {
    img.update(|w| {
        w.number("machine_state", f64::from(step.state as u16))?;
        w.text("mold_code", step.mold)?;
        let Some(s) = &step.shot else { return Ok(()) };
        w.number("shot_counter", f64::from(s.number))?;
        w.number(CLOCK_TAG, s.ts_ms as f64)?;
        w.number("shot_time_ms", s.ts_ms as f64)?;
        for (name, v) in s.values.named() {
            w.number(name, v)?;
        }
        w.snapshot_history(u64::from(s.number))
    })
}

/// The peripheral images of one machine (absent with `--no-peripherals`).
#[derive(Debug, Clone)]
pub struct PeripheralImages {
    /// Mold temperature controller.
    pub tcu: Arc<DeviceImage>,
    /// Material dryer.
    pub dryer: Arc<DeviceImage>,
    /// Part-weight scale.
    pub scale: Arc<DeviceImage>,
}

/// Writes the peripherals' readings at simulated time `ts_ms`.
pub fn write_peripherals(imgs: &PeripheralImages, ts_ms: i64, p: &Peripherals) -> anyhow::Result<()> {
    let ts = ts_ms as f64;
    imgs.tcu.update(|w| {
        w.number(CLOCK_TAG, ts)?;
        w.number("supply_temperature", p.supply_temperature)?;
        w.number("return_temperature", p.return_temperature)?;
        w.number("flow", p.flow)
    })?;
    imgs.dryer.update(|w| {
        w.number(CLOCK_TAG, ts)?;
        w.number("dew_point", p.dew_point)?;
        w.number("hopper_temperature", p.hopper_temperature)
    })?;
    imgs.scale.update(|w| {
        w.number(CLOCK_TAG, ts)?;
        w.number("part_weight", p.part_weight)?;
        w.number("weigh_counter", f64::from(p.weigh_counter))
    })
}

#[cfg(test)]
mod tests;
