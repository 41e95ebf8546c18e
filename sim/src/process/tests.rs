use super::*;
use crate::molds::mold_spec;
use std::collections::HashMap;

fn config(seed: u64, index: usize) -> ProcessConfig {
    ProcessConfig {
        seed,
        index,
        start_ms: 1_767_592_800_000,
        start_shot: 1,
        defect_rate: 0.03,
        sustained_faults: 0.0,
        mold_change_shots: 300,
        idle_every: 600,
    }
}

fn shots(cfg: ProcessConfig, n: usize) -> Vec<(Shot, Peripherals)> {
    let mut m = ProcessModel::new(cfg);
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        let step = m.next_step();
        if let Some(s) = step.shot {
            out.push((s, step.peripherals));
        }
    }
    out
}

#[test]
fn same_seed_same_series_other_seed_or_machine_differs() {
    let a = shots(config(42, 0), 800);
    assert_eq!(a, shots(config(42, 0), 800));
    assert_ne!(a, shots(config(43, 0), 800));
    assert_ne!(a, shots(config(42, 1), 800));
}

#[test]
fn first_shot_ends_at_start_and_counter_wraps() {
    let mut cfg = config(1, 0);
    cfg.start_shot = u32::MAX - 2;
    let s = shots(cfg.clone(), 6);
    assert_eq!(s[0].0.ts_ms, cfg.start_ms);
    let numbers: Vec<u32> = s.iter().map(|(s, _)| s.number).collect();
    assert_eq!(numbers, vec![u32::MAX - 2, u32::MAX - 1, u32::MAX, 0, 1, 2]);
    assert!(s.iter().all(|(s, p)| p.weigh_counter == s.number));
}

/// Mean relative deviation from the mold's nominal value, per defect kind.
fn mean_dev(
    series: &[(Shot, Peripherals)],
    pick: impl Fn(&Shot, &Peripherals) -> f64,
) -> HashMap<Defect, f64> {
    let mut acc: HashMap<Defect, (f64, f64)> = HashMap::new();
    for (s, p) in series {
        let e = acc.entry(s.defect).or_default();
        e.0 += pick(s, p);
        e.1 += 1.0;
    }
    acc.into_iter().map(|(d, (sum, n))| (d, sum / n)).collect()
}

fn spec(s: &Shot) -> &'static MoldSpec {
    mold_spec(s.mold).unwrap_or_else(|| panic!("unknown mold {}", s.mold))
}

#[test]
fn defect_rate_and_physical_signatures() {
    let series = shots(config(42, 0), 20_000);
    let bad = series.iter().filter(|(s, _)| s.defect.label() == 1).count();
    let rate = bad as f64 / series.len() as f64;
    assert!((0.022..0.038).contains(&rate), "defect rate {rate}");

    let weight = mean_dev(&series, |s, p| p.part_weight / spec(s).part_weight - 1.0);
    let rel = |f: F| move |s: &Shot, _: &Peripherals| s.values[f] / spec(s).nominal[f] - 1.0;
    let cushion =
        mean_dev(&series, |s, _| s.values[F::CushionPosition] - spec(s).nominal[F::CushionPosition]);
    let pressure = mean_dev(&series, rel(F::MaxInjectionPressure));
    let speed = mean_dev(&series, rel(F::MaxInjectionSpeed));
    let supply = mean_dev(&series, |s, p| p.supply_temperature - spec(s).tcu_supply);
    let dew = mean_dev(&series, |_, p| p.dew_point);
    for d in Defect::ALL.into_iter().filter(|d| *d != Defect::HeaterBand) {
        assert!(weight.contains_key(&d), "no {d:?} shots in 20000");
    }
    assert!(!weight.contains_key(&Defect::HeaterBand), "sustained faults only when asked for");
    let good = Defect::None;
    let (ss, fl, sm, wm) = (Defect::ShortShot, Defect::Flash, Defect::SinkMarks, Defect::WetMaterial);
    assert!(weight[&ss] < weight[&good] - 0.03 && cushion[&ss] < cushion[&good] - 2.0);
    assert!(pressure[&ss] > pressure[&good] + 0.05);
    assert!(weight[&fl] > weight[&good] + 0.015 && pressure[&fl] > pressure[&good] + 0.03);
    assert!(weight[&sm] < weight[&good] - 0.01 && cushion[&sm] > cushion[&good] + 1.5);
    assert!(supply[&sm] > supply[&good] + 2.5);
    assert!(pressure[&wm] < pressure[&good] - 0.06 && speed[&wm] > speed[&good] + 0.03);
    assert!(dew[&wm] > dew[&good] + 10.0, "wet material comes with a wet dryer");
}

