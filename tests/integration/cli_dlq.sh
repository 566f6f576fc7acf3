#!/usr/bin/env bash
# tests/integration/cli_dlq.sh: jetsched dlq list|show|replay|purge and the
# cluster verbs (agents, leader, queues) against a real schedulerd and
# agentd: a replayed dead letter runs again under its id and succeeds once
# its cause is fixed; replay --all (progress bar on a terminal only); purge;
# queue depth and lag of a queue nobody serves; delivery/ack rates.
source "$(dirname "$0")/cli_lib.sh"

cli_setup default idle
start_schedulerd sched-a
start_agentd agent-a '{ name = "default"; concurrency = 4; }'

echo "== dead letters: list, show"
run 1 "$JS" submit --wait --wait-timeout 30s --id cli-flaky-1 --max-attempts 1 flaky x
has out "dead after 1 of 1"
for i in 1 2 3; do run 1 "$JS" submit --wait --wait-timeout 30s --max-attempts 1 fail "f$i"; done
run 0 "$JS" dlq list
has out "SEQ  *QUEUE  *TASK  *HANDLER  *REASON  *ATTEMPTS  *AGE  *LAST ERROR"
has out "cli-flaky-1  *flaky  *attempts_exhausted  *1 .*not yet"
run 0 "$JS" --json dlq list
[[ $(json 'len(d["messages"])') == 4 ]] || fail "dlq list --json: $(cat "$TMP/out")"
seq=$(json '[m["seq"] for m in d["messages"] if m["task_id"] == "cli-flaky-1"][0]')
run 0 "$JS" dlq show "$seq"
has out "task: *cli-flaky-1"
has out "reason: *attempts_exhausted"
has out "Jetsched-Handler: flaky"
run 0 "$JS" --json dlq show "$seq"
[[ $(json 'd["message"]["payload"]') == x ]] || fail "dlq show --json: $(cat "$TMP/out")"
run 1 "$JS" dlq show 999999
has err "jetsched: not_found: "
run 0 "$JS" --json dlq list -n 2
[[ $(json 'len(d["messages"])') == 2 && $(json 'd["next_cursor"] is not None') == True ]] || fail "dlq list -n 2: $(cat "$TMP/out")"
run 0 "$JS" --json dlq list -n 1 --all
[[ $(json 'len(d["messages"])') == 4 ]] || fail "dlq list --all: $(cat "$TMP/out")"

echo "== replay one: the task runs again under its id and succeeds once fixed"
touch "$TMP/fixed"
run 0 "$JS" dlq replay "$seq"
has out "replayed $seq: task cli-flaky-1"
wait_for 30 bash -c "'$JS' --json get cli-flaky-1 | grep -q '\"status\": \"succeeded\"'" || fail "the replayed task did not succeed"
run 0 "$JS" --json get cli-flaky-1
[[ $(json 'd["task"]["result"]') == fixed && $(json 'len(d["attempts"])') == 2 ]] || fail "replayed task: $(cat "$TMP/out")"
run 1 "$JS" dlq replay "$seq"
has err "jetsched: not_found: "

echo "== replay --all: progress bar on a terminal only"
rm -f "$TMP/fixed"
run 0 "$JS" --json dlq replay --all
[[ $(json 'd["replayed"]') == 3 && $(json 'len(d["task_ids"])') == 3 ]] || fail "replay --all --json: $(cat "$TMP/out")"
grep -q "replaying \[" "$TMP/err" && fail "progress bar without a terminal"
# they fail again (fail always does) and come back with 2 attempts
wait_for 30 bash -c "'$JS' --json dlq list | python3 -c 'import json,sys; m=json.load(sys.stdin)[\"messages\"]; sys.exit(0 if len(m) == 3 and all(x[\"attempts\"] == 2 for x in m) else 1)'" ||
  fail "replayed tasks did not come back: $("$JS" dlq list 2>&1)"
