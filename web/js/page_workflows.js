/* web/js/page_workflows.js: the workflows list (status filter, keyset pages)
 * and a workflow's page: its state, node counts, callbacks, the DAG drawn
 * as SVG in topological layers (columns) with each node's state, the node
 * table, cancel for operators, and live updates over SSE (?workflow=).
 * Shown only when the server has the workflow routes (docs/WORKFLOWS.md). */
"use strict";
var JS = window.JS || (window.JS = {});
JS.pages = JS.pages || {};

JS.WF_STATUSES = ["running", "succeeded", "failed", "cancelled"];

JS.hasWorkflows = function () { return JS.api.hasRoute("GET", "/workflows"); };

function wfMissing(main) {
  main.appendChild(JS.h("p.muted#wf-missing", "This schedulerd has no workflow API (docs/WORKFLOWS.md): upgrade it to see workflows here."));
}

JS.pages.workflows = function (ctx) {
  var q = ctx.query, main = ctx.main;
  main.appendChild(JS.h("h1", "Workflows"));
  if (!JS.hasWorkflows()) return wfMissing(main);
  var status = JS.select({ name: "status", id: "wf-f-status" }, [["", "any"]].concat(JS.WF_STATUSES), q.status || "");
  var idBox = JS.h("input#wf-search", { type: "search", name: "id", placeholder: "workflow id", spellcheck: "false", "aria-label": "workflow id" });
  main.appendChild(JS.h("div.toolbar",
    JS.h("form.filters#wf-filters", { onsubmit: function (ev) { ev.preventDefault(); JS.go("#/workflows" + JS.qs({ status: status.value })); } },
      JS.field("Status", status), JS.h("button", { type: "submit" }, "Filter"),
      q.status ? JS.link("#/workflows", "clear", { class: "clear" }) : null),
    JS.h("form.search", { role: "search", onsubmit: function (ev) {
      ev.preventDefault();
      var id = idBox.value.trim();
      if (id) JS.go("#/workflow/" + encodeURIComponent(id));
    } }, idBox, JS.h("button", { type: "submit" }, "Open"))));
  status.addEventListener("change", function () { status.form.requestSubmit(); });
  var table = JS.h("div#wf-table"), pager = JS.h("div.pager");
  main.appendChild(table);
  main.appendChild(pager);
  var cursors = [null];
  function load() {
    return JS.api.call("workflow.list", { status: q.status, cursor: cursors[cursors.length - 1], limit: 50 }).then(function (d) {
      JS.clear(table); JS.clear(pager);
      var body = JS.h("tbody");
      (d.workflows || []).forEach(function (w) {
        body.appendChild(JS.h("tr", { "data-workflow": w.id, "data-status": w.status },
          JS.h("td.id", JS.link("#/workflow/" + encodeURIComponent(w.id), w.id)),
          JS.h("td", JS.status(w.status)),
          JS.h("td.num", String(w.nodes)),
          JS.h("td.opt", w.open ? JS.h("span.badge.st-waiting", "open") : JS.h("span.muted", "-")),
          JS.h("td.nowrap", JS.when(w.created_at)),
          JS.h("td.num.opt", w.finished_at ? JS.took(w.created_at, w.finished_at) : "-")));
      });
      if (!(d.workflows || []).length) body.appendChild(JS.h("tr", JS.h("td.muted", { colspan: 6 }, "No workflow matches.")));
      table.appendChild(JS.h("div.scroll", JS.h("table.grid.workflows",
        JS.h("thead", JS.h("tr", ["Workflow", "Status", "Nodes", "Open", "Created", "Took"].map(function (c, i) {
          return JS.h(i === 2 ? "th.num" : i === 5 ? "th.num.opt" : i === 3 ? "th.opt" : "th", { scope: "col" }, c);
        }))), body)));
      if (cursors.length > 1) pager.appendChild(JS.h("button", { type: "button", onclick: function () { cursors.pop(); load(); } }, "← Newer"));
      pager.appendChild(JS.h("span.muted", "page " + cursors.length));
      if (d.next_cursor) pager.appendChild(JS.h("button#wf-older", { type: "button", onclick: function () { cursors.push(d.next_cursor); load(); } }, "Older →"));
    }, function (e) { JS.clear(table); JS.showError(table, e); });
  }
  ctx.every(5000, function () { if (cursors.length === 1) load(); });
  return load();
};

