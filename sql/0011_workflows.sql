-- 0011_workflows.sql: workflows (issue 18, docs/WORKFLOWS.md): the workflow
-- row, the nodes (task rows with workflow_id and deps_pending), the edges,
-- and the outbox through which a node's end reaches the leader's releaser.
--
-- Release path (docs/WORKFLOWS.md, "How a release works"):
-- * a trigger appends every node that becomes terminal to workflow_outbox in
--   the transaction that made it terminal (agentd's history upsert, an API
--   cancel, a dependency_failed cancel) and NOTIFYs jetsched_workflow;
-- * jetsched_wf_drain() (called by the leader's releaser, scheduler/wf_release.c)
--   deletes outbox rows, flips each pending edge of those parents once
--   (pending -> satisfied | failed: a replayed row finds no pending edge and
--   moves nothing), lowers the children's deps_pending, cancels children of
--   failed required edges (which appends them in turn), counts ended nodes
--   per workflow and ends workflows (compare-and-set on finished_at),
--   inserting their callbacks with fixed ids;
-- * the releaser then moves rows `waiting` with deps_pending 0 to `queued`
--   and publishes them after the commit (the reconciler republishes a
--   `queued` row never dispatched, as for task.submit).
-- A node has deps_pending NOT NULL (0 for a root); a callback has it NULL.
--
-- Upgrade cost on 1,000,000 tasks: two nullable columns without default
-- (catalog only) and three partial indexes of tasks that hold no existing row.

ALTER TABLE tasks ADD COLUMN workflow_id text, ADD COLUMN deps_pending integer;

-- The nodes and callbacks of a workflow (workflow.get, the end check, retention).
CREATE INDEX tasks_workflow_idx ON tasks (workflow_id, id) WHERE workflow_id IS NOT NULL;
-- Rows the releaser publishes: waiting with no pending dependency.
CREATE INDEX tasks_releasable_idx ON tasks (id) WHERE status = 'waiting' AND coalesce(deps_pending, 0) = 0;

CREATE TABLE workflows (
  id           text        PRIMARY KEY CHECK (length(id) BETWEEN 1 AND 64 AND id !~ '[^A-Za-z0-9_-]'),
  status       text        NOT NULL DEFAULT 'running'
                           CHECK (status IN ('running', 'succeeded', 'failed', 'cancelled')),
  open         boolean     NOT NULL DEFAULT false,   -- workflow.add may add nodes
  nodes        integer     NOT NULL DEFAULT 0,       -- nodes added in all
  on_success   jsonb,                                -- callback task to create ({queue, handler, ...})
  on_complete  jsonb,
  created_at   timestamptz NOT NULL DEFAULT now(),
  finished_at  timestamptz,                          -- set once, when it ended (callbacks created)
  updated_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX workflows_created_idx ON workflows (created_at DESC, id DESC);
CREATE INDEX workflows_status_created_idx ON workflows (status, created_at DESC, id DESC);
CREATE INDEX workflows_finished_idx ON workflows (finished_at) WHERE finished_at IS NOT NULL;

-- Nodes not ended yet, per workflow: "is this workflow over?" is one probe.
CREATE INDEX tasks_workflow_open_idx ON tasks (workflow_id)
  WHERE workflow_id IS NOT NULL AND deps_pending IS NOT NULL
    AND status NOT IN ('succeeded', 'dead', 'expired', 'cancelled', 'duplicate', 'skipped');

-- One row per dependency (child waits for parent), task ids on both ends.
CREATE TABLE workflow_edges (
  parent_id     text    NOT NULL,
  child_id      text    NOT NULL,
  allow_failure boolean NOT NULL DEFAULT false,
  state         text    NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'satisfied', 'failed')),
  PRIMARY KEY (parent_id, child_id)
);
CREATE INDEX workflow_edges_child_idx ON workflow_edges (child_id);

-- Work for the releaser. counted = true: a node ended (written by the
-- trigger with its state). counted = false: written by workflow.add,
-- workflow.cancel and a close: re-read the task's state now and move its
-- pending edges if it has ended (an edge added to a parent that ended
-- earlier), and check whether the workflow is over (task_id '' only does
-- that). The state of such a row is read at drain time, so an add needs no
-- lock on its parents: a parent that ends after the add commits moves the
-- new edges by its own row.
CREATE TABLE workflow_outbox (
  seq         bigserial PRIMARY KEY,
  task_id     text      NOT NULL,
  workflow_id text      NOT NULL,
  status      text      NOT NULL,
  counted     boolean   NOT NULL DEFAULT true
);

CREATE FUNCTION jetsched_wf_node_ended() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO workflow_outbox (task_id, workflow_id, status) VALUES (NEW.id, NEW.workflow_id, NEW.status);
  PERFORM pg_notify('jetsched_workflow', '');
  RETURN NULL;
END $$;

