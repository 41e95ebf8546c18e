//! Per-device polling tasks. Each device runs in its own task with its own interval,
//! timeout and exponential back-off, so one slow or dead device never delays another — except
//! on a shared RS-485 line, where devices take turns and wait out a failing one's timeout
//! ([`crate::sources::serial_line`]), bounded by its back-off.
//! Whatever the protocol ([`Source`]: Modbus or OPC UA), a poll yields a [`Snapshot`];
//! machines become shot records when their counter advances, peripherals a sample per poll.
//! Records go to the buffer writer and are durable before the task moves on.

use crate::buffer::{NewRecord, Writer};
use crate::config::{Device, DeviceRole, Protocol};
use crate::health::{DeviceLabel, Health};
use crate::shot::{self, ShotPlan, Snapshot};
use crate::sources::Source;
use anyhow::Result;
use moldops_common::backoff::Backoff;
use moldops_shared::profile::{ReadBlock, RegisterKind};
use moldops_shared::{Record, RecordKind};
use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// Back-off after a failed read: from 200 ms, doubling to 10 s, jittered.
fn read_backoff() -> Backoff {
    Backoff::new(Duration::from_millis(200), Duration::from_secs(10))
}

/// One device's polling loop and the state it carries between polls.
pub(crate) struct DevicePoller {
    device: Device,
    source: Source,
    writer: Writer,
    health: Arc<Health>,
    label: DeviceLabel,
    last_shot: Option<u64>,
    warned: HashSet<String>,
}

impl DevicePoller {
    pub(crate) fn new(
        device: Device,
        lines: &mut crate::sources::serial_line::Lines,
        writer: Writer,
        health: Arc<Health>,
        last_shot: Option<u64>,
    ) -> Self {
        let source = Source::new(&device, lines);
        let label = DeviceLabel { device: device.cfg.id.clone() };
        health.device(&device.cfg.id, |s| {
            s.role = format!("{:?}", device.cfg.role).to_lowercase();
            s.machine_id = device.cfg.machine_id().to_string();
            s.target = source.target();
            s.last_shot = last_shot;
        });
        DevicePoller { device, source, writer, health, label, last_shot, warned: HashSet::new() }
    }

