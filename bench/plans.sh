#!/usr/bin/env bash
# bench/plans.sh: the query plans of the API's task.get and task.list (every
# filter) and of the stats sampler's bounded counts on a large history, with
# the migrated schema (issue 14; docs/PERFORMANCE.md "History schema and
# plans"). Starts its own PostgreSQL (tests/harness/with-servers --pg), fills
# `tasks` with N rows (default 1,000,000, the shape of bench/web.sh: 10
# queues, 50 handlers, 90 % succeeded / 5 % dead / 3 % queued / 2 % expired,
# one in ten fired by a schedule) plus queue `qfail` (1 row in 100) in which
# nothing succeeds, the worst case of a 'succeeded' listing now that
# tasks_queue_created_idx leaves succeeded rows out), ANALYZEs, and prints
# EXPLAIN (ANALYZE) of each query as task.list sends it, and the index set.
#
# Usage: bench/plans.sh [--build DIR] [--tasks N]
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
BUILD=$ROOT/build-bench TASKS=1000000 INNER=0
while (($#)); do
  case $1 in
    --build) BUILD=$2; shift ;;
    --tasks) TASKS=$2; shift ;;
    --inner) INNER=1 ;;
    -h | --help) sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "bench/plans.sh: unknown option $1" >&2; exit 2 ;;
  esac
  shift
done
if ((!INNER)); then
  if [[ ! -x $BUILD/cli/jetsched ]]; then
    cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
    cmake --build "$BUILD" -j2 --target jetsched_cli >/dev/null
  fi
  exec "$ROOT/tests/harness/with-servers" --pg -- "$0" --inner --build "$BUILD" --tasks "$TASKS"
fi
q() { psql -X -qAt -v ON_ERROR_STOP=1 "$JETSCHED_TEST_PG_DSN" -c "$1"; }
JETSCHED_PG_DSN=$JETSCHED_TEST_PG_DSN "$BUILD/cli/jetsched" migrate --sql-dir "$ROOT/sql" >/dev/null
echo "== $TASKS tasks"
q "INSERT INTO tasks (id, queue, handler, status, attempts, created_at, updated_at, finished_at, schedule_id)
   SELECT 'b' || lpad(g::text, 9, '0'), CASE WHEN g % 100 = 3 THEN 'qfail' ELSE 'q' || (g % 10) END,
     'h' || (g % 50),
     CASE WHEN g % 100 = 3 THEN 'dead' WHEN g % 100 < 90 THEN 'succeeded' WHEN g % 100 < 95 THEN 'dead'
          WHEN g % 100 < 98 THEN 'queued' ELSE 'expired' END, 1,
     now() - ($TASKS - g) * (interval '30 days' / $TASKS), now() - ($TASKS - g) * (interval '30 days' / $TASKS),
     now() - ($TASKS - g) * (interval '30 days' / $TASKS),
     CASE WHEN g % 10 = 1 THEN 's' || (g % 100) END
   FROM generate_series(1, $TASKS) g"
q "VACUUM ANALYZE tasks"
COLS="id, queue, handler, priority, status, attempts, max_attempts, error, agent, created_at, scheduled_for, started_at, finished_at"
L="ORDER BY created_at DESC, id DESC LIMIT 51"
plan() {
  echo "-- $1"
  echo "   $2"
  q "EXPLAIN (ANALYZE, COSTS OFF) $2" | grep -Ev '^\s*(Planning Time|Rows Removed by Index Recheck)' | sed 's/^/   /'
}
plan "task.get" "SELECT $COLS, payload, result FROM tasks WHERE id = 'b000500000'"
plan "task.list" "SELECT $COLS FROM tasks WHERE true $L"
plan "task.list status=dead" "SELECT $COLS FROM tasks WHERE true AND status = 'dead' $L"
plan "task.list status=succeeded" "SELECT $COLS FROM tasks WHERE true AND status = 'succeeded' $L"
plan "task.list queue=q7" "SELECT $COLS FROM tasks WHERE true AND queue = 'q7' $L"
plan "task.list queue=q7 status=dead" "SELECT $COLS FROM tasks WHERE true AND queue = 'q7' AND status = 'dead' $L"
plan "task.list queue=q7 status=succeeded" "SELECT $COLS FROM tasks WHERE true AND queue = 'q7' AND status = 'succeeded' $L"
plan "task.list queue=qfail status=succeeded (no row: the worst case)" "SELECT $COLS FROM tasks WHERE true AND queue = 'qfail' AND status = 'succeeded' $L"
plan "task.list queue=q7 status=running,retrying" "SELECT $COLS FROM tasks WHERE true AND queue = 'q7' AND status = ANY('{running,retrying}'::text[]) $L"
plan "task.list handler=h7" "SELECT $COLS FROM tasks WHERE true AND handler = 'h7' $L"
plan "task.list schedule=s11" "SELECT $COLS FROM tasks WHERE true AND schedule_id = 's11' $L"
plan "stats sampler: succeeded, up to 100000" "SELECT count(*) FROM (SELECT 1 FROM tasks t WHERE t.status = 'succeeded' LIMIT 100000) c"
plan "stats sampler: dead, up to 100000" "SELECT count(*) FROM (SELECT 1 FROM tasks t WHERE t.status = 'dead' LIMIT 100000) c"
echo "== the index set"
q "SELECT indexname || ': ' || regexp_replace(indexdef, '^.* USING ', '') || '  (' ||
          pg_size_pretty(pg_relation_size(indexname::regclass)) || ')'
   FROM pg_indexes WHERE tablename IN ('tasks', 'task_attempts') ORDER BY tablename DESC, indexname"
q "SELECT 'foreign keys on task_attempts: ' || count(*) FROM pg_constraint WHERE conrelid = 'task_attempts'::regclass AND contype = 'f'"
