#!/usr/bin/env python3
"""Checks that two ETL outputs hold the same data: `moldops-cloud etl`'s `etl_data` and the
pandas baseline's output (`bench/etl_pandas.py`), both laid out `machine={m}/date={d}/*.parquet`.

Same partitions; per partition the same rows in the same order and the same values in every
column the baseline writes (times compared as int64 milliseconds, floats exactly, nulls as
nulls). Ours also has the label columns (`label`, `label_source`, `defect`); on a lake without
labels they must be all null. Prints one JSON line (`{"equal": true, "partitions": …, "rows": …,
"columns": …}`) and exits 1 with the first difference otherwise.

usage: etl_compare.py OURS_DIR BASELINE_DIR
"""
import glob
import json
import os
import sys

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

LABEL_COLUMNS = ["label", "label_source", "defect"]


def partitions(root):
    found = {}
    for path in glob.glob(os.path.join(root, "machine=*", "date=*", "*.parquet")):
        date_dir = os.path.dirname(path)
        key = (os.path.basename(os.path.dirname(date_dir)), os.path.basename(date_dir))
        found.setdefault(key, []).append(path)
    return found


def frame(paths):
    table = pa.concat_tables([pq.read_table(p) for p in sorted(paths)], promote_options="default")
    if "ts" in table.column_names:
        ts = pc.cast(pc.cast(table["ts"], pa.timestamp("ms", tz="UTC")), pa.int64())
        table = table.set_column(table.column_names.index("ts"), "ts", ts)
    return table.to_pandas()


def fail(message):
    print(json.dumps({"equal": False, "difference": message}))
    sys.exit(1)


def main():
    ours_dir, base_dir = sys.argv[1], sys.argv[2]
    ours, base = partitions(ours_dir), partitions(base_dir)
    if set(ours) != set(base):
        fail(f"partitions differ: only ours {sorted(set(ours) - set(base))[:5]}, "
             f"only baseline {sorted(set(base) - set(ours))[:5]}")
    if not ours:
        fail("no partitions on either side")
    rows = 0
    columns = set()
    for key in sorted(ours):
        a, b = frame(ours[key]), frame(base[key])
        for c in LABEL_COLUMNS:
            if c in a and a[c].notna().any():
                fail(f"{key}: ours has labels in {c} on a lake without labels")
        a = a.drop(columns=[c for c in LABEL_COLUMNS if c in a])
        if set(a.columns) != set(b.columns):
            fail(f"{key}: columns differ: only ours {sorted(set(a.columns) - set(b.columns))}, "
                 f"only baseline {sorted(set(b.columns) - set(a.columns))}")
        if len(a) != len(b):
            fail(f"{key}: {len(a)} rows in ours, {len(b)} in the baseline")
        try:
            pd.testing.assert_frame_equal(a.reset_index(drop=True), b[list(a.columns)].reset_index(drop=True),
                                          check_dtype=False, check_exact=True)
        except AssertionError as e:
            fail(f"{key}: {str(e).splitlines()[0:6]}")
        rows += len(a)
        columns |= set(a.columns)
    print(json.dumps({"equal": True, "partitions": len(ours), "rows": rows, "columns": len(columns)}))


if __name__ == "__main__":
    main()
