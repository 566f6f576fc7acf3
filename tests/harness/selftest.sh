#!/usr/bin/env bash
# shellcheck disable=SC2016 # assertions are given to eval in single quotes on purpose
# tests/harness/selftest.sh — test of the test harness itself (servers.sh,
# ctl, harness.c). Run as:
#   tests/harness/with-servers --nats --nats-cluster --pg -- tests/harness/selftest.sh
# Asserts every server answers (PostgreSQL through the DSN, NATS INFO with
# JetStream on every port, the JetStream API, the cluster's meta leader),
# then drives ctl (PG stop/start/kill, single NATS stop/start, cluster node
# kill/start/restart) and checks the servers come back with their data.
# Prints "N passed, M failed"; exits non-zero when anything failed.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
# Helpers only (_jh_info_line, _jh_http_get, ...); no jh_init here.
# shellcheck source=servers.sh
source "$HERE/servers.sh"

passed=0 failed=0
ok() { passed=$((passed + 1)); printf 'ok %d - %s\n' "$((passed + failed))" "$*"; }
not_ok() { failed=$((failed + 1)); printf 'not ok %d - %s\n' "$((passed + failed))" "$*"; }
# check DESCRIPTION CMD...: one assertion.
check() {
  local desc=$1
  shift
  if "$@" >/dev/null; then ok "$desc"; else not_ok "$desc"; fi
}
# eventually SECONDS CMD...: retry CMD every 0.2 s until it succeeds.
eventually() {
  local deadline=$(($(_jh_now_ms) + $1 * 1000))
  shift
  until "$@" >/dev/null 2>&1; do
    (($(_jh_now_ms) < deadline)) || return 1
    sleep 0.2
  done
}
finish() {
  printf '%d passed, %d failed\n' "$passed" "$failed"
  ((failed == 0))
}

require_env() {
  local v
  for v in "$@"; do
    if [[ -z ${!v:-} ]]; then
      not_ok "environment variable $v is set (run under with-servers --nats --nats-cluster --pg)"
      finish || true
      exit 1
    fi
  done
}
require_env JETSCHED_TEST_STATE JETSCHED_TEST_HARNESS JETSCHED_TEST_NATS_URL \
  JETSCHED_TEST_NATS_CLUSTER_URLS JETSCHED_TEST_PG_DSN JETSCHED_TEST_PG_PORT

CTL=$JETSCHED_TEST_HARNESS/ctl
PSQL=$(_jh_pg_bindir)/psql
STATE=$JETSCHED_TEST_STATE

# ------------------------------------------------------------------ helpers

url_port() { local u=${1##*:}; printf '%s' "${u%%/*}"; }

sql() { PGCONNECT_TIMEOUT=5 "$PSQL" "$JETSCHED_TEST_PG_DSN" -X -A -t -q -v ON_ERROR_STOP=1 -c "$1" 2>/dev/null; }
sql_is() { [[ $(sql "$1") == "$2" ]]; }
pg_down() { ! sql 'select 1' >/dev/null; }

nats_js_info() { [[ $(_jh_info_line "$1") == INFO*'"jetstream":true'* ]]; }
nats_down() { ! _jh_info_line "$1" >/dev/null; }

# nats_req PORT SUBJECT PAYLOAD: NATS request over raw protocol; prints the reply.
nats_req() {
  (
    exec 3<>"/dev/tcp/127.0.0.1/$1" || exit 1
    IFS= read -r -t 3 line <&3 || exit 1
    [[ $line == INFO* ]] || exit 1
    LC_ALL=C
    printf 'CONNECT {"verbose":false,"pedantic":false,"protocol":1,"headers":false}\r\nSUB _INBOX.selftest 1\r\nPUB %s _INBOX.selftest %d\r\n%s\r\n' \
      "$2" "${#3}" "$3" >&3
    while IFS= read -r -t 5 line <&3; do
      line=${line%$'\r'}
      case $line in
        PING) printf 'PONG\r\n' >&3 ;;
        MSG\ *)
          IFS= read -r -t 5 payload <&3 || exit 1
          printf '%s\n' "${payload%$'\r'}"
          exit 0
          ;;
        -ERR*) printf '%s\n' "$line" >&2; exit 1 ;;
      esac
    done
    exit 1
  ) 2>/dev/null
}
reply_has() { # PORT SUBJECT PAYLOAD PATTERN
  local r
  r=$(nats_req "$1" "$2" "$3") || return 1
  [[ $r == *"$4"* ]]
}
stream_msgs_is() { # PORT STREAM N
  reply_has "$1" "\$JS.API.STREAM.INFO.$2" '' "\"messages\":$3,"
}

