/* web/js/page_overview.js: the overview: leader, agents, queue depth and
 * lag (cluster.queues, with delivery/ack rates between two refreshes), and
 * throughput and failures per queue over the last hour (the server's
 * per-minute rollup). Refreshes every 5 s while the tab is visible. */
"use strict";
var JS = window.JS || (window.JS = {});
JS.pages = JS.pages || {};

/* Lanes of cluster.queues folded per queue: {queue: {pending, ack_pending, redelivered, waiting, delivered}} */
JS.foldQueues = function (lanes) {
  var out = {}, order = [];
  (lanes || []).forEach(function (l) {
    var q = out[l.queue];
    if (!q) { q = out[l.queue] = { queue: l.queue, pending: 0, ack_pending: 0, redelivered: 0, waiting: 0, acked: 0, lanes: [] }; order.push(l.queue); }
    q.pending += l.pending || 0; q.ack_pending += l.ack_pending || 0; q.redelivered += l.redelivered || 0;
    q.waiting += l.waiting || 0; q.acked += l.ack_floor_consumer || 0;
    q.lanes.push(l);
  });
  return order.map(function (k) { return out[k]; });
};

/* The per-minute rollup, whatever its exact layout, as {queue: [{t, ok, failed}]}. */
JS.statsByQueue = function (d) {
  var rows = (d && (d.minutes || d.stats || d.rollup)) || [];
  var out = {};
  function add(queue, m) {
    var t = Date.parse(m.minute || m.at || m.t || m.time);
    if (isNaN(t)) return;
    var failed = (m.failed || 0) + (m.dead || 0) + (m.expired || 0) + (m.retrying || 0) + (m.failures || 0);
    (out[queue] = out[queue] || []).push({ t: t, ok: m.succeeded || m.ok || 0, failed: failed });
  }
  if (d && Array.isArray(d.queues)) {
    d.queues.forEach(function (q) { (q.minutes || []).forEach(function (m) { add(q.queue, m); }); if (!out[q.queue]) out[q.queue] = []; });
  }
  rows.forEach(function (m) { add(m.queue || "all", m); });
  return out;
};

/* Tasks finished per minute per queue over the last hour: the server's
 * per-minute rollup (GET /api/v1/stats), or, from a schedulerd without that
 * route, the finished tasks created in the last hour (task.list, at most
 * 5 pages of 1000: enough for a small installation, said on the page). */
JS.overviewStats = function () {
  if (JS.api.hasRoute("GET", "/stats")) return JS.api.call("stats", { since: "1h" }).catch(function (e) { return { error: e }; });
  var since = new Date(Date.now() - 3600000).toISOString(), minutes = [], pages = 0;
  function page(cursor) {
    return JS.api.call("task.list", { status: "succeeded,dead,expired", since: since, limit: 1000, cursor: cursor }).then(function (d) {
      pages++;
      (d.tasks || []).forEach(function (t) {
        var at = t.finished_at || t.created_at;
        minutes.push({ minute: at, queue: t.queue, succeeded: t.status === "succeeded" ? 1 : 0, failed: t.status === "succeeded" ? 0 : 1 });
      });
      if (d.next_cursor && pages < 5) return page(d.next_cursor);
      return { minutes: minutes, partial: !!d.next_cursor, source: "task.list" };
    });
  }
  if (JS.overviewStats.cache && Date.now() - JS.overviewStats.cache.at < 30000) return Promise.resolve(JS.overviewStats.cache.d);
  return page(null).then(function (d) { JS.overviewStats.cache = { at: Date.now(), d: d }; return d; }, function (e) { return { error: e }; });
};

