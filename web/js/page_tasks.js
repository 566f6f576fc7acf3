/* web/js/page_tasks.js: the task list (filters status/queue/handler/schedule,
 * id search, keyset pages, live status changes over SSE) and the task
 * detail (payload, result, error, every attempt, trace id, cancel, replay). */
"use strict";
var JS = window.JS || (window.JS = {});
JS.pages = JS.pages || {};

JS.STATUSES = ["scheduled", "queued", "running", "retrying", "succeeded", "dead", "expired", "cancelled", "duplicate", "skipped"];
JS.TERMINAL = { succeeded: 1, dead: 1, expired: 1, cancelled: 1, duplicate: 1, skipped: 1 };

JS.pages.tasks = function (ctx) {
  var q = ctx.query, main = ctx.main;
  var f = {
    status: JS.select({ name: "status", id: "f-status" }, [["", "any"]].concat(JS.STATUSES), q.status || ""),
    queue: JS.h("input#f-queue", { name: "queue", value: q.queue || "", placeholder: "any", size: 10, spellcheck: "false" }),
    handler: JS.h("input#f-handler", { name: "handler", value: q.handler || "", placeholder: "any", size: 10, spellcheck: "false" }),
    schedule: JS.h("input#f-schedule", { name: "schedule", value: q.schedule || "", placeholder: "any", size: 10, spellcheck: "false" })
  };
  var idBox = JS.h("input#task-search", { type: "search", name: "id", placeholder: "task id", spellcheck: "false", "aria-label": "task id" });
  main.appendChild(JS.h("h1", "Tasks"));
  main.appendChild(JS.h("div.toolbar",
    JS.h("form.filters#task-filters", { onsubmit: function (ev) {
      ev.preventDefault();
      JS.go("#/tasks" + JS.qs({ status: f.status.value, queue: f.queue.value.trim(), handler: f.handler.value.trim(), schedule: f.schedule.value.trim() }));
    } }, JS.field("Status", f.status), JS.field("Queue", f.queue), JS.field("Handler", f.handler), JS.field("Schedule", f.schedule),
      JS.h("button", { type: "submit" }, "Filter"),
      (q.status || q.queue || q.handler || q.schedule) ? JS.link("#/tasks", "clear", { class: "clear" }) : null),
    JS.h("form.search", { role: "search", onsubmit: function (ev) {
      ev.preventDefault();
      var id = idBox.value.trim();
      if (id) JS.go("#/task/" + encodeURIComponent(id));
    } }, idBox, JS.h("button", { type: "submit" }, "Open"))));
  f.status.addEventListener("change", function () { f.status.form.requestSubmit(); });

  var news = JS.h("button.news#tasks-new", { type: "button", hidden: true, onclick: function () { cursors = [null]; load(); } });
  var table = JS.h("div#task-table");
  var pager = JS.h("div.pager");
  main.appendChild(news);
  main.appendChild(table);
  main.appendChild(pager);

  var cursors = [null], rows = {}, unseen = {};
  function load() {
    var cur = cursors[cursors.length - 1];
    news.hidden = true; unseen = {};
    return JS.api.call("task.list", { status: q.status, queue: q.queue, handler: q.handler, schedule: q.schedule, cursor: cur, limit: 50 })
      .then(function (d) {
        JS.clear(table); JS.clear(pager); rows = {};
        var body = JS.h("tbody");
        (d.tasks || []).forEach(function (t) { body.appendChild(row(t)); });
        if (!(d.tasks || []).length) body.appendChild(JS.h("tr", JS.h("td.muted", { colspan: 8 }, "No task matches.")));
        table.appendChild(JS.h("div.scroll", JS.h("table.grid.tasks",
          JS.h("thead", JS.h("tr", ["Task", "Queue", "Handler", "Status", "Tries", "Created", "Agent", "Error"].map(function (c, i) {
            return JS.h(i === 1 || i === 6 ? "th.opt" : "th", { scope: "col" }, c);
          }))), body)));
        if (cursors.length > 1) pager.appendChild(JS.h("button", { type: "button", onclick: function () { cursors.pop(); load(); } }, "← Newer"));
        pager.appendChild(JS.h("span.muted", "page " + cursors.length));
        if (d.next_cursor) pager.appendChild(JS.h("button#tasks-older", { type: "button", onclick: function () { cursors.push(d.next_cursor); load(); } }, "Older →"));
      }, function (e) { JS.clear(table); JS.showError(table, e); });
  }

  function row(t) {
    var tr = JS.h("tr", { "data-task": t.id, "data-status": t.status },
      JS.h("td.id", JS.link("#/task/" + encodeURIComponent(t.id), t.id)),
      JS.h("td.opt", t.queue),
      JS.h("td", t.handler || "-"),
      JS.h("td.status", JS.status(t.status)),
      JS.h("td.num.tries", { "data-max": t.max_attempts || "" }, String(t.attempts) + (t.max_attempts ? "/" + t.max_attempts : "")),
      JS.h("td.nowrap", JS.when(t.created_at)),
      JS.h("td.opt.agent", t.agent || "-"),
      JS.h("td.err", { title: t.error || "" }, t.error || ""));
    rows[t.id] = tr;
    return tr;
  }

  /* Live: rows on this page change in place; other tasks count as "new". */
  ctx.events({ queue: q.queue }, function (ev) {
    var tr = rows[ev.id];
    if (tr) {
      tr.dataset.status = ev.status;
      JS.clear(tr.querySelector(".status")).appendChild(JS.status(ev.status));
      var tries = tr.querySelector(".tries");
      if (ev.attempt) tries.textContent = String(ev.attempt) + (tries.dataset.max ? "/" + tries.dataset.max : "");
      if (ev.agent) JS.clear(tr.querySelector(".agent")).appendChild(document.createTextNode(ev.agent));
      if (ev.error) { var e = tr.querySelector(".err"); JS.clear(e).appendChild(document.createTextNode(ev.error)); e.title = ev.error; }
      tr.classList.remove("flashrow"); void tr.offsetWidth; tr.classList.add("flashrow");
    } else if (cursors.length === 1) {
      unseen[ev.id] = 1;
      var n = Object.keys(unseen).length;
      news.hidden = false;
      JS.clear(news).appendChild(document.createTextNode(n + " new or changed task" + (n === 1 ? "" : "s") + ": show"));
    }
  });
  return load();
};

