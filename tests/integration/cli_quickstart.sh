#!/usr/bin/env bash
# tests/integration/cli_quickstart.sh: scripts/quickstart really starts
# everything (its own nats-server, PostgreSQL, schedulerd, agentd) in a
# private run dir (JETSCHED_RUN_DIR, so a developer's .run/ is untouched),
# a demo task succeeds, the dead letter is there, the cron schedule fires;
# a second start leaves what runs alone; stop stops every process by PID;
# start works again after stop. Uses the existing build (JETSCHED_QS_SKIP_BUILD).
set -euo pipefail
: "${JETSCHED_BUILD_DIR:?}" "${JETSCHED_SOURCE_DIR:?}"
QS=$JETSCHED_SOURCE_DIR/scripts/quickstart
STATE=${JETSCHED_TEST_STATE:-$(mktemp -d)}
chmod 0711 "$STATE"
export JETSCHED_RUN_DIR=$STATE/qs-run
export JETSCHED_QS_BUILD_DIR=$JETSCHED_BUILD_DIR JETSCHED_QS_SKIP_BUILD=1
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}
unset JETSCHED_CONFIG JETSCHED_NATS_URL JETSCHED_PG_DSN
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
# preferred ports that are free now: the defaults may be a developer's quickstart
JETSCHED_QS_NATS_PORT=$(free_port) JETSCHED_QS_PG_PORT=$(free_port) JETSCHED_QS_WEB_PORT=$(free_port)
JETSCHED_QS_SCHED_HTTP_PORT=$(free_port) JETSCHED_QS_AGENT_HTTP_PORT=$(free_port)
export JETSCHED_QS_NATS_PORT JETSCHED_QS_PG_PORT JETSCHED_QS_SCHED_HTTP_PORT JETSCHED_QS_AGENT_HTTP_PORT JETSCHED_QS_WEB_PORT
OUT=$STATE/qs-out
trap '"$QS" stop >/dev/null 2>&1 || true' EXIT

