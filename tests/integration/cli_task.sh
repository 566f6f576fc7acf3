#!/usr/bin/env bash
# tests/integration/cli_task.sh: jetsched submit / get / list / cancel / watch
# against real servers, a real schedulerd and agentd: payload from an
# argument, @file and stdin, headers, idempotent --id, delayed tasks, --wait
# printing outcome and result (exit 1 when the task dies), --json parsed,
# list filters and paging, cancel, watch of a task / a queue / everything,
# bulk --from-file (bad lines refuse the file; progress bar only on a tty).
source "$(dirname "$0")/cli_lib.sh"

cli_setup default q2
start_schedulerd sched-a
start_agentd agent-a '{ name = "default"; concurrency = 4; }, { name = "q2"; concurrency = 2; }'

echo "== submit --wait: a Lua handler's result is printed"
run 0 "$JS" submit --wait --wait-timeout 30s hello Ada
has out "succeeded after 1 of 5 attempt(s) on agent-a"
has out "result: hello, Ada"

echo "== submit --wait of a task that fails for good: exit 1, error shown"
run 1 "$JS" submit --wait --wait-timeout 30s --max-attempts 1 fail x
has out "dead after 1 of 1 attempt(s)"
has out "error: .*boom"

echo "== submit --json, then get (text and JSON)"
printf 'from a file\n' >"$TMP/payload.txt"
run 0 "$JS" submit --json -H traceparent:00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01 echo @"$TMP/payload.txt"
id=$(json 'd["id"]')
[[ $(json 'd["status"]') == queued && $(json 'd["created"]') == True ]] || fail "submit reply: $(cat "$TMP/out")"
wait_for 30 bash -c "'$JS' --json get $id | grep -q '\"status\": \"succeeded\"'" || fail "task $id did not succeed"
run 0 "$JS" get "$id"
has out "status: *succeeded"
has out "payload: *from a file"
has out "ATTEMPT  STATUS"
run 0 "$JS" get "$id" --json
[[ $(json 'd["task"]["payload"]') == "from a file" ]] || fail "payload from @file: $(cat "$TMP/out")"
[[ $(json 'd["task"]["result"]') == "from a file" ]] || fail "echo result: $(cat "$TMP/out")"
[[ $(json 'len(d["attempts"])') == 1 ]] || fail "attempts"
# The trace id (not the whole traceparent) survives agentd's records.
[[ $(json 'd["task"]["trace_id"]') == 0af7651916cd43dd8448eb211c80319c ]] || fail "trace_id: $(cat "$TMP/out")"

echo "== payload from stdin, priority, queue"
run 0 "$JS" --json submit -q q2 -p high --wait --wait-timeout 30s echo - < <(printf 'on stdin')
[[ $(json 'd["task"]["result"]') == "on stdin" && $(json 'd["task"]["queue"]') == q2 &&
  $(json 'd["task"]["priority"]') == high ]] || fail "stdin/queue/priority: $(cat "$TMP/out")"

echo "== a binary payload travels as payload_base64"
printf '\000\377' >"$TMP/bin"
run 0 "$JS" --json submit --wait --wait-timeout 30s echo @"$TMP/bin"
[[ $(json 'd["task"]["payload_base64"]') == AP8= && $(json '"payload" in d["task"]') == False ]] ||
  fail "binary payload: $(cat "$TMP/out")"
run 0 "$JS" get "$(json 'd["task"]["id"]')"
has out "payload: *(binary) base64 AP8="

echo "== --id is idempotent"
run 0 "$JS" submit --id cli-fixed-1 --wait --wait-timeout 30s hello once
run 0 "$JS" submit --id cli-fixed-1 hello twice
has out "cli-fixed-1 exists already (succeeded); nothing was submitted"
run 0 "$JS" --json get cli-fixed-1
[[ $(json 'd["task"]["result"]') == "hello, once" ]] || fail "the second submit changed the task"

