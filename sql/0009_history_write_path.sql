-- 0009_history_write_path.sql: the tasks/task_attempts write path reviewed
-- (issue 14). Every index on tasks is kept for a query that uses it
-- (docs/ARCHITECTURE.md, "The index set"), except that a succeeded row no
-- longer goes into tasks_queue_created_idx, and task_attempts loses its
-- foreign key. Per attempt of a succeeded task the history writer now
-- touches 6 index entries of tasks (was 7) and 1 of task_attempts, with no
-- key lookup and no row lock on tasks for the attempt row.
--
-- * tasks_queue_created_idx (queue, status, created_at DESC, id DESC) is
--   partial: WHERE status <> 'succeeded'. It serves a queue listed by one of
--   the states people list (dead, retrying, running, queued, scheduled,
--   expired, cancelled, ...: rare next to succeeded, so the exact range
--   matters). A queue listed by 'succeeded' is served by
--   tasks_queue_only_created_idx (queue, created_at DESC, id DESC) with a
--   filter: succeeded rows are most of a queue, so a page is found within
--   about its own length (the walk grows only for a queue whose tasks almost
--   never succeed; docs/PERFORMANCE.md gives both cases on 1,000,000 rows).
-- * task_attempts' foreign key to tasks is dropped: it cost every attempt
--   row a lookup in tasks_pkey and a FOR KEY SHARE lock (a WAL record) on
--   the task row. The history writer inserts the task row in the same
--   statement (common/history.c), and retention deletes a task's attempts
--   with the task (common/retention.c) as ON DELETE CASCADE did.
--
-- 1,000,000-row upgrade: one index build of the non-succeeded rows
-- (tests/integration/web_upgrade.sh times it).
DROP INDEX tasks_queue_created_idx;
CREATE INDEX tasks_queue_created_idx ON tasks (queue, status, created_at DESC, id DESC)
  WHERE status <> 'succeeded';
ALTER TABLE task_attempts DROP CONSTRAINT task_attempts_task_id_fkey;
