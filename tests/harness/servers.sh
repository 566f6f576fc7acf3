# shellcheck shell=bash
# tests/harness/servers.sh — owns the throwaway test servers of jetsched:
# a single JetStream nats-server, a 3-node JetStream cluster and a PostgreSQL
# 15 cluster, all on 127.0.0.1 with random free ports, all inside one state
# dir ($JETSCHED_TEST_STATE), plus the watchdogs and traps that make sure
# nothing (process or temp dir) survives the process that called jh_init,
# even when that process is SIGKILLed.
#
# Sourceable library; works under `set -euo pipefail`. Public functions:
#   jh_init                       create the state dir, install cleanup traps
#   jh_start_nats                 single nats-server -js  -> JETSCHED_TEST_NATS_URL
#   jh_start_nats_cluster         n1..n3 JetStream cluster -> JETSCHED_TEST_NATS_CLUSTER_URLS
#   jh_start_pg                   initdb + postgres       -> JETSCHED_TEST_PG_DSN, JETSCHED_TEST_PG_PORT
#   jh_pg_stop | jh_pg_start | jh_pg_kill
#   jh_nats_stop | jh_nats_start            single server (same port and store)
#   jh_nats_kill NAME (n1|n2|n3|nats) | jh_nats_stop_node NAME | jh_nats_start_node NAME | jh_nats_restart_node NAME
#   jh_stop_all                   stop everything by PID, remove the state dir
#   jh_attach                     (for ctl) use an existing $JETSCHED_TEST_STATE
#
# State dir layout:
#   owner                 "pid starttime" of the process that called jh_init
#   parent                "pid starttime" of the owner's parent at jh_init (the
#                         test or its runner; absent with JETSCHED_TEST_DETACHED=1)
#   env                   the exported variables, sourceable
#   run/NAME.pid          "pid starttime stop-signal scope" of each process we
#                         own (nats, n1..n3, pg, cmd); scope=tree means the
#                         signal goes to the process and all its descendants
#   nats/ cluster/nK/ pg/ config files, logs, stores, data dir
#
# Tunables (environment): JETSCHED_TEST_START_TIMEOUT (s, default 30),
# JETSCHED_PG_BINDIR, JETSCHED_NATS_SERVER (the binaries; defaults: see
# scripts/lib/server-bins.sh, the lookup shared with scripts/quickstart),
# JETSCHED_TEST_DETACHED=1 (keep running when the parent is gone, see
# _jh_watchdog; for `nohup ... &` or `setsid -f` runs).

# Directory of this library (absolute).
JH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
JH_LIB="$JH_DIR/servers.sh"
# shellcheck source=../../scripts/lib/server-bins.sh
source "$JH_DIR/../../scripts/lib/server-bins.sh"

# ---------------------------------------------------------------- utilities

_jh_msg() { printf 'jetsched-harness: %s\n' "$*" >&2; }
_jh_err() { printf 'jetsched-harness: ERROR: %s\n' "$*" >&2; }

# _jh_log_tail FILE [LINES]: print the tail of a server log to stderr.
_jh_log_tail() {
  local f=$1 n=${2:-40}
  if [[ -s $f ]]; then
    printf 'jetsched-harness: ---- last %s lines of %s ----\n' "$n" "$f" >&2
    tail -n "$n" -- "$f" | sed 's/^/  | /' >&2 || true
    printf 'jetsched-harness: ----\n' >&2
  else
    printf 'jetsched-harness: (log %s is empty or missing)\n' "$f" >&2
  fi
}