echo "== delayed tasks (--delay, --at), cancel"
run 0 "$JS" --json submit --delay 1h --id cli-later hello later
[[ $(json 'd["status"]') == scheduled ]] || fail "--delay: $(cat "$TMP/out")"
at=$(date -u -d '+2 seconds' +%Y-%m-%dT%H:%M:%SZ)
run 0 "$JS" --json submit --at "$at" --timeout 10s hello soon
soon=$(json 'd["id"]')
run 0 "$JS" cancel cli-later
has out "cli-later cancelled"
run 1 "$JS" cancel cli-later
has err "jetsched: failed_precondition: "
run 0 "$JS" watch "$soon"   # ends when the task reaches a final state
has out "succeeded"
run 0 "$JS" --json get "$soon"
[[ $(json 'd["task"]["result"]') == "hello, soon" && $(json 'd["task"]["scheduled_for"]') != None ]] ||
  fail "--at task: $(cat "$TMP/out")"

echo "== cancel a running task: cancelling, then watch ends with cancelled (exit 1)"
run 0 "$JS" submit --id cli-slow slow
wait_for 30 bash -c "'$JS' --json get cli-slow | grep -q '\"status\": \"running\"'" || fail "cli-slow did not start"
run 0 "$JS" cancel cli-slow
has out "cli-slow cancelling"
run 1 "$JS" --json watch cli-slow
python3 - "$TMP/out" <<'EOF' || fail "watch --json of a task: $(cat "$TMP/out")"
import json, sys
lines = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
assert lines[0]["id"] == "cli-slow" and lines[0]["handler"] == "slow", lines
assert lines[-1]["status"] == "cancelled", lines
EOF

echo "== list: filters, paging, --all, --json"
run 0 "$JS" list
has out "ID  *QUEUE  *PRIORITY  *HANDLER  *STATUS"
has out "cli-fixed-1"
run 0 "$JS" list --status cancelled
has out cli-later
grep -q cli-fixed-1 "$TMP/out" && fail "--status cancelled lists a succeeded task"
run 0 "$JS" --json list --queue q2
[[ $(json 'set(t["queue"] for t in d["tasks"])') == "{'q2'}" ]] || fail "--queue: $(cat "$TMP/out")"
run 0 "$JS" --json list --handler fail --status dead,expired
[[ $(json 'len(d["tasks"])') == 1 ]] || fail "--handler --status list: $(cat "$TMP/out")"
run 0 "$JS" --json list -n 2
[[ $(json 'len(d["tasks"])') == 2 && $(json 'd["next_cursor"] is not None') == True ]] || fail "-n 2: $(cat "$TMP/out")"
first=$(json 'd["tasks"][0]["id"]'); cursor=$(json 'd["next_cursor"]')
run 0 "$JS" --json list -n 2 --cursor "$cursor"
grep -q "\"$first\"" "$TMP/out" && fail "page 2 repeats page 1"
run 0 "$JS" list -n 2
has err "more: jetsched list"
run 0 "$JS" --json list --all -n 2
total=$(json 'len(d["tasks"])')
(( total >= 7 )) || fail "--all listed $total tasks"
run 0 "$JS" --json list --since 1h --until 0s
[[ $(json 'len(d["tasks"])') == "$total" ]] || fail "--since 1h"
run 0 "$JS" --json list --since 2026-01-01T00:00:00Z --until 2026-01-02T00:00:00Z
[[ $(json 'len(d["tasks"])') == 0 ]] || fail "--until in the past lists tasks"

echo "== watch: a queue, everything, --json --count"
"$JS" watch --queue q2 --count 2 >"$TMP/watch_q2" 2>&1 &
wq=$!
"$JS" --json watch --count 4 --for 60s >"$TMP/watch_all" 2>&1 &
wa=$!
sleep 1
run 0 "$JS" submit -q q2 --id cli-watched hello w
run 0 "$JS" submit hello elsewhere
wait "$wq" || fail "watch --queue exited $?: $(cat "$TMP/watch_q2")"
wait "$wa" || fail "watch --json exited $?: $(cat "$TMP/watch_all")"
grep -q "q2  *cli-watched  *running" "$TMP/watch_q2" || fail "watch --queue: $(cat "$TMP/watch_q2")"
grep -q "cli-watched  *succeeded" "$TMP/watch_q2" || fail "watch --queue: no succeeded: $(cat "$TMP/watch_q2")"
python3 - "$TMP/watch_all" <<'EOF' || fail "watch --json: $(cat "$TMP/watch_all")"
import json, sys
evs = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
assert len(evs) == 4, evs
assert {e["queue"] for e in evs} == {"q2", "default"}, evs
assert all(e["status"] in ("running", "succeeded") and e["agent"] == "agent-a" for e in evs), evs
EOF

