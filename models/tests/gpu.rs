//! The GPU code path (`--features wgpu`): the same network trained from the same seed on the
//! CPU and on a GPU gives scores that agree, and the GAN trains on the GPU.
//!
//! Needs a Vulkan device. CI has no GPU: it installs Mesa's software Vulkan driver (lavapipe)
//! and sets `MOLDOPS_GPU_SOFTWARE=1`, so the GPU backend's kernels really run, on the CPU. On a
//! machine with a GPU the same test runs on it. Without any Vulkan device it fails, saying so.
#![cfg(feature = "wgpu")]

use burn::module::Module;
use moldops_models::data::Windows;
use moldops_models::device::{self, DeviceRequest, TrainingDevice};
use moldops_models::gan::{self, GanConfig};
use moldops_models::lstm_ae::LstmAeConfig;
use moldops_models::score::{ScoreMode, score};
use moldops_models::train::{TrainConfig, fit};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::sync::OnceLock;

/// Largest score difference between CPU- and GPU-trained models, relative to the CPU score
/// (floored at 1e-3): float sums run in another order on the GPU, and Adam carries the
/// differences from step to step.
const TRAINED_TOLERANCE: f32 = 0.05;
/// The same weights scored on both devices.
const INFERENCE_TOLERANCE: f32 = 1e-4;

/// The GPU, resolved (and checked) once for the tests of this file.
fn gpu() -> TrainingDevice {
    static GPU: OnceLock<Result<TrainingDevice, String>> = OnceLock::new();
    match GPU.get_or_init(|| device::resolve(DeviceRequest::Gpu(0)).map_err(|e| e.to_string())) {
        Ok(d) => d.clone(),
        Err(e) => panic!("{e} (CI sets {}=1 with Mesa's lavapipe installed)", device::SOFTWARE_GPU_ENV),
    }
}

/// `n` windows of a slowly varying 4-feature process with noise.
fn windows(n: usize, seed: u64) -> Windows {
    let (w, f) = (8, 4);
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut data = Vec::with_capacity(n * w * f);
    for i in 0..n {
        for t in 0..w {
            let phase = (i + t) as f32 * 0.07;
            for k in 0..f {
                data.push((phase + k as f32).sin() + rng.random_range(-0.1f32..0.1));
            }
        }
    }
    Windows::new(data, n, w, f).expect("windows")
}

fn max_relative_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| (x - y).abs() / x.abs().max(1e-3)).fold(0.0, f32::max)
}

#[test]
fn the_same_seed_trains_models_that_agree_on_cpu_and_gpu() {
    let gpu = gpu();
    assert!(gpu.gpu && gpu.description.starts_with("gpu:0 "), "{}", gpu.description);
    gpu.check().expect("the GPU computes");
    let cpu = TrainingDevice::cpu();
    let (train, val) = (windows(96, 1), windows(48, 2));
    let net = LstmAeConfig { encoder: vec![8, 3], ..LstmAeConfig::new(4) };
    let cfg = TrainConfig { epochs: 3, batch_size: 32, patience: 3, ..TrainConfig::default() };
    let mut scores = Vec::new();
    for d in [&cpu, &gpu] {
        let model = net.init(7, &d.device).expect("init");
        let trained = fit(model, &train, &val, &cfg, &d.device, &d.description).expect("fit");
        assert_eq!(trained.history.len(), 3);
        scores.push((
            trained.history,
            score(&trained.model, &val, ScoreMode::Last, 64, &d.device).expect("score"),
        ));
    }
    let ((cpu_log, cpu_scores), (gpu_log, gpu_scores)) = (&scores[0], &scores[1]);
    let diff = max_relative_diff(&cpu_scores.score, &gpu_scores.score);
    println!("CPU vs GPU ({}): validation scores differ by at most {diff:.2e} (relative)", gpu.description);
    assert!(diff <= TRAINED_TOLERANCE, "scores differ by {diff} > {TRAINED_TOLERANCE}");
    for (c, g) in cpu_log.iter().zip(gpu_log) {
        assert!((c.train_loss - g.train_loss).abs() <= 0.05 * c.train_loss.abs().max(1e-3), "{c:?} vs {g:?}");
    }

    // The same weights give the same scores on either device.
    let model = net.init(7, &cpu.device).expect("init");
    let on_cpu = score(&model, &val, ScoreMode::Last, 64, &cpu.device).expect("score");
    let on_gpu = score(&model.to_device(&gpu.device), &val, ScoreMode::Last, 64, &gpu.device).expect("score");
    let diff = max_relative_diff(&on_cpu.score, &on_gpu.score);
    assert!(diff <= INFERENCE_TOLERANCE, "inference differs by {diff}");
}

#[test]
fn the_gan_trains_and_generates_on_the_gpu() {
    let gpu = gpu();
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let rows: Vec<Vec<f64>> =
        (0..64).map(|_| (0..5).map(|_| rng.random_range(0.0..10.0)).collect()).collect();
    let labels: Vec<usize> = (0..64).map(|i| usize::from(i % 4 == 0)).collect();
    let cfg = GanConfig {
        steps: 6,
        generator_hidden: vec![16],
        discriminator_hidden: vec![16],
        latent: 4,
        ..GanConfig::default()
    };
    let (model, log) = gan::train(&rows, &labels, &cfg, &gpu.device, &mut |_, _| {}).expect("GAN on the GPU");
    assert_eq!(log.steps, 6);
    assert!(log.losses.iter().all(|(_, d, g)| d.is_finite() && g.is_finite()), "{log:?}");
    let synthetic = model.generate(10, 1, 9).expect("generate");
    assert_eq!(synthetic.len(), 10);
    assert!(synthetic.iter().flatten().all(|v| v.is_finite()), "{synthetic:?}");
}
