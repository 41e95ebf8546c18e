//! The data-quality steps on known data: the percentile fence, classical MDS, DBSCAN and the
//! reference's grid rule, weak-label agreement, KS / average precision, and the synthetic-data
//! gate (copies refused, a sample of the real distribution accepted).

use moldops_cloud::quality::dbscan::{self, GridConfig, NOISE};
use moldops_cloud::quality::gate::{self, GateConfig, GateInput};
use moldops_cloud::quality::mds::{self, MdsConfig};
use moldops_cloud::quality::outliers::{self, FenceConfig};
use moldops_cloud::quality::stats;
use moldops_cloud::quality::weak;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn gauss(rng: &mut ChaCha8Rng) -> f64 {
    let u1: f64 = rng.random_range(f64::EPSILON..1.0);
    let u2: f64 = rng.random();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

fn names(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("c{i}")).collect()
}

#[test]
fn percentile_matches_numpy_linear() {
    let v: Vec<f64> = (1..=10).map(f64::from).collect();
    // numpy.percentile(range(1, 11), [2.5, 50, 97.5]) = [1.225, 5.5, 9.775]
    assert!((outliers::percentile(&v, 2.5) - 1.225).abs() < 1e-12);
    assert!((outliers::percentile(&v, 50.0) - 5.5).abs() < 1e-12);
    assert!((outliers::percentile(&v, 97.5) - 9.775).abs() < 1e-12);
}

#[test]
fn fence_marks_glitches_and_nan_and_is_order_independent_by_default() {
    // Column 0: 0..99 plus a glitch; column 1: constant 5 with one NaN.
    let mut c0: Vec<f64> = (0..100).map(f64::from).collect();
    c0.push(4.294_967e8);
    let mut c1 = vec![5.0; 101];
    c1[3] = f64::NAN;
    let (mask, fences) = outliers::fence(&[c0.clone(), c1.clone()], &names(2), &FenceConfig::default());
    assert_eq!(mask.iter().filter(|&&m| m).count(), 2);
    assert!(mask[100] && mask[3]);
    // q_lo = 2.5, q_hi = 97.5 (0..=99 plus the glitch): the fence is [-140, 240].
    let f = &fences[0];
    assert!(f.low < 0.0 && f.high > 99.0 && f.high < 1000.0, "{f:?}");
    assert_eq!(fences[1].flagged, 1);
    // Swapping the columns gives the same rows by default.
    let (swapped, _) = outliers::fence(&[c1, c0], &names(2), &FenceConfig::default());
    assert_eq!(mask, swapped);
}

#[test]
fn sequential_fence_refits_on_the_rows_left() {
    // Column 0 flags row 0 (a glitch); in sequential mode column 1 is fitted without it, so
    // its fence gets narrower and row 1's moderately high value is flagged too.
    let n = 40;
    let mut c0 = vec![1.0; n];
    c0[0] = 1e9;
    let mut c1: Vec<f64> = (0..n).map(|i| (i % 4) as f64).collect();
    c1[0] = 1e6;
    c1[1] = 12.0;
    let cfg = FenceConfig { sequential: true, ..FenceConfig::default() };
    let (seq, _) = outliers::fence(&[c0.clone(), c1.clone()], &names(2), &cfg);
    let (all, _) = outliers::fence(&[c0, c1], &names(2), &FenceConfig::default());
    assert!(seq[0] && seq[1], "{seq:?}");
    assert!(all[0] && !all[1], "the simultaneous fence is wider here");
}

