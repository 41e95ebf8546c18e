use super::*;

fn toy() -> (Vec<Vec<f64>>, Vec<usize>) {
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let mut rows = Vec::new();
    let mut labels = Vec::new();
    for i in 0..60 {
        let l = usize::from(i % 5 == 0);
        let base = if l == 1 { 30.0 } else { 10.0 };
        rows.push(vec![
            base + normal(&mut rng),
            100.0 + 5.0 * normal(&mut rng),
            -2.0 + 0.1 * normal(&mut rng),
        ]);
        labels.push(l);
    }
    (rows, labels)
}

fn small(seed: u64) -> GanConfig {
    GanConfig {
        latent: 8,
        generator_hidden: vec![16, 16],
        discriminator_hidden: vec![16, 16],
        steps: 30,
        seed,
        ..GanConfig::default()
    }
}

#[test]
fn seeded_training_is_deterministic_and_output_stays_in_range() {
    let (rows, labels) = toy();
    let device = Device::flex();
    let (a, log_a) = train(&rows, &labels, &small(3), &device, &mut |_, _| {}).unwrap();
    let (b, log_b) = train(&rows, &labels, &small(3), &device, &mut |_, _| {}).unwrap();
    assert_eq!(log_a, log_b);
    let ga = a.generate(40, 1, 11).unwrap();
    assert_eq!(ga, b.generate(40, 1, 11).unwrap());
    assert_eq!(ga.len(), 40);
    let (c, _) = train(&rows, &labels, &small(4), &device, &mut |_, _| {}).unwrap();
    assert_ne!(ga, c.generate(40, 1, 11).unwrap(), "another seed must give another generator");

    let scaled = a.generate_scaled(40, 1, 12).unwrap();
    assert!(scaled.iter().flatten().all(|v| (-1.0..=1.0).contains(v)));
    // In original units every value lies within the training rows' range per column.
    for j in 0..3 {
        let lo = rows.iter().map(|r| r[j]).fold(f64::INFINITY, f64::min);
        let hi = rows.iter().map(|r| r[j]).fold(f64::NEG_INFINITY, f64::max);
        assert!(ga.iter().all(|r| r[j] >= lo - 1e-6 && r[j] <= hi + 1e-6), "column {j} out of range");
    }
}

#[test]
fn minmax_round_trips_and_maps_extremes_to_unit_bounds() {
    let rows = vec![vec![1.0, 5.0], vec![3.0, 5.0], vec![2.0, 5.0]];
    let s = MinMax::fit(&rows);
    assert_eq!(s.transform(&[1.0, 5.0]), vec![-1.0, 0.0]);
    assert_eq!(s.transform(&[3.0, 5.0]), vec![1.0, 0.0]);
    assert_eq!(s.inverse(&s.transform(&[2.5, 5.0])), vec![2.5, 5.0]);
}

#[test]
fn one_class_is_refused() {
    let rows = vec![vec![1.0]; 5];
    let err = train(&rows, &[0; 5], &small(1), &Device::flex(), &mut |_, _| {}).unwrap_err();
    assert!(err.to_string().contains("both classes"), "{err}");
}
