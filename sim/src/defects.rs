//! Defects of the simulated process: which shots are bad (short episodes of 1–5 consecutive
//! shots, started at a rate that makes the configured fraction of shots defective; and, when
//! asked for, sustained process faults — a failed barrel heater band that stays until the next
//! stop or 60–200 shots), of which kind (wet material only when the material is moist), and the
//! physical signature each kind leaves on the process values, the part weight and the mold
//! temperature.

use super::features::{Feature as F, Values};
use rand::Rng;
use serde::Serialize;

/// Ground truth of one shot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Defect {
    /// A good part.
    None,
    /// Incompletely filled part: light, low cushion, high injection pressure.
    ShortShot,
    /// Melt escaped at the parting line: heavy part, high switch-over pressure.
    Flash,
    /// Too little packing in a too-hot mold: light part, high cushion, hot mold.
    SinkMarks,
    /// Splay from moist material (only above [`WET_MOISTURE`]): low pressures, short
    /// plasticizing, slightly light part.
    WetMaterial,
    /// A failed barrel heater band (a sustained fault): zone 2 runs cold, the stiffer melt
    /// needs more pressure and time to fill and plasticize, parts come out light, shot after
    /// shot until the band is replaced.
    HeaterBand,
}

impl Defect {
    /// Every kind, [`Defect::None`] first.
    pub const ALL: [Defect; 6] = [
        Defect::None,
        Defect::ShortShot,
        Defect::Flash,
        Defect::SinkMarks,
        Defect::WetMaterial,
        Defect::HeaterBand,
    ];

    /// Name in the quality log.
    pub fn as_str(self) -> &'static str {
        match self {
            Defect::None => "none",
            Defect::ShortShot => "short_shot",
            Defect::Flash => "flash",
            Defect::SinkMarks => "sink_marks",
            Defect::WetMaterial => "wet_material",
            Defect::HeaterBand => "heater_band",
        }
    }

    /// 1 for a defective shot, 0 for a good one.
    pub fn label(self) -> u8 {
        u8::from(self != Defect::None)
    }
}

/// Material moisture (%) above which parts splay: only then do wet-material episodes start.
pub const WET_MOISTURE: f64 = 0.06;

/// Longest defect episode, in shots; lengths are uniform in `1..=MAX_EPISODE`.
const MAX_EPISODE: u32 = 5;

/// Shots a failed heater band lasts unless a stop comes first (uniform).
const SUSTAINED: std::ops::RangeInclusive<u32> = 60..=200;

/// What a shot will be, before its defect signature is applied.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Draft {
    /// Process values of the shot.
    pub values: Values,
    /// Part weight, g.
    pub weight: f64,
    /// Mold temperature controller supply temperature, °C.
    pub tcu_supply: f64,
}

#[derive(Debug, Clone, Copy)]
struct Episode {
    defect: Defect,
    left: u32,
    severity: f64,
}

/// The defect episode generator of one machine.
#[derive(Debug, Clone)]
pub struct Episodes {
    p_start: f64,
    /// Chance a good shot starts a sustained fault.
    p_sustained: f64,
    current: Option<Episode>,
}

impl Episodes {
    /// `rate` is the fraction of defective shots in short episodes, clamped to `[0, 0.9]`;
    /// `sustained_per_10k` the expected sustained faults per 10 000 shots (clamped to
    /// `[0, 100]`), whose shots come on top of that fraction.
    pub fn new(rate: f64, sustained_per_10k: f64) -> Self {
        let f = if rate.is_finite() { rate.clamp(0.0, 0.9) } else { 0.0 };
        // A good shot starts an episode (mean length m) with probability p, so the defective
        // fraction is m·p / (1 − p + m·p); solved for p.
        let m = f64::from(MAX_EPISODE + 1) / 2.0;
        let sustained = if sustained_per_10k.is_finite() { sustained_per_10k.clamp(0.0, 100.0) } else { 0.0 };
        Episodes { p_start: f / (m - (m - 1.0) * f), p_sustained: sustained / 10_000.0, current: None }
    }

    /// Ends the running episode (the machine stopped; the cause was fixed).
    pub fn reset(&mut self) {
        self.current = None;
    }

    /// Defect and severity of the next shot; `moisture` in %.
    pub fn next(&mut self, rng: &mut impl Rng, moisture: f64) -> (Defect, f64) {
        if self.current.is_none() && self.p_sustained > 0.0 && rng.random::<f64>() < self.p_sustained {
            let left = rng.random_range(SUSTAINED);
            let severity = rng.random_range(0.8..1.2);
            self.current = Some(Episode { defect: Defect::HeaterBand, left, severity });
        }
        if self.current.is_none() && self.p_start > 0.0 && rng.random::<f64>() < self.p_start {
            let defect = pick(rng, moisture);
            let left = rng.random_range(1..=MAX_EPISODE);
            self.current = Some(Episode { defect, left, severity: rng.random_range(0.7..1.3) });
        }
        let Some(ep) = self.current.as_mut() else { return (Defect::None, 0.0) };
        ep.left -= 1;
        let out = (ep.defect, ep.severity * rng.random_range(0.85..1.15));
        if ep.left == 0 {
            self.current = None;
        }
        out
    }
}

