#!/usr/bin/env bash
# bench/web.sh: the HTTP API on a large history (issue 16; docs/PERFORMANCE.md
# "HTTP API and console"). Starts its own nats-server and PostgreSQL
# (tests/harness/with-servers), fills `tasks` with N rows (default 10,000,000:
# 10 queues and 50 handlers, each plus a rare one (1 in 10,000), 90 % succeeded / 5 % dead / 3 %
# queued / 2 % expired, one in ten fired by one of 100 schedules, created over
# 30 days), starts schedulerd with web.listen, and times over HTTP (curl,
# best and median of 5) GET /api/v1/tasks: the first page and a deep page
# (a cursor 15 days back) with no filter and with each filter (status, queue,
# a rare queue, handler, a rare handler, schedule, queue+status), and GET /api/v1/stats
# (the overview's rollup). Then holds S streams of GET /api/v1/events open
# (default 200 for 60 s) while events are published at R per second, and
# reports schedulerd's RSS and CPU and the events each stream received.
#
# Usage: bench/web.sh [--build DIR] [--tasks N] [--sse N] [--sse-seconds S] [--rate R]
#   --build DIR   a build directory with scheduler/schedulerd and cli/jetsched (default build-bench,
#                 built RelWithDebInfo without sanitizers when missing)
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
BUILD=$ROOT/build-bench TASKS=10000000 SSE=200 SSE_SECONDS=60 RATE=200 INNER=0
while (($#)); do
  case $1 in
    --build) BUILD=$2; shift ;;
    --tasks) TASKS=$2; shift ;;
    --sse) SSE=$2; shift ;;
    --sse-seconds) SSE_SECONDS=$2; shift ;;
    --rate) RATE=$2; shift ;;
    --inner) INNER=1 ;;
    -h | --help) sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "bench/web.sh: unknown option $1" >&2; exit 2 ;;
  esac
  shift
done
say() { printf 'bench/web: %s\n' "$*" >&2; }

if ((!INNER)); then
  if [[ ! -x $BUILD/scheduler/schedulerd ]]; then
    cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
    cmake --build "$BUILD" -j2 --target schedulerd jetsched_cli >/dev/null
  fi
  exec "$ROOT/tests/harness/with-servers" --nats --pg -- "$0" --inner --build "$BUILD" --tasks "$TASKS" \
    --sse "$SSE" --sse-seconds "$SSE_SECONDS" --rate "$RATE"
fi

W=$(mktemp -d "$JETSCHED_TEST_STATE/web.XXXX")
psql_() { psql -X -q -v ON_ERROR_STOP=1 "$JETSCHED_TEST_PG_DSN" "$@"; }
export JETSCHED_NATS_URL=$JETSCHED_TEST_NATS_URL JETSCHED_PG_DSN=$JETSCHED_TEST_PG_DSN
"$BUILD/cli/jetsched" migrate --sql-dir "$ROOT/sql" >/dev/null
"$BUILD/cli/jetsched" init --queue q0 >/dev/null

say "inserting $TASKS tasks (in chunks of 1,000,000)"
t0=$(date +%s)
for ((lo = 1; lo <= TASKS; lo += 1000000)); do
  hi=$((lo + 999999 > TASKS ? TASKS : lo + 999999))
  psql_ -c "INSERT INTO tasks (id, queue, handler, status, attempts, created_at, updated_at, finished_at, schedule_id)
    SELECT 'b' || lpad(g::text, 9, '0'), CASE WHEN g % 10000 = 3 THEN 'qrare' ELSE 'q' || (g % 10) END,
      CASE WHEN g % 10000 = 7 THEN 'rare' ELSE 'h' || (g % 50) END,
      CASE WHEN g % 100 < 90 THEN 'succeeded' WHEN g % 100 < 95 THEN 'dead' WHEN g % 100 < 98 THEN 'queued'
           ELSE 'expired' END, 1,
      now() - ($TASKS - g) * (interval '30 days' / $TASKS), now() - ($TASKS - g) * (interval '30 days' / $TASKS),
      now() - ($TASKS - g) * (interval '30 days' / $TASKS),
      CASE WHEN g % 10 = 0 THEN 's' || (g % 100) END
    FROM generate_series($lo, $hi) g"
done
psql_ -c "VACUUM ANALYZE tasks"
say "inserted in $(($(date +%s) - t0)) s"

TOKEN=bench-token-0123456789abcdef
echo $TOKEN >"$W/token"
free_port() { python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }
PORT=$(free_port) HPORT=$(free_port)
cat >"$W/s.conf" <<CONF
scheduler = { id = "bench-web"; };
http = { listen = "127.0.0.1:$HPORT"; };
rollup = { interval = "1s"; };
web = { listen = "127.0.0.1:$PORT"; sse_max_clients = $((SSE + 10)); max_connections = $((SSE + 64)); max_connections_per_ip = 0;
  tokens = ( { name = "bench"; role = "operator"; file = "$W/token"; } ); };
CONF
JETSCHED_SQL_DIR=$ROOT/sql "$BUILD/scheduler/schedulerd" -c "$W/s.conf" >"$W/s.log" 2>&1 &
SPID=$!
trap 'kill $SPID 2>/dev/null; wait $SPID 2>/dev/null || true' EXIT
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$PORT/api/v1/openapi.json" >/dev/null && break; sleep 0.2; done

