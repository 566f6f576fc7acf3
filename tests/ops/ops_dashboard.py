#!/usr/bin/env python3
"""tests/ops/ops_dashboard.py: every query of deploy/grafana/jetsched.json and
every rule of deploy/prometheus/rules/, evaluated by a real Prometheus
(Debian's `prometheus`) that scrapes a running stack (issue 19).

Run under tests/harness/with-servers --nats --pg. Starts schedulerd s1 and
s2 (stats.interval 1s, stats.count_cap 10; one leads, usually s1) and agentd a1,
puts a little load on them (echo tasks, failing exec tasks that retry and
die, a delayed task, an @every 1s schedule), runs prometheus on a free
loopback port with a temp dir (scrape and rule interval 1 s), then asserts:
  1. every target is up and every recording/alert rule evaluates with health "ok";
  2. every panel query (with $queue = .*) returns data, and none errors;
  3. the leader exports the jetsched_queue_*/jetsched_tasks gauges and the
     follower none of them; tasks by status are capped at stats.count_cap.
"""
import json
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from opsstack import Stack, check, finish, free_port, http_get, metrics, tail  # noqa: E402

AGENT_EXTRA = '''exec = { commands = (
  { name = "fail"; argv = ["/bin/sh", "-c", "echo boom >&2; exit 3"]; }
); };
'''


def prom_query(port, expr):
    """(ok, result list or error text)."""
    status, body = http_get("http://127.0.0.1:%d/api/v1/query?%s" % (port, urllib.parse.urlencode({"query": expr})))
    try:
        d = json.loads(body)
    except ValueError:
        return False, "HTTP %d: %s" % (status, body[:200])
    if d.get("status") != "success":
        return False, "%s: %s" % (d.get("errorType"), d.get("error"))
    return True, d["data"]["result"]


def panel_queries(src):
    dash = json.load(open(os.path.join(src, "deploy", "grafana", "jetsched.json")))
    out = []
    for p in dash["panels"]:
        for t in p.get("targets", []):
            out.append(("%s/%s" % (p["title"], t["refId"]), t["expr"].replace("$queue", ".*")))
    return out


def start_prometheus(st, targets):
    port = free_port()
    pdir = st.path("prometheus")
    os.makedirs(os.path.join(pdir, "rules"))
    src_rules = os.path.join(st.src, "deploy", "prometheus", "rules")
    names = sorted(os.listdir(src_rules))
    for name in names:  # the shipped rules, evaluated every second
        text = open(os.path.join(src_rules, name)).read()
        text = re.sub(r"^(\s*)interval: \S+$", r"\1interval: 1s", text, flags=re.M)
        open(os.path.join(pdir, "rules", name), "w").write(text)
    conf = ["global:", "  scrape_interval: 1s", "  evaluation_interval: 1s", "rule_files:"]
    conf += ["  - rules/%s" % n for n in names]
    conf += ["scrape_configs:"]
    for job, ports in targets.items():
        conf += ["  - job_name: %s" % job, "    static_configs:",
                 "      - targets: [%s]" % ", ".join('"127.0.0.1:%d"' % p for p in ports)]
    open(os.path.join(pdir, "prometheus.yml"), "w").write("\n".join(conf) + "\n")
    log = open(os.path.join(pdir, "prometheus.log"), "wb")
    p = subprocess.Popen(["prometheus", "--config.file=" + os.path.join(pdir, "prometheus.yml"),
                          "--storage.tsdb.path=" + os.path.join(pdir, "data"),
                          "--web.listen-address=127.0.0.1:%d" % port, "--log.level=warn"],
                         stdout=log, stderr=subprocess.STDOUT, cwd=pdir)
    until = time.monotonic() + 30
    while time.monotonic() < until and p.poll() is None:
        if http_get("http://127.0.0.1:%d/-/ready" % port, 1)[0] == 200:
            return p, port
        time.sleep(0.2)
    print(tail(os.path.join(pdir, "prometheus.log")))
    sys.exit("FATAL: prometheus did not become ready")


def submit_load(st, n_echo, n_fail):
    runs = [("-p", ("high", "normal", "low")[i % 3], "echo", '{"n":%d}' % i) for i in range(n_echo)]
    runs += [("--max-attempts", "2", "--backoff", "fixed:1s", "fail", "x")] * n_fail
    for args in runs:
        rc, out, err = st.jetsched("submit", *args)
        if not check(rc == 0, "jetsched submit %s: exit %d %s%s" % (" ".join(args), rc, out, err)):
            finish()


