-- 0012_withdraw_skip_locked.sql: pausing, updating or deleting a schedule no
-- longer deadlocks with the leader recording a fire's publish.
--
-- The withdraw trigger of 0005 runs inside the schedule's UPDATE/DELETE: it
-- holds the schedule row and then updates the schedule's planned fires in
-- `tasks`. The leader's "record dispatched_at" statement (scheduler/fire.c)
-- does the opposite: it locks the fire rows it has just published, then
-- updates the schedule's last_fire_at. A pause issued just before a fire's
-- due time (its now() still before scheduled_for) could therefore wait for a
-- fire row the leader holds while the leader waited for the schedule row:
-- PostgreSQL aborted one of them with deadlock_detected (bench/run's cron
-- part hit it when it paused 1,000 schedules at once).
--
-- A fire row another transaction holds locked is in the middle of leaving
-- 'scheduled' (published and being recorded, taken by the at-due path, or
-- being cancelled): it counts as fired, as a fire already due does. So the
-- trigger withdraws only the rows it can lock at once (SKIP LOCKED) and
-- never waits on a fire row: the lock order is then schedule -> nothing.
-- Same behaviour otherwise (0005's comment).
CREATE OR REPLACE FUNCTION jetsched_schedule_withdraw() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  why text;
  first_withdrawn timestamptz;
BEGIN
  IF TG_OP = 'DELETE' THEN
    why := 'deleted';
  ELSIF NEW.paused AND NOT OLD.paused THEN
    why := 'paused';
  ELSIF (NEW.kind, NEW.spec, NEW.tz, NEW.queue, NEW.priority, NEW.handler, NEW.payload, NEW.headers,
         NEW.max_attempts, NEW.overlap)
        IS DISTINCT FROM
        (OLD.kind, OLD.spec, OLD.tz, OLD.queue, OLD.priority, OLD.handler, OLD.payload, OLD.headers,
         OLD.max_attempts, OLD.overlap) THEN
    why := 'updated';
  ELSE
    RETURN NEW;
  END IF;
  WITH free AS (
    SELECT id FROM tasks
     WHERE schedule_id = OLD.id AND status = 'scheduled' AND scheduled_for > now()
       FOR UPDATE SKIP LOCKED),
  w AS (
    UPDATE tasks t SET status = 'skipped', finished_at = now(), updated_at = now(),
                       error = 'withdrawn before it was due: schedule ' || why
      FROM free WHERE t.id = free.id
    RETURNING t.scheduled_for)
  SELECT min(scheduled_for) INTO first_withdrawn FROM w;
  IF TG_OP = 'DELETE' THEN
    RETURN OLD;
  END IF;
  IF why = 'updated' AND first_withdrawn IS NOT NULL AND NOT NEW.paused
     AND (NEW.kind, NEW.spec, NEW.tz) IS NOT DISTINCT FROM (OLD.kind, OLD.spec, OLD.tz)
     AND (NEW.next_fire_at IS NULL OR first_withdrawn < NEW.next_fire_at) THEN
    NEW.next_fire_at := first_withdrawn;
  END IF;
  RETURN NEW;
END
$$;
