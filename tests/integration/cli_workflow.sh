#!/usr/bin/env bash
# tests/integration/cli_workflow.sh: jetsched workflow submit|add|get|list|cancel
# and jetsched watch --workflow (issue 18, docs/WORKFLOWS.md) against real
# servers, a real schedulerd and agentd: a diamond with a callback (--wait,
# the layered view, --json), a failing node with and without allow_failure,
# bad DAGs (each error exits 1 naming the node), an idempotent re-submit,
# add/--close, cancel mid-way, watch of one workflow among two, a file larger
# than max_payload and one of 12,001 nodes sent in dependency order as
# submit + add, and the exit codes of usage errors (2) and an unreachable
# API (3).
source "$(dirname "$0")/cli_lib.sh"

cli_setup default
start_schedulerd sched-w
start_agentd agent-w '{ name = "default"; concurrency = 4; }'
W=("$JS" workflow)

echo "== help of every sub-command"
for sub in submit add get list cancel; do
  run 0 "${W[@]}" "$sub" --help
  has out "Usage: jetsched workflow $sub"
  has out "Examples:"
  has out "Exit codes:"
done
run 0 "$JS" watch --help
has out "\-\-workflow ID"

echo "== a diamond with on_complete: --wait, then the layered view"
cat >"$TMP/diamond.json" <<'EOF'
{"id": "cli-diamond",
 "tasks": [
   {"id": "d", "handler": "echo", "payload": "d", "depends_on": ["b", {"id": "c", "allow_failure": false}]},
   {"id": "a", "handler": "echo", "payload": "a"},
   {"id": "b", "handler": "echo", "payload": "b", "depends_on": ["a"]},
   {"id": "c", "handler": "echo", "payload": "c", "depends_on": ["a"]}
 ],
 "on_complete": {"handler": "echo", "payload": "done"}}
EOF
run 0 "${W[@]}" submit --validate "$TMP/diamond.json"
has out "valid"
run 1 "${W[@]}" get cli-diamond
has err "not_found"
run 0 "${W[@]}" submit --wait --wait-timeout 60s -v "$TMP/diamond.json"
has out "workflow cli-diamond running: 4 nodes (this request: 1 queued, 3 waiting)"
has out "cli-diamond-d"
has out "workflow cli-diamond ended succeeded: 4 succeeded"
# watch --workflow on an ended workflow ends at once once its callback has run
run 0 timeout 60 "$JS" watch --workflow cli-diamond
has out "ended succeeded (4 nodes: 4 succeeded)"
run 0 "${W[@]}" get cli-diamond
has out "status: .* succeeded"
has out "nodes: *4: 4 succeeded"
has out "on_complete: *cli-diamond-on_complete  succeeded"
has out "layer 0 (1 node)"
has out "layer 1 (2 nodes)"
has out "layer 2 (1 node)"
grep -E '^  d +[^ ]+ succeeded +echo +1 +[0-9]+m?s +← b, c$' "$TMP/out" >/dev/null || fail "node d's row: $(cat "$TMP/out")"
# no colour when stdout is not a terminal
grep -q $'\033' "$TMP/out" && fail "escape sequences in piped output"
run 0 "${W[@]}" get --json cli-diamond
[[ $(json 'len(d["nodes"])') == 4 && $(json '[n["depends_on"] for n in d["nodes"] if n["id"] == "d"][0][1]') == "{'id': 'c', 'allow_failure': False}" ]] ||
  fail "get --json: $(cat "$TMP/out")"
run 0 "$JS" --json get cli-diamond-b
[[ $(json 'd["task"]["workflow_id"]') == cli-diamond ]] || fail "task.get workflow_id: $(cat "$TMP/out")"
run 0 "$JS" get cli-diamond-on_complete
has out "workflow: *cli-diamond"
run 0 "$JS" --json list --limit 1000
[[ $(json 'sorted(t["id"] for t in d["tasks"] if t["workflow_id"] == "cli-diamond")') == "['cli-diamond-a', 'cli-diamond-b', 'cli-diamond-c', 'cli-diamond-d', 'cli-diamond-on_complete']" ]] ||
  fail "task.list workflow_id: $(cat "$TMP/out")"
