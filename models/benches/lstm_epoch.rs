//! One LSTM-AE training epoch on the CPU (burn, flex) against PyTorch's CPU implementation of
//! the same architecture on the same windows (`bench/train_torch.py`), as a ratio in one run.
//!
//! `cargo bench -p moldops-models --bench lstm_epoch` (release profile). Python with torch:
//! `MOLDOPS_TORCH_PYTHON`, else `~/.cache/torch-venv/bin/python`. Sizes: `BENCH_WINDOWS`
//! (default 2048) windows of 16 shots × 23 features, batches of 32, one warm-up epoch each;
//! `BENCH_TORCH_THREADS` sets torch's thread count (default: torch's own choice).

use moldops_models::data::Windows;
use moldops_models::lstm_ae::LstmAeConfig;
use moldops_models::train::{TrainConfig, fit};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::time::Instant;

fn main() -> anyhow::Result<()> {
    let n: usize = std::env::var("BENCH_WINDOWS").ok().and_then(|v| v.parse().ok()).unwrap_or(2048);
    let (w, f) = (16, 23);
    let mut rng = ChaCha8Rng::seed_from_u64(42);
    let data: Vec<f32> = (0..n * w * f).map(|_| rng.random_range(-1.0f32..1.0)).collect();
    let windows = Windows::new(data, n, w, f)?;
    let device = moldops_models::device::device("cpu")?;
    let empty = Windows::empty(w, f);
    let cfg = TrainConfig { epochs: 1, batch_size: 32, patience: 1, ..TrainConfig::default() };
    // The plain network, as bench/train_torch.py builds it (no window centring).
    let model = LstmAeConfig { centre: false, centre_clip: 0.0, ..LstmAeConfig::new(f) }.init(42, &device)?;
    let warm = fit(model, &windows, &empty, &cfg, &device, "warm-up")?;
    let start = Instant::now();
    let t = fit(warm.model, &windows, &empty, &cfg, &device, "bench")?;
    let burn_s = start.elapsed().as_secs_f64();
    println!(
        "burn (flex CPU): {burn_s:.3} s per epoch ({n} windows of {w}×{f}, loss {:.4})",
        t.history[0].train_loss
    );

    let dir = std::env::temp_dir().join(format!("moldops-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let raw: Vec<u8> = windows.data.iter().flat_map(|v| v.to_le_bytes()).collect();
    std::fs::write(dir.join("windows.f32"), raw)?;
    std::fs::write(dir.join("shape.json"), serde_json::json!({"n": n, "w": w, "f": f}).to_string())?;
    let python =
        std::env::var_os("MOLDOPS_TORCH_PYTHON").map(std::path::PathBuf::from).unwrap_or_else(|| {
            std::path::PathBuf::from(std::env::var_os("HOME").unwrap_or_default())
                .join(".cache/torch-venv/bin/python")
        });
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../bench/train_torch.py");
    let out = std::process::Command::new(&python)
        .arg(&script)
        .arg("--data")
        .arg(dir.join("windows.f32"))
        .arg("--shape")
        .arg(dir.join("shape.json"))
        .arg("--threads")
        .arg(std::env::var("BENCH_TORCH_THREADS").unwrap_or_else(|_| "0".into()))
        .output();
    let _ = std::fs::remove_dir_all(&dir);
    match out {
        Ok(o) if o.status.success() => {
            let v: serde_json::Value = serde_json::from_slice(&o.stdout)?;
            let torch_s = v["seconds_per_epoch"].as_f64().unwrap_or(f64::NAN);
            println!(
                "pytorch (CPU, {} threads, torch {}): {torch_s:.3} s per epoch",
                v["threads"], v["torch"]
            );
            println!("ratio burn / pytorch: {:.2}× (target ≤ 1.5×)", burn_s / torch_s);
        }
        Ok(o) => println!("pytorch baseline failed: {}", String::from_utf8_lossy(&o.stderr)),
        Err(e) => println!("pytorch baseline not run ({}: {e}); set MOLDOPS_TORCH_PYTHON", python.display()),
    }
    Ok(())
}
