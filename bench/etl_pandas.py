#!/usr/bin/env python3
"""The ETL merge of `moldops-cloud etl` in pandas, the baseline of the ETL benchmark
(`cloud/benches/etl.rs`, run by `bench/run`).

Per machine, as `moldops_cloud::etl` does it: shots sorted by (time, shot number, edge, seq);
the drop rules, first match wins (sentinel |v| >= 1e8, idle: every value zero or missing,
impossible: outside the physical limits, duplicate: same shot number and time as the shot
before); per peripheral device its readings sorted by time with the last of equal times kept,
joined backward as of the shot within the tolerance (exact times count) as `{alias}.{value}`;
production runs split on gaps > 15 min or a mould change; the output one Parquet file per
machine and UTC date, `OUT/machine={m}/date={d}/part.parquet`, with the same columns.

Written as a pandas user who knows the tools would: Parquet read through pyarrow, only the
columns the merge uses, times converted by their unit (the lake stores `timestamp[ms]`),
`merge_asof` on int64 milliseconds, and with `--jobs N` machines merged by N worker processes
(the GIL allows no more in one process), as our ETL merges N at once.

usage: etl_pandas.py LAKE OUT_DIR [--tolerance-ms 30000] [--jobs 1]
Prints one JSON line: rows in/out, dropped per reason, seconds, peak RSS (largest process).
"""
import argparse
import glob
import json
import os
import resource
import time
from concurrent.futures import ProcessPoolExecutor

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

# Lake columns that are not values (moldops_cloud::lake::FIXED_COLUMNS).
FIXED = {"edge_id", "seq", "site", "machine_id", "device_id", "ts", "shot_number", "mold", "out_of_range", "epoch"}
SHOT_UNUSED = {"site", "out_of_range", "device_id", "epoch"}
READING_UNUSED = {"site", "out_of_range", "machine_id", "shot_number", "mold", "epoch"}
LIMITS = {"Cycle_Time": (0.001, 3600.0), "Injection_Time": (0.0, 3600.0), "Filling_Time": (0.0, 3600.0),
          "Plasticizing_Time": (0.0, 3600.0), "Clamp_Close_Time": (0.0, 3600.0)}
SENTINEL = 1.0e8
RUN_GAP_MS = 15 * 60 * 1000
DAY_MS = 86_400_000
ID_COLUMNS = ["machine_id", "ts", "shot_number", "mold", "run_id", "edge_id", "seq"]


def read(paths, unused):
    """The part files' used columns as one frame with `ts_ms` (int64 ms whatever the stored unit)."""
    tables = []
    for p in paths:
        names = [n for n in pq.read_schema(p).names if n not in unused]
        tables.append(pq.read_table(p, columns=names))
    if not tables:
        return None
    table = pa.concat_tables(tables, promote_options="default")
    ts_ms = pc.cast(pc.cast(table["ts"], pa.timestamp("ms", tz="UTC")), pa.int64())
    return table.append_column("ts_ms", ts_ms).to_pandas()


def alias(machine, device):
    prefix = machine + "-"
    return device[len(prefix):] if device.startswith(prefix) and len(device) > len(prefix) else device


def drop_reasons(shots, values):
    v = shots[values]
    sentinel = (v.abs() >= SENTINEL).any(axis=1)
    idle = ((v == 0) | v.isna()).all(axis=1)
    impossible = pd.Series(False, index=shots.index)
    for c, (lo, hi) in LIMITS.items():
        if c in shots:
            impossible |= (shots[c] < lo) | (shots[c] > hi)
    same_shot = shots["shot_number"].eq(shots["shot_number"].shift(1)).fillna(False).astype(bool)
    dup = same_shot & shots["ts_ms"].eq(shots["ts_ms"].shift(1))
    idle &= ~sentinel
    impossible &= ~sentinel & ~idle
    dup &= ~sentinel & ~idle & ~impossible
    counts = {"sentinel": int(sentinel.sum()), "idle": int(idle.sum()), "impossible": int(impossible.sum()),
              "duplicate": int(dup.sum())}
    return sentinel | idle | impossible | dup, counts


