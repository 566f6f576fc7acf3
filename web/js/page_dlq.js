/* web/js/page_dlq.js: the dead-letter queue: list (oldest first, by queue),
 * replay one, replay all (message by message, with a progress bar, as
 * `jetsched dlq replay --all` does), purge one or all. A replayed task's
 * row stays and shows its live status from the SSE stream. */
"use strict";
var JS = window.JS || (window.JS = {});
JS.pages = JS.pages || {};

JS.pages.dlq = function (ctx) {
  var q = ctx.query, main = ctx.main;
  var queueBox = JS.h("input#dlq-queue", { name: "queue", value: q.queue || "", placeholder: "any", size: 12, spellcheck: "false" });
  var progress = JS.h("div.progress#dlq-progress", { hidden: true, role: "status" });
  var table = JS.h("div#dlq-table"), pager = JS.h("div.pager");
  var cursors = [null], rows = {}, stop = false;

  main.appendChild(JS.h("h1", "Dead letters"));
  main.appendChild(JS.h("div.toolbar",
    JS.h("form.filters", { onsubmit: function (ev) { ev.preventDefault(); JS.go("#/dlq" + JS.qs({ queue: queueBox.value.trim() })); } },
      JS.field("Queue", queueBox), JS.h("button", { type: "submit" }, "Filter")),
    JS.h("div.actions",
      JS.opButton("Replay all", replayAll, { id: "dlq-replay-all", class: "primary" }),
      JS.opButton("Purge all", function () {
        if (!JS.confirm("Delete every dead letter" + (q.queue ? " of queue " + q.queue : "") + " for good? Their tasks stay dead in the history.")) return;
        return JS.api.call("dlq.purge_all", null, q.queue ? { all: true, queue: q.queue } : { all: true }).then(function (r) {
          JS.flash("purged " + r.purged + " dead letter(s)", "ok"); cursors = [null]; return load();
        });
      }, { id: "dlq-purge-all", class: "danger" }))));
  main.appendChild(progress);
  main.appendChild(table);
  main.appendChild(pager);
  ctx.onLeave(function () { stop = true; });

  function load() {
    return JS.api.call("dlq.list", { queue: q.queue, cursor: cursors[cursors.length - 1], limit: 50 }).then(function (d) {
      JS.clear(table); JS.clear(pager); rows = {};
      var body = JS.h("tbody");
      (d.messages || []).forEach(function (m) { body.appendChild(row(m)); });
      if (!(d.messages || []).length) body.appendChild(JS.h("tr", JS.h("td.muted", { colspan: 9 }, "The dead-letter queue is empty.")));
      table.appendChild(JS.h("div.scroll", JS.h("table.grid.dlq",
        JS.h("thead", JS.h("tr", ["Seq", "Queue", "Task", "Handler", "Reason", "Tries", "Dead", "Last error", "Task now"].map(function (c, i) {
          return JS.h(i === 1 || i === 4 ? "th.opt" : "th", { scope: "col" }, c);
        }).concat(JS.api.canOperate() ? [JS.h("th", { scope: "col" }, JS.h("span.sr", "Actions"))] : []))), body)));
      if (cursors.length > 1) pager.appendChild(JS.h("button", { type: "button", onclick: function () { cursors.pop(); load(); } }, "← Previous"));
      if (d.next_cursor) pager.appendChild(JS.h("button", { type: "button", onclick: function () { cursors.push(d.next_cursor); load(); } }, "Next →"));
    }, function (e) { JS.clear(table); JS.showError(table, e); });
  }

  function row(m) {
    var live = JS.h("td.live-status", JS.h("span.muted", "dead"));
    var tr = JS.h("tr", { "data-seq": m.seq, "data-task": m.task_id || "" },
      JS.h("td.num", String(m.seq)),
      JS.h("td.opt", m.queue || "-"),
      JS.h("td.id", m.task_id ? JS.link("#/task/" + encodeURIComponent(m.task_id), m.task_id) : "-"),
      JS.h("td", m.handler || "-"),
      JS.h("td.opt", m.reason || "-"),
      JS.h("td.num", m.attempts === null || m.attempts === undefined ? "-" : String(m.attempts)),
      JS.h("td.nowrap", JS.when(m.dead_at)),
      JS.h("td.err", { title: m.last_error || "" }, m.last_error || ""),
      live,
      JS.api.canOperate() ? JS.h("td.actions",
        JS.opButton("Replay", function () { return replayOne(m); }, { class: "replay", "aria-label": "replay dead letter " + m.seq }),
        JS.opButton("Purge", function () {
          if (!JS.confirm("Delete dead letter " + m.seq + " (task " + m.task_id + ") for good?")) return;
          return JS.api.call("dlq.purge", { seq: m.seq }).then(function () { markDone(m, "purged"); });
        }, { class: "danger purge", "aria-label": "purge dead letter " + m.seq })) : null);
    if (m.task_id) rows[m.task_id] = tr;
    return tr;
  }

  function setLive(tr, status) {
    tr.dataset.live = status;
    JS.clear(tr.querySelector(".live-status")).appendChild(JS.status(status));
  }
  function markDone(m, what) {
    var tr = table.querySelector('tr[data-seq="' + Number(m.seq) + '"]');
    if (!tr) return;
    tr.classList.add("done");
    var acts = tr.querySelector("td.actions");
    if (acts) JS.clear(acts).appendChild(JS.h("span.muted", what));
    if (what === "purged") setLive(tr, "purged");
    else if (tr.dataset.live === undefined || tr.dataset.live === "dead") setLive(tr, "queued");
  }
  function replayOne(m) {
    return JS.api.call("dlq.replay", { seq: m.seq }, {}).then(function (r) { markDone(m, "replayed"); return r; });
  }

  /* Every dead letter (of the queue filter), one by one, with progress; a
   * refused one (task no longer dead) is counted as skipped. */
  function replayAll() {
    var all = [];
    function collect(cursor) {
      return JS.api.call("dlq.list", { queue: q.queue, cursor: cursor, limit: 1000 }).then(function (d) {
        all = all.concat(d.messages || []);
        return d.next_cursor ? collect(d.next_cursor) : all;
      });
    }
    return collect(null).then(function (msgs) {
      if (!msgs.length) { JS.flash("nothing to replay", "info"); return; }
      if (!JS.confirm("Replay " + msgs.length + " dead letter(s)" + (q.queue ? " of queue " + q.queue : "") + "?")) return;
      var done = 0, skipped = [], bar = JS.h("progress", { max: msgs.length, value: 0 }), label = JS.h("span");
      JS.clear(progress); progress.hidden = false;
      progress.appendChild(bar); progress.appendChild(label);
      function show() { label.textContent = " " + done + " of " + msgs.length + " replayed" + (skipped.length ? ", " + skipped.length + " skipped" : ""); bar.value = done + skipped.length; }
      show();
      var i = 0;
      function worker() {
        if (stop || i >= msgs.length) return Promise.resolve();
        var m = msgs[i++];
        return replayOne(m).then(function () { done++; }, function (e) {
          if (e.status === 0 || e.code === "unavailable") { stop = true; throw e; }
          skipped.push(m.seq + ": " + e.message);
        }).then(function () { show(); return worker(); });
      }
      return Promise.all([worker(), worker(), worker()]).then(function () {
        progress.dataset.done = "1";
        JS.flash("replayed " + done + " dead letter(s)" + (skipped.length ? "; skipped " + skipped.length + ": " + skipped.slice(0, 3).join("; ") : ""), skipped.length ? "warn" : "ok");
      });
    });
  }

  ctx.events({ queue: q.queue }, function (ev) {
    var tr = rows[ev.id];
    if (tr) setLive(tr, ev.status);
  });
  return load();
};
