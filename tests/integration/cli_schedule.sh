#!/usr/bin/env bash
# tests/integration/cli_schedule.sh: jetsched schedule add|list|get|preview|
# pause|resume|trigger|rm against a real schedulerd (leader) and agentd: a
# cron schedule every 2 s really fires and its tasks succeed; pause stops
# firing; trigger runs once now; errors (bad spec naming the position,
# duplicate id, unknown id) exit 1 with the API's code; --json parsed.
source "$(dirname "$0")/cli_lib.sh"

cli_setup default
start_schedulerd sched-a
start_agentd agent-a '{ name = "default"; concurrency = 2; }'

echo "== add: a cron with seconds, and one in a time zone"
run 0 "$JS" schedule add tick '*/2 * * * * *' hello cron
has out "schedule tick created (cron \*/2 \* \* \* \* \*, UTC); next fire 20"
run 0 "$JS" --json schedule add nightly '0 3 * * *' batch_report '{"items":10,"step":5}' --tz Europe/Paris \
  -q default -p low --max-attempts 3 --overlap forbid --misfire skip --paused
[[ $(json 'd["schedule"]["tz"]') == Europe/Paris && $(json 'd["schedule"]["priority"]') == low &&
  $(json 'd["schedule"]["max_attempts"]') == 3 && $(json 'd["schedule"]["paused"]') == True &&
  $(json 'd["schedule"]["overlap"]') == forbid && $(json 'd["schedule"]["misfire"]') == skip ]] ||
  fail "schedule add --json: $(cat "$TMP/out")"

echo "== errors: bad spec (position named), duplicate id, unknown id"
run 1 "$JS" schedule add bad '61 * * * *' hello
has err "jetsched: invalid_argument: .*position 1.*out of range"
has err 'field "spec"'
run 1 "$JS" schedule add tick '* * * * *' hello
has err "jetsched: already_exists: "
for verb in get pause resume trigger rm; do
  run 1 "$JS" schedule "$verb" no-such-schedule
  has err "jetsched: not_found: "
done
run 1 "$JS" --json schedule get no-such-schedule
[[ $(json 'd["error"]["code"]') == not_found ]] || fail "--json error: $(cat "$TMP/out")"

echo "== list and get"
run 0 "$JS" schedule list
has out "ID  *KIND  *SPEC  *TZ  *QUEUE  *HANDLER  *PAUSED  *NEXT FIRE  *LAST FIRE"
has out "nightly  *cron  *0 3 \* \* \*  *Europe/Paris  *default  *batch_report  *yes"
run 0 "$JS" --json schedule list -n 1
[[ $(json 'len(d["schedules"])') == 1 && $(json 'd["next_cursor"] is not None') == True ]] || fail "list -n 1: $(cat "$TMP/out")"
run 0 "$JS" --json schedule list --all -n 1
[[ $(json 'sorted(s["id"] for s in d["schedules"])') == "['nightly', 'tick']" ]] || fail "list --all: $(cat "$TMP/out")"
run 0 "$JS" schedule get nightly
has out "tz: *Europe/Paris"
has out "paused: *yes"

echo "== update changes only the fields given; a new spec moves the next fire"
run 0 "$JS" --json schedule update nightly --spec '30 4 * * *' --overlap forbid --payload '{"items":4,"step":2}'
[[ $(json 'd["schedule"]["spec"]') == "30 4 * * *" && $(json 'd["schedule"]["overlap"]') == forbid &&
  $(json 'd["schedule"]["tz"]') == Europe/Paris && $(json 'd["schedule"]["handler"]') == batch_report &&
  $(json 'd["schedule"]["payload"]') == '{"items":4,"step":2}' ]] || fail "update: $(cat "$TMP/out")"
[[ $(json 'd["schedule"]["next_fire_at"][11:16]') == 03:30 ]] || fail "update: next fire of 04:30 Paris: $(cat "$TMP/out")"
run 0 "$JS" schedule update nightly --handler batch_report
has out "schedule nightly updated (cron 30 4 \* \* \*, Europe/Paris)"
run 1 "$JS" schedule update nightly --spec '30 25 * * *'
has err "invalid_argument"
run 1 "$JS" schedule update no-such-schedule --overlap allow
has err "not_found"

echo "== preview"
run 0 "$JS" --json schedule preview '0 9 * * mon-fri' --tz Europe/Paris --count 3 --from 2026-12-04T12:00:00Z
[[ $(json 'd["next"]') == "['2026-12-07T08:00:00.000Z', '2026-12-08T08:00:00.000Z', '2026-12-09T08:00:00.000Z']" ]] ||
  fail "preview: $(cat "$TMP/out")"
run 0 "$JS" schedule preview --id tick --count 2
has out "#  *FIRE TIME (UTC)  *WHEN"
run 1 "$JS" schedule preview '* * * *'
has err "jetsched: invalid_argument: "

echo "== the cron schedule fires; its tasks succeed"
wait_for 30 bash -c "'$JS' --json list --schedule tick --status succeeded | python3 -c 'import json,sys; sys.exit(0 if len(json.load(sys.stdin)[\"tasks\"]) >= 2 else 1)'" ||
  fail "tick did not fire twice: $("$JS" list --schedule tick 2>&1)"
run 0 "$JS" --json list --schedule tick --status succeeded
id=$(json 'd["tasks"][0]["id"]')
[[ $id == tick-[0-9]* ]] || fail "fired task id $id is not <schedule>-<unix ms>"
run 0 "$JS" --json get "$id"
[[ $(json 'd["task"]["result"]') == "hello, cron" && $(json 'd["task"]["schedule_id"]') == tick ]] || fail "fired task: $(cat "$TMP/out")"
run 0 "$JS" schedule list
grep -q "tick .* ago" "$TMP/out" || fail "last fire not shown: $(cat "$TMP/out")"

echo "== pause stops firing, resume restarts it"
run 0 "$JS" schedule pause tick
has out "schedule tick paused"
sleep 1
n1=$("$JS" --json list --schedule tick --all | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["tasks"]))')
sleep 4
n2=$("$JS" --json list --schedule tick --all | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["tasks"]))')
[[ $n1 == "$n2" ]] || fail "a paused schedule fired ($n1 -> $n2)"
run 0 "$JS" --json schedule resume tick
[[ $(json 'd["schedule"]["paused"]') == False ]] || fail "resume --json: $(cat "$TMP/out")"

echo "== trigger runs once now"
run 0 "$JS" schedule trigger nightly
has out "schedule nightly triggered: task nightly-manual-"
tid=$(sed -n 's/.*task \(nightly-manual-[0-9]*\).*/\1/p' "$TMP/out")
run 0 "$JS" watch "$tid"
run 0 "$JS" --json get "$tid"
[[ $(json 'd["task"]["status"]') == succeeded && $(json 'd["task"]["priority"]') == low ]] || fail "triggered: $(cat "$TMP/out")"

echo "== rm"
run 0 "$JS" schedule rm tick nightly
has out "schedule tick deleted"
has out "schedule nightly deleted"
run 0 "$JS" --json schedule list
[[ $(json 'len(d["schedules"])') == 0 ]] || fail "rm left schedules"
run 0 "$JS" --json get "$id"   # the history of its fires stays

echo "cli_schedule: ok"
