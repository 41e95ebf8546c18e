use super::*;
use moldops_shared::limits;
use moldops_testkit::normal::Normal;

fn key(mold: &str) -> ModelKey {
    ModelKey { machine_id: "M1".into(), mold: Some(mold.into()) }
}

fn stamp(key: &ModelKey, version: u32) -> ModelStamp {
    ModelStamp {
        key: key.label(),
        id: format!("{}@{version}", key.label()),
        version,
        bundle_sha256: "ab".repeat(32),
    }
}

fn validation() -> ScoreStats {
    ScoreStats { count: 1000, mean: 1.0, std: 0.5, p50: 1.0, p90: 2.0, p99: 3.0, alarm_rate: 0.01 }
}

/// Feeds `n` shots of `key` (model `version`), feature `a` = `f(i)`, feature `b` missing on
/// odd shots, score `i % 4`; returns the summaries.
fn feed(
    m: &mut DriftMonitor,
    key: &ModelKey,
    version: u32,
    n: u64,
    f: impl Fn(u64) -> f64,
) -> Vec<DriftSummary> {
    feed_shots(m, key, version, 0..n, 1_000, f)
}

/// Feeds shots `shots` (shot `i` at `i · step_ms`) of `key` and version `version`.
fn feed_shots(
    m: &mut DriftMonitor,
    key: &ModelKey,
    version: u32,
    shots: std::ops::Range<u64>,
    step_ms: i64,
    f: impl Fn(u64) -> f64,
) -> Vec<DriftSummary> {
    let v = validation();
    let mut out = Vec::new();
    for i in shots {
        let a = f(i);
        let value = move |name: &str| match name {
            "a" => Some(a),
            "b" if i % 2 == 0 => Some(1.0),
            _ => None,
        };
        let shot = JudgedShot {
            key,
            stamp: stamp(key, version),
            validation: Some(&v),
            alarm_target: Some(0.01),
            ts_ms: step_ms * i as i64,
            score: (i % 4) as f64,
            alarm: i % 4 == 3,
            features: vec!["a", "b"],
            value: &value,
        };
        out.extend(m.observe(&shot));
    }
    out
}

#[test]
fn sample_bins_are_cut_at_its_quantiles() {
    let sample: Vec<f32> = (1..=10).map(|v| v as f32).chain([f32::NAN]).collect();
    let b = Binning::from_sample(&sample, 5);
    assert_eq!(b.edges, vec![2.0, 4.0, 6.0, 8.0]);
    assert_eq!(b.reference, vec![2.0; 5], "NaN (missing) is left out");
    assert_eq!((b.bin(2.0), b.bin(2.5), b.bin(-1.0), b.bin(100.0)), (0, 1, 0, 4));
    assert!((b.ref_mean - 5.5).abs() < 1e-12 && (b.ref_std - 8.25_f64.sqrt()).abs() < 1e-12);
    // Repeated values merge edges; a constant still has two bins.
    let constant = Binning::from_sample(&[7.0; 20], 10);
    assert_eq!((constant.edges, constant.reference), (vec![7.0], vec![20.0, 0.0]));
    let empty = Binning::from_sample(&[f32::NAN; 3], 10);
    assert_eq!(empty.reference, vec![0.0, 0.0]);
}

#[test]
fn validation_bins_carry_the_validation_shares() {
    let b = Binning::from_validation(&validation()).expect("usable");
    assert_eq!(b.edges, vec![1.0, 2.0, 3.0]);
    for (got, want) in b.reference.iter().zip([500.0, 400.0, 90.0, 10.0]) {
        assert!((got - want).abs() < 1e-9, "{:?}", b.reference);
    }
    let flat = ScoreStats { p90: 1.0, ..validation() };
    assert_eq!(Binning::from_validation(&flat), None, "quantiles must rise");
    assert_eq!(Binning::from_validation(&ScoreStats::default()), None);
}

#[test]
fn a_key_is_summarised_each_period_after_its_reference_within_the_record_limits() {
    let settings = DriftSettings { every_shots: 100, every_s: 0, reference_shots: 200, ..Default::default() };
    assert!(settings.problems().is_empty());
    let mut m = DriftMonitor::new(settings);
    let k = key("A");
    let out = feed(&mut m, &k, 3, 200 + 250, |i| (i % 10) as f64);
    assert_eq!(out.len(), 2, "two full periods after the reference");
    let s = &out[0];
    assert_eq!((s.shots, s.alarms, s.period_start_ms, s.period_end_ms), (100, 25, 200_000, 299_000));
    assert!(s.score_from_validation);
    assert_eq!(s.score.reference.len(), 4);
    // Scores 0..3 fall in the validation bins ≤1, ≤1, ≤2, ≤3: 50 / 25 / 25 / 0.
    assert_eq!(s.score.counts, vec![50, 25, 25, 0]);
    assert_eq!(s.features.len(), 2);
    assert_eq!(s.features[0].histogram.total(), 100);
    assert_eq!(s.features[0].histogram.psi().map(|p| p < 1e-9), Some(true), "same distribution");
    assert_eq!((s.features[1].histogram.missing, s.features[1].histogram.total()), (50, 50));
    let r = s.to_record();
    assert!(r.values.len() <= limits::MAX_VALUES);
    assert_eq!(moldops_shared::codec::check_record(&r), Ok(()));
    assert_eq!(DriftSummary::from_record(&r).as_ref(), Ok(s));
}

