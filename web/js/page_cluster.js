/* web/js/page_cluster.js: agents (registry: host, queues, handlers, slots,
 * draining, handlers that failed to load) and queues (every lane of every
 * queue; pause/resume only when the server has the queue.pause routes). */
"use strict";
var JS = window.JS || (window.JS = {});
JS.pages = JS.pages || {};

JS.pages.agents = function (ctx) {
  var box = JS.h("div#agents");
  ctx.main.appendChild(JS.h("h1", "Agents"));
  ctx.main.appendChild(box);
  function load() {
    return JS.api.call("cluster.agents").then(function (d) {
      JS.clear(box);
      var list = d.agents || [];
      if (!list.length) { box.appendChild(JS.h("p.muted", "No agent is registered (agents heartbeat into the jetsched_agents bucket).")); return; }
      list.forEach(function (a) {
        var unavailable = a.handlers_unavailable || [];
        box.appendChild(JS.h("article.agent", { "data-agent": a.id },
          JS.h("header", JS.h("h2", a.id), a.draining ? JS.h("span.badge.st-retrying", "draining") : JS.h("span.badge.st-succeeded", "up")),
          JS.h("dl.props",
            JS.h("dt", "Host"), JS.h("dd", (a.host || "-") + (a.pid ? " (pid " + a.pid + ")" : "")),
            JS.h("dt", "Version"), JS.h("dd", a.version || "-"),
            JS.h("dt", "Up"), JS.h("dd", a.started_at ? JS.dur(Date.now() - Date.parse(a.started_at)) : "-"),
            JS.h("dt", "Slots"), JS.h("dd", (a.in_flight || 0) + " busy of " + (a.concurrency || 0)),
            JS.h("dt", "Queues"), JS.h("dd", (a.queues || []).map(function (q) { return [JS.link("#/tasks?queue=" + encodeURIComponent(q), q), " "]; })),
            a.features ? [JS.h("dt", "Features"), JS.h("dd", (a.features || []).join(", ") || "-")] : null),
          JS.h("h3", "Handlers"),
          JS.h("ul.chips", (a.handlers || []).map(function (hn) {
            return JS.h("li", JS.link("#/tasks?handler=" + encodeURIComponent(hn), hn));
          })),
          unavailable.length ? [JS.h("h3.bad", "Handlers that failed to load"), JS.h("ul.chips.bad", unavailable.map(function (u) {
            return JS.h("li", typeof u === "string" ? u : (u.name || "") + (u.error ? ": " + u.error : ""));
          }))] : null));
      });
    }, function (e) { JS.clear(box); JS.showError(box, e); });
  }
  ctx.every(5000, load);
  return load();
};

JS.pages.queues = function (ctx) {
  var box = JS.h("div#queues");
  var canPause = JS.api.hasRoute("POST", "/queues/{queue}/pause") && JS.api.canOperate();
  ctx.main.appendChild(JS.h("h1", "Queues"));
  ctx.main.appendChild(box);
  var prev = null;
  function load() {
    return JS.api.call("cluster.queues").then(function (d) {
      JS.clear(box);
      var lanes = d.queues || [], now = Date.now(), rates = {};
      if (prev) lanes.forEach(function (l) {
        var p = prev.v[l.consumer];
        if (p !== undefined && now > prev.t) rates[l.consumer] = Math.max(0, ((l.ack_floor_consumer || 0) - p) * 1000 / (now - prev.t));
      });
      prev = { t: now, v: {} };
      lanes.forEach(function (l) { prev.v[l.consumer] = l.ack_floor_consumer || 0; });
      var body = JS.h("tbody");
      lanes.forEach(function (l) {
        body.appendChild(JS.h("tr", { "data-queue": l.queue, "data-priority": l.priority, "data-paused": l.paused ? "true" : "false" },
          JS.h("td", JS.link("#/tasks?queue=" + encodeURIComponent(l.queue), l.queue)),
          JS.h("td", l.priority), l.paused ? JS.h("td", JS.h("span.badge.st-paused", "paused")) : JS.h("td", JS.h("span.muted", "-")),
          JS.h("td.num", String(l.pending)), JS.h("td.num", String(l.ack_pending)), JS.h("td.num.opt", String(l.redelivered)),
          JS.h("td.num.opt", String(l.waiting)),
          JS.h("td.num", rates[l.consumer] !== undefined ? rates[l.consumer].toFixed(1) + "/s" : "-"),
          canPause ? JS.h("td.actions", l.paused ?
            /* a row is a lane: pause that lane; resume the lane, or the whole queue when the queue was paused */
            JS.opButton("Resume", function () { return JS.api.call("queue.resume", { queue: l.queue }, l.pause && l.pause.scope === "lane" ? { priority: l.priority } : {}).then(load); }) :
            JS.opButton("Pause", function () { return JS.api.call("queue.pause", { queue: l.queue }, { priority: l.priority, reason: "paused from the console" }).then(load); })) : null));
      });
      if (!lanes.length) body.appendChild(JS.h("tr", JS.h("td.muted", { colspan: 9 }, "No queue consumers yet.")));
      box.appendChild(JS.h("div.scroll", JS.h("table.grid",
        JS.h("thead", JS.h("tr", ["Queue", "Priority", "State", "Pending", "In flight", "Redelivered", "Pulls waiting", "Done rate"].map(function (c, i) {
          return JS.h(i === 5 || i === 6 ? "th.num.opt" : i >= 3 ? "th.num" : "th", { scope: "col" }, c);
        }).concat(canPause ? [JS.h("th", { scope: "col" }, JS.h("span.sr", "Actions"))] : []))), body)));
      box.appendChild(JS.h("p.muted", "Pending is the lane's lag: messages in the stream not yet delivered. Done rate: acknowledged per second between two refreshes (every 5 s)."));
    }, function (e) { JS.clear(box); JS.showError(box, e); });
  }
  ctx.every(5000, load);
  return load();
};
