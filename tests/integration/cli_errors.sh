#!/usr/bin/env bash
# tests/integration/cli_errors.sh: the exit codes of every jetsched verb.
# --help (0, with examples), bad flags and arguments (2, with the usage),
# unknown ids (1, the API's error printed as "jetsched: <code>: <message>"),
# NATS down (3), NATS up but no schedulerd answering (3), PostgreSQL down
# behind a running schedulerd (3, "unavailable").
source "$(dirname "$0")/cli_lib.sh"

verbs=(init migrate submit get list cancel watch agents leader queues
  "schedule add" "schedule update" "schedule list" "schedule get" "schedule preview" "schedule pause" "schedule resume"
  "schedule trigger" "schedule rm" "dlq list" "dlq show" "dlq replay" "dlq purge"
  "workflow submit" "workflow add" "workflow get" "workflow list" "workflow cancel")

echo "== --help on every verb: exit 0, usage and examples on stdout"
run 0 "$JS" --help
has out "Exit codes: 0 ok, 1 the operation failed, 2 usage error, 3 service unavailable"
for v in "${verbs[@]}"; do
  # shellcheck disable=SC2086
  run 0 "$JS" $v --help
  has out "Usage: jetsched ${v%% *}"
  grep -qi "example" "$TMP/out" || fail "$v --help has no example"
  grep -q "Exit codes" "$TMP/out" || fail "$v --help has no exit codes"
done
run 0 "$JS" schedule --help
run 0 "$JS" dlq --help

echo "== the man page renders without warnings and covers every verb"
man1=$JETSCHED_SOURCE_DIR/docs/jetsched.1
warn=$(groff -man -ww -z "$man1" 2>&1) || fail "groff failed: $warn"
[[ -z $warn ]] || fail "groff warnings in docs/jetsched.1: $warn"
MANWIDTH=100 man -l "$man1" >"$TMP/man" 2>&1 || fail "man -l docs/jetsched.1 failed"
for v in "${verbs[@]}"; do grep -q "^ *${v%% *}" "$TMP/man" || fail "the man page lacks $v"; done
grep -q "EXIT STATUS" "$TMP/man" || fail "the man page lacks EXIT STATUS"

echo "== bad flags and arguments: exit 2 with the usage on stderr"
for v in "${verbs[@]}"; do
  # shellcheck disable=SC2086
  run 2 "$JS" $v --no-such-flag
  has err "Usage: jetsched ${v%% *}"
done
run 2 "$JS" submit --bogus echo x
has err 'jetsched submit: unknown option "--bogus"'
run 2 "$JS" schedule add --tz
has err "jetsched schedule add: option --tz needs a value"
run 2 "$JS" submit --wait=yes echo x
has err "option --wait takes no value"
run 2 "$JS" list --stat
has err "option --status needs a value"
run 2 "$JS"
run 2 "$JS" no-such-verb
has err 'unknown verb "no-such-verb"'
run 2 "$JS" schedule
has err "missing sub-command"
run 2 "$JS" schedule frobnicate
has err 'unknown sub-command "frobnicate"'
run 2 "$JS" dlq frobnicate
run 2 "$JS" --request-timeout soon get x
has err "request-timeout"
run 2 "$JS" submit
has err "missing HANDLER"
run 2 "$JS" submit -p urgent echo x
has err 'priority "urgent": one of high, normal, low'
run 2 "$JS" submit -q 'Bad Queue' echo x
run 2 "$JS" submit --delay forever echo x
has err 'delay "forever"'
run 2 "$JS" submit --at tomorrow echo x
has err "RFC 3339"
run 2 "$JS" submit --at 2030-01-01T00:00:00Z --delay 1m echo x
has err "exclude each other"
run 2 "$JS" submit --max-attempts 0 echo x
run 2 "$JS" submit -H novalue echo x
has err "Name:Value"
run 2 "$JS" submit --id 'bad id!' echo x
run 2 "$JS" submit echo a b
has err "quote the payload"
run 2 "$JS" submit --from-file x --wait
run 2 "$JS" get
has err "missing TASK_ID"
run 2 "$JS" get a b
has err 'unexpected argument "b"'
run 2 "$JS" list --limit 0
run 2 "$JS" list --since yesterday
run 2 "$JS" cancel
run 2 "$JS" watch --count x
run 2 "$JS" watch a b
run 2 "$JS" schedule add only-id
has err "needs ID SPEC HANDLER"
run 2 "$JS" schedule update
has err "schedule update needs ID"
run 2 "$JS" schedule update x '* * * * *'
has err "update takes ID, then options"
run 2 "$JS" schedule add x '* * * * *' hello --spec '@daily'
has err "options of update"
run 2 "$JS" schedule preview
run 2 "$JS" schedule preview --count 1000 '* * * * *'
run 2 "$JS" dlq show notanumber
has err 'SEQ "notanumber"'
run 2 "$JS" dlq replay
has err "needs SEQ... or --all"
run 2 "$JS" dlq replay 1 --all
run 2 "$JS" dlq purge --queue default 3
run 2 "$JS" queues --interval never
run 1 "$JS" submit echo @"$TMP/no-such-file"
has err "cannot open payload file"