#[test]
fn classical_mds_reproduces_distances_of_planar_points_and_is_deterministic() {
    // Points on a tilted plane in 4-D: their pairwise distances are exactly 2-D.
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let pts: Vec<Vec<f64>> = (0..50)
        .map(|_| {
            let (a, b) = (gauss(&mut rng) * 3.0, gauss(&mut rng));
            vec![a + b, a - b, 0.5 * a, 2.0 * b + 1.0]
        })
        .collect();
    let e = mds::embed(&pts, 2, &MdsConfig::default(), 0).unwrap();
    assert!(!e.landmark);
    let d = |x: &[f64], y: &[f64]| x.iter().zip(y).map(|(p, q)| (p - q).powi(2)).sum::<f64>().sqrt();
    let mut worst: f64 = 0.0;
    for i in 0..pts.len() {
        for j in 0..pts.len() {
            worst = worst.max((d(&pts[i], &pts[j]) - d(&e.coords[i], &e.coords[j])).abs());
        }
    }
    assert!(worst < 1e-8, "largest distance error {worst}");
    assert!(e.eigenvalues[0] >= e.eigenvalues[1]);
    // Same input, same output, bit for bit; the largest entry of each axis is positive.
    let again = mds::embed(&pts, 2, &MdsConfig::default(), 99).unwrap();
    assert_eq!(e.coords, again.coords);
    for k in 0..2 {
        let big = e.coords.iter().map(|c| c[k]).max_by(|a, b| a.abs().total_cmp(&b.abs())).unwrap();
        assert!(big > 0.0);
    }
    // Landmark MDS on the same points also recovers the planar distances (exactly, for exact 2-D data).
    let cfg = MdsConfig { max_exact: 10, landmarks: 12 };
    let l = mds::embed(&pts, 2, &cfg, 5).unwrap();
    assert!(l.landmark);
    let mut worst_l: f64 = 0.0;
    for i in 0..pts.len() {
        for j in 0..pts.len() {
            worst_l = worst_l.max((d(&pts[i], &pts[j]) - d(&l.coords[i], &l.coords[j])).abs());
        }
    }
    assert!(worst_l < 1e-6, "landmark distance error {worst_l}");
    assert_eq!(l.coords, mds::embed(&pts, 2, &cfg, 5).unwrap().coords);
}

fn two_blobs_and_noise() -> Vec<[f64; 2]> {
    let mut pts = Vec::new();
    for i in 0..20 {
        let t = f64::from(i) * 0.05;
        pts.push([t, 0.1 * t]); // blob A near (0.5, 0.05)
        pts.push([20.0 + t, 20.0 - t]); // blob B near (20.5, 19.5)
    }
    pts.push([50.0, -50.0]);
    pts.push([-40.0, 40.0]);
    pts
}

#[test]
fn dbscan_finds_known_clusters_and_noise() {
    let pts = two_blobs_and_noise();
    let labels = dbscan::dbscan(&pts, 1.0, 3);
    assert_eq!(labels[0], 0);
    assert_eq!(labels[1], 1);
    assert!(labels.iter().step_by(2).take(20).all(|&l| l == 0));
    assert!(labels.iter().skip(1).step_by(2).take(20).all(|&l| l == 1));
    assert_eq!(&labels[40..], &[NOISE, NOISE]);
    // min_samples above a blob's size: everything is noise.
    assert!(dbscan::dbscan(&pts, 1.0, 21).iter().all(|&l| l == NOISE));
}

#[test]
fn grid_rule_takes_one_cluster_plus_the_most_noise() {
    // Two blobs: any labelling with both blobs has 3 labels (A, B, noise) and is refused;
    // only eps large enough to join them (≥ 28.3 > 9) would give one cluster. So nothing
    // qualifies and the rule returns None (all 0).
    assert!(dbscan::grid(&two_blobs_and_noise(), &GridConfig::default()).is_none());

    // One tight blob of 30 with a sparse halo: the rule picks the labelling with most noise.
    let mut pts: Vec<[f64; 2]> = (0..30).map(|i| [f64::from(i % 6) * 0.2, f64::from(i / 6) * 0.2]).collect();
    for k in 0..6 {
        let a = f64::from(k) * std::f64::consts::FRAC_PI_3;
        pts.push([0.5 + 6.0 * a.cos(), 0.4 + 6.0 * a.sin()]);
    }
    let choice = dbscan::grid(&pts, &GridConfig::default()).unwrap();
    assert_eq!(choice.noise, 6, "{choice:?}");
    assert!(choice.labels[..30].iter().all(|&l| l == 0));
    assert!(choice.labels[30..].iter().all(|&l| l == NOISE));
    // The first (eps, min_samples) reaching that noise count wins ties: eps 1, min_samples 2.
    assert_eq!((choice.eps, choice.min_samples), (1.0, 2));
}

