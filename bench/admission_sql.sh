#!/usr/bin/env bash
# bench/admission_sql.sh: PostgreSQL CPU per admission lookup (agentd's
# recorder_rows()) as agentd sends it now (ROWS_SQL of agentd/recorder.c,
# prepared once: pgbench -M prepared) against the query before git 87fd343
# (sent with PQexecParams, so parsed and planned each time: pgbench -M
# extended; a task_attempts subquery per row), in one throwaway PostgreSQL
# (tests/harness/with-servers --pg), alternating rounds. `tasks` holds ROWS
# rows (half queued at attempt 0, half retrying at attempt 1); each lookup
# asks IDS random ids of which half exist. Prints the CPU of the PostgreSQL
# process tree per lookup and per id (pgbench's own work on the ids array
# included, the same on both sides).
# Usage: bench/admission_sql.sh [--build DIR] [--rows N] [--ids N] [--seconds S] [--rounds R]
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
BUILD=$ROOT/build-bench ROWS=50000 IDS=14 SECS=5 ROUNDS=3 INNER=0
while (($#)); do
  case $1 in
    --build) BUILD=$(cd "$2" && pwd -P); shift ;;
    --rows) ROWS=$2; shift ;;
    --ids) IDS=$2; shift ;;
    --seconds) SECS=$2; shift ;;
    --rounds) ROUNDS=$2; shift ;;
    --inner) INNER=1 ;;
    -h | --help) sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "bench/admission_sql.sh: unknown option $1" >&2; exit 2 ;;
  esac
  shift
done
if ((!INNER)); then
  exec "$ROOT/tests/harness/with-servers" --pg -- "$0" --inner --build "$BUILD" --rows "$ROWS" --ids "$IDS" \
    --seconds "$SECS" --rounds "$ROUNDS"
fi
q() { psql -X -qAt -v ON_ERROR_STOP=1 "$JETSCHED_TEST_PG_DSN" "$@"; }
JETSCHED_PG_DSN=$JETSCHED_TEST_PG_DSN "$BUILD/cli/jetsched" migrate --sql-dir "$ROOT/sql" >/dev/null 2>&1
q -c "INSERT INTO tasks (id, queue, status, attempts) SELECT 'r' || g, 'q', CASE WHEN g % 2 = 0 THEN 'queued'
      ELSE 'retrying' END, g % 2 FROM generate_series(1, $ROWS) g" -c "ANALYZE tasks"
. "$ROOT/bench/pg_cpu.sh"
pg_cpu_init
D=$(mktemp -d)
trap 'rm -rf "$D"' EXIT
sets='' arr=''
for ((i = 1; i <= IDS; i++)); do
  sets+="\\set a$i random(1, $((2 * ROWS)))"$'\n'
  arr+="${arr:+, }'r' || :a$i"
done
# The statement of agentd/recorder.c, with $1 replaced by the ids array.
rows_sql=$(sed -n '/^static const char ROWS_SQL\[\] =/,/;$/p' "$ROOT/agentd/recorder.c" | sed '1d; s/^ *"//; s/";\{0,1\}$//' |
  tr -d '\n' | sed 's/\\"/"/g')
[[ $rows_sql == SELECT* ]] || { echo "bench/admission_sql.sh: ROWS_SQL not found in agentd/recorder.c" >&2; exit 1; }
printf '%s%s;\n' "$sets" "${rows_sql//\$1/ARRAY[$arr]}" >"$D/new.sql"
printf '%sSELECT t.id, t.status, greatest(t.attempts, (SELECT coalesce(max(x.attempt), 0) FROM task_attempts x WHERE
 x.task_id = t.id)), coalesce(t.handed_back, 0), coalesce(t.handed_back_seq, 0) FROM tasks t WHERE t.id =
 ANY(ARRAY[%s]::text[]);\n' "$sets" "$arr" >"$D/old.sql"
run() { # label file pgbench-mode
  local c0 c1 n
  c0=$(pg_cpu)
  n=$(pgbench -n -c 1 -T "$SECS" -M "$3" -f "$2" "$JETSCHED_TEST_PG_DSN" 2>/dev/null |
    sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p')
  sleep 0.5 # pgbench's backend exits and is reaped
  c1=$(pg_cpu)
  awk -v l="$1" -v c=$((c1 - c0)) -v n="$n" -v k="$IDS" \
    'BEGIN { printf "%s: %d lookups of %d ids, PostgreSQL %.1f us per lookup, %.2f us per id\n", l, n, k, c * 1000 / n, c * 1000 / n / k }'
}
for ((r = 1; r <= ROUNDS; r++)); do
  run "round $r: before 87fd343 (parsed and planned per lookup)" "$D/old.sql" extended
  run "round $r: ROWS_SQL (prepared)" "$D/new.sql" prepared
done
