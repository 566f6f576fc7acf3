-- 0002_scheduler_fence.sql: which leader fired a task (DESIGN §5 fencing).
-- fire_epoch: the scheduler epoch (winning KV revision) of the leader whose
-- fenced transaction created the task row (cron fire) or queued it (delayed
-- task); fired_by: that leader's scheduler.id. NULL for tasks not created or
-- queued by schedulerd. For audits ("who fired this?") and the fencing tests.
ALTER TABLE tasks ADD COLUMN fire_epoch bigint;
ALTER TABLE tasks ADD COLUMN fired_by text CHECK (length(fired_by) <= 256);
