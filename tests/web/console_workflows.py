#!/usr/bin/python3
"""tests/web/console_workflows.py: the console's workflow pages (web/js/
page_workflows.js, issue 18) in a real headless Chromium over WebDriver,
against the stack of console_browser.py (nats-server, PostgreSQL, schedulerd
with web.listen, agentd with the exec handler `flaky` that fails until a
file exists).

Asserts, in the browser:
  1. the navigation has Workflows (the server has GET /api/v1/workflows);
  2. a viewer sees a running workflow's page without the Cancel button;
  3. the list shows every workflow with its state; the status filter works;
  4. a diamond whose root fails until a file exists: drawn as SVG in three
     layers (a; b, c; d) with one edge per dependency and the waiting nodes
     marked; when the file appears the root succeeds and every node, the
     counts, the workflow state and the on_complete callback turn
     succeeded on the open page (SSE ?workflow=, no page reload);
  5. a fan-out of 60 in one layer draws 15 nodes and one "more" box, the
     fan-in's edges going to it; narrower boxes at phone width (redrawn on resize);
     a node's task page links back to the workflow;
  6. Cancel (operator, confirmed) cancels a running workflow: its state and
     its waiting node turn cancelled;
  7. nothing SEVERE in the browser console; no page wider than the phone.
Screenshots (1280x800 and 390x844) go to $JETSCHED_BUILD_DIR/web-console-workflows/.

    with-servers --nats --pg -- console_workflows.py
"""
import os
import shutil

from selenium.webdriver.common.by import By

from browser import Browser
from console_browser import OP_TOKEN, VIEW_TOKEN, Stack, console_errors, env, log

FAST = "fixed:300ms"


