/* web/js/api.js: the console's only door to schedulerd: the REST routes of
 * /api/v1 (DESIGN §12, served by schedulerd's web listener), the session
 * (login, role, CSRF token) and the live events over Server-Sent Events.
 * Every route the console uses is named in ROUTES below, so a change of the
 * server's routes is a change of this table only. */
"use strict";
var JS = window.JS || (window.JS = {});

JS.api = (function () {
  var BASE = "api/v1";
  var CSRF_HEADER = "X-CSRF-Token";
  var session = null;   /* {role, csrf} once logged in */
  var openapi = null;   /* the server's OpenAPI document (which routes exist) */

  function enc(s) { return encodeURIComponent(String(s)); }

  /* verb -> [method, path]; path parts in {} are filled from args. */
  var ROUTES = {
    "login": ["POST", "/login"],
    "logout": ["POST", "/logout"],
    "session": ["GET", "/session"],
    "openapi": ["GET", "/openapi.json"],
    "stats": ["GET", "/stats"],
    "task.list": ["GET", "/tasks"],
    "task.get": ["GET", "/tasks/{id}"],
    "task.submit": ["POST", "/tasks"],
    "task.cancel": ["POST", "/tasks/{id}/cancel"],
    "schedule.list": ["GET", "/schedules"],
    "schedule.get": ["GET", "/schedules/{id}"],
    "schedule.create": ["POST", "/schedules"],
    "schedule.update": ["PATCH", "/schedules/{id}"],
    "schedule.delete": ["DELETE", "/schedules/{id}"],
    "schedule.pause": ["POST", "/schedules/{id}/pause"],
    "schedule.resume": ["POST", "/schedules/{id}/resume"],
    "schedule.trigger": ["POST", "/schedules/{id}/trigger"],
    "schedule.preview": ["POST", "/schedules/preview"],
    "dlq.list": ["GET", "/dlq"],
    "dlq.get": ["GET", "/dlq/{seq}"],
    "dlq.replay": ["POST", "/dlq/{seq}/replay"],
    "dlq.replay_all": ["POST", "/dlq/replay"],
    "dlq.purge": ["DELETE", "/dlq/{seq}"],
    "dlq.purge_all": ["POST", "/dlq/purge"],
    "cluster.leader": ["GET", "/leader"],
    "cluster.agents": ["GET", "/agents"],
    "cluster.queues": ["GET", "/queues"],
    "queue.pause": ["POST", "/queues/{queue}/pause"],
    "queue.resume": ["POST", "/queues/{queue}/resume"],
    "workflow.list": ["GET", "/workflows"],
    "workflow.get": ["GET", "/workflows/{id}"],
    "workflow.submit": ["POST", "/workflows"],
    "workflow.add": ["POST", "/workflows/{id}/add"],
    "workflow.cancel": ["POST", "/workflows/{id}/cancel"]
  };

  function ApiError(status, body, fallback) {
    var e = (body && body.error) || {};
    var err = new Error(e.message || fallback || ("HTTP " + status));
    err.status = status;
    err.code = e.code || (status === 0 ? "unavailable" : "http_" + status);
    err.field = e.field || null;
    return err;
  }

  /* call(verb, args, body): args fill the path ({id}) and, for GET and
   * DELETE, the query string; body is sent as JSON. Resolves to the parsed
   * reply, rejects with an Error carrying .status, .code, .field. */
  function call(verb, args, body) {
    var r = ROUTES[verb];
    if (!r) return Promise.reject(new Error("unknown verb " + verb));
    args = Object.assign({}, args || {});
    var path = r[1].replace(/\{(\w+)\}/g, function (_, k) { var v = args[k]; delete args[k]; return enc(v); });
    if (r[0] === "GET" || r[0] === "DELETE") path += JS.qs(args);
    var headers = { "Accept": "application/json" };
    var opts = { method: r[0], headers: headers, credentials: "same-origin", cache: "no-store" };
    if (body !== undefined) { headers["Content-Type"] = "application/json"; opts.body = JSON.stringify(body); }
    if (r[0] !== "GET" && session && session.csrf) headers[CSRF_HEADER] = session.csrf;
    return fetch(BASE + path, opts).then(function (resp) {
      return resp.text().then(function (txt) {
        var data = null;
        try { data = txt ? JSON.parse(txt) : {}; } catch (e) { data = null; }
        if (!resp.ok) {
          var err = ApiError(resp.status, data, txt && !data ? txt.slice(0, 200) : null);
          if (resp.status === 401 && verb !== "login" && verb !== "session") JS.api.onUnauthenticated(err);
          throw err;
        }
        if (data === null) throw ApiError(resp.status, null, "reply is not JSON");
        return data;
      });
    }, function (e) {
      throw ApiError(0, null, "schedulerd unreachable: " + e.message);
    });
  }

  function setSession(s) {
    session = s ? { role: s.role || "viewer", csrf: s.csrf || s.csrf_token || null, who: s.name || s.token_name || s.user || null } : null;
    document.documentElement.dataset.role = session ? session.role : "none";
    return session;
  }

  return {
    ROUTES: ROUTES,
    CSRF_HEADER: CSRF_HEADER,
    call: call,
    session: function () { return session; },
    canOperate: function () { return !!session && session.role === "operator"; },
    onUnauthenticated: function () {},

    /* Asks the server who we are (cookie session); null when not logged in. */
    loadSession: function () {
      return call("session").then(setSession, function (e) {
        if (e.status === 401) return setSession(null);
        throw e;
      });
    },
    login: function (token) {
      return call("login", null, { token: token }).then(function (r) {
        if (r && r.role) return setSession(r);
        return JS.api.loadSession();
      });
    },
    logout: function () {
      return call("logout", null, {}).catch(function () {}).then(function () { setSession(null); });
    },

    /* Whether the server has a route (from its OpenAPI document): optional
     * features (queue pause/resume) show only when the server offers them. */
    hasRoute: function (method, path) {
      var p = openapi && openapi.paths && openapi.paths["/api/v1" + path];
      return !!(p && p[method.toLowerCase()]);
    },
    loadOpenapi: function () {
      if (openapi) return Promise.resolve(openapi);
      return call("openapi").then(function (d) { openapi = d; return d; }, function () { openapi = { paths: {} }; return openapi; });
    },

    /* Live events (SSE). filters: {queue, task, workflow}; onEvent(ev) gets the
     * parsed event object. <html data-sse> says "open", "connecting" or
     * "closed" (also what the browser test waits on). Returns a closer. */
    events: function (filters, onEvent) {
      var url = BASE + "/events" + JS.qs(filters || {});
      var es = new EventSource(url);
      var root = document.documentElement;
      root.dataset.sse = "connecting";
      function handle(m) {
        var ev;
        try { ev = JSON.parse(m.data); } catch (e) { return; }
        if (m.lastEventId) root.dataset.lastEventId = m.lastEventId;
        onEvent(ev);
      }
      es.onopen = function () { root.dataset.sse = "open"; };
      es.onerror = function () { root.dataset.sse = es.readyState === 2 ? "closed" : "connecting"; };
      es.onmessage = handle;
      ["task", "event", "status"].forEach(function (t) { es.addEventListener(t, handle); });
      return function () { es.close(); root.dataset.sse = "closed"; };
    }
  };
})();