echo "== submit --from-file: every line checked first; defaults from options"
printf '{"payload":"a"}\n{"handler":"echo","payload":"b","id":"cli-bulk-b"}\n\n{"payload":"c","queue":"q2"}\n' >"$TMP/bulk.jsonl"
run 0 "$JS" submit --from-file "$TMP/bulk.jsonl" --max-attempts 2 hello
has out "submitted 3 task(s)"
run 0 "$JS" --json submit --from-file "$TMP/bulk.jsonl" hello
[[ $(json 'd["submitted"]') == 2 && $(json 'd["existing"]') == 1 && $(json 'd["results"][1]["line"]') == 2 ]] ||
  fail "bulk --json: $(cat "$TMP/out")"
wait_for 30 bash -c "'$JS' --json get cli-bulk-b | grep -q '\"result\": \"b\"'" || fail "bulk line 2 did not run"
run 0 "$JS" --json get cli-bulk-b
[[ $(json 'd["task"]["max_attempts"]') == 2 ]] || fail "--max-attempts default for lines: $(cat "$TMP/out")"
before=$("$JS" --json list --all | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["tasks"]))')
printf '{"payload":"ok"}\nnot json\n[1]\n' >"$TMP/bad.jsonl"
run 1 "$JS" submit --from-file "$TMP/bad.jsonl" hello
has err "bad.jsonl:2:"
has err "bad.jsonl:3:1: a line must be a JSON object"
has err "nothing was submitted"
after=$("$JS" --json list --all | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["tasks"]))')
[[ $before == "$after" ]] || fail "a bad file submitted tasks ($before -> $after)"
# issue 20 item 9: a bad field value on line 3 submits nothing (the API checks every line first)
printf '{"payload":"x"}\n{"payload":"x2"}\n{"payload":"y","priority":"urgent"}\n{"payload":"z"}\n{"payload":"w","delay":"999999999h"}\n' >"$TMP/badfield.jsonl"
run 1 "$JS" submit --from-file "$TMP/badfield.jsonl" hello
has err "jetsched: invalid_argument: .*priority.*badfield.jsonl:3"
has err "invalid_argument: .*delay.*badfield.jsonl:5"
has err "nothing was submitted"
# a 2 MB line is refused before anything is submitted
python3 -c 'import json; print(json.dumps({"payload":"a"})); print(json.dumps({"payload":"x"*2000000}))' >"$TMP/big.jsonl"
run 1 "$JS" submit --from-file "$TMP/big.jsonl" hello
has err "big.jsonl:2: the request is .* bytes, more than the NATS server takes"
has err "nothing was submitted"
# devices: bounded reads, a clear error, exit 1
run 1 "$JS" submit --from-file /dev/zero hello
has err "/dev/zero:1: line longer than 16 MiB"
run 1 "$JS" submit hello @/dev/zero
has err "cannot read payload file /dev/zero: more than 64 MiB"
after=$("$JS" --json list --all | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["tasks"]))')
[[ $before == "$after" ]] || fail "a refused file submitted tasks ($before -> $after)"

run 0 "$JS" submit --from-file - hello < <(printf '{"payload":"s1"}\n{"payload":"s2"}\n')
has out "submitted 2 task(s) from <stdin>"