fail() { printf 'FAIL: %s\n' "$*" >&2; for f in "$JETSCHED_RUN_DIR"/*.log; do [[ -f $f ]] && { echo "--- $f" >&2; tail -20 "$f" >&2; }; done; exit 1; }
has() { grep -q -- "$2" "$1" || { cat "$1" >&2; fail "no '$2' in $1"; }; }
pids() {
  cat "$JETSCHED_RUN_DIR"/{nats,schedulerd,agentd}.pid 2>/dev/null || true
  head -1 "$JETSCHED_RUN_DIR/pg/data/postmaster.pid" 2>/dev/null || true
}

echo "== first start, with the preferred agentd port taken"
python3 -c 'import socket,sys,time; s=socket.socket(); s.bind(("127.0.0.1",int(sys.argv[1]))); s.listen(); time.sleep(60)' \
  "$JETSCHED_QS_AGENT_HTTP_PORT" &
squatter=$!
trap 'kill $squatter 2>/dev/null || true; "$QS" stop >/dev/null 2>&1 || true' EXIT
for _ in $(seq 1 50); do (exec 3<>"/dev/tcp/127.0.0.1/$JETSCHED_QS_AGENT_HTTP_PORT") 2>/dev/null && break; sleep 0.1; done
"$QS" >"$OUT" 2>&1 || { cat "$OUT" >&2; fail "quickstart exited $?"; }
kill $squatter 2>/dev/null || true
has "$OUT" "port $JETSCHED_QS_AGENT_HTTP_PORT is in use; using"
grep -q "QS_AGENT_HTTP_PORT=$JETSCHED_QS_AGENT_HTTP_PORT" "$JETSCHED_RUN_DIR/env" && fail "the taken port was written to env"
has "$OUT" "nats-server started on nats://127.0.0.1:$JETSCHED_QS_NATS_PORT"
has "$OUT" "schedulerd started"
has "$OUT" "agentd started"
has "$OUT" "result: hello, Ada"
has "$OUT" "dead after 1 of 1 attempt(s)"
has "$OUT" "schedule heartbeat created"
has "$OUT" "jetsched is running"
has "$OUT" "web console on http://127.0.0.1:$JETSCHED_QS_WEB_PORT/"
has "$OUT" "operator token: $(cat "$JETSCHED_RUN_DIR/web/operator.token")"
curl -sf "http://127.0.0.1:$JETSCHED_QS_WEB_PORT/" | grep -q "<title>jetsched" || fail "the console's index.html is not served"
curl -sf -H 'Content-Type: application/json' -d "{\"token\":\"$(cat "$JETSCHED_RUN_DIR/web/viewer.token")\"}" \
  "http://127.0.0.1:$JETSCHED_QS_WEB_PORT/api/v1/login" | grep -q '"role":"viewer"' || fail "no console login with the viewer token"
[[ -f $JETSCHED_RUN_DIR/env ]] || fail "no env file"
grep -q "QS_NATS_PORT=$JETSCHED_QS_NATS_PORT" "$JETSCHED_RUN_DIR/env" || fail "ports not in env: $(cat "$JETSCHED_RUN_DIR/env")"
# issue 20 item 13: no trust, a private socket, private files
# shellcheck source=../../scripts/lib/server-bins.sh
. "$JETSCHED_SOURCE_DIR/scripts/lib/server-bins.sh"
jetsched_find_pg_bindir || fail "$JETSCHED_FIND_ERROR"
PGB=$JETSCHED_FOUND
grep -Eq '^[^#]*[[:space:]]trust([[:space:]]|$)' "$JETSCHED_RUN_DIR/pg/data/pg_hba.conf" && fail "pg_hba.conf trusts local users"
PGPASSWORD='' PGPASSFILE=/dev/null "$PGB/psql" -w -h 127.0.0.1 -p "$JETSCHED_QS_PG_PORT" -U postgres -c 'select 1' jetsched \
  >/dev/null 2>&1 && fail "PostgreSQL accepted a connection without the password"
PGPASSWORD=$(cat "$JETSCHED_RUN_DIR/pg-password") "$PGB/psql" -w -h 127.0.0.1 -p "$JETSCHED_QS_PG_PORT" -U postgres \
  -qAtc 'select 1' jetsched | grep -q 1 || fail "the password in pg-password does not work"
for f in env pg-password schedulerd.conf agentd.conf schedulerd.log agentd.log pg/postgres.log nats/nats.log; do
  mode=$(stat -c %a "$JETSCHED_RUN_DIR/$f")
  [[ $mode == 600 ]] || fail "$f has mode $mode, want 600"
done
mode=$(stat -c %a "$JETSCHED_RUN_DIR/pg")
[[ $mode == 700 ]] || fail "the socket directory has mode $mode, want 700"
first_pids=$(pids | sort)
[[ $(wc -l <<<"$first_pids") == 4 ]] || fail "expected 4 pids, got: $first_pids"

# shellcheck disable=SC1091
. "$JETSCHED_RUN_DIR/env"
JS=$JETSCHED_BUILD_DIR/cli/jetsched
"$JS" list >"$OUT" 2>&1 || fail "jetsched list after quickstart"
grep -q "hello  *succeeded" "$OUT" || fail "no succeeded hello task: $(cat "$OUT")"
"$JS" dlq list >"$OUT" 2>&1 || fail "jetsched dlq list: $(cat "$OUT")"
grep -q "webhook  *permanent_failure" "$OUT" || fail "the dead letter is missing: $(cat "$OUT")"

echo "== the cron schedule fires (every 10 s)"
ok=
for _ in $(seq 1 60); do
  if "$JS" --json list --schedule heartbeat --status succeeded 2>/dev/null |
    python3 -c 'import json,sys; sys.exit(0 if json.load(sys.stdin)["tasks"] else 1)'; then ok=1; break; fi
  sleep 0.5
done
[[ -n $ok ]] || fail "heartbeat did not fire within 30 s: $("$JS" schedule list 2>&1)"

echo "== a second start leaves everything running"
"$QS" >"$OUT" 2>&1 || { cat "$OUT" >&2; fail "second quickstart exited $?"; }
has "$OUT" "nats-server already running"
has "$OUT" "PostgreSQL already running"
has "$OUT" "schedulerd already running"
has "$OUT" "agentd already running"
has "$OUT" "schedule heartbeat exists already"
has "$OUT" "result: hello, Ada"
[[ $(pids | sort) == "$first_pids" ]] || fail "the second start changed the processes"
"$QS" status >"$OUT" 2>&1
for n in nats schedulerd agentd postgres; do has "$OUT" "$n: running"; done

echo "== stop stops every process it started"
"$QS" stop >"$OUT" 2>&1 || { cat "$OUT" >&2; fail "stop exited $?"; }
for p in $first_pids; do
  for _ in $(seq 1 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
  kill -0 "$p" 2>/dev/null && fail "pid $p still runs after stop"
done
has "$OUT" "stopped agentd"
has "$OUT" "stopped schedulerd"
has "$OUT" "stopped PostgreSQL"
has "$OUT" "stopped nats-server"
"$QS" status >"$OUT" 2>&1
for n in nats schedulerd agentd postgres; do has "$OUT" "$n: stopped"; done

echo "== start after stop: the data is kept"
"$QS" >"$OUT" 2>&1 || { cat "$OUT" >&2; fail "quickstart after stop exited $?"; }
has "$OUT" "result: hello, Ada"
has "$OUT" "schedule heartbeat exists already"
"$QS" stop >/dev/null 2>&1
echo "cli_quickstart: ok"