# A deep cursor: created 15 days ago (base64url of "<unix us>|<id>").
deep_us=$(psql_ -Atc "SELECT (extract(epoch from now() - interval '15 days') * 1000000)::bigint")
DEEP=$(printf '%s|%s' "$deep_us" "zzzz" | base64 -w0 | tr '+/' '-_' | tr -d '=')

timeit() { # path -> "best median" in ms over 5 runs
  local t=() i
  for i in 1 2 3 4 5; do
    t+=("$(curl -s -o "$W/out" -w '%{time_total}' -H "Authorization: Bearer $TOKEN" "http://127.0.0.1:$PORT$1")")
    grep -q '^{"error"' "$W/out" && { say "ERROR on $1: $(head -c 300 "$W/out")"; }
  done
  printf '%s\n' "${t[@]}" | sort -n | awk '{v[NR]=$1*1000} END {printf "%7.1f %7.1f", v[1], v[3]}'
}
printf '\n%-44s %14s %14s\n' "GET /api/v1/tasks (limit 50) on $TASKS rows" "first best/med" "deep best/med"
for f in "" "status=dead" "queue=q3" "queue=qrare" "handler=h7" "handler=rare" "schedule=s40" "queue=q3&status=queued"; do
  printf '%-44s %14s %14s\n' "${f:-(no filter)}" "$(timeit "/api/v1/tasks?limit=50&$f")" \
    "$(timeit "/api/v1/tasks?limit=50&$f&cursor=$DEEP")"
done
sleep 3
printf '%-44s %14s\n' "GET /api/v1/stats?since=1h (rollup)" "$(timeit "/api/v1/stats?since=1h")"

if ((SSE > 0)); then
  say "$SSE event streams for $SSE_SECONDS s, $RATE events/s"
  pids=()
  for ((i = 0; i < SSE; i++)); do
    curl -sN -m $((SSE_SECONDS + 130)) -H "Authorization: Bearer $TOKEN" \
      "http://127.0.0.1:$PORT/api/v1/events?queue=q0" >"$W/sse.$i" 2>/dev/null &
    pids+=($!)
  done
  t0=$(date +%s)
  until [[ $(curl -s "http://127.0.0.1:$HPORT/metrics" | awk '$1 == "jetsched_web_sse_clients" {print $2}') == "$SSE" ]]; do
    (($(date +%s) - t0 < 120)) || { say "only $(curl -s "http://127.0.0.1:$HPORT/metrics" | grep '^jetsched_web_sse_clients') streams after 120 s"; break; }
    sleep 0.2
  done
  say "$SSE streams connected in $(($(date +%s) - t0)) s"
  cpu0=$(awk '{print $14 + $15}' /proc/$SPID/stat)
  # Events as agentd publishes them, on core NATS (a raw client of the NATS text protocol).
  python3 - "$JETSCHED_TEST_NATS_URL" "$RATE" "$SSE_SECONDS" <<'PY' &
import socket, sys, time
host, port = sys.argv[1].split("//")[1].split(":")
rate, secs = int(sys.argv[2]), int(sys.argv[3])
s = socket.create_connection((host, int(port)))
s.recv(4096)
s.sendall(b'CONNECT {"verbose":false}\r\n')
t0, n = time.time(), 0
while time.time() - t0 < secs:
    body = b'{"id":"ev-%d","status":"succeeded","attempt":1,"agent":"bench","at":"now"}' % n
    s.sendall(b"PUB jetsched.event.q0.ev-%d %d\r\n%s\r\n" % (n, len(body), body))
    n += 1
    time.sleep(max(0, t0 + n / rate - time.time()))
print(n)
PY
  PUBPID=$!
  maxrss=0
  for ((s = 0; s < SSE_SECONDS; s++)); do
    rss=$(awk '/VmRSS/ {print $2}' /proc/$SPID/status)
    ((rss > maxrss)) && maxrss=$rss
    sleep 1
  done
  wait $PUBPID || true
  cpu1=$(awk '{print $14 + $15}' /proc/$SPID/stat)
  # Until every event is delivered (the counter stops moving for 2 s; at most 60 s).
  t0=$(date +%s) last=-1 still=0
  while ((still < 10 && $(date +%s) - t0 < 60)); do
    now=$(curl -s "http://127.0.0.1:$HPORT/metrics" | awk '$1 == "jetsched_web_sse_events_total" {print $2}')
    if [[ $now == "$last" ]]; then still=$((still + 1)); else still=0; fi
    last=$now
    sleep 0.2
  done
  say "delivery settled $(($(date +%s) - t0)) s after the last event"
  kill "${pids[@]}" 2>/dev/null || true
  wait "${pids[@]}" 2>/dev/null || true
  sent=$((RATE * SSE_SECONDS))
  got=$(for ((i = 0; i < SSE; i++)); do grep -c '^data: ' "$W/sse.$i" || true; done | sort -n | awk '{v[NR]=$1} END {print v[1], v[int((NR+1)/2)], v[NR]}')
  hz=$(getconf CLK_TCK)
  printf '\n%d streams x %d s at %d events/s (~%d sent): events per stream min/median/max %s\n' "$SSE" "$SSE_SECONDS" \
    "$RATE" "$sent" "$got"
  printf 'schedulerd: max RSS %d KiB, CPU %.1f %% of one core over the run; cut off: %s\n' "$maxrss" \
    "$(awk -v a="$cpu0" -v b="$cpu1" -v hz="$hz" -v s="$SSE_SECONDS" 'BEGIN {print (b - a) * 100 / hz / s}')" "$(grep -c 'cut off' "$W/s.log" || true)"
fi