# _jh_now_ms: monotonic-enough wall clock in ms (bash 5 EPOCHREALTIME).
_jh_now_ms() {
  local t=${EPOCHREALTIME/[.,]/}
  printf '%s' $((10#$t / 1000))
}

# _jh_proc_stat PID: sets _JH_PSTATE, _JH_PPID, _JH_START from /proc/PID/stat.
_jh_proc_stat() {
  local line rest
  local -a f
  { IFS= read -r line <"/proc/$1/stat"; } 2>/dev/null || return 1
  rest=${line##*) }
  read -r -a f <<<"$rest"
  ((${#f[@]} > 19)) || return 1
  _JH_PSTATE=${f[0]} _JH_PPID=${f[1]} _JH_START=${f[19]}
}

# _jh_alive PID [STARTTIME]: true when PID runs (not a zombie) and, when
# STARTTIME is given, is the same process (guards against PID reuse).
_jh_alive() {
  [[ ${1:-} =~ ^[0-9]+$ ]] && (($1 > 0)) || return 1
  _jh_proc_stat "$1" || return 1
  [[ $_JH_PSTATE != [ZX] ]] || return 1
  [[ -z ${2:-} || ${2:-} == - || ${2:-} == "$_JH_START" ]]
}

# _jh_tree PID...: prints "pid:starttime" of the given PIDs and all their
# descendants that are alive.
_jh_tree() {
  local -A kids=()
  local f p c
  local -a queue=("$@")
  for f in /proc/[0-9]*; do
    p=${f#/proc/}
    _jh_proc_stat "$p" || continue
    kids[$_JH_PPID]+=" $p"
  done
  local -A seen=()
  while ((${#queue[@]})); do
    p=${queue[0]}
    queue=("${queue[@]:1}")
    [[ -z ${seen[$p]:-} ]] || continue
    seen[$p]=1
    if _jh_alive "$p"; then printf '%s:%s\n' "$p" "$_JH_START"; fi
    for c in ${kids[$p]:-}; do queue+=("$c"); done
  done
}

# _jh_sweep STATE: prints "pid:starttime" of every process whose command line
# mentions STATE, except this shell and its ancestors.
_jh_sweep() {
  local state=$1 f p
  local -A skip=()
  local -a argv
  p=$BASHPID
  while [[ $p =~ ^[0-9]+$ ]] && ((p > 1)); do
    skip[$p]=1
    _jh_proc_stat "$p" || break
    p=$_JH_PPID
  done
  for f in /proc/[0-9]*; do
    p=${f#/proc/}
    [[ -z ${skip[$p]:-} ]] || continue
    argv=()
    { mapfile -d '' -t argv <"$f/cmdline"; } 2>/dev/null || continue
    ((${#argv[@]})) || continue
    [[ "${argv[*]}" == *"$state"* ]] || continue
    if _jh_alive "$p"; then printf '%s:%s\n' "$p" "$_JH_START"; fi
  done
}

# _jh_wait_gone TIMEOUT_MS PID:START...: wait until none of them is alive.
_jh_wait_gone() {
  local deadline=$(($(_jh_now_ms) + $1)) t any
  shift
  while :; do
    any=0
    for t in "$@"; do
      if _jh_alive "${t%%:*}" "${t#*:}"; then any=1; break; fi
    done
    ((any)) || return 0
    (($(_jh_now_ms) < deadline)) || return 1
    sleep 0.05
  done
}

# _jh_kill_hard PID:START...: SIGKILL them (with their descendants).
_jh_kill_hard() {
  local t
  local -a roots=() all=()
  for t in "$@"; do
    if _jh_alive "${t%%:*}" "${t#*:}"; then roots+=("${t%%:*}"); fi
  done
  ((${#roots[@]})) || return 0
  mapfile -t all < <(_jh_tree "${roots[@]}")
  for t in "${all[@]}"; do
    if _jh_alive "${t%%:*}" "${t#*:}"; then kill -KILL "${t%%:*}" 2>/dev/null || true; fi
  done
  _jh_wait_gone 3000 "${all[@]}" || true
}

# _jh_port_in_use PORT: any TCP socket (any state, v4 or v6) on that local port.
_jh_port_in_use() {
  local hex line
  hex=$(printf '%04X' "$1")
  local f
  for f in /proc/net/tcp /proc/net/tcp6; do
    [[ -r $f ]] || continue
    while read -r line; do
      line=${line#*: }
      line=${line%% *}
      [[ ${line##*:} == "$hex" ]] && return 0
    done <"$f"
  done
  # Something listening without showing up above (other netns tricks)?
  if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
  return 1
}

# _jh_pick_port: sets JH_PORT to a random free port below the ephemeral range,
# distinct from the ports already picked by this process.
JH__PICKED=" "
_jh_pick_port() {
  local lo=20000 hi=32000 eph_lo _eph_hi p i
  if read -r eph_lo _eph_hi </proc/sys/net/ipv4/ip_local_port_range 2>/dev/null; then
    if ((eph_lo > 25000 && eph_lo - 1 < hi)); then hi=$((eph_lo - 1)); fi
  fi
  for ((i = 0; i < 200; i++)); do
    p=$((lo + ${SRANDOM:-$((RANDOM * 32768 + RANDOM))} % (hi - lo)))
    [[ $JH__PICKED != *" $p "* ]] || continue
    _jh_port_in_use "$p" && continue
    JH__PICKED+="$p "
    JH_PORT=$p
    return 0
  done
  _jh_err "could not find a free TCP port in $lo-$hi"
  return 1
}

# _jh_info_line PORT: prints the INFO line of the NATS server on PORT.
_jh_info_line() {
  (
    exec 3<>"/dev/tcp/127.0.0.1/$1" || exit 1
    IFS= read -r -t 3 line <&3 || exit 1
    printf '%s\n' "${line%$'\r'}"
  ) 2>/dev/null
}

# _jh_http_get PORT PATH: prints the HTTP status code, a newline, the body.
_jh_http_get() {
  (
    exec 3<>"/dev/tcp/127.0.0.1/$1" || exit 1
    printf 'GET %s HTTP/1.0\r\nHost: 127.0.0.1:%s\r\nConnection: close\r\n\r\n' "$2" "$1" >&3
    IFS= read -r -t 5 status <&3 || exit 1
    while IFS= read -r -t 5 line <&3; do
      line=${line%$'\r'}
      [[ -n $line ]] || break
    done
    body=
    while IFS= read -r -t 5 line <&3 || [[ -n ${line:-} ]]; do body+=$line$'\n'; line=; done
    read -r _ code _ <<<"$status"
    printf '%s\n%s' "$code" "$body"
  ) 2>/dev/null
}

# _jh_http_status PORT PATH: prints only the status code (000 when no answer).
_jh_http_status() {
  local out
  out=$(_jh_http_get "$1" "$2") || out=
  out=${out%%$'\n'*}
  printf '%s' "${out:-000}"
}

_jh_need_state() {
  if [[ -z ${JETSCHED_TEST_STATE:-} || ! -d ${JETSCHED_TEST_STATE:-} ]]; then
    _jh_err "no harness state dir (JETSCHED_TEST_STATE='${JETSCHED_TEST_STATE:-}'); call jh_init first or run under tests/harness/with-servers"
    return 1
  fi
}

_jh_timeout_ms() { printf '%s' $((${JETSCHED_TEST_START_TIMEOUT:-30} * 1000)); }

# The binaries: the one lookup shared with scripts/quickstart
# (scripts/lib/server-bins.sh), with this library's error prefix.
_jh_nats_bin() {
  jetsched_find_nats_server || { _jh_err "$JETSCHED_FIND_ERROR"; return 1; }
  printf '%s' "$JETSCHED_FOUND"
}

_jh_pg_bindir() {
  jetsched_find_pg_bindir || { _jh_err "$JETSCHED_FIND_ERROR"; return 1; }
  printf '%s' "$JETSCHED_FOUND"
}

# _jh_as_pg CMD...: run CMD as the postgres system user when we are root
# (PostgreSQL refuses to run as root); setpriv execs, so PIDs stay exact.
_jh_as_pg() {
  if ((EUID == 0)); then
    setpriv --reuid=postgres --regid=postgres --init-groups -- "$@"
  else
    "$@"
  fi
}

# _jh_record NAME PID SIGNAL SCOPE: remember a process we own.
_jh_record() {
  _jh_proc_stat "$2" || return 1
  printf '%s %s %s %s\n' "$2" "$_JH_START" "$3" "$4" >"$JETSCHED_TEST_STATE/run/$1.pid.tmp"
  mv -f "$JETSCHED_TEST_STATE/run/$1.pid.tmp" "$JETSCHED_TEST_STATE/run/$1.pid"
}

# _jh_recorded NAME: sets JH_REC_PID JH_REC_START; true when that process is alive.
_jh_recorded() {
  JH_REC_PID='' JH_REC_START=''
  local f=$JETSCHED_TEST_STATE/run/$1.pid _sig _scope
  [[ -s $f ]] || return 1
  read -r JH_REC_PID JH_REC_START _sig _scope <"$f" || return 1
  _jh_alive "$JH_REC_PID" "$JH_REC_START"
}

_jh_mark_dead() { printf '0 0 TERM root\n' >"$JETSCHED_TEST_STATE/run/$1.pid"; }

# ---------------------------------------------------------------- watchdog

# _jh_spawn_watchdog NAME: start a detached watchdog for the process that will
# be recorded as run/NAME.pid. It polls every second; when the owner (the
# jh_init caller) is gone it tears everything down and removes the state dir;
# when the owner's parent is gone (the test that started with-servers, killed
# by a runner that kills only its direct child: ctest does on a timeout) it
# stops the owner with SIGTERM (SIGKILL after 15 s) and then does the same;
# when its own process has ended (stopped on purpose) it just exits. The state
# dir is passed in the environment so that the watchdog's command line does not
# mention it.
_jh_spawn_watchdog() {
  rm -f -- "$JETSCHED_TEST_STATE/run/$1.pid"
  local parent=''
  if [[ -s $JETSCHED_TEST_STATE/parent ]]; then parent=$(<"$JETSCHED_TEST_STATE/parent"); fi
  # shellcheck disable=SC2016 # expanded by the watchdog's bash
  JH_WD_STATE=$JETSCHED_TEST_STATE JH_WD_NAME=$1 JH_WD_OWNER=$(<"$JETSCHED_TEST_STATE/owner") JH_WD_PARENT=$parent \
    JH_WD_LIB=$JH_LIB \
    setsid -f bash -c 'source "$JH_WD_LIB" && _jh_watchdog' jetsched-harness-watchdog \
    </dev/null >/dev/null 2>&1
}

_jh_watchdog() {
  local state=$JH_WD_STATE name=$JH_WD_NAME owner_pid owner_start parent_pid parent_start pid start _rest
  # shellcheck disable=SC2153 # set in the environment by _jh_spawn_watchdog
  read -r owner_pid owner_start <<<"$JH_WD_OWNER"
  read -r parent_pid parent_start <<<"$JH_WD_PARENT"
  unset JH_WD_STATE JH_WD_NAME JH_WD_OWNER JH_WD_PARENT JH_WD_LIB
  trap '' INT HUP
  while :; do
    [[ -d $state ]] || exit 0
    if ! _jh_alive "$owner_pid" "$owner_start"; then
      JETSCHED_TEST_STATE=$state _jh_teardown 5000
      exit 0
    fi
    if [[ -n $parent_pid ]] && ! _jh_alive "$parent_pid" "$parent_start"; then
      # Orphaned: stop the owner as a SIGTERM to it would (its trap stops
      # the command and the servers), by force when it does not end.
      if _jh_alive "$owner_pid" "$owner_start"; then kill -TERM "$owner_pid" 2>/dev/null || true; fi
      _jh_wait_gone 15000 "$owner_pid:$owner_start" || _jh_kill_hard "$owner_pid:$owner_start"
      JETSCHED_TEST_STATE=$state _jh_teardown 5000
      exit 0
    fi
    if [[ -s $state/run/$name.pid ]] && read -r pid start _rest <"$state/run/$name.pid" 2>/dev/null; then
      _jh_alive "$pid" "$start" || exit 0
    fi
    sleep 1
  done
}

# _jh_teardown GRACE_MS: stop every recorded process with its stop signal and
# every process whose command line mentions the state dir with SIGTERM; after
# GRACE_MS SIGKILL what is left (with descendants); remove the state dir.
_jh_teardown() {
  local state=${JETSCHED_TEST_STATE:-} grace=${1:-10000}
  [[ -n $state && -d $state && $state == */jetsched-test.* ]] || return 0
  local rec pid start sig scope t
  local -a targets=() tree=()
  for rec in "$state"/run/*.pid; do
    [[ -s $rec ]] || continue
    read -r pid start sig scope <"$rec" 2>/dev/null || continue
    _jh_alive "$pid" "$start" || continue
    if [[ ${scope:-root} == tree ]]; then
      mapfile -t tree < <(_jh_tree "$pid")
      for t in "${tree[@]}"; do
        kill -s "${sig:-TERM}" "${t%%:*}" 2>/dev/null || true
        targets+=("$t")
      done
    else
      kill -s "${sig:-TERM}" "$pid" 2>/dev/null || true
      targets+=("$pid:$start")
    fi
  done
  mapfile -t tree < <(_jh_sweep "$state")
  for t in "${tree[@]}"; do
    [[ -n $t ]] || continue
    kill -TERM "${t%%:*}" 2>/dev/null || true
    targets+=("$t")
  done
  if ((${#targets[@]})); then
    if ! _jh_wait_gone "$grace" "${targets[@]}"; then
      _jh_kill_hard "${targets[@]}"
    fi
    # Anything that appeared meanwhile (e.g. a restart racing with us).
    mapfile -t tree < <(_jh_sweep "$state")
    if ((${#tree[@]})) && [[ -n ${tree[0]} ]]; then _jh_kill_hard "${tree[@]}"; fi
  fi
  local i
  for ((i = 0; i < 10; i++)); do
    rm -rf -- "$state" 2>/dev/null || true
    [[ -e $state ]] || return 0
    sleep 0.2
  done
  [[ ! -e $state ]]
}

# ---------------------------------------------------------------- lifecycle

# jh_init: create the state dir and install cleanup traps in the calling shell.
jh_init() {
  if [[ -n ${JH__OWNER:-} && -d ${JETSCHED_TEST_STATE:-} ]]; then
    _jh_err "jh_init called twice in the same process"
    return 1
  fi
  local base=${TMPDIR:-/tmp}
  base=${base%/}
  JETSCHED_TEST_STATE=$(mktemp -d "$base/jetsched-test.XXXXXXXXXX") || {
    _jh_err "cannot create a temp dir in $base"
    return 1
  }
  chmod 0711 "$JETSCHED_TEST_STATE"
  mkdir -p "$JETSCHED_TEST_STATE/run"
  _jh_proc_stat "$BASHPID"
  JH__OWNER="$BASHPID $_JH_START"
  printf '%s\n' "$JH__OWNER" >"$JETSCHED_TEST_STATE/owner"
  # The watchdogs stop everything also when this parent is gone (see
  # _jh_watchdog); not when it is already PID 1 (nothing to die with).
  local ppid=$_JH_PPID
  if [[ -z ${JETSCHED_TEST_DETACHED:-} ]] && ((ppid > 1)) && _jh_proc_stat "$ppid"; then
    printf '%s %s\n' "$ppid" "$_JH_START" >"$JETSCHED_TEST_STATE/parent"
  fi
  JETSCHED_TEST_HARNESS=$JH_DIR
  export JETSCHED_TEST_STATE JETSCHED_TEST_HARNESS
  _jh_env_save
  trap '_jh_on_exit' EXIT
  trap '_jh_on_signal INT 130' INT
  trap '_jh_on_signal TERM 143' TERM
  trap '_jh_on_signal HUP 129' HUP
}

# jh_attach: use the state dir of a running harness ($JETSCHED_TEST_STATE);
# no traps, no ownership (used by ctl).
jh_attach() {
  _jh_need_state || return 1
  if [[ ! -s $JETSCHED_TEST_STATE/owner ]]; then
    _jh_err "$JETSCHED_TEST_STATE is not a harness state dir (no owner file)"
    return 1
  fi
  local owner_pid owner_start
  read -r owner_pid owner_start <"$JETSCHED_TEST_STATE/owner"
  if ! _jh_alive "$owner_pid" "$owner_start"; then
    _jh_err "the harness that owns $JETSCHED_TEST_STATE (pid $owner_pid) is gone"
    return 1
  fi
}

_jh_is_owner() {
  [[ -n ${JH__OWNER:-} ]] || return 1
  _jh_proc_stat "$BASHPID" || return 1
  [[ $JH__OWNER == "$BASHPID $_JH_START" ]]
}

_jh_on_exit() {
  local rc=$?
  trap '' INT TERM HUP # let the teardown finish (it is bounded)
  if _jh_is_owner; then jh_stop_all || true; fi
  exit "$rc"
}

_jh_on_signal() {
  trap - EXIT
  trap '' INT TERM HUP # let the teardown finish (it is bounded)
  if _jh_is_owner; then
    _jh_msg "caught SIG$1, stopping test servers"
    jh_stop_all || true
  fi
  exit "$2"
}

# _jh_env_save: write the exported variables to $STATE/env (sourceable).
_jh_env_save() {
  local v
  {
    for v in JETSCHED_TEST_STATE JETSCHED_TEST_HARNESS JETSCHED_TEST_NATS_URL JETSCHED_TEST_NATS_MONITOR_URL \
      JETSCHED_TEST_NATS_CLUSTER_URLS JETSCHED_TEST_PG_DSN JETSCHED_TEST_PG_PORT; do
      if [[ -n ${!v:-} ]]; then printf 'export %s=%q\n' "$v" "${!v}"; fi
    done
  } >"$JETSCHED_TEST_STATE/env.tmp"
  mv -f "$JETSCHED_TEST_STATE/env.tmp" "$JETSCHED_TEST_STATE/env"
}

# jh_stop_all: stop everything we started (SIGTERM / fast PG shutdown, up to
# ~10 s, then SIGKILL) and remove the state dir.
jh_stop_all() {
  [[ -n ${JETSCHED_TEST_STATE:-} ]] || return 0
  local rc=0
  _jh_teardown 10000 || rc=$?
  if ((rc != 0)); then _jh_err "could not remove $JETSCHED_TEST_STATE"; fi
  JH__OWNER=
  return "$rc"
}

# ---------------------------------------------------------------- nats

# _jh_spawn NAME LOG STOPSIG DIR CMD...: start CMD detached (own session,
# stdin /dev/null, output appended to LOG, cwd DIR) after spawning its
# watchdog, and record it as run/NAME.pid. A tiny sh writes its own pid and
# execs CMD, so the recorded pid is exactly the server's.
declare -gA JH__LOGOFF=()
_jh_spawn() {
  local name=$1 log=$2 sig=$3 cwd=$4 pf pid='' deadline
  shift 4
  pf=$JETSCHED_TEST_STATE/run/$name.spawn
  rm -f -- "$pf"
  JH__LOGOFF[$name]=$(($(stat -c %s -- "$log" 2>/dev/null || echo 0) + 1))
  _jh_spawn_watchdog "$name"
  # shellcheck disable=SC2016 # expanded by sh
  (cd "$cwd" && exec setsid -f sh -c 'echo $$ >"$1" && shift && exec "$@"' jetsched-harness "$pf" "$@" \
    </dev/null >>"$log" 2>&1) || true
  deadline=$(($(_jh_now_ms) + 5000))
  while :; do
    if [[ -s $pf ]] && { { read -r pid || [[ -n $pid ]]; } <"$pf"; } 2>/dev/null && [[ $pid =~ ^[0-9]+$ ]]; then
      _jh_record "$name" "$pid" "$sig" root && return 0
      break
    fi
    (($(_jh_now_ms) < deadline)) || break
    sleep 0.01
  done
  _jh_mark_dead "$name"
  _jh_port_clash "$name" "$log" && return 2
  _jh_err "$name: could not start $1"
  return 1
}

# _jh_log_since NAME LOG: the part of LOG written since the last _jh_spawn NAME.
_jh_log_since() { tail -c "+${JH__LOGOFF[$1]:-1}" -- "$2" 2>/dev/null || true; }

# _jh_port_clash NAME LOG: did the last start of NAME fail because a port was taken?
_jh_port_clash() { _jh_log_since "$1" "$2" | grep -qi 'address already in use'; }

# _jh_nats_launch NAME CONF LOG: start nats-server detached; records run/NAME.pid.
_jh_nats_launch() {
  local bin
  bin=$(_jh_nats_bin) || return 1
  _jh_spawn "$1" "$3" TERM "$JETSCHED_TEST_STATE" "$bin" -c "$2"
}

# _jh_nats_wait NAME PORT HTTP_PORT LOG TIMEOUT_MS [cluster]: wait until the
# server answers INFO with "jetstream":true and /healthz is 200 (in a cluster
# that means JetStream has contact with a meta leader and is current).
_jh_nats_wait() {
  local name=$1 port=$2 hport=$3 log=$4 deadline info code
  deadline=$(($(_jh_now_ms) + $5))
  while :; do
    if ! _jh_recorded "$name"; then
      if _jh_port_clash "$name" "$log"; then return 2; fi
      _jh_err "nats-server $name exited during startup"
      return 1
    fi
    info=$(_jh_info_line "$port") || info=
    if [[ $info == INFO* && $info == *'"jetstream":true'* ]]; then
      code=$(_jh_http_status "$hport" '/healthz')
      [[ $code == 200 ]] && return 0
    fi
    if (($(_jh_now_ms) >= deadline)); then
      _jh_err "nats-server $name not ready after $(($5 / 1000)) s (INFO: ${info:-none}; /healthz: ${code:-n/a})"
      return 1
    fi
    sleep 0.02
  done
}

_jh_nats_write_single_conf() {
  local dir=$1 port=$2 hport=$3
  cat >"$dir/nats.conf" <<EOF
# written by tests/harness/servers.sh (single JetStream server)
server_name: jetsched-test
listen: 127.0.0.1:$port
http: 127.0.0.1:$hport
pid_file: "$dir/nats.pid"
jetstream {
  store_dir: "$dir/store"
}
EOF
  printf '%s\n' "$port" >"$dir/port"
  printf '%s\n' "$hport" >"$dir/http_port"
}

# jh_start_nats: single nats-server with JetStream (the equivalent of
# `nats-server -js`, through a config file so that it can be restarted).
jh_start_nats() {
  _jh_need_state || return 1
  local dir=$JETSCHED_TEST_STATE/nats attempt rc port hport
  mkdir -p "$dir"
  for ((attempt = 1; attempt <= 5; attempt++)); do
    _jh_pick_port || return 1
    port=$JH_PORT
    _jh_pick_port || return 1
    hport=$JH_PORT
    _jh_nats_write_single_conf "$dir" "$port" "$hport"
    rc=0
    _jh_nats_launch nats "$dir/nats.conf" "$dir/nats.log" || rc=$?
    if ((rc == 0)); then
      _jh_nats_wait nats "$port" "$hport" "$dir/nats.log" "$(_jh_timeout_ms)" || rc=$?
    fi
    if ((rc == 0)); then
      export JETSCHED_TEST_NATS_URL="nats://127.0.0.1:$port"
      export JETSCHED_TEST_NATS_MONITOR_URL="http://127.0.0.1:$hport"
      _jh_env_save
      return 0
    fi
    _jh_nats_stop_name nats KILL >/dev/null 2>&1 || true
    ((rc == 2)) || break
    rm -rf -- "${dir:?}/store"
  done
  _jh_err "could not start nats-server (attempt $attempt)"
  _jh_log_tail "$dir/nats.log"
  return 1
}

# _jh_nats_stop_name NAME SIGNAL: stop a nats node by pid and wait.
_jh_nats_stop_name() {
  local name=$1 sig=${2:-TERM}
  _jh_recorded "$name" || return 0
  kill -s "$sig" "$JH_REC_PID" 2>/dev/null || true
  if ! _jh_wait_gone 15000 "$JH_REC_PID:$JH_REC_START"; then
    _jh_err "nats-server $name did not stop in 15 s after SIG$sig; killing it"
    kill -KILL "$JH_REC_PID" 2>/dev/null || true
    _jh_wait_gone 5000 "$JH_REC_PID:$JH_REC_START" || return 1
  fi
}

# jh_nats_stop: graceful stop of the single server (data kept).
jh_nats_stop() {
  _jh_need_state || return 1
  [[ -s $JETSCHED_TEST_STATE/nats/nats.conf ]] || { _jh_err "no single nats-server in this harness"; return 1; }
  _jh_nats_stop_name nats TERM
}

# jh_nats_start: start the single server again, same port and store.
jh_nats_start() {
  _jh_need_state || return 1
  local dir=$JETSCHED_TEST_STATE/nats port hport rc=0
  [[ -s $dir/nats.conf ]] || { _jh_err "no single nats-server in this harness"; return 1; }
  if _jh_recorded nats; then return 0; fi
  read -r port <"$dir/port"
  read -r hport <"$dir/http_port"
  _jh_nats_launch nats "$dir/nats.conf" "$dir/nats.log" || rc=$?
  ((rc == 0)) && { _jh_nats_wait nats "$port" "$hport" "$dir/nats.log" "$(_jh_timeout_ms)" || rc=$?; }
  if ((rc != 0)); then
    _jh_err "could not restart nats-server on port $port"
    _jh_log_tail "$dir/nats.log"
    return 1
  fi
}

_jh_cluster_write_conf() { # NAME DIR CLIENT HTTP ROUTE ROUTES...
  local name=$1 dir=$2 port=$3 hport=$4 rport=$5 r routes=
  shift 5
  for r in "$@"; do routes+="    nats-route://127.0.0.1:$r"$'\n'; done
  cat >"$dir/$name.conf" <<EOF
# written by tests/harness/servers.sh (JetStream cluster node $name)
server_name: $name
listen: 127.0.0.1:$port
http: 127.0.0.1:$hport
pid_file: "$dir/$name.pid"
jetstream {
  store_dir: "$dir/store"
}
cluster {
  name: jetsched-test
  listen: 127.0.0.1:$rport
  routes: [
$routes  ]
}
EOF
  printf '%s\n' "$port" >"$dir/port"
  printf '%s\n' "$hport" >"$dir/http_port"
  printf '%s\n' "$rport" >"$dir/cluster_port"
}

_jh_node_dir() {
  [[ ${1:-} =~ ^n[123]$ ]] || { _jh_err "unknown cluster node '${1:-}' (expected n1, n2 or n3)"; return 1; }
  local d=$JETSCHED_TEST_STATE/cluster/$1
  [[ -s $d/$1.conf ]] || { _jh_err "no nats cluster in this harness"; return 1; }
  printf '%s' "$d"
}

# _jh_cluster_meta_leader HTTP_PORT: prints the meta leader's name seen by that node.
_jh_cluster_meta_leader() {
  local out
  out=$(_jh_http_get "$1" '/jsz') || return 1
  [[ ${out%%$'\n'*} == 200 ]] || return 1
  out=${out//[[:space:]]/}
  [[ $out =~ \"meta_cluster\":\{[^}]*\"leader\":\"([^\"]+)\" ]] || return 1
  printf '%s' "${BASH_REMATCH[1]}"
}

# jh_start_nats_cluster: 3 JetStream nodes n1..n3 routed together; waits
# until every node sees the same meta leader and /healthz is 200 everywhere.
jh_start_nats_cluster() {
  _jh_need_state || return 1
  local base=$JETSCHED_TEST_STATE/cluster attempt rc i n leader l ok deadline
  local -a cp hp rp
  for ((attempt = 1; attempt <= 5; attempt++)); do
    rm -rf -- "$base"
    mkdir -p "$base"/n1 "$base"/n2 "$base"/n3
    cp=() hp=() rp=()
    for i in 1 2 3; do
      _jh_pick_port || return 1; cp[i]=$JH_PORT
      _jh_pick_port || return 1; hp[i]=$JH_PORT
      _jh_pick_port || return 1; rp[i]=$JH_PORT
    done
    for i in 1 2 3; do
      _jh_cluster_write_conf "n$i" "$base/n$i" "${cp[i]}" "${hp[i]}" "${rp[i]}" "${rp[1]}" "${rp[2]}" "${rp[3]}"
    done
    rc=0
    for i in 1 2 3; do
      _jh_nats_launch "n$i" "$base/n$i/n$i.conf" "$base/n$i/n$i.log" || { rc=$?; break; }
    done
    if ((rc == 0)); then
      for i in 1 2 3; do
        _jh_nats_wait "n$i" "${cp[i]}" "${hp[i]}" "$base/n$i/n$i.log" "$(_jh_timeout_ms)" || { rc=$?; break; }
      done
    fi
    if ((rc == 0)); then
      deadline=$(($(_jh_now_ms) + $(_jh_timeout_ms)))
      while :; do
        ok=1 leader=
        for i in 1 2 3; do
          l=$(_jh_cluster_meta_leader "${hp[i]}") || l=
          if [[ -z $l || (-n $leader && $l != "$leader") ]]; then ok=0; break; fi
          leader=$l
        done
        ((ok)) && break
        if (($(_jh_now_ms) >= deadline)); then
          _jh_err "nats cluster has no common JetStream meta leader after ${JETSCHED_TEST_START_TIMEOUT:-30} s"
          rc=1
          break
        fi
        sleep 0.05
      done
    fi
    if ((rc == 0)); then
      export JETSCHED_TEST_NATS_CLUSTER_URLS="nats://127.0.0.1:${cp[1]},nats://127.0.0.1:${cp[2]},nats://127.0.0.1:${cp[3]}"
      _jh_env_save
      return 0
    fi
    for n in n1 n2 n3; do _jh_nats_stop_name "$n" KILL >/dev/null 2>&1 || true; done
    ((rc == 2)) || break
  done
  _jh_err "could not start the 3-node nats cluster (attempt $attempt)"
  for n in n1 n2 n3; do _jh_log_tail "$base/$n/$n.log" 25; done
  return 1
}

# jh_nats_kill NAME: SIGKILL a cluster node (n1|n2|n3) or the single server (nats).
jh_nats_kill() {
  _jh_need_state || return 1
  local name=${1:-}
  if [[ $name != nats ]]; then _jh_node_dir "$name" >/dev/null || return 1; fi
  _jh_recorded "$name" || return 0
  kill -KILL "$JH_REC_PID" 2>/dev/null || true
  _jh_wait_gone 5000 "$JH_REC_PID:$JH_REC_START"
}

# jh_nats_stop_node NAME: graceful stop (SIGTERM) of a cluster node.
jh_nats_stop_node() {
  _jh_need_state || return 1
  _jh_node_dir "${1:-}" >/dev/null || return 1
  _jh_nats_stop_name "$1" TERM
}

# jh_nats_start_node NAME: start a stopped/killed cluster node (no-op when running).
jh_nats_start_node() {
  _jh_need_state || return 1
  _jh_node_dir "${1:-}" >/dev/null || return 1
  if _jh_recorded "$1"; then return 0; fi
  jh_nats_restart_node "$1"
}

# jh_nats_restart_node NAME: (stop if running, then) start a cluster node with
# its config, ports and store; waits until it is ready and JetStream-current.
jh_nats_restart_node() {
  _jh_need_state || return 1
  local name=${1:-} dir port hport rc=0
  dir=$(_jh_node_dir "$name") || return 1
  _jh_nats_stop_name "$name" TERM || return 1
  read -r port <"$dir/port"
  read -r hport <"$dir/http_port"
  _jh_nats_launch "$name" "$dir/$name.conf" "$dir/$name.log" || rc=$?
  ((rc == 0)) && { _jh_nats_wait "$name" "$port" "$hport" "$dir/$name.log" "$(_jh_timeout_ms)" || rc=$?; }
  if ((rc != 0)); then
    _jh_err "could not restart nats cluster node $name"
    _jh_log_tail "$dir/$name.log"
    return 1
  fi
}

# ---------------------------------------------------------------- postgres

# _jh_pg_launch [TIMEOUT_MS]: start postgres detached on the stored port and
# wait until it accepts connections. Returns 0 when ready, 2 on a port clash,
# 1 otherwise.
_jh_pg_launch() {
  local dir=$JETSCHED_TEST_STATE/pg bindir port deadline status timeout_ms=${1:-$(_jh_timeout_ms)}
  bindir=$(_jh_pg_bindir) || return 1
  read -r port <"$dir/port"
  local log=$dir/postgres.log pidfile=$dir/data/postmaster.pid
  # Lock files left by a killed postmaster: postgres checks them with
  # kill(pid, 0), which a not-yet-reaped zombie passes (init may reap late).
  # Callers only get here when our postgres is not running.
  rm -f -- "$pidfile" "$dir"/.s.PGSQL.*
  local -a as_pg=()
  ((EUID != 0)) || as_pg=(setpriv --reuid=postgres --regid=postgres --init-groups --)
  _jh_spawn pg "$log" QUIT "$dir" "${as_pg[@]}" "$bindir/postgres" -D "$dir/data" -p "$port" || return $?
  deadline=$(($(_jh_now_ms) + timeout_ms))
  while :; do
    if ! _jh_recorded pg; then
      _jh_port_clash pg "$log" && return 2
      _jh_err "postgres exited during startup"
      return 1
    fi
    status=$(sed -n 8p -- "$pidfile" 2>/dev/null) || status=
    if [[ $status == *ready* ]] &&
      PGCONNECT_TIMEOUT=3 "$bindir/pg_isready" -q -h 127.0.0.1 -p "$port" -U postgres -d postgres -t 3; then
      return 0
    fi
    (($(_jh_now_ms) < deadline)) || break
    sleep 0.02
  done
  _jh_err "postgres (pid $JH_REC_PID) not ready after $((timeout_ms / 1000)) s"
  kill -QUIT "$JH_REC_PID" 2>/dev/null || true
  _jh_wait_gone 5000 "$JH_REC_PID:$JH_REC_START" || _jh_kill_hard "$JH_REC_PID:$JH_REC_START"
  return 1
}

# jh_start_pg: initdb (trust, UTF8, --no-sync) + postgres on 127.0.0.1, then
# CREATE DATABASE jetsched.
jh_start_pg() {
  _jh_need_state || return 1
  local dir=$JETSCHED_TEST_STATE/pg bindir attempt rc sockdir
  bindir=$(_jh_pg_bindir) || return 1
  mkdir -p "$dir"
  if ((EUID == 0)); then
    if ! id postgres >/dev/null 2>&1; then _jh_err "running as root but there is no 'postgres' user"; return 1; fi
    chown postgres: "$dir"
    chmod 0700 "$dir"
    if ! setpriv --reuid=postgres --regid=postgres --init-groups -- test -w "$dir"; then
      _jh_err "user postgres cannot write to $dir; set TMPDIR to a directory every user can traverse (e.g. /tmp)"
      return 1
    fi
  fi
  if ! (cd "$dir" && _jh_as_pg "$bindir/initdb" -D "$dir/data" -A trust -U postgres -E UTF8 --locale=C \
    --no-sync --no-instructions) >"$dir/initdb.log" 2>&1; then
    _jh_err "initdb failed"
    _jh_log_tail "$dir/initdb.log"
    return 1
  fi
  sockdir=$dir
  if ((${#sockdir} > 90)); then
    _jh_msg "state dir path too long for a unix socket; PostgreSQL listens on TCP only"
    sockdir=
  fi
  cat >>"$dir/data/postgresql.conf" <<EOF

# ---- added by tests/harness/servers.sh (durability settings left at defaults)
listen_addresses = '127.0.0.1'
unix_socket_directories = '$sockdir'
max_connections = 100
shared_buffers = 16MB
logging_collector = off
log_line_prefix = '%m [%p] %q%u@%d '
EOF
  for ((attempt = 1; attempt <= 5; attempt++)); do
    _jh_pick_port || return 1
    printf '%s\n' "$JH_PORT" >"$dir/port"
    rc=0
    _jh_pg_launch || rc=$?
    ((rc == 2)) || break
  done
  if ((rc != 0)); then
    _jh_err "could not start postgres (attempt $attempt)"
    _jh_log_tail "$dir/postgres.log"
    return 1
  fi
  local port
  read -r port <"$dir/port"
  if ! PGCONNECT_TIMEOUT=10 "$bindir/psql" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$port" -U postgres -d postgres \
    -c 'CREATE DATABASE jetsched' >"$dir/createdb.log" 2>&1; then
    _jh_err "CREATE DATABASE jetsched failed"
    _jh_log_tail "$dir/createdb.log"
    _jh_log_tail "$dir/postgres.log"
    return 1
  fi
  export JETSCHED_TEST_PG_PORT=$port
  export JETSCHED_TEST_PG_DSN="host=127.0.0.1 port=$port user=postgres dbname=jetsched"
  _jh_env_save
}

# jh_pg_stop: fast shutdown (SIGINT to the postmaster) and wait.
jh_pg_stop() {
  _jh_need_state || return 1
  [[ -s $JETSCHED_TEST_STATE/pg/port ]] || { _jh_err "no postgres in this harness"; return 1; }
  _jh_recorded pg || return 0
  kill -INT "$JH_REC_PID" 2>/dev/null || true
  if ! _jh_wait_gone 30000 "$JH_REC_PID:$JH_REC_START"; then
    _jh_err "postgres did not stop in 30 s after SIGINT; immediate shutdown"
    kill -QUIT "$JH_REC_PID" 2>/dev/null || true
    _jh_wait_gone 10000 "$JH_REC_PID:$JH_REC_START" || _jh_kill_hard "$JH_REC_PID:$JH_REC_START"
  fi
}

# jh_pg_kill: crash PostgreSQL: SIGKILL the postmaster and all its children.
jh_pg_kill() {
  _jh_need_state || return 1
  [[ -s $JETSCHED_TEST_STATE/pg/port ]] || { _jh_err "no postgres in this harness"; return 1; }
  _jh_recorded pg || return 0
  _jh_kill_hard "$JH_REC_PID:$JH_REC_START"
}

# jh_pg_start: start the same data dir on the same port again; waits until ready.
jh_pg_start() {
  _jh_need_state || return 1
  local dir=$JETSCHED_TEST_STATE/pg rc=0
  [[ -s $dir/port ]] || { _jh_err "no postgres in this harness"; return 1; }
  if _jh_recorded pg; then return 0; fi
  _jh_pg_launch 60000 || rc=$?
  if ((rc != 0)); then
    _jh_err "could not restart postgres on port $(<"$dir/port")"
    _jh_log_tail "$dir/postgres.log"
    return 1
  fi
}
