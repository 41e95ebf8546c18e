//! A reference model that follows the bundle's graph contract, built by hand with
//! `tract_onnx::pb`: the mean squared z-score of each feature over the window
//! (`contributions[n, f] = mean_w ((x[n,w,f] − μ_f) / σ_f)²`, `score = mean_f contributions`).
//! A baseline detector in its own right, and what the tests and the inference benchmark run
//! (the trained models come from the registry). [`plain`] computes the same in plain Rust.

use prost::Message;
use tract_onnx::pb::{
    AttributeProto, GraphProto, ModelProto, NodeProto, OperatorSetIdProto, TensorProto, TensorShapeProto,
    TypeProto, ValueInfoProto, attribute_proto::AttributeType, tensor_proto::DataType,
    tensor_shape_proto::Dimension, tensor_shape_proto::dimension, type_proto,
};

/// ONNX bytes of the z-score model for `window` shots of `mu.len()` features.
pub fn zscore_onnx(window: usize, mu: &[f32], sigma: &[f32]) -> Vec<u8> {
    let f = mu.len() as i64;
    let init = |name: &str, values: &[f32]| TensorProto {
        name: name.into(),
        dims: vec![values.len() as i64],
        data_type: DataType::Float as i32,
        raw_data: values.iter().flat_map(|v| v.to_le_bytes()).collect(),
        ..Default::default()
    };
    let node = |op: &str, inputs: &[&str], output: &str, attrs: Vec<AttributeProto>| NodeProto {
        op_type: op.into(),
        name: output.into(),
        input: inputs.iter().map(|s| s.to_string()).collect(),
        output: vec![output.into()],
        attribute: attrs,
        ..Default::default()
    };
    let reduce = |axis: i64| {
        vec![
            AttributeProto {
                name: "axes".into(),
                r#type: AttributeType::Ints as i32,
                ints: vec![axis],
                ..Default::default()
            },
            AttributeProto {
                name: "keepdims".into(),
                r#type: AttributeType::Int as i32,
                i: 0,
                ..Default::default()
            },
        ]
    };
    let sigma: Vec<f32> = sigma.iter().map(|s| if *s > 0.0 { *s } else { 1.0 }).collect();
    let graph = GraphProto {
        name: "zscore".into(),
        node: vec![
            node("Sub", &["window", "mu"], "centred", vec![]),
            node("Div", &["centred", "sigma"], "z", vec![]),
            node("Mul", &["z", "z"], "z2", vec![]),
            node("ReduceMean", &["z2"], "contributions", reduce(1)),
            node("ReduceMean", &["contributions"], "score", reduce(1)),
        ],
        initializer: vec![init("mu", mu), init("sigma", &sigma)],
        input: vec![value_info("window", &[None, Some(window as i64), Some(f)])],
        output: vec![value_info("score", &[None]), value_info("contributions", &[None, Some(f)])],
        ..Default::default()
    };
    ModelProto {
        ir_version: 7,
        producer_name: "moldops-reference".into(),
        opset_import: vec![OperatorSetIdProto { domain: String::new(), version: 13 }],
        graph: Some(graph),
        ..Default::default()
    }
    .encode_to_vec()
}

pub(super) fn value_info(name: &str, dims: &[Option<i64>]) -> ValueInfoProto {
    let dim = dims
        .iter()
        .map(|d| Dimension {
            value: Some(match d {
                Some(v) => dimension::Value::DimValue(*v),
                None => dimension::Value::DimParam("N".into()),
            }),
            ..Default::default()
        })
        .collect();
    ValueInfoProto {
        name: name.into(),
        r#type: Some(TypeProto {
            value: Some(type_proto::Value::TensorType(type_proto::Tensor {
                elem_type: DataType::Float as i32,
                shape: Some(TensorShapeProto { dim }),
            })),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The reference model's outputs for one `[W, F]` window, computed in plain Rust.
pub fn plain(window: &[f32], mu: &[f32], sigma: &[f32]) -> (f32, Vec<f32>) {
    let f = mu.len();
    let w = window.len() / f.max(1);
    let mut contrib = vec![0f32; f];
    for row in window.chunks(f) {
        for (j, x) in row.iter().enumerate() {
            let s = if sigma[j] > 0.0 { sigma[j] } else { 1.0 };
            let z = (x - mu[j]) / s;
            contrib[j] += z * z;
        }
    }
    contrib.iter_mut().for_each(|c| *c /= w as f32);
    let score = contrib.iter().sum::<f32>() / f as f32;
    (score, contrib)
}