/* ---- the DAG ---- */

/* How much a node needs a look: failed first, succeeded last. */
var WF_RANK = { dead: 0, expired: 0, cancelled: 0, running: 1, retrying: 1, queued: 2, waiting: 3, succeeded: 4, duplicate: 4 };
function rank(st) { return WF_RANK[st] === undefined ? 2 : WF_RANK[st]; }
var WF_MAX_PER_LAYER = 16;

/* Topological layers (Kahn): layer 0 has no parent; a node's layer is one
 * more than its deepest parent's. Parents not loaded are ignored. */
JS.wfLayers = function (nodes) {
  var byId = {}, indeg = {}, kids = {}, layer = {};
  nodes.forEach(function (n) { byId[n.id] = n; indeg[n.id] = 0; kids[n.id] = []; });
  nodes.forEach(function (n) {
    (n.depends_on || []).forEach(function (d) {
      var p = typeof d === "string" ? d : d.id;
      if (byId[p] && p !== n.id) { indeg[n.id]++; kids[p].push(n.id); }
    });
  });
  var queue = nodes.filter(function (n) { return !indeg[n.id]; }).map(function (n) { layer[n.id] = 0; return n.id; });
  for (var i = 0; i < queue.length; i++) {
    var id = queue[i];
    kids[id].forEach(function (c) {
      layer[c] = Math.max(layer[c] || 0, layer[id] + 1);
      if (--indeg[c] === 0) queue.push(c);
    });
  }
  var layers = [];
  nodes.forEach(function (n) {
    var l = layer[n.id] === undefined ? 0 : layer[n.id];
    (layers[l] = layers[l] || []).push(n);
  });
  return layers.filter(Boolean);
};

function parentIds(n) { return (n.depends_on || []).map(function (d) { return typeof d === "string" ? d : d.id; }); }

/* Draws the DAG: layers are columns; in a column, nodes are ordered by the
 * mean position of their parents; a column of more than WF_MAX_PER_LAYER
 * shows the nodes that most need a look and one box for the rest. */
