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
# --succeeded 1: 1 % succeeded, 89 % dead, 5 % cancelled (and the qfail
# rows), the other end of a 'succeeded' listing.
# Since sql/0019 a listing without a state and a queue (or with several states), without a
# handler or schedule, is one branch per state merged (scheduler/api_task.c).
#
# Usage: bench/plans.sh [--build DIR] [--tasks N] [--succeeded 90|1]
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
BUILD=$ROOT/build-bench TASKS=1000000 SUCC=90 INNER=0
while (($#)); do
  case $1 in
    --build) BUILD=$2; shift ;;
    --tasks) TASKS=$2; shift ;;
    --succeeded) SUCC=$2; shift ;;
    --inner) INNER=1 ;;
    -h | --help) sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "bench/plans.sh: unknown option $1" >&2; exit 2 ;;
  esac
  shift
done
if ((!INNER)); then
  if [[ ! -x $BUILD/cli/jetsched ]]; then
    cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
    cmake --build "$BUILD" -j2 --target jetsched_cli >/dev/null
  fi
  exec "$ROOT/tests/harness/with-servers" --pg -- "$0" --inner --build "$BUILD" --tasks "$TASKS" --succeeded "$SUCC"
fi
q() { psql -X -qAt -v ON_ERROR_STOP=1 "$JETSCHED_TEST_PG_DSN" -c "$1"; }
JETSCHED_PG_DSN=$JETSCHED_TEST_PG_DSN "$BUILD/cli/jetsched" migrate --sql-dir "$ROOT/sql" >/dev/null
[[ $SUCC == 90 || $SUCC == 1 ]] || { echo "bench/plans.sh: --succeeded is 90 or 1" >&2; exit 2; }
S=succeeded F=dead # 90: 90 % succeeded, 5 % dead; 1: 1 % succeeded (g % 100 = 7), 89 % dead, 5 % cancelled
[[ $SUCC == 90 ]] || { S=dead F=cancelled; }
echo "== $TASKS tasks, $SUCC % succeeded"
q "INSERT INTO tasks (id, queue, handler, status, attempts, created_at, updated_at, finished_at, schedule_id)
   SELECT 'b' || lpad(g::text, 9, '0'), CASE WHEN g % 100 = 3 THEN 'qfail' ELSE 'q' || (g % 10) END,
     'h' || (g % 50),
     CASE WHEN g % 100 = 3 THEN 'dead' WHEN g % 100 = 7 THEN 'succeeded' WHEN g % 100 < 90 THEN '$S' WHEN g % 100 < 95 THEN '$F'
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
# task.list without a state and a queue (or with several states), without a handler or schedule,
# as scheduler/api_task.c sends it since sql/0019: one branch per state.
STATES="scheduled queued running succeeded retrying dead expired cancelled duplicate skipped waiting throttled"
merged() { # $1: the states, $2: the other conditions
  local st u=
  for st in $1; do u+="${u:+ UNION ALL }(SELECT * FROM tasks WHERE status = '$st'$2 $L)"; done
  echo "SELECT $COLS FROM ($u) tasks $L"
}
CUR=" AND (created_at, id) < (now() - interval '15 days', 'b000000000')"
plan "task.get" "SELECT $COLS, payload, result FROM tasks WHERE id = 'b000500000'"
plan "task.get: its attempts" "SELECT attempt, status FROM task_attempts WHERE task_id = 'b000500000' ORDER BY attempt"
plan "task.list (no filter: one branch per state, merged)" "$(merged "$STATES" "")"
plan "task.list, a page half way down (cursor)" "$(merged "$STATES" "$CUR")"
plan "task.list since/until (one day)" "$(merged "$STATES" " AND created_at >= now() - interval '11 days' AND created_at < now() - interval '10 days'")"
plan "task.list status=dead" "SELECT $COLS FROM tasks WHERE true AND status = 'dead' $L"
plan "task.list status=succeeded" "SELECT $COLS FROM tasks WHERE true AND status = 'succeeded' $L"
plan "task.list status=succeeded, a page half way down" "SELECT $COLS FROM tasks WHERE true AND status = 'succeeded'$CUR $L"
plan "task.list status=dead,expired" "$(merged "dead expired" "")"
plan "task.list queue=q7" "SELECT $COLS FROM tasks WHERE true AND queue = 'q7' $L"
plan "task.list queue=q7 status=dead" "SELECT $COLS FROM tasks WHERE true AND queue = 'q7' AND status = 'dead' $L"
plan "task.list queue=q7 status=succeeded" "SELECT $COLS FROM tasks WHERE true AND queue = 'q7' AND status = 'succeeded' $L"
plan "task.list queue=qfail status=succeeded (no row: the worst case)" "SELECT $COLS FROM tasks WHERE true AND queue = 'qfail' AND status = 'succeeded' $L"
plan "task.list queue=q7 status=running,retrying" "$(merged "running retrying" " AND queue = 'q7'")"
plan "task.list handler=h7" "SELECT $COLS FROM tasks WHERE true AND handler = 'h7' $L"
plan "task.list handler=h7 status=dead" "SELECT $COLS FROM tasks WHERE true AND status = 'dead' AND handler = 'h7' $L"
plan "task.list schedule=s11" "SELECT $COLS FROM tasks WHERE true AND schedule_id = 's11' $L"
plan "stats sampler (scheduler/stats.c): every state, up to 100000 each" \
  "SELECT st.status, (SELECT count(*) FROM (SELECT 1 FROM tasks t WHERE t.status = st.status LIMIT 100000) c) FROM unnest('{$(tr ' ' , <<<"$STATES")}'::text[]) st(status)"
plan "rollup step (scheduler/rollup.c): ten minutes of finished tasks" \
  "SELECT date_trunc('minute', coalesce(t.finished_at, t.updated_at)), t.queue, count(*) FROM tasks t
   WHERE t.status IN ('succeeded', 'dead', 'expired', 'cancelled', 'duplicate', 'skipped')
     AND coalesce(t.finished_at, t.updated_at) >= now() - interval '20 minutes' AND coalesce(t.finished_at, t.updated_at) < now() - interval '10 minutes' GROUP BY 1, 2"
plan "retention (common/retention.c): a batch of 1000 older than 29 days" \
  "SELECT id FROM tasks WHERE status IN ('succeeded', 'dead', 'expired', 'cancelled', 'duplicate', 'skipped')
   AND coalesce(finished_at, updated_at) < now() - interval '29 days' AND workflow_id IS NULL LIMIT 1000 FOR UPDATE SKIP LOCKED"
plan "retention: nothing old enough (the usual run)" \
  "SELECT id FROM tasks WHERE status IN ('succeeded', 'dead', 'expired', 'cancelled', 'duplicate', 'skipped')
   AND coalesce(finished_at, updated_at) < now() - interval '31 days' AND workflow_id IS NULL LIMIT 1000 FOR UPDATE SKIP LOCKED"
echo "== the index set"
q "SELECT indexname || ': ' || regexp_replace(indexdef, '^.* USING ', '') || '  (' ||
          pg_size_pretty(pg_relation_size(indexname::regclass)) || ')'
   FROM pg_indexes WHERE tablename IN ('tasks', 'task_attempts') ORDER BY tablename DESC, indexname"
q "SELECT 'foreign keys on task_attempts: ' || count(*) FROM pg_constraint WHERE conrelid = 'task_attempts'::regclass AND contype = 'f'"
