-- 0018_limit_release_probe.sql: the releaser's housekeeping statements of
-- jetsched_limit_release() (run by the leader every 100 ms) look each parked
-- task up by its primary key instead of joining limit_waiting with tasks
-- (and so does jetsched_limit_free's count of released copies not started).
-- With limit_waiting empty or small and many tasks queued (a backlog, or
-- 100,000 submitted tasks not yet run) the join read every queued task's
-- index entry on each round: 2-5 ms of PostgreSQL per round at 100,000
-- queued tasks (docs/PERFORMANCE.md, "schedulerd's API and bursts"). Same
-- rows changed as before. Function only: no table changes.

CREATE OR REPLACE FUNCTION jetsched_limit_free(p_key text, p_kind text, p_queue text) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
  lim record;
  tnow timestamptz := clock_timestamp();
  t timestamptz;
  n integer;
  pending integer;
BEGIN
  IF EXISTS (SELECT 1 FROM limit_holds h WHERE h.key = p_key AND h.until > tnow) THEN
    RETURN 0;
  END IF;
  SELECT * INTO lim FROM jetsched_limit_of(p_key, p_queue);
  IF p_kind = 'concurrency' AND lim.concurrency IS NOT NULL THEN
    SELECT lim.concurrency - count(*) INTO n FROM limit_leases l WHERE l.key = p_key AND l.until > tnow;
  ELSIF p_kind = 'rate' AND lim.rate IS NOT NULL THEN
    SELECT greatest(b.tat, tnow) INTO t FROM limit_buckets b WHERE b.key = p_key;
    n := floor(coalesce(lim.burst, 1) - extract(epoch FROM coalesce(t, tnow) - tnow) * lim.rate + 1e-9)::integer;
  ELSE
    n := 1000; -- no such limit (any more): release them all, in batches
  END IF;
  SELECT count(*) INTO pending FROM limit_waiting w
   WHERE w.key = p_key AND w.kind = p_kind AND w.released_at > tnow - interval '10 seconds'
     AND (SELECT x.status FROM tasks x WHERE x.id = w.task_id) = 'queued';
  RETURN greatest(n - pending, 0);
END
$$;

CREATE OR REPLACE FUNCTION jetsched_limit_release(p_batch integer)
RETURNS TABLE (task_id text, parks integer, subject text, headers jsonb, payload bytea)
LANGUAGE plpgsql AS $$
DECLARE
  g record;
  free integer;
  left_ integer := p_batch;
BEGIN
  -- Driven by limit_waiting's rows, each task looked up by its key: a join
  -- (or a semi/anti join) let the planner read every queued task through
  -- tasks_queued_idx (or all of tasks) on every round, ten times a second.
  UPDATE limit_waiting w SET released_at = NULL
   WHERE w.released_at < clock_timestamp() - interval '1 minute'
     AND (SELECT x.status FROM tasks x WHERE x.id = w.task_id) = 'queued';
  DELETE FROM limit_waiting w WHERE w.released_at IS NOT NULL
     AND (SELECT jetsched_status_terminal(x.status) FROM tasks x WHERE x.id = w.task_id) IS NOT FALSE;
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