echo "== submit --from-file: task.submit_many in chunks of up to 1000, each atomic; --partial"
PSQL="$JETSCHED_PG_BINDIR/psql"
[[ -x $PSQL ]] || fail "no psql in JETSCHED_PG_BINDIR ($JETSCHED_PG_BINDIR)"
sql() { "$PSQL" -qtAX -v ON_ERROR_STOP=1 -d "$JETSCHED_TEST_PG_DSN" -c "$1"; }
python3 -c '
for i in range(1, 2101): print("{\"id\":\"cli-chunk-%d\",\"payload\":\"%d\"}" % (i, i))' >"$TMP/chunks.jsonl"
run 0 "$JS" --json submit --delay 1h --from-file "$TMP/chunks.jsonl" noop
[[ $(json 'd["submitted"]') == 2100 && $(json 'len(d["chunks"])') == 3 && $(json 'd["chunks"][2]["first_line"]') == 2001 &&
   $(json 'd["chunks"][2]["tasks"]') == 100 && $(json 'd["results"][2099]["id"]') == cli-chunk-2100 ]] ||
  fail "3 chunks: $(head -c 600 "$TMP/out")"
[[ $(sql "SELECT count(*) FROM tasks WHERE id LIKE 'cli-chunk-%'") == 2100 ]] || fail "2100 rows"
# A chunk PostgreSQL refuses (a constraint the checks cannot know) is named
# with its lines; the chunk before it stays submitted, none of its own is.
sql "ALTER TABLE tasks ADD CONSTRAINT cli_test_refuse CHECK (id NOT LIKE 'cli-refuse-bad%') NOT VALID"
python3 -c '
for i in range(1, 1101): print("{\"id\":\"cli-refuse-%s%d\"}" % ("bad-" if i == 1050 else "", i))' >"$TMP/refuse.jsonl"
run 1 "$JS" submit --delay 1h --from-file "$TMP/refuse.jsonl" noop
has err "refuse.jsonl: chunk 2 of 2 (lines 1001-1100, 100 task(s)) failed: none of its tasks was submitted"
has out "submitted 1000 task(s) from .*refuse.jsonl, 100 failed (1 chunk(s) of up to 1000 refused whole)"
[[ $(sql "SELECT count(*) FROM tasks WHERE id LIKE 'cli-refuse-%'") == 1000 ]] || fail "chunk 1 only"
[[ $(sql "SELECT count(*) FROM tasks WHERE id = 'cli-refuse-1001'") == 0 ]] || fail "chunk 2 stored"
sql "ALTER TABLE tasks DROP CONSTRAINT cli_test_refuse"
# --partial: no check first; the bad line is reported, the good ones stored
printf '{"id":"cli-part-1"}\n{"id":"cli-part-2","priority":"urgent"}\n{"id":"cli-part-3"}\n' >"$TMP/part.jsonl"
run 1 "$JS" submit --delay 1h --from-file "$TMP/part.jsonl" noop
has err "nothing was submitted"
run 1 "$JS" submit --delay 1h --partial --from-file "$TMP/part.jsonl" noop
has err "invalid_argument: .*priority.*part.jsonl:2"
has out "submitted 2 task(s) from .*part.jsonl, 1 failed"
[[ $(sql "SELECT string_agg(id, ',' ORDER BY id) FROM tasks WHERE id LIKE 'cli-part-%'") == cli-part-1,cli-part-3 ]] ||
  fail "partial stored the good lines only"
run 2 "$JS" submit --partial noop x
has err "--partial goes with --from-file"

echo "== the progress bar is drawn on a terminal only"
seq 1 50 | sed 's/.*/{"payload":"&"}/' >"$TMP/fifty.jsonl"
run 0 "$JS" submit --from-file "$TMP/fifty.jsonl" echo
grep -q "submitting \[" "$TMP/err" && fail "progress bar without a terminal"
script -qec "'$JS' submit --from-file '$TMP/fifty.jsonl' echo" /dev/null >"$TMP/tty" 2>&1 || fail "submit on a pty: $(cat "$TMP/tty")"
grep -aq "submitting \[##############################\] 50/50 100%" "$TMP/tty" || fail "no progress bar on a tty: $(cat -v "$TMP/tty")"

echo "cli_task: ok"
