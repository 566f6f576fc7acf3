-- 0021_task_handbacks.sql: hand-backs of a task PostgreSQL has no row for.
-- agentd counts a delivery it hands back without running (drain, failed
-- park) in tasks.handed_back (0015), so that it spends no attempt. A task
-- published straight to NATS has no row until its first attempt is
-- recorded: its hand-backs were not counted, and its next delivery was
-- numbered past them with `lost` rows; with Jetsched-Max-Attempts: 1 a
-- drain dead-lettered it `poison` before it ever ran (test
-- agentd_drain_kill). Now agentd counts those here (same rule: per stream
-- message), and the admission step reads this table only for a redelivery
-- (delivery count above 1) with no task row: never on the hot path.
-- Rows older than a week are deleted by agentd's next hand-back statement.
-- A new table: nothing is rewritten or scanned.
CREATE TABLE task_handbacks (
  task_id text        PRIMARY KEY,
  seq     bigint      NOT NULL,            -- the stream message handed back
  n       integer     NOT NULL,            -- its deliveries handed back
  at      timestamptz NOT NULL DEFAULT now()
);