-- Fires once per real transition to a terminal state (a terminal row never
-- changes again: the history upsert and every API path refuse to).
CREATE TRIGGER tasks_workflow_node_ended AFTER UPDATE OF status ON tasks FOR EACH ROW
  WHEN (NEW.workflow_id IS NOT NULL AND NEW.deps_pending IS NOT NULL
        AND jetsched_status_terminal(NEW.status) AND NOT jetsched_status_terminal(OLD.status))
  EXECUTE FUNCTION jetsched_wf_node_ended();

-- Drains at most max_rows outbox rows (and the cascades they cause) and
-- ends the workflows they concern that are over. Returns the number of rows
-- drained. Safe to run concurrently (SKIP LOCKED, per-edge compare-and-set,
-- compare-and-set on finished_at), so a stale leader doubles nothing. The
-- workflows row is written only at the end (locked first, then checked
-- with a fresh snapshot, so a concurrent workflow.add that closes it with
-- new nodes is seen).
-- Every access is by key; seq scans are off inside so that stale statistics
-- of a growing tasks table (a big workflow inserted a moment ago) never turn
-- a per-child lookup into a scan of all tasks.
CREATE FUNCTION jetsched_wf_drain(max_rows integer) RETURNS integer LANGUAGE plpgsql
SET enable_seqscan = off AS $$
DECLARE
  total integer := 0;
  got integer;
  ids text[]; sts text[]; wfs text[]; touched text[] := '{}';
BEGIN
  LOOP
    WITH d AS (DELETE FROM workflow_outbox WHERE seq IN
                 (SELECT seq FROM workflow_outbox ORDER BY seq LIMIT greatest(max_rows - total, 1)
                  FOR UPDATE SKIP LOCKED)
               RETURNING task_id, workflow_id, status, counted),
    r AS (SELECT d.task_id, d.workflow_id,
                 CASE WHEN d.counted THEN d.status ELSE t.status END AS status
            FROM d LEFT JOIN tasks t ON NOT d.counted AND t.id = d.task_id)
    SELECT array_agg(task_id) FILTER (WHERE jetsched_status_terminal(status)),
           array_agg(status) FILTER (WHERE jetsched_status_terminal(status)),
           array_agg(DISTINCT workflow_id), count(*)::integer
      INTO ids, sts, wfs, got FROM r;
    EXIT WHEN got = 0;
    total := total + got;
    touched := touched || wfs;

    IF ids IS NOT NULL THEN
      -- Each pending edge of these parents moves once; children move by the
      -- edges that moved (one statement).
      WITH p AS (SELECT DISTINCT ON (id) id, status FROM unnest(ids, sts) AS u(id, status)),
      e AS (UPDATE workflow_edges e
              SET state = CASE WHEN p.status IN ('succeeded', 'duplicate') OR e.allow_failure
                               THEN 'satisfied' ELSE 'failed' END
              FROM p WHERE e.parent_id = p.id AND e.state = 'pending'
              RETURNING e.child_id, e.parent_id, e.state, p.status),
      c AS (SELECT child_id, count(*) FILTER (WHERE state = 'satisfied') AS ok,
                   min(parent_id || ' ended ' || status) FILTER (WHERE state = 'failed') AS why
              FROM e GROUP BY child_id)
      UPDATE tasks t SET
        deps_pending = t.deps_pending - c.ok,
        status = CASE WHEN c.why IS NULL THEN t.status ELSE 'cancelled' END,
        error = CASE WHEN c.why IS NULL THEN t.error ELSE 'dependency_failed: ' || c.why END,
        finished_at = CASE WHEN c.why IS NULL THEN t.finished_at ELSE now() END,
        updated_at = now()
      FROM c WHERE t.id = c.child_id AND t.status = 'waiting';
    END IF;

    EXIT WHEN total >= max_rows;
  END LOOP;

  IF cardinality(touched) = 0 THEN
    RETURN total;
  END IF;
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
      AND NOT EXISTS (SELECT 1 FROM tasks t WHERE t.workflow_id = w.id AND t.deps_pending IS NOT NULL
                        AND t.status NOT IN ('succeeded', 'dead', 'expired', 'cancelled', 'duplicate', 'skipped'))
    RETURNING w.id, w.status, w.on_success, w.on_complete)
  INSERT INTO tasks (id, queue, handler, priority, status, max_attempts, payload, headers, trace_id,
                     workflow_id, deps_pending)
  SELECT ended.id || '-' || k.kind, coalesce(k.cb->>'queue', 'default'), k.cb->>'handler',
         coalesce(k.cb->>'priority', 'normal'), 'waiting', (k.cb->>'max_attempts')::integer,
         decode(coalesce(k.cb->>'payload', ''), 'base64'), coalesce(k.cb->'headers', '{}'::jsonb),
         k.cb->>'trace', ended.id, NULL
  FROM ended, LATERAL (VALUES ('on_success', ended.on_success), ('on_complete', ended.on_complete)) AS k(kind, cb)
  WHERE k.cb IS NOT NULL AND (k.kind = 'on_complete' OR ended.status = 'succeeded')
  ON CONFLICT (id) DO NOTHING;

  RETURN total;
END $$;
