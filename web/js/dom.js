/* web/js/dom.js: the console's DOM and formatting helpers. Every piece of
 * server data reaches the page through h()/text nodes (textContent), never
 * through innerHTML, so a task id, payload or error message cannot inject
 * markup. Shared by every page (global JS namespace, no build step). */
"use strict";
var JS = window.JS || (window.JS = {});

/* h("tag.class#id", {attr: v, onclick: fn}, child, [children], "text"): one element.
 * Attributes are set with setAttribute/properties, children appended as text
 * nodes when they are strings or numbers; null/undefined/false are skipped. */
JS.h = function (spec, attrs) {
  var m = /^([a-z0-9]+)?((?:[.#][A-Za-z0-9_-]+)*)$/.exec(spec);
  var el = document.createElement((m && m[1]) || "div");
  if (m && m[2]) {
    m[2].replace(/([.#])([A-Za-z0-9_-]+)/g, function (_, k, v) {
      if (k === ".") el.classList.add(v); else el.id = v;
      return "";
    });
  }
  var start = 1;
  if (attrs && typeof attrs === "object" && !(attrs instanceof Node) && !Array.isArray(attrs)) {
    start = 2;
    Object.keys(attrs).forEach(function (k) {
      var v = attrs[k];
      if (v === undefined || v === null || v === false) return;
      if (k.slice(0, 2) === "on" && typeof v === "function") el.addEventListener(k.slice(2), v);
      else if (k === "value" || k === "checked" || k === "disabled" || k === "selected") el[k] = v;
      else if (k === "dataset") Object.keys(v).forEach(function (d) { el.dataset[d] = v[d]; });
      else el.setAttribute(k, v === true ? "" : String(v));
    });
  }
  for (var i = start; i < arguments.length; i++) JS.append(el, arguments[i]);
  return el;
};

JS.append = function (el, c) {
  if (c === undefined || c === null || c === false) return el;
  if (Array.isArray(c)) { c.forEach(function (x) { JS.append(el, x); }); return el; }
  el.appendChild(c instanceof Node ? c : document.createTextNode(String(c)));
  return el;
};

JS.clear = function (el) { while (el.firstChild) el.removeChild(el.firstChild); return el; };

/* SVG element (charts) with attributes; children appended like h(). */
JS.svg = function (tag, attrs) {
  var el = document.createElementNS("http://www.w3.org/2000/svg", tag);
  Object.keys(attrs || {}).forEach(function (k) { el.setAttribute(k, String(attrs[k])); });
  for (var i = 2; i < arguments.length; i++) {
    var c = arguments[i];
    if (c === null || c === undefined) continue;
    el.appendChild(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
};

/* ---- formatting ---- */

JS.dur = function (ms) {
  var s = Math.abs(ms) / 1000;
  if (s < 1) return Math.round(Math.abs(ms)) + "ms";
  if (s < 60) return (s < 10 ? s.toFixed(1).replace(/\.0$/, "") : Math.round(s)) + "s";
  if (s < 3600) return Math.floor(s / 60) + "m" + (s < 600 ? " " + Math.round(s % 60) + "s" : "");
  if (s < 86400) return Math.floor(s / 3600) + "h" + (s < 36000 ? " " + Math.floor((s % 3600) / 60) + "m" : "");
  return Math.floor(s / 86400) + "d";
};

/* "3s ago" / "in 9s", with the RFC 3339 time as its tooltip. */
JS.when = function (iso) {
  if (!iso) return JS.h("span.muted", "-");
  var t = Date.parse(iso);
  if (isNaN(t)) return JS.h("span", iso);
  var d = t - Date.now();
  var txt = Math.abs(d) < 1000 ? "now" : d > 0 ? "in " + JS.dur(d) : JS.dur(d) + " ago";
  return JS.h("time", { datetime: iso, title: iso }, txt);
};

JS.took = function (from, to) {
  if (!from || !to) return "-";
  return JS.dur(Date.parse(to) - Date.parse(from));
};

JS.status = function (s) {
  return JS.h("span.badge.st-" + String(s || "unknown").replace(/[^a-z_]/g, ""), String(s || "-"));
};

/* A payload/result string shown as pretty JSON when it parses, else verbatim. */
JS.pretty = function (s) {
  if (s === null || s === undefined) return "";
  try { return JSON.stringify(JSON.parse(s), null, 2); } catch (e) { return String(s); }
};

JS.qs = function (params) {
  var out = [];
  Object.keys(params).forEach(function (k) {
    var v = params[k];
    if (v === undefined || v === null || v === "") return;
    out.push(encodeURIComponent(k) + "=" + encodeURIComponent(v));
  });
  return out.length ? "?" + out.join("&") : "";
};

/* A labelled form field: <label>text <input/select></label>. */
JS.field = function (label, input, hint) {
  return JS.h("label.field", JS.h("span.label", label), input, hint ? JS.h("small.hint", hint) : null);
};

JS.select = function (attrs, options, current) {
  var s = JS.h("select", attrs);
  options.forEach(function (o) {
    var v = Array.isArray(o) ? o[0] : o, l = Array.isArray(o) ? o[1] : o;
    s.appendChild(JS.h("option", { value: v, selected: v === current }, l));
  });
  return s;
};

/* Transient message at the top of the page (role=status for screen readers). */
JS.flash = function (msg, kind) {
  var box = document.getElementById("flash");
  if (!box) return;
  JS.clear(box);
  if (!msg) { box.hidden = true; return; }
  box.hidden = false;
  box.className = "flash " + (kind || "info");
  box.appendChild(JS.h("span", msg));
  box.appendChild(JS.h("button.link", { type: "button", "aria-label": "dismiss", onclick: function () { JS.flash(null); } }, "×"));
};
