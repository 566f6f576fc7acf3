#!/usr/bin/env bash
# bench/workflow.sh: workflows (issue 18; docs/WORKFLOWS.md, docs/PERFORMANCE.md
# "Workflows"). Starts its own nats-server and PostgreSQL
# (tests/harness/with-servers), one schedulerd (REST API on web.listen) and
# one agentd (handler noop, concurrency 32), then:
#  1. fan-in latency: RUNS times a workflow of one root, N children and a
#     fan-in node waiting for all of them (workflow.submit over REST); per run
#     the time from the last child's finish to the fan-in's start (PostgreSQL
#     history times); p50 and p99 (target p99 <= 50 ms);
#  2. throughput: N independent nodes as one workflow (workflow.submit)
#     against the same N tasks through task.submit_many (1,000 a request):
#     tasks/s from the first submit to the last success (target: the
#     workflow no more than 25 % slower).
#
# Usage: bench/workflow.sh [--build DIR] [--children N] [--runs R]
#   --build DIR   schedulerd, agentd, jetsched and the plugins (default build-bench,
#                 built RelWithDebInfo without sanitizers when missing)
# BENCH_LOG_LEVEL=debug: schedulerd logs each releaser round (rows, step,
#   commit and publish times); per fan-in run the last child's finish, the
#   fan-in's dispatch and start, and the last rounds are printed.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
BUILD=$ROOT/build-bench N=10000 RUNS=5 INNER=0
while (($#)); do
  case $1 in
    --build) BUILD=$2; shift ;;
    --children) N=$2; shift ;;
    --runs) RUNS=$2; shift ;;
    --inner) INNER=1 ;;
    -h | --help) sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "bench/workflow.sh: unknown option $1" >&2; exit 2 ;;
  esac
  shift
done
say() { printf 'bench/workflow: %s\n' "$*" >&2; }

if ((!INNER)); then
  if [[ ! -x $BUILD/scheduler/schedulerd || ! -x $BUILD/agentd/agentd ]]; then
    cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
    cmake --build "$BUILD" -j2 --target schedulerd agentd jetsched_cli jetsched_plugins >/dev/null
  fi
  exec "$ROOT/tests/harness/with-servers" --nats --pg -- "$0" --inner --build "$BUILD" --children "$N" --runs "$RUNS"
fi

W=$(mktemp -d "$JETSCHED_TEST_STATE/wf.XXXX")
psql_() { psql -X -q -At -v ON_ERROR_STOP=1 "$JETSCHED_TEST_PG_DSN" "$@"; }
export JETSCHED_NATS_URL=$JETSCHED_TEST_NATS_URL JETSCHED_PG_DSN=$JETSCHED_TEST_PG_DSN
"$BUILD/cli/jetsched" migrate --sql-dir "$ROOT/sql" >/dev/null
"$BUILD/cli/jetsched" init --queue default >/dev/null

TOKEN=bench-token-0123456789abcdef
echo $TOKEN >"$W/token"
free_port() { python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }
PORT=$(free_port) HPORT=$(free_port) APORT=$(free_port)
cat >"$W/s.conf" <<CONF
scheduler = { id = "bench-wf"; };
log = { level = "${BENCH_LOG_LEVEL:-info}"; };
http = { listen = "127.0.0.1:$HPORT"; };
api = { max_payload = "1MiB"; };
web = { listen = "127.0.0.1:$PORT";
  tokens = ( { name = "bench"; role = "operator"; file = "$W/token"; } ); };
CONF
cat >"$W/a.conf" <<CONF
agent = { id = "bench-wf-agent"; heartbeat = "5s"; plugin_dir = "$BUILD/plugins"; };
http = { listen = "127.0.0.1:$APORT"; };
queues = ( { name = "default"; concurrency = 32; } );
CONF
JETSCHED_SQL_DIR=$ROOT/sql "$BUILD/scheduler/schedulerd" -c "$W/s.conf" >"$W/s.log" 2>&1 &
SPID=$!
"$BUILD/agentd/agentd" -c "$W/a.conf" >"$W/a.log" 2>&1 &
APID=$!
trap 'kill $SPID $APID 2>/dev/null; wait $SPID $APID 2>/dev/null || true' EXIT
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$PORT/api/v1/openapi.json" >/dev/null && break; sleep 0.2; done
for _ in $(seq 100); do [[ $(psql_ -c "SELECT count(*) FROM scheduler_epoch WHERE holder IS NOT NULL") == 1 ]] && break; sleep 0.2; done
sleep 2 # the agent registers

post() { # path body-file -> reply in $W/reply
  curl -s -o "$W/reply" -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' \
    --data-binary "@$2" "http://127.0.0.1:$PORT$1"
  grep -q '"error"' "$W/reply" && { say "ERROR on $1: $(head -c 300 "$W/reply")"; exit 1; }
  return 0
}
wait_sql() { # query that must answer t
  for _ in $(seq 6000); do [[ $(psql_ -c "$1") == t ]] && return 0; sleep 0.05; done
  say "timeout: $1"; exit 1
}

say "fan-out/fan-in of $N children, $RUNS runs"
lat=()
for ((r = 1; r <= RUNS; r++)); do
  # one request holds at most 10,000 nodes: root + half the children, the
  # other half, then the fan-in with close
  python3 - "$N" "fan$r" "$W" <<'PY'