JS.pages.overview = function (ctx) {
  var main = ctx.main;
  var cards = JS.h("section.cards#overview-cards", { "aria-label": "cluster" });
  var charts = JS.h("div.charts#throughput");
  var queues = JS.h("div#overview-queues");
  var failures = JS.h("div#overview-failures");
  var agentsBox = JS.h("div#overview-agents");
  main.appendChild(JS.h("h1", "Overview"));
  main.appendChild(cards);
  main.appendChild(JS.h("section", JS.h("h2", "Throughput and failures per queue, last hour"), charts));
  main.appendChild(JS.h("div.two",
    JS.h("section", JS.h("h2", "Queue depth and lag"), queues),
    JS.h("section", JS.h("h2", JS.link("#/tasks?status=dead", "Recent failures")), failures)));
  main.appendChild(JS.h("section", JS.h("h2", JS.link("#/agents", "Agents")), agentsBox));
  var prev = null;

  function card(title, value, sub, id) {
    return JS.h("div.card", { id: id }, JS.h("div.card-title", title), JS.h("div.card-value", value), sub ? JS.h("div.card-sub", sub) : null);
  }

  function load() {
    return Promise.all([
      JS.api.call("cluster.leader").catch(function (e) { return { error: e }; }),
      JS.api.call("cluster.agents").catch(function (e) { return { error: e }; }),
      JS.api.call("cluster.queues").catch(function (e) { return { error: e }; }),
      JS.api.call("task.list", { status: "dead,expired", limit: 5 }).catch(function (e) { return { error: e }; }),
      JS.overviewStats()
    ]).then(function (r) {
      var leader = r[0], agents = r[1], lanes = r[2], dead = r[3], stats = r[4];
      JS.clear(failures);
      if (dead.error) JS.showError(failures, dead.error);
      else failures.appendChild(JS.failureList(dead.tasks || []));
      JS.clear(agentsBox);
      if (agents.error) JS.showError(agentsBox, agents.error);
      else agentsBox.appendChild(JS.agentTable(agents.agents || []));
      JS.clear(cards);
      if (leader.error) cards.appendChild(card("Leader", "?", leader.error.message, "card-leader"));
      else if (!leader.leader) cards.appendChild(card("Leader", "none", "no schedulerd holds the lease", "card-leader"));
      else cards.appendChild(card("Leader", leader.leader.id, ["epoch " + (leader.leader.epoch === null ? "-" : leader.leader.epoch) + ", since ",
        JS.when(leader.leader.since)], "card-leader"));
      if (agents.error) cards.appendChild(card("Agents", "?", agents.error.message, "card-agents"));
      else {
        var list = agents.agents || [], busy = 0, cap = 0, draining = 0;
        list.forEach(function (a) { busy += a.in_flight || 0; cap += a.concurrency || 0; if (a.draining) draining++; });
        cards.appendChild(card("Agents", String(list.length), busy + " of " + cap + " slots busy" + (draining ? ", " + draining + " draining" : ""), "card-agents"));
      }
      var folded = lanes.error ? [] : JS.foldQueues(lanes.queues);
      var pending = 0, unacked = 0;
      folded.forEach(function (q) { pending += q.pending; unacked += q.ack_pending; });
      cards.appendChild(card("Queued", lanes.error ? "?" : String(pending), lanes.error ? lanes.error.message : unacked + " in flight over " + folded.length + " queue(s)", "card-queued"));

      JS.clear(charts);
      if (stats.error) {
        charts.appendChild(JS.h("p.muted", stats.error.status === 404 ? "This schedulerd has no per-minute rollup route (" + stats.error.message + ")." : stats.error.message));
      } else {
        var byQ = JS.statsByQueue(stats);
        folded.forEach(function (q) { if (!byQ[q.queue]) byQ[q.queue] = []; });
        var names = Object.keys(byQ).sort();
        if (!names.length) charts.appendChild(JS.h("p.muted", "No task finished in the last hour."));
        if (stats.partial) charts.appendChild(JS.h("p.muted", "Only the newest 5000 tasks of the last hour are counted (this schedulerd has no per-minute rollup)."));
        names.forEach(function (name) {
          var c = JS.barChart(byQ[name], { title: name });
          charts.appendChild(JS.h("figure.chart-box", { "data-queue": name },
            JS.h("figcaption", JS.link("#/tasks?queue=" + encodeURIComponent(name), name), " ",
              JS.h("span.ok", c.ok + " ok"), " · ",
              JS.link("#/tasks?queue=" + encodeURIComponent(name) + "&status=dead", c.failed + " failed", { class: c.failed ? "bad" : "muted" })),
            c.svg));
        });
      }

      JS.clear(queues);
      if (lanes.error) { JS.showError(queues, lanes.error); return; }
      var now = Date.now(), rates = {};
      if (prev) folded.forEach(function (q) {
        var p = prev.q[q.queue];
        if (p !== undefined && now > prev.t) rates[q.queue] = Math.max(0, (q.acked - p) * 1000 / (now - prev.t));
      });
      prev = { t: now, q: {} };
      folded.forEach(function (q) { prev.q[q.queue] = q.acked; });
      queues.appendChild(JS.queueTable(folded, rates));
    });
  }

  ctx.every(5000, load);
  return load();
};

