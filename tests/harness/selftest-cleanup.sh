#!/usr/bin/env bash
# shellcheck disable=SC2016 # assertions are given to eval in single quotes on purpose
# tests/harness/selftest-cleanup.sh — test that with-servers never leaves
# processes or temp dirs behind: when the test command SIGKILLs itself, when
# with-servers itself (or its whole process group) is SIGKILLed, when the
# test that started with-servers is SIGKILLed (alone, as ctest does), on SIGTERM,
# when a server cannot start; plus exit status, stdin and signal pass-through
# and parallel runs. Runs on its own (not under with-servers):
#   tests/harness/selftest-cleanup.sh
# Prints "N passed, M failed"; exits non-zero when anything failed.
# JH_SELFTEST_CASES="case1 case4:TERM:143" runs only those cases;
# JH_SELFTEST_HOLD=1 makes case 1 wait with its servers up (case 9 runs case
# 1 so, as the test it kills).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
WITH=$HERE/with-servers
# Helpers only (_jh_tree, _jh_sweep, _jh_alive, _jh_now_ms); no jh_init here.
# shellcheck source=servers.sh
source "$HERE/servers.sh"

# Every run below uses TMPDIR=$TMPROOT so leftovers are easy to see.
WORK=$(mktemp -d "${TMPDIR:-/tmp}/jetsched-cleanup-selftest.XXXXXXXXXX")
TMPROOT=$WORK/tmp
mkdir -p "$TMPROOT"
chmod 0711 "$WORK" "$TMPROOT" # the postgres user must reach its data dir
BG_PIDS=()
on_exit() {
  local p
  for p in "${BG_PIDS[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
  rm -rf -- "$WORK"
}
trap on_exit EXIT

passed=0 failed=0
ok() { passed=$((passed + 1)); printf 'ok %d - %s\n' "$((passed + failed))" "$*"; }
not_ok() { failed=$((failed + 1)); printf 'not ok %d - %s\n' "$((passed + failed))" "$*"; }
check() {
  local desc=$1
  shift
  if "$@"; then ok "$desc"; else not_ok "$desc"; fi
}

# wait_file FILE SECONDS: wait until FILE is non-empty.
wait_file() {
  local deadline=$(($(_jh_now_ms) + $2 * 1000))
  until [[ -s $1 ]]; do
    (($(_jh_now_ms) < deadline)) || return 1
    sleep 0.05
  done
}

