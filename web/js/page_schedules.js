/* web/js/page_schedules.js: schedules: the list (next and last fire, pause,
 * resume, trigger, delete) and the create/edit form with a live preview of
 * the next fire times (schedule.preview, as the leader computes them) and
 * the position of a spec error, taken from the API's error message. */
"use strict";
var JS = window.JS || (window.JS = {});
JS.pages = JS.pages || {};

/* "cron \"*\/0 * * * *\": field 1 (minute) at position 3: step must be >= 1" (the API error)
 * -> 3 (1-based), or null when the message names no position. */
JS.errorPosition = function (msg) {
  var m = /\bat position (\d+)/.exec(msg || "");
  return m ? parseInt(m[1], 10) : null;
};

/* The spec with the character at the error position marked, and a caret line. */
JS.specError = function (spec, err) {
  var pos = JS.errorPosition(err.message);
  var box = JS.h("div.spec-error#spec-error", { role: "alert" });
  if (pos !== null && pos >= 1 && pos <= spec.length + 1) {
    box.appendChild(JS.h("pre.caret",
      spec.slice(0, pos - 1), JS.h("mark", spec.slice(pos - 1, pos) || " "), spec.slice(pos), "\n",
      " ".repeat(pos - 1) + "^ position " + pos));
  }
  box.appendChild(JS.h("p", err.message));
  return box;
};

JS.pages.schedules = function (ctx) {
  if (ctx.params[0] === "new") return scheduleForm(ctx, null);
  if (ctx.params[0] && ctx.params[1] === "edit") return scheduleForm(ctx, ctx.params[0]);
  return scheduleList(ctx);
};

function scheduleList(ctx) {
  var main = ctx.main, table = JS.h("div#schedule-table"), pager = JS.h("div.pager"), cursors = [null];
  main.appendChild(JS.h("div.headline", JS.h("h1", "Schedules"),
    JS.api.canOperate() ? JS.h("a.button.primary#schedule-new", { href: "#/schedules/new", "data-op": "" }, "New schedule") : null));
  main.appendChild(table);
  main.appendChild(pager);

  function act(s, verb, label, cls) {
    return JS.opButton(label, function () {
      if (verb === "schedule.delete" && !JS.confirm("Delete schedule " + s.id + "? Its past tasks stay in the history.")) return;
      return JS.api.call(verb, { id: s.id }, verb === "schedule.delete" ? undefined : {}).then(function (r) {
        JS.flash(verb === "schedule.trigger" ? "triggered: task " + r.task_id : "schedule " + s.id + ": " + verb.split(".")[1] + "d", "ok");
        if (verb === "schedule.trigger" && r.task_id) {
          var flash = document.getElementById("flash");
          flash.firstChild.appendChild(document.createTextNode(" "));
          flash.firstChild.appendChild(JS.link("#/task/" + encodeURIComponent(r.task_id), "open"));
        }
        return load();
      });
    }, { class: cls, "data-action": verb.split(".")[1], "aria-label": label + " schedule " + s.id });
  }

  function load() {
    return JS.api.call("schedule.list", { cursor: cursors[cursors.length - 1], limit: 100 }).then(function (d) {
      JS.clear(table); JS.clear(pager);
      var body = JS.h("tbody");
      (d.schedules || []).forEach(function (s) {
        body.appendChild(JS.h("tr", { "data-schedule": s.id, "data-paused": s.paused ? "true" : "false" },
          JS.h("td.id", JS.link("#/schedules/" + encodeURIComponent(s.id) + "/edit", s.id)),
          JS.h("td", JS.h("code", s.spec), s.tz && s.tz !== "UTC" ? JS.h("span.muted", " " + s.tz) : null),
          JS.h("td.opt", s.queue + " / " + s.handler),
          JS.h("td.state", s.paused ? JS.h("span.badge.st-paused", "paused") : JS.h("span.badge.st-active", "active")),
          JS.h("td.nowrap", s.paused ? JS.h("span.muted", "-") : JS.when(s.next_fire_at)),
          JS.h("td.nowrap.opt", s.last_fire_at ? JS.link("#/tasks?schedule=" + encodeURIComponent(s.id), JS.when(s.last_fire_at)) : JS.h("span.muted", "never")),
          JS.api.canOperate() ? JS.h("td.actions",
            s.paused ? act(s, "schedule.resume", "Resume") : act(s, "schedule.pause", "Pause"),
            act(s, "schedule.trigger", "Run now"),
            act(s, "schedule.delete", "Delete", "danger")) : null));
      });
      if (!(d.schedules || []).length) body.appendChild(JS.h("tr", JS.h("td.muted", { colspan: 7 }, "No schedules.")));
      table.appendChild(JS.h("div.scroll", JS.h("table.grid.schedules",
        JS.h("thead", JS.h("tr", ["Schedule", "Spec", "Queue / handler", "State", "Next fire", "Last fire"].map(function (c, i) {
          return JS.h(i === 2 || i === 5 ? "th.opt" : "th", { scope: "col" }, c);
        }).concat(JS.api.canOperate() ? [JS.h("th", { scope: "col" }, JS.h("span.sr", "Actions"))] : []))), body)));
      if (cursors.length > 1) pager.appendChild(JS.h("button", { type: "button", onclick: function () { cursors.pop(); load(); } }, "← Previous"));
      if (d.next_cursor) pager.appendChild(JS.h("button", { type: "button", onclick: function () { cursors.push(d.next_cursor); load(); } }, "Next →"));
    }, function (e) { JS.clear(table); JS.showError(table, e); });
  }
  ctx.every(10000, load);
  return load();
}

