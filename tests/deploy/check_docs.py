#!/usr/bin/env python3
"""tests/deploy/check_docs.py: docs/OPERATIONS.md names only real metrics.

    check_docs.py SOURCE_DIR

Every jetsched_* metric in the page (alerts, PromQL, tables; histogram
series with _bucket/_sum/_count) must be registered by the code
(jet_metric_counter/histogram/gauge/gauge_fn in agentd/, scheduler/,
common/, cli/), and every label in a `metric{label...}` selector or a
`by (...)` next to it must be one of that metric's labels.
"""
import glob
import os
import re
import sys

from deploytest import check, finish

NOT_METRICS = {"jetsched_agents", "jetsched_leader", "jetsched_cancel", "jetsched_checkpoints", "jetsched_control",  # KV buckets
               "jetsched_workflow"}  # the NOTIFY channel of the workflow releaser


def registered(src):
    metrics = {}
    for path in glob.glob(os.path.join(src, "*", "**", "*.c"), recursive=True):
        if not re.match(r"(agentd|scheduler|common|cli)/", os.path.relpath(path, src)):
            continue
        text = open(path, errors="replace").read()
        for m in re.finditer(r'jet_metric_(counter|histogram|gauge_fn|gauge)\(\s*"(jetsched_\w+)"\s*,\s*"(?:[^"\\]|\\.)*"(?:\s*"(?:[^"\\]|\\.)*")*\s*,\s*'
                             r'(?:"([^"]*)"|NULL|\w+)', text):
            labels = set(filter(None, (m.group(3) or "").split(",")))
            metrics[m.group(2)] = (m.group(1), labels)
    return metrics


def main():
    src = os.path.abspath(sys.argv[1])
    metrics = registered(src)
    check(len(metrics) >= 15, "found only %d registered metrics in the code: %r" % (len(metrics), sorted(metrics)))
    doc = open(os.path.join(src, "docs", "OPERATIONS.md")).read()
    used = 0
    for m in re.finditer(r"\bjetsched_[a-z_]+[a-z]\b", doc):
        name = m.group(0)
        if name in NOT_METRICS:
            continue
        base = re.sub(r"_(bucket|sum|count)$", "", name)
        if base not in metrics:
            check(False, "docs/OPERATIONS.md: %s is not a metric the code registers" % name)
            continue
        kind, labels = metrics[base]
        check(base == name or kind == "histogram", "docs/OPERATIONS.md: %s on a %s" % (name, kind))
        used += 1
        after = doc[m.end():m.end() + 200]
        sel = re.match(r"\{([^}]*)\}", after)
        names = set(re.findall(r"(\w+)\s*(?:=~|!~|!=|=)", sel.group(1))) if sel else set()
        # `sum by (x, y) (rate(metric...` : the grouping just before the metric.
        before = doc[max(0, m.start() - 80):m.start()]
        by = re.search(r"by \(([^)]*)\)\s*\((?:\w+\()*$", before)
        if by:
            names |= {x.strip() for x in by.group(1).split(",")} - {"le"}
        bad = names - labels - {"job", "instance"}
        check(not bad, "docs/OPERATIONS.md: %s has no label(s) %s (labels: %s)" % (name, sorted(bad), sorted(labels)))
    check(used >= 10, "docs/OPERATIONS.md mentions only %d metrics" % used)
    finish("OK: %d metric mentions checked against %d registered metrics" % (used, len(metrics)))


if __name__ == "__main__":
    main()
