-- 0007_held_states.sql: the second wave's states (DESIGN §12), added once for
-- flow control, workflows and the hot path so that each of them does not
-- redefine the same CHECK constraints:
--   tasks.status          + 'waiting'   (a workflow node whose dependencies are not done)
--                         + 'throttled' (parked by a concurrency/rate limit; acked, published again later)
--   task_attempts.status  + 'lost'      (an attempt started and never recorded: the agent died)
--                         + 'rate_limited' (the handler answered rate_limited, plugin ABI 1.1)
-- Both held states rank with 'scheduled' (before 'queued'): a held task moves
-- on to 'queued' when it is published again. Neither is terminal.
-- The constraints are replaced NOT VALID and then validated, so the upgrade
-- takes a SHARE UPDATE EXCLUSIVE lock for the scan, not an exclusive one.
CREATE OR REPLACE FUNCTION jetsched_status_rank(status text) RETURNS integer
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
  SELECT CASE status
    WHEN 'scheduled' THEN 0
    WHEN 'waiting'   THEN 0
    WHEN 'throttled' THEN 0
    WHEN 'queued'    THEN 1
    WHEN 'running'   THEN 2
    WHEN 'retrying'  THEN 3
    ELSE 4  -- succeeded dead expired cancelled duplicate skipped
  END
$$;

ALTER TABLE tasks DROP CONSTRAINT tasks_status_check;
ALTER TABLE tasks ADD CONSTRAINT tasks_status_check CHECK (status IN ('scheduled', 'queued', 'running',
  'succeeded', 'retrying', 'dead', 'expired', 'cancelled', 'duplicate', 'skipped', 'waiting', 'throttled')) NOT VALID;
ALTER TABLE tasks VALIDATE CONSTRAINT tasks_status_check;

ALTER TABLE task_attempts DROP CONSTRAINT task_attempts_status_check;
ALTER TABLE task_attempts ADD CONSTRAINT task_attempts_status_check CHECK (status IN ('running', 'succeeded',
  'retrying', 'dead', 'expired', 'cancelled', 'duplicate', 'lost', 'rate_limited')) NOT VALID;
ALTER TABLE task_attempts VALIDATE CONSTRAINT task_attempts_status_check;
