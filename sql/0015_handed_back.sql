-- 0015_handed_back.sql: deliveries agentd handed back (Nak) without running the handler.
-- JetStream counts them as deliveries; DESIGN §12 says they spend no attempt.
-- agentd adds one per Nak of an unstarted delivery of stream message
-- handed_back_seq (a new message, e.g. a republish, starts again at 1), and
-- the admission step subtracts them before it numbers the attempt and writes
-- 'lost' rows (docs/RELIABILITY.md "Attempts"). Nullable, no default: a
-- catalog-only change on any number of rows, no table rewrite; neither
-- column is indexed, so the increment stays a HOT update.
ALTER TABLE tasks ADD COLUMN handed_back integer, ADD COLUMN handed_back_seq bigint;
