#!/usr/bin/env bash
# tests/integration/web_upgrade.sh: the migrations of the HTTP API and console
# (sql/0003_task_minutes.sql, sql/0004_task_list_indexes.sql,
# sql/0006_task_list_order.sql, and every later one: 0007_held_states.sql
# replaces two CHECK constraints, 0009_history_write_path.sql leaves succeeded
# rows out of tasks_queue_created_idx and drops task_attempts' foreign key,
# 0017_list_indexes_ascending.sql rebuilds the listing indexes ascending, 0018_limit_release_probe.sql
# keeps the releaser off the queued tasks, 0019_history_index_set.sql drops
# tasks_created_idx) applied as an
# upgrade of the previous schema holding 1,000,000 tasks (DESIGN §12): they
# apply, the rollup starts one hour back, the task list's new indexes exist
# and serve a handler filter (EXPLAIN shows an index scan on them), and a
# re-run is a no-op.
set -euo pipefail
: "${JETSCHED_TEST_PG_DSN:?run under tests/harness/with-servers --pg}"
: "${JETSCHED_BUILD_DIR:?}" "${JETSCHED_SOURCE_DIR:?}"
JS=$JETSCHED_BUILD_DIR/cli/jetsched
export JETSCHED_PG_DSN=$JETSCHED_TEST_PG_DSN
unset JETSCHED_SQL_DIR JETSCHED_CONFIG
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
fail() { printf 'FAIL: %s\n' "$*" >&2; exit 1; }
q() { psql -X -qAt -v ON_ERROR_STOP=1 "$JETSCHED_PG_DSN" -c "$1"; }

mkdir "$TMP/old"
cp "$JETSCHED_SOURCE_DIR"/sql/000[12]_*.sql "$TMP/old/"
"$JS" migrate --sql-dir "$TMP/old" >/dev/null 2>&1 || fail "the previous schema"
q "INSERT INTO tasks (id, queue, handler, status, attempts, created_at, updated_at, finished_at)
   SELECT 'u' || g, 'q' || (g % 10), 'h' || (g % 50),
          CASE WHEN g % 10 = 0 THEN 'dead' ELSE 'succeeded' END, 1,
          now() - g * interval '100 ms', now() - g * interval '100 ms', now() - g * interval '100 ms'
   FROM generate_series(1, 1000000) g"
[[ $(q "SELECT count(*) FROM tasks") == 1000000 ]] || fail "1,000,000 tasks"
t0=$(date +%s%N)
"$JS" migrate --sql-dir "$JETSCHED_SOURCE_DIR/sql" >"$TMP/out" 2>&1 || { cat "$TMP/out" >&2; fail "upgrade"; }
ms=$((($(date +%s%N) - t0) / 1000000))
{ grep -q 0003_task_minutes "$TMP/out" && grep -q 0004_task_list_indexes "$TMP/out" &&
  grep -q 0006_task_list_order "$TMP/out"; } || fail "0003, 0004 and 0006 applied"
grep -q 0007_held_states "$TMP/out" || fail "0007 applied"
grep -q 0009_history_write_path "$TMP/out" || fail "0009 applied"
{ grep -q 0011_workflows "$TMP/out" && grep -q 0013_workflow_hot_counters "$TMP/out"; } || fail "0011 and 0013 applied"
grep -q 0015_handed_back "$TMP/out" || fail "0015 applied"
grep -q 0017_list_indexes_ascending "$TMP/out" || fail "0017 applied"
grep -q '_api_sessions' "$TMP/out" || fail "api_sessions migration applied"
grep -q '_workflow_callback_reserved' "$TMP/out" || fail "workflow_callback_reserved migration applied"
grep -q '_task_handbacks' "$TMP/out" || fail "task_handbacks migration applied"
[[ $(q "SELECT count(*) FROM task_handbacks") == 0 ]] || fail "task_handbacks starts empty"
echo "upgrade of 1,000,000 tasks: $ms ms"
[[ $(q "SELECT rolled_to < now() - interval '59 minutes' FROM task_minutes_state") == t ]] || fail "rollup starts an hour back"
[[ $(q "SELECT count(*) FROM pg_indexes WHERE indexname IN ('tasks_handler_created_idx', 'tasks_queue_only_created_idx')") == 2 ]] ||
  fail "the task list's indexes"