function scheduleForm(ctx, id) {
  var main = ctx.main, editing = !!id, orig = null;
  var I = {
    id: JS.h("input#s-id", { name: "id", required: true, spellcheck: "false", pattern: "[a-z0-9_\\-]{1,64}", disabled: editing }),
    spec: JS.h("input#s-spec.mono", { name: "spec", required: true, spellcheck: "false", autocomplete: "off", placeholder: "0 3 * * *  or  @every 10m  or  2026-12-24T18:00:00Z" }),
    tz: JS.h("input#s-tz", { name: "tz", value: "UTC", spellcheck: "false" }),
    queue: JS.h("input#s-queue", { name: "queue", value: "default", spellcheck: "false" }),
    handler: JS.h("input#s-handler", { name: "handler", required: true, spellcheck: "false" }),
    priority: JS.select({ name: "priority", id: "s-priority" }, ["normal", "high", "low"], "normal"),
    payload: JS.h("textarea#s-payload.mono", { name: "payload", rows: 2, spellcheck: "false" }),
    max_attempts: JS.h("input#s-max-attempts", { name: "max_attempts", type: "number", min: 1, max: 1000, placeholder: "queue default" }),
    misfire: JS.select({ name: "misfire", id: "s-misfire" }, ["fire_once", "skip", "fire_all"], "fire_once"),
    overlap: JS.select({ name: "overlap", id: "s-overlap" }, ["allow", "forbid"], "allow"),
    paused: JS.h("input#s-paused", { name: "paused", type: "checkbox" })
  };
  var preview = JS.h("div.preview#schedule-preview", { "aria-live": "polite" });
  var specErr = JS.h("div#spec-field-error", { "aria-live": "polite" });
  var formErr = JS.h("div#schedule-form-error");
  var form = JS.h("form.schedule-form#schedule-form", { onsubmit: submit },
    JS.h("div.cols",
      JS.h("div.col",
        JS.h("div.row", JS.field("Id", I.id, "1-64 of a-z 0-9 _ -"), JS.field("Handler", I.handler)),
        JS.field("Spec", I.spec, "cron (5 or 6 fields, L W # H), @every 10m, or an RFC 3339 time"),
        specErr,
        JS.h("div.row", JS.field("Time zone", I.tz), JS.field("Queue", I.queue), JS.field("Priority", I.priority)),
        JS.field("Payload", I.payload),
        JS.h("div.row", JS.field("Max attempts", I.max_attempts), JS.field("Misfire", I.misfire), JS.field("Overlap", I.overlap),
          JS.h("label.check", I.paused, " Paused"))),
      JS.h("div.col", JS.h("h2", "Next fire times"), preview)),
    formErr,
    JS.h("div.actions",
      JS.h("button.primary#schedule-save", { type: "submit", "data-op": "" }, editing ? "Save" : "Create"),
      JS.link("#/schedules", "Cancel", { class: "button" })));
  /* The spec's error, from the live preview or from the save, under the spec field. */
  function showSpecError(spec, e, source) {
    JS.clear(specErr);
    if (!e) { I.spec.removeAttribute("aria-invalid"); return; }
    var box = JS.specError(spec, e);
    box.dataset.source = source;
    specErr.appendChild(box);
    I.spec.setAttribute("aria-invalid", "true");
  }
  main.appendChild(JS.h("p.crumbs", JS.link("#/schedules", "Schedules"), " / "));
  main.appendChild(JS.h("h1", editing ? "Schedule " + id : "New schedule"));
  if (!JS.api.canOperate()) {
    Object.keys(I).forEach(function (k) { I[k].disabled = true; });
    form.querySelector("#schedule-save").remove();
    main.appendChild(JS.h("p.muted", "Read only: your role is viewer."));
  }
  main.appendChild(form);

  var timer = null, seq = 0;
  function schedulePreview() {
    clearTimeout(timer);
    timer = setTimeout(runPreview, 250);
  }
  function runPreview() {
    var spec = I.spec.value.trim(), my = ++seq;
    JS.clear(preview);
    if (!spec) { showSpecError(spec, null); preview.appendChild(JS.h("p.muted", "Type a spec to see when it fires.")); return; }
    preview.dataset.state = "loading";
    var req = { spec: spec, tz: I.tz.value.trim() || "UTC", count: 5 };
    if (editing && orig && spec === orig.spec && req.tz === orig.tz) req = { id: id, count: 5 };
    JS.api.call("schedule.preview", null, req).then(function (r) {
      if (my !== seq) return;
      JS.clear(preview);
      showSpecError(spec, null);
      preview.dataset.state = "ok";
      var ol = JS.h("ol.fires");
      (r.next || []).forEach(function (t) { ol.appendChild(JS.h("li", JS.h("code", t.replace("T", " ").replace(/\.000Z$/, "Z")), " ", JS.when(t))); });
      preview.appendChild(JS.h("p.muted", r.kind + ", " + r.tz + " (times in UTC)"));
      preview.appendChild(ol);
    }, function (e) {
      if (my !== seq) return;
      JS.clear(preview);
      preview.dataset.state = "error";
      if (e.field === "spec") { showSpecError(spec, e, "preview"); preview.appendChild(JS.h("p.muted", "Fix the spec to see its fire times.")); }
      else { showSpecError(spec, null); preview.appendChild(JS.h("div.spec-error", { role: "alert" }, JS.h("p", (e.field ? e.field + ": " : "") + e.message))); }
    });
  }
  I.spec.addEventListener("input", schedulePreview);
  I.tz.addEventListener("input", schedulePreview);
  ctx.onLeave(function () { clearTimeout(timer); });

  function body() {
    var b = { spec: I.spec.value.trim(), tz: I.tz.value.trim() || "UTC", queue: I.queue.value.trim() || "default",
              priority: I.priority.value, handler: I.handler.value.trim(), payload: I.payload.value,
              misfire: I.misfire.value, overlap: I.overlap.value, paused: I.paused.checked };
    b.max_attempts = I.max_attempts.value ? parseInt(I.max_attempts.value, 10) : null;
    if (!editing) { b.id = I.id.value.trim(); if (b.max_attempts === null) delete b.max_attempts; }
    return b;
  }
  function submit(ev) {
    ev.preventDefault();
    JS.clear(formErr);
    var save = form.querySelector("#schedule-save");
    save.disabled = true;
    var p = editing ? JS.api.call("schedule.update", { id: id }, body()) : JS.api.call("schedule.create", null, body());
    p.then(function (r) {
      JS.flash("schedule " + r.schedule.id + " saved; next fire " + (r.schedule.next_fire_at || "-"), "ok");
      JS.go("#/schedules");
    }, function (e) {
      save.disabled = false;
      if (e.field === "spec") { showSpecError(I.spec.value.trim(), e, "create"); I.spec.focus(); }
      else {
        JS.showError(formErr, e);
        var input = e.field && I[e.field];
        if (input) { input.setAttribute("aria-invalid", "true"); input.focus(); }
      }
    });
  }

  if (!editing) { runPreview(); I.id.focus(); return; }
  return JS.api.call("schedule.get", { id: id }).then(function (r) {
    var s = orig = r.schedule;
    I.id.value = s.id; I.spec.value = s.spec; I.tz.value = s.tz || "UTC"; I.queue.value = s.queue; I.handler.value = s.handler;
    I.priority.value = s.priority; I.payload.value = s.payload || ""; I.max_attempts.value = s.max_attempts || "";
    I.misfire.value = s.misfire; I.overlap.value = s.overlap; I.paused.checked = !!s.paused;
    runPreview();
    I.spec.focus();
  });
}