fn pick(rng: &mut impl Rng, moisture: f64) -> Defect {
    if moisture > WET_MOISTURE && rng.random::<f64>() < 0.85 {
        return Defect::WetMaterial;
    }
    match rng.random::<f64>() {
        x if x < 0.4 => Defect::ShortShot,
        x if x < 0.7 => Defect::Flash,
        _ => Defect::SinkMarks,
    }
}

fn scale(v: &mut Values, f: F, rel: f64) {
    v[f] *= 1.0 + rel;
}

/// Applies the physical signature of `defect` with severity `s` (≈ 1) to a shot.
pub fn apply(defect: Defect, s: f64, d: &mut Draft) {
    let v = &mut d.values;
    match defect {
        Defect::None => {}
        // Not enough melt reaches the cavity (cold nozzle, restricted gate): the screw runs
        // nearly to the end (low cushion) against high pressure, the part is light.
        Defect::ShortShot => {
            d.weight *= 1.0 - 0.045 * s;
            v[F::CushionPosition] -= 3.0 * s;
            scale(v, F::MaxInjectionPressure, 0.08 * s);
            scale(v, F::MaxSwitchOverPressure, 0.06 * s);
            v[F::FillingTime] += 0.3 * s;
            v[F::InjectionTime] += 0.2 * s;
            v[F::Barrel1] -= 2.5 * s;
        }
        // Melt escapes at the parting line: too much pressure and speed, heavy part, low
        // cushion.
        Defect::Flash => {
            d.weight *= 1.0 + 0.025 * s;
            v[F::CushionPosition] -= 1.5 * s;
            scale(v, F::MaxInjectionPressure, 0.05 * s);
            scale(v, F::MaxSwitchOverPressure, 0.09 * s);
            scale(v, F::MaxInjectionSpeed, 0.04 * s);
        }
        // Too little packing into a too-hot mold: short, low hold (less pushed in, higher
        // cushion), light part, hot mold.
        Defect::SinkMarks => {
            d.weight *= 1.0 - 0.02 * s;
            v[F::CushionPosition] += 2.2 * s;
            v[F::InjectionTime] -= 0.5 * s;
            v[F::CycleTime] -= 0.8 * s;
            scale(v, F::MaxSwitchOverPressure, -0.06 * s);
            d.tcu_supply += 4.0 * s;
        }
        // Moist material: lower viscosity (lower pressures, faster fill), shorter
        // plasticizing, splay voids make the part slightly light.
        Defect::WetMaterial => {
            d.weight *= 1.0 - 0.008 * s;
            scale(v, F::MaxInjectionPressure, -0.07 * s);
            scale(v, F::MaxSwitchOverPressure, -0.05 * s);
            scale(v, F::MaxInjectionSpeed, 0.05 * s);
            v[F::FillingTime] -= 0.15 * s;
            v[F::PlasticizingTime] -= 0.8 * s;
            v[F::AverageBackPressure] -= 0.6 * s;
        }
        // Zone 2 runs 25 °C cold: stiffer melt, more pressure and time to fill and plasticize,
        // a slightly light part; the controller's other zones barely notice.
        Defect::HeaterBand => {
            d.weight *= 1.0 - 0.012 * s;
            v[F::Barrel2] -= 25.0 * s;
            v[F::Barrel3] -= 4.0 * s;
            scale(v, F::MaxInjectionPressure, 0.08 * s);
            v[F::FillingTime] += 0.12 * s;
            v[F::PlasticizingTime] += 0.6 * s;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    #[test]
    fn episodes_hit_the_rate_and_stay_short() {
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let mut ep = Episodes::new(0.03, 0.0);
        let (mut bad, mut runs, mut prev) = (0u32, 0u32, Defect::None);
        let n = 200_000;
        for _ in 0..n {
            let (d, _) = ep.next(&mut rng, 0.02);
            assert_ne!(d, Defect::WetMaterial, "dry material never splays");
            runs += u32::from(d != Defect::None && d != prev);
            prev = d;
            bad += u32::from(d.label());
        }
        let rate = f64::from(bad) / f64::from(n);
        assert!((0.027..0.033).contains(&rate), "rate {rate}");
        let mean_run = f64::from(bad) / f64::from(runs);
        assert!((2.5..3.5).contains(&mean_run), "mean episode length {mean_run}");
        assert_eq!(Episodes::new(0.0, 0.0).next(&mut rng, 1.0).0, Defect::None);
    }

    #[test]
    fn a_failed_heater_band_stays_for_60_to_200_shots() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let mut ep = Episodes::new(0.0, 20.0);
        let (mut runs, mut current) = (Vec::new(), 0u32);
        for _ in 0..200_000 {
            match ep.next(&mut rng, 0.02).0 {
                Defect::HeaterBand => current += 1,
                Defect::None if current > 0 => runs.push(std::mem::take(&mut current)),
                Defect::None => {}
                other => panic!("only sustained faults asked for, got {other:?}"),
            }
        }
        assert!(runs.iter().all(|r| SUSTAINED.contains(r)), "{runs:?}");
        // One failure per 500 good shots, each ~130 long: 200 000 / 630 ≈ 317 of them.
        assert!((250..400).contains(&runs.len()), "{} failures", runs.len());
    }
}