run 0 "${W[@]}" get --counts --json cli-diamond
[[ $(json '"nodes" in d') == False && $(json 'd["workflow"]["counts"]["succeeded"]') == 4 ]] || fail "--counts: $(cat "$TMP/out")"

echo "== the same id again stores nothing"
run 0 "${W[@]}" submit "$TMP/diamond.json"
has out "workflow cli-diamond exists already (succeeded, 4 nodes): nothing stored"

echo "== a failing node: a required edge cancels, an allow_failure edge runs"
cat >"$TMP/failing.json" <<'EOF'
[{"id": "f", "handler": "fail", "max_attempts": 1},
 {"id": "g", "handler": "echo", "depends_on": ["f"]},
 {"id": "h", "handler": "echo", "depends_on": [{"id": "f", "allow_failure": true}]}]
EOF
run 1 "${W[@]}" submit --id cli-failing --wait --wait-timeout 60s "$TMP/failing.json"
has out "workflow cli-failing ended failed"
run 0 "${W[@]}" get cli-failing
grep -E '^  g +[^ ]+ cancelled .*dependency_failed' "$TMP/out" >/dev/null || fail "g not cancelled by dependency_failed: $(cat "$TMP/out")"
grep -E '^  h +[^ ]+ succeeded .*← f\?' "$TMP/out" >/dev/null || fail "h (allow_failure) did not run: $(cat "$TMP/out")"
grep -E '^  f +[^ ]+ dead ' "$TMP/out" >/dev/null || fail "f not dead: $(cat "$TMP/out")"

echo "== bad DAGs: each error names the node (exit 1), nothing stored"
printf '[{"id":"a","handler":"echo","depends_on":["c"]},{"id":"b","handler":"echo","depends_on":["a"]},{"id":"c","handler":"echo","depends_on":["b"]}]' >"$TMP/cycle.json"
run 1 "${W[@]}" submit --id cli-cycle "$TMP/cycle.json"
has err "invalid_argument"
has err "cycle"
printf '[{"id":"a","handler":"echo","depends_on":["zz"]}]' >"$TMP/unknown.json"
run 1 "${W[@]}" submit --id cli-unknown "$TMP/unknown.json"
has err 'node "a" depends on "zz"'
printf '[{"id":"a","handler":"echo"},{"id":"a","handler":"echo"}]' >"$TMP/dup.json"
run 1 "${W[@]}" submit --id cli-dup "$TMP/dup.json"
has err 'node "a" is defined twice'
run 1 "${W[@]}" get cli-cycle
has err "not_found"

echo "== open, add, close"
printf '[{"id":"seed","handler":"echo"}]' >"$TMP/seed.json"
run 0 "${W[@]}" submit --open --id cli-open "$TMP/seed.json"
has out "open (jetsched workflow add"
printf '{"tasks":[{"id":"more","handler":"echo","depends_on":["seed"]}]}' >"$TMP/more.json"
run 0 "${W[@]}" --json add cli-open "$TMP/more.json"
[[ $(json 'd["added"]') == 1 && $(json 'd["nodes"]') == 2 ]] || fail "add: $(cat "$TMP/out")"
run 2 "${W[@]}" add cli-open
has err "missing FILE"
run 0 "${W[@]}" add cli-open --close
wait_for 60 bash -c "'$JS' workflow get --counts cli-open | grep -q 'status: .* succeeded'" || fail "cli-open did not end"
run 1 "${W[@]}" add cli-open "$TMP/more.json"
has err "failed_precondition"

echo "== cancel mid-way"
printf '[{"id":"s","handler":"slow"},{"id":"t","handler":"echo","depends_on":["s"]}]' >"$TMP/slow.json"
run 0 "${W[@]}" submit --id cli-cancel "$TMP/slow.json"
wait_for 30 bash -c "'$JS' workflow get cli-cancel | grep -qE '^  s +[^ ]+ running'" || fail "s did not start"
run 0 "${W[@]}" cancel cli-cancel
has out "workflow cli-cancel cancelled: 1 waiting node(s) cancelled, 1 cancelling"
run 0 "${W[@]}" get --json cli-cancel
[[ $(json 'd["workflow"]["status"]') == cancelled ]] || fail "status after cancel: $(cat "$TMP/out")"
[[ $(json '[n["status"] for n in d["nodes"] if n["id"] == "t"][0]') == cancelled ]] || fail "t: $(cat "$TMP/out")"
wait_for 30 bash -c "'$JS' --json get cli-cancel-s | grep -q '\"status\": \"cancelled\"'" || fail "running node s not cancelled"
run 1 "${W[@]}" cancel cli-nope
has err "not_found"

