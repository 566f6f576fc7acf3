/* web/js/app.js: the console's shell: hash routes (#/tasks, #/task/<id>,
 * ...), the navigation, the session check before any page, login/logout,
 * and the lifetime of a page (its timers and SSE stream end when the user
 * leaves it). Pages register themselves in JS.pages (js/page_*.js). */
"use strict";
var JS = window.JS || (window.JS = {});
JS.pages = JS.pages || {};

(function () {
  /* [page, link, label, shown only when (optional: a route of the server)] */
  var NAV = [["overview", "#/", "Overview"], ["tasks", "#/tasks", "Tasks"],
             ["workflows", "#/workflows", "Workflows", function () { return JS.hasWorkflows(); }], ["dlq", "#/dlq", "Dead letters"],
             ["schedules", "#/schedules", "Schedules"], ["agents", "#/agents", "Agents"], ["queues", "#/queues", "Queues"]];
  var cleanups = [];

  /* What a page gets: where to draw, its route parameters, and hooks whose
   * effects end when the page is left. */
  function pageContext(main, params, query) {
    return {
      main: main, params: params, query: query,
      every: function (ms, fn) {
        var id = setInterval(function () { if (!document.hidden) fn(); }, ms);
        cleanups.push(function () { clearInterval(id); });
      },
      events: function (filters, fn) { cleanups.push(JS.api.events(filters, fn)); },
      onLeave: function (fn) { cleanups.push(fn); }
    };
  }

  function leave() {
    cleanups.splice(0).forEach(function (f) { try { f(); } catch (e) { /* already gone */ } });
  }

  /* "#/task/abc?x=1" -> {name:"task", params:["abc"], query:{x:"1"}} */
  function parse() {
    var hash = location.hash.replace(/^#\/?/, "");
    var q = {}, qi = hash.indexOf("?");
    if (qi >= 0) {
      hash.slice(qi + 1).split("&").forEach(function (kv) {
        if (!kv) return;
        var p = kv.split("=");
        q[decodeURIComponent(p[0])] = decodeURIComponent((p[1] || "").replace(/\+/g, " "));
      });
      hash = hash.slice(0, qi);
    }
    var parts = hash.split("/").filter(Boolean).map(decodeURIComponent);
    return { name: parts[0] || "overview", params: parts.slice(1), query: q };
  }

  JS.go = function (hash) { if (location.hash === hash) route(); else location.hash = hash; };
  JS.link = function (hash, text, attrs) { return JS.h("a", Object.assign({ href: hash }, attrs || {}), text); };

  function renderNav(active) {
    var nav = document.getElementById("nav");
    JS.clear(nav);
    var s = JS.api.session();
    if (!s) return;
    NAV.forEach(function (n) {
      if (n[3] && !n[3]()) return;
      nav.appendChild(JS.h("a", { href: n[1], "aria-current": n[0] === active ? "page" : null }, n[2]));
    });
    var who = document.getElementById("who");
    JS.clear(who);
    who.appendChild(JS.h("span.role", { title: "your role: " + s.role }, s.role));
    who.appendChild(JS.h("span.live", { "aria-hidden": "true", title: "live updates" }));
    who.appendChild(JS.h("button.link#logout", { type: "button", onclick: function () {
      JS.api.logout().then(function () { JS.go("#/login"); });
    } }, "Log out"));
  }

  function route() {
    leave();
    JS.flash(null);
    var r = parse();
    var main = document.getElementById("main");
    JS.clear(main);
    var s = JS.api.session();
    if (r.name === "login" || !s) {
      if (r.name !== "login") { location.replace("#/login?next=" + encodeURIComponent(location.hash)); return; }
      renderNav(null);
      JS.clear(document.getElementById("who"));
      return JS.pages.login(pageContext(main, r.params, r.query));
    }
    var nav = { task: "tasks", schedule: "schedules", workflow: "workflows" }[r.name] || r.name;
    renderNav(nav);
    var page = JS.pages[r.name];
    if (!page) {
      main.appendChild(JS.h("h1", "Not found"));
      main.appendChild(JS.h("p", "There is no page ", JS.h("code", r.name), ". ", JS.link("#/", "Overview")));
      return;
    }
    document.title = "jetsched · " + (NAV.filter(function (n) { return n[0] === nav; })[0] || [0, 0, r.name])[2];
    var ctx = pageContext(main, r.params, r.query);
    Promise.resolve().then(function () { return page(ctx); }).catch(function (e) { JS.showError(main, e); });
  }

  /* An error box for a failed load, with the API's code and message. */
  JS.showError = function (where, e) {
    where.appendChild(JS.h("div.error", { role: "alert" }, JS.h("strong", e.code || "error"), ": ", e.message || String(e)));
  };

  /* Operator-only button: not created at all for a viewer (the server refuses
   * the request anyway; hiding is for clarity, not for safety). */
  JS.opButton = function (label, onclick, attrs) {
    if (!JS.api.canOperate()) return null;
    var b = JS.h("button", Object.assign({ type: "button", "data-op": "" }, attrs || {}), label);
    b.addEventListener("click", function (ev) {
      if (b.disabled) return;
      b.disabled = true;
      Promise.resolve().then(function () { return onclick(ev, b); })
        .catch(function (e) { if (e) JS.flash((e.code ? e.code + ": " : "") + e.message, "bad"); })
        .then(function () { if (b.isConnected) b.disabled = false; });
    });
    return b;
  };

  JS.confirm = function (msg) { return window.confirm(msg); };

  JS.api.onUnauthenticated = function () {
    if (parse().name !== "login") { JS.api.logout(); JS.go("#/login?next=" + encodeURIComponent(location.hash)); }
  };

  JS.pages.login = function (ctx) {
    document.title = "jetsched · log in";
    var input = JS.h("input#token", { type: "password", name: "token", autocomplete: "current-password", required: true, spellcheck: "false" });
    var err = JS.h("p.error#login-error", { role: "alert", hidden: true });
    var form = JS.h("form.login", { onsubmit: function (ev) {
      ev.preventDefault();
      err.hidden = true;
      btn.disabled = true;
      JS.api.login(input.value.trim()).then(function (s) {
        if (!s) throw new Error("the server did not start a session");
        var next = ctx.query.next && /^#\//.test(ctx.query.next) && !/^#\/login/.test(ctx.query.next) ? ctx.query.next : "#/";
        JS.go(next);
      }).catch(function (e) {
        JS.clear(err).appendChild(document.createTextNode(e.status === 401 ? "That token is not valid." :
          e.status === 429 ? "Too many failed logins; wait a minute and try again." : (e.message || String(e))));
        err.hidden = false;
        btn.disabled = false;
        input.select();
      });
    } },
      JS.h("h1", "jetsched"),
      JS.h("p.muted", "Log in with an API token (a viewer or an operator token from web.tokens)."),
      JS.field("Token", input),
      err,
      JS.h("button.primary#login-submit", { type: "submit" }, "Log in"));
    var btn = form.querySelector("button");
    ctx.main.appendChild(form);
    input.focus();
  };

  function boot() {
    window.addEventListener("hashchange", route);
    document.querySelector(".skip").addEventListener("click", function (ev) {
      ev.preventDefault();
      document.getElementById("main").focus();
    });
    JS.api.loadSession().then(function () {
      return JS.api.session() ? JS.api.loadOpenapi() : null;
    }).catch(function (e) { JS.flash("schedulerd: " + e.message, "bad"); }).then(route);
  }
  /* After a login the OpenAPI document is loaded once (optional routes). */
  var login = JS.api.login;
  JS.api.login = function (t) { return login(t).then(function (s) { return JS.api.loadOpenapi().then(function () { return s; }); }); };

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", boot); else boot();
})();