def run_ids(machine, ts, mold):
    """`{machine}-{first ts}` per production run: a new run after a gap > 15 min or a mould change."""
    gap = ts.diff().isna() | (ts.diff() > RUN_GAP_MS)
    prev = mold.shift(1)
    changed = mold.ne(prev) & ~(mold.isna() & prev.isna())
    start = ts.where(gap | changed).ffill().astype("int64")
    return machine + "-" + start.astype(str)


def machine_etl(job):
    mdir, lake, out, tol = job
    folder = os.path.basename(mdir)
    shots = read(sorted(glob.glob(os.path.join(mdir, "date=*", "*.parquet"))), SHOT_UNUSED)
    periph = read(sorted(glob.glob(os.path.join(lake, "peripheral_data", folder, "date=*", "*.parquet"))),
                  READING_UNUSED)
    shots = shots.sort_values(["ts_ms", "shot_number", "edge_id", "seq"], kind="stable", ignore_index=True)
    values = sorted(c for c in shots.columns if c not in FIXED and c != "ts_ms")
    dropped, counts = drop_reasons(shots, values)
    kept = shots[~dropped].reset_index(drop=True)
    machine = kept["machine_id"].iloc[0] if len(kept) else ""
    added = []
    if periph is not None and len(kept):
        for device, rows in periph.groupby("device_id", sort=True):
            cols = [c for c in rows.columns if c not in FIXED and c != "ts_ms" and rows[c].notna().any()]
            right = rows.sort_values(["ts_ms", "edge_id", "seq"], kind="stable")
            right = right.drop_duplicates("ts_ms", keep="last")[["ts_ms"] + cols]
            a = alias(machine, device)
            names = {c: f"{a}.{c}" for c in cols}
            added += names.values()
            kept = pd.merge_asof(kept, right.rename(columns=names), on="ts_ms", direction="backward",
                                 tolerance=tol, allow_exact_matches=True)
    kept["run_id"] = run_ids(machine, kept["ts_ms"], kept["mold"])
    features = values + sorted(added)
    day = kept["ts_ms"] // DAY_MS
    kept = kept[ID_COLUMNS + features]
    for d, part in kept.groupby(day, sort=True):
        date = pd.Timestamp(int(d) * DAY_MS, unit="ms").strftime("%Y-%m-%d")
        target = os.path.join(out, folder, f"date={date}")
        os.makedirs(target, exist_ok=True)
        pq.write_table(pa.Table.from_pandas(part, preserve_index=False), os.path.join(target, "part.parquet"))
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return len(shots), len(kept), counts, peak_kib


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("lake")
    ap.add_argument("out")
    ap.add_argument("--tolerance-ms", type=int, default=30_000)
    ap.add_argument("--jobs", type=int, default=1)
    a = ap.parse_args()
    started = time.perf_counter()
    jobs = [(m, a.lake, a.out, a.tolerance_ms) for m in sorted(glob.glob(os.path.join(a.lake, "raw_data", "machine=*")))]
    if a.jobs > 1:
        with ProcessPoolExecutor(max_workers=a.jobs) as pool:
            results = list(pool.map(machine_etl, jobs))
    else:
        results = [machine_etl(j) for j in jobs]
    seconds = time.perf_counter() - started
    dropped = {}
    for _, _, counts, _ in results:
        for k, n in counts.items():
            dropped[k] = dropped.get(k, 0) + n
    peak_kib = max([r[3] for r in results] + [resource.getrusage(resource.RUSAGE_SELF).ru_maxrss])
    print(json.dumps({"rows_in": sum(r[0] for r in results), "rows_out": sum(r[1] for r in results),
                      "dropped": dropped, "seconds": seconds, "peak_rss_mib": peak_kib / 1024, "jobs": a.jobs,
                      "pandas": pd.__version__, "pyarrow": pa.__version__}))


if __name__ == "__main__":
    main()