meta_leader_all() { # prints the common meta leader of n1..n3, fails if none/different
  local n hp l leader=''
  for n in n1 n2 n3; do
    read -r hp <"$STATE/cluster/$n/http_port"
    l=$(_jh_cluster_meta_leader "$hp") || return 1
    [[ -z $leader || $l == "$leader" ]] || return 1
    leader=$l
  done
  printf '%s' "$leader"
}
node_healthy() { local hp; read -r hp <"$STATE/cluster/$1/http_port"; [[ $(_jh_http_status "$hp" /healthz) == 200 ]]; }

# ------------------------------------------------------------------ environment

check "JETSCHED_TEST_STATE is a directory under \${TMPDIR:-/tmp} named jetsched-test.*" \
  eval '[[ -d $STATE && $(basename "$STATE") == jetsched-test.* && $(dirname "$STATE") == "${TMPDIR:-/tmp}" ]]'
check "JETSCHED_TEST_HARNESS points at tests/harness (ctl is executable)" test -x "$CTL"
check "JETSCHED_TEST_PG_DSN has the documented form" \
  test "$JETSCHED_TEST_PG_DSN" = "host=127.0.0.1 port=$JETSCHED_TEST_PG_PORT user=postgres dbname=jetsched"
check "JETSCHED_TEST_NATS_URL is nats://127.0.0.1:PORT" eval '[[ $JETSCHED_TEST_NATS_URL =~ ^nats://127\.0\.0\.1:[0-9]+$ ]]'
check "JETSCHED_TEST_NATS_CLUSTER_URLS lists 3 loopback URLs" \
  eval '[[ $JETSCHED_TEST_NATS_CLUSTER_URLS =~ ^nats://127\.0\.0\.1:[0-9]+,nats://127\.0\.0\.1:[0-9]+,nats://127\.0\.0\.1:[0-9]+$ ]]'
check "ctl env prints the exported variables" eval '"$CTL" env | grep -q "^export JETSCHED_TEST_PG_DSN="'

IFS=, read -r -a CLUSTER_URLS <<<"$JETSCHED_TEST_NATS_CLUSTER_URLS"
NATS_PORT=$(url_port "$JETSCHED_TEST_NATS_URL")
C1=$(url_port "${CLUSTER_URLS[0]}") C2=$(url_port "${CLUSTER_URLS[1]}") C3=$(url_port "${CLUSTER_URLS[2]}")
check "all ports are distinct" eval '(($(printf "%s\n" "$NATS_PORT" "$C1" "$C2" "$C3" "$JETSCHED_TEST_PG_PORT" | sort -u | wc -l) == 5))'

every_server_recorded() {
  local n pid start _r
  for n in nats n1 n2 n3 pg cmd; do
    read -r pid start _r <"$STATE/run/$n.pid" || return 1
    _jh_alive "$pid" "$start" || return 1
  done
}
check "run/*.pid records nats, n1..n3, pg and the test command, all alive" every_server_recorded

watchdog_count() { # watchdogs whose environment names this state dir
  local f c=0
  for f in /proc/[0-9]*/environ; do
    { tr '\0' '\n' <"$f" | grep -qxF "JH_WD_STATE=$STATE"; } 2>/dev/null && c=$((c + 1))
  done
  printf '%s' "$c"
}
check "a watchdog runs for every server and the command (>= 6)" eval '(($(watchdog_count) >= 6))'

# ------------------------------------------------------------------ postgres

check "psql 'select 1' through JETSCHED_TEST_PG_DSN" sql_is 'select 1' 1
check "connected database is jetsched" sql_is 'select current_database()' jetsched
check "server is PostgreSQL 15+" eval '(($(sql "show server_version_num") >= 150000))'
check "fsync is left on (durability defaults kept)" sql_is 'show fsync' on
check "max_connections is 100" sql_is 'show max_connections' 100
check "listens on 127.0.0.1 only" sql_is 'show listen_addresses' 127.0.0.1
check "unix socket directory is inside the state dir" eval '[[ $(sql "show unix_socket_directories") == "$STATE"/* || -z $(sql "show unix_socket_directories") ]]'
check "server encoding is UTF8" sql_is 'show server_encoding' UTF8
check "create a table and a row" sql 'create table selftest(x int); insert into selftest values (42)'