# watchdogs STATE: pid:start of the harness watchdogs serving STATE.
watchdogs() {
  local f p
  for f in /proc/[0-9]*/environ; do
    p=${f#/proc/}
    p=${p%/environ}
    if { tr '\0' '\n' <"$f" | grep -qxF "JH_WD_STATE=$1"; } 2>/dev/null && _jh_alive "$p"; then
      printf '%s:%s\n' "$p" "$_JH_START"
    fi
  done
}

# snapshot STATE: pid:start of everything belonging to that run right now:
# recorded servers and command with all their descendants (postgres
# children included), processes naming STATE, and the watchdogs.
snapshot() {
  local state=$1 rec pid start _r
  local -a roots=()
  for rec in "$state"/run/*.pid; do
    [[ -s $rec ]] || continue
    read -r pid start _r <"$rec" || continue
    _jh_alive "$pid" "$start" && roots+=("$pid")
  done
  ((${#roots[@]} == 0)) || _jh_tree "${roots[@]}"
  _jh_sweep "$state"
  watchdogs "$state"
}

# all_gone STATE SNAPSHOT_FILE: nothing of the run is left.
all_gone() {
  local state=$1 t
  [[ ! -e $state ]] || return 1
  [[ -z $(_jh_sweep "$state") ]] || return 1
  [[ -z $(watchdogs "$state") ]] || return 1
  while read -r t; do
    [[ -n $t ]] || continue
    _jh_alive "${t%%:*}" "${t#*:}" && return 1
  done <"$2"
  return 0
}

# gone_within SECONDS STATE SNAPSHOT_FILE: poll all_gone; report what is left.
gone_within() {
  local deadline=$(($(_jh_now_ms) + $1 * 1000)) t0
  t0=$(_jh_now_ms)
  until all_gone "$2" "$3"; do
    if (($(_jh_now_ms) >= deadline)); then
      printf '# left behind after %s s:\n' "$1"
      [[ -e $2 ]] && printf '#   state dir %s\n' "$2"
      while read -r t; do
        [[ -n $t ]] || continue
        _jh_alive "${t%%:*}" "${t#*:}" && printf '#   pid %s: %s\n' "${t%%:*}" "$({ tr '\0' ' ' <"/proc/${t%%:*}/cmdline"; } 2>/dev/null)"
      done < <(cat "$3"; _jh_sweep "$2"; watchdogs "$2")
      return 1
    fi
    sleep 0.1
  done
  printf '# cleaned up in %s ms\n' "$(($(_jh_now_ms) - t0))"
}

count_servers() { # SNAPSHOT_FILE: how many nats-server/postgres processes it holds
  local t c=0 a
  while read -r t; do
    a=$({ tr '\0' ' ' <"/proc/${t%%:*}/cmdline"; } 2>/dev/null) || continue
    [[ $a == *nats-server* || $a == *postgres* ]] && c=$((c + 1))
  done <"$1"
  printf '%s' "$c"
}

# ------------------------------------------------------------------ 1. CMD SIGKILLs itself

case1() {
  local sf=$WORK/c1.state go=$WORK/c1.go snap=$WORK/c1.snap rc=0 state
  # shellcheck disable=SC2016 # expanded by the inner bash
  TMPDIR=$TMPROOT "$WITH" --nats --pg -- bash -c \
    'printf "%s\n" "$JETSCHED_TEST_STATE" >"$1"; while [[ ! -e $2 ]]; do sleep 0.05; done; kill -9 $$' \
    _ "$sf" "$go" &
  local ws=$!
  BG_PIDS+=("$ws")
  check "case 1: servers start (state dir announced)" wait_file "$sf" 180
  state=$(<"$sf")
  snapshot "$state" >"$snap"
  check "case 1: snapshot holds nats-server and postgres (with children)" eval '(($(count_servers "$snap") >= 3))'
  if [[ -n ${JH_SELFTEST_HOLD:-} ]]; then # case 9 SIGKILLs us here (a builtin read: no child left over)
    mkfifo "$WORK/c1.hold"
    : >"$WORK/c1.held"
    read -r -t 600 _ <>"$WORK/c1.hold" || true
  fi
  : >"$go"
  wait "$ws" || rc=$?
  check "case 1: with-servers exits with the command's status 137 (SIGKILL)" test "$rc" -eq 137
  check "case 1: state dir removed by the time with-servers exits" test ! -e "$state"
  check "case 1: no process of the run left (within 15 s)" gone_within 15 "$state" "$snap"
}

# ------------------------------------------------------------------ 2. with-servers SIGKILLed

case2() {
  local sf=$WORK/c2.state snap=$WORK/c2.snap state rc=0
  # shellcheck disable=SC2016
  TMPDIR=$TMPROOT "$WITH" --nats --nats-cluster --pg -- bash -c \
    'printf "%s\n" "$JETSCHED_TEST_STATE" >"$1"; exec sleep 300' _ "$sf" &
  local ws=$!
  BG_PIDS+=("$ws")
  check "case 2: servers start (state dir announced)" wait_file "$sf" 180
  state=$(<"$sf")
  sleep 0.2 # let the command exec sleep
  snapshot "$state" >"$snap"
  check "case 2: snapshot holds 3 cluster nodes, nats and postgres" eval '(($(count_servers "$snap") >= 5))'
  check "case 2: snapshot holds the test command" grep -q . "$snap"
  kill -KILL "$ws"
  wait "$ws" 2>/dev/null || rc=$?
  check "case 2: with-servers died of SIGKILL" test "$rc" -eq 137
  check "case 2: watchdogs stop servers and command, remove the state dir (within 15 s)" \
    gone_within 15 "$state" "$snap"
}

# ------------------------------------------------------------------ 3. process group SIGKILLed

case3() {
  local sf=$WORK/c3.state snap=$WORK/c3.snap state
  # A new session/process group holding with-servers and its command, killed
  # as a whole (like a CI runner or `timeout -s KILL` does).
  # shellcheck disable=SC2016
  TMPDIR=$TMPROOT setsid "$WITH" --nats --pg -- bash -c \
    'printf "%s\n" "$JETSCHED_TEST_STATE" >"$1"; sleep 300' _ "$sf" &
  local ws=$!
  BG_PIDS+=("$ws")
  check "case 3: servers start (state dir announced)" wait_file "$sf" 180
  state=$(<"$sf")
  sleep 0.2
  snapshot "$state" >"$snap"
  kill -KILL -- "-$ws" 2>/dev/null || kill -KILL "$ws"
  wait "$ws" 2>/dev/null || true
  check "case 3: whole process group SIGKILLed: everything cleaned up (within 15 s)" \
    gone_within 15 "$state" "$snap"
}

# ------------------------------------------------------------------ 4. SIGTERM / SIGINT

case4() {
  local sig=$1 want=$2 sf=$WORK/c4$1.state snap=$WORK/c4$1.snap state rc=0 t0
  # shellcheck disable=SC2016
  (
    trap - INT QUIT # a background job would otherwise ignore SIGINT
    TMPDIR=$TMPROOT exec "$WITH" --nats --pg -- bash -c \
      'printf "%s\n" "$JETSCHED_TEST_STATE" >"$1"; sleep 300 & wait' _ "$sf"
  ) &
  local ws=$!
  BG_PIDS+=("$ws")
  check "case 4 ($sig): servers start" wait_file "$sf" 180
  state=$(<"$sf")
  sleep 0.2
  snapshot "$state" >"$snap"
  t0=$(_jh_now_ms)
  kill -s "$sig" "$ws"
  wait "$ws" || rc=$?
  check "case 4 ($sig): with-servers exits $want" test "$rc" -eq "$want"
  check "case 4 ($sig): ... promptly (< 12 s)" test $(($(_jh_now_ms) - t0)) -lt 12000
  check "case 4 ($sig): state dir gone at exit" test ! -e "$state"
  check "case 4 ($sig): command tree and servers gone (within 15 s)" gone_within 15 "$state" "$snap"
}

# ------------------------------------------------------------------ 5. start failure

case5() {
  local out rc=0 before after
  before=$(find "$TMPROOT" -mindepth 1 -maxdepth 1 | wc -l)
  out=$(TMPDIR=$TMPROOT JETSCHED_NATS_SERVER=/nonexistent/nats-server "$WITH" --nats --pg -- true 2>&1) || rc=$?
  after=$(find "$TMPROOT" -mindepth 1 -maxdepth 1 | wc -l)
  check "case 5: nats-server that cannot start makes with-servers exit 1" test "$rc" -eq 1
  check "case 5: ... with a clear error and the log tail" \
    eval '[[ $out == *"nats-server did not start"* && $out == *"/nonexistent/nats-server"*"not found"* ]]'
  check "case 5: ... and the state dir removed" test "$before" -eq "$after"
  rc=0
  out=$(TMPDIR=$TMPROOT JETSCHED_PG_BINDIR=/nonexistent/bin "$WITH" --nats --pg -- true 2>&1) || rc=$?
  after=$(find "$TMPROOT" -mindepth 1 -maxdepth 1 | wc -l)
  check "case 5: PostgreSQL that cannot start (after nats did) makes with-servers exit 1" test "$rc" -eq 1
  check "case 5: ... with a clear error" eval '[[ $out == *"PostgreSQL did not start"* && $out == *"/nonexistent/bin"* ]]'
  check "case 5: ... the already started nats-server stopped and the state dir removed" \
    eval '(( before == after )) && [[ -z $(_jh_sweep "$TMPROOT") ]]'
}

# ------------------------------------------------------------------ 6. pass-through

case6() {
  local rc=0 out
  TMPDIR=$TMPROOT "$WITH" -- sh -c 'exit 7' || rc=$?
  check "case 6: exit status of the command is returned (7)" test "$rc" -eq 7
  out=$(echo hello-stdin | TMPDIR=$TMPROOT "$WITH" -- cat)
  check "case 6: stdin reaches the command" test "$out" = hello-stdin
  out=$(TMPDIR=$TMPROOT "$WITH" -- sh -c 'grep SigIgn /proc/$$/status')
  check "case 6: SIGINT is not ignored in the command ($out)" eval '(((16#${out##*[[:space:]]} & 2) == 0))'
  check "case 6: usage error without a command (exit 2)" eval '"$WITH" --nats >/dev/null 2>&1; (($? == 2))'
  check "case 6: unknown option is an error (exit 2)" eval '"$WITH" --nope -- true >/dev/null 2>&1; (($? == 2))'
}

# ------------------------------------------------------------------ 7. parallel runs

case7() {
  local i rc
  local -a pids=()
  for i in 1 2 3; do
    # (JETSCHED_PG_BINDIR: exported by with-servers, the shared lookup's)
    # shellcheck disable=SC2016
    TMPDIR=$TMPROOT "$WITH" --nats --pg -- bash -c \
      '[[ $("$JETSCHED_PG_BINDIR/psql" "$JETSCHED_TEST_PG_DSN" -XAtqc "select 1") == 1 ]] &&
       exec 3<>"/dev/tcp/127.0.0.1/${JETSCHED_TEST_NATS_URL##*:}" && read -r -t 3 l <&3 && [[ $l == *"\"jetstream\":true"* ]]' \
      >"$WORK/c7.$i.out" 2>&1 &
    pids+=($!)
  done
  for i in 0 1 2; do
    rc=0
    wait "${pids[i]}" || rc=$?
    check "case 7: parallel run $((i + 1)) of 3 works (rc=$rc)" test "$rc" -eq 0
    ((rc == 0)) || sed 's/^/#   /' "$WORK/c7.$((i + 1)).out"
  done
}

# ------------------------------------------------------------------ 8. library used directly

case8() {
  local script=$WORK/c8.sh sf rc out state mode snap=$WORK/c8.snap
  cat >"$script" <<'SCRIPT'
#!/usr/bin/env bash
set -euo pipefail
source "$1"
jh_init
jh_start_nats
jh_start_pg
printf '%s\n' "$JETSCHED_TEST_STATE" >"$2"
psql=$(_jh_pg_bindir)/psql
jh_pg_stop
jh_pg_start
[[ $("$psql" "$JETSCHED_TEST_PG_DSN" -XAtqc 'select 1') == 1 ]]
jh_nats_stop
jh_nats_start
case $3 in
  stop) jh_stop_all; [[ ! -e $JETSCHED_TEST_STATE ]]; echo stopped ;;
  exit) echo exiting ;;
  fail) false ;;
esac
SCRIPT
  for mode in stop exit fail; do
    sf=$WORK/c8.$mode.state
    rc=0
    out=$(TMPDIR=$TMPROOT bash "$script" "$HERE/servers.sh" "$sf" "$mode" 2>&1) || rc=$?
    state=$(cat "$sf" 2>/dev/null || true)
    : >"$snap"
    if [[ $mode == fail ]]; then
      check "case 8 ($mode): set -e failure in a script using servers.sh exits 1" test "$rc" -eq 1
    else
      check "case 8 ($mode): script using servers.sh under set -euo pipefail succeeds" test "$rc" -eq 0
    fi
    if [[ $mode != fail && $rc != 0 ]] || [[ $mode == fail && $rc != 1 ]]; then printf '%s\n' "$out" | sed 's/^/#   /'; fi
    check "case 8 ($mode): state dir announced" test -n "$state"
    check "case 8 ($mode): nothing left behind (within 15 s)" gone_within 15 "${state:-/nonexistent}" "$snap"
  done
}

# ------------------------------------------------------------------ 9. the test itself SIGKILLed mid-case

# ctest kills only its direct child on a timeout (cmake 3.25: no process
# tree, no group), so with-servers runs of a test that starts them itself
# (this script) are orphaned mid-case. Run this self-test's case 1 as the
# "test", SIGKILL that one PID while case 1 waits, and check that every
# process of its run (servers, command, with-servers, watchdogs) ends.
case9() {
  local dir=$WORK/c9 snap=$WORK/c9.snap log=$WORK/c9.log sf='' state owner_pid owner_start t deadline n
  local -a left=()
  mkdir -p "$dir"
  TMPDIR=$dir JH_SELFTEST_CASES=case1 JH_SELFTEST_HOLD=1 "$HERE/selftest-cleanup.sh" >"$log" 2>&1 &
  local test_pid=$!
  BG_PIDS+=("$test_pid")
  deadline=$(($(_jh_now_ms) + 180000))
  while [[ -z $sf ]] && (($(_jh_now_ms) < deadline)); do
    for t in "$dir"/jetsched-cleanup-selftest.*; do [[ -e $t/c1.held ]] && sf=$t/c1.state; done
    sleep 0.05
  done
  check "case 9: the nested self-test reached case 1 (servers up, command waiting)" test -n "$sf"
  if [[ -z $sf ]]; then sed 's/^/#   /' "$log"; return; fi
  state=$(<"$sf")
  read -r owner_pid owner_start <"$state/owner"
  { snapshot "$state"; printf '%s:%s\n' "$owner_pid" "$owner_start"; } >"$snap"
  n=$(count_servers "$snap")
  check "case 9: snapshot holds nats-server and postgres (with children): $n" test "$n" -ge 3
  if ((n < 3)); then { ls -l "$state/run"; cat "$snap" "$log"; } 2>&1 | sed 's/^/#   /'; fi
  check "case 9: ... and the nested with-servers (pid $owner_pid)" _jh_alive "$owner_pid" "$owner_start"
  kill -KILL "$test_pid"
  wait "$test_pid" 2>/dev/null || true
  check "case 9: test SIGKILLed mid-case: its servers, command and with-servers end (within 45 s: SIGTERM, SIGKILL after 15 s, teardown)" \
    gone_within 45 "$state" "$snap"
  # Whatever survived was started by this test: end it (by PID and start time).
  mapfile -t left < <(cat "$snap"; watchdogs "$state")
  _jh_kill_hard "${left[@]}"
}

for spec in ${JH_SELFTEST_CASES:-case1 case2 case3 case4:TERM:143 case4:INT:130 case5 case6 case7 case8 case9}; do
  IFS=: read -r -a args <<<"$spec"
  "${args[@]}"
done

check "no jetsched-test.* dir left in TMPDIR" eval '[[ -z $(find "$TMPROOT" -mindepth 1 -maxdepth 1 -name "jetsched-test.*") ]]'
check "no process mentions the test TMPDIR" eval '[[ -z $(_jh_sweep "$TMPROOT") ]]'

printf '%d passed, %d failed\n' "$passed" "$failed"
((failed == 0))
