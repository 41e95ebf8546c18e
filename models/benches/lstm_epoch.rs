//! One LSTM-AE training epoch on the CPU (burn, flex) against PyTorch's CPU implementation of
//! the same network on the same windows (`bench/train_torch.py`), in rounds that alternate burn,
//! PyTorch on one thread and PyTorch on its default threads.
//!
//! `cargo bench -p moldops-models --bench lstm_epoch` (release profile), run by `bench/run`.
//! The network is the one `train` ships ([`LstmAeConfig::new`]: encoder 16-4 over the first
//! W−1 shots, decoder 4-16 over W, dense output, windows centred on their context); PyTorch's
//! copy reports its layers and steps, and the bench fails unless they are ours. Python with
//! torch: `MOLDOPS_TORCH_PYTHON`, else `MOLDOPS_BENCH_PYTHON`, else `python3` (without torch
//! the baseline is skipped and said so). Sizes: `BENCH_WINDOWS` (default 2048) windows of 16
//! shots × 23 features, batches of 32; `BENCH_ROUNDS` (default 3). `BENCH_EXPORT_ONNX=PATH`
//! writes the trained network as the edge runs it (for the inference bench). Prints
//! `BENCH-RESULT` lines for `bench/run`.

use moldops_models::data::{Normalizer, Windows};
use moldops_models::lstm_ae::LstmAeConfig;
use moldops_models::score::ScoreMode;
use moldops_models::train::{TrainConfig, fit};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::path::{Path, PathBuf};
use std::time::Instant;
use torch::{TorchInput, TorchRound, ours};

mod torch;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn torch_round(python: &Path, input: &TorchInput, threads: usize) -> anyhow::Result<TorchRound> {
    let out = input.command(python).args(["--threads", &threads.to_string()]).output()?;
    anyhow::ensure!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    Ok(serde_json::from_slice(&out.stdout)?)
}

fn main() -> anyhow::Result<()> {
    let n = env_usize("BENCH_WINDOWS", 2048);
    let rounds = env_usize("BENCH_ROUNDS", 3).max(1);
    let (w, f) = (16, 23);
    let mut rng = ChaCha8Rng::seed_from_u64(42);
    let data: Vec<f32> = (0..n * w * f).map(|_| rng.random_range(-1.0f32..1.0)).collect();
    let windows = Windows::new(data, n, w, f)?;
    let device = moldops_models::device::TrainingDevice::cpu().device;
    let empty = Windows::empty(w, f);
    let cfg = TrainConfig { epochs: 1, batch_size: 32, patience: 1, ..TrainConfig::default() };
    let net = LstmAeConfig::new(f);
    let mut model = fit(net.init(42, &device)?, &windows, &empty, &cfg, &device, "warm-up")?.model;

    let input = TorchInput::write(&windows, &net)?;
    let python: PathBuf = std::env::var_os("MOLDOPS_TORCH_PYTHON")
        .or_else(|| std::env::var_os("MOLDOPS_BENCH_PYTHON"))
        .map_or_else(|| PathBuf::from("python3"), PathBuf::from);
    let mut burn_s = Vec::new();
    let mut torch: [Vec<TorchRound>; 2] = Default::default();
    let mut skipped = None;
    for round in 1..=rounds {
        let start = Instant::now();
        let t = fit(model, &windows, &empty, &cfg, &device, "bench")?;
        burn_s.push(start.elapsed().as_secs_f64());
        model = t.model;
        println!(
            "round {round} burn (flex CPU): {:.3} s per epoch (loss {:.4})",
            burn_s[round - 1],
            t.history[0].train_loss
        );
        if skipped.is_some() {
            continue;
        }
        for (k, threads) in [1, 0].into_iter().enumerate() {
            match torch_round(&python, &input, threads) {
                Ok(r) => {
                    println!(
                        "round {round} PyTorch {} thread(s): {:.3} s per epoch",
                        r.threads, r.seconds_per_epoch
                    );
                    torch[k].push(r);
                }
                Err(e) => {
                    println!("PyTorch baseline not run ({}): {e:#}", python.display());
                    // The last line of Python's traceback says why (a table cell holds one line).
                    let why = format!("{e:#}");
                    skipped = why.lines().rev().find(|l| !l.trim().is_empty()).map(|l| l.trim().to_string());
                    break;
                }
            }
        }
    }
    if let Ok(path) = std::env::var("BENCH_EXPORT_ONNX") {
        let identity = Normalizer { mean: vec![0.0; f], std: vec![1.0; f] };
        let onnx = moldops_models::onnx::export_lstm_ae(&model, &identity, w, ScoreMode::default())?;
        std::fs::write(&path, onnx)?;
        println!("wrote the trained network to {path}");
    }

    let (layers, output, enc, dec) = ours(&net, w);
    let title = format!("LSTM-AE training epoch, {n} windows of {w}×{f}, batches of 32 (burn flex CPU)");
    let target = serde_json::json!({"text": "≤ 1.5× PyTorch's time", "speedup_at_least": 1.0 / 1.5});
    if torch.iter().all(Vec::is_empty) {
        let result = serde_json::json!({"id": "lstm-epoch", "title": title, "unit": "s", "better": "lower",
            "ours": burn_s, "baseline_name": format!("PyTorch: not run ({})", skipped.unwrap_or_default()),
            "target": target});
        println!("BENCH-RESULT {result}");
        return Ok(());
    }
    for (k, label) in ["1 thread", "default threads"].into_iter().enumerate() {
        let runs = &torch[k];
        let Some(first) = runs.first() else { continue };
        for r in runs {
            r.same_network(&net, w)?;
        }
        let result = serde_json::json!({
            "id": format!("lstm-epoch-torch-{}", if k == 0 { "1thread" } else { "default" }),
            "title": title,
            "unit": "s",
            "better": "lower",
            "ours": burn_s,
            "baseline": runs.iter().map(|r| r.seconds_per_epoch).collect::<Vec<_>>(),
            "baseline_name": format!("PyTorch {} CPU, {label} ({})", first.torch, first.threads),
            "checked": format!("same network: LSTM layers {layers:?}, dense {output:?}, encoder {enc} steps, decoder {dec}, centred windows"),
            "target": target,
        });
        println!("BENCH-RESULT {result}");
    }
    Ok(())
}
