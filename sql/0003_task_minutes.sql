-- Per-minute rollup of finished tasks per queue: what the web console's
-- overview charts (GET /api/v1/stats, API verb stats.minutes) without ever
-- scanning tasks. The acting leader (scheduler/rollup.c) adds the tasks that
-- finished in [rolled_to, now - grace) every few seconds, counted by the
-- minute of coalesce(finished_at, updated_at) (the range is read through
-- tasks_finished_idx), and moves rolled_to in the same transaction with a
-- compare-and-set, so each finished task is counted once even across a
-- leader change. Rows older than the rollup's retention are pruned.
CREATE TABLE task_minutes (
  minute    timestamptz NOT NULL,
  queue     text        NOT NULL,
  succeeded bigint      NOT NULL DEFAULT 0,
  dead      bigint      NOT NULL DEFAULT 0,
  expired   bigint      NOT NULL DEFAULT 0,
  cancelled bigint      NOT NULL DEFAULT 0,
  skipped   bigint      NOT NULL DEFAULT 0, -- duplicate and skipped
  PRIMARY KEY (minute, queue)
);

CREATE TABLE task_minutes_state (
  one       boolean     PRIMARY KEY DEFAULT true CHECK (one),
  rolled_to timestamptz NOT NULL
);
-- An upgrade starts with the last hour of history.
INSERT INTO task_minutes_state (rolled_to) VALUES (date_trunc('minute', now()) - interval '1 hour');
