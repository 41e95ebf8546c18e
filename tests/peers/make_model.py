#!/usr/bin/env python3
"""An independent client of the bundle's ONNX graph contract (shared/src/bundle.rs): builds,
with onnx.helper, a model with input `window` f32[N, W, F] and outputs `score` f32[N] and
`contributions` f32[N, F] (mean squared z-score per feature; the score is their mean), checks
it with the ONNX checker, and prints onnxruntime's outputs for given windows so tests can
compare them with what the edge computes.

Usage: make_model.py OUT.onnx --mu 1,2,3 --sigma 1,1,1 --window W [--windows FILE.json]
FILE.json holds a list of windows (each a W×F list of lists); the outputs are printed as one
JSON line {"score": [...], "contributions": [[...], ...]}.
"""
import argparse
import json

import numpy as np
import onnx
from onnx import TensorProto, helper


def build(mu, sigma, window):
    f = len(mu)
    sigma = [s if s > 0 else 1.0 for s in sigma]
    nodes = [
        helper.make_node("Sub", ["window", "mu"], ["centred"]),
        helper.make_node("Div", ["centred", "sigma"], ["z"]),
        helper.make_node("Mul", ["z", "z"], ["z2"]),
        helper.make_node("ReduceMean", ["z2"], ["contributions"], axes=[1], keepdims=0),
        helper.make_node("ReduceMean", ["contributions"], ["score"], axes=[1], keepdims=0),
    ]
    graph = helper.make_graph(
        nodes,
        "zscore-python",
        [helper.make_tensor_value_info("window", TensorProto.FLOAT, ["N", window, f])],
        [
            helper.make_tensor_value_info("score", TensorProto.FLOAT, ["N"]),
            helper.make_tensor_value_info("contributions", TensorProto.FLOAT, ["N", f]),
        ],
        initializer=[
            helper.make_tensor("mu", TensorProto.FLOAT, [f], mu),
            helper.make_tensor("sigma", TensorProto.FLOAT, [f], sigma),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], producer_name="make_model.py")
    model.ir_version = 7
    onnx.checker.check_model(model, full_check=True)
    return model


def main():
    p = argparse.ArgumentParser()
    p.add_argument("out")
    p.add_argument("--mu", required=True)
    p.add_argument("--sigma", required=True)
    p.add_argument("--window", type=int, required=True)
    p.add_argument("--windows")
    a = p.parse_args()
    mu = [float(v) for v in a.mu.split(",")]
    sigma = [float(v) for v in a.sigma.split(",")]
    model = build(mu, sigma, a.window)
    onnx.save(model, a.out)
    if a.windows:
        import onnxruntime as ort

        with open(a.windows) as fh:
            windows = np.asarray(json.load(fh), dtype=np.float32)
        session = ort.InferenceSession(a.out, providers=["CPUExecutionProvider"])
        score, contributions = session.run(["score", "contributions"], {"window": windows})
        print(json.dumps({"score": score.tolist(), "contributions": contributions.tolist()}))


if __name__ == "__main__":
    main()