JS.wfNarrow = function () { return window.innerWidth < 600; };
JS.wfGraph = function (nodes) {
  var narrow = JS.wfNarrow(), W = narrow ? 128 : 168, H = 38, GX = narrow ? 34 : 64, GY = 12, PAD = narrow ? 8 : 14;
  var CUT = narrow ? 15 : 20;
  var layers = JS.wfLayers(nodes), pos = {}, boxes = [];
  layers.forEach(function (ln, li) {
    var mean = function (n) {
      var ps = parentIds(n).filter(function (p) { return pos[p]; });
      if (!ps.length) return -1;
      return ps.reduce(function (s, p) { return s + pos[p].row; }, 0) / ps.length;
    };
    var shown = ln, rest = [];
    if (ln.length > WF_MAX_PER_LAYER) {
      var sorted = ln.slice().sort(function (a, b) { return rank(a.status) - rank(b.status) || (a.id < b.id ? -1 : 1); });
      shown = sorted.slice(0, WF_MAX_PER_LAYER - 1);
      rest = sorted.slice(WF_MAX_PER_LAYER - 1);
    }
    shown = shown.map(function (n) { return { n: n, m: mean(n) }; })
      .sort(function (a, b) { return a.m - b.m || (a.n.id < b.n.id ? -1 : 1); }).map(function (x) { return x.n; });
    shown.forEach(function (n, r) {
      pos[n.id] = { col: li, row: r, n: n };
      boxes.push(pos[n.id]);
    });
    if (rest.length) {
      var more = { col: li, row: shown.length, more: rest };
      rest.forEach(function (n) { pos[n.id] = more; });
      boxes.push(more);
    }
  });
  var rows = boxes.reduce(function (m, b) { return Math.max(m, b.row + 1); }, 1);
  var width = PAD * 2 + layers.length * W + (layers.length - 1) * GX, height = PAD * 2 + rows * H + (rows - 1) * GY;
  var svg = JS.svg("svg", { class: "dag", id: "wf-dag", width: width, height: height, viewBox: "0 0 " + width + " " + height, role: "img",
    "aria-label": "workflow graph: " + nodes.length + " nodes in " + layers.length + " layers" });
  /* each column centred on the tallest */
  var colRows = [];
  boxes.forEach(function (b) { colRows[b.col] = Math.max(colRows[b.col] || 0, b.row + 1); });
  function x(b) { return PAD + b.col * (W + GX); }
  function y(b) { return PAD + (b.row + (rows - colRows[b.col]) / 2) * (H + GY); }
  var edges = JS.svg("g", { class: "edges" }), seen = {};
  nodes.forEach(function (n) {
    var c = pos[n.id];
    (n.depends_on || []).forEach(function (d) {
      var pid = typeof d === "string" ? d : d.id, p = pos[pid];
      if (!p || !c || p === c) return;
      var key = (p.n ? p.n.id : "more" + p.col) + ">" + (c.n ? c.n.id : "more" + c.col);
      if (seen[key]) return;
      seen[key] = 1;
      var x1 = x(p) + W, y1 = y(p) + H / 2, x2 = x(c), y2 = y(c) + H / 2, mx = (x1 + x2) / 2;
      var failed = p.n && { dead: 1, expired: 1, cancelled: 1 }[p.n.status];
      var cls = "edge" + (d.allow_failure ? " may-fail" : "") + (failed && !d.allow_failure ? " broken" : "");
      edges.appendChild(JS.svg("path", { class: cls, d: "M" + x1 + "," + y1 + " C" + mx + "," + y1 + " " + mx + "," + y2 + " " + x2 + "," + y2,
        "data-from": pid, "data-to": n.id }));
    });
  });
  svg.appendChild(edges);
  boxes.forEach(function (b) {
    if (b.more) {
      var counts = {};
      b.more.forEach(function (n) { counts[n.status] = (counts[n.status] || 0) + 1; });
      var worst = b.more.reduce(function (w, n) { return rank(n.status) < rank(w) ? n.status : w; }, "succeeded");
      var txt = Object.keys(counts).map(function (k) { return counts[k] + " " + k; }).join(", ");
      svg.appendChild(JS.svg("g", { class: "node more st-" + worst, "data-more": b.more.length, transform: "translate(" + x(b) + "," + y(b) + ")" },
        JS.svg("title", {}, b.more.length + " more nodes: " + txt),
        JS.svg("rect", { width: W, height: H, rx: 6 }),
        JS.svg("text", { x: 10, y: 16, class: "nid" }, "… " + b.more.length + " more"),
        JS.svg("text", { x: 10, y: 31, class: "nst" }, txt.length > 26 ? txt.slice(0, 25) + "…" : txt)));
      return;
    }
    var n = b.n, label = n.id.length > CUT ? n.id.slice(0, CUT - 1) + "…" : n.id;
    var a = JS.svg("a", { href: "#/task/" + encodeURIComponent(n.task_id || n.id) },
      JS.svg("title", {}, n.id + " (" + (n.handler || "-") + "): " + n.status + (n.error ? "\n" + n.error : "")),
      JS.svg("rect", { width: W, height: H, rx: 6 }),
      JS.svg("circle", { cx: W - 12, cy: 12, r: 4, class: "dot" }),
      JS.svg("text", { x: 10, y: 16, class: "nid" }, label),
      JS.svg("text", { x: 10, y: 31, class: "nst" }, n.status + (n.attempts > 1 ? " · " + n.attempts + " tries" : "")));
    svg.appendChild(JS.svg("g", { class: "node st-" + n.status, "data-node": n.id, "data-task": n.task_id || "", "data-status": n.status,
      transform: "translate(" + x(b) + "," + y(b) + ")" }, a));
  });
  return svg;
};

