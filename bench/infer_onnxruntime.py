#!/usr/bin/env python3
"""Reference for the inference benchmark (`scoring/benches/inference.rs`): per-shot latency of
onnxruntime from Python on the same ONNX graph the edge runs, one window [1, W, F] per call, one
intra-op thread (as the edge), on the windows the Rust bench wrote.

Usage: infer_onnxruntime.py MODEL.onnx WINDOW FEATURES ITERATIONS WINDOWS.f32
(WINDOWS.f32: N windows of W×F little-endian f32, row-major.)
Prints one JSON line: {"p50_us", "p99_us", "mean_us", "scores" (one per window, the graph's
`score` output), "onnxruntime" (its version)}.
"""
import json
import sys
import time

import numpy as np
import onnxruntime as ort


def main() -> None:
    model, window, features = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    iterations = int(sys.argv[4])
    windows = np.fromfile(sys.argv[5], dtype="<f4").reshape(-1, 1, window, features)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    session = ort.InferenceSession(model, opts, providers=["CPUExecutionProvider"])
    scores = [float(session.run(["score"], {"window": w})[0].reshape(-1)[0]) for w in windows]
    n = len(windows)
    for i in range(200):  # warm-up
        session.run(None, {"window": windows[i % n]})
    times = np.empty(iterations)
    for i in range(iterations):
        x = windows[i % n]
        t0 = time.perf_counter()
        session.run(None, {"window": x})
        times[i] = time.perf_counter() - t0
    print(json.dumps({
        "iterations": iterations,
        "p50_us": float(np.percentile(times, 50) * 1e6),
        "p99_us": float(np.percentile(times, 99) * 1e6),
        "mean_us": float(times.mean() * 1e6),
        "scores": scores,
        "onnxruntime": ort.__version__,
    }))


if __name__ == "__main__":
    main()