echo "== NATS down: exit 3 for every verb that talks to it"
dead=nats://127.0.0.1:$(free_port)
for v in "get x" "list" "cancel x" "submit echo x" "submit --wait echo x" "watch x" "agents" "leader" "queues"; do
  # shellcheck disable=SC2086
  JETSCHED_NATS_URL=$dead run 3 "$JS" $v
  has err "jetsched: unavailable: cannot reach NATS at $dead (nats.url)"
done
JETSCHED_NATS_URL=$dead run 3 "$JS" --json schedule list
[[ $(json 'd["error"]["code"]') == unavailable ]] || fail "--json error body: $(cat "$TMP/out")"
run 3 "$JS" -s "$dead" dlq list
JETSCHED_NATS_URL=$dead run 3 "$JS" init

echo "== NATS up, no schedulerd: exit 3 (no responders), not a hang"
cli_setup default
run 0 "$JS" init --json   # --json after the verb, for init and migrate too
[[ $(json 'all(o["outcome"] == "unchanged" for o in d["objects"])') == True ]] || fail "init --json: $(cat "$TMP/out")"
run 0 "$JS" migrate --status --json
[[ $(json 'd["pending"]') == 0 ]] || fail "migrate --json: $(cat "$TMP/out")"
start=$(date +%s)
run 3 "$JS" get x
has err "jetsched: unavailable: no schedulerd serves jetsched.api.task.get (is schedulerd running?)"
run 3 "$JS" submit echo x
run 3 "$JS" --json schedule list
[[ $(json 'd["error"]["code"]') == unavailable ]] || fail "--json: $(cat "$TMP/out")"
(($(date +%s) - start < 20)) || fail "no-responder errors took $(($(date +%s) - start)) s"

echo "== with schedulerd: unknown ids exit 1 with the API error"
start_schedulerd sched-a
run 1 "$JS" get no-such-task
has err 'jetsched: not_found: task no-such-task not found'
run 1 "$JS" --json get no-such-task
[[ $(json 'd["error"]["code"]') == not_found && $(json 'd["error"]["field"]') == id ]] || fail "--json not_found: $(cat "$TMP/out")"
run 1 "$JS" cancel no-such-task
has err "jetsched: not_found: "
run 1 "$JS" submit echo x --backoff sometimes
has err "jetsched: invalid_argument: .*backoff"
run 1 "$JS" list --status bogus
has err "jetsched: invalid_argument: "

echo "== arguments that are not UTF-8: refused naming the field, never dropped"
bad=$(printf 'a\xffb')
# --tz with a bad byte was dropped from the request: a UTC schedule was created.
run 1 "$JS" schedule add nonutf '0 3 * * *' echo --tz "Europe/$bad"
has err 'jetsched: invalid_argument: time zone .*(field "tz")'
run 1 "$JS" schedule get nonutf
has err "jetsched: not_found: "
# --cursor with a bad byte was dropped: the first page was listed.
run 1 "$JS" list --cursor "$bad"
has err "jetsched: invalid_argument: cursor"
# An id with a bad byte was answered 'field "id" is required'.
run 1 "$JS" get "$bad"
has err 'jetsched: invalid_argument: id .* is not a valid task id'
run 1 "$JS" schedule pause "$bad"
has err 'jetsched: invalid_argument: id .* is not a valid name'
run 2 "$JS" submit echo -H "X-A: $bad"
has err 'valid UTF-8'

echo "== PostgreSQL down behind schedulerd: exit 3"
"$JETSCHED_TEST_HARNESS/ctl" pg stop
wait_for 20 bash -c "'$JS' get x; [ \$? = 3 ]" || { "$JS" get x; fail "get with PostgreSQL down did not exit 3"; }
run 3 "$JS" get x
has err "jetsched: unavailable: "
"$JETSCHED_TEST_HARNESS/ctl" pg start
wait_for 30 bash -c "'$JS' get x; [ \$? = 1 ]" || fail "schedulerd did not recover after PostgreSQL came back"

echo "cli_errors: ok"