echo "== list"
run 0 "${W[@]}" list
has out "ID  *STATUS  *OPEN  *NODES"
grep -E '^cli-diamond +succeeded +- +4 ' "$TMP/out" >/dev/null || fail "list row: $(cat "$TMP/out")"
run 0 "${W[@]}" list --status failed --json
[[ $(json '[w["id"] for w in d["workflows"]]') == "['cli-failing']" ]] || fail "list --status failed: $(cat "$TMP/out")"
run 0 "${W[@]}" list -n 1 --json
[[ $(json 'len(d["workflows"])') == 1 && $(json 'd["next_cursor"] is not None') == True ]] || fail "paging: $(cat "$TMP/out")"
run 0 "${W[@]}" list --all --json
[[ $(json 'len(d["workflows"])') == 4 ]] || fail "list --all: $(cat "$TMP/out")"

echo "== watch --workflow: only that workflow's events, ends with it"
"$JS" watch --json --workflow cli-w1 >"$TMP/watch.out" 2>"$TMP/watch.err" &
WATCH=$!
CLI_PIDS+=("$WATCH")
# subscribed once it has asked for the workflow (not there yet)
wait_for 30 grep -q "waiting for its events anyway" "$TMP/watch.err" || fail "watch did not start: $(cat "$TMP/watch.err")"
printf '[{"id":"x","handler":"echo"},{"id":"y","handler":"echo","depends_on":["x"]}]' >"$TMP/w.json"
run 0 "${W[@]}" submit --id cli-w2 "$TMP/w.json"
run 0 "${W[@]}" submit --id cli-w1 "$TMP/w.json"
for _ in $(seq 1 300); do kill -0 "$WATCH" 2>/dev/null || break; sleep 0.1; done
kill -0 "$WATCH" 2>/dev/null && fail "watch --workflow did not end with the workflow"
wrc=0; wait "$WATCH" || wrc=$?
[[ $wrc == 0 ]] || fail "watch --workflow exited $wrc: $(cat "$TMP/watch.out" "$TMP/watch.err")"
grep -q '"id":"cli-w1-y","status":"succeeded"' "$TMP/watch.out" || fail "no event of cli-w1-y: $(cat "$TMP/watch.out")"
grep -q 'cli-w2' "$TMP/watch.out" && fail "watch --workflow cli-w1 showed cli-w2: $(cat "$TMP/watch.out")"
grep -v '^{"id":"cli-w1"' "$TMP/watch.out" | grep -vq '"workflow":"cli-w1"' && fail "an event without the workflow field"
tail -1 "$TMP/watch.out" | grep -q '"status":"succeeded"' || fail "last line is not the ended workflow"
run 2 "$JS" watch --workflow cli-w1 sometask
has err "not both"

echo "== a file larger than max_payload: submit + add in dependency order"
python3 - "$TMP/big.json" <<'EOF'
import json, sys
pad = "x" * 60000
nodes = [{"id": "n%02d" % i, "handler": "noop", "payload": pad, "depends_on": ["n%02d" % (i - 1)] if i else []}
         for i in range(30)]
nodes.reverse()  # children before parents: the CLI must order them
json.dump({"id": "cli-big", "tasks": nodes}, open(sys.argv[1], "w"))
EOF
run 2 "${W[@]}" submit --validate "$TMP/big.json"
has err "one request"
run 0 "${W[@]}" submit --json --wait-timeout 120s "$TMP/big.json"
[[ $(json 'd["workflow"]["status"]') == succeeded && $(json 'd["workflow"]["nodes"]') == 30 ]] || fail "big: $(cat "$TMP/out")"
run 0 "${W[@]}" get cli-big
has out "layer 29 (1 node)"