script -qec "'$JS' dlq replay --all --queue default" /dev/null >"$TMP/tty" 2>&1 || fail "replay on a pty: $(cat "$TMP/tty")"
grep -aq "replaying \[##############################\] 3/3 100%" "$TMP/tty" || fail "no progress bar on a tty: $(cat -v "$TMP/tty")"
grep -aq "replayed 3 dead letter(s)" "$TMP/tty" || fail "replay summary: $(cat -v "$TMP/tty")"

echo "== purge"
wait_for 30 bash -c "'$JS' --json dlq list | python3 -c 'import json,sys; sys.exit(0 if len(json.load(sys.stdin)[\"messages\"]) == 3 else 1)'" ||
  fail "dead letters did not come back"
s1=$("$JS" --json dlq list | python3 -c 'import json,sys; print(json.load(sys.stdin)["messages"][0]["seq"])')
run 0 "$JS" dlq purge "$s1"
has out "purged $s1"
run 0 "$JS" --json dlq purge --all --queue default
[[ $(json 'd["purged"]') == 2 ]] || fail "purge --all: $(cat "$TMP/out")"
run 0 "$JS" --json dlq list
[[ $(json 'len(d["messages"])') == 0 ]] || fail "purge left messages"

echo "== agents, leader"
run 0 "$JS" agents
has out "ID  *HOST  *PID  *VERSION  *QUEUES  *CONCURRENCY  *IN-FLIGHT  *UP  *HANDLERS"
has out "agent-a .* default  *4 "
run 0 "$JS" --json agents
[[ $(json '[a["id"] for a in d["agents"]]') == "['agent-a']" && $(json 'd["agents"][0]["pid"]') == "$AGENT_PID" ]] ||
  fail "agents --json: $(cat "$TMP/out")"
python3 -c 'import json,sys; h=json.load(open(sys.argv[1]))["agents"][0]["handlers"]; assert "hello" in h and "echo" in h, h' "$TMP/out" ||
  fail "handlers"
run 0 "$JS" leader
has out "leader sched-a (pid $SCHED_PID), epoch [0-9]"
run 0 "$JS" --json leader
[[ $(json 'd["leader"]["id"]') == sched-a ]] || fail "leader --json: $(cat "$TMP/out")"

echo "== queues: depth and lag of a queue nobody serves; rates"
for i in 1 2 3; do run 0 "$JS" submit -q idle -p low echo "i$i"; done
run 0 "$JS" queues --interval 0
has out "QUEUE  *PRIORITY  *DEPTH  *PENDING  *IN-FLIGHT  *REDELIVERED  *WAITING  *DELIVERED/S  *ACKED/S"
has out "idle  *low  *3  *3  *0  *0  *0 "
seq 1 200 | sed 's/.*/{"payload":"&"}/' >"$TMP/many.jsonl"
"$JS" --json queues --interval 4s >"$TMP/rates" 2>"$TMP/rates.err" &
qp=$!
sleep 0.5
run 0 "$JS" submit --from-file "$TMP/many.jsonl" echo
wait "$qp" || fail "queues exited $?: $(cat "$TMP/rates.err")"
python3 - "$TMP/rates" <<'EOF' || fail "queues rates: $(cat "$TMP/rates")"
import json, sys
q = json.load(open(sys.argv[1]))["queues"]
normal = [x for x in q if x["queue"] == "default" and x["priority"] == "normal"][0]
assert normal["delivered_per_s"] > 5 and normal["acked_per_s"] > 5, normal
# nothing was submitted at high: its rates are 0 although agent-a pulls it
# (the stream sequences of a filtered consumer move past other lanes' messages)
high = [x for x in q if x["queue"] == "default" and x["priority"] == "high"][0]
assert high["delivered_per_s"] == 0 and high["acked_per_s"] == 0, high
idle = [x for x in q if x["queue"] == "idle" and x["priority"] == "low"][0]
assert idle["depth"] == 3 and idle["delivered_per_s"] == 0, idle
EOF

echo "cli_dlq: ok"
