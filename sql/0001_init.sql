-- 0001_init.sql: the jetsched schema of DESIGN §9: tasks, task_attempts,
-- schedules, scheduler_epoch, and the status helpers the history writer and
-- the API share. Applied by `jetsched migrate` inside one transaction; never
-- edit this file once released: add 0002_*.sql instead.

-- Task states (DESIGN §4) plus 'skipped' (a forbid-overlap fire not run).
-- Rank orders the states of one attempt: a state change is applied to a task
-- row only when (attempt, rank) moves forward and the row is not terminal.
-- (Not STRICT, so that the planner inlines them.)
CREATE FUNCTION jetsched_status_rank(status text) RETURNS integer
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
  SELECT CASE status
    WHEN 'scheduled' THEN 0
    WHEN 'queued'    THEN 1
    WHEN 'running'   THEN 2
    WHEN 'retrying'  THEN 3
    ELSE 4  -- succeeded dead expired cancelled duplicate skipped
  END
$$;

CREATE FUNCTION jetsched_status_terminal(status text) RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
  SELECT status IN ('succeeded', 'dead', 'expired', 'cancelled', 'duplicate', 'skipped')
$$;

-- Name rules (DESIGN §3) are written as length + "no other character":
-- a bounded regex like '^[a-z]{1,64}$' costs ~20x more per row.

-- One row a task. Optional columns are NULL when unknown.
CREATE TABLE tasks (
  id            text        PRIMARY KEY CHECK (length(id) BETWEEN 1 AND 128 AND id !~ '[^A-Za-z0-9_-]'),
  queue         text        NOT NULL CHECK (length(queue) BETWEEN 1 AND 64 AND queue !~ '[^a-z0-9_-]'),
  handler       text        CHECK (length(handler) BETWEEN 1 AND 64 AND handler !~ '[^a-z0-9_-]'),
                                         -- NULL: dead-lettered for missing_handler
  priority      text        NOT NULL DEFAULT 'normal' CHECK (priority IN ('high', 'normal', 'low')),
  status        text        NOT NULL CHECK (status IN ('scheduled', 'queued', 'running', 'succeeded',
                              'retrying', 'dead', 'expired', 'cancelled', 'duplicate', 'skipped')),
  attempts      integer     NOT NULL DEFAULT 0 CHECK (attempts >= 0),
  max_attempts  integer     CHECK (max_attempts >= 1),
  payload       bytea,                   -- opaque bytes, when kept
  headers       jsonb       CHECK (jsonb_typeof(headers) = 'object'),  -- task headers to republish with
  result        text,
  error         text,
  agent         text,
  created_at    timestamptz NOT NULL DEFAULT now(),
  scheduled_for timestamptz,             -- run_at of a delayed task, fire time of a cron task
  dispatched_at timestamptz,             -- last publish to the stream
  started_at    timestamptz,             -- start of the latest attempt
  finished_at   timestamptz,             -- set with a terminal state (or a failed attempt)
  updated_at    timestamptz NOT NULL DEFAULT now(),
  schedule_id   text,                    -- no foreign key: history outlives a deleted schedule
  trace_id      text
);

-- Listing (task.list): by status, by queue (and status), or all, newest first.
CREATE INDEX tasks_status_created_idx ON tasks (status, created_at DESC, id);
CREATE INDEX tasks_queue_created_idx ON tasks (queue, status, created_at DESC, id);
CREATE INDEX tasks_created_idx ON tasks (created_at DESC, id);
-- Due delayed tasks and cron fires held by schedulerd (millions are fine).
CREATE INDEX tasks_due_idx ON tasks (scheduled_for) WHERE status = 'scheduled';
-- The reconciler: queued tasks not started after redispatch_after.
CREATE INDEX tasks_queued_idx ON tasks (dispatched_at) WHERE status = 'queued';
-- Runs of a schedule (overlap = forbid, listing a schedule's history).
CREATE INDEX tasks_schedule_idx ON tasks (schedule_id, created_at DESC) WHERE schedule_id IS NOT NULL;
-- Retention: finished tasks by age.
CREATE INDEX tasks_finished_idx ON tasks ((coalesce(finished_at, updated_at)))
  WHERE status IN ('succeeded', 'dead', 'expired', 'cancelled', 'duplicate', 'skipped');

-- One row per attempt (append-only; a 'running' row is completed once).
-- The primary key also serves "attempts of a task".
CREATE TABLE task_attempts (
  task_id     text        NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
  attempt     integer     NOT NULL CHECK (attempt >= 1),
  agent       text,
  status      text        NOT NULL CHECK (status IN ('running', 'succeeded', 'retrying', 'dead',
                            'expired', 'cancelled', 'duplicate')),
  started_at  timestamptz,
  finished_at timestamptz,
  error       text,
  PRIMARY KEY (task_id, attempt)
);

CREATE TABLE schedules (
  id             text        PRIMARY KEY CHECK (length(id) BETWEEN 1 AND 64 AND id !~ '[^a-z0-9_-]'),
  kind           text        NOT NULL CHECK (kind IN ('cron', 'every', 'at')),
  spec           text        NOT NULL CHECK (length(spec) BETWEEN 1 AND 512),
  tz             text        NOT NULL DEFAULT 'UTC' CHECK (length(tz) BETWEEN 1 AND 64),
  queue          text        NOT NULL DEFAULT 'default'
                             CHECK (length(queue) BETWEEN 1 AND 64 AND queue !~ '[^a-z0-9_-]'),
  priority       text        NOT NULL DEFAULT 'normal' CHECK (priority IN ('high', 'normal', 'low')),
  handler        text        NOT NULL CHECK (length(handler) BETWEEN 1 AND 64 AND handler !~ '[^a-z0-9_-]'),
  payload        bytea       NOT NULL DEFAULT '\x'::bytea,
  headers        jsonb       NOT NULL DEFAULT '{}'::jsonb CHECK (jsonb_typeof(headers) = 'object'),
  max_attempts   integer     CHECK (max_attempts >= 1),           -- NULL: the queue's default
  misfire        text        NOT NULL DEFAULT 'fire_once' CHECK (misfire IN ('fire_once', 'fire_all', 'skip')),
  catchup_window interval    CHECK (catchup_window >= interval '0'),  -- NULL: scheduler.catchup_window
  overlap        text        NOT NULL DEFAULT 'allow' CHECK (overlap IN ('allow', 'forbid')),
  paused         boolean     NOT NULL DEFAULT false,
  next_fire_at   timestamptz,            -- NULL: no further fire (an 'at' schedule that fired)
  last_fire_at   timestamptz,
  created_at     timestamptz NOT NULL DEFAULT now(),
  updated_at     timestamptz NOT NULL DEFAULT now()
);

-- Due schedules, for the leader's tick.
CREATE INDEX schedules_due_idx ON schedules (next_fire_at) WHERE NOT paused AND next_fire_at IS NOT NULL;

-- The leader's fencing token (DESIGN §5): exactly one row.
CREATE TABLE scheduler_epoch (
  singleton  boolean     PRIMARY KEY DEFAULT true CHECK (singleton),
  epoch      bigint      NOT NULL DEFAULT 0 CHECK (epoch >= 0),
  holder     text,
  updated_at timestamptz NOT NULL DEFAULT now()
);
INSERT INTO scheduler_epoch (singleton, epoch) VALUES (true, 0);
