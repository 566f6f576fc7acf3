#!/usr/bin/env bash
# bench/schema_ab.sh: PostgreSQL's cost of recording one succeeded attempt
# with the index set before sql/0009_history_write_path.sql and after it, in
# one throwaway PostgreSQL (tests/harness/with-servers --pg), alternating
# rounds on emptied tables (docs/PERFORMANCE.md "History schema and plans").
# `public` holds the migrated schema (0009: partial tasks_queue_created_idx,
# no foreign key; since 0019 also without tasks_created_idx); schema `before`
# the same tables with 0008's index set and the foreign key. Each round records N tasks in batches of 256 (one
# statement per batch, like the history writer: tasks rows in a
# data-modifying CTE, then their task_attempts rows):
#   one write:  each task inserted 'succeeded' with its attempt row
#               (history.running_after: a short attempt);
#   two writes: inserted 'running' (batch k), then updated to 'succeeded'
#               (batch k+1), the attempt row inserted then completed: what
#               every attempt longer than history.flush_interval cost before.
# Prints the medians per task of the statement time (psql's \timing: the
# server's work, the commits' WAL flushes and the round trips) and of the
# backend's CPU time (/proc/<pid>/stat; the WAL writer and checkpointer not
# included).
# Usage: bench/schema_ab.sh [--build DIR] [--tasks N] [--rounds R]
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
BUILD=$ROOT/build-bench N=51200 ROUNDS=5 INNER=0
while (($#)); do
  case $1 in
    --build) BUILD=$2; shift ;;
    --tasks) N=$2; shift ;;
    --rounds) ROUNDS=$2; shift ;;
    --inner) INNER=1 ;;
    -h | --help) sed -n '2,19p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "bench/schema_ab.sh: unknown option $1" >&2; exit 2 ;;
  esac
  shift
done
if ((!INNER)); then
  exec "$ROOT/tests/harness/with-servers" --pg -- "$0" --inner --build "$BUILD" --tasks "$N" --rounds "$ROUNDS"
fi
q() { psql -X -qAt -v ON_ERROR_STOP=1 "$JETSCHED_TEST_PG_DSN" "$@"; }
JETSCHED_PG_DSN=$JETSCHED_TEST_PG_DSN "$BUILD/cli/jetsched" migrate --sql-dir "$ROOT/sql" >/dev/null 2>&1
q -c "CREATE SCHEMA before;
      CREATE TABLE before.tasks (LIKE public.tasks INCLUDING ALL);
      CREATE TABLE before.task_attempts (LIKE public.task_attempts INCLUDING ALL);
      ALTER TABLE before.task_attempts ADD FOREIGN KEY (task_id) REFERENCES before.tasks (id) ON DELETE CASCADE;"
# 0008's tasks_queue_created_idx: not partial.
idx=$(q -c "SELECT indexname FROM pg_indexes WHERE schemaname = 'before' AND indexdef LIKE '%(queue, status, created_at%'")
q -c "DROP INDEX before.$idx" -c "CREATE INDEX ON before.tasks (queue, status, created_at DESC, id DESC)"
# sql/0019 dropped tasks_created_idx from public; 0008 had it.
q -c "CREATE INDEX ON before.tasks (created_at DESC, id)"
q -c "SELECT s || ': ' || count(*) || ' indexes on tasks and task_attempts, '
             || (SELECT count(*) FROM pg_constraint c JOIN pg_namespace n ON n.oid = c.connamespace
                 WHERE n.nspname = s AND c.contype = 'f') || ' foreign key'
      FROM (SELECT schemaname AS s FROM pg_indexes WHERE tablename IN ('tasks', 'task_attempts')
            AND schemaname IN ('public', 'before')) x GROUP BY s ORDER BY s"
# One batch of 256 tasks from id offset $2 in schema $1 with status $3 (and
# the attempt row); ON CONFLICT as the writer does.
batch_sql() {
  local s=$1 lo=$2 st=$3
  cat <<SQL
WITH u AS MATERIALIZED (SELECT 'id-' || lpad(g::text, 9, '0') AS id, 'q' || (g % 10) AS queue, 'h' || (g % 50) AS handler
                        FROM generate_series($lo, $lo + 255) g),
 t AS (INSERT INTO $s.tasks AS t (id, queue, handler, priority, status, attempts, max_attempts, agent, created_at,
         started_at, finished_at, updated_at)
       SELECT id, queue, handler, 'normal', '$st', 1, 5, 'bench', now(), now(),
              CASE WHEN '$st' = 'succeeded' THEN now() END, now() FROM u
       ON CONFLICT (id) DO UPDATE SET status = excluded.status, finished_at = excluded.finished_at,
         updated_at = excluded.updated_at
       WHERE NOT jetsched_status_terminal(t.status))
INSERT INTO $s.task_attempts AS a (task_id, attempt, agent, status, started_at, finished_at)
SELECT id, 1, 'bench', '$st', now(), CASE WHEN '$st' = 'succeeded' THEN now() END FROM u
ON CONFLICT (task_id, attempt) DO UPDATE SET status = excluded.status, finished_at = excluded.finished_at
WHERE a.status = 'running';
SQL
}
# Runs one variant; prints microseconds per task.
variant() {
  local s=$1 mode=$2 f
  f=$(mktemp)
  q -c "TRUNCATE $s.tasks, $s.task_attempts" -c "CHECKPOINT"
  {
    echo 'SELECT pg_backend_pid() AS pid \gset'
    echo '\setenv BENCH_PID :pid'
    echo "\\! awk '{print \"cpu0\", \$14 + \$15}' /proc/\$BENCH_PID/stat"
    printf '%s\n' '\timing on'
    for ((lo = 1; lo <= N; lo += 256)); do
      if [[ $mode == one ]]; then
        batch_sql "$s" "$lo" succeeded
      else
        batch_sql "$s" "$lo" running
        ((lo > 256)) && batch_sql "$s" $((lo - 256)) succeeded
      fi
    done
    [[ $mode == two ]] && batch_sql "$s" $((lo - 256)) succeeded
    echo "\\! awk '{print \"cpu1\", \$14 + \$15}' /proc/\$BENCH_PID/stat"
  } >"$f"
  q -f "$f" | awk -v n="$N" -v hz="$(getconf CLK_TCK)" '/^Time:/ { ms += $2 } /^cpu0/ { c0 = $2 } /^cpu1/ { c1 = $2 }
    END { printf "%.1f %.1f\n", ms * 1000 / n, (c1 - c0) * 1e6 / hz / n }'
  rm -f "$f"
}
declare -A res cpu
for ((r = 1; r <= ROUNDS; r++)); do
  for v in "before two" "before one" "public one"; do
    read -r -a words <<<"$v"
    set -- "${words[@]}"
    read -r x c < <(variant "$1" "$2")
    res["$1 $2"]+="$x "
    cpu["$1 $2"]+="$c "
    echo "round $r: $1 $2-write: $x us/task, backend CPU $c us/task"
  done
done
med() { tr ' ' '\n' <<<"$1" | grep . | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
echo "== median of $ROUNDS rounds, $N tasks each, server time per task (statement time / N)"
echo "                                                   time    backend CPU"
echo "before 0009, two writes (running, then succeeded): $(med "${res[before two]}") us  $(med "${cpu[before two]}") us"
echo "before 0009, one write (history.running_after):    $(med "${res[before one]}") us  $(med "${cpu[before one]}") us"
echo "0009 (now 0019), one write:                        $(med "${res[public one]}") us  $(med "${cpu[public one]}") us"
