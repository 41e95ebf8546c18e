//! A small builder for ONNX graphs on `tract_onnx::pb` (the prost types of onnx.proto): float
//! and int64 initializers, nodes with attributes, typed inputs and outputs.

use moldops_shared::bundle::{CONTRIB_OUTPUT, SCORE_OUTPUT};
use tract_onnx::pb;

/// ONNX element type codes used here.
const FLOAT: i32 = 1;
const INT64: i32 = 7;

/// One dimension of a declared input or output: fixed or named (dynamic).
pub(super) enum Dim {
    Fixed(usize),
    Named(&'static str),
}

/// A graph under construction.
#[derive(Default)]
pub(super) struct Graph {
    pub graph: pb::GraphProto,
    counter: usize,
}

/// An attribute value.
pub(super) enum Attr {
    Int(i64),
    Ints(Vec<i64>),
}

impl Graph {
    /// A float initializer `name` of shape `dims`, stored as little-endian raw data.
    pub(super) fn float(&mut self, name: &str, dims: &[usize], values: &[f32]) -> String {
        let raw = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        self.graph.initializer.push(pb::TensorProto {
            name: name.into(),
            dims: dims.iter().map(|&d| d as i64).collect(),
            data_type: FLOAT,
            raw_data: raw,
            ..Default::default()
        });
        name.into()
    }

    /// An int64 initializer `name` of shape `dims` (`&[]` for a scalar).
    pub(super) fn int64(&mut self, name: &str, dims: &[usize], values: &[i64]) -> String {
        let raw = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        self.graph.initializer.push(pb::TensorProto {
            name: name.into(),
            dims: dims.iter().map(|&d| d as i64).collect(),
            data_type: INT64,
            raw_data: raw,
            ..Default::default()
        });
        name.into()
    }

    /// Adds a node and returns its output names (`outputs` of them, generated from `op`).
    pub(super) fn node(
        &mut self,
        op: &str,
        inputs: &[&str],
        outputs: usize,
        attrs: Vec<(&str, Attr)>,
    ) -> Vec<String> {
        self.counter += 1;
        let name = format!("{}_{}", op.to_lowercase(), self.counter);
        let outs: Vec<String> = (0..outputs).map(|k| format!("{name}_out{k}")).collect();
        self.node_named(op, inputs, &outs, attrs, &name);
        outs
    }

    /// Adds a node whose outputs are named by the caller.
    pub(super) fn node_named(
        &mut self,
        op: &str,
        inputs: &[&str],
        outputs: &[String],
        attrs: Vec<(&str, Attr)>,
        name: &str,
    ) {
        let attribute = attrs
            .into_iter()
            .map(|(n, a)| match a {
                Attr::Int(i) => pb::AttributeProto {
                    name: n.into(),
                    r#type: pb::attribute_proto::AttributeType::Int as i32,
                    i,
                    ..Default::default()
                },
                Attr::Ints(ints) => pb::AttributeProto {
                    name: n.into(),
                    r#type: pb::attribute_proto::AttributeType::Ints as i32,
                    ints,
                    ..Default::default()
                },
            })
            .collect();
        self.graph.node.push(pb::NodeProto {
            input: inputs.iter().map(|s| s.to_string()).collect(),
            output: outputs.to_vec(),
            name: name.into(),
            op_type: op.into(),
            attribute,
            ..Default::default()
        });
    }

    /// One-output node.
    pub(super) fn op(&mut self, op: &str, inputs: &[&str], attrs: Vec<(&str, Attr)>) -> String {
        self.node(op, inputs, 1, attrs).remove(0)
    }

    pub(super) fn input(&mut self, name: &str, dims: &[Dim]) {
        let v = value_info(name, dims);
        self.graph.input.push(v);
    }

    pub(super) fn output(&mut self, name: &str, dims: &[Dim]) {
        let v = value_info(name, dims);
        self.graph.output.push(v);
    }

    /// The bundle contract's outputs: `score` (`[N]`) as the mean of the `contributions`
    /// (`[N, f]`, already computed under that name) over features; both declared as outputs.
    pub(super) fn score_outputs(&mut self, f: usize) {
        self.node_named(
            "ReduceMean",
            &[CONTRIB_OUTPUT],
            &[SCORE_OUTPUT.to_string()],
            vec![("axes", Attr::Ints(vec![1])), ("keepdims", Attr::Int(0))],
            "score",
        );
        self.output(SCORE_OUTPUT, &[Dim::Named("N")]);
        self.output(CONTRIB_OUTPUT, &[Dim::Named("N"), Dim::Fixed(f)]);
    }

    /// The model: IR version 8, default-domain opset 17.
    pub(super) fn into_model(self, name: &str, doc: &str) -> pb::ModelProto {
        let mut graph = self.graph;
        graph.name = name.into();
        pb::ModelProto {
            ir_version: 8,
            opset_import: vec![pb::OperatorSetIdProto { domain: String::new(), version: 17 }],
            producer_name: "moldops-models".into(),
            producer_version: env!("CARGO_PKG_VERSION").into(),
            doc_string: doc.into(),
            graph: Some(graph),
            ..Default::default()
        }
    }
}

fn value_info(name: &str, dims: &[Dim]) -> pb::ValueInfoProto {
    use pb::tensor_shape_proto::{Dimension, dimension::Value};
    let dim = dims
        .iter()
        .map(|d| Dimension {
            value: Some(match d {
                Dim::Fixed(n) => Value::DimValue(*n as i64),
                Dim::Named(s) => Value::DimParam((*s).into()),
            }),
            ..Default::default()
        })
        .collect();
    pb::ValueInfoProto {
        name: name.into(),
        r#type: Some(pb::TypeProto {
            value: Some(pb::type_proto::Value::TensorType(pb::type_proto::Tensor {
                elem_type: FLOAT,
                shape: Some(pb::TensorShapeProto { dim }),
            })),
            ..Default::default()
        }),
        ..Default::default()
    }
}