import json, sys
n, wf, w = int(sys.argv[1]), sys.argv[2], sys.argv[3]
half = n // 2
kids = lambda lo, hi: [{"id": "c%d" % i, "handler": "noop", "depends_on": ["root"]} for i in range(lo, hi)]
open(w + "/fan1.json", "w").write(json.dumps({"id": wf, "open": True, "tasks": [{"id": "root", "handler": "noop"}] + kids(0, half)}))
open(w + "/fan2.json", "w").write(json.dumps({"tasks": kids(half, n)}))
open(w + "/fan3.json", "w").write(json.dumps({"close": True, "tasks": [{"id": "join", "handler": "noop",
    "depends_on": ["c%d" % i for i in range(n)]}]}))
PY
  t0=$(date +%s%N)
  post /api/v1/workflows "$W/fan1.json"
  post "/api/v1/workflows/fan$r/add" "$W/fan2.json"
  post "/api/v1/workflows/fan$r/add" "$W/fan3.json"
  wait_sql "SELECT status = 'succeeded' FROM workflows WHERE id = 'fan$r'"
  ms=$((($(date +%s%N) - t0) / 1000000))
  l=$(psql_ -c "SELECT round(extract(epoch from (SELECT started_at FROM tasks WHERE id = 'fan$r-join') -
        (SELECT max(finished_at) FROM tasks WHERE workflow_id = 'fan$r' AND id LIKE 'fan$r-c%')) * 1000, 1)")
  lat+=("$l")
  if [[ ${BENCH_LOG_LEVEL:-} == debug ]]; then
    psql_ -c "SELECT 'last child finished ' || (extract(epoch from max(finished_at)) * 1000)::bigint || ', its row written ' ||
        (extract(epoch from max(updated_at)) * 1000)::bigint FROM tasks WHERE workflow_id = 'fan$r' AND id LIKE 'fan$r-c%'" >&2
    psql_ -c "SELECT 'fan-in dispatched ' || (extract(epoch from dispatched_at) * 1000)::bigint || ', started ' ||
        (extract(epoch from started_at) * 1000)::bigint FROM tasks WHERE id = 'fan$r-join'" >&2
    grep 'workflow releaser: round' "$W/s.log" | tail -8 >&2
  fi
  say "run $r: fan-in started $l ms after the last child finished; workflow of $((N + 2)) nodes in $ms ms"
done
printf '%s\n' "${lat[@]}" | sort -n | awk -v runs="$RUNS" '{v[NR]=$1} END {
  p50 = v[int((NR + 1) / 2)]; p99 = v[NR]
  printf "\nfan-in start after the last child (ms, %d runs): p50 %.1f  p99 %.1f (target p99 <= 50) %s\n", NR, p50, p99,
    (p99 <= 50 ? "met" : "MISSED") }'

say "throughput: $N independent tasks as one workflow vs task.submit_many"
python3 - "$N" "$W" <<'PY'
import json, sys
n, w = int(sys.argv[1]), sys.argv[2]
for k, lo in enumerate(range(0, n, 5000)):
    body = {"tasks": [{"id": "t%d" % i, "handler": "noop"} for i in range(lo, min(lo + 5000, n))]}
    if k == 0:
        body.update({"id": "flat", "open": True})
    open(w + "/flat%d.json" % k, "w").write(json.dumps(body))
PY
t0=$(date +%s%N)
post /api/v1/workflows "$W/flat0.json"
for f in "$W"/flat[1-9]*.json; do [[ -e $f ]] && post /api/v1/workflows/flat/add "$f"; done
echo '{"close":true}' >"$W/close.json"
post /api/v1/workflows/flat/add "$W/close.json"
wait_sql "SELECT status = 'succeeded' FROM workflows WHERE id = 'flat'"
wf_ms=$((($(date +%s%N) - t0) / 1000000))
for ((lo = 0; lo < N; lo += 1000)); do
  python3 - "$lo" "$((lo + 1000 < N ? lo + 1000 : N))" >"$W/batch.$lo.json" <<'PY'
import json, sys
lo, hi = int(sys.argv[1]), int(sys.argv[2])
print(json.dumps({"tasks": [{"id": "m%d" % i, "handler": "noop"} for i in range(lo, hi)]}))
PY
done
t0=$(date +%s%N)
for ((lo = 0; lo < N; lo += 1000)); do post /api/v1/tasks/batch "$W/batch.$lo.json"; done
wait_sql "SELECT count(*) = $N FROM tasks WHERE id LIKE 'm%' AND status = 'succeeded'"
many_ms=$((($(date +%s%N) - t0) / 1000000))
awk -v n="$N" -v a="$wf_ms" -v b="$many_ms" 'BEGIN {
  printf "workflow: %d tasks in %d ms (%.0f tasks/s); task.submit_many: %d ms (%.0f tasks/s); overhead %+.0f %% (target <= 25 %%) %s\n",
    n, a, n * 1000 / a, b, n * 1000 / b, (a - b) * 100 / b, ((a - b) * 100 / b <= 25 ? "met" : "MISSED") }'
