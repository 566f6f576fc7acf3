#!/usr/bin/env bash
# tests/integration/quickstart_as.sh MODE — scripts/quickstart where first
# contact failed (issue 21), on the existing build (JETSCHED_QS_SKIP_BUILD):
#   root-private  as root, with the run dir inside a 0700 root directory that
#                 user postgres cannot enter (a checkout under /root):
#                 PostgreSQL's directory goes under /var/tmp, .run/pg links to it
#   user          as a throwaway ordinary user (useradd) with a copy of the
#                 built tree in its home and a user's PATH without /usr/sbin
#                 (where Debian puts nats-server)
# Each: start (servers, daemons, the demo's Lua task succeeds), status, stop
# (every process gone). Needs root (useradd, runuser); as another user it
# re-runs itself with sudo -n, and fails when that is not allowed.
set -euo pipefail
MODE=${1:?usage: quickstart_as.sh root-private|user}
: "${JETSCHED_BUILD_DIR:?}" "${JETSCHED_SOURCE_DIR:?}"
if ((EUID != 0)); then
  exec sudo -n -E "$0" "$@" || { echo "FAIL: this test needs root or passwordless sudo" >&2; exit 1; }
fi
STATE=${JETSCHED_TEST_STATE:-$(mktemp -d)}
chmod 0711 "$STATE"
OUT=$STATE/qs-out
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
fail() {
  printf 'FAIL: %s\n' "$*" >&2
  [[ -f $OUT ]] && { echo "--- quickstart output" >&2; cat "$OUT" >&2; }
  for f in "${RUN:-/nonexistent}"/*.log "${RUN:-/nonexistent}"/*/*.log; do [[ -f $f ]] && { echo "--- $f" >&2; tail -20 "$f" >&2; }; done
  exit 1
}
has() { grep -q -- "$1" "$OUT" || fail "no '$1' in the quickstart output"; }
pids() {
  cat "$RUN"/{nats,schedulerd,agentd}.pid 2>/dev/null || true
  head -1 "$RUN/pg/data/postmaster.pid" 2>/dev/null || true
}
ports=(JETSCHED_QS_NATS_PORT="$(free_port)" JETSCHED_QS_PG_PORT="$(free_port)"
  JETSCHED_QS_SCHED_HTTP_PORT="$(free_port)" JETSCHED_QS_AGENT_HTTP_PORT="$(free_port)" JETSCHED_QS_WEB_PORT="$(free_port)")
san=(ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}" UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}")

