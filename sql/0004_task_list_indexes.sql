-- task.list (GET /api/v1/tasks, the console's task list) filtered by handler,
-- or by queue without a status, newest first: without these a filter on a
-- rare handler or queue walked tasks_created_idx until it found a page
-- (on 10,000,000 tasks, most of the index). With them every filter of
-- task.list is an index range scan in (created_at DESC, id) order, first
-- page or deep, in exactly task.list's ORDER BY created_at DESC, id DESC (no
-- sort step; docs/PERFORMANCE.md, "HTTP API and console"). Cost: two more
-- index entries per inserted task.
CREATE INDEX tasks_handler_created_idx ON tasks (handler, created_at DESC, id DESC);
CREATE INDEX tasks_queue_only_created_idx ON tasks (queue, created_at DESC, id DESC);
