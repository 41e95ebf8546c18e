#!/usr/bin/env python3
"""Reference for the inference benchmark: per-shot latency of onnxruntime (Python) on the same
ONNX graph the edge runs, one window [1, W, F] per call, one intra-op thread (as the edge).

Usage: infer_onnxruntime.py MODEL.onnx WINDOW FEATURES [ITERATIONS] [SEED]
Prints one JSON line: {"backend": "onnxruntime-python", "iterations", "p50_us", "p99_us", "mean_us"}.
"""
import json
import sys
import time

import numpy as np
import onnxruntime as ort


def main() -> None:
    model, window, features = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    iterations = int(sys.argv[4]) if len(sys.argv) > 4 else 5000
    seed = int(sys.argv[5]) if len(sys.argv) > 5 else 42
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    session = ort.InferenceSession(model, opts, providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(seed)
    windows = rng.normal(size=(64, 1, window, features)).astype(np.float32)
    for i in range(200):  # warm-up
        session.run(None, {"window": windows[i % 64]})
    times = np.empty(iterations)
    for i in range(iterations):
        x = windows[i % 64]
        t0 = time.perf_counter()
        session.run(None, {"window": x})
        times[i] = time.perf_counter() - t0
    print(json.dumps({
        "backend": "onnxruntime-python",
        "iterations": iterations,
        "p50_us": float(np.percentile(times, 50) * 1e6),
        "p99_us": float(np.percentile(times, 99) * 1e6),
        "mean_us": float(times.mean() * 1e6),
    }))


if __name__ == "__main__":
    main()
