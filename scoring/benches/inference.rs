//! Inference benchmark: per-shot inference latency (one window `[1, W, F]` per call, as the
//! edge scores) with the scoring crate's tract backend (the edge's), its ort backend (ONNX Runtime through
//! `load-dynamic`, library from `ORT_DYLIB_PATH`) and onnxruntime from Python
//! (`bench/infer_onnxruntime.py`) as the reference — the same graph, in one run.
//!
//! Usage: `cargo bench -p moldops-scoring --features ort --bench inference -- [--model M.onnx
//! --window W --features F] [--iterations N]` (`--profile dev` for a quick run); the Python
//! interpreter is `$MOLDOPS_PYTHON` (default `python3`), with onnxruntime installed.
//! Without `--model` it benchmarks the reference z-score graph on the simulator's 45 features
//! and a window of 10. Target: p99 < 1 ms.

use anyhow::{Context, Result, bail};
use moldops_scoring::inference::{Backend, BackendKind, Model, reference};
use moldops_shared::bundle::{FeatureSpec, Manifest, ModelKey};
use std::process::Command;
use std::time::Instant;

struct Args {
    model: Option<std::path::PathBuf>,
    window: usize,
    features: usize,
    iterations: usize,
}

fn args() -> Result<Args> {
    let mut a = Args { model: None, window: 10, features: 45, iterations: 5000 };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().with_context(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--model" => a.model = Some(value()?.into()),
            "--window" => a.window = value()?.parse()?,
            "--features" => a.features = value()?.parse()?,
            "--iterations" => a.iterations = value()?.parse()?,
            "--bench" => {} // passed by `cargo bench`
            other => bail!("unknown argument {other}"),
        }
    }
    Ok(a)
}

fn manifest(window: usize, features: usize) -> Manifest {
    let specs = (0..features).map(|i| FeatureSpec { name: format!("f{i}"), unit: None, fill: 0.0 }).collect();
    Manifest::new(ModelKey { machine_id: "bench".into(), mold: None }, "bench", specs, window as u32, 1.0)
}

/// (p50, p99, mean) in microseconds of `iterations` inferences after a warm-up.
fn measure(model: &mut Model, iterations: usize) -> Result<(f64, f64, f64)> {
    let n = model.window() * model.manifest().features.len();
    let windows: Vec<Vec<f32>> =
        (0..64).map(|k| (0..n).map(|i| ((i * 31 + k * 17) % 101) as f32 / 10.0).collect()).collect();
    for i in 0..200 {
        model.score(&windows[i % 64])?;
    }
    let mut t = Vec::with_capacity(iterations);
    for i in 0..iterations {
        let started = Instant::now();
        model.score(&windows[i % 64])?;
        t.push(started.elapsed().as_secs_f64() * 1e6);
    }
    let mean = t.iter().sum::<f64>() / t.len() as f64;
    t.sort_by(f64::total_cmp);
    let at = |q: f64| t[((t.len() - 1) as f64 * q).round() as usize];
    Ok((at(0.5), at(0.99), mean))
}

fn main() -> Result<()> {
    let a = args()?;
    let tmp = tempfile::tempdir()?;
    let (path, window, features) = match &a.model {
        Some(p) => (p.clone(), a.window, a.features),
        None => {
            let mu: Vec<f32> = (0..a.features).map(|i| i as f32).collect();
            let sigma = vec![2.0f32; a.features];
            let p = tmp.path().join("reference.onnx");
            std::fs::write(&p, reference::zscore_onnx(a.window, &mu, &sigma))?;
            (p, a.window, a.features)
        }
    };
    let onnx = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
    let profile = if cfg!(debug_assertions) { "dev (debug)" } else { "release" };
    println!(
        "inference latency, one window [1, {window}, {features}] per call, {} iterations, {profile} build",
        a.iterations
    );
    let mut rows = Vec::new();
    let mut tract = Model::load(manifest(window, features), &onnx, &Backend::tract())?;
    rows.push(("tract (edge)", measure(&mut tract, a.iterations)?));
    match Backend::open(BackendKind::Ort, None, false) {
        Ok(ort) => {
            let mut m = Model::load(manifest(window, features), &onnx, &ort)?;
            rows.push(("ort (edge, load-dynamic)", measure(&mut m, a.iterations)?));
        }
        Err(e) => println!("ort: skipped ({e:#})"),
    }
    let python = std::env::var("MOLDOPS_PYTHON").unwrap_or_else(|_| "python3".into());
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../bench/infer_onnxruntime.py");
    let out = Command::new(&python)
        .arg(&script)
        .arg(&path)
        .args([window.to_string(), features.to_string(), a.iterations.to_string()])
        .output();
    match out {
        Ok(o) if o.status.success() => {
            let v: serde_json::Value = serde_json::from_slice(&o.stdout)?;
            let get = |k: &str| v[k].as_f64().unwrap_or(f64::NAN);
            rows.push(("onnxruntime (Python)", (get("p50_us"), get("p99_us"), get("mean_us"))));
        }
        Ok(o) => println!("python reference failed: {}", String::from_utf8_lossy(&o.stderr)),
        Err(e) => println!("python reference not run ({python}): {e}"),
    }
    let reference = rows.iter().find(|r| r.0.starts_with("onnxruntime")).map(|r| r.1.1);
    println!("{:<26} {:>10} {:>10} {:>10} {:>16}", "backend", "p50 µs", "p99 µs", "mean µs", "p99 vs python");
    for (name, (p50, p99, mean)) in &rows {
        let ratio = reference.map_or("-".into(), |r| format!("{:.2}×", p99 / r));
        println!("{name:<26} {p50:>10.1} {p99:>10.1} {mean:>10.1} {ratio:>16}");
        println!(
            "{}",
            serde_json::json!({"backend": name, "p50_us": p50, "p99_us": p99, "mean_us": mean, "profile": profile, "window": window, "features": features})
        );
    }
    let worst = rows.iter().filter(|r| r.0.contains("edge")).map(|r| r.1.1).fold(0.0, f64::max);
    println!("target p99 < 1000 µs: {}", if worst < 1000.0 { "met" } else { "NOT met" });
    Ok(())
}
