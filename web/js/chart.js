/* web/js/chart.js: the overview's per-minute chart, drawn as plain SVG (no
 * chart library: one bar chart type is all the console needs). Bars are
 * succeeded per minute, failures stacked on top in the failure colour. */
"use strict";
var JS = window.JS || (window.JS = {});

/* minutes: [{t: ms, ok: n, failed: n}] oldest first (one per minute, gaps allowed);
 * returns an <svg> with a text summary for screen readers. */
JS.barChart = function (minutes, opts) {
  opts = opts || {};
  var W = 480, H = 130, padL = 30, padB = 16, padT = 8;
  var span = 60, now = opts.now || Date.now();
  var end = Math.floor(now / 60000) * 60000, start = end - (span - 1) * 60000;
  var byMin = {}, max = 1, ok = 0, failed = 0;
  minutes.forEach(function (m) {
    var k = Math.floor(m.t / 60000) * 60000;
    var e = byMin[k] || (byMin[k] = { ok: 0, failed: 0 });
    e.ok += m.ok || 0; e.failed += m.failed || 0;
  });
  Object.keys(byMin).forEach(function (k) {
    var e = byMin[k];
    if (+k >= start) { ok += e.ok; failed += e.failed; max = Math.max(max, e.ok + e.failed); }
  });
  var label = (opts.title ? opts.title + ": " : "") + ok + " succeeded, " + failed + " failed in the last hour";
  var svg = JS.svg("svg", { viewBox: "0 0 " + W + " " + H, class: "chart", role: "img", "aria-label": label });
  svg.appendChild(JS.svg("title", {}, label));
  var plotH = H - padB - padT, bw = (W - padL) / span;
  var y = function (v) { return padT + plotH - (v / max) * plotH; };
  /* axis: max and zero, time ticks every 15 minutes */
  svg.appendChild(JS.svg("line", { x1: padL, x2: W, y1: y(0), y2: y(0), class: "axis" }));
  svg.appendChild(JS.svg("text", { x: padL - 4, y: y(max) + 8, class: "tick", "text-anchor": "end" }, max));
  svg.appendChild(JS.svg("text", { x: padL - 4, y: y(0), class: "tick", "text-anchor": "end" }, "0"));
  [60, 45, 30, 15].forEach(function (ago) {
    var x = padL + (span - ago) * bw;
    svg.appendChild(JS.svg("text", { x: x, y: H - 3, class: "tick", "text-anchor": "middle" }, "-" + ago + "m"));
  });
  svg.appendChild(JS.svg("text", { x: W - 2, y: H - 3, class: "tick", "text-anchor": "end" }, "now"));
  for (var i = 0; i < span; i++) {
    var e = byMin[start + i * 60000];
    if (!e) continue;
    var x0 = padL + i * bw + 0.5, w = Math.max(bw - 1, 1);
    /* a minute with any task gets a visible bar (2 units at least per part) */
    var hOk = e.ok ? Math.max(y(0) - y(e.ok), 2) : 0, hFail = e.failed ? Math.max(y(e.ok) - y(e.ok + e.failed), 2) : 0;
    if (hOk) svg.appendChild(JS.svg("rect", { x: x0, y: y(0) - hOk, width: w, height: hOk, class: "bar-ok" }));
    if (hFail) svg.appendChild(JS.svg("rect", { x: x0, y: y(0) - hOk - hFail, width: w, height: hFail, class: "bar-failed" }));
  }
  return { svg: svg, ok: ok, failed: failed };
};
