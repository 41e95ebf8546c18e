"""Reads moldops lake datasets the way a data engineer's own tools would: pyarrow.dataset over
S3 (Hive partitions), without moldops, and checks each equals the same dataset in a local lake.

usage: lake_over_s3.py ENDPOINT BUCKET/PREFIX/lake LOCAL_LAKE DATASET...
Prints one JSON line per dataset: {"dataset", "rows", "columns"}; exits 1 on a difference."""
import json
import sys

import pyarrow.dataset as ds
import pyarrow.fs as pafs


def rows(dataset):
    table = dataset.to_table()
    # Row order is not part of the lake's contract: compare as sorted lists of rows.
    return table.column_names, sorted(json.dumps(r, sort_keys=True, default=str) for r in table.to_pylist())


def main():
    endpoint, remote, local = sys.argv[1:4]
    scheme, host = endpoint.split("://", 1)
    s3 = pafs.S3FileSystem(endpoint_override=host, scheme=scheme, access_key="test",
                           secret_key="test", region="us-east-1")
    failed = False
    for name in sys.argv[4:]:
        over_s3 = ds.dataset(f"{remote}/{name}", filesystem=s3, format="parquet", partitioning="hive")
        on_disk = ds.dataset(f"{local}/{name}", format="parquet", partitioning="hive")
        (cols_s3, rows_s3), (cols_disk, rows_disk) = rows(over_s3), rows(on_disk)
        same = sorted(cols_s3) == sorted(cols_disk) and rows_s3 == rows_disk
        print(json.dumps({"dataset": name, "rows": len(rows_s3), "local_rows": len(rows_disk),
                          "columns": len(cols_s3), "same": same}))
        failed |= not same or not rows_s3
    sys.exit(1 if failed else 0)


main()