check "ctl pg stop exits 0" "$CTL" pg stop
check "PostgreSQL is down after ctl pg stop" pg_down
check "ctl pg stop again is a no-op (exit 0)" "$CTL" pg stop
check "ctl pg start exits 0" "$CTL" pg start
check "PostgreSQL answers again on the same port with the row kept" sql_is 'select x from selftest' 42
check "ctl pg kill exits 0 (SIGKILL postmaster + children)" "$CTL" pg kill
check "PostgreSQL is down after ctl pg kill" pg_down
pg_procs_gone() { ! pgrep -f -- "postgres -D $STATE/pg/data" >/dev/null; }
check "no postgres process of this run is left after ctl pg kill" pg_procs_gone
check "ctl pg start after a crash exits 0 (crash recovery)" "$CTL" pg start
check "committed row survived the crash" sql_is 'select x from selftest' 42

# ------------------------------------------------------------------ single nats

check "single nats: INFO on client port has \"jetstream\":true" nats_js_info "$NATS_PORT"
check "single nats: /healthz?js-enabled-only=true is 200" \
  eval '[[ $(_jh_http_status "${JETSCHED_TEST_NATS_MONITOR_URL##*:}" "/healthz?js-enabled-only=true") == 200 ]]'
check "single nats: JetStream API answers \$JS.API.INFO" \
  reply_has "$NATS_PORT" '$JS.API.INFO' '' 'io.nats.jetstream.api.v1.account_info_response'
check "single nats: create a file stream" reply_has "$NATS_PORT" '$JS.API.STREAM.CREATE.SELFTEST' \
  '{"name":"SELFTEST","subjects":["selftest.>"],"storage":"file","num_replicas":1}' '"type":"io.nats.jetstream.api.v1.stream_create_response","config"'
check "single nats: publish gets a JetStream ack" reply_has "$NATS_PORT" selftest.a hello '"stream":"SELFTEST"'
check "ctl nats stop exits 0" "$CTL" nats stop
check "single nats is down after ctl nats stop" nats_down "$NATS_PORT"
check "ctl nats start exits 0" "$CTL" nats start
check "single nats answers again on the same port" nats_js_info "$NATS_PORT"
check "single nats: stream and message survived the restart" eventually 10 stream_msgs_is "$NATS_PORT" SELFTEST 1
check "ctl nats kill exits 0" "$CTL" nats kill
check "single nats is down after ctl nats kill" nats_down "$NATS_PORT"
check "ctl nats start after kill exits 0" "$CTL" nats start
check "single nats: message survived SIGKILL" eventually 10 stream_msgs_is "$NATS_PORT" SELFTEST 1

# ------------------------------------------------------------------ cluster

for p in "$C1" "$C2" "$C3"; do
  check "cluster node on port $p: INFO has \"jetstream\":true" nats_js_info "$p"
done
check "cluster: all nodes agree on a JetStream meta leader" meta_leader_all
check "cluster: INFO names the cluster jetsched-test" eval '[[ $(_jh_info_line "$C1") == *"\"cluster\":\"jetsched-test\""* ]]'
check "cluster: create an R3 file stream" eventually 20 reply_has "$C1" '$JS.API.STREAM.CREATE.SELFTEST3' \
  '{"name":"SELFTEST3","subjects":["selftest3.>"],"storage":"file","num_replicas":3}' '"config"'
check "cluster: publish to the R3 stream" eventually 10 reply_has "$C2" selftest3.a hello '"stream":"SELFTEST3"'

check "ctl nats-node kill n2 exits 0" "$CTL" nats-node kill n2
check "n2 is down after kill" nats_down "$C2"
check "n1 and n3 still answer" eval 'nats_js_info "$C1" && nats_js_info "$C3"'
check "cluster: R3 stream readable with n2 down" eventually 20 stream_msgs_is "$C1" SELFTEST3 1
check "cluster: a meta leader exists among n1/n3" eventually 20 eval '[[ $(_jh_cluster_meta_leader "$(<"$STATE/cluster/n1/http_port")") == n[13] ]]'
check "ctl nats-node start n2 exits 0" "$CTL" nats-node start n2
check "n2 answers again on the same port" nats_js_info "$C2"
check "n2 /healthz is 200 (JetStream current)" eventually 20 node_healthy n2
check "cluster: all nodes agree on a meta leader after n2 restart" eventually 20 meta_leader_all
check "cluster: R3 stream readable through n2" eventually 20 stream_msgs_is "$C2" SELFTEST3 1

