//! The process model of one simulated injection machine and its peripherals: a seeded,
//! deterministic sequence of [`Step`]s in simulated time. It knows nothing of registers or
//! real time; the plant replays its steps. Per-mold setpoints with noise, slow drifts (barrel
//! heater bands, dryer dew point → material moisture → melt viscosity), defect episodes
//! ([`super::defects`]), mold changes and idle stops.

use super::defects::{self, Defect, Draft, Episodes};
use super::features::{BARREL, Feature as F, N_FEATURES, Values};
use super::molds::{MOLDS, MoldSpec, SPREAD, WEIGHT_SPREAD};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::StandardNormal;

/// Machine state register values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MachineState {
    /// Switched off.
    Off = 0,
    /// Standing idle (an idle stop, or after the last shot).
    Idle = 1,
    /// Making shots.
    Production = 2,
    /// Stopped by an alarm (3–10 min).
    Alarm = 3,
    /// Changing molds (20–40 min).
    MoldChange = 4,
}

/// Settings of one machine's process.
#[derive(Debug, Clone, PartialEq)]
pub struct ProcessConfig {
    /// Plant-wide seed; combined with `index` into the machine's own random stream.
    pub seed: u64,
    /// Machine index (0-based); seeds the RNG together with `seed` and picks the first mold.
    pub index: usize,
    /// Simulated time (ms since the epoch, UTC) at which the first shot ends.
    pub start_ms: i64,
    /// Number of the first shot (the counter wraps at 2^32).
    pub start_shot: u32,
    /// Fraction of defective shots in short episodes.
    pub defect_rate: f64,
    /// Expected sustained faults (failed heater bands) per 10 000 shots; their shots come on top.
    pub sustained_faults: f64,
    /// Shots between mold changes (±15 %); 0 = never.
    pub mold_change_shots: u64,
    /// Mean shots between idle stops of over 15 minutes; 0 = never.
    pub idle_every: u64,
}

/// One shot as the controller records it, with its ground truth.
#[derive(Debug, Clone, PartialEq)]
pub struct Shot {
    /// Shot counter value of the shot.
    pub number: u32,
    /// End of the shot, simulated ms since the epoch (UTC).
    pub ts_ms: i64,
    /// Code of the mold the shot was made in.
    pub mold: &'static str,
    /// Process values the controller records.
    pub values: Values,
    /// Ground truth: the shot's defect ([`Defect::None`] for a good part); goes only to the
    /// quality log.
    pub defect: Defect,
}

/// Readings of the machine's peripherals.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Peripherals {
    /// Mold temperature controller supply temperature, °C.
    pub supply_temperature: f64,
    /// Mold temperature controller return temperature, °C.
    pub return_temperature: f64,
    /// Mold coolant flow, l/min.
    pub flow: f64,
    /// Dryer dew point, °C (about −40 when dry, rising toward −5 during a regeneration fault).
    pub dew_point: f64,
    /// Dryer hopper temperature, °C.
    pub hopper_temperature: f64,
    /// Weight of the last part, g.
    pub part_weight: f64,
    /// Shot number of the last weighed part.
    pub weigh_counter: u32,
}

/// What happens at one instant: a shot ends, or (while stopped) time passes.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    /// Simulated time of the step, ms since the Unix epoch (UTC).
    pub ts_ms: i64,
    /// Machine state at that time.
    pub state: MachineState,
    /// Code of the mold in the machine.
    pub mold: &'static str,
    /// The shot that ended at `ts_ms`; `None` while the machine is stopped or as a stop ends.
    pub shot: Option<Shot>,
    /// Peripheral readings at `ts_ms`.
    pub peripherals: Peripherals,
}

/// Simulated time between steps while the machine stands still.
const PAUSE_TICK_MS: i64 = 60_000;
/// Mean shots between alarm stops (3–10 min).
const ALARM_EVERY: f64 = 2500.0;
/// Material moisture (%) of well dried material.
const DRY_MOISTURE: f64 = 0.02;

#[derive(Debug, Clone, Copy)]
struct Pause {
    state: MachineState,
    until_ms: i64,
    change_mold: bool,
}

/// Barrel heater zones of a machine.
pub const BARREL_ZONES: usize = 7;

/// Slowly drifting plant state, advanced once per step.
#[derive(Debug, Clone)]
struct Drifts {
    /// Barrel zone deviations from setpoint, °C.
    barrel: [f64; BARREL_ZONES],
    /// A failing heater band: (zone, °C per step, steps left).
    heater: Option<(usize, f64, u32)>,
    /// Lasting barrel zone offsets asked for from outside ([`ProcessModel::shift_heater`]), °C.
    offset: [f64; BARREL_ZONES],
    dew_point: f64,
    /// Steps left of a dryer regeneration fault.
    dryer_fault: u32,
    /// Material moisture, %.
    moisture: f64,
    tcu: f64,
    flow: f64,
}

