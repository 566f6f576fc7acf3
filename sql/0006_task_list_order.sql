-- task.list orders by (created_at DESC, id DESC); the two listing indexes of
-- 0001 had id ascending, so a page filtered by status, or by queue and
-- status, needed a sort step, and with a LIMIT the planner could prefer
-- walking another index and filtering: on 1,000,000 tasks a queue and a
-- status with no matching row took 200 ms (the whole queue was walked).
-- Rebuilt in exactly the listing's order, under the same names (the stats
-- sampler's bounded counts use tasks_status_created_idx; direction does not
-- matter to them). Same write cost as before.
DROP INDEX tasks_queue_created_idx;
CREATE INDEX tasks_queue_created_idx ON tasks (queue, status, created_at DESC, id DESC);
DROP INDEX tasks_status_created_idx;
CREATE INDEX tasks_status_created_idx ON tasks (status, created_at DESC, id DESC);
