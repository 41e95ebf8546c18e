#!/usr/bin/env python3
"""The ETL merge of `moldops-cloud etl` in pandas, for the benchmark (`cargo bench -p
moldops-cloud --bench etl`): per machine, shots sorted by time, the same drop rules (sentinel,
idle, impossible, duplicate), a backward `merge_asof` per peripheral device within the
tolerance (exact matches allowed), production runs on gaps > 15 min or mold changes, one
Parquet file per machine and date. Prints one JSON line: rows in/out, seconds, peak RSS.

usage: etl_pandas.py LAKE OUT_DIR [TOLERANCE_MS]
"""
import glob
import json
import os
import resource
import sys
import time

import pandas as pd

FIXED = ["edge_id", "seq", "site", "machine_id", "device_id", "ts", "shot_number", "mold", "out_of_range"]
LIMITS = {"Cycle_Time": (0.001, 3600.0), "Injection_Time": (0.0, 3600.0), "Filling_Time": (0.0, 3600.0),
          "Plasticizing_Time": (0.0, 3600.0), "Clamp_Close_Time": (0.0, 3600.0)}
SENTINEL = 1.0e8
RUN_GAP_MS = 15 * 60 * 1000


def read(paths):
    return pd.concat([pd.read_parquet(p) for p in paths], ignore_index=True) if paths else None


def alias(machine, device):
    prefix = machine + "-"
    return device[len(prefix):] if device.startswith(prefix) and len(device) > len(prefix) else device


def machine_etl(mdir, lake, out, tol):
    folder = os.path.basename(mdir)
    shots = read(sorted(glob.glob(os.path.join(mdir, "date=*", "part-*.parquet"))))
    periph = read(sorted(glob.glob(os.path.join(lake, "peripheral_data", folder, "date=*", "part-*.parquet"))))
    shots["ts_ms"] = shots["ts"].astype("int64") // 10**6 if shots["ts"].dtype.kind == "M" else shots["ts"]
    shots = shots.sort_values(["ts_ms", "shot_number", "edge_id", "seq"], kind="stable").reset_index(drop=True)
    values = sorted(c for c in shots.columns if c not in FIXED and c != "ts_ms")
    v = shots[values]
    sentinel = (v.abs() >= SENTINEL).any(axis=1)
    idle = ((v == 0) | v.isna()).all(axis=1)
    impossible = pd.Series(False, index=shots.index)
    for c, (lo, hi) in LIMITS.items():
        if c in shots:
            impossible |= (shots[c] < lo) | (shots[c] > hi)
    dup = (shots["shot_number"] == shots["shot_number"].shift(1)) & (shots["ts_ms"] == shots["ts_ms"].shift(1))
    dropped = sentinel | idle | impossible | dup
    counts = {"sentinel": int(sentinel.sum()), "idle": int((idle & ~sentinel).sum()),
              "impossible": int((impossible & ~sentinel & ~idle).sum()),
              "duplicate": int((dup & ~sentinel & ~idle & ~impossible).sum())}
    kept = shots[~dropped].copy()
    added = []
    if periph is not None:
        periph["ts_ms"] = periph["ts"].astype("int64") // 10**6 if periph["ts"].dtype.kind == "M" else periph["ts"]
        machine = kept["machine_id"].iloc[0] if len(kept) else ""
        for device, rows in periph.groupby("device_id", sort=True):
            cols = [c for c in rows.columns if c not in FIXED and c != "ts_ms" and rows[c].notna().any()]
            a = alias(machine, device)
            right = rows.sort_values(["ts_ms", "edge_id", "seq"], kind="stable")[["ts_ms"] + cols]
            right = right.drop_duplicates("ts_ms", keep="last")
            names = {c: f"{a}.{c}" for c in cols}
            right = right.rename(columns=names)
            added += list(names.values())
            kept = pd.merge_asof(kept, right, on="ts_ms", direction="backward", tolerance=tol,
                                 allow_exact_matches=True)
    ts = kept["ts_ms"].to_numpy()
    mold = kept["mold"].to_numpy()
    gap = pd.Series(ts).diff().fillna(RUN_GAP_MS + 1).to_numpy() > RUN_GAP_MS
    new = gap | (pd.Series(mold) != pd.Series(mold).shift(1)).to_numpy()
    start = pd.Series(ts).where(new).ffill().astype("int64")
    kept["run_id"] = kept["machine_id"] + "-" + start.astype(str).to_numpy()
    features = values + sorted(added)
    kept = kept[["machine_id", "ts", "shot_number", "mold", "run_id", "edge_id", "seq", "ts_ms"] + features]
    day = kept["ts_ms"] // 86_400_000
    for d, part in kept.groupby(day, sort=True):
        date = pd.Timestamp(int(d) * 86_400_000, unit="ms").strftime("%Y-%m-%d")
        target = os.path.join(out, folder, f"date={date}")
        os.makedirs(target, exist_ok=True)
        part.drop(columns=["ts_ms"]).to_parquet(os.path.join(target, "part.parquet"), index=False)
    return len(shots), len(kept), counts


def main():
    lake, out = sys.argv[1], sys.argv[2]
    tol = int(sys.argv[3]) if len(sys.argv) > 3 else 30_000
    started = time.perf_counter()
    rows_in = rows_out = 0
    dropped = {}
    for mdir in sorted(glob.glob(os.path.join(lake, "raw_data", "machine=*"))):
        i, o, c = machine_etl(mdir, lake, out, tol)
        rows_in += i
        rows_out += o
        for k, n in c.items():
            dropped[k] = dropped.get(k, 0) + n
    seconds = time.perf_counter() - started
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"rows_in": rows_in, "rows_out": rows_out, "dropped": dropped, "seconds": seconds,
                      "peak_rss_mib": peak_kib / 1024, "pandas": pd.__version__}))


if __name__ == "__main__":
    main()