q "ANALYZE tasks"
plan=$(q "EXPLAIN SELECT id FROM tasks WHERE handler = 'h7' ORDER BY created_at DESC, id DESC LIMIT 50")
{ grep -q tasks_handler_created_idx <<<"$plan" && ! grep -q Sort <<<"$plan"; } || fail "a handler filter uses tasks_handler_created_idx: $plan"
plan=$(q "EXPLAIN SELECT id FROM tasks WHERE queue = 'q7' ORDER BY created_at DESC, id DESC LIMIT 50")
{ grep -q tasks_queue_only_created_idx <<<"$plan" && ! grep -q Sort <<<"$plan"; } || fail "a queue filter is an index scan without a sort: $plan"
# A queue and a status without any matching row (q3 has no dead task): the
# exact index range, not a walk of the queue (task.list sends one status as
# "status = $n").
plan=$(q "EXPLAIN SELECT id FROM tasks WHERE queue = 'q3' AND status = 'dead' ORDER BY created_at DESC, id DESC LIMIT 51")
{ grep -q tasks_queue_created_idx <<<"$plan" && ! grep -q Sort <<<"$plan"; } || fail "queue and status: $plan"
plan=$(q "EXPLAIN SELECT id FROM tasks WHERE status = 'dead' ORDER BY created_at DESC, id DESC LIMIT 51")
{ grep -q tasks_status_created_idx <<<"$plan" && ! grep -q Sort <<<"$plan"; } || fail "status: $plan"
# 0009: a queue listed by 'succeeded' (no longer in tasks_queue_created_idx)
# is the queue's own index in listing order with a filter, no sort; task.get
# is the primary key; succeeded rows are out of the partial index.
plan=$(q "EXPLAIN SELECT id FROM tasks WHERE queue = 'q3' AND status = 'succeeded' ORDER BY created_at DESC, id DESC LIMIT 51")
{ grep -q tasks_queue_only_created_idx <<<"$plan" && ! grep -q Sort <<<"$plan"; } || fail "queue and succeeded: $plan"
# 0017: the listing indexes are ascending and read backward: still no sort,
# the unfiltered listing included (before 0017 an incremental sort on id),
# and a cursor page is an index condition of the same scan.
[[ $(q "SELECT count(*) FROM pg_indexes WHERE tablename = 'tasks' AND indexname IN (
        'tasks_status_created_idx', 'tasks_queue_only_created_idx', 'tasks_queue_created_idx',
        'tasks_handler_created_idx') AND indexdef LIKE '%created_at, id)%' AND indexdef NOT LIKE '%DESC%'") == 4 ]] ||
  fail "the four listing indexes are ascending"
# 0019: no index of every row by (created_at, id); the unfiltered listing as
# task.list sends it (one branch per state, merged) reads each state's range
# of tasks_status_created_idx backward, with a cursor too, and sorts nothing.
[[ $(q "SELECT count(*) FROM pg_indexes WHERE indexname = 'tasks_created_idx'") == 0 ]] || fail "tasks_created_idx dropped"
branches=
for st in scheduled queued running succeeded retrying dead expired cancelled duplicate skipped waiting throttled; do
  branches+="${branches:+ UNION ALL }(SELECT * FROM tasks WHERE status = '$st' AND (created_at, id) < (now(), 'u5')
             ORDER BY created_at DESC, id DESC LIMIT 51)"
done
plan=$(q "EXPLAIN SELECT id FROM ($branches) tasks ORDER BY created_at DESC, id DESC LIMIT 51")
{ grep -q 'Merge Append' <<<"$plan" && [[ $(grep -c 'Scan Backward using tasks_status_created_idx' <<<"$plan") == 12 ]] &&
  ! grep -Eq '(^|->) *(Incremental )?Sort  ' <<<"$plan"; } || fail "no filter: $plan"
plan=$(q "EXPLAIN SELECT id FROM tasks WHERE status = 'dead' AND (created_at, id) < (now() - interval '1 hour', 'u5')
          ORDER BY created_at DESC, id DESC LIMIT 51")
{ grep -q 'Scan Backward using tasks_status_created_idx' <<<"$plan" && ! grep -q Sort <<<"$plan"; } ||
  fail "status with a cursor: $plan"
plan=$(q "EXPLAIN SELECT id, payload, result FROM tasks WHERE id = 'u500000'")
grep -q tasks_pkey <<<"$plan" || fail "task.get: $plan"
[[ $(q "SELECT pg_get_indexdef('tasks_queue_created_idx'::regclass) LIKE '%WHERE (status <> ''succeeded''::text)'") == t ]] ||
  fail "tasks_queue_created_idx is partial"
[[ $(q "SELECT count(*) FROM pg_constraint WHERE conrelid = 'task_attempts'::regclass AND contype = 'f'") == 0 ]] ||
  fail "task_attempts has no foreign key"
"$JS" migrate --sql-dir "$JETSCHED_SOURCE_DIR/sql" >"$TMP/out" 2>&1 || fail "re-run"
[[ $(q "SELECT count(*) FROM task_minutes_state") == 1 ]] || fail "one rollup state row"
# 0007: the held states and attempt states are accepted, others still refused.
q "INSERT INTO tasks (id, queue, status) VALUES ('held-w', 'q1', 'waiting'), ('held-t', 'q1', 'throttled')"
q "INSERT INTO task_attempts (task_id, attempt, status) VALUES ('held-w', 1, 'lost'), ('held-t', 1, 'rate_limited')"
! q "INSERT INTO tasks (id, queue, status) VALUES ('held-x', 'q1', 'parked')" 2>/dev/null || fail "an unknown status is refused"
[[ $(q "SELECT jetsched_status_rank('throttled') < jetsched_status_rank('queued') AND NOT jetsched_status_terminal('waiting')") == t ]] ||
  fail "held states rank before queued and are not terminal"
# 0011 + 0013 (workflows): the new columns are empty, no index of tasks
# mentions deps_pending (its decrement stays a HOT update), the end check's
# partial index serves its query, the trigger appends a node's end to the
# outbox and leaves plain tasks alone, and a step releases a child and ends
# the workflow.
[[ $(q "SELECT count(*) FROM tasks WHERE workflow_id IS NOT NULL OR deps_pending IS NOT NULL") == 0 ]] || fail "0011 columns"
[[ $(q "SELECT count(*) FROM pg_indexes WHERE tablename = 'tasks' AND indexdef LIKE '%deps_pending%'") == 0 ]] ||
  fail "an index of tasks mentions deps_pending"
plan=$(q "EXPLAIN SELECT 1 FROM tasks t WHERE t.workflow_id = 'w' AND t.status NOT IN ('succeeded', 'dead', 'expired', 'cancelled', 'duplicate', 'skipped')")
grep -q tasks_workflow_open_idx <<<"$plan" || fail "open nodes of a workflow: $plan"
q "INSERT INTO tasks (id, queue, status) VALUES ('plain-1', 'q1', 'queued')"
q "UPDATE tasks SET status = 'succeeded' WHERE id = 'plain-1'"
q "INSERT INTO workflows (id, nodes) VALUES ('wu', 2)"
q "INSERT INTO tasks (id, queue, status, workflow_id, deps_pending) VALUES ('wu-a', 'q1', 'queued', 'wu', 0),
   ('wu-b', 'q1', 'waiting', 'wu', 1)"
q "INSERT INTO workflow_edges (parent_id, child_id) VALUES ('wu-a', 'wu-b')"
q "UPDATE tasks SET status = 'succeeded' WHERE id = 'wu-a'"
[[ $(q "SELECT string_agg(task_id || ':' || status, ',') FROM workflow_outbox") == "wu-a:succeeded" ]] ||
  fail "the outbox holds exactly the node's end"
[[ $(q "SELECT drained || ' ' || released::text FROM jetsched_wf_step(100)") == "1 {wu-b}" &&
   $(q "SELECT status || deps_pending FROM tasks WHERE id = 'wu-b'") == queued0 ]] || fail "the step releases wu-b"
q "UPDATE tasks SET status = 'succeeded' WHERE id = 'wu-b'"
[[ $(q "SELECT drained FROM jetsched_wf_step(100)") == 1 && $(q "SELECT status FROM workflows WHERE id = 'wu'") == succeeded ]] ||
  fail "the step ends the workflow"
# 0015: the hand-back counter is empty after the upgrade (no rewrite, no
# default), is not indexed (its increment stays a HOT update), and a new
# stream message restarts it (the statement agentd runs).
[[ $(q "SELECT count(*) FROM tasks WHERE handed_back IS NOT NULL OR handed_back_seq IS NOT NULL") == 0 ]] || fail "0015 columns"
[[ $(q "SELECT count(*) FROM pg_indexes WHERE tablename = 'tasks' AND indexdef LIKE '%handed_back%'") == 0 ]] ||
  fail "an index of tasks mentions handed_back"
q "INSERT INTO tasks (id, queue, status) VALUES ('hb-q', 'q1', 'queued')"
hb() { q "UPDATE tasks t SET handed_back = CASE WHEN t.handed_back_seq = u.seq THEN coalesce(t.handed_back, 0) + 1 ELSE 1 END,
          handed_back_seq = u.seq FROM unnest('{hb-q,u1}'::text[], '{$1,$1}'::bigint[]) u(id, seq)
          WHERE t.id = u.id AND NOT jetsched_status_terminal(t.status)"; }
hb 7; hb 7
[[ $(q "SELECT handed_back || ' ' || handed_back_seq FROM tasks WHERE id = 'hb-q'") == "2 7" ]] || fail "two hand-backs of message 7"
hb 9
[[ $(q "SELECT handed_back || ' ' || handed_back_seq FROM tasks WHERE id = 'hb-q'") == "1 9" &&
   $(q "SELECT count(*) FROM tasks WHERE id = 'u1' AND handed_back IS NULL") == 1 ]] ||
  fail "a new message restarts the count; a terminal row is left alone"
# api_sessions (task.submit writes each row once): the tag column is empty
# after the upgrade and not indexed; the sessions table starts empty.
[[ $(q "SELECT count(*) FROM tasks WHERE api_session IS NOT NULL") == 0 &&
   $(q "SELECT count(*) FROM api_sessions") == 0 ]] || fail "api_sessions columns"
[[ $(q "SELECT count(*) FROM pg_indexes WHERE tablename = 'tasks' AND indexdef LIKE '%api_session%'") == 0 ]] ||
  fail "an index of tasks mentions api_session"
# 0018: the leader's releaser (jetsched_limit_release, every 100 ms) with
# 100,000 tasks queued and nothing parked reads no queued task: its
# statements look parked tasks up by key (the join read every entry of
# tasks_queued_idx on each round); a parked copy whose task ended is still
# deleted and one whose task runs is kept.
q "INSERT INTO tasks (id, queue, handler, status, dispatched_at)
   SELECT 'lq' || g, 'q1', 'h1', 'queued', now() FROM generate_series(1, 100000) g"
plans=$(psql -X -qAt -v ON_ERROR_STOP=1 "$JETSCHED_PG_DSN" 2>&1 <<'SQL'
LOAD 'auto_explain';
SET auto_explain.log_min_duration = 0;
SET auto_explain.log_nested_statements = on;
SET auto_explain.log_analyze = on;
SET client_min_messages = log;
SELECT count(*) FROM jetsched_limit_release(256);
SQL
)
grep -q 'Update on limit_waiting' <<<"$plans" || fail "auto_explain shows the release step's statements: $plans"
! grep -Eq 'tasks_queued_idx|Seq Scan on tasks' <<<"$plans" || fail "the release step reads queued tasks: $plans"
q "INSERT INTO limit_waiting (task_id, key, kind, queue, subject, headers, payload, released_at)
   VALUES ('u1', 'k', 'concurrency', 'q1', 's', '[]', '', now()), ('lq1', 'k', 'concurrency', 'q1', 's', '[]', '', now())"
q "SELECT count(*) FROM jetsched_limit_release(256)" >/dev/null
[[ $(q "SELECT string_agg(task_id, ',') FROM limit_waiting") == lq1 ]] || fail "the release step deletes only ended tasks' rows"
# workflow_callback_reserved: a reserved callback (waiting, deps_pending
# NULL) is no node (the workflow ends without it), stays waiting while its
# workflow runs (the trigger refuses the move), and is released when it
# ends; a reserved on_success of a workflow that failed ends skipped.
q "INSERT INTO workflows (id, nodes, on_success, on_complete) VALUES ('wr', 1, '{\"handler\":\"h\"}', '{\"handler\":\"h\"}')"
q "INSERT INTO tasks (id, queue, status, workflow_id, deps_pending) VALUES ('wr-a', 'q1', 'queued', 'wr', 0),
   ('wr-on_success', 'q1', 'waiting', 'wr', NULL), ('wr-on_complete', 'q1', 'waiting', 'wr', NULL)"
q "UPDATE tasks SET status = 'queued' WHERE id = 'wr-on_complete'"
[[ $(q "SELECT status FROM tasks WHERE id = 'wr-on_complete'") == waiting ]] || fail "a reserved callback is queued early"
q "UPDATE tasks SET status = 'dead' WHERE id = 'wr-a'"
q "SELECT drained FROM jetsched_wf_step(100)"
[[ $(q "SELECT status FROM workflows WHERE id = 'wr'") == failed &&
   $(q "SELECT status FROM tasks WHERE id = 'wr-on_complete'") == queued &&
   $(q "SELECT status || ' ' || error FROM tasks WHERE id = 'wr-on_success'") == "skipped workflow failed: on_success not run" ]] ||
  fail "the end releases on_complete and skips on_success"
echo "web_upgrade: ok"
