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

/// ONNX bytes of a small LSTM over the window (score: the sum of its last hidden state;
/// contributions: the window's mean per feature), the shape of the trained LSTM-AE's scan.
fn lstm_onnx(window: usize, features: usize, hidden: usize) -> Vec<u8> {
    use prost::Message;
    use tract_onnx::pb::{
        AttributeProto, GraphProto, ModelProto, NodeProto, OperatorSetIdProto, TensorProto,
        attribute_proto::AttributeType, tensor_proto::DataType,
    };
    let init = |name: &str, dims: &[i64], seed: usize| {
        let n: i64 = dims.iter().product();
        let values = (0..n as usize).map(|i| (((i * 37 + seed * 11) % 19) as f32 - 9.0) / 20.0);
        TensorProto {
            name: name.into(),
            dims: dims.to_vec(),
            data_type: DataType::Float as i32,
            raw_data: values.flat_map(|v| v.to_le_bytes()).collect(),
            ..Default::default()
        }
    };
    let ints = |name: &str, v: Vec<i64>| AttributeProto {
        name: name.into(),
        r#type: AttributeType::Ints as i32,
        ints: v,
        ..Default::default()
    };
    let int = |name: &str, v: i64| AttributeProto {
        name: name.into(),
        r#type: AttributeType::Int as i32,
        i: v,
        ..Default::default()
    };
    let node = |op: &str, inputs: &[&str], outputs: &[&str], attribute: Vec<AttributeProto>| NodeProto {
        op_type: op.into(),
        name: outputs.iter().find(|o| !o.is_empty()).map(|o| o.to_string()).unwrap_or_default(),
        input: inputs.iter().map(|s| s.to_string()).collect(),
        output: outputs.iter().map(|s| s.to_string()).collect(),
        attribute,
        ..Default::default()
    };
    let (f, h) = (features as i64, hidden as i64);
    let graph = GraphProto {
        name: "lstm".into(),
        node: vec![
            node("Transpose", &["window"], &["seq"], vec![ints("perm", vec![1, 0, 2])]),
            node("LSTM", &["seq", "W", "R", "B"], &["", "y_h"], vec![int("hidden_size", h)]),
            node("ReduceSum", &["y_h"], &["score"], vec![ints("axes", vec![0, 2]), int("keepdims", 0)]),
            node(
                "ReduceMean",
                &["window"],
                &["contributions"],
                vec![ints("axes", vec![1]), int("keepdims", 0)],
            ),
        ],
        initializer: vec![
            init("W", &[1, 4 * h, f], 1),
            init("R", &[1, 4 * h, h], 2),
            init("B", &[1, 8 * h], 3),
        ],
        input: vec![super::reference::value_info("window", &[None, Some(window as i64), Some(f)])],
        output: vec![
            super::reference::value_info("score", &[None]),
            super::reference::value_info("contributions", &[None, Some(f)]),
        ],
        ..Default::default()
    };
    ModelProto {
        ir_version: 7,
        producer_name: "moldops-test".into(),
        opset_import: vec![OperatorSetIdProto { domain: String::new(), version: 13 }],
        graph: Some(graph),
        ..Default::default()
    }
    .encode_to_vec()
}

/// A recurrent graph keeps inner state in tract's run state: one kept between shots made the
/// same window score differently each time (found by the promotion gate's comparison).
#[test]
fn a_recurrent_model_scores_the_same_window_the_same_every_time() {
    let onnx = lstm_onnx(6, 3, 4);
    let window: Vec<f32> = (0..18).map(|i| (i as f32 * 0.37).sin()).collect();
    let mut m = Model::load(manifest(&["a", "b", "c"], 6, 1.0), &onnx, &Backend::tract()).expect("loads");
    let other: Vec<f32> = window.iter().map(|v| v * 3.0 + 1.0).collect();
    let first = m.score(&window).expect("scores").score;
    assert!(first.is_finite() && first != 0.0, "{first}");
    let _ = m.score(&other).expect("scores");
    for _ in 0..3 {
        assert_eq!(m.score(&window).expect("scores").score, first, "no state carried between shots");
    }
}
