#!/usr/bin/env bash
# tests/integration/cli_limits.sh: jetsched limits list|set|get|delete
# (issue 17) against a real schedulerd: the table and --json, a queue
# default, replace, delete; usage errors exit 2, API errors exit 1 naming
# the field or the code.
source "$(dirname "$0")/cli_lib.sh"

cli_setup cl
start_schedulerd sched-l

echo "== set, get, list, delete"
run 0 "$JS" limits set partner-api --rate 10 --burst 10
has out "partner-api"
run 0 "$JS" limits set customer:42 --concurrency 3
run 0 "$JS" limits set --queue cl --concurrency 2
run 0 "$JS" --json limits get customer:42
[[ $(json 'd["limit"]["concurrency"]') == 3 ]] || fail "get: $(cat "$TMP/out")"
run 0 "$JS" limits set customer:42 --concurrency 5 --rate 0.5
run 0 "$JS" --json limits get customer:42
[[ $(json 'd["limit"]["concurrency"], d["limit"]["rate"]') == "(5, 0.5)" ]] || fail "set replaces: $(cat "$TMP/out")"
run 0 "$JS" limits
has out "KEY"
grep -E "^queue cl \(default\) +2 " "$TMP/out" >/dev/null || fail "list: no queue default row: $(cat "$TMP/out")"
grep -E "^partner-api +- +0 +10 +10 +0 " "$TMP/out" >/dev/null || fail "list: partner-api row: $(cat "$TMP/out")"
run 0 "$JS" limits list --json
[[ $(json 'len(d["limits"])') == 3 ]] || fail "list --json: $(cat "$TMP/out")"
run 0 "$JS" limits delete customer:42
has out "limit of key customer:42 deleted"
run 1 "$JS" limits get customer:42
has err "not_found"
run 0 "$JS" limits delete --queue cl

echo "== errors"
run 2 "$JS" limits set
has err "exactly one KEY"
run 2 "$JS" limits set "bad key" --concurrency 1
has err "KEY"
run 2 "$JS" limits set k --concurrency 0
has err "concurrency"
run 2 "$JS" limits set k --rate fast
has err "rate"
run 2 "$JS" limits get k --rate 1
has err "for set only"
run 2 "$JS" limits frobnicate
has err "unknown sub-command"
run 1 "$JS" limits set k
has err "invalid_argument"
run 1 "$JS" limits set k --concurrency 2 --burst 3
has err "burst"
run 0 "$JS" limits --help
has out "Jetsched-Concurrency-Key"
echo "cli_limits: ok"