#[test]
fn weak_labels_skip_short_runs_and_agreement_counts_right() {
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let mut rows = Vec::new();
    let mut runs = Vec::new();
    for i in 0..60 {
        rows.push(vec![gauss(&mut rng), gauss(&mut rng), gauss(&mut rng)]);
        runs.push(if i < 50 { "long" } else { "short" }.to_string());
    }
    let w = weak::label(&rows, &runs, &weak::WeakConfig::default(), 0).unwrap();
    assert!(w.labels[..50].iter().all(Option::is_some));
    assert!(w.labels[50..].iter().all(Option::is_none));
    let short = w.runs.iter().find(|r| r.run_id == "short").unwrap();
    assert_eq!((short.status.as_str(), short.shots), ("too_short", 10));

    let weak_l = [Some(1), Some(1), Some(0), Some(0), Some(1), None, Some(0)];
    let truth = [Some(1.0), Some(0.0), Some(1.0), Some(0.0), None, Some(1.0), Some(0.0)];
    let a = weak::agreement(&weak_l, &truth).unwrap();
    assert_eq!(a.rows, 5);
    assert_eq!((a.confusion.tp, a.confusion.fp, a.confusion.fn_, a.confusion.tn), (1, 1, 1, 2));
    assert!((a.precision - 0.5).abs() < 1e-12 && (a.recall - 0.5).abs() < 1e-12);
    assert!((a.accuracy - 0.6).abs() < 1e-12);
    assert!(weak::agreement(&[None], &[Some(1.0)]).is_none());
}

#[test]
fn ks_and_average_precision_match_scipy_and_sklearn() {
    // scipy.stats.ks_2samp([1,2,3,4], [3,4,5,6,7]).statistic = 0.6
    let ks = stats::ks_2samp(&[1.0, 2.0, 3.0, 4.0], &[3.0, 4.0, 5.0, 6.0, 7.0]);
    assert!((ks.statistic - 0.6).abs() < 1e-12);
    assert_eq!(stats::ks_2samp(&[1.0, 2.0], &[1.0, 2.0]).statistic, 0.0);
    // sklearn average_precision_score([0,0,1,1], [0.1,0.4,0.35,0.8]) = 0.8333…
    let ap = stats::average_precision(&[0.1, 0.4, 0.35, 0.8], &[false, false, true, true]);
    assert!((ap - 5.0 / 6.0).abs() < 1e-12, "{ap}");
}

/// Real rows: normal ~ N(0, 1)³ plus a correlated defect class ~ N(3, 0.5); labels true = defect.
fn real(n_norm: usize, n_def: usize, seed: u64) -> (Vec<Vec<f64>>, Vec<bool>) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut rows = Vec::new();
    let mut labels = Vec::new();
    for _ in 0..n_norm {
        rows.push(vec![gauss(&mut rng), gauss(&mut rng), gauss(&mut rng)]);
        labels.push(false);
    }
    for _ in 0..n_def {
        rows.push(defect(&mut rng));
        labels.push(true);
    }
    (rows, labels)
}

fn defect(rng: &mut ChaCha8Rng) -> Vec<f64> {
    let a = gauss(rng);
    vec![3.0 + 0.5 * a, 3.0 + 0.4 * a + 0.3 * gauss(rng), gauss(rng)]
}

#[test]
fn gate_refuses_copies_and_accepts_a_sample_of_the_real_distribution() {
    let (train, train_l) = real(150, 30, 10);
    let (hold, hold_l) = real(60, 12, 11);
    let cols = names(3);
    let input = |synthetic: &[Vec<f64>]| {
        gate::evaluate(
            &GateInput {
                train: &train,
                train_labels: &train_l,
                holdout: &hold,
                holdout_labels: &hold_l,
                synthetic,
                columns: &cols,
            },
            &GateConfig::default(),
        )
    };
    // Copies of real defect rows: the privacy check fails (and with it the gate), while the
    // distributions of course look right.
    let copies: Vec<Vec<f64>> =
        train.iter().zip(&train_l).filter(|(_, l)| **l).map(|(r, _)| r.clone()).collect();
    let r = input(&copies);
    assert!(!r.passed);
    assert_eq!(r.copies, copies.len());
    assert!(!r.checks[2].passed && r.checks[0].passed, "{:?}", r.checks);

    // Fresh draws from the defect distribution: every check passes.
    let mut rng = ChaCha8Rng::seed_from_u64(12);
    let good: Vec<Vec<f64>> = (0..60).map(|_| defect(&mut rng)).collect();
    let r = input(&good);
    assert!(r.passed, "{:#?}", r.checks);
    assert_eq!(r.copies, 0);

    // Rows from the wrong place (normal-looking "defects"): distributions fail.
    let bad: Vec<Vec<f64>> =
        (0..60).map(|_| vec![gauss(&mut rng), gauss(&mut rng), gauss(&mut rng)]).collect();
    let r = input(&bad);
    assert!(!r.passed && !r.checks[0].passed, "{:#?}", r.checks);
}