/* Per-queue table (overview, queues page): pending = waiting in the stream,
 * in flight = delivered and not acked, redelivered, agents pulling. */
JS.queueTable = function (folded, rates, actions) {
  var body = JS.h("tbody");
  folded.forEach(function (q) {
    body.appendChild(JS.h("tr", { "data-queue": q.queue },
      JS.h("td", JS.link("#/tasks?queue=" + encodeURIComponent(q.queue), q.queue)),
      JS.h("td.num", String(q.pending)),
      JS.h("td.num", String(q.ack_pending)),
      JS.h("td.num.opt", String(q.redelivered)),
      JS.h("td.num.opt", String(q.waiting)),
      JS.h("td.num", rates && rates[q.queue] !== undefined ? rates[q.queue].toFixed(1) + "/s" : "-"),
      actions ? JS.h("td.actions", actions(q)) : null));
  });
  if (!folded.length) body.appendChild(JS.h("tr", JS.h("td.muted", { colspan: 7 }, "No queues: no consumer exists yet (jetsched init --queue, or start an agent).")));
  return JS.h("div.scroll", JS.h("table.grid",
    JS.h("thead", JS.h("tr", JS.h("th", { scope: "col" }, "Queue"), JS.h("th.num", { scope: "col", title: "messages waiting in the stream (lag)" }, "Pending"),
      JS.h("th.num", { scope: "col", title: "delivered, not yet acknowledged" }, "In flight"),
      JS.h("th.num.opt", { scope: "col" }, "Redelivered"), JS.h("th.num.opt", { scope: "col", title: "pull requests waiting (idle agents)" }, "Pulls waiting"),
      JS.h("th.num", { scope: "col", title: "acknowledged per second between two refreshes" }, "Done rate"),
      actions ? JS.h("th", { scope: "col" }, JS.h("span.sr", "Actions")) : null)),
    body));
};

/* The newest dead or expired tasks: id, queue/handler, error, when. */
JS.failureList = function (tasks) {
  if (!tasks.length) return JS.h("p.muted", "No dead or expired task.");
  var body = JS.h("tbody");
  tasks.forEach(function (t) {
    body.appendChild(JS.h("tr", { "data-task": t.id },
      JS.h("td.id", JS.link("#/task/" + encodeURIComponent(t.id), t.id)),
      JS.h("td", t.handler || "-"),
      JS.h("td.err", { title: t.error || "" }, t.error || t.status),
      JS.h("td.nowrap", JS.when(t.finished_at || t.created_at))));
  });
  return JS.h("div.scroll", JS.h("table.grid.failures",
    JS.h("thead", JS.h("tr", ["Task", "Handler", "Error", "When"].map(function (c) { return JS.h("th", { scope: "col" }, c); }))), body));
};

/* Agents in one table: id, host, queues, busy slots, up since, handlers. */
JS.agentTable = function (list) {
  if (!list.length) return JS.h("p.muted", "No agent is registered.");
  var body = JS.h("tbody");
  list.forEach(function (a) {
    body.appendChild(JS.h("tr", { "data-agent": a.id },
      JS.h("td.id", a.id, a.draining ? [" ", JS.h("span.badge.st-retrying", "draining")] : null),
      JS.h("td.opt", a.host || "-"),
      JS.h("td", (a.queues || []).join(", ")),
      JS.h("td.num", (a.in_flight || 0) + " / " + (a.concurrency || 0)),
      JS.h("td.nowrap.opt", a.started_at ? JS.dur(Date.now() - Date.parse(a.started_at)) : "-"),
      JS.h("td.handlers", (a.handlers || []).join(", "))));
  });
  return JS.h("div.scroll", JS.h("table.grid.agents",
    JS.h("thead", JS.h("tr", [["Agent"], ["Host", "opt"], ["Queues"], ["Busy", "num"], ["Up", "opt"], ["Handlers"]].map(function (c) {
      return JS.h("th" + (c[1] ? "." + c[1] : ""), { scope: "col" }, c[0]);
    }))), body));
};
