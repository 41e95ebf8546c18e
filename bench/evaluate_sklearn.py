#!/usr/bin/env python3
"""Grid-search benchmark: `moldops-cloud evaluate` vs scikit-learn's GridSearchCV, same run.

Runs the given moldops-cloud binary (`evaluate --dump`, real rows only) and times it, then for
every group it evaluated and every classifier runs GridSearchCV(Pipeline([StandardScaler(),
estimator])) over exactly the candidates in our record (read from it, so the grids are
identical), on exactly our folds (read from the dump), scoring F1, average precision and
balanced accuracy, refit=False (we do not refit either), n_jobs = --jobs (default: all cores,
as rayon uses; `--jobs 1,2` tries each and keeps sklearn's best). Both sides fit the same
candidates on the same folds; the script checks that sklearn's search ran exactly those.
`--rounds R` alternates ours and sklearn R times. Prints a table per round, one JSON line
and a `BENCH-RESULT` line for `bench/run`: our grid-search seconds (summed from the record over
the searches both sides could run) against sklearn's at its best `n_jobs`.

usage: evaluate_sklearn.py BIN LAKE [--grid original|small] [--folds 5] [--seed 42]
                           [--classifiers knn,svm,...] [--jobs 1,2] [--rounds 1]
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
import sklearn
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


def ours(a, tmp):
    """Runs `evaluate --dump`; returns (its records, the dumped groups, wall seconds)."""
    dump = pathlib.Path(tmp) / "dump"
    cmd = [a.bin, "evaluate", "--lake", a.lake, "--source", "etl", "--out", str(pathlib.Path(tmp) / "evals"),
           "--dump", str(dump), "--json", "--grid", a.grid, "--folds", a.folds, "--seed", a.seed]
    if a.classifiers:
        cmd += ["--classifiers", a.classifiers]
    t0 = time.perf_counter()
    out = subprocess.run(cmd, check=True, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    groups = {}
    for f in sorted(dump.glob("*.json")):
        g = json.loads(f.read_text())
        groups[g["name"]] = g
    return json.loads(out.stdout), groups, wall


def sklearn_searches(records, groups, jobs):
    """GridSearchCV over every search in `records`, on its candidates and folds; one row each."""
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
                    scoring=["f1", "average_precision", "balanced_accuracy"], refit=False, n_jobs=jobs,
                    error_score=np.nan,
                )
                t0 = time.perf_counter()
                try:
                    search.fit(x, y)
                    sk_f1 = float(np.nanmax(search.cv_results_["mean_test_f1"]))
                    if len(search.cv_results_["params"]) != len(cands) or search.n_splits_ != len(cv):
                        raise SystemExit(f"{g['name']} {c['classifier']}: sklearn searched "
                                         f"{len(search.cv_results_['params'])} candidates on {search.n_splits_} "
                                         f"folds, ours {len(cands)} on {len(cv)}")
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
    return rows


def table(rows, jobs, ours_wall):
    ok = [r for r in rows if r["sklearn_best_f1"] is not None]
    ours_total = sum(r["ours_s"] for r in ok)
    sk_total = sum(r["sklearn_s"] for r in ok)
    print(f"sklearn n_jobs={jobs}", file=sys.stderr)
    print(f"{'group':<22} {'classifier':<9} {'cand':>4} {'ours s':>9} {'sklearn s':>10} {'sk/ours':>8} "
          f"{'F1 ours':>8} {'F1 sk':>7}", file=sys.stderr)
    for r in rows:
        print(f"{r['group'][:22]:<22} {r['classifier']:<9} {r['candidates']:>4} {r['ours_s']:>9.2f} "
              f"{r['sklearn_s']:>10.2f} {r['ratio']:>8.2f} {r['ours_best_f1']:>8.3f} "
              f"{'failed' if r['sklearn_best_f1'] is None else format(r['sklearn_best_f1'], '.3f'):>7}",
              file=sys.stderr)
    print(f"{'total':<22} {'':<9} {'':>4} {ours_total:>9.2f} {sk_total:>10.2f} "
          f"{sk_total / max(ours_total, 1e-9):>8.2f}   (our whole command: {ours_wall:.2f} s wall)", file=sys.stderr)
    return ours_total, sk_total


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("bin")
    ap.add_argument("lake")
    ap.add_argument("--grid", default="original")
    ap.add_argument("--folds", default="5")
    ap.add_argument("--seed", default="42")
    ap.add_argument("--classifiers", default="")
    ap.add_argument("--jobs", default=str(os.cpu_count()))
    ap.add_argument("--rounds", type=int, default=1)
    a = ap.parse_args()
    jobs = [int(j) for j in a.jobs.split(",")]

    ours_s, sk_s, sk_jobs, rows_out, searches, fits = [], [], [], [], 0, 0
    for round_ in range(1, max(a.rounds, 1) + 1):
        with tempfile.TemporaryDirectory() as tmp:
            records, groups, wall = ours(a, tmp)
        best = None
        for j in jobs:
            rows = sklearn_searches(records, groups, j)
            o, s = table(rows, j, wall)
            if best is None or s < best[1]:
                best = (o, s, j, rows)
        ours_s.append(best[0])
        sk_s.append(best[1])
        sk_jobs.append(best[2])
        rows_out = best[3]
        ok = [r for r in rows_out if r["sklearn_best_f1"] is not None]
        searches = len(ok)
        fits = sum(r["candidates"] * r["folds"] for r in ok)
        print(f"round {round_}: ours {best[0]:.2f} s, sklearn {best[1]:.2f} s (n_jobs={best[2]})", file=sys.stderr)
    agree = sum(1 for r in rows_out if r["sklearn_best_f1"] is not None
                and abs(r["sklearn_best_f1"] - r["ours_best_f1"]) <= 0.03)
    print(json.dumps({"rows": rows_out, "ours_s": ours_s, "sklearn_s": sk_s, "sklearn_jobs": sk_jobs,
                      "grid": a.grid}))
    print("BENCH-RESULT " + json.dumps({
        "id": f"grid-search-{a.grid}", "unit": "s", "better": "lower",
        "title": f"classifier grid search ({a.grid} grids, {searches} searches, {fits} candidate × fold fits)",
        "ours": ours_s, "baseline": sk_s,
        "baseline_name": f"scikit-learn {sklearn.__version__} GridSearchCV, best of n_jobs {a.jobs} "
                         f"(chosen: {sorted(set(sk_jobs))})",
        "checked": f"same candidates and folds on both sides; best mean F1 within 0.03 in {agree} of {searches}",
    }))


if __name__ == "__main__":
    main()