# check_run QS...: start, status, stop with the command prefix QS...; the
# start's output must also have every line of EXPECT_START.
EXPECT_START=()
check_run() {
  local p first
  echo "== start"
  "$@" >"$OUT" 2>&1 || fail "quickstart exited $?"
  has "nats-server started on nats://127.0.0.1:"
  has "PostgreSQL started on 127.0.0.1:"
  has "agentd started"
  has "result: hello, Ada"
  has "jetsched is running"
  for p in "${EXPECT_START[@]}"; do has "$p"; done
  first=$(pids)
  [[ $(wc -l <<<"$first") == 4 ]] || fail "expected 4 pids, got: $first"
  echo "== status"
  "$@" status >"$OUT" 2>&1 || fail "status exited $?"
  for p in nats schedulerd agentd postgres; do has "$p: running"; done
  echo "== stop"
  "$@" stop >"$OUT" 2>&1 || fail "stop exited $?"
  has "stopped PostgreSQL (pid"
  has "stopped nats-server"
  grep -q "signalled" "$OUT" && fail "PostgreSQL was signalled, pg_ctl stop did not work"
  for p in $first; do
    for _ in $(seq 1 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$p" 2>/dev/null && fail "pid $p still runs after stop"
  done
  return 0
}

case $MODE in
  root-private)
    PRIV=$STATE/private # like /root: 0700, owned by root
    mkdir -m 0700 "$PRIV"
    RUN=$PRIV/jetsched/.run
    EXT=
    cleanup() {
      JETSCHED_RUN_DIR=$RUN "$JETSCHED_SOURCE_DIR/scripts/quickstart" stop >/dev/null 2>&1 || true
      [[ -n $EXT && $EXT == /var/tmp/jetsched-quickstart-pg.* ]] && rm -rf -- "$EXT"
      return 0
    }
    trap cleanup EXIT
    runuser -u postgres -- test -x "$PRIV" && fail "premise: user postgres can enter $PRIV"
    EXPECT_START=("user postgres cannot enter .*; PostgreSQL's directory is /var/tmp/jetsched-quickstart-pg\.")
    check_run env JETSCHED_RUN_DIR="$RUN" JETSCHED_QS_BUILD_DIR="$JETSCHED_BUILD_DIR" JETSCHED_QS_SKIP_BUILD=1 \
      "${ports[@]}" "${san[@]}" "$JETSCHED_SOURCE_DIR/scripts/quickstart"
    [[ -L $RUN/pg ]] || fail "$RUN/pg is not a link to a directory postgres can use"
    EXT=$(readlink "$RUN/pg")
    [[ $EXT == /var/tmp/jetsched-quickstart-pg.* && -f $EXT/data/PG_VERSION ]] || fail "PostgreSQL's directory: '$EXT'"
    [[ $(stat -c %U "$EXT") == postgres ]] || fail "$EXT is not owned by postgres"
    echo "== again: the same PostgreSQL directory, the data kept"
    EXPECT_START=("schedule heartbeat exists already")
    check_run env JETSCHED_RUN_DIR="$RUN" JETSCHED_QS_BUILD_DIR="$JETSCHED_BUILD_DIR" JETSCHED_QS_SKIP_BUILD=1 \
      "${ports[@]}" "${san[@]}" "$JETSCHED_SOURCE_DIR/scripts/quickstart"
    [[ $(readlink "$RUN/pg") == "$EXT" ]] || fail "the second start moved PostgreSQL's directory"
    ;;
  user)
    U=jsqs$$
    H=$STATE/home-$U
    RUN=$H/jetsched/.run
    cleanup() {
      if id "$U" >/dev/null 2>&1; then
        runuser -u "$U" -- env -i PATH=/usr/bin:/bin JETSCHED_RUN_DIR="$RUN" "$H/jetsched/scripts/quickstart" stop >/dev/null 2>&1 || true
        local p
        for p in $(pgrep -u "$U" || true); do kill -KILL "$p" 2>/dev/null || true; done
        userdel -r "$U" >/dev/null 2>&1 || userdel "$U" || true
      fi
      return 0
    }
    trap cleanup EXIT
    useradd --create-home --home-dir "$H" --shell /bin/bash "$U" || fail "useradd $U"
    # the built tree the user gets: the scripts, the SQL, the web console, the daemons, CLI and plugins
    mkdir -p "$H/jetsched/build"/{cli,scheduler,agentd}
    cp -a "$JETSCHED_SOURCE_DIR/scripts" "$JETSCHED_SOURCE_DIR/sql" "$JETSCHED_SOURCE_DIR/web" "$H/jetsched/"
    cp -a "$JETSCHED_BUILD_DIR/plugins" "$H/jetsched/build/"
    cp -a "$JETSCHED_BUILD_DIR/cli/jetsched" "$H/jetsched/build/cli/"
    cp -a "$JETSCHED_BUILD_DIR/scheduler/schedulerd" "$H/jetsched/build/scheduler/"
    cp -a "$JETSCHED_BUILD_DIR/agentd/agentd" "$H/jetsched/build/agentd/"
    cp "$JETSCHED_SOURCE_DIR/tests/lsan.supp" "$H/jetsched/"
    chown -R "$U:" "$H"
    USER_PATH=/usr/local/bin:/usr/bin:/bin
    echo "user $U, PATH=$USER_PATH (nats-server on it: $(PATH=$USER_PATH command -v nats-server || echo no))"
    check_run runuser -u "$U" -- env -i HOME="$H" USER="$U" LOGNAME="$U" PATH="$USER_PATH" LANG=C.UTF-8 \
      JETSCHED_RUN_DIR="$RUN" JETSCHED_QS_BUILD_DIR="$H/jetsched/build" JETSCHED_QS_SKIP_BUILD=1 \
      "${ports[@]}" "${san[@]}" LSAN_OPTIONS="suppressions=$H/jetsched/lsan.supp:print_suppressions=0" \
      "$H/jetsched/scripts/quickstart"
    left=$(pgrep -u "$U" -a || true)
    [[ -z $left ]] || fail "processes of $U left after stop: $left"
    [[ $(stat -c %U "$RUN/pg/data/PG_VERSION") == "$U" ]] || fail "PostgreSQL's data is not the user's"
    ;;
  *) echo "usage: quickstart_as.sh root-private|user" >&2; exit 2 ;;
esac
echo "quickstart_as $MODE: ok"
