# shellcheck shell=bash disable=SC2034 # JETSCHED_FOUND and JETSCHED_FIND_ERROR are results for the caller
# scripts/lib/server-bins.sh — owns the ONE lookup of the server binaries that
# jetsched's scripts start themselves: nats-server and PostgreSQL's server
# programs (initdb, postgres, pg_ctl, psql...). Sourced by scripts/quickstart
# and tests/harness/servers.sh; defines functions only (nothing runs on
# source, nothing is assumed installed: call them after scripts/install-deps).
#
#   jetsched_find_nats_server   JETSCHED_FOUND=path of nats-server
#   jetsched_find_pg_bindir     JETSCHED_FOUND=directory holding initdb and postgres
#
# Both return 0 on success; on failure they return 1 and set
# JETSCHED_FIND_ERROR to a message for the caller to print with its prefix.
# They set variables instead of printing so that callers need no subshell.
#
# Where they look:
#   nats-server: $JETSCHED_NATS_SERVER, else PATH, else /usr/sbin (Debian's
#                nats-server package installs it there, which is not on an
#                ordinary user's PATH), /usr/local/sbin, /usr/local/bin.
#   PostgreSQL:  $JETSCHED_PG_BINDIR, else the newest /usr/lib/postgresql/*/bin
#                (Debian's layout, not on PATH), else the directory of initdb
#                on PATH.

jetsched_find_nats_server() {
  JETSCHED_FOUND='' JETSCHED_FIND_ERROR=''
  if [[ -n ${JETSCHED_NATS_SERVER:-} ]]; then
    if [[ -x $JETSCHED_NATS_SERVER ]]; then JETSCHED_FOUND=$JETSCHED_NATS_SERVER; return 0; fi
    JETSCHED_FIND_ERROR="JETSCHED_NATS_SERVER=$JETSCHED_NATS_SERVER: not found or not executable"
    return 1
  fi
  local b d
  b=$(command -v nats-server 2>/dev/null) || b=
  if [[ -z $b ]]; then
    for d in /usr/sbin /usr/local/sbin /usr/local/bin; do
      if [[ -x $d/nats-server ]]; then b=$d/nats-server; break; fi
    done
  fi
  if [[ -z $b ]]; then
    JETSCHED_FIND_ERROR="nats-server not found on PATH nor in /usr/sbin (run scripts/install-deps, or set JETSCHED_NATS_SERVER)"
    return 1
  fi
  JETSCHED_FOUND=$b
}

jetsched_find_pg_bindir() {
  JETSCHED_FOUND='' JETSCHED_FIND_ERROR=''
  if [[ -n ${JETSCHED_PG_BINDIR:-} ]]; then
    if [[ -x $JETSCHED_PG_BINDIR/initdb && -x $JETSCHED_PG_BINDIR/postgres ]]; then
      JETSCHED_FOUND=$JETSCHED_PG_BINDIR
      return 0
    fi
    JETSCHED_FIND_ERROR="PostgreSQL server binaries (initdb, postgres) not found in JETSCHED_PG_BINDIR=$JETSCHED_PG_BINDIR"
    return 1
  fi
  local d best=
  for d in /usr/lib/postgresql/*/bin; do
    [[ -x $d/initdb && -x $d/postgres ]] || continue
    if [[ -z $best ]] || [[ $(printf '%s\n%s\n' "$best" "$d" | sort -V | tail -n 1) == "$d" ]]; then best=$d; fi
  done
  if [[ -z $best ]]; then
    d=$(command -v initdb 2>/dev/null) || d=
    if [[ -n $d && -x ${d%/*}/postgres ]]; then best=${d%/*}; fi
  fi
  if [[ -z $best ]]; then
    JETSCHED_FIND_ERROR="PostgreSQL server binaries (initdb, postgres) not found in /usr/lib/postgresql/*/bin nor on PATH (run scripts/install-deps, or set JETSCHED_PG_BINDIR)"
    return 1
  fi
  JETSCHED_FOUND=$best
}
