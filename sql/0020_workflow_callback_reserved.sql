-- 0020_workflow_callback_reserved.sql: a workflow's callbacks are reserved
-- when it is submitted (docs/WORKFLOWS.md "Callbacks").
--
-- Until now a callback's task row (<workflow>-on_success, -on_complete) was
-- created when the workflow ended (ON CONFLICT DO NOTHING), and task.submit
-- refused those ids by reading `workflows` first. A task.submit of such an
-- id that read `workflows` before a concurrent workflow.submit committed,
-- and inserted after workflow.submit had checked that the id was free, took
-- the id: the workflow's callback never ran (test sched_wf_callback_race).
-- Now workflow.submit inserts each callback's row `waiting` (deps_pending
-- NULL: not a node) in its own transaction, so the primary key decides
-- between the two. When the workflow ends, jetsched_wf_step() releases a
-- reserved callback that runs (on_complete; on_success of a workflow that
-- succeeded) and ends the other `skipped`. The end check counts nodes only
-- (a reserved callback is not a node).
--
-- The releaser's safety sweep of this release leaves rows with deps_pending
-- NULL alone; the sweep of an older schedulerd does not, so the trigger
-- below refuses (skips) a move of a reserved callback to `queued` while its
-- workflow has not ended, whoever makes it.
--
-- Upgrade cost: functions and a trigger; no table is rewritten or scanned.
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
                          AND t.status NOT IN ('succeeded', 'dead', 'expired', 'cancelled', 'duplicate', 'skipped')
                          AND t.deps_pending IS NOT NULL)
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
      -- reserved by workflow.submit (0020): released; a task of another
      -- origin holding the id (a workflow of an older release) stays as it is
      ON CONFLICT (id) DO UPDATE SET updated_at = now()
        WHERE tasks.status = 'waiting' AND tasks.deps_pending IS NULL AND tasks.workflow_id = excluded.workflow_id
      RETURNING id),
    -- an on_success reserved for a workflow that did not succeed never runs
    skip AS (
      UPDATE tasks t SET status = 'skipped', finished_at = now(), updated_at = now(),
             error = 'workflow ' || ended.status || ': on_success not run'
        FROM ended
       WHERE t.id = ended.id || '-on_success' AND ended.status <> 'succeeded'
         AND t.status = 'waiting' AND t.deps_pending IS NULL AND t.workflow_id = ended.id)
    SELECT array_agg(id) INTO cbs FROM ins;
    released := released || coalesce(cbs, '{}');
  END IF;

  IF cardinality(released) > 0 THEN
    UPDATE tasks SET status = 'queued', updated_at = now() WHERE id = ANY(released) AND status = 'waiting';
  END IF;
END $$;

CREATE FUNCTION jetsched_wf_callback_hold() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF EXISTS (SELECT 1 FROM workflows w WHERE w.id = OLD.workflow_id AND w.finished_at IS NULL) THEN
    RETURN NULL; -- a reserved callback of a workflow still running stays waiting
  END IF;
  RETURN NEW;
END $$;

CREATE TRIGGER tasks_wf_callback_hold BEFORE UPDATE OF status ON tasks FOR EACH ROW
  WHEN (OLD.status = 'waiting' AND NEW.status = 'queued' AND OLD.deps_pending IS NULL
        AND OLD.workflow_id IS NOT NULL)
  EXECUTE FUNCTION jetsched_wf_callback_hold();
