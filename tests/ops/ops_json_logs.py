#!/usr/bin/env python3
"""tests/ops/ops_json_logs.py: log.format = "json" as a log shipper reads it
(issue 19).

Run under tests/harness/with-servers --nats --pg. schedulerd and agentd run
with log.format = json and log.level = debug, configured with secrets: a
NATS password (nats.password for schedulerd, user info in nats.url for
agentd: the harness's server has no auth and ignores them) and a PostgreSQL
password in postgres.dsn (trust auth ignores it). They go through start,
work (a Lua task that logs, a traced task, a task that dies, a cron
schedule), a fault (nats-server restart, PostgreSQL restart) and SIGTERM.
Then every line of both logs must be one JSON object with `time` (RFC 3339
UTC), `level`, `component` (the daemon) and `msg`; lines about a task run by
a worker carry `task_id` (and `trace_id` for a task with a traceparent); both
daemons exit 0; and no line holds any of the secrets.
"""
import json
import os
import re
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from opsstack import Stack, check, env, finish, tail  # noqa: E402

TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
LEVELS = {"debug", "info", "warn", "error"}
TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"


def ctl(*args):
    subprocess.run([os.path.join(env("JETSCHED_TEST_HARNESS"), "ctl")] + list(args), check=True,
                   stdout=subprocess.DEVNULL)


def main():
    pid = os.getpid()
    secrets = {"nats.password": "natsPw-%d-Zq" % pid, "nats.url user info": "urlPw-%d-Xk" % pid,
               "postgres.dsn password": "pgPw-%d-Wj" % pid}
    st = Stack("ops_json_logs")
    plain_url, plain_dsn = st.nats_url, st.dsn
    log = 'format = "json"; level = "debug";'
    dsn = plain_dsn + " password=" + secrets["postgres.dsn password"]
    with st:
        st.migrate_init(queues=("default",))
        st.dsn = dsn
        ok = st.start("schedulerd", "s1", log_extra=log,
                      nats_extra='user = "sched"; password = "%s";' % secrets["nats.password"])
        st.nats_url = plain_url.replace("nats://", "nats://agent:%s@" % secrets["nats.url user info"])
        ok = ok and st.start("agentd", "a1", log_extra=log, extra='''exec = { commands = (
  { name = "fail"; argv = ["/bin/sh", "-c", "echo boom >&2; exit 3"]; }
); };
''')
        st.nats_url, st.dsn = plain_url, plain_dsn
        if not check(ok, "daemons did not start with JSON logs"):
            finish()
        # Work.
        runs = [("--wait", "--id", "json-hello", "hello", "Ada"),
                ("--wait", "--id", "json-traced", "-H", "traceparent:00-%s-00f067aa0ba902b7-01" % TRACE, "hello", "Bo"),
                ("--wait", "--id", "json-dead", "--max-attempts", "1", "fail", "x")]
        for args in runs:
            rc, out, err = st.jetsched("submit", "--wait-timeout", "20s", *args)
            check(rc in (0, 1), "submit %s: exit %d %s%s" % (args, rc, out, err))
        rc, out, err = st.jetsched("schedule", "add", "json-every", "@every 1s", "echo", "{}")
        check(rc == 0, "schedule add: %s%s" % (out, err))
        time.sleep(2)
        # Faults: NATS and PostgreSQL restart under both daemons.
        ctl("nats", "restart")
        ctl("pg", "restart")
        until = time.monotonic() + 30
        while time.monotonic() < until and not (st.wait_ready("s1", 1) and st.wait_ready("a1", 1)):
            pass
        rc, out, err = st.jetsched("submit", "--wait", "--wait-timeout", "20s", "--id", "json-after", "hello", "Cy")
        check(rc == 0, "submit after the faults: %s%s" % (out, err))
        st.jetsched("schedule", "rm", "json-every")
        codes = {i: st.stop(i) for i in ("a1", "s1")}
        check(codes == {"a1": 0, "s1": 0}, "daemons did not stop with exit 0: %r" % codes)

        # Every line parsed; fields; task and trace ids; no secret.
        seen_task, seen_trace, levels = set(), set(), set()
        for ident, component in (("s1", "schedulerd"), ("a1", "agentd")):
            text = open(st.log(ident), errors="replace").read()
            for what, secret in secrets.items():
                for n, line in enumerate(text.splitlines(), 1):
                    check(secret not in line, "%s log line %d holds the %s: %s" % (component, n, what, line))
            lines = text.splitlines()
            check(len(lines) >= 10, "%s wrote only %d log lines" % (component, len(lines)))
            msgs = []
            for n, line in enumerate(lines, 1):
                try:
                    o = json.loads(line)
                except ValueError as e:
                    check(False, "%s log line %d is not JSON (%s): %r" % (component, n, e, line[:200]))
                    continue
                if not check(isinstance(o, dict), "%s log line %d is not an object" % (component, n)):
                    continue
                check(TIME.match(str(o.get("time", ""))), "%s line %d: time %r" % (component, n, o.get("time")))
                check(o.get("level") in LEVELS, "%s line %d: level %r" % (component, n, o.get("level")))
                check(o.get("component") == component, "%s line %d: component %r" % (component, n, o.get("component")))
                check(isinstance(o.get("msg"), str) and o["msg"], "%s line %d: msg %r" % (component, n, o.get("msg")))
                extra = set(o) - {"time", "level", "component", "msg", "task_id", "trace_id"}
                check(not extra, "%s line %d: unknown fields %s" % (component, n, sorted(extra)))
                levels.add(o.get("level"))
                msgs.append(o.get("msg", ""))
                if "task_id" in o:
                    seen_task.add(o["task_id"])
                if "trace_id" in o:
                    seen_trace.add((o.get("task_id"), o["trace_id"]))
            print("%s: %d JSON lines parsed" % (component, len(lines)), flush=True)
            joined = "\n".join(msgs)
            check("disconnected" in joined or "reconnect" in joined,
                  "%s logged nothing about the NATS restart:\n%s" % (component, tail(st.log(ident), 10)))
        for t in ("json-hello", "json-traced", "json-dead"):
            check(t in seen_task, "no agentd line carries task_id %s (seen: %s)" % (t, sorted(seen_task)[:10]))
        check(("json-traced", TRACE) in seen_trace, "no line of json-traced carries trace_id %s: %r" % (TRACE, seen_trace))
        check(not any(t == "json-hello" for t, _ in seen_trace), "json-hello (no traceparent) has a trace_id")
        print("task ids on lines: %s; trace ids: %s" % (sorted(seen_task), sorted(seen_trace)), flush=True)
        check({"info", "debug"} <= levels, "levels seen: %s" % sorted(levels))
    finish("JSON logs OK")


if __name__ == "__main__":
    main()