def main():
    stack = Stack()
    shots = os.path.join(env("JETSCHED_BUILD_DIR"), "web-console-workflows")
    shutil.rmtree(shots, ignore_errors=True)
    os.makedirs(shots)
    b = None
    try:
        stack.up()
        log("stack up: console at " + stack.url)
        # The diamond: its root fails (and is retried every 300 ms) until stack.fixed exists.
        stack.api("POST", "/workflows", {
            "id": "book-42",
            "tasks": [{"id": "a", "handler": "flaky", "max_attempts": 1000, "backoff": FAST},
                      {"id": "b", "handler": "echo", "depends_on": ["a"]},
                      {"id": "c", "handler": "echo", "depends_on": [{"id": "a", "allow_failure": True}]},
                      {"id": "d", "handler": "echo", "depends_on": ["b", "c"]}],
            "on_complete": {"handler": "echo", "payload": "done"}}, want=201)
        # Cancelled later from the console: a root that keeps failing and a waiting child.
        stack.api("POST", "/workflows", {
            "id": "to-cancel",
            "tasks": [{"id": "root", "handler": "flaky", "max_attempts": 1000, "backoff": FAST},
                      {"id": "child", "handler": "echo", "depends_on": ["root"]}]}, want=201)
        # A fan-out of 60 and a fan-in.
        stack.api("POST", "/workflows", {
            "id": "fan-60",
            "tasks": [{"id": "split", "handler": "echo"}] +
                     [{"id": "part-%02d" % i, "handler": "echo", "depends_on": ["split"]} for i in range(60)] +
                     [{"id": "join", "handler": "echo", "depends_on": ["part-%02d" % i for i in range(60)]}]},
                  want=201)

        b = Browser(stack.url, shots, stack.tmp, stack.fail)
        # 1-2. the viewer: Workflows in the navigation, no Cancel button.
        b.d.get(stack.url)
        b.login(VIEW_TOKEN)
        b.one("#overview-cards .card", "the overview after login")
        b.one('#nav a[href="#/workflows"]', "Workflows in the navigation")
        b.go("#/workflow/to-cancel", '#wf-dag g[data-node="child"]')
        b.wait(lambda d: b.attr("#wf-status", "data-status") == "running", "to-cancel running")
        if b.css("#wf-cancel"):
            stack.fail("a viewer sees the Cancel button")
        b.one("#logout").click()
        b.login(OP_TOKEN)
        b.one("#overview-cards .card", "the overview after the operator's login")
        log("viewer: Workflows in the navigation, no Cancel")

        # 3. the list
        b.go("#/workflows", 'tr[data-workflow="fan-60"]')
        b.wait(lambda d: b.attr('tr[data-workflow="fan-60"]', "data-status") == "succeeded", "fan-60 succeeded in the list")
        for w in ("book-42", "to-cancel"):
            if b.attr('tr[data-workflow="%s"]' % w, "data-status") != "running":
                stack.fail("list: %s is not running: %r" % (w, b.text("#wf-table")))
        b.shot("workflows-1280x800")
        b.shot("workflows-phone", 390, 844)
        b.go("#/workflows?status=succeeded", "#wf-table tbody tr")
        b.wait(lambda d: len(b.css("#wf-table tbody tr[data-workflow]")) == 1, "one succeeded workflow in the filtered list")
        log("list and filter")

        # 4. the diamond, live
        b.go("#/workflow/book-42", '#wf-dag g[data-node="d"]')
        b.wait(lambda d: b.attr('#wf-dag g[data-node="a"]', "data-status") in ("running", "retrying"), "node a retrying")
        geo = b.d.execute_script("""
            var out = {};
            document.querySelectorAll('#wf-dag g[data-node]').forEach(function (g) {
              var m = /translate\\(([\\d.]+),([\\d.]+)\\)/.exec(g.getAttribute('transform'));
              out[g.dataset.node] = [+m[1], +m[2]];
            });
            out.edges = Array.from(document.querySelectorAll('#wf-dag path.edge')).map(function (p) {
              return p.dataset.from + '>' + p.dataset.to + (p.classList.contains('may-fail') ? '?' : ''); }).sort();
            return out;""")
        if not (geo["a"][0] < geo["b"][0] == geo["c"][0] < geo["d"][0]):
            stack.fail("the diamond is not in three columns a | b c | d: %r" % geo)
        if geo["edges"] != ["a>b", "a>c?", "b>d", "c>d"]:
            stack.fail("edges: %r" % geo["edges"])
        for n in ("b", "c", "d"):
            if b.attr('#wf-dag g[data-node="%s"]' % n, "data-status") != "waiting":
                stack.fail("node %s is not waiting" % n)
        if b.attr('#wf-counts li[data-state="waiting"]', "data-count") != "3":
            stack.fail("counts: %r" % b.text("#wf-counts"))
        b.one('#wf-callbacks li[data-kind="on_complete"]', "the on_complete callback")
        b.wait(lambda d: d.execute_script("return document.documentElement.dataset.sse") == "open", "the event stream open")
        b.shot("workflow-waiting-1280x800")
        b.shot("workflow-waiting-phone", 390, 844)
        b.d.execute_script("window.__same_page = 1;")
        open(stack.fixed, "w").close()
        b.wait(lambda d: b.attr('#wf-dag g[data-node="d"]', "data-status") == "succeeded", "node d succeeded live", 30)
        b.wait(lambda d: b.attr("#wf-status", "data-status") == "succeeded", "the workflow succeeded live", 15)
        b.wait(lambda d: b.attr('#wf-callbacks li[data-kind="on_complete"]', "data-status") == "succeeded",
               "on_complete succeeded live", 15)
        if b.d.execute_script("return window.__same_page") != 1:
            stack.fail("the page was reloaded")
        if b.attr('#wf-counts li[data-state="succeeded"]', "data-count") != "4":
            stack.fail("counts after: %r" % b.text("#wf-counts"))
        if b.attr('#wf-nodes tr[data-node="b"]', "data-status") != "succeeded":
            stack.fail("the node table's row b: %r" % b.text('#wf-nodes tr[data-node="b"]'))
        if b.css("#wf-cancel"):
            stack.fail("Cancel shown on an ended workflow")
        b.shot("workflow-succeeded-1280x800")
        # a node's task page links back to its workflow (task.get's workflow_id)
        b.d.find_element(By.CSS_SELECTOR, '#wf-nodes tr[data-node="b"] a').click()
        b.one("#task-workflow", "the task page's workflow link").click()
        b.one('#wf-dag g[data-node="b"]', "back on the workflow page")
        log("diamond drawn in layers, turned succeeded live")

        # 5. a wide layer
        b.go("#/workflow/fan-60", '#wf-dag g[data-node="join"]')
        shown = len(b.css('#wf-dag g[data-node^="part-"]'))
        more = b.attr("#wf-dag g[data-more]", "data-more")
        if shown != 15 or more != "45":
            stack.fail("the layer of 60: %d nodes drawn, more box %r" % (shown, more))
        into_join = b.d.execute_script("return document.querySelectorAll('#wf-dag path.edge[data-to=\"join\"]').length")
        if into_join != 16:
            stack.fail("edges into join: %d (15 nodes and the more box expected)" % into_join)
        b.shot("workflow-fan-1280x800")
        # at phone width the graph is drawn again with narrower boxes, and back
        b.size(390, 844)
        b.wait(lambda d: b.attr('#wf-dag g[data-node="split"] rect', "width") == "128", "narrow boxes at phone width")
        b.size(1280, 800)
        b.wait(lambda d: b.attr('#wf-dag g[data-node="split"] rect', "width") == "168", "wide boxes again")
        b.shot("workflow-fan-phone", 390, 844)
        log("a layer of 60: 15 drawn and a box of 45")

        # 6. cancel (the root keeps succeeding now that the file exists: use a new one)
        os.unlink(stack.fixed)
        stack.api("POST", "/workflows", {
            "id": "to-cancel-2",
            "tasks": [{"id": "root", "handler": "flaky", "max_attempts": 1000, "backoff": FAST},
                      {"id": "child", "handler": "echo", "depends_on": ["root"]}]}, want=201)
        b.go("#/workflow/to-cancel-2", "#wf-cancel")
        b.one("#wf-cancel").click()
        b.wait(lambda d: d.switch_to.alert, "the confirmation")
        b.d.switch_to.alert.accept()
        b.wait(lambda d: b.attr("#wf-status", "data-status") == "cancelled", "the workflow cancelled")
        b.wait(lambda d: b.attr('#wf-dag g[data-node="child"]', "data-status") == "cancelled", "child cancelled")
        # the counts come with the reload that follows the live events
        b.wait(lambda d: b.attr('#wf-counts li[data-state="cancelled"]', "data-count") == "2", "both nodes counted cancelled")
        if "cancelled" not in b.text("#flash"):
            stack.fail("no message after cancel: %r" % b.text("#flash"))
        b.shot("workflow-cancelled-1280x800")
        _, d = stack.api("GET", "/workflows/to-cancel-2", want=200)
        if d["workflow"]["status"] != "cancelled":
            stack.fail("the API says %r after the console's cancel" % d["workflow"]["status"])
        log("cancelled from the console")

        if b.too_wide:
            stack.fail("pages wider than the phone: %r" % b.too_wide)
        bad = console_errors(b, {("/api/v1/session", 401)})
        if bad:
            stack.fail("browser console errors: %r" % bad[:5])
    finally:
        if b:
            b.quit()
        stack.down()
    log("OK: screenshots in " + shots)


if __name__ == "__main__":
    main()