echo "== more than 10000 nodes: two requests, then cancel (12000 waiting nodes at once)"
python3 - "$TMP/wide.json" <<'EOF'
import json, sys
kids = [{"id": "k%05d" % i, "handler": "echo", "depends_on": ["root"]} for i in range(12000)]
json.dump(kids + [{"id": "root", "handler": "slow"}], open(sys.argv[1], "w"))
EOF
run 0 "${W[@]}" --json submit --id cli-wide "$TMP/wide.json"
[[ $(json 'd["nodes"], d["requests"], d["open"]') == "(12001, 2, False)" ]] || fail "wide submit: $(cat "$TMP/out")"
run 0 "${W[@]}" get cli-wide
has out "(10000 of 12001 nodes read: jetsched workflow get --all cli-wide"
has out "layer 0 (10000 nodes)"   # root sorts after the k nodes: not on the first page
has out "… 9988 more: 9988 waiting (--full shows them)"
run 0 "${W[@]}" get --all --json cli-wide
[[ $(json 'len(d["nodes"]), d["next_cursor"]') == "(12001, None)" ]] || fail "get --all: $(head -c 300 "$TMP/out")"
# A raw workflow.get of 10000 nodes (about 3 MB) does not fit one NATS
# message: schedulerd answers payload_too_large instead of leaving the
# client to time out (the CLI reads pages of 1000).
python3 - "$JETSCHED_NATS_URL" >"$TMP/raw.json" <<'EOF'
import json, socket, sys, urllib.parse
u = urllib.parse.urlparse(sys.argv[1].split(",")[0])
s = socket.create_connection((u.hostname, u.port or 4222), timeout=30)
f = s.makefile("rb")
f.readline()  # INFO
conn = {"verbose": False, "pedantic": False, "headers": True, "no_responders": True}
if u.username:
    conn.update(user=urllib.parse.unquote(u.username), **{"pass": urllib.parse.unquote(u.password or "")})
body = json.dumps({"id": "cli-wide", "limit": 10000}).encode()
s.sendall(b"CONNECT %s\r\nSUB _INBOX.raw 1\r\nPUB jetsched.api.workflow.get _INBOX.raw %d\r\n%s\r\n"
          % (json.dumps(conn).encode(), len(body), body))
while True:
    line = f.readline()
    if not line:
        sys.exit("connection closed")
    if line.startswith(b"PING"):
        s.sendall(b"PONG\r\n")
    elif line.startswith((b"MSG", b"HMSG")):
        n = int(line.split()[-1])
        data = f.read(n + 2)[:n]
        if line.startswith(b"HMSG"):
            data = data[int(line.split()[-2]):]
        print(data.decode())
        break
    elif line.startswith(b"-ERR"):
        sys.exit(line.decode())
EOF
grep -q '"code":"payload_too_large".*max_payload' "$TMP/raw.json" || fail "raw workflow.get of 10000 nodes: $(head -c 300 "$TMP/raw.json")"
run 0 "${W[@]}" cancel cli-wide
has out "workflow cli-wide cancelled: 12000 waiting node(s) cancelled, 1 cancelling"

echo "== usage errors (2) and an unreachable API (3)"
run 2 "${W[@]}"
has err "missing sub-command"
run 2 "${W[@]}" frob
has err "unknown sub-command"
run 2 "${W[@]}" get "bad id"
run 2 "${W[@]}" submit
has err "missing FILE"
printf '{"tasks": [' >"$TMP/broken.json"
run 2 "${W[@]}" submit "$TMP/broken.json"
has err "broken.json:1:"
run 2 "${W[@]}" submit /nonexistent.json
has err "cannot open"
run 2 "${W[@]}" submit --open --wait "$TMP/seed.json"
run 2 "${W[@]}" list --limit 0
JETSCHED_NATS_URL=nats://127.0.0.1:1 run 3 "${W[@]}" list
has err "unavailable"
kill -TERM "$SCHED_PID"; wait "$SCHED_PID" 2>/dev/null || true
run 3 "${W[@]}" get cli-diamond
has err "no schedulerd serves"
echo "cli_workflow: ok"
