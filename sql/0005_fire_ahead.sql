-- 0005_fire_ahead.sql: the fire-ahead path (docs/SCHEDULER.md "Fires planned
-- ahead"). The leader commits fires due within scheduler.plan_ahead as task
-- rows in state 'scheduled' before they are due and publishes them from
-- memory at the due instant. Two triggers keep that plan honest:
--
-- * A schedule paused, updated (content: what a fire carries, its spec, its
--   overlap policy) or deleted withdraws its planned fires not yet due in the
--   same transaction: they become 'skipped' with an error starting
--   "withdrawn before it was due" (a fire already due counts as fired). An update that keeps the timing (kind, spec, tz)
--   rewinds next_fire_at to the first withdrawn fire, so the leader plans
--   those fires again with the new content (its insert revives a withdrawn
--   row of the same id). A spec change gets its next_fire_at from the API.
-- * A row that leaves 'scheduled' for anything but 'queued' (withdrawn,
--   cancelled) is announced on channel jetsched_plan ('drop <id>'), and a
--   delayed task inserted as 'scheduled' ('load <due ms>'), so that the
--   leader drops or loads it within a tick instead of polling.
--
-- No new task state and no constraint change.

CREATE FUNCTION jetsched_schedule_withdraw() RETURNS trigger LANGUAGE plpgsql AS $$
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
  WITH w AS (
    UPDATE tasks SET status = 'skipped', finished_at = now(), updated_at = now(),
                     error = 'withdrawn before it was due: schedule ' || why
     WHERE schedule_id = OLD.id AND status = 'scheduled' AND scheduled_for > now()
    RETURNING scheduled_for)
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

CREATE TRIGGER schedules_withdraw_update
  BEFORE UPDATE OF kind, spec, tz, queue, priority, handler, payload, headers, max_attempts, overlap, paused
  ON schedules FOR EACH ROW EXECUTE FUNCTION jetsched_schedule_withdraw();
CREATE TRIGGER schedules_withdraw_delete
  BEFORE DELETE ON schedules FOR EACH ROW EXECUTE FUNCTION jetsched_schedule_withdraw();

CREATE FUNCTION jetsched_plan_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'INSERT' THEN
    PERFORM pg_notify('jetsched_plan', 'load ' || (extract(epoch from NEW.scheduled_for) * 1000)::bigint);
  ELSE
    PERFORM pg_notify('jetsched_plan', 'drop ' || NEW.id);
  END IF;
  RETURN NULL;
END
$$;

CREATE TRIGGER tasks_plan_load
  AFTER INSERT ON tasks FOR EACH ROW
  WHEN (NEW.status = 'scheduled' AND NEW.schedule_id IS NULL)
  EXECUTE FUNCTION jetsched_plan_notify();
CREATE TRIGGER tasks_plan_drop
  AFTER UPDATE OF status ON tasks FOR EACH ROW
  WHEN (OLD.status = 'scheduled' AND NEW.status NOT IN ('scheduled', 'queued'))
  EXECUTE FUNCTION jetsched_plan_notify();
