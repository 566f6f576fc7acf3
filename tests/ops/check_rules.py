#!/usr/bin/env python3
"""tests/ops/check_rules.py: deploy/prometheus/ and deploy/grafana/ without
servers (issue 19).

    check_rules.py SOURCE_DIR

1. promtool check config / check rules accept the files;
2. promtool test rules passes, and every alert of the rule files has a test
   case that expects it to fire (and one that expects silence);
3. every alert's runbook_url names a heading of docs/OPERATIONS.md;
4. every jetsched_* metric named by a rule or a dashboard query is one the
   code registers (tests/deploy/check_docs.py's scan of the sources).
The dashboard's queries are evaluated against a real Prometheus by
ops_dashboard.py.
"""
import glob
import json
import os
import re
import subprocess
import sys

import yaml

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "deploy"))
from check_docs import registered  # noqa: E402
from deploytest import check, finish  # noqa: E402


def anchor(heading):
    """GitHub's anchor of a Markdown heading."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def promtool(*args):
    p = subprocess.run(["promtool"] + list(args), capture_output=True, text=True)
    check(p.returncode == 0, "promtool %s: exit %d\n%s%s" % (" ".join(args), p.returncode, p.stdout, p.stderr))
    return p


def metric_names(expr):
    return {re.sub(r"_(bucket|sum|count)$", "", m) for m in re.findall(r"\bjetsched_[a-z_]+[a-z]\b", expr)}


def main():
    src = os.path.abspath(sys.argv[1])
    prom = os.path.join(src, "deploy", "prometheus")
    rule_files = sorted(glob.glob(os.path.join(prom, "rules", "*.yml")))
    check(len(rule_files) == 2, "expected the recording and alert rule files, found %r" % rule_files)
    promtool("check", "config", os.path.join(prom, "prometheus.yml"))
    promtool("check", "rules", *rule_files)
    tests = sorted(glob.glob(os.path.join(prom, "tests", "*.test.yml")))
    check(tests, "no promtool test files in deploy/prometheus/tests")
    for t in tests:
        promtool("test", "rules", t)

    alerts, exprs = {}, []
    for f in rule_files:
        for g in yaml.safe_load(open(f))["groups"]:
            for r in g["rules"]:
                exprs.append((os.path.basename(f), r.get("alert") or r.get("record"), r["expr"]))
                if "alert" in r:
                    alerts[r["alert"]] = r
    fired, silent = set(), set()
    for t in tests:
        for case in yaml.safe_load(open(t))["tests"]:
            for a in case.get("alert_rule_test", []):
                (fired if a.get("exp_alerts") else silent).add(a["alertname"])
    required = {"JetschedTaskFailureRatio", "JetschedDeadLettersGrowing", "JetschedQueueLag", "JetschedNoLeader",
                "JetschedLeaderFlapping", "JetschedAgentDown", "JetschedHistoryBacklog", "JetschedFireLag",
                "JetschedNatsDisconnected"}
    check(not required - set(alerts), "alerts the issue asks for are missing: %s" % sorted(required - set(alerts)))
    for name in sorted(alerts):
        check(name in fired, "alert %s has no promtool test case that expects it to fire" % name)
        check(name in silent, "alert %s has no promtool test case that expects silence" % name)

    ops = open(os.path.join(src, "docs", "OPERATIONS.md")).read()
    anchors = {anchor(h) for h in re.findall(r"^#+ (.*)$", ops, re.M)}
    for name, r in sorted(alerts.items()):
        url = r.get("annotations", {}).get("runbook_url", "")
        m = re.fullmatch(r"docs/OPERATIONS\.md#([\w-]+)", url)
        check(m and m.group(1) in anchors, "alert %s: runbook_url %r is not a heading of docs/OPERATIONS.md" % (name, url))
        check(re.search(r"\b%s\b" % name, ops), "docs/OPERATIONS.md does not mention alert %s" % name)

    code = registered(src)
    for f, name, expr in exprs:
        for m in metric_names(expr) - set(code):
            check(False, "%s: %s uses %s, which the code does not register" % (f, name, m))
    dash = json.load(open(os.path.join(src, "deploy", "grafana", "jetsched.json")))
    records = {r for _, r, _ in exprs}
    for p in dash["panels"]:
        for t in p.get("targets", []):
            for m in metric_names(t["expr"]) - set(code):
                check(False, "dashboard panel %r uses %s, which the code does not register" % (p["title"], m))
            for m in set(re.findall(r"\bjetsched:[a-z0-9_:]+", t["expr"])) - records:
                check(False, "dashboard panel %r uses %s, which no recording rule defines" % (p["title"], m))
    finish("rules, tests, runbooks and dashboard metrics OK (%d alerts)" % len(alerts))


if __name__ == "__main__":
    main()
