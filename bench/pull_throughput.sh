#!/usr/bin/env bash
# Pull throughput: ROWS shot rows (time, machine, mold, counter, 23 values) from a PostgreSQL table
# and ROWS readings (machine tag, 3 fields) from an InfluxDB 1.x measurement, pulled by the release
# `moldops-cloud pull` into a new lake; then the same pull again (nothing new: the cost of a no-op
# hourly pull). Servers are started on loopback and removed at the end; run as root or as a user
# who may run PostgreSQL. Usage: bench/pull_throughput.sh [ROWS] (default 200000).
set -euo pipefail
ROWS="${1:-200000}"
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
BIN="${CARGO_TARGET_DIR:-$ROOT/target}/release/moldops-cloud"
[ -x "$BIN" ] || { echo "build it first: cargo build --release -p moldops-cloud" >&2; exit 1; }
PG_BIN="$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)"
WORK="$(mktemp -d /tmp/moldops-pullbench.XXXXXX)"
chmod 755 "$WORK"
PGPORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
INFPORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
RPCPORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
as_pg() { if [ "$(id -u)" = 0 ]; then setpriv --reuid=postgres --regid=postgres --init-groups -- "$@"; else "$@"; fi; }
cleanup() { kill "${PG_PID:-}" "${INF_PID:-}" 2>/dev/null || true; sleep 1; rm -rf "$WORK"; }
trap cleanup EXIT

mkdir -p "$WORK/pg" && { [ "$(id -u)" != 0 ] || chown postgres "$WORK/pg"; }
as_pg "$PG_BIN/initdb" -D "$WORK/pg/data" -A trust -U postgres --no-sync -E UTF8 --locale=C >/dev/null
as_pg "$PG_BIN/postgres" -D "$WORK/pg/data" -p "$PGPORT" -k "$WORK/pg" -c listen_addresses=127.0.0.1 \
  -c fsync=off >"$WORK/pg.log" 2>&1 &
PG_PID=$!
cat >"$WORK/influx.conf" <<EOF
reporting-disabled = true
bind-address = "127.0.0.1:$RPCPORT"
[meta]
  dir = "$WORK/influx/meta"
[data]
  dir = "$WORK/influx/data"
  wal-dir = "$WORK/influx/wal"
  query-log-enabled = false
[http]
  bind-address = "127.0.0.1:$INFPORT"
  log-enabled = false
  max-row-limit = 0
[monitor]
  store-enabled = false
EOF
influxd run -config "$WORK/influx.conf" >"$WORK/influx.log" 2>&1 &
INF_PID=$!
for _ in $(seq 100); do
  psql -X -q -h 127.0.0.1 -p "$PGPORT" -U postgres -c 'select 1' >/dev/null 2>&1 \
    && curl -sf "http://127.0.0.1:$INFPORT/ping" >/dev/null && break
  sleep 0.2
done

python3 - "$ROWS" "$WORK" <<'EOF'
import random, sys
rows, work = int(sys.argv[1]), sys.argv[2]
random.seed(1)
t0 = 1714521600000
with open(f"{work}/shots.csv", "w") as f, open(f"{work}/tcu.lp", "w") as g:
    f.write("ts,machine,mold,shot_no," + ",".join(f"v{i}" for i in range(23)) + "\n")
    for i in range(rows):
        m = f"M{i % 8 + 1}"
        ts = t0 + (i // 8) * 30000 + i % 8
        vals = ",".join(repr(round(random.gauss(100, 10), 6)) for _ in range(23))
        f.write(f"{ts / 1000:.3f},{m},MOLD-{i // 5000},{i // 8},{vals}\n")
        g.write(f"tcu,machine={m} supply={random.gauss(60, 1)!r},ret={random.gauss(55, 1)!r},flow={random.gauss(12, .5)!r} {ts * 1000000}\n")
EOF
cols=$(for i in $(seq 0 22); do printf ', v%d double precision' "$i"; done)
psql -X -q -h 127.0.0.1 -p "$PGPORT" -U postgres -c "CREATE TABLE shots (id bigserial primary key, ts timestamptz, machine text, mold text, shot_no bigint$cols)"
psql -X -q -h 127.0.0.1 -p "$PGPORT" -U postgres -c "CREATE TEMP TABLE s (ts double precision, machine text, mold text, shot_no bigint$cols)" \
  -c "\\copy s FROM '$WORK/shots.csv' CSV HEADER" \
  -c "INSERT INTO shots (ts, machine, mold, shot_no, $(seq -s, -f 'v%g' 0 22)) SELECT to_timestamp(ts), machine, mold, shot_no, $(seq -s, -f 'v%g' 0 22) FROM s"
curl -sf -XPOST "http://127.0.0.1:$INFPORT/query" --data-urlencode "q=CREATE DATABASE plant" >/dev/null
split -l 10000 "$WORK/tcu.lp" "$WORK/lp."
for f in "$WORK"/lp.*; do curl -sf -XPOST "http://127.0.0.1:$INFPORT/write?db=plant&precision=ns" --data-binary "@$f"; done

cat >"$WORK/shots.toml" <<'EOF'
name = "bench"
shot_number = "shot_no"
mold = "mold"
ignore = ["id"]
[time]
column = "ts"
[machine]
column = "machine"
default = "M0"
EOF
cat >"$WORK/tcu.toml" <<'EOF'
name = "tcu"
kind = "peripheral"
device = "tcu"
[time]
column = "time"
[machine]
column = "machine"
default = "M0"
EOF
cat >"$WORK/pull.toml" <<EOF
[[source]]
name = "shots"
kind = "postgres"
url = "postgres://postgres@127.0.0.1:$PGPORT/postgres"
table = "public.shots"
time_column = "ts"
key = ["id"]
tls = "off"                # the benchmark's server on loopback has no certificate
profile = "shots.toml"
look_back_s = 3600

[[source]]
name = "tcu"
kind = "influxdb1"
url = "http://127.0.0.1:$INFPORT"
database = "plant"
measurement = "tcu"
key = ["machine"]
profile = "tcu.toml"
look_back_s = 3600
EOF
echo "== first pull ($ROWS rows per source)"
"$BIN" pull "$WORK/pull.toml" --lake "$WORK/lake" --json
echo "== the same pull again (nothing new)"
"$BIN" pull "$WORK/pull.toml" --lake "$WORK/lake" --json