#[test]
fn a_shifted_feature_shows_in_its_psi_and_a_new_model_starts_over() {
    let settings = DriftSettings { every_shots: 100, every_s: 0, reference_shots: 100, ..Default::default() };
    let mut m = DriftMonitor::new(settings);
    let k = key("A");
    let out = feed(&mut m, &k, 3, 200, |i| if i < 100 { (i % 10) as f64 } else { 5.0 + (i % 10) as f64 });
    let psi = out[0].features[0].histogram.psi().expect("psi");
    assert!(psi > 1.0, "{psi}");
    assert_eq!(out[0].features[0].histogram.shift_in_std().map(|s| s > 1.5), Some(true));
    // Version 4 of the key learns its own reference: no summary during its first 100 shots.
    assert!(feed(&mut m, &k, 4, 100, |_| 1.0).is_empty());
    assert_eq!(feed(&mut m, &k, 4, 100, |_| 1.0).len(), 1);
}

#[test]
fn periods_close_on_shot_time_and_keys_stay_bounded() {
    let settings = DriftSettings {
        every_shots: 10_000,
        every_s: 30,
        min_shots: 20,
        reference_shots: 50,
        max_keys: 2,
        ..Default::default()
    };
    let mut m = DriftMonitor::new(settings.clone());
    // Shots 1 s apart: after the 50-shot reference a period closes when 30 s have passed.
    let out = feed(&mut m, &key("A"), 1, 50 + 31, |i| i as f64);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].shots, 31);
    // A slow machine (shots 10 s apart): the period goes on past 30 s until it holds 20 shots.
    let mut slow = DriftMonitor::new(settings.clone());
    let out = feed_shots(&mut slow, &key("A"), 1, 0..50 + 19, 10_000, |i| i as f64);
    assert!(out.is_empty(), "19 shots over 190 s: too thin to close by time");
    let out = feed_shots(&mut slow, &key("A"), 1, 69..70, 10_000, |i| i as f64);
    assert_eq!(out.iter().map(|s| s.shots).collect::<Vec<_>>(), [20]);
    for mold in ["B", "C", "D"] {
        feed(&mut m, &key(mold), 1, 5, |i| i as f64);
    }
    assert_eq!(m.keys(), 2, "the least recently judged keys were dropped");
    let bad = DriftSettings {
        bins: 1,
        reference_shots: 10,
        max_keys: 0,
        min_shots: MAX_PERIOD_SHOTS + 1,
        ..Default::default()
    };
    assert_eq!(bad.problems().len(), 4);
}

/// The cloud's default `--drift-psi` and `--warn-psi` (`moldops-cloud drift`).
const DRIFT_PSI: f64 = 0.25;
const WARN_PSI: f64 = 0.1;

/// Heater zone 3 of a machine: 230 °C with a spread of 0.8 °C, after the key's reference of
/// `settings.reference_shots` shots and `stable` more shots its mean moves by `shift` reference
/// standard deviations. Returns the shots from the first shifted one up to the one closing the
/// first summary whose zone-3 PSI exceeds `psi` (`None` within 4 periods of shifted shots), and
/// the zone-3 PSI of each summary that closed before the shift.
fn shots_to_flag(
    settings: &DriftSettings,
    seed: u64,
    stable: u64,
    shift: f64,
    psi: f64,
) -> (Option<u64>, Vec<f64>) {
    let mut m = DriftMonitor::new(settings.clone());
    let k = key("A");
    let v = validation();
    let mut noise = Normal::new(0x9e37_79b9_7f4a_7c15 ^ seed.wrapping_mul(0x1000_0000_01b3));
    let before = settings.reference_shots + stable;
    let mut calm_psi = Vec::new();
    for i in 0..before + 4 * settings.every_shots {
        let shifted = i >= before;
        let zone = 230.0 + 0.8 * (noise.next() + if shifted { shift } else { 0.0 });
        let cycle = 30.0 + 0.2 * noise.next();
        let value = move |name: &str| match name {
            "Barrel_Temp_Zone3" => Some(zone),
            "Cycle_Time" => Some(cycle),
            _ => None,
        };
        let shot = JudgedShot {
            key: &k,
            stamp: stamp(&k, 1),
            validation: Some(&v),
            alarm_target: Some(0.01),
            ts_ms: 1_000 * i as i64,
            score: 1.0 + 0.5 * noise.next(),
            alarm: false,
            features: vec!["Barrel_Temp_Zone3", "Cycle_Time"],
            value: &value,
        };
        let Some(s) = m.observe(&shot) else { continue };
        let zone_psi = s.features[0].histogram.psi().expect("zone 3 has values");
        if !shifted {
            calm_psi.push(zone_psi);
        } else if zone_psi > psi {
            return (Some(i + 1 - before), calm_psi);
        }
    }
    (None, calm_psi)
}