/* ---- one task ---- */

/* The dead letter of a task (seq), searched in the DLQ of its queue. */
JS.findDeadLetter = function (taskId, queue) {
  function page(cursor, n) {
    return JS.api.call("dlq.list", { queue: queue, cursor: cursor, limit: 1000 }).then(function (d) {
      var m = (d.messages || []).filter(function (x) { return x.task_id === taskId; })[0];
      if (m) return m;
      if (d.next_cursor && n < 20) return page(d.next_cursor, n + 1);
      return null;
    });
  }
  return page(null, 0);
};

JS.pages.task = function (ctx) {
  var id = ctx.params[0], main = ctx.main;
  var box = JS.h("div#task-detail");
  main.appendChild(JS.h("p.crumbs", JS.link("#/tasks", "Tasks"), " / "));
  main.appendChild(box);

  function load() {
    return JS.api.call("task.get", { id: id }).then(render, function (e) {
      JS.clear(box);
      box.appendChild(JS.h("h1.id", id));
      JS.showError(box, e);
    });
  }

  function dd(label, value) { return [JS.h("dt", label), JS.h("dd", value === null || value === undefined || value === "" ? JS.h("span.muted", "-") : value)]; }

  function render(d) {
    var t = d.task;
    JS.clear(box);
    var acts = JS.h("div.actions#task-actions");
    if (!JS.TERMINAL[t.status]) JS.append(acts, JS.opButton("Cancel", function () {
      if (!JS.confirm("Cancel task " + t.id + "?")) return;
      return JS.api.call("task.cancel", { id: t.id }, {}).then(function (r) { JS.flash("task " + r.id + ": " + r.status, "ok"); return load(); });
    }, { id: "task-cancel", class: "danger" }));
    if (t.status === "dead") JS.append(acts, JS.opButton("Replay", function () {
      return JS.findDeadLetter(t.id, t.queue).then(function (m) {
        if (!m) throw new Error("no dead letter of task " + t.id + " in queue " + t.queue + " (purged?): nothing to replay");
        return JS.api.call("dlq.replay", { seq: m.seq }, {});
      }).then(function (r) { JS.flash("replayed: " + (r.task_ids || []).join(", "), "ok"); return load(); });
    }, { id: "task-replay", class: "primary" }));
    box.appendChild(JS.h("div.headline", JS.h("h1.id", t.id), JS.status(t.status), acts));
    var dl = JS.h("dl.props");
    [dd("Queue", JS.link("#/tasks?queue=" + encodeURIComponent(t.queue), t.queue)),
     dd("Priority", t.priority),
     dd("Handler", t.handler ? JS.link("#/tasks?handler=" + encodeURIComponent(t.handler), t.handler) : null),
     dd("Attempts", t.attempts + " of " + (t.max_attempts || "default")),
     dd("Agent", t.agent),
     JS.hasWorkflows() ? dd("Workflow", t.workflow_id ? JS.link("#/workflow/" + encodeURIComponent(t.workflow_id), t.workflow_id, { id: "task-workflow" }) : null) : null,
     dd("Schedule", t.schedule_id ? JS.link("#/schedules/" + encodeURIComponent(t.schedule_id) + "/edit", t.schedule_id) : null),
     dd("Trace id", t.trace_id ? JS.h("code#task-trace", t.trace_id) : null),
     dd("Created", JS.when(t.created_at)),
     dd("Scheduled for", t.scheduled_for ? JS.when(t.scheduled_for) : null),
     dd("Dispatched", t.dispatched_at ? JS.when(t.dispatched_at) : null),
     dd("Started", t.started_at ? JS.when(t.started_at) : null),
     dd("Finished", t.finished_at ? [JS.when(t.finished_at), " (", JS.took(t.started_at, t.finished_at), ")"] : null)
    ].forEach(function (p) { JS.append(dl, p); });
    box.appendChild(dl);
    if (t.error) box.appendChild(JS.h("section", JS.h("h2", "Error"), JS.h("pre.errortext#task-error", t.error)));
    box.appendChild(JS.h("section", JS.h("h2", "Payload"), t.payload_base64 !== undefined && t.payload === undefined ?
      JS.h("pre#task-payload", JS.h("span.muted", "(binary, base64) "), t.payload_base64) : JS.h("pre#task-payload", JS.pretty(t.payload) || JS.h("span.muted", "(empty)"))));
    if (t.result !== null && t.result !== undefined) box.appendChild(JS.h("section", JS.h("h2", "Result"), JS.h("pre#task-result", JS.pretty(t.result))));
    var body = JS.h("tbody");
    (d.attempts || []).forEach(function (a) {
      body.appendChild(JS.h("tr", { "data-attempt": a.attempt },
        JS.h("td.num", String(a.attempt)), JS.h("td", JS.status(a.status)), JS.h("td", a.agent || "-"),
        JS.h("td.nowrap", JS.when(a.started_at)), JS.h("td.num", JS.took(a.started_at, a.finished_at)),
        JS.h("td.err", a.error || "")));
    });
    if (!(d.attempts || []).length) body.appendChild(JS.h("tr", JS.h("td.muted", { colspan: 6 }, "No attempt yet.")));
    box.appendChild(JS.h("section", JS.h("h2", "Attempts"), JS.h("div.scroll", JS.h("table.grid#attempts",
      JS.h("thead", JS.h("tr", ["#", "Status", "Agent", "Started", "Took", "Error"].map(function (c) { return JS.h("th", { scope: "col" }, c); }))), body))));
  }

  ctx.events({ task: id }, function (ev) { if (ev.id === id) load(); });
  return load();
};
