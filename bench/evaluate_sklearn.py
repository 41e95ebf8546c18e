#!/usr/bin/env python3
"""Grid-search benchmark: `moldops-cloud evaluate` vs scikit-learn's GridSearchCV, same run.

Runs the given moldops-cloud binary (`evaluate --dump`, real rows only) and times it, then for
every group it evaluated and every classifier runs GridSearchCV(Pipeline([StandardScaler(),
estimator])) over exactly the candidates in our record (read from it, so the grids are
identical), on exactly our folds (read from the dump), scoring F1, average precision and
balanced accuracy, refit=False (we do not refit either), n_jobs = --jobs (default: all cores,
as rayon uses). Prints a table and one JSON line: per classifier our grid-search seconds (from
the record), sklearn's, and sklearn/ours (> 1: we are faster), and the best mean F1 on both sides.

usage: evaluate_sklearn.py BIN LAKE [--grid original|small] [--folds 5] [--seed 42]
                           [--classifiers knn,svm,...] [--jobs N]
"""
import argparse
import json
import os
import pathlib
import subprocess
import sys
import tempfile
import time

import numpy as np
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent / "tests" / "peers"))
from sklearn_reference import estimator  # noqa: E402


def sk_value(key, value):
    if key == "max_features" and value == "all":
        return None
    if key == "hidden_layer_sizes":
        return (value,)
    return value


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("bin")
    ap.add_argument("lake")
    ap.add_argument("--grid", default="original")
    ap.add_argument("--folds", default="5")
    ap.add_argument("--seed", default="42")
    ap.add_argument("--classifiers", default="")
    ap.add_argument("--jobs", type=int, default=os.cpu_count())
    a = ap.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        dump = pathlib.Path(tmp) / "dump"
        cmd = [a.bin, "evaluate", "--lake", a.lake, "--source", "etl", "--out", str(pathlib.Path(tmp) / "evals"),
               "--dump", str(dump), "--json", "--grid", a.grid, "--folds", a.folds, "--seed", a.seed]
        if a.classifiers:
            cmd += ["--classifiers", a.classifiers]
        t0 = time.perf_counter()
        out = subprocess.run(cmd, check=True, capture_output=True, text=True)
        ours_wall = time.perf_counter() - t0
        records = json.loads(out.stdout)
        groups = {}
        for f in sorted(dump.glob("*.json")):
            g = json.loads(f.read_text())
            groups[g["name"]] = g

    rows = []
    for rec in records:
        for g in rec["groups"]:
            if g.get("skipped") or g["name"] not in groups:
                continue
            d = groups[g["name"]]
            x, y = np.array(d["x"]), np.array(d["y"])
            cv = [(np.setdiff1d(np.arange(len(y)), t), np.array(t)) for t in d["folds"]]
            for c in g["classifiers"]:
                r = c.get("real")
                if r is None:
                    continue
                cands = [cand["params"] for cand in r["candidates"]]
                base = estimator({"classifier": c["classifier"], **cands[0]})
                grid = [{f"clf__{k}": [sk_value(k, v)] for k, v in p.items()} for p in cands]
                search = GridSearchCV(
                    Pipeline([("scale", StandardScaler()), ("clf", base)]), grid, cv=cv,
                    scoring=["f1", "average_precision", "balanced_accuracy"], refit=False, n_jobs=a.jobs,
                    error_score=np.nan,
                )
                t0 = time.perf_counter()
                try:
                    search.fit(x, y)
                    sk_f1 = float(np.nanmax(search.cv_results_["mean_test_f1"]))
                except ValueError as e:  # every fit failed (e.g. QDA: a class with fewer rows than features)
                    print(f"{g['name']} {c['classifier']}: sklearn failed: {str(e).strip().splitlines()[-1]}",
                          file=sys.stderr)
                    sk_f1 = None
                sk = time.perf_counter() - t0
                rows.append({
                    "group": g["name"], "classifier": c["classifier"], "candidates": len(cands),
                    "folds": len(cv), "ours_s": r["search_s"], "sklearn_s": sk, "ratio": sk / r["search_s"],
                    "ours_best_f1": r["f1"]["mean"], "sklearn_best_f1": sk_f1,
                })

    # Totals over the searches that ran on both sides.
    ok = [r for r in rows if r["sklearn_best_f1"] is not None]
    ours_total = sum(r["ours_s"] for r in ok)
    sk_total = sum(r["sklearn_s"] for r in ok)
    print(f"{'group':<22} {'classifier':<9} {'cand':>4} {'ours s':>9} {'sklearn s':>10} {'sk/ours':>8} "
          f"{'F1 ours':>8} {'F1 sk':>7}", file=sys.stderr)
    for r in rows:
        print(f"{r['group'][:22]:<22} {r['classifier']:<9} {r['candidates']:>4} {r['ours_s']:>9.2f} "
              f"{r['sklearn_s']:>10.2f} {r['ratio']:>8.2f} {r['ours_best_f1']:>8.3f} "
              f"{'failed' if r['sklearn_best_f1'] is None else format(r['sklearn_best_f1'], '.3f'):>7}",
              file=sys.stderr)
    print(f"{'total':<22} {'':<9} {'':>4} {ours_total:>9.2f} {sk_total:>10.2f} "
          f"{sk_total / max(ours_total, 1e-9):>8.2f}   (our whole command: {ours_wall:.2f} s wall)", file=sys.stderr)
    print(json.dumps({"rows": rows, "ours_total_s": ours_total, "sklearn_total_s": sk_total,
                      "ratio": sk_total / max(ours_total, 1e-9), "ours_command_wall_s": ours_wall,
                      "jobs": a.jobs, "grid": a.grid}))


if __name__ == "__main__":
    main()
