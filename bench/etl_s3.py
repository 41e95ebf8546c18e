"""ETL on a folder vs on an S3 bucket (moto on loopback), same lake, same binary.

usage: etl_s3.py MOLDOPS_CLOUD LAKE [--rounds N]

Each round, alternating: copy LAKE to a fresh folder and time `moldops-cloud etl --lake DIR`;
upload LAKE under a fresh prefix (not timed) and time `moldops-cloud etl --lake s3://…` with an
empty local cache (so the time includes fetching every object and publishing etl_data).
Asserts that both sides wrote the same etl_data (pyarrow, rows compared as sorted sets) and
prints one JSON line with the medians. Run with the S3 venv's python (moto, boto3, pyarrow)."""
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

import boto3
import pyarrow.dataset as ds
import pyarrow.fs as pafs


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rows(dataset):
    return sorted(json.dumps(r, sort_keys=True, default=str) for r in dataset.to_table().to_pylist())


def main():
    cloud, lake = sys.argv[1], sys.argv[2]
    rounds = int(sys.argv[sys.argv.index("--rounds") + 1]) if "--rounds" in sys.argv else 3
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    endpoint = f"http://127.0.0.1:{port}"
    env = dict(os.environ, AWS_ENDPOINT_URL=endpoint, AWS_ACCESS_KEY_ID="test", AWS_SECRET_ACCESS_KEY="test",
               AWS_REGION="us-east-1", RUST_LOG="warn")
    try:
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.1)
        s3 = boto3.client("s3", endpoint_url=endpoint, aws_access_key_id="test", aws_secret_access_key="test",
                          region_name="us-east-1")
        s3.create_bucket(Bucket="bench")
        files = [os.path.join(d, f) for d, _, fs in os.walk(lake) for f in fs if not f.startswith(".")]
        size = sum(os.path.getsize(f) for f in files)
        local_s, remote_s = [], []
        work = tempfile.mkdtemp(prefix="etl-s3-")
        for r in range(rounds):
            folder = os.path.join(work, f"local-{r}")
            shutil.copytree(lake, folder)
            t = time.perf_counter()
            subprocess.run([cloud, "etl", "--lake", folder, "--json"], env=env, check=True, stdout=subprocess.DEVNULL)
            local_s.append(time.perf_counter() - t)
            prefix = f"round-{r}/lake"
            for f in files:
                s3.upload_file(f, "bench", f"{prefix}/{os.path.relpath(f, lake)}")
            cache = os.path.join(work, f"cache-{r}")
            t = time.perf_counter()
            subprocess.run([cloud, "etl", "--lake", f"s3://bench/{prefix}", "--json"], check=True,
                           env=dict(env, MOLDOPS_CACHE_DIR=cache), stdout=subprocess.DEVNULL)
            remote_s.append(time.perf_counter() - t)
        fs = pafs.S3FileSystem(endpoint_override=f"127.0.0.1:{port}", scheme="http", access_key="test",
                               secret_key="test", region="us-east-1")
        on_s3 = rows(ds.dataset(f"bench/round-0/lake/etl_data", filesystem=fs, format="parquet", partitioning="hive"))
        on_disk = rows(ds.dataset(os.path.join(work, "local-0", "etl_data"), format="parquet", partitioning="hive"))
        assert on_s3 == on_disk and on_s3, "etl_data differs between the folder and the bucket"
        print(json.dumps({
            "lake_files": len(files), "lake_bytes": size, "etl_rows": len(on_s3), "rounds": rounds,
            "local_s": [round(x, 2) for x in local_s], "s3_s": [round(x, 2) for x in remote_s],
            "local_median_s": round(statistics.median(local_s), 2),
            "s3_median_s": round(statistics.median(remote_s), 2),
        }))
        shutil.rmtree(work, ignore_errors=True)
    finally:
        server.kill()


main()