/* Changes a node's state in the drawing and the table (a live event). */
function setNodeState(box, taskId, status, attempt) {
  box.querySelectorAll('[data-task="' + CSS.escape(taskId) + '"]').forEach(function (el) {
    el.dataset.status = status;
    if (el.tagName.toLowerCase() === "g") {
      el.setAttribute("class", "node st-" + status);
      var t = el.querySelector(".nst");
      if (t) t.textContent = status + (attempt > 1 ? " · " + attempt + " tries" : "");
    } else {
      var cell = el.querySelector(".status");
      if (cell) JS.clear(cell).appendChild(JS.status(status));
      /* the same count as the drawing: attempts made so far */
      var tries = el.querySelector(".tries");
      if (tries && attempt) tries.textContent = String(attempt);
      el.classList.remove("flashrow"); void el.offsetWidth; el.classList.add("flashrow");
    }
  });
}

JS.pages.workflow = function (ctx) {
  var id = ctx.params[0], main = ctx.main;
  main.appendChild(JS.h("p.crumbs", JS.link("#/workflows", "Workflows"), " / "));
  if (!JS.hasWorkflows()) return wfMissing(main);
  var box = JS.h("div#workflow-detail");
  main.appendChild(box);
  var shape = null; /* node ids of the drawing: redrawn only when they change */
  var last = null, drawnNarrow = JS.wfNarrow();
  /* phone <-> desktop width: drawn again with the other box sizes */
  function onResize() { if (last && JS.wfNarrow() !== drawnNarrow) render(last); }
  window.addEventListener("resize", onResize);
  ctx.onLeave(function () { window.removeEventListener("resize", onResize); });

  function dd(label, value) { return [JS.h("dt", label), JS.h("dd", value === null || value === undefined || value === "" ? JS.h("span.muted", "-") : value)]; }

  function load() {
    return JS.api.call("workflow.get", { id: id, limit: 1000 }).then(render, function (e) {
      JS.clear(box);
      box.appendChild(JS.h("h1.id", id));
      JS.showError(box, e);
    });
  }

  function render(d) {
    last = d;
    drawnNarrow = JS.wfNarrow();
    var w = d.workflow || {}, nodes = d.nodes || [];
    var ids = nodes.map(function (n) { return n.id + ":" + parentIds(n).join(","); }).join(" ");
    var graphBox = box.querySelector("#wf-graph");
    var scroll = graphBox ? [graphBox.scrollLeft, graphBox.scrollTop] : null;
    JS.clear(box);
    var acts = JS.h("div.actions#wf-actions");
    if (!w.finished_at && w.status === "running") JS.append(acts, JS.opButton("Cancel workflow", function () {
      if (!JS.confirm("Cancel workflow " + w.id + "? Its waiting nodes end cancelled, running ones are cancelled by their agents.")) return;
      return JS.api.call("workflow.cancel", { id: w.id }, {}).then(function (r) {
        JS.flash("workflow " + r.id + " cancelled: " + r.cancelled + " waiting node(s) cancelled, " + r.cancelling + " cancelling", "ok");
        return load();
      });
    }, { id: "wf-cancel", class: "danger" }));
    box.appendChild(JS.h("div.headline", JS.h("h1.id", w.id), JS.h("span#wf-status", { "data-status": w.status }, JS.status(w.status)),
      w.open ? JS.h("span.badge.st-waiting", { title: "takes more nodes (workflow.add)" }, "open") : null, acts));
    var counts = JS.h("ul.chips.counts#wf-counts");
    Object.keys(w.counts || {}).sort(function (a, b) { return rank(a) - rank(b); }).forEach(function (k) {
      counts.appendChild(JS.h("li", { "data-state": k, "data-count": w.counts[k] }, JS.status(k), " ", String(w.counts[k])));
    });
    var dl = JS.h("dl.props");
    [dd("Nodes", String(w.nodes)), dd("Counts", counts),
     dd("Created", JS.when(w.created_at)),
     dd("Finished", w.finished_at ? [JS.when(w.finished_at), " (", JS.took(w.created_at, w.finished_at), ")"] : null)
    ].forEach(function (p) { JS.append(dl, p); });
    box.appendChild(dl);
    var cbs = d.callbacks || [];
    if (cbs.length) {
      box.appendChild(JS.h("h2", "Callbacks"));
      box.appendChild(JS.h("ul.callbacks#wf-callbacks", cbs.map(function (c) {
        return JS.h("li", { "data-kind": c.kind, "data-task": c.task_id, "data-status": c.status || "" }, JS.h("code", c.kind), " ",
          c.status ? [JS.link("#/task/" + encodeURIComponent(c.task_id), c.task_id), " ", JS.status(c.status)] :
            [JS.h("span.mono", c.task_id), " ", JS.h("span.muted", w.finished_at ? "(not run)" : "(when the workflow ends)")]);
      })));
    }
    box.appendChild(JS.h("h2", "Graph"));
    if (d.next_cursor) box.appendChild(JS.h("p.muted#wf-partial", "Showing the first " + nodes.length + " of " + w.nodes +
      " nodes (by node id); the counts above are of every node."));
    var g = JS.h("div.scroll.dag-box#wf-graph");
    g.appendChild(nodes.length ? JS.wfGraph(nodes) : JS.h("p.muted", "No node yet."));
    box.appendChild(g);
    box.appendChild(JS.h("p.legend.muted", "Columns are layers: a node runs once the nodes to its left that point to it have succeeded; a dashed edge may fail. ",
      JS.h("span.badge.st-waiting", "waiting"), " has unfinished parents."));
    if (scroll && ids === shape) { g.scrollLeft = scroll[0]; g.scrollTop = scroll[1]; }
    shape = ids;
    var body = JS.h("tbody");
    nodes.forEach(function (n) {
      body.appendChild(JS.h("tr", { "data-node": n.id, "data-task": n.task_id, "data-status": n.status },
        JS.h("td.id", JS.link("#/task/" + encodeURIComponent(n.task_id), n.id)),
        JS.h("td.opt", n.handler || "-"),
        JS.h("td.status", JS.status(n.status)),
        JS.h("td.num.tries", String(n.attempts || 0)),
        JS.h("td.opt.mono", (n.depends_on || []).map(function (p) { return (typeof p === "string" ? p : p.id) + (p.allow_failure ? "?" : ""); }).join(", ") || "-"),
        JS.h("td.num.opt", JS.took(n.started_at, n.finished_at)),
        JS.h("td.err", { title: n.error || "" }, n.error || "")));
    });
    box.appendChild(JS.h("h2", "Nodes"));
    box.appendChild(JS.h("div.scroll", JS.h("table.grid#wf-nodes",
      JS.h("thead", JS.h("tr", ["Node", "Handler", "Status", "Tries", "Parents", "Took", "Error"].map(function (c, i) {
        return JS.h(i === 1 || i === 4 ? "th.opt" : i === 5 ? "th.num.opt" : i === 3 ? "th.num" : "th", { scope: "col" }, c);
      }))), body)));
  }

  /* Live: the node changes at once; the counts, workflow state and
   * callbacks come with a reload (at most one a second). */
  var pending = null;
  ctx.events({ workflow: id }, function (ev) {
    if (!ev || !ev.id) return;
    setNodeState(box, ev.id, ev.status, ev.attempt);
    if (!pending) pending = setTimeout(function () { pending = null; load(); }, 1000);
  });
  ctx.onLeave(function () { if (pending) clearTimeout(pending); });
  ctx.every(10000, load);
  return load();
};
