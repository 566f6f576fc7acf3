#!/usr/bin/env bash
# tests/integration/pg_withdraw_lock.sh: pausing a schedule while the leader
# holds one of its planned fires (recording its publish: fire row locked,
# then the schedule's last_fire_at) must not deadlock (sql/0012). Replays the
# two lock orders against a real PostgreSQL: session A locks the fire row
# as scheduler/fire.c's "record dispatched_at" statement does, waits, then
# updates the schedule; session B pauses the schedule meanwhile. Before
# 0012 one of them died with deadlock_detected. Also checks that the fires
# B could lock are still withdrawn and the held one is left as fired.
set -euo pipefail
: "${JETSCHED_TEST_PG_DSN:?run under tests/harness/with-servers --pg}"
: "${JETSCHED_BUILD_DIR:?}" "${JETSCHED_SOURCE_DIR:?}"
export JETSCHED_PG_DSN=$JETSCHED_TEST_PG_DSN
unset JETSCHED_SQL_DIR JETSCHED_CONFIG
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
fail() { printf 'FAIL: %s\n' "$*" >&2; exit 1; }
q() { psql -X -qAt -v ON_ERROR_STOP=1 "$JETSCHED_PG_DSN" "$@"; }

"$JETSCHED_BUILD_DIR/cli/jetsched" migrate --sql-dir "$JETSCHED_SOURCE_DIR/sql" >/dev/null 2>&1 || fail "migrate"

for op in pause update delete; do
  q -c "DELETE FROM tasks; DELETE FROM schedules"
  q -c "INSERT INTO schedules (id, kind, spec, handler, next_fire_at) VALUES ('s1', 'every', '1s', 'h', now() + interval '1 hour')"
  q -c "INSERT INTO tasks (id, queue, handler, status, schedule_id, scheduled_for)
        SELECT 'f' || g, 'default', 'h', 'scheduled', 's1', now() + g * interval '1 minute' FROM generate_series(1, 3) g"
  # A: the leader recording f1's publish (fire row first, schedule second).
  q >"$TMP/a" 2>&1 <<'SQL' &
BEGIN;
SELECT id FROM tasks WHERE id = 'f1' FOR UPDATE;
SELECT pg_sleep(1.5);
UPDATE tasks SET status = 'queued', dispatched_at = now() WHERE id = 'f1';
UPDATE schedules SET last_fire_at = now() WHERE id = 's1';
COMMIT;
SQL
  a=$!
  sleep 0.5
  case $op in
    pause) sql="UPDATE schedules SET paused = true WHERE id = 's1'" ;;
    update) sql="UPDATE schedules SET handler = 'h2' WHERE id = 's1'" ;;
    delete) sql="DELETE FROM schedules WHERE id = 's1'" ;;
  esac
  # B holds the schedule row until after A has tried to update it.
  q >"$TMP/b" 2>&1 <<SQL || { cat "$TMP/b" >&2; fail "$op: the schedule's transaction failed"; }
BEGIN;
$sql;
SELECT pg_sleep(2);
COMMIT;
SQL
  wait "$a" || { cat "$TMP/a" >&2; fail "$op: the leader's transaction failed"; }
  ! grep -qi deadlock "$TMP/a" "$TMP/b" || fail "$op: deadlock"
  [[ $(q -c "SELECT status FROM tasks WHERE id = 'f1'") == queued ]] || fail "$op: the fire being recorded counts as fired"
  [[ $(q -c "SELECT count(*) FROM tasks WHERE id IN ('f2', 'f3') AND status = 'skipped' AND error LIKE 'withdrawn before it was due%'") == 2 ]] ||
    fail "$op: the other planned fires are withdrawn"
  echo "$op: no deadlock, f1 fired, f2 and f3 withdrawn"
done
echo "pg_withdraw_lock: ok"
