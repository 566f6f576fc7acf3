-- 0010_limit_release_ids.sql: a released task's limit_waiting row is kept
-- until the task ends (0008 deleted it once the task started). Its `parks`
-- counter names the next publish (<id>.p<parks>); a task whose agent died
-- while it ran, redelivered and parked again, must not get a number it had
-- already used, or JetStream's duplicate window would drop the publish and
-- the task would wait forever (found by tests/integration/agentd_limits.c).
-- Function only: no table changes.

CREATE OR REPLACE FUNCTION jetsched_limit_release(p_batch integer)
RETURNS TABLE (task_id text, parks integer, subject text, headers jsonb, payload bytea)
LANGUAGE plpgsql AS $$
DECLARE
  g record;
  free integer;
  left_ integer := p_batch;
BEGIN
  UPDATE limit_waiting w SET released_at = NULL
    FROM tasks x WHERE x.id = w.task_id AND w.released_at < clock_timestamp() - interval '1 minute'
     AND x.status = 'queued';
  DELETE FROM limit_waiting w WHERE w.released_at IS NOT NULL
     AND NOT EXISTS (SELECT 1 FROM tasks x WHERE x.id = w.task_id AND NOT jetsched_status_terminal(x.status));
  FOR g IN SELECT w.key, w.kind, w.queue FROM limit_waiting w WHERE w.released_at IS NULL
            GROUP BY w.key, w.kind, w.queue ORDER BY min(w.since) LOOP
    EXIT WHEN left_ <= 0;
    free := least(jetsched_limit_free(g.key, g.kind, g.queue), left_);
    CONTINUE WHEN free <= 0;
    RETURN QUERY
      WITH pick AS (
        SELECT w.task_id FROM limit_waiting w
         WHERE w.key = g.key AND w.kind = g.kind AND w.queue = g.queue AND w.released_at IS NULL
         ORDER BY w.since, w.task_id LIMIT free FOR UPDATE SKIP LOCKED),
      upd AS (
        UPDATE limit_waiting w SET released_at = clock_timestamp()
          FROM pick WHERE w.task_id = pick.task_id
        RETURNING w.task_id, w.parks, w.subject, w.headers, w.payload),
      t AS (
        UPDATE tasks x SET status = 'queued', dispatched_at = now(), updated_at = now()
          FROM upd WHERE x.id = upd.task_id AND x.status = 'throttled')
      SELECT upd.task_id, upd.parks, upd.subject, upd.headers, upd.payload FROM upd;
    GET DIAGNOSTICS free = ROW_COUNT;
    left_ := left_ - free;
  END LOOP;
END
$$;