leader=$(meta_leader_all || true)
if [[ -n $leader ]]; then
  check "ctl nats-node kill $leader (the meta leader) exits 0" "$CTL" nats-node kill "$leader"
  check "cluster elects a new meta leader without $leader" eventually 30 eval \
    'n=$(for x in n1 n2 n3; do [[ $x != '"$leader"' ]] && { echo "$x"; break; }; done); l=$(_jh_cluster_meta_leader "$(<"$STATE/cluster/$n/http_port")") && [[ $l != '"$leader"' ]]'
  check "ctl nats-node start $leader exits 0" "$CTL" nats-node start "$leader"
  check "cluster converges again" eventually 30 meta_leader_all
else
  not_ok "cluster has a meta leader before the leader-kill test"
fi
check "ctl nats-node restart n3 (graceful) exits 0" "$CTL" nats-node restart n3
check "n3 healthy after restart" eventually 20 node_healthy n3
check "ctl nats-node start n1 while running is a no-op" "$CTL" nats-node start n1

# ------------------------------------------------------------------ ctl errors

check "ctl with an unknown node fails" eval '! "$CTL" nats-node kill n4 2>/dev/null'
check "ctl with an unknown verb fails" eval '! "$CTL" pg explode 2>/dev/null'
check "ctl without JETSCHED_TEST_STATE fails" eval '! env -u JETSCHED_TEST_STATE "$CTL" pg stop 2>/dev/null'

# ------------------------------------------------------------------ C helper

c_helper_test() {
  local cc dir
  cc=$(command -v cc || command -v gcc || command -v clang) || { echo "no C compiler" >&2; return 1; }
  dir=$(mktemp -d "$STATE/ctest.XXXXXX")
  cat >"$dir/t.c" <<'EOF'
#include "harness.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#define EXPECT(c) do { if (!(c)) { fprintf(stderr, "C helper: %s failed\n", #c); return 1; } } while (0)
int main(void)
{
    const char *state = th_require_env("JETSCHED_TEST_STATE");
    EXPECT(strcmp(th_require_env("JETSCHED_TEST_PG_DSN"), getenv("JETSCHED_TEST_PG_DSN")) == 0);
    char *d = th_tmpdir();
    struct stat st;
    EXPECT(strncmp(d, state, strlen(state)) == 0 && stat(d, &st) == 0 && S_ISDIR(st.st_mode));
    char *d2 = th_tmpdir();
    EXPECT(strcmp(d, d2) != 0);
    free(d);
    free(d2);
    EXPECT(th_ctl("pg %s", "stop") == 0);
    EXPECT(th_ctl("pg   start") == 0);
    EXPECT(th_ctl("nats-node kill n%d", 9) != 0);
    EXPECT(th_ctl("nats-node kill n%d", 1) == 0);
    EXPECT(th_ctl("nats-node start n1") == 0);
    pid_t p = fork();
    if (p == 0) {
        unsetenv("JETSCHED_TEST_NOT_THERE");
        th_require_env("JETSCHED_TEST_NOT_THERE");
        _exit(0);
    }
    int status;
    EXPECT(waitpid(p, &status, 0) == p && WIFEXITED(status) && WEXITSTATUS(status) == 1);
    puts("C helper ok");
    return 0;
}
EOF
  "$cc" -Wall -Wextra -Werror -std=c11 -D_GNU_SOURCE -I"$HERE" -o "$dir/t" "$dir/t.c" "$HERE/harness.c" || return 1
  local out rc=0
  out=$("$dir/t" 2>&1) || rc=$?
  if ((rc != 0)) || [[ $out != *'C helper ok'* ]]; then
    printf '%s\n' "$out" >&2
    return 1
  fi
  # th_require_env's message must name the variable.
  [[ $out == *'JETSCHED_TEST_NOT_THERE is not set'* ]]
}
check "harness.c builds with -Wall -Wextra -Werror -std=c11 and th_* work" c_helper_test
check "PostgreSQL answers after the C helper's stop/start" sql_is 'select x from selftest' 42
check "n1 healthy after the C helper's kill/start" eventually 20 node_healthy n1

finish
