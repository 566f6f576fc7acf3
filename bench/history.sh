#!/usr/bin/env bash
# bench/history.sh: the history writer's throughput against a pgbench
# baseline, on one throwaway PostgreSQL (tests/harness/with-servers --pg),
# in one run. Both insert the same records: one tasks row plus one
# task_attempts row per record, BATCH records per transaction, one
# connection, into the schema of sql/ (same indexes and constraints).
#   baseline: pgbench -M prepared running a multi-row INSERT script
#             (BEGIN; INSERT tasks VALUES x BATCH; INSERT task_attempts VALUES x BATCH; COMMIT)
#   writer:   bench/history_bench (COPY to staging + INSERT..SELECT ON CONFLICT, per-record callbacks)
# Rounds alternate baseline and writer on emptied tables; medians are compared.
# Usage: bench/history.sh [--build DIR] [--records N] [--batch N] [--rounds N] [--producers N]
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
BUILD=$ROOT/build RECORDS=200000 BATCH=256 ROUNDS=3 PRODUCERS=2
while (($#)); do
  case $1 in
    --build) BUILD=$2; shift ;;
    --records) RECORDS=$2; shift ;;
    --batch) BATCH=$2; shift ;;
    --rounds) ROUNDS=$2; shift ;;
    --producers) PRODUCERS=$2; shift ;;
    -h | --help) sed -n '2,13p' "$0"; exit 0 ;;
    *) echo "history.sh: unknown option $1" >&2; exit 2 ;;
  esac
  shift
done
BUILD=$(cd "$BUILD" && pwd -P)
args=(--build "$BUILD" --records "$RECORDS" --batch "$BATCH" --rounds "$ROUNDS" --producers "$PRODUCERS")
if [[ -z ${JETSCHED_TEST_PG_DSN:-} ]]; then
  exec "$ROOT/tests/harness/with-servers" --pg -- "$0" "${args[@]}"
fi

export JETSCHED_PG_DSN=$JETSCHED_TEST_PG_DSN
# shellcheck source=../scripts/lib/server-bins.sh
. "$ROOT/scripts/lib/server-bins.sh"
jetsched_find_pg_bindir || { echo "history.sh: $JETSCHED_FIND_ERROR" >&2; exit 1; }
PG_BINDIR=$JETSCHED_FOUND
BENCH=$BUILD/bench/history_bench
JS=$BUILD/cli/jetsched
[[ -x $BENCH && -x $JS ]] || { echo "history.sh: build history_bench and jetsched_cli in $BUILD first" >&2; exit 1; }
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
q() { psql -X -qAt -v ON_ERROR_STOP=1 "$JETSCHED_PG_DSN" -c "$1"; }

"$JS" migrate --sql-dir "$ROOT/sql" >/dev/null 2>&1
q "CREATE SEQUENCE IF NOT EXISTS pgbench_ids START 1000000000000000" >/dev/null  # ids "pb-<16 digits>" like the writer's

# The baseline script: literal rows like the writer's; ids come from a
# sequence (row k of the attempts statement names the k-th id taken by the
# tasks statement), so the statements have no parameters and are prepared once.
{
  echo "BEGIN;"
  echo "INSERT INTO tasks (id, queue, handler, priority, status, attempts, max_attempts, agent, result,"
  echo " created_at, started_at, finished_at, updated_at) VALUES"
  for ((k = 0; k < BATCH; k++)); do
    sep=","; ((k == BATCH - 1)) && sep=";"
    echo "('pb-' || nextval('pgbench_ids'), 'bench', 'echo', 'normal', 'succeeded', 1, 5, 'agent-bench', 'ok', now(), now(), now(), now())$sep"
  done
  echo "INSERT INTO task_attempts (task_id, attempt, agent, status, started_at, finished_at) VALUES"
  for ((k = 0; k < BATCH; k++)); do
    sep=","; ((k == BATCH - 1)) && sep=";"
    echo "('pb-' || (currval('pgbench_ids') - $((BATCH - 1 - k))), 1, 'agent-bench', 'succeeded', now(), now())$sep"
  done
  echo "COMMIT;"
} >"$TMP/insert.sql"

reset_tables() { q "TRUNCATE tasks, task_attempts; CHECKPOINT" >/dev/null; }

run_baseline() {
  local tx=$((RECORDS / BATCH)) out tps
  out=$("$PG_BINDIR/pgbench" -n -M "${PGBENCH_MODE:-prepared}" -c 1 -t "$tx" -f "$TMP/insert.sql" "$JETSCHED_PG_DSN" 2>&1) ||
    { echo "$out" >&2; exit 1; }
  tps=$(sed -n 's/^tps = \([0-9.]*\).*/\1/p' <<<"$out" | head -n 1)
  awk -v t="$tps" -v b="$BATCH" 'BEGIN { printf "%.0f", t * b }'
}

run_writer() {
  local out
  out=$("$BENCH" --records "$RECORDS" --batch "$BATCH" --producers "$PRODUCERS") || exit 1
  sed -n 's/^RESULT writer_rows_per_s=//p' <<<"$out"
}

median() { printf '%s\n' "$@" | sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

base=() writer=()
for ((r = 1; r <= ROUNDS; r++)); do
  reset_tables
  base+=("$(run_baseline)")
  reset_tables
  writer+=("$(run_writer)")
  printf 'round %d: baseline %s rows/s, writer %s rows/s\n' "$r" "${base[-1]}" "${writer[-1]}"
done
b=$(median "${base[@]}") w=$(median "${writer[@]}")
cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)
printf '\nmachine: %s cores (%s), %s, load %s; PostgreSQL %s\n' "$(nproc)" "$cpu" "$(uname -sr)" \
  "$(cut -d' ' -f1-3 /proc/loadavg)" "$("$PG_BINDIR/postgres" --version | awk '{print $3}')"
printf 'records %d, batch %d, writer producers %d, rounds %d\n' "$RECORDS" "$BATCH" "$PRODUCERS" "$ROUNDS"
printf 'baseline (pgbench multi-row INSERT): %s rows/s (median)\n' "$b"
printf 'history writer:                      %s rows/s (median)\n' "$w"
awk -v w="$w" -v b="$b" 'BEGIN { printf "ratio: %.0f%% of the baseline (goal >= 80%%)\n", 100 * w / b }'
