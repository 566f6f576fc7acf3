#!/usr/bin/env bash
# tests/integration/pg_migrate.sh: `jetsched migrate` against a real
# PostgreSQL: from empty, re-run is a no-op, concurrent runs apply each
# migration once, --status (text and JSON) with checksums, an edited applied
# migration is refused, a failing migration leaves nothing behind, ordering
# and transaction rules, exit codes (2 usage, 3 unreachable).
set -euo pipefail

: "${JETSCHED_TEST_PG_DSN:?run under tests/harness/with-servers --pg}"
: "${JETSCHED_BUILD_DIR:?}" "${JETSCHED_SOURCE_DIR:?}"
JS=$JETSCHED_BUILD_DIR/cli/jetsched
SQL=$JETSCHED_SOURCE_DIR/sql
export JETSCHED_PG_DSN=$JETSCHED_TEST_PG_DSN
unset JETSCHED_SQL_DIR JETSCHED_CONFIG
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
nfiles=$(find "$SQL" -maxdepth 1 -name '[0-9]*_*.sql' | wc -l)

fail() { printf 'FAIL: %s\n' "$*" >&2; exit 1; }
q() { psql -X -qAt -v ON_ERROR_STOP=1 "${DSN:-$JETSCHED_PG_DSN}" -c "$1"; }
# run EXPECTED_RC CMD...: runs CMD with output in $TMP/out and $TMP/err, checks the exit code
run() {
  local want=$1 rc=0; shift
  "$@" >"$TMP/out" 2>"$TMP/err" || rc=$?
  if [[ $rc != "$want" ]]; then
    cat "$TMP/out" "$TMP/err" >&2
    fail "'$*' exited $rc, expected $want"
  fi
}
has() { grep -q -- "$2" "$TMP/$1" || { cat "$TMP/out" "$TMP/err" >&2; fail "no '$2' in $1"; }; }

echo "== status of an empty database: everything pending, checksums are sha256 of the files"
run 0 "$JS" migrate --sql-dir "$SQL" --status
has out "0001_init.sql"
has out pending
sum=$(sha256sum "$SQL/0001_init.sql" | cut -d' ' -f1)
has out "$sum"

echo "== migrate from empty"
run 0 "$JS" migrate --sql-dir "$SQL"
has out "applied $nfiles migration(s)"
[[ $(q "SELECT count(*) FROM schema_migrations") == "$nfiles" ]] || fail "schema_migrations rows"
[[ $(q "SELECT checksum FROM schema_migrations WHERE version = 1") == "$sum" ]] || fail "recorded checksum"
for t in tasks task_attempts schedules scheduler_epoch; do
  [[ $(q "SELECT to_regclass('$t') IS NOT NULL") == t ]] || fail "table $t missing"
done
[[ $(q "SELECT count(*) FROM scheduler_epoch") == 1 ]] || fail "scheduler_epoch must hold one row"
for i in tasks_pkey tasks_status_created_idx tasks_queue_created_idx tasks_due_idx task_attempts_pkey; do
  [[ $(q "SELECT to_regclass('$i') IS NOT NULL") == t ]] || fail "index $i missing"
done
# the constraints of DESIGN §9 hold
q "INSERT INTO tasks (id, queue, handler, status) VALUES ('c-1', 'default', 'echo', 'queued')" >/dev/null
! q "INSERT INTO tasks (id, queue, handler, status) VALUES ('c-1', 'default', 'echo', 'queued')" 2>/dev/null ||
  fail "duplicate task id accepted"
! q "INSERT INTO tasks (id, queue, handler, status) VALUES ('c-2', 'default', 'echo', 'bogus')" 2>/dev/null ||
  fail "bad status accepted"
q "INSERT INTO task_attempts (task_id, attempt, status) VALUES ('c-1', 1, 'running')" >/dev/null
! q "INSERT INTO task_attempts (task_id, attempt, status) VALUES ('c-1', 1, 'running')" 2>/dev/null ||
  fail "duplicate (task_id, attempt) accepted"
! q "INSERT INTO scheduler_epoch (singleton) VALUES (false)" 2>/dev/null || fail "a second epoch row accepted"
# the due-task query uses the partial index
plan=$(q "SET enable_seqscan = off; EXPLAIN SELECT id FROM tasks WHERE status = 'scheduled' AND scheduled_for <= now() ORDER BY scheduled_for LIMIT 100")
grep -q tasks_due_idx <<<"$plan" || fail "due tasks do not use tasks_due_idx: $plan"

echo "== re-run is a no-op"
# (pg_dump's \restrict lines carry a random key)
dump() { pg_dump --schema-only "$JETSCHED_PG_DSN" | grep -v '^\\\(un\)\?restrict '; }
dump >"$TMP/schema1"
run 0 "$JS" migrate --sql-dir "$SQL"
has out "nothing to apply"
dump >"$TMP/schema2"
cmp -s "$TMP/schema1" "$TMP/schema2" || fail "the schema changed on a re-run"

