-- 0016_api_sessions.sql: task.submit writes each row once (scheduler/api_task.c).
-- The API's INSERT sets dispatched_at = now() itself (the publish follows the
-- commit at once) and tags the row with api_session, the key of the pool
-- connection that committed it; no UPDATE after the publish (only a failed
-- publish resets dispatched_at to NULL). Each such connection holds a session
-- advisory lock on its key and has a row in api_sessions; when the lock is
-- gone (schedulerd killed, connection lost) the leader's reconciler resets
-- dispatched_at of that session's recent queued rows, so a row committed and
-- never published is republished within a reconcile interval or two
-- (docs/RELIABILITY.md). api_session is nullable with no default and not
-- indexed: a catalog-only change on any number of rows.
ALTER TABLE tasks ADD COLUMN api_session bigint;

CREATE TABLE api_sessions (
  key        bigint      PRIMARY KEY,        -- pg_advisory_lock(key) held by the connection
  scheduler  text        NOT NULL,           -- scheduler.id of the schedulerd
  started_at timestamptz NOT NULL DEFAULT now(),
  seen_at    timestamptz NOT NULL DEFAULT now() -- last time the leader saw its lock held
);
