-- 0017_list_indexes_ascending.sql: the five task-list indexes of tasks
-- rebuilt in ascending (created_at, id) order; task.list (ORDER BY
-- created_at DESC, id DESC, cursor (created_at, id) < (...)) reads them
-- backward, the same rows in the same order, still without a sort.
-- Why: tasks are inserted in created_at order, so with created_at DESC every
-- new entry went to the left edge of its key range, where a full page splits
-- 50/50 and the left half is never filled again: these indexes were about
-- 1.8x the size they need (80,000 rows in batches of 200: 693 -> 386 pages
-- for (created_at, id), 1,001 -> 572 for (status, created_at, id)), with
-- twice the page splits and their WAL. Ascending, a new entry goes to the
-- right edge of its range, where PostgreSQL splits so that pages stay full.
-- PostgreSQL CPU per succeeded task recorded by the history writer:
-- docs/PERFORMANCE.md "PostgreSQL CPU per task on agentd's hot path".
-- The predicate of tasks_queue_created_idx (sql/0009) is kept.
--
-- 1,000,000-row upgrade: five index builds (writes to tasks wait for them;
-- tests/integration/web_upgrade.sh times it).
DROP INDEX tasks_created_idx;
CREATE INDEX tasks_created_idx ON tasks (created_at, id);
DROP INDEX tasks_status_created_idx;
CREATE INDEX tasks_status_created_idx ON tasks (status, created_at, id);
DROP INDEX tasks_queue_only_created_idx;
CREATE INDEX tasks_queue_only_created_idx ON tasks (queue, created_at, id);
DROP INDEX tasks_queue_created_idx;
CREATE INDEX tasks_queue_created_idx ON tasks (queue, status, created_at, id) WHERE status <> 'succeeded';
DROP INDEX tasks_handler_created_idx;
CREATE INDEX tasks_handler_created_idx ON tasks (handler, created_at, id);
