-- 0008_limits.sql: per-key concurrency and rate limits (issue 17, DESIGN §12
-- "Flow control", docs/ARCHITECTURE.md "Flow control"). PostgreSQL is the
-- source of truth and the one clock (clock_timestamp()):
--
-- * limits: a key's limit (scope 'key') or a queue's default for the keys
--   of its tasks that have no row of their own (scope 'queue');
-- * limit_leases: concurrency slots held by agents, each until a time of the
--   database's clock (renewed while the task runs; a killed agent's slots
--   free when their lease ends, not earlier);
-- * limit_buckets: the GCRA theoretical arrival time of a rate key (token
--   bucket of rate and burst); it never moves backwards;
-- * limit_holds: a key held back until a time (a handler's rate_limited
--   outcome with a retry-after);
-- * limit_waiting: throttled tasks parked here (the message to publish
--   again as <id>.p<parks>), oldest first per key; released_at is set while
--   a released copy is on its way to an agent.
--
-- Agents take slots and tokens with jetsched_limit_acquire (one statement for
-- every key of a batch); schedulerd's leader releases parked tasks with
-- jetsched_limit_release, woken on channel jetsched_limits. New tables only:
-- nothing here touches the tasks rows.

CREATE TABLE limits (
  scope       text        NOT NULL CHECK (scope IN ('key', 'queue')),
  name        text        NOT NULL CHECK (length(name) BETWEEN 1 AND 128 AND name !~ '[^A-Za-z0-9_.:-]'),
  concurrency integer     CHECK (concurrency BETWEEN 1 AND 1000000),
  rate        double precision CHECK (rate > 0 AND rate <= 1000000),  -- tasks per second
  burst       integer     CHECK (burst BETWEEN 1 AND 1000000),         -- NULL: 1
  updated_at  timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (scope, name),
  CHECK (concurrency IS NOT NULL OR rate IS NOT NULL)
);

