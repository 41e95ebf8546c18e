//! The training loop: same seed → same weights and scores; training lowers the loss; early
//! stopping keeps the best epoch.

use super::*;
use crate::dense_ae::DenseAeConfig;
use crate::lstm_ae::LstmAeConfig;
use crate::score::{ScoreMode, score};
use rand::{Rng, SeedableRng};

fn windows(n: usize, seed: u64) -> Windows {
    let (w, f) = (4, 3);
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    // A smooth signal per window plus noise: learnable.
    let mut data = Vec::with_capacity(n * w * f);
    for _ in 0..n {
        let base: f32 = rng.random_range(-1.0..1.0);
        for t in 0..w {
            for j in 0..f {
                data.push(base * (j as f32 + 1.0) * 0.5 + 0.1 * t as f32 + rng.random_range(-0.05..0.05));
            }
        }
    }
    Windows::new(data, n, w, f).unwrap()
}

fn run_lstm(seed: u64) -> (Vec<u8>, Vec<f32>, Trained<crate::lstm_ae::LstmAe>) {
    let device = Device::flex();
    let cfg = TrainConfig { epochs: 3, batch_size: 8, seed, ..TrainConfig::default() };
    let model = LstmAeConfig {
        features: 3,
        encoder: vec![5, 2],
        predict_last: true,
        centre: false,
        centre_clip: 0.0,
    }
    .init(seed, &device)
    .unwrap();
    let t = fit(model, &windows(32, 1), &windows(8, 2), &cfg, &device, "determinism").unwrap();
    let norm = crate::data::Normalizer { mean: vec![0.0; 3], std: vec![1.0; 3] };
    let bytes = crate::onnx::export_lstm_ae(&t.model, &norm, 4, ScoreMode::Last).unwrap();
    let s = score(&t.model, &windows(8, 3), ScoreMode::Last, 4, &device).unwrap().score;
    (bytes, s, t)
}

#[test]
fn same_seed_same_weights_and_scores() {
    let (a_bytes, a_scores, a) = run_lstm(7);
    let (b_bytes, b_scores, _) = run_lstm(7);
    // The exported graph carries every weight: equal bytes mean equal weights.
    assert_eq!(a_bytes, b_bytes);
    assert_eq!(a_scores, b_scores);
    assert_eq!(a.history.len(), 3);
    let (c_bytes, _, _) = run_lstm(8);
    assert_ne!(a_bytes, c_bytes, "another seed gives another model");
}

#[test]
fn training_lowers_the_validation_loss_and_keeps_the_best_epoch() {
    let device = Device::flex();
    let cfg = TrainConfig { epochs: 25, batch_size: 8, learning_rate: 1e-2, patience: 3, seed: 1 };
    let model = DenseAeConfig::new(3).init(1, &device).unwrap();
    let val = windows(16, 5);
    let before = loss(&model, &val, 64, &device).unwrap();
    let t = fit(model, &windows(64, 4), &val, &cfg, &device, "dense").unwrap();
    let after = loss(&t.model, &val, 64, &device).unwrap();
    assert!(after < before * 0.5, "loss {before} → {after}");
    let best = t.history.iter().map(|e| e.val_loss).fold(f64::INFINITY, f64::min);
    assert!((t.history[t.best_epoch - 1].val_loss - best).abs() < 1e-12);
    assert!((after - best).abs() < 1e-6, "the kept model is the best epoch's ({after} vs {best})");
    assert!(t.stopped_early || t.history.len() == 25);
}

#[test]
fn fit_centred_scales_by_the_spread_within_windows_not_between_them() {
    // Two windows of 3 shots, 1 feature: offsets 0 and 100, within-window values ±1 around
    // the context mean.
    let data = vec![-1.0, 1.0, 0.0, 99.0, 101.0, 100.0];
    let w = Windows::new(data, 2, 3, 1).unwrap();
    let centred = crate::data::Normalizer::fit_centred(&w);
    let plain = crate::data::Normalizer::fit(&w.data, 1);
    // Deviations from the mean of the first 2 shots: -1, 1, 0 in both windows.
    assert!((centred.std[0] - (2.0f32 / 3.0).sqrt()).abs() < 1e-5, "{:?}", centred.std);
    assert!(plain.std[0] > 40.0);
    assert!((centred.mean[0] - plain.mean[0]).abs() < 1e-4);
}
