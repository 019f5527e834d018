(function () {
  "use strict";
  var D = JSON.parse(document.getElementById("timeline-data").textContent);
  var NS = "http://www.w3.org/2000/svg", W = 1000, LANE = 16, LEFT = 110;
  var fc = document.getElementById("f-class"), ft = document.getElementById("f-type"),
      fs = document.getElementById("f-sort"), box = document.getElementById("timelines");
  D.classes.forEach(function (c, i) { fc.add(new Option(c, i)); });
  D.outcomes.forEach(function (o, i) { ft.add(new Option(o, i)); });
  function el(tag, attrs, parent) {
    var e = document.createElementNS(NS, tag);
    for (var k in attrs) e.setAttribute(k, attrs[k]);
    if (parent) parent.appendChild(e);
    return e;
  }
  function draw(v, cls, typ) {
    var lanes = 1 + D.methods.length, h = lanes * LANE + 14;
    var svg = el("svg", {width: W + LEFT, height: h, viewBox: "0 0 " + (W + LEFT) + " " + h});
    var x = function (t) { return LEFT + W * t / v.duration; };
    el("text", {x: 2, y: LANE - 4}, svg).textContent = "ground truth";
    D.methods.forEach(function (m, i) {
      el("text", {x: 2, y: (i + 2) * LANE - 4}, svg).textContent = m.length > 17 ? m.slice(0, 16) + "…" : m;
    });
    v.gt.forEach(function (g) {
      if (cls >= 0 && g[0] !== cls) return;
      var r = el("rect", {x: x(g[1]), y: 2, width: Math.max(1, x(g[2]) - x(g[1])), height: LANE - 4,
                          fill: g[3].some(function (f) { return f; }) ? "#555" : "#fff", stroke: "#000"}, svg);
      el("title", {}, r).textContent = D.classes[g[0]] + " " + g[1] + "–" + g[2] + " s";
      g[3].forEach(function (f, m) {
        if (!f) el("text", {x: x(g[1]), y: (m + 2) * LANE - 4, fill: "#000"}, svg).textContent = "×";
      });
    });
    var top = {};
    v.pred.forEach(function (p) { top[p[1]] = Math.max(top[p[1]] || 0, p[2]); });
    v.pred.forEach(function (p) {
      if (cls >= 0 && p[1] !== cls) return;
      var op = typ >= 0 && p[5] !== typ ? 0.08 : 0.5 + 0.5 * p[2] / (top[p[1]] || 1);
      var r = el("rect", {x: x(p[3]), y: (p[0] + 1) * LANE + 2, width: Math.max(1, x(p[4]) - x(p[3])),
                          height: LANE - 4, fill: D.colours[p[5]], "fill-opacity": op}, svg);
      el("title", {}, r).textContent = D.classes[p[1]] + " " + p[3] + "–" + p[4] + " s, score " + p[2] + ": " +
        D.outcomes[p[5]];
    });
    for (var t = 0; t <= v.duration; t += Math.max(10, Math.ceil(v.duration / 100) * 10)) {
      el("line", {x1: x(t), x2: x(t), y1: lanes * LANE, y2: lanes * LANE + 3, stroke: "#888"}, svg);
      el("text", {x: x(t) + 1, y: lanes * LANE + 12, fill: "#666"}, svg).textContent = t + "s";
    }
    return svg;
  }
  function count(v, cls, typ) {
    var n = 0;
    v.pred.forEach(function (p) { if ((cls < 0 || p[1] === cls) && (typ < 0 || p[5] === typ)) n++; });
    return n;
  }
  function missed(v, cls) {
    var n = 0;
    v.gt.forEach(function (g) { if (cls < 0 || g[0] === cls) g[3].forEach(function (f) { if (!f) n++; }); });
    return n;
  }
  function render() {
    var cls = +fc.value, typ = +ft.value;
    var vs = D.videos.filter(function (v) {
      var has = cls < 0 || v.gt.some(function (g) { return g[0] === cls; }) ||
                v.pred.some(function (p) { return p[1] === cls; });
      return has && (typ < 0 || count(v, cls, typ) > 0);
    });
    if (fs.value === "type") vs.sort(function (a, b) { return count(b, cls, typ) - count(a, cls, typ); });
    if (fs.value === "missed") vs.sort(function (a, b) { return missed(b, cls) - missed(a, cls); });
    box.textContent = "";
    vs.forEach(function (v) {
      var div = document.createElement("div");
      div.className = "video";
      var name = document.createElement("div");
      name.className = "name";
      name.textContent = v.id + " (" + v.duration.toFixed(0) + " s, " + v.gt.length + " instances)";
      if (D.viewer && D.viewer.videos.indexOf(v.id) >= 0) {  // the video itself, under its detections
        var a = document.createElement("a");
        a.href = D.viewer.page + "#video=" + encodeURIComponent(v.id);
        a.className = "watch";
        a.textContent = "watch";
        name.appendChild(document.createTextNode(" "));
        name.appendChild(a);
      }
      div.appendChild(name);
      div.appendChild(draw(v, cls, typ));
      box.appendChild(div);
    });
    document.getElementById("f-count").textContent = vs.length + " of " + D.videos.length + " videos";
    return vs.length;
  }
  [fc, ft, fs].forEach(function (s) { s.addEventListener("change", render); });
  document.querySelectorAll("table.sortable").forEach(function (tab) {
    var head = tab.rows[0];
    Array.prototype.forEach.call(head.cells, function (th, j) {
      th.addEventListener("click", function () {
        var rows = Array.prototype.slice.call(tab.rows, 1), asc = th.dataset.asc !== "1";
        rows.sort(function (a, b) {
          var p = a.cells[j].textContent, q = b.cells[j].textContent, u = parseFloat(p), w = parseFloat(q);
          var c = isNaN(u) || isNaN(w) ? p.localeCompare(q) : u - w;
          return asc ? c : -c;
        });
        th.dataset.asc = asc ? "1" : "0";
        rows.forEach(function (r) { tab.tBodies[0].appendChild(r); });
      });
    });
  });
  var drawn = render();
  // A status line a headless browser (and a reader) can check: every chart decoded, every timeline drawn.
  window.addEventListener("load", function () {
    var imgs = Array.prototype.slice.call(document.images);
    var ok = imgs.filter(function (i) { return i.complete && i.naturalWidth > 0; }).length;
    var st = document.getElementById("status");
    st.textContent = "charts " + ok + "/" + imgs.length + " loaded, " + drawn + " timelines drawn";
    st.setAttribute("data-ok", ok === imgs.length && imgs.length > 0 && drawn === D.videos.length ? "1" : "0");
  });
}());