STATS_EXTRA = "stats = { interval = \"1s\"; count_cap = 10; };\n"


def main():
    with Stack("ops_dashboard") as st:
        st.migrate_init(queues=("default",))
        if not (st.start("schedulerd", "s1", extra=STATS_EXTRA)
                and st.start("agentd", "a1", extra=AGENT_EXTRA) and st.start("schedulerd", "s2", extra=STATS_EXTRA)):
            sys.exit("FATAL: the stack did not start")
        rc, out, err = st.jetsched("schedule", "add", "every1s", "@every 1s", "echo", "{}")
        check(rc == 0, "schedule add: %s%s" % (out, err))
        st.jetsched("submit", "--delay", "2s", "echo", "{}")
        submit_load(st, 24, 3)

        prom, pport = start_prometheus(st, {"schedulerd": [st.port("s1"), st.port("s2")], "agentd": [st.port("a1")]})
        try:
            t0 = time.monotonic()
            queries = panel_queries(st.src)
            check(len(queries) >= 25, "only %d panel queries in the dashboard" % len(queries))
            pending = dict(queries)
            errors = {}
            deadline = t0 + 45
            while pending and time.monotonic() < deadline:
                submit_load(st, 3, 0)  # keep rates above zero
                time.sleep(1)
                for name, expr in list(pending.items()):
                    ok, res = prom_query(pport, expr)
                    if not ok:
                        errors[name] = res
                        del pending[name]
                    elif res:
                        del pending[name]
            for name, e in sorted(errors.items()):
                check(False, "panel %s: the query errors: %s" % (name, e))
            for name, expr in sorted(pending.items()):
                check(False, "panel %s: no data after %.0f s: %s" % (name, time.monotonic() - t0, expr))
            print("%d panel queries evaluated, %d with data, in %.1f s"
                  % (len(queries), len(queries) - len(pending) - len(errors), time.monotonic() - t0), flush=True)

            status, body = http_get("http://127.0.0.1:%d/api/v1/targets" % pport)
            targets = json.loads(body)["data"]["activeTargets"]
            check(len(targets) == 3 and all(t["health"] == "up" for t in targets),
                  "targets: %r" % [(t["scrapeUrl"], t["health"], t.get("lastError")) for t in targets])
            status, body = http_get("http://127.0.0.1:%d/api/v1/rules" % pport)
            rules = [r for g in json.loads(body)["data"]["groups"] for r in g["rules"]]
            check(len(rules) >= 20, "only %d rules loaded" % len(rules))
            for r in rules:
                check(r.get("health") == "ok", "rule %s: health %s %s" % (r["name"], r.get("health"), r.get("lastError", "")))
        finally:
            prom.terminate()
            prom.wait(10)

        # Leader only: the leader (s1 usually, started first; either may win
        # the election on a loaded machine, both have the same stats
        # settings) exports the sampled gauges, the follower none of them.
        m1, m2 = metrics(st.port("s1")), metrics(st.port("s2"))
        leaders = [n for n, m in (("s1", m1), ("s2", m2)) if m.get("jetsched_scheduler_is_leader") == 1]
        check(len(leaders) == 1, "exactly one leader among s1, s2: %r" % leaders)
        lead, follow = (m1, m2) if leaders == ["s1"] else (m2, m1)
        fname = "s2" if leaders == ["s1"] else "s1"
        print("leader: %s" % (leaders[0] if leaders else "none"), flush=True)
        leader_only = ("jetsched_queue_depth{", "jetsched_queue_pending{", "jetsched_tasks{", "jetsched_dlq_messages{")
        for prefix in leader_only:
            check(any(k.startswith(prefix) for k in lead), "leader: no %s series" % prefix)
            check(not any(k.startswith(prefix) for k in follow), "follower %s exports %s series" % (fname, prefix))
        check(lead.get('jetsched_tasks{status="succeeded"}') == 10,
              "tasks by status not capped at stats.count_cap 10: %r" % lead.get('jetsched_tasks{status="succeeded"}'))
        check(lead.get('jetsched_dlq_messages{queue="default"}', 0) >= 1, "no dead letter counted in jetsched_dlq_messages")
    finish("dashboard and rules OK against a real Prometheus")


if __name__ == "__main__":
    main()