#[test]
fn a_failed_heater_band_is_a_sustained_step_in_the_process() {
    let series = shots(ProcessConfig { sustained_faults: 5.0, ..config(9, 0) }, 20_000);
    let rel = |f: F| move |s: &Shot, _: &Peripherals| s.values[f] / spec(s).nominal[f] - 1.0;
    let barrel2 = mean_dev(&series, |s, _| s.values[F::Barrel2] - spec(s).nominal[F::Barrel2]);
    let pressure = mean_dev(&series, rel(F::MaxInjectionPressure));
    let weight = mean_dev(&series, |s, p| p.part_weight / spec(s).part_weight - 1.0);
    let (hb, good) = (Defect::HeaterBand, Defect::None);
    assert!(barrel2[&hb] < barrel2[&good] - 15.0, "zone 2 runs cold: {barrel2:?}");
    assert!(
        pressure[&hb] > pressure[&good] + 0.02 && weight[&hb] < weight[&good] - 0.008,
        "{pressure:?} {weight:?}"
    );
    // Long runs of consecutive failed shots, not 1–5 shot episodes.
    let mut longest = (0, 0);
    for (s, _) in &series {
        longest.0 = if s.defect == hb { longest.0 + 1 } else { 0 };
        longest.1 = longest.1.max(longest.0);
    }
    assert!(longest.1 >= 60, "longest heater band failure {} shots", longest.1);
}

#[test]
fn good_shots_are_physically_plausible() {
    for (s, p) in shots(config(7, 1), 3000).iter().filter(|(s, _)| s.defect == Defect::None) {
        let v = &s.values;
        assert!((58.0..72.0).contains(&v[F::CycleTime]), "{v:?}");
        assert!((18.0..28.0).contains(&v[F::CushionPosition]), "{v:?}");
        for f in &BARREL[..6] {
            assert!((180.0..245.0).contains(&v[*f]), "{v:?}");
        }
        assert!((35.0..45.0).contains(&v[F::Barrel7]), "{v:?}");
        assert!(v[F::AverageScrewRpm] < v[F::MaxScrewRpm]);
        assert!((-60.0..5.0).contains(&p.dew_point) && p.return_temperature > p.supply_temperature - 1.0);
    }
}

#[test]
fn mold_changes_and_idle_gaps() {
    let mut m = ProcessModel::new(config(3, 0));
    let (mut prev_ts, mut prev_mold, mut prev_shot): (i64, &str, Option<i64>) = (0, "", None);
    let (mut changes, mut idle_gaps, mut shots) = (0, 0, 0);
    let mut states = std::collections::HashSet::new();
    while shots < 3000 {
        let step = m.next_step();
        assert!(step.ts_ms >= prev_ts, "time runs forward");
        prev_ts = step.ts_ms;
        states.insert(step.state as u16);
        let Some(s) = step.shot else { continue };
        shots += 1;
        if let Some(p) = prev_shot {
            let gap_min = (s.ts_ms - p) as f64 / 60_000.0;
            if s.mold != prev_mold {
                changes += 1;
                assert!((20.0..42.0).contains(&gap_min), "mold change gap {gap_min} min");
            } else if gap_min > 15.0 {
                idle_gaps += 1;
            } else {
                assert!(gap_min < 12.0, "gap {gap_min} min");
            }
        }
        prev_shot = Some(s.ts_ms);
        prev_mold = s.mold;
    }
    assert!((7..=12).contains(&changes), "{changes} mold changes in 3000 shots");
    assert!(idle_gaps >= 1, "no idle gap over 15 min in 3000 shots");
    assert!(states.contains(&1) && states.contains(&2) && states.contains(&4));
}

#[test]
fn a_requested_mold_change_stops_the_machine_and_brings_the_next_mold() {
    let cfg = ProcessConfig { mold_change_shots: 0, idle_every: 0, ..config(5, 0) };
    let mut m = ProcessModel::new(cfg.clone());
    let before = shots(cfg, 20);
    let first = before[0].0.mold;
    assert!(before.iter().all(|(s, _)| s.mold == first), "no change without a request");
    let mut last = None;
    for _ in 0..20 {
        last = m.next_step().shot.or(last);
    }
    let last = last.expect("shots");
    m.request_mold_change();
    let next = loop {
        if let Some(s) = m.next_step().shot {
            break s;
        }
    };
    assert_ne!(next.mold, first, "the next shot is made in another mould");
    let gap_min = (next.ts_ms - last.ts_ms) as f64 / 60_000.0;
    assert!((20.0..42.0).contains(&gap_min), "a change stop of {gap_min} min");
    let after: Vec<&str> = (0..200).filter_map(|_| m.next_step().shot).map(|s| s.mold).collect();
    assert!(after.iter().all(|mold| *mold == next.mold), "one request, one change");
}

#[test]
fn a_heater_shift_moves_its_zone_from_the_next_shot_for_good() {
    let cfg = ProcessConfig { mold_change_shots: 0, idle_every: 0, ..config(9, 0) };
    let zone3 = |m: &mut ProcessModel, n: usize| -> f64 {
        let shots: Vec<_> =
            std::iter::from_fn(|| Some(m.next_step())).filter_map(|s| s.shot).take(n).collect();
        shots.iter().map(|s| s.values[BARREL[2]]).sum::<f64>() / n as f64
    };
    let mut calm = ProcessModel::new(cfg.clone());
    let mut shifted = ProcessModel::new(cfg);
    assert_eq!(zone3(&mut calm, 50), zone3(&mut shifted, 50), "the same plant until the shift");
    shifted.shift_heater(2, 3.0).expect("zone 3");
    let (a, b) = (zone3(&mut calm, 400), zone3(&mut shifted, 400));
    assert!((b - a - 3.0).abs() < 1e-9, "zone 3 runs 3 °C hotter on every shot: {a} vs {b}");
    assert!(shifted.shift_heater(7, 1.0).is_err() && shifted.shift_heater(0, f64::NAN).is_err());
}
