//! Training on the GPU against the CPU and PyTorch-CUDA (issue 16's measurement), run by
//! `bench/gpu` on a machine with a GPU: `cargo bench -p moldops-models --features wgpu --bench
//! gpu_epoch`.
//!
//! In alternating rounds on the same windows: one LSTM-AE training epoch (the network `train`
//! ships, [`LstmAeConfig::new`]) on burn's CPU backend, on the GPU through burn's wgpu backend,
//! and in PyTorch on CUDA (`bench/train_torch.py --device cuda`; skipped, and said so, without
//! torch or CUDA); GAN training steps on the CPU and the GPU (augment's default network); and
//! the agreement of CPU- and GPU-trained models from one seed on held-out windows. Sizes:
//! `BENCH_WINDOWS` (default 65 536, a plant-sized key) windows of 16 shots × 23 features,
//! batches of `BENCH_BATCH` (256), `BENCH_ROUNDS` (3), `BENCH_GAN_STEPS` (200). Python:
//! `MOLDOPS_TORCH_PYTHON`, else `python3`. Prints a Markdown table for `docs/benchmarks.md`
//! and `BENCH-RESULT` JSON lines.

use moldops_models::data::Windows;
use moldops_models::device::{self, DeviceRequest, TrainingDevice};
use moldops_models::gan::{self, GanConfig};
use moldops_models::lstm_ae::LstmAeConfig;
use moldops_models::score::{ScoreMode, score};
use moldops_models::train::{TrainConfig, fit};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::path::{Path, PathBuf};
use std::time::Instant;
use torch::{TorchInput, TorchRound};

mod torch;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

fn random_windows(n: usize, w: usize, f: usize, seed: u64) -> anyhow::Result<Windows> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    Windows::new((0..n * w * f).map(|_| rng.random_range(-1.0f32..1.0)).collect(), n, w, f)
}

/// Seconds of one epoch over `windows` on `d`, from a model seeded with 42.
fn burn_epoch(d: &TrainingDevice, windows: &Windows, batch: usize) -> anyhow::Result<f64> {
    let cfg = TrainConfig { epochs: 1, batch_size: batch, patience: 1, ..TrainConfig::default() };
    let net = LstmAeConfig::new(windows.f);
    let empty = Windows::empty(windows.w, windows.f);
    let model = net.init(42, &d.device)?;
    let start = Instant::now();
    fit(model, windows, &empty, &cfg, &d.device, &d.description)?;
    Ok(start.elapsed().as_secs_f64())
}

/// Seconds of `steps` GAN steps on `d` (augment's default network and batch).
fn gan_steps(d: &TrainingDevice, steps: usize) -> anyhow::Result<f64> {
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let rows: Vec<Vec<f64>> =
        (0..2000).map(|_| (0..23).map(|_| rng.random_range(0.0..1.0)).collect()).collect();
    let labels: Vec<usize> = (0..2000).map(|i| usize::from(i % 10 == 0)).collect();
    let cfg = GanConfig { steps, ..GanConfig::default() };
    let start = Instant::now();
    gan::train(&rows, &labels, &cfg, &d.device, &mut |_, _| {})?;
    Ok(start.elapsed().as_secs_f64())
}

/// Largest relative difference of validation scores between CPU- and GPU-trained models.
fn agreement(cpu: &TrainingDevice, gpu: &TrainingDevice) -> anyhow::Result<f32> {
    let (train, val) = (random_windows(2048, 16, 23, 1)?, random_windows(512, 16, 23, 2)?);
    let cfg = TrainConfig { epochs: 3, batch_size: 32, patience: 3, ..TrainConfig::default() };
    let net = LstmAeConfig::new(23);
    let mut scores = Vec::new();
    for d in [cpu, gpu] {
        let m = fit(net.init(7, &d.device)?, &train, &val, &cfg, &d.device, &d.description)?.model;
        scores.push(score(&m, &val, ScoreMode::LastSquared, 256, &d.device)?.score);
    }
    Ok(scores[0].iter().zip(&scores[1]).map(|(a, b)| (a - b).abs() / a.abs().max(1e-3)).fold(0.0, f32::max))
}

