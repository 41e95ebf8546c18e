use super::reference::{plain, zscore_onnx};
use super::*;
use moldops_shared::bundle::{FeatureSpec, ModelKey};

pub(crate) fn manifest(features: &[&str], window: u32, threshold: f32) -> Manifest {
    let specs = features.iter().map(|n| FeatureSpec { name: n.to_string(), unit: None, fill: 1.0 }).collect();
    Manifest::new(ModelKey { machine_id: "m1".into(), mold: None }, "zscore", specs, window, threshold)
}

#[test]
fn tract_runs_the_reference_graph_like_plain_rust() {
    let (mu, sigma) = ([1.0f32, 10.0, -3.0], [0.5f32, 2.0, 1.0]);
    let onnx = zscore_onnx(4, &mu, &sigma);
    let mut m = Model::load(manifest(&["a", "b", "c"], 4, 3.0), &onnx, &Backend::tract()).expect("loads");
    let window: Vec<f32> = (0..12).map(|i| i as f32 * 0.7 - 2.0).collect();
    let out = m.score(&window).expect("scores");
    let (score, contrib) = plain(&window, &mu, &sigma);
    assert!((out.score - score).abs() <= 1e-4 * score.abs().max(1.0), "{} vs {score}", out.score);
    for (a, b) in out.contributions.iter().zip(&contrib) {
        assert!((a - b).abs() <= 1e-4 * b.abs().max(1.0), "{a} vs {b}");
    }
    assert!(m.score(&window[..11]).is_err(), "a short window is refused");
}

#[test]
fn a_graph_that_breaks_the_contract_is_refused_with_a_reason() {
    let garbage = Model::load(manifest(&["a"], 2, 1.0), b"not onnx", &Backend::tract());
    let err = format!("{:#}", garbage.err().expect("refused"));
    assert!(err.contains("does not load"), "{err}");
    // Three features in the manifest, a graph made for two.
    let onnx = zscore_onnx(2, &[0.0, 0.0], &[1.0, 1.0]);
    assert!(Model::load(manifest(&["a", "b", "c"], 2, 1.0), &onnx, &Backend::tract()).is_err());
}

#[cfg(not(feature = "ort"))]
#[test]
fn ort_without_the_feature_fails_clearly_or_falls_back() {
    let err = Backend::open(BackendKind::Ort, None, false).expect_err("no ort in this build");
    assert!(format!("{err:#}").contains("ort"), "{err:#}");
    assert_eq!(Backend::open(BackendKind::Ort, None, true).expect("fallback").kind(), BackendKind::Tract);
}

#[cfg(feature = "ort")]
#[test]
fn ort_and_tract_give_the_same_scores() {
    // CI exports ORT_DYLIB_PATH (the onnxruntime wheel's library); without it the backend
    // must refuse clearly and fall back when asked to.
    let Some(lib) = std::env::var_os("ORT_DYLIB_PATH") else {
        let err = Backend::open(BackendKind::Ort, None, false).expect_err("no library");
        assert!(format!("{err:#}").contains("ORT_DYLIB_PATH"), "{err:#}");
        eprintln!("ORT_DYLIB_PATH not set: ort parity not checked");
        return;
    };
    let ort = Backend::open(BackendKind::Ort, Some(lib.into()), false).expect("ONNX Runtime loads");
    assert_eq!(ort.kind(), BackendKind::Ort);
    let mu: Vec<f32> = (0..45).map(|i| i as f32).collect();
    let sigma: Vec<f32> = (0..45).map(|i| 0.5 + i as f32 / 10.0).collect();
    let names: Vec<String> = (0..45).map(|i| format!("f{i:02}")).collect();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let onnx = zscore_onnx(8, &mu, &sigma);
    let mut a = Model::load(manifest(&refs, 8, 3.0), &onnx, &Backend::tract()).expect("tract");
    let mut b = Model::load(manifest(&refs, 8, 3.0), &onnx, &ort).expect("ort");
    assert_eq!(b.backend(), BackendKind::Ort);
    for k in 0..20 {
        let window: Vec<f32> = (0..8 * 45).map(|i| ((i * 7 + k * 13) % 97) as f32 / 3.0).collect();
        let (x, y) = (a.score(&window).expect("tract"), b.score(&window).expect("ort"));
        assert!((x.score - y.score).abs() <= 1e-5 * x.score.abs().max(1.0), "{} vs {}", x.score, y.score);
        for (p, q) in x.contributions.iter().zip(&y.contributions) {
            assert!((p - q).abs() <= 1e-5 * p.abs().max(1.0), "{p} vs {q}");
        }
    }
    let missing = Backend::open(BackendKind::Ort, Some("/nonexistent/libonnxruntime.so".into()), false);
    assert!(format!("{:#}", missing.expect_err("refused")).contains("does not exist"));
}
