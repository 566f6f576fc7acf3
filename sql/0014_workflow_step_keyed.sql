-- 0014_workflow_step_keyed.sql: jetsched_wf_step() reads the state of an
-- uncounted outbox row by key (docs/PERFORMANCE.md "Workflows").
-- In 0013 the drain joined its deleted outbox rows to tasks with
-- LEFT JOIN tasks t ON NOT d.counted AND t.id = d.task_id; with an estimate
-- of hundreds of outbox rows the planner hashed tasks for that join (with
-- enable_seqscan off: a full index scan, ~20,000 rows and 220 ms of a 223 ms
-- drain statement in bench/workflow.sh, growing with the size of tasks)
-- although almost every row is counted and needs no lookup. Now a scalar
-- subquery by primary key, evaluated only for an uncounted row. Same
-- results; nothing else changes.
CREATE OR REPLACE FUNCTION jetsched_wf_step(max_rows integer, OUT drained integer, OUT released text[])
LANGUAGE plpgsql SET enable_seqscan = off AS $$
DECLARE
  got integer;
  ids text[]; sts text[]; wfs text[]; touched text[] := '{}'; zero text[]; cbs text[];
BEGIN
  drained := 0;
  released := '{}';
  LOOP
    WITH d AS (DELETE FROM workflow_outbox WHERE seq IN
                 (SELECT seq FROM workflow_outbox ORDER BY seq LIMIT greatest(max_rows - drained, 1)
                  FOR UPDATE SKIP LOCKED)
               RETURNING task_id, workflow_id, status, counted),
    r AS (SELECT d.task_id, d.workflow_id,
                 CASE WHEN d.counted THEN d.status
                      ELSE (SELECT t.status FROM tasks t WHERE t.id = d.task_id) END AS status
            FROM d)
    SELECT array_agg(task_id) FILTER (WHERE jetsched_status_terminal(status)),
           array_agg(status) FILTER (WHERE jetsched_status_terminal(status)),
           array_agg(DISTINCT workflow_id), count(*)::integer
      INTO ids, sts, wfs, got FROM r;
    EXIT WHEN got = 0;
    drained := drained + got;
    touched := touched || wfs;

    IF ids IS NOT NULL THEN
      -- Each pending edge of these parents moves once; a child whose
      -- counter reaches 0 is released below, one on a failed required
      -- edge ends cancelled (its own end comes back through the outbox).
      WITH p AS (SELECT DISTINCT ON (id) id, status FROM unnest(ids, sts) AS u(id, status)),
      e AS (UPDATE workflow_edges e
              SET state = CASE WHEN p.status IN ('succeeded', 'duplicate') OR e.allow_failure
                               THEN 'satisfied' ELSE 'failed' END
              FROM p WHERE e.parent_id = p.id AND e.state = 'pending'
              RETURNING e.child_id, e.parent_id, e.state, p.status),
      c AS (SELECT child_id, count(*) FILTER (WHERE state = 'satisfied') AS ok,
                   min(parent_id || ' ended ' || status) FILTER (WHERE state = 'failed') AS why
              FROM e GROUP BY child_id),
      dec AS (UPDATE tasks t SET deps_pending = t.deps_pending - c.ok
                FROM c WHERE t.id = c.child_id AND t.status = 'waiting' AND c.why IS NULL
                RETURNING t.id, t.deps_pending),
      fail AS (UPDATE tasks t SET status = 'cancelled', error = 'dependency_failed: ' || c.why,
                 finished_at = now(), updated_at = now(), deps_pending = t.deps_pending - c.ok
                 FROM c WHERE t.id = c.child_id AND t.status = 'waiting' AND c.why IS NOT NULL)
      SELECT array_agg(id) FILTER (WHERE deps_pending = 0) INTO zero FROM dec;
      released := released || coalesce(zero, '{}');
    END IF;
    EXIT WHEN drained >= max_rows;
  END LOOP;

  IF cardinality(touched) > 0 THEN
    -- Lock the candidates first; the next statement's snapshot then sees
    -- everything committed before the locks were granted.
    PERFORM 1 FROM workflows WHERE id = ANY(touched) AND finished_at IS NULL AND NOT open ORDER BY id FOR UPDATE;
    WITH ended AS (
      UPDATE workflows w SET finished_at = now(), updated_at = now(),
        status = CASE WHEN w.status = 'cancelled' THEN 'cancelled'
                      WHEN EXISTS (SELECT 1 FROM tasks t WHERE t.workflow_id = w.id AND t.deps_pending IS NOT NULL
                                     AND t.status NOT IN ('succeeded', 'duplicate')) THEN 'failed'
                      ELSE 'succeeded' END
      WHERE w.id = ANY(touched) AND w.finished_at IS NULL AND NOT w.open
        AND NOT EXISTS (SELECT 1 FROM tasks t WHERE t.workflow_id = w.id
                          AND t.status NOT IN ('succeeded', 'dead', 'expired', 'cancelled', 'duplicate', 'skipped'))
      RETURNING w.id, w.status, w.on_success, w.on_complete),
    ins AS (
      INSERT INTO tasks (id, queue, handler, priority, status, max_attempts, payload, headers, trace_id,
                         workflow_id, deps_pending)
      SELECT ended.id || '-' || k.kind, coalesce(k.cb->>'queue', 'default'), k.cb->>'handler',
             coalesce(k.cb->>'priority', 'normal'), 'waiting', (k.cb->>'max_attempts')::integer,
             decode(coalesce(k.cb->>'payload', ''), 'base64'), coalesce(k.cb->'headers', '{}'::jsonb),
             k.cb->>'trace', ended.id, NULL
      FROM ended, LATERAL (VALUES ('on_success', ended.on_success), ('on_complete', ended.on_complete)) AS k(kind, cb)
      WHERE k.cb IS NOT NULL AND (k.kind = 'on_complete' OR ended.status = 'succeeded')
      ON CONFLICT (id) DO NOTHING RETURNING id)
    SELECT array_agg(id) INTO cbs FROM ins;
    released := released || coalesce(cbs, '{}');
  END IF;

  IF cardinality(released) > 0 THEN
    UPDATE tasks SET status = 'queued', updated_at = now() WHERE id = ANY(released) AND status = 'waiting';
  END IF;
END $$;
