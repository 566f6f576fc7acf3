# shellcheck shell=bash
# tests/integration/cli_lib.sh: sourced by the cli_*.sh tests. Runs against
# the servers of tests/harness/with-servers --nats --pg: migrates, creates
# the NATS objects, starts a real schedulerd and agentd (native plugins of
# the build, Lua scripts of scripts/lua) and stops them on exit; `run` and
# `has` check exit codes and output of the jetsched command.
set -euo pipefail

: "${JETSCHED_TEST_NATS_URL:?run under tests/harness/with-servers --nats --pg}"
: "${JETSCHED_TEST_PG_DSN:?run under tests/harness/with-servers --nats --pg}"
: "${JETSCHED_BUILD_DIR:?}" "${JETSCHED_SOURCE_DIR:?}"
JS=$JETSCHED_BUILD_DIR/cli/jetsched
export JETSCHED_NATS_URL=$JETSCHED_TEST_NATS_URL
export JETSCHED_PG_DSN=$JETSCHED_TEST_PG_DSN
export JETSCHED_SQL_DIR=$JETSCHED_SOURCE_DIR/sql
export JETSCHED_JETSTREAM_LEADER_TTL=3s
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}
export ASAN_OPTIONS UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
unset JETSCHED_CONFIG
TMP=$(mktemp -d "${JETSCHED_TEST_STATE:-/tmp}/cli.XXXXXX")
CLI_PIDS=()

cli_cleanup() {
  local pid
  for pid in "${CLI_PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${CLI_PIDS[@]}"; do
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
  done
}
trap cli_cleanup EXIT

fail() {
  printf 'FAIL: %s\n' "$*" >&2
  for f in "$TMP"/*.log; do [[ -f $f ]] && { echo "--- $f" >&2; tail -30 "$f" >&2; }; done
  exit 1
}
# run EXPECTED_RC CMD...: output in $TMP/out and $TMP/err; checks the exit code
run() {
  local want=$1 rc=0; shift
  "$@" >"$TMP/out" 2>"$TMP/err" || rc=$?
  if [[ $rc != "$want" ]]; then
    cat "$TMP/out" "$TMP/err" >&2
    fail "'$*' exited $rc, expected $want"
  fi
}
# has out|err TEXT: the last run's stdout/stderr contains TEXT
has() { grep -q -- "$2" "$TMP/$1" || { cat "$TMP/out" "$TMP/err" >&2; fail "no '$2' in $1"; }; }
# json EXPR: evaluates a Python expression over the last stdout parsed as JSON (d)
json() { python3 -c 'import json,sys; d=json.loads(open(sys.argv[1]).read()); print(eval(sys.argv[2]))' "$TMP/out" "$1"; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_ready() { # port seconds pid name
  local _
  for _ in $(seq 1 $(($2 * 10))); do
    kill -0 "$3" 2>/dev/null || fail "$4 exited during start-up"
    curl -sf "http://127.0.0.1:$1/readyz" >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  fail "$4 not ready after $2 s"
}
# wait_for SECONDS CMD...: retries CMD (quietly) until it succeeds
wait_for() {
  local n=$(($1 * 5)); shift
  for _ in $(seq 1 "$n"); do "$@" >/dev/null 2>&1 && return 0; sleep 0.2; done
  return 1
}

# cli_setup QUEUE...: schema, NATS objects for the queues
cli_setup() {
  local args=() q
  for q in "$@"; do args+=(--queue "$q"); done
  "$JS" migrate >/dev/null || fail "migrate"
  "$JS" init "${args[@]}" >/dev/null || fail "init"
}

start_schedulerd() { # id
  local port; port=$(free_port)
  cat >"$TMP/$1.conf" <<EOF
scheduler = { id = "$1"; tick = "100ms"; };
http = { listen = "127.0.0.1:$port"; };
EOF
  "$JETSCHED_BUILD_DIR/scheduler/schedulerd" -c "$TMP/$1.conf" >"$TMP/$1.log" 2>&1 &
  CLI_PIDS+=($!)
  # shellcheck disable=SC2034 # read by the sourcing test (cli_dlq.sh)
  SCHED_PID=$!
  wait_ready "$port" 30 "$!" "schedulerd $1"
}

start_agentd() { # id "queues list"
  local port; port=$(free_port)
  cat >"$TMP/$1.conf" <<EOF
agent = { id = "$1"; plugin_dir = "$JETSCHED_BUILD_DIR/plugins"; lua_dir = "$JETSCHED_SOURCE_DIR/scripts/lua"; heartbeat = "1s"; };
http = { listen = "127.0.0.1:$port"; };
queues = ( $2 );
exec = { commands = (
  { name = "fail"; argv = ["/bin/sh", "-c", "echo boom >&2; exit 3"]; },
  { name = "slow"; argv = ["/bin/sh", "-c", "sleep 30"]; },
  { name = "flaky"; argv = ["/bin/sh", "-c", "if [ -f $TMP/fixed ]; then echo fixed; else echo not yet >&2; exit 3; fi"]; }
); };
EOF
  "$JETSCHED_BUILD_DIR/agentd/agentd" -c "$TMP/$1.conf" >"$TMP/$1.log" 2>&1 &
  CLI_PIDS+=($!)
  # shellcheck disable=SC2034 # read by the sourcing test (cli_dlq.sh)
  AGENT_PID=$!
  wait_ready "$port" 30 "$!" "agentd $1"
}
