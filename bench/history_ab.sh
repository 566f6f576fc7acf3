#!/usr/bin/env bash
# bench/history_ab.sh: PostgreSQL CPU per record of the history writer of two
# builds (A/B of common/history.c), in one throwaway PostgreSQL
# (tests/harness/with-servers --pg), alternating rounds on emptied tables.
# Each round runs bench/history_bench (the real writer: one succeeded
# attempt per task, a tasks row and a task_attempts row, --batch records per
# transaction) of one build and reads the CPU of the whole PostgreSQL process
# tree before and after it (backends, WAL writer, checkpointer, autovacuum;
# /proc/<pid>/stat, exited backends through the postmaster's cutime/cstime).
# The schema is sql/ of this checkout, so both builds write the same tables.
# A schema A/B: the same build as --a and --b, with --a-sql/--b-sql run on
# the emptied tables before each round of that side (e.g. one side's index
# set: DROP INDEX / CREATE INDEX on empty tables is instant).
# Prints per round and the median per side: PostgreSQL CPU µs/record, WAL
# bytes/record (pg_current_wal_insert_lsn before and after) and records/s.
# Usage: bench/history_ab.sh --a DIR --b DIR [--a-sql SQL] [--b-sql SQL] [--records N] [--batch N] [--rounds R]
#   (DIR: a build directory holding bench/history_bench; --a also provides cli/jetsched)
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
A='' B='' ASQL='' BSQL='' N=50000 BATCH=32 ROUNDS=3 INNER=0
while (($#)); do
  case $1 in
    --a) A=$(cd "$2" && pwd -P); shift ;;
    --b) B=$(cd "$2" && pwd -P); shift ;;
    --a-sql) ASQL=$2; shift ;;
    --b-sql) BSQL=$2; shift ;;
    --records) N=$2; shift ;;
    --batch) BATCH=$2; shift ;;
    --rounds) ROUNDS=$2; shift ;;
    --inner) INNER=1 ;;
    -h | --help) sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "bench/history_ab.sh: unknown option $1" >&2; exit 2 ;;
  esac
  shift
done
[[ -x $A/bench/history_bench && -x $B/bench/history_bench ]] ||
  { echo "bench/history_ab.sh: --a and --b must be build dirs with bench/history_bench" >&2; exit 2; }
if ((!INNER)); then
  exec "$ROOT/tests/harness/with-servers" --pg -- "$0" --inner --a "$A" --b "$B" --records "$N" --batch "$BATCH" \
    --rounds "$ROUNDS" --a-sql "$ASQL" --b-sql "$BSQL"
fi
export JETSCHED_PG_DSN=$JETSCHED_TEST_PG_DSN
q() { psql -X -qAt -v ON_ERROR_STOP=1 "$JETSCHED_TEST_PG_DSN" "$@"; }
"$A/cli/jetsched" migrate --sql-dir "$ROOT/sql" >/dev/null
. "$ROOT/bench/pg_cpu.sh"
pg_cpu_init
declare -A cpu rate walb
for ((r = 1; r <= ROUNDS; r++)); do
  for v in a b; do
    if [[ $v == a ]]; then d=$A sql=$ASQL; else d=$B sql=$BSQL; fi
    q -c "TRUNCATE tasks, task_attempts"
    [[ -z $sql ]] || q -c "$sql"
    q -c "CHECKPOINT"
    w0=$(q -c "SELECT pg_current_wal_insert_lsn()")
    c0=$(pg_cpu)
    out=$("$d/bench/history_bench" --records "$N" --batch "$BATCH" --producers 2)
    sleep 0.5 # the backend exits and is reaped (its CPU moves to the postmaster's cutime)
    c1=$(pg_cpu)
    wal=$(q -c "SELECT round(pg_wal_lsn_diff(pg_current_wal_insert_lsn(), '$w0') / $N)")
    rps=$(sed -n 's/^RESULT writer_rows_per_s=//p' <<<"$out")
    us=$(awk -v c="$((c1 - c0))" -v n="$N" 'BEGIN { printf "%.1f", c * 1000 / n }')
    cpu[$v]+="$us " rate[$v]+="$rps " walb[$v]+="$wal "
    echo "round $r: $v ($d): PostgreSQL $us us/record, WAL $wal bytes/record, $rps records/s"
  done
done
med() { tr ' ' '\n' <<<"$1" | grep . | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
echo "== median of $ROUNDS rounds, $N records, batch $BATCH: PostgreSQL CPU per record, WAL per record, records/s"
echo "a $A: $(med "${cpu[a]}") us, $(med "${walb[a]}") bytes, $(med "${rate[a]}")/s"
echo "b $B: $(med "${cpu[b]}") us, $(med "${walb[b]}") bytes, $(med "${rate[b]}")/s"
