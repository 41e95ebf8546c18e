//! Export parity: the ONNX graph run by tract, and by onnxruntime after `onnx.checker`'s full
//! check (Python from `MOLDOPS_PYTHON` or `~/.cache/moldops-venv`), equals burn within 1e-4.

use super::*;
use crate::data::Windows;
use crate::score::{Scores, score};
use crate::train::{TrainConfig, fit};
use burn::tensor::Device;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

const TOL: f32 = 1e-4;

/// Raw windows around an offset and scale per feature, so the baked normalisation matters.
fn raw_windows(n: usize, w: usize, f: usize, seed: u64) -> Windows {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let data = (0..n * w * f)
        .map(|k| {
            let j = k % f;
            100.0 * j as f32 + (1.0 + j as f32) * rng.random_range(-1.0f32..1.0)
        })
        .collect();
    Windows { data, n, w, f }
}

/// A briefly trained model (so weights are not just the initialisation), its normaliser and
/// held-out raw windows.
fn trained(mode_seed: u64, predict_last: bool) -> (LstmAe, Normalizer, Windows) {
    let device = Device::flex();
    let (w, f) = (5, 3);
    let train = raw_windows(24, w, f, mode_seed);
    // The centring model (tied to predict_last here) with its deviation scale.
    let norm = if predict_last { Normalizer::fit_centred(&train) } else { Normalizer::fit(&train.data, f) };
    let cfg = TrainConfig { epochs: 2, batch_size: 8, patience: 5, ..TrainConfig::default() };
    let model = crate::lstm_ae::LstmAeConfig {
        features: f,
        encoder: vec![6, 2],
        predict_last,
        centre: predict_last,
        centre_clip: if predict_last { 0.5 } else { 0.0 },
    }
    .init(3, &device)
    .unwrap();
    let t = fit(model, &norm.apply(&train), &Windows::empty(w, f), &cfg, &device, "test").unwrap();
    (t.model, norm, raw_windows(7, w, f, mode_seed + 100))
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

#[test]
fn tract_matches_burn_for_both_score_modes_and_encoder_inputs() {
    let device = Device::flex();
    for (mode, predict_last) in [
        (ScoreMode::Last, true),
        (ScoreMode::Window, true),
        (ScoreMode::Last, false),
        (ScoreMode::Window, false),
        (ScoreMode::LastSquared, true),
    ] {
        let (model, norm, held_out) = trained(1, predict_last);
        let bytes = export_lstm_ae(&model, &norm, held_out.w, mode).unwrap();
        let expected = score(&model, &norm.apply(&held_out), mode, 64, &device).unwrap();
        let got = tract_scores(&bytes, &held_out).unwrap();
        assert_eq!(got.score.len(), held_out.n);
        assert_eq!(got.contributions.len(), held_out.n * held_out.f);
        assert!(max_diff(&expected.score, &got.score) <= TOL, "{mode:?} score");
        assert!(max_diff(&expected.contributions, &got.contributions) <= TOL, "{mode:?} contributions");
        // One window at a time, as the edge runs it.
        let one = tract_scores(&bytes, &held_out.select(&[0])).unwrap();
        assert!((one.score[0] - expected.score[0]).abs() <= TOL, "{mode:?} single window");
        // The score is the mean of the contributions.
        let mean0: f32 = got.contributions[..held_out.f].iter().sum::<f32>() / held_out.f as f32;
        assert!((mean0 - got.score[0]).abs() <= TOL);
    }
}

fn python() -> std::path::PathBuf {
    if let Some(p) = std::env::var_os("MOLDOPS_PYTHON") {
        return p.into();
    }
    let home = std::env::var_os("HOME").map(std::path::PathBuf::from).unwrap_or_default();
    let venv = home.join(".cache/moldops-venv/bin/python");
    if venv.exists() { venv } else { "python3".into() }
}

const CHECK_PY: &str = r#"
import json, sys
import numpy as np, onnx, onnxruntime as ort
path, inp = sys.argv[1], sys.argv[2]
m = onnx.load(path)
onnx.checker.check_model(m, full_check=True)
d = json.load(open(inp))
x = np.array(d["data"], dtype=np.float32).reshape(d["n"], d["w"], d["f"])
s = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
score, contrib = s.run(["score", "contributions"], {"window": x})
print(json.dumps({"score": score.tolist(), "contributions": contrib.reshape(-1).tolist()}))
"#;

/// `bytes` checked by `onnx.checker` (full check) and run by onnxruntime on `windows`.
fn onnxruntime_scores(bytes: &[u8], windows: &Windows) -> Scores {
    let dir = tempfile::tempdir().unwrap();
    let (model_path, input_path) = (dir.path().join("m.onnx"), dir.path().join("in.json"));
    std::fs::write(&model_path, bytes).unwrap();
    let input = serde_json::json!({"data": windows.data, "n": windows.n, "w": windows.w, "f": windows.f});
    std::fs::write(&input_path, input.to_string()).unwrap();
    let out = std::process::Command::new(python())
        .arg("-c")
        .arg(CHECK_PY)
        .arg(&model_path)
        .arg(&input_path)
        .output()
        .expect(
            "run python (set MOLDOPS_PYTHON; needs onnx, onnxruntime, numpy from tests/requirements.txt)",
        );
    assert!(
        out.status.success(),
        "onnx check / onnxruntime failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let got: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let vec = |k: &str| -> Vec<f32> {
        got[k].as_array().unwrap().iter().map(|v| v.as_f64().unwrap() as f32).collect()
    };
    Scores { score: vec("score"), contributions: vec("contributions") }
}

#[test]
fn onnx_checker_accepts_and_onnxruntime_matches_burn() {
    let (model, norm, held_out) = trained(2, true);
    let device = Device::flex();
    let bytes = export_lstm_ae(&model, &norm, held_out.w, ScoreMode::LastSquared).unwrap();
    let got = onnxruntime_scores(&bytes, &held_out);
    let expected = score(&model, &norm.apply(&held_out), ScoreMode::LastSquared, 64, &device).unwrap();
    assert!(max_diff(&expected.score, &got.score) <= TOL);
    assert!(max_diff(&expected.contributions, &got.contributions) <= TOL);
}

#[test]
fn a_pca_monitor_runs_the_same_in_tract_and_onnxruntime() {
    let (w, f) = (4, 5);
    let train = raw_windows(300, 1, f, 7);
    let pca = crate::pca::Pca::fit(&train.data, f, &crate::pca::PcaConfig { variance: 0.6 }).unwrap();
    assert!(pca.components >= 1 && pca.components < f);
    let held_out = raw_windows(9, w, f, 8);
    let expected = pca.score(&held_out);
    let bytes = export_pca(&pca, w).unwrap();
    // Scores reach tens on far-off shots: relative above 1, as the training's parity check.
    let close = |a: &[f32], b: &[f32]| {
        a.len() == b.len() && a.iter().zip(b).all(|(x, y)| (x - y).abs() <= TOL * x.abs().max(1.0))
    };
    for got in [tract_scores(&bytes, &held_out).unwrap(), onnxruntime_scores(&bytes, &held_out)] {
        assert!(close(&expected.score, &got.score), "{:?} vs {:?}", expected.score, got.score);
        assert!(close(&expected.contributions, &got.contributions));
    }
    let one = tract_scores(&bytes, &held_out.select(&[3])).unwrap();
    assert!(close(&expected.score[3..4], &one.score), "one window at a time, as the edge runs it");
}

#[test]
fn a_centring_model_ignores_a_shifted_operating_point_but_not_a_jump() {
    let device = Device::flex();
    let (model, norm, held_out) = trained(1, true);
    assert!(model.centre);
    let bytes = export_lstm_ae(&model, &norm, held_out.w, ScoreMode::LastSquared).unwrap();
    let base = tract_scores(&bytes, &held_out).unwrap();
    // The whole window 5 std higher: a new setpoint, the same score (burn and ONNX).
    let f = held_out.f;
    let shifted = Windows {
        data: held_out.data.iter().enumerate().map(|(k, v)| v + 5.0 * norm.std[k % f]).collect(),
        ..held_out.clone()
    };
    let moved = tract_scores(&bytes, &shifted).unwrap();
    assert!(max_diff(&base.score, &moved.score) <= 1e-3, "{:?} vs {:?}", base.score, moved.score);
    let burn_moved = score(&model, &norm.apply(&shifted), ScoreMode::LastSquared, 64, &device).unwrap();
    assert!(max_diff(&moved.score, &burn_moved.score) <= TOL);
    // Only the last shot 5 std higher: a jump, a much higher score.
    let w = held_out.w;
    let jumped = Windows {
        data: held_out
            .data
            .iter()
            .enumerate()
            .map(|(k, v)| if (k / f) % w == w - 1 { v + 5.0 * norm.std[k % f] } else { *v })
            .collect(),
        ..held_out.clone()
    };
    let jump = tract_scores(&bytes, &jumped).unwrap();
    for (b, j) in base.score.iter().zip(&jump.score) {
        assert!(*j > *b + 5.0, "jump scored {j}, base {b}");
    }
}