/// One PyTorch epoch, or why it did not run.
fn torch_epoch(python: &Path, input: &TorchInput, batch: usize) -> Result<TorchRound, String> {
    let out = input
        .command(python)
        .args(["--device", "cuda", "--batch-size", &batch.to_string()])
        .output()
        .map_err(|e| format!("{}: {e}", python.display()))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        return Err(err.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("failed").trim().to_string());
    }
    serde_json::from_slice(&out.stdout).map_err(|e| format!("reading its report: {e}"))
}

fn main() -> anyhow::Result<()> {
    let (n, batch, rounds) = (
        env_usize("BENCH_WINDOWS", 65_536),
        env_usize("BENCH_BATCH", 256),
        env_usize("BENCH_ROUNDS", 3).max(1),
    );
    let gan_n = env_usize("BENCH_GAN_STEPS", 200);
    let (w, f) = (16, 23);
    let cpu = TrainingDevice::cpu();
    let gpu = device::resolve(DeviceRequest::Gpu(0))?;
    gpu.check()?;
    println!("GPU: {}", gpu.description);
    let windows = random_windows(n, w, f, 42)?;
    let net = LstmAeConfig::new(f);
    let input = TorchInput::write(&windows, &net)?;
    let python: PathBuf =
        std::env::var_os("MOLDOPS_TORCH_PYTHON").map_or_else(|| PathBuf::from("python3"), PathBuf::from);

    burn_epoch(&gpu, &random_windows(batch * 4, w, f, 3)?, batch)?; // compiles the GPU kernels
    let (mut lstm_cpu, mut lstm_gpu, mut lstm_torch) = (Vec::new(), Vec::new(), Vec::new());
    let (mut gan_cpu, mut gan_gpu) = (Vec::new(), Vec::new());
    let mut torch_name = String::new();
    for round in 1..=rounds {
        lstm_cpu.push(burn_epoch(&cpu, &windows, batch)?);
        lstm_gpu.push(burn_epoch(&gpu, &windows, batch)?);
        match torch_epoch(&python, &input, batch) {
            Ok(r) => {
                // Equal work, or no figure: PyTorch must have run our network.
                r.same_network(&net, w)?;
                lstm_torch.push(r.seconds_per_epoch);
                torch_name = format!("PyTorch {} on {}", r.torch, r.device_name);
            }
            Err(why) => torch_name = format!("PyTorch-CUDA not run: {why}"),
        }
        gan_cpu.push(gan_steps(&cpu, gan_n)?);
        gan_gpu.push(gan_steps(&gpu, gan_n)?);
        println!(
            "round {round}: LSTM-AE epoch cpu {:.2} s, gpu {:.2} s, torch {:?}; GAN {gan_n} steps cpu {:.2} s, gpu {:.2} s",
            lstm_cpu[round - 1],
            lstm_gpu[round - 1],
            lstm_torch.last(),
            gan_cpu[round - 1],
            gan_gpu[round - 1]
        );
    }
    let diff = agreement(&cpu, &gpu)?;
    let torch_cell = if lstm_torch.is_empty() {
        torch_name.clone()
    } else {
        format!("{:.2} s ({torch_name})", median(&lstm_torch))
    };
    println!(
        "\n| measurement ({n} windows of {w}×{f}, batches of {batch}; medians of {rounds}) | CPU (burn flex) | GPU (burn wgpu) | PyTorch-CUDA |"
    );
    println!("|---|---|---|---|");
    println!("| LSTM-AE epoch | {:.2} s | {:.2} s | {torch_cell} |", median(&lstm_cpu), median(&lstm_gpu));
    println!("| GAN, {gan_n} steps of 32 rows | {:.2} s | {:.2} s | — |", median(&gan_cpu), median(&gan_gpu));
    println!(
        "| CPU vs GPU training, same seed: largest relative score difference on 512 held-out windows | {diff:.2e} | | |"
    );
    println!("GPU: {}", gpu.description);
    let result = serde_json::json!({"id": "gpu-epoch", "gpu": gpu.description, "windows": n, "batch": batch,
        "lstm_cpu_s": lstm_cpu, "lstm_gpu_s": lstm_gpu, "lstm_torch_cuda_s": lstm_torch, "torch": torch_name,
        "gan_steps": gan_n, "gan_cpu_s": gan_cpu, "gan_gpu_s": gan_gpu, "cpu_gpu_max_relative_diff": diff});
    println!("BENCH-RESULT {result}");
    Ok(())
}