/// The process of one machine.
#[derive(Debug, Clone)]
pub struct ProcessModel {
    cfg: ProcessConfig,
    rng: ChaCha8Rng,
    now_ms: i64,
    /// False until the first shot (which ends at `start_ms`) is made.
    started: bool,
    next_number: u32,
    mold: usize,
    pause: Option<Pause>,
    until_change: u64,
    /// A mould change asked for from outside ([`ProcessModel::request_mold_change`]).
    change_requested: bool,
    drifts: Drifts,
    episodes: Episodes,
    last_weight: (f64, u32),
}

impl ProcessModel {
    /// A machine's process, deterministic for a given `cfg`; its first mold is
    /// `MOLDS[index % MOLDS.len()]`.
    pub fn new(cfg: ProcessConfig) -> Self {
        let stream = (cfg.index as u64).wrapping_add(1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed ^ stream);
        let until_change = jitter(&mut rng, cfg.mold_change_shots);
        let drifts = Drifts {
            barrel: [0.0; BARREL_ZONES],
            heater: None,
            offset: [0.0; BARREL_ZONES],
            dew_point: -40.0,
            dryer_fault: 0,
            moisture: DRY_MOISTURE,
            tcu: 0.0,
            flow: 0.0,
        };
        ProcessModel {
            now_ms: cfg.start_ms,
            started: false,
            next_number: cfg.start_shot,
            mold: cfg.index % MOLDS.len(),
            episodes: Episodes::new(cfg.defect_rate, cfg.sustained_faults),
            pause: None,
            until_change,
            change_requested: false,
            drifts,
            last_weight: (0.0, 0),
            rng,
            cfg,
        }
    }

    /// The next step. The first is the shot that ends at `start_ms`.
    pub fn next_step(&mut self) -> Step {
        self.evolve();
        if let Some(p) = self.pause {
            if self.now_ms + PAUSE_TICK_MS < p.until_ms {
                self.now_ms += PAUSE_TICK_MS;
                return self.still(p.state);
            }
            self.now_ms = p.until_ms;
            self.pause = None;
            if p.change_mold {
                self.mold = (self.mold + 1) % MOLDS.len();
                self.until_change = jitter(&mut self.rng, self.cfg.mold_change_shots);
            }
            return self.still(MachineState::Production);
        }
        if self.started
            && let Some(p) = self.maybe_pause()
        {
            self.episodes.reset();
            self.pause = Some(p);
            self.now_ms += 10_000;
            return self.still(p.state);
        }
        self.shot()
    }

    /// Asks for a mould change: the machine stops after its current shot (20–40 min, as a
    /// scheduled change) and goes on with the next mould of the list.
    pub fn request_mold_change(&mut self) {
        self.change_requested = true;
    }

    /// Number of the next shot this process makes.
    pub fn next_shot_number(&self) -> u32 {
        self.next_number
    }

    /// Shifts barrel zone `zone` (0 = nozzle side, below [`BARREL_ZONES`]) by `delta_c` °C from
    /// the next shot on, for good (a drifting thermocouple or heater controller): the zone's value and
    /// the melt it heats move with it. Quality stays as it was: a drift, not a defect. Shifts
    /// add up; a zone out of range is refused.
    pub fn shift_heater(&mut self, zone: usize, delta_c: f64) -> anyhow::Result<()> {
        anyhow::ensure!(delta_c.is_finite(), "a heater shift of {delta_c} °C");
        let offset =
            self.drifts.offset.get_mut(zone).ok_or_else(|| anyhow::anyhow!("no barrel zone {}", zone + 1))?;
        *offset += delta_c;
        Ok(())
    }