echo "== --status after migrating, text and JSON"
run 0 "$JS" migrate --sql-dir "$SQL" --status
has out applied
grep -q pending "$TMP/out" && fail "something still pending"
run 0 "$JS" --json migrate --sql-dir "$SQL" --status
[[ $(jq -r '.pending' "$TMP/out") == 0 ]] || fail "JSON pending"
[[ $(jq -r '.migrations[0].state + " " + .migrations[0].checksum + " " + .migrations[0].name' "$TMP/out") == \
  "applied $sum 0001_init.sql" ]] || fail "JSON migration entry: $(cat "$TMP/out")"
jq -e '.migrations[0].applied_at | test("^[0-9]{4}-")' "$TMP/out" >/dev/null || fail "JSON applied_at"

echo "== four concurrent runs on a fresh database apply each migration once"
q "CREATE DATABASE mig_race" >/dev/null
race_dsn=${JETSCHED_PG_DSN/dbname=jetsched/dbname=mig_race}
for i in 1 2 3 4; do
  JETSCHED_PG_DSN=$race_dsn "$JS" migrate --sql-dir "$SQL" >"$TMP/race$i.out" 2>"$TMP/race$i.err" &
done
for i in 1 2 3 4; do
  wait -n || { cat "$TMP"/race*.err >&2; fail "a concurrent migrate failed"; }
done
applied_lines=$(cat "$TMP"/race*.err | grep -c "applied migration" || true)
[[ $applied_lines == "$nfiles" ]] || { cat "$TMP"/race*.err >&2; fail "$applied_lines applications, expected $nfiles"; }
[[ $(DSN=$race_dsn q "SELECT count(*) FROM schema_migrations") == "$nfiles" ]] || fail "race: schema_migrations rows"

echo "== an edited applied migration is refused, naming the file"
cp -r "$SQL" "$TMP/edited"
echo "-- an innocent-looking edit" >>"$TMP/edited/0001_init.sql"
run 1 "$JS" migrate --sql-dir "$TMP/edited"
has err "0001_init.sql was changed after it was applied"
run 1 "$JS" migrate --sql-dir "$TMP/edited" --status
has out modified

echo "== a new migration is pending, then applied alone"
cp -r "$SQL" "$TMP/next"
printf 'CREATE TABLE mig_next (id int PRIMARY KEY);\nINSERT INTO mig_next VALUES (1);\n' >"$TMP/next/9001_next.sql"
run 0 "$JS" migrate --sql-dir "$TMP/next" --status
grep -q "pending.*9001_next.sql" "$TMP/out" || fail "9001 not pending: $(cat "$TMP/out")"
JETSCHED_SQL_DIR=$TMP/next run 0 "$JS" migrate   # the directory from the environment
has out "applied 1 migration(s); the schema is at version 9001"
[[ $(q "SELECT count(*) FROM mig_next") == 1 ]] || fail "9001 not applied"

echo "== a failing migration leaves nothing behind"
printf 'CREATE TABLE mig_half (id int);\nSELECT no_such_function();\n' >"$TMP/next/9002_broken.sql"
run 1 "$JS" migrate --sql-dir "$TMP/next"
has err "9002_broken.sql failed, nothing of it was applied"
has err no_such_function
[[ $(q "SELECT to_regclass('mig_half') IS NULL") == t ]] || fail "a failed migration left a table"
[[ $(q "SELECT count(*) FROM schema_migrations WHERE version = 9002") == 0 ]] || fail "a failed migration was recorded"
rm "$TMP/next/9002_broken.sql"

echo "== a migration may not end its own transaction"
printf 'CREATE TABLE mig_commit (id int);\nCOMMIT;\n' >"$TMP/next/9003_commit.sql"
run 1 "$JS" migrate --sql-dir "$TMP/next"
has err "must not contain"
rm "$TMP/next/9003_commit.sql"

echo "== a pending migration older than an applied one is refused"
printf 'SELECT 1;\n' >"$TMP/next/9000_late.sql"
run 1 "$JS" migrate --sql-dir "$TMP/next"
has err "9000_late.sql is pending but the later 9001_next.sql is already applied"
rm "$TMP/next/9000_late.sql"

echo "== two files with one version are refused"
printf 'SELECT 1;\n' >"$TMP/next/9001_twin.sql"
run 1 "$JS" migrate --sql-dir "$TMP/next" --status
has err "same version 9001"
rm "$TMP/next/9001_twin.sql"

echo "== exit codes: usage 2, missing directory 1, unreachable PostgreSQL 3"
run 2 "$JS" migrate --bogus
run 2 "$JS" migrate extra-arg
run 1 "$JS" migrate --sql-dir "$TMP/does-not-exist"
has err "does-not-exist"
run 1 "$JS" migrate --status
has err /usr/share/jetsched/sql
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
JETSCHED_PG_DSN="host=127.0.0.1 port=$port dbname=jetsched user=postgres" run 3 "$JS" migrate --sql-dir "$SQL"
has err "connect to postgres.dsn"
JETSCHED_PG_DSN="host=127.0.0.1 port=$port dbname=jetsched user=postgres" run 3 "$JS" migrate --sql-dir "$SQL" --status
run 0 "$JS" migrate --help
has out "--sql-dir"

echo "pg_migrate: ok"