CREATE TABLE limit_leases (
  id         bigserial   PRIMARY KEY,
  key        text        NOT NULL,
  agent      text        NOT NULL,
  until      timestamptz NOT NULL,
  granted_at timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX limit_leases_key_idx ON limit_leases (key, until);

CREATE TABLE limit_buckets (
  key text        PRIMARY KEY,
  tat timestamptz NOT NULL
);

CREATE TABLE limit_holds (
  key   text        PRIMARY KEY,
  until timestamptz NOT NULL,
  agent text,
  error text
);

CREATE TABLE limit_waiting (
  task_id     text        PRIMARY KEY,
  key         text        NOT NULL,
  kind        text        NOT NULL CHECK (kind IN ('concurrency', 'rate')),
  queue       text        NOT NULL,
  since       timestamptz NOT NULL DEFAULT clock_timestamp(),  -- first parked: order within a key
  parks       integer     NOT NULL DEFAULT 1,                  -- times parked: the release publishes <id>.p<parks>
  subject     text        NOT NULL,
  headers     jsonb       NOT NULL CHECK (jsonb_typeof(headers) = 'array'),  -- [[name, value], ...]
  payload     bytea       NOT NULL,
  released_at timestamptz
);
CREATE INDEX limit_waiting_key_idx ON limit_waiting (key, kind, since, task_id) WHERE released_at IS NULL;

-- The limit of a key for a task of a queue: the key's own row, else the queue's default.
CREATE FUNCTION jetsched_limit_of(p_key text, p_queue text, OUT concurrency integer, OUT rate double precision,
                                  OUT burst integer)
LANGUAGE sql STABLE AS $$
  SELECT l.concurrency, l.rate, coalesce(l.burst, 1) FROM limits l
   WHERE (l.scope = 'key' AND l.name = p_key) OR (l.scope = 'queue' AND l.name = p_queue)
   ORDER BY l.scope = 'key' DESC LIMIT 1
$$;

-- Slots and tokens for one batch of an agent. Request k asks for p_wants[k]
-- of kind p_kinds[k] ('c': concurrency slots, 'r': rate tokens) of key
-- p_keys[k] for tasks of queue p_queues[k]. One row per grant: lease_id is
-- the slot's lease (NULL for a token, or when the key has no such limit);
-- granted rows < wanted means the rest must wait. Keys are locked in key
-- order (advisory, per transaction): concurrent agents never deadlock.
CREATE FUNCTION jetsched_limit_acquire(p_agent text, p_lease_ms integer, p_kinds text[], p_keys text[],
                                       p_queues text[], p_wants integer[])
RETURNS TABLE (req integer, lease_id bigint)
LANGUAGE plpgsql AS $$
DECLARE
  k integer;
  lim record;
  tnow timestamptz;
  live integer;
  n integer;
  t timestamptz;
  per double precision;
BEGIN
  FOR k IN SELECT u.ord FROM unnest(p_keys) WITH ORDINALITY AS u(key, ord) ORDER BY u.key, u.ord LOOP
    PERFORM pg_advisory_xact_lock(hashtextextended('jetsched_limit:' || p_keys[k], 0));
    tnow := clock_timestamp();
    IF EXISTS (SELECT 1 FROM limit_holds h WHERE h.key = p_keys[k] AND h.until > tnow) THEN
      CONTINUE;
    END IF;
    SELECT * INTO lim FROM jetsched_limit_of(p_keys[k], p_queues[k]);
    IF p_kinds[k] = 'c' THEN
      IF lim.concurrency IS NULL THEN
        RETURN QUERY SELECT k, NULL::bigint FROM generate_series(1, p_wants[k]);
        CONTINUE;
      END IF;
      SELECT count(*) INTO live FROM limit_leases l WHERE l.key = p_keys[k] AND l.until > tnow;
      n := least(p_wants[k], lim.concurrency - live);
      IF n > 0 THEN
        RETURN QUERY INSERT INTO limit_leases (key, agent, until)
          SELECT p_keys[k], p_agent, tnow + p_lease_ms * interval '1 millisecond' FROM generate_series(1, n)
          RETURNING k, limit_leases.id;
      END IF;
    ELSE
      IF lim.rate IS NULL THEN
        RETURN QUERY SELECT k, NULL::bigint FROM generate_series(1, p_wants[k]);
        CONTINUE;
      END IF;
      per := 1.0 / lim.rate;
      SELECT greatest(b.tat, tnow) INTO t FROM limit_buckets b WHERE b.key = p_keys[k];
      IF NOT FOUND THEN
        t := tnow;
      END IF;
      -- GCRA: a token is free while tat - now < burst * per (never moves tat back)
      n := least(p_wants[k], floor(lim.burst - extract(epoch FROM t - tnow) / per + 1e-9)::integer);
      IF n > 0 THEN
        INSERT INTO limit_buckets AS b (key, tat) VALUES (p_keys[k], t + n * per * interval '1 second')
          ON CONFLICT (key) DO UPDATE SET tat = greatest(b.tat, EXCLUDED.tat);
        RETURN QUERY SELECT k, NULL::bigint FROM generate_series(1, n);
      END IF;
    END IF;
  END LOOP;
END
$$;

-- How many parked tasks of (key, kind, queue) may be published again now:
-- free slots or tokens less the released copies not started yet.
CREATE FUNCTION jetsched_limit_free(p_key text, p_kind text, p_queue text) RETURNS integer
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
  SELECT count(*) INTO pending FROM limit_waiting w JOIN tasks x ON x.id = w.task_id
   WHERE w.key = p_key AND w.kind = p_kind AND w.released_at > tnow - interval '10 seconds' AND x.status = 'queued';
  RETURN greatest(n - pending, 0);
END
$$;

-- The leader's release step: marks up to p_batch parked tasks (oldest first
-- per key) released, moves their rows back to 'queued' and returns what to
-- publish. A copy released more than a minute ago whose task never started
-- is released again (its publish was lost).
CREATE FUNCTION jetsched_limit_release(p_batch integer)
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
     AND NOT EXISTS (SELECT 1 FROM tasks x WHERE x.id = w.task_id AND x.status IN ('queued', 'throttled'));
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