    fn spec(&self) -> &'static MoldSpec {
        &MOLDS[self.mold]
    }

    fn gauss(&mut self) -> f64 {
        self.rng.sample::<f64, _>(StandardNormal)
    }

    fn maybe_pause(&mut self) -> Option<Pause> {
        let minutes = |rng: &mut ChaCha8Rng, lo: f64, hi: f64| (rng.random_range(lo..hi) * 60_000.0) as i64;
        let scheduled = self.cfg.mold_change_shots > 0 && self.until_change == 0;
        let (state, dur, change_mold) = if std::mem::take(&mut self.change_requested) || scheduled {
            (MachineState::MoldChange, minutes(&mut self.rng, 20.0, 40.0), true)
        } else if self.cfg.idle_every > 0 && self.rng.random::<f64>() < 1.0 / self.cfg.idle_every as f64 {
            (MachineState::Idle, minutes(&mut self.rng, 16.0, 45.0), false)
        } else if self.rng.random::<f64>() < 1.0 / ALARM_EVERY {
            (MachineState::Alarm, minutes(&mut self.rng, 3.0, 10.0), false)
        } else {
            return None;
        };
        Some(Pause { state, until_ms: self.now_ms + dur, change_mold })
    }

    /// Advances the slow drifts by one step.
    fn evolve(&mut self) {
        let g: [f64; 10] = std::array::from_fn(|_| self.gauss());
        let r = &mut self.rng;
        let d = &mut self.drifts;
        if d.heater.is_none() && r.random::<f64>() < 1.0 / 800.0 {
            let rate = r.random_range(0.01..0.03) * if r.random::<bool>() { 1.0 } else { -1.0 };
            d.heater = Some((r.random_range(0..6), rate, r.random_range(100..400)));
        }
        for (i, b) in d.barrel.iter_mut().enumerate() {
            *b = *b * 0.995 + 0.04 * g[i];
        }
        if let Some((zone, rate, left)) = d.heater {
            d.barrel[zone] += rate;
            d.heater = (left > 1).then_some((zone, rate, left - 1));
        }
        if d.dryer_fault == 0 && r.random::<f64>() < 1.0 / 500.0 {
            d.dryer_fault = r.random_range(60..200);
        }
        let target = if d.dryer_fault > 0 { -5.0 } else { -40.0 };
        d.dryer_fault = d.dryer_fault.saturating_sub(1);
        d.dew_point += (target - d.dew_point) * 0.08 + 0.3 * g[7];
        let equilibrium = DRY_MOISTURE + 0.0025 * (d.dew_point + 40.0).max(0.0);
        d.moisture += (equilibrium - d.moisture) * 0.1;
        d.tcu = d.tcu * 0.98 + 0.05 * g[8];
        d.flow = d.flow * 0.98 + 0.03 * g[9];
    }

    fn shot(&mut self) -> Step {
        let spec = self.spec();
        let (defect, severity) = self.episodes.next(&mut self.rng, self.drifts.moisture);
        let mut v = spec.nominal;
        for i in 0..N_FEATURES {
            v.0[i] += SPREAD.0[i] * self.gauss();
        }
        let zone = |d: &Drifts, i: usize| d.barrel[i] + d.offset[i];
        for (i, f) in BARREL.iter().enumerate() {
            v[*f] += zone(&self.drifts, i);
        }
        // Hotter melt and moister material flow more easily.
        let melt = (0..6).map(|i| zone(&self.drifts, i)).sum::<f64>() / 6.0;
        let viscosity = -0.006 * melt - (self.drifts.moisture - DRY_MOISTURE);
        v[F::MaxInjectionPressure] *= 1.0 + viscosity;
        v[F::MaxSwitchOverPressure] *= 1.0 + 0.8 * viscosity;
        v[F::MaxInjectionSpeed] *= 1.0 - 0.5 * viscosity;
        // Shot-size variation: more melt in the part leaves less cushion.
        let z = self.gauss();
        v[F::CushionPosition] -= 0.25 * z;
        let weight = spec.part_weight + WEIGHT_SPREAD * self.gauss() + 0.1 * z;
        let tcu_supply = spec.tcu_supply + self.drifts.tcu + 0.15 * self.gauss();
        let mut draft = Draft { values: v, weight, tcu_supply };
        defects::apply(defect, severity, &mut draft);
        let mut v = draft.values;
        v[F::AverageScrewRpm] = v[F::AverageScrewRpm].min(v[F::MaxScrewRpm] - 1.0);
        v[F::AverageBackPressure] = v[F::AverageBackPressure].min(v[F::MaxBackPressure] - 0.3);

        if self.started {
            self.now_ms += (v[F::CycleTime] * 1000.0).round() as i64;
        }
        self.started = true;
        let number = self.next_number;
        self.next_number = number.wrapping_add(1);
        self.until_change = self.until_change.saturating_sub(1);
        self.last_weight = (draft.weight, number);
        let peripherals = self.peripherals(draft.tcu_supply);
        let shot = Shot { number, ts_ms: self.now_ms, mold: spec.code, values: v, defect };
        Step {
            ts_ms: self.now_ms,
            state: MachineState::Production,
            mold: spec.code,
            shot: Some(shot),
            peripherals,
        }
    }

    /// A step without a shot.
    fn still(&mut self, state: MachineState) -> Step {
        let supply = self.spec().tcu_supply + self.drifts.tcu + 0.15 * self.gauss();
        let peripherals = self.peripherals(supply);
        Step { ts_ms: self.now_ms, state, mold: self.spec().code, shot: None, peripherals }
    }

    fn peripherals(&mut self, supply: f64) -> Peripherals {
        let (g1, g2, g3) = (self.gauss(), self.gauss(), self.gauss());
        Peripherals {
            supply_temperature: supply,
            return_temperature: supply + 2.5 + 0.2 * g1,
            flow: 12.0 + self.drifts.flow + 0.2 * g2,
            dew_point: self.drifts.dew_point,
            hopper_temperature: 80.0 + 0.4 * g3,
            part_weight: self.last_weight.0,
            weigh_counter: self.last_weight.1,
        }
    }
}

/// `n` ± 15 %, at least 1 (0 stays 0).
fn jitter(rng: &mut ChaCha8Rng, n: u64) -> u64 {
    if n == 0 {
        return 0;
    }
    ((n as f64 * rng.random_range(0.85..1.15)).round() as u64).max(1)
}

#[cfg(test)]
mod tests;
