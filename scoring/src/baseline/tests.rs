use super::*;

/// Deterministic, roughly normal noise (sum of 12 uniforms − 6).
struct Noise(u64);

impl Noise {
    fn next(&mut self) -> f64 {
        let mut sum = 0.0;
        for _ in 0..12 {
            self.0 = self.0.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
            sum += (self.0 >> 11) as f64 / (1u64 << 53) as f64;
        }
        sum - 6.0
    }
}

fn shot(noise: &mut Noise, cycle_offset: f64) -> Vec<(String, f64)> {
    vec![
        ("Cycle_Time".to_string(), 60.0 + 0.12 * noise.next() + cycle_offset),
        ("Cushion".to_string(), 23.0 + 0.3 * noise.next()),
        ("Setpoint".to_string(), 220.0),
    ]
}

#[test]
fn learning_never_alarms_even_on_wild_shots_then_the_limits_catch_an_outlier() {
    let mut noise = Noise(7);
    let mut b = Baseline::new(50);
    for i in 1..=50 {
        // Every tenth learning shot is wild (a start-up shot).
        let offset = if i % 10 == 0 { 30.0 } else { 0.0 };
        let j = b.observe(i, &shot(&mut noise, offset), 4.5);
        assert!(j.learning && !j.alarm, "shot {i} is a learning shot: {j:?}");
        assert!(j.score.is_finite());
        assert_eq!(j.checkpoint, i == 25 || i == 50, "shot {i}");
    }
    assert!(!b.is_learning(), "the 50th shot ends learning");
    assert!(b.samples.is_empty(), "samples are dropped once the limits are set");
    let limits = b.limits.clone().expect("limits");
    let cycle = limits["Cycle_Time"];
    assert!((cycle.median - 60.0).abs() < 0.1, "{cycle:?}: robust to the wild shots");
    assert!(cycle.spread < 0.5, "{cycle:?}: the wild shots do not widen it much");
    // Normal shots pass, a shifted one alarms, with its feature first.
    let quiet: Vec<bool> = (0..200).map(|i| b.observe(100 + i, &shot(&mut noise, 0.0), 4.5).alarm).collect();
    assert!(quiet.iter().filter(|a| **a).count() <= 2, "normal shots stay quiet");
    let j = b.observe(1_000, &shot(&mut noise, 3.0), 4.5);
    assert!(j.alarm && !j.learning, "{j:?}");
    assert_eq!(j.contributions[0].0, "Cycle_Time");
    assert_eq!(j.missing, 0);
    // A shot lacking a feature is judged on the others and says so.
    let partial = [("Cushion".to_string(), 23.0)];
    let j = b.observe(1_001, &partial, 4.5);
    assert_eq!((j.missing, j.alarm), (2, false));
}

#[test]
fn a_feature_that_never_varied_alarms_on_a_change_and_discrete_ones_on_big_jumps_only() {
    let mut b = Baseline::new(100);
    for i in 0..100 {
        // 96 % of the shots read 5, the others 4 or 6.
        let discrete = match i % 50 {
            0 => 4.0,
            25 => 6.0,
            _ => 5.0,
        };
        b.observe(i, &[("constant".into(), 220.0), ("discrete".into(), discrete)], 4.5);
    }
    let j = |b: &mut Baseline, c: f64, d: f64| {
        b.observe(200, &[("constant".into(), c), ("discrete".into(), d)], 4.5).alarm
    };
    assert!(!j(&mut b, 220.0, 5.0));
    assert!(!j(&mut b, 220.0, 6.0), "a value seen while learning is no alarm");
    assert!(j(&mut b, 220.0, 8.0), "three steps off is");
    assert!(j(&mut b, 221.0, 5.0), "a feature that never varied alarms on any change");
}

#[test]
fn a_baseline_survives_its_bytes_and_a_corrupt_copy_is_refused() {
    let mut noise = Noise(1);
    let mut b = Baseline::new(20);
    for i in 0..10 {
        b.observe(i, &shot(&mut noise, 0.0), 4.5);
    }
    let bytes = b.to_bytes();
    assert_eq!(Baseline::from_bytes(&bytes).expect("round trip"), b);
    assert!(matches!(Baseline::from_bytes(&bytes[..bytes.len() / 2]), Err(BadBaseline::Parse(_))));
    let mut inconsistent = b.clone();
    inconsistent.shots = 30; // learning should have ended
    assert!(matches!(Baseline::from_bytes(&inconsistent.to_bytes()), Err(BadBaseline::Inconsistent(_))));
    let mut future = b.clone();
    future.format = FORMAT + 1;
    assert!(Baseline::from_bytes(&future.to_bytes()).is_err());
    for i in 10..20 {
        b.observe(i, &shot(&mut noise, 0.0), 4.5);
    }
    let mut bad_limit = b.clone();
    if let Some(l) = bad_limit.limits.as_mut().and_then(|l| l.get_mut("Cushion")) {
        l.spread = 0.0;
    }
    assert!(Baseline::from_bytes(&bad_limit.to_bytes()).is_err());
    assert_eq!(Baseline::from_bytes(&b.to_bytes()).expect("watching"), b);
}

#[test]
fn a_baseline_tracks_a_bounded_number_of_features() {
    let mut b = Baseline::new(2);
    let many: Vec<(String, f64)> = (0..MAX_FEATURES + 50).map(|i| (format!("f{i:04}"), i as f64)).collect();
    b.observe(0, &many, 4.5);
    assert_eq!(b.samples.len(), MAX_FEATURES);
    b.observe(1, &many, 4.5);
    assert_eq!(b.limits.as_ref().map(BTreeMap::len), Some(MAX_FEATURES));
}

#[test]
fn settings_are_checked() {
    assert!(ColdStart::default().problems().is_empty());
    let bad = ColdStart { learning_shots: 0, z_limit: f64::NAN, max_keys: 0, ..ColdStart::default() };
    assert_eq!(bad.problems().len(), 3, "{:?}", bad.problems());
    let parsed: ColdStart = serde_json::from_str(r#"{"learning_shots": 50}"#).expect("defaults fill in");
    assert_eq!((parsed.learning_shots, parsed.z_limit, parsed.max_keys), (50, 4.5, 256));
}