    /// Polls until `shutdown` turns true.
    pub(crate) async fn run(mut self, mut shutdown: watch::Receiver<bool>) {
        let every = Duration::from_millis(self.device.cfg.poll_interval_ms);
        let mut backoff = read_backoff();
        let mut failing = false;
        loop {
            let started = Instant::now();
            // Only the read races shutdown (an OPC UA subscription may wait for a change);
            // once read, records are made durable before the task looks again.
            let read = tokio::select! {
                r = self.source.snapshot(&self.device.profile) => r,
                changed = shutdown.changed() => {
                    if changed.is_err() || *shutdown.borrow() {
                        return;
                    }
                    continue;
                }
            };
            let polled = match read {
                Ok(snap) => self.record_snapshot(snap, started).await,
                Err(e) => Err(e),
            };
            let wait = match polled {
                Ok(()) => {
                    if failing {
                        tracing::info!(device = %self.device.cfg.id, "device answers again");
                    }
                    failing = false;
                    backoff.reset();
                    if self.source.paces_itself() {
                        Duration::ZERO
                    } else {
                        every.saturating_sub(started.elapsed())
                    }
                }
                // The buffer, not the device, failed (disk full): it reports itself in
                // /status; the shots are read again from the controller on the next poll.
                Err(e) if e.downcast_ref::<crate::buffer::AppendFailed>().is_some() => {
                    self.health.metrics.device_up.get_or_create(&self.label).set(1);
                    backoff.next_delay().max(every.saturating_sub(started.elapsed()))
                }
                Err(e) => {
                    self.on_error(&e, failing);
                    failing = true;
                    let wait = backoff.next_delay();
                    wait.max(every.saturating_sub(started.elapsed()))
                }
            };
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = shutdown.changed() => {}
            }
            if *shutdown.borrow() {
                return;
            }
        }
    }

    fn on_error(&self, e: &anyhow::Error, already_failing: bool) {
        let id = &self.device.cfg.id;
        if already_failing {
            tracing::debug!(device = %id, error = %format!("{e:#}"), "poll failed again");
        } else {
            tracing::warn!(device = %id, target = %self.source.target(), error = %format!("{e:#}"), "poll failed; retrying with back-off");
        }
        self.health.metrics.poll_errors.get_or_create(&self.label).inc();
        self.health.metrics.device_up.get_or_create(&self.label).set(0);
        let msg = format!("{e:#}");
        self.health.device(id, |s| {
            s.connected = false;
            s.errors += 1;
            s.last_error = Some(msg);
        });
    }

    /// Appends whatever records one snapshot yields and updates health; `started` is when its
    /// read began.
    async fn record_snapshot(&mut self, snap: Snapshot, started: Instant) -> Result<()> {
        let latency = self.source.read_latency().unwrap_or_else(|| started.elapsed());
        self.health.metrics.poll_seconds.get_or_create(&self.label).observe(latency.as_secs_f64());
        self.health.metrics.device_up.get_or_create(&self.label).set(1);
        self.warn_out_of_range(&snap);
        let (records, missed) = match self.device.cfg.role {
            DeviceRole::Peripheral => (self.sample(&snap).into_iter().collect(), 0),
            DeviceRole::Machine => self.shots(snap).await?,
        };
        let (n, current) = (records.len(), records.last().and_then(|r| r.shot_mark.clone()));
        if n > 0 {
            self.writer.append(records).await?;
        }
        // Counted once the records are durable: a failed append leaves the mark where it was,
        // and the next poll plans (and counts) the same gap again.
        if missed > 0 {
            tracing::warn!(device = %self.device.cfg.id, missed, "shots made while unreachable could not be read back");
            self.health.metrics.shots_missed.get_or_create(&self.label).inc_by(missed);
            self.health.device(&self.device.cfg.id, |s| s.missed_shots += missed);
        }
        if let Some((_, shot)) = current {
            self.last_shot = Some(shot);
        }
        let now = chrono::Utc::now().timestamp_millis();
        let shots = if self.device.cfg.role == DeviceRole::Machine { n as u64 } else { 0 };
        if shots > 0 {
            self.health.metrics.shots.get_or_create(&self.label).inc_by(shots);
        }
        let last = self.last_shot;
        self.health.device(&self.device.cfg.id, |s| {
            s.connected = true;
            s.polls += 1;
            s.last_ok_ms = Some(now);
            s.shots += shots;
            s.last_shot = last;
        });
        Ok(())
    }

    fn record(&self, kind: RecordKind, snap: &Snapshot, shot: Option<u64>) -> Record {
        let cfg = &self.device.cfg;
        Record {
            seq: 0,
            kind,
            machine_id: cfg.machine_id().to_string(),
            device_id: cfg.id.clone(),
            ts_ms: snap
                .timestamp_ms
                .filter(|t| *t > 0)
                .unwrap_or_else(|| chrono::Utc::now().timestamp_millis()),
            shot_number: shot,
            mold: if kind == RecordKind::Shot { snap.mold.clone() } else { None },
            material: if kind == RecordKind::Shot { snap.material.clone() } else { None },
            values: snap.values.clone(),
            out_of_range: snap.flagged(),
            model: None,
        }
    }

    fn sample(&self, snap: &Snapshot) -> Option<NewRecord> {
        if snap.values.is_empty() {
            return None;
        }
        Some(NewRecord { record: self.record(RecordKind::Peripheral, snap, None), shot_mark: None })
    }

    /// Records for every shot since the last one recorded, oldest first, and how many shots in
    /// between could not be read back.
    async fn shots(&mut self, snap: Snapshot) -> Result<(Vec<NewRecord>, u64)> {
        let Some(current) = snap.counter else { return Ok((vec![], 0)) };
        let profile = &self.device.profile;
        let bits = profile.counter_bits();
        let no_shot_yet = profile.timestamp.is_some() && snap.timestamp_ms == Some(0);
        if self.last_shot.is_none() && no_shot_yet {
            return Ok((vec![], 0));
        }
        let depth = profile.history.as_ref().map_or(0, |h| u64::from(h.depth));
        let backfill = match shot::plan(self.last_shot, current, bits, depth) {
            ShotPlan::None => return Ok((vec![], 0)),
            ShotPlan::Reset { previous, current } => {
                tracing::warn!(device = %self.device.cfg.id, previous, current, "shot counter went backwards: controller reset? recording from the new value");
                vec![]
            }
            ShotPlan::Record { backfill, .. } => backfill,
        };
        let mut out = Vec::new();
        for n in backfill {
            if let Some(s) = self.read_history(n).await? {
                out.push(NewRecord { record: self.record(RecordKind::Shot, &s, Some(n)), shot_mark: None });
            }
        }
        let missed = shot::missed(self.last_shot, current, bits, out.len());
        let machine = self.device.cfg.machine_id().to_string();
        let mark = Some((machine, current));
        out.push(NewRecord { record: self.record(RecordKind::Shot, &snap, Some(current)), shot_mark: mark });
        Ok((out, missed))
    }

    /// Reads shot `n` from the controller's history ring; `None` when the slot holds
    /// another shot (overwritten, or never written).
    async fn read_history(&mut self, n: u64) -> Result<Option<Snapshot>> {
        let Some(h) = self.device.profile.history.clone() else { return Ok(None) };
        let slot = (n % u64::from(h.depth)) as u32;
        let start = u32::from(h.base) + slot * u32::from(h.stride);
        let Ok(start) = u16::try_from(start) else { return Ok(None) };
        let mut blocks = Vec::new();
        let mut at = 0u16;
        while at < h.stride {
            let count = (h.stride - at).min(moldops_shared::profile::MAX_READ);
            blocks.push(ReadBlock { register: RegisterKind::Holding, start: start + at, count });
            at += count;
        }
        let Some(modbus) = self.source.modbus() else { return Ok(None) };
        let regs = modbus.read(&blocks).await?;
        let snap = Snapshot::decode(&self.device.profile, &regs, i32::from(start) - i32::from(h.copy_of));
        let valid = snap.counter == Some(n) && snap.timestamp_ms != Some(0);
        Ok(valid.then_some(snap))
    }

    fn warn_out_of_range(&mut self, snap: &Snapshot) {
        if let Some(why) = &snap.mold_refused
            && self.warned.insert("\0mold".into())
        {
            tracing::warn!(device = %self.device.cfg.id, %why,
                "the mold code read from the controller cannot be sent; shots go on without a mold (logged once)");
        }
        if let Some(why) = &snap.material_refused
            && self.warned.insert("\0material".into())
        {
            tracing::warn!(device = %self.device.cfg.id, %why,
                "the material code read from the controller cannot join the mould key; shots go on with the mould alone (logged once)");
        }
        for issue in &snap.out_of_range {
            self.health.metrics.out_of_range.get_or_create(&self.label).inc();
            if !self.warned.insert(issue.tag.clone()) {
                continue;
            }
            let hint = match issue.plausible.first() {
                Some((w, b, v)) => {
                    format!("word_order = {w:?}, byte_order = {b:?} would give {v}").to_lowercase()
                }
                None if self.device.cfg.protocol == Protocol::Opcua => {
                    "check the node's scale and range".into()
                }
                None => "no word/byte order gives a value in range".into(),
            };
            tracing::warn!(device = %self.device.cfg.id, tag = %issue.tag, value = issue.value, %hint, "value outside its engineering range");
        }
    }
}