/// The figure docs/drift.md states: with the default settings (a 500-shot reference, a
/// summary every 500 shots, 10 bins) and the cloud's default thresholds, how many shots after a
/// heater zone's mean moved the summary that shows it closes, at the worst point within a period
/// the shift can start (late enough that the period's calm shots dilute it, so the next period
/// flags it) — over 3 seeds and every 10th start within a period.
#[test]
fn a_heater_zone_mean_shift_is_flagged_within_a_stated_number_of_shots() {
    let settings = DriftSettings::default();
    assert_eq!((settings.reference_shots, settings.every_shots, settings.bins), (500, 500, 10));
    let worst = |shift: f64, psi: f64| {
        let mut worst = Some(0_u64);
        for seed in 1..=3 {
            for start in (0..settings.every_shots).step_by(10) {
                // Two calm periods, then the shift `start` shots into the third.
                let (n, _) = shots_to_flag(&settings, seed, 2 * settings.every_shots + start, shift, psi);
                worst = worst.zip(n).map(|(w, n)| w.max(n));
            }
        }
        worst
    };
    let one = worst(1.0, DRIFT_PSI);
    let two = worst(2.0, DRIFT_PSI);
    // 40 calm periods of each seed: 120 summaries of an unchanged zone.
    let calm: Vec<f64> = (1..=3)
        .flat_map(|seed| shots_to_flag(&settings, 10 + seed, 40 * settings.every_shots, 0.0, 0.0).1)
        .collect();
    let calm_max = calm.iter().copied().fold(0.0, f64::max);
    let calm_warned = calm.iter().filter(|p| **p > WARN_PSI).count();
    let half_warn = worst(0.5, WARN_PSI);
    let half = worst(0.5, DRIFT_PSI);
    eprintln!(
        "shots until flagged: 1 σ drift {one:?}, 2 σ drift {two:?}, 0.5 σ warn {half_warn:?}, \
         0.5 σ drift {half:?}; {} calm periods: largest PSI {calm_max:.3}, {calm_warned} above {WARN_PSI}",
        calm.len()
    );
    // docs/drift.md states these (seeded, so exact): a shift of 1 reference σ is flagged
    // `drift` within 760 shots, one of 2 σ within 620, one of 0.5 σ is at least `warn` within
    // 760 (and was `drift` within 1,000 here, though a fully shifted period's PSI is near 0.25).
    let one = one.expect("a 1 σ shift is always flagged");
    let two = two.expect("a 2 σ shift is always flagged");
    let half_warn = half_warn.expect("a 0.5 σ shift always warns");
    assert!(one <= 760 && one > settings.every_shots, "1 σ took {one} shots");
    assert!(two <= 620 && two < one, "2 σ took {two} shots (1 σ: {one})");
    assert!(half_warn <= 760, "0.5 σ took {half_warn} shots to warn");
    // Calm periods: none near the drift threshold, at most the odd one at warn (1 of 120 here).
    assert_eq!(calm.len(), 120);
    assert!(calm_max > 0.0 && calm_max < DRIFT_PSI / 2.0, "the largest PSI of a calm period was {calm_max}");
    assert!(calm_warned <= 1, "{calm_warned} calm periods warned");
}

#[test]
fn a_shot_clock_stepping_back_still_gives_a_valid_period() {
    let settings = DriftSettings { every_shots: 100, every_s: 0, reference_shots: 100, ..Default::default() };
    let mut m = DriftMonitor::new(settings);
    let key = key("A");
    let v = validation();
    let mut out = Vec::new();
    for i in 0..200u64 {
        let value = |name: &str| (name == "a").then_some(i as f64);
        // Halfway through the period the clock is set back by an hour.
        let ts_ms = 10_000_000 + 1_000 * i as i64 - if i >= 150 { 3_600_000 } else { 0 };
        let shot = JudgedShot {
            key: &key,
            stamp: stamp(&key, 1),
            validation: Some(&v),
            alarm_target: Some(0.01),
            ts_ms,
            score: 1.0,
            alarm: false,
            features: vec!["a"],
            value: &value,
        };
        out.extend(m.observe(&shot));
    }
    let s = out.last().expect("a summary");
    assert!(s.period_start_ms <= s.period_end_ms, "{} > {}", s.period_start_ms, s.period_end_ms);
    assert_eq!(
        (s.period_start_ms, s.period_end_ms),
        (10_000_000 + 150_000 - 3_600_000, 10_000_000 + 149_000)
    );
    assert_eq!(moldops_shared::codec::check_record(&s.to_record()), Ok(()), "the ingest takes it");
}
