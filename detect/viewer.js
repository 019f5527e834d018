// The viewer's behaviour (detect/viewer.py writes the page and its data).
// One video at a time: its <video> above an SVG timeline on the video's time axis. The URL's hash
// (#video=ID&t=SECONDS) names the video and position, so other pages (the diagnosis report) link here.
(function () {
  "use strict";
  var D = JSON.parse(document.getElementById("view-data").textContent);
  var NS = "http://www.w3.org/2000/svg", W = 900, LEFT = 130, LANE = 18, CURVE = 90, ATT = 50, AXIS = 22;
  var PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
                 "#bcbd22", "#17becf"];
  var video = document.getElementById("video"), box = document.getElementById("timeline"),
      list = document.getElementById("list"), filter = document.getElementById("f-class"),
      note = document.getElementById("note"), status = document.getElementById("status"),
      tbody = document.querySelector("#dets tbody");
  var byId = {}, current = null, pos = 0, cursor = null, scale = null, svg = null, videoState = "";
  D.videos.forEach(function (v) { byId[v.id] = v; });

  function colour(label) { return PALETTE[Math.max(0, D.classes.indexOf(label)) % PALETTE.length]; }
  function el(tag, attrs, parent) {
    var e = document.createElementNS(NS, tag);
    for (var k in attrs) e.setAttribute(k, attrs[k]);
    if (parent) parent.appendChild(e);
    return e;
  }
  function fmt(t) { return (Math.round(t * 100) / 100).toFixed(2); }

  // -- the list of videos, filtered by class -------------------------------------------------------
  var present = {};
  D.videos.forEach(function (v) {
    v.det.forEach(function (d) { present[d[0]] = 1; });
    v.gt.forEach(function (g) { present[g[0]] = 1; });
  });
  D.classes.forEach(function (c) { if (present[c]) filter.add(new Option(c, c)); });
  function chosen() { return filter.value; }
  function has(v, c) {
    return !c || v.det.some(function (d) { return d[0] === c; }) || v.gt.some(function (g) { return g[0] === c; });
  }
  function fillList() {
    var c = chosen(), shown = D.videos.filter(function (v) { return has(v, c); });
    list.textContent = "";
    shown.forEach(function (v) {
      var li = document.createElement("li"), n = v.det.filter(function (d) { return !c || d[0] === c; }).length;
      li.textContent = v.id;
      li.dataset.id = v.id;
      var small = document.createElement("small");
      small.textContent = " " + n + " det." + (v.gt.length ? ", " + v.gt.length + " true" : "");
      li.appendChild(small);
      if (current && v.id === current.id) li.className = "on";
      li.addEventListener("click", function () { location.hash = "video=" + encodeURIComponent(v.id); });
      list.appendChild(li);
    });
    document.getElementById("f-count").textContent = shown.length + " of " + D.videos.length + " videos";
  }
  filter.addEventListener("change", function () {
    fillList();
    if (current) { drawn = draw(current); fillTable(current); moved(); report(); }
  });

  // -- the timeline ----------------------------------------------------------------------------------
  function lanes(v) {
    var c = chosen(), out = [];
    if (v.gt.length) out.push({name: "ground truth", items: v.gt.filter(function (g) { return !c || g[0] === c; }),
                               kind: "gt"});
    v.classes.forEach(function (k) {
      if (c && k !== c) return;
      var items = v.det.filter(function (d) { return d[0] === k; });
      if (items.length) out.push({name: k, items: items, kind: "det"});
    });
    return out;
  }
  function polyline(ts, ys, lo, hi, top, height, attrs, parent) {
    var pts = ts.map(function (t, i) {
      return scale(t).toFixed(1) + "," + (top + height - height * (ys[i] - lo) / ((hi - lo) || 1)).toFixed(1);
    });
    attrs.points = pts.join(" ");
    attrs.fill = "none";
    return el("polyline", attrs, parent);
  }
  function draw(v) {
    var L = lanes(v), streams = Object.keys(v.attention), c = chosen();
    var curves = v.classes.map(function (k, i) { return {label: k, ys: v.curves[i], score: v.video_score[i]}; })
      .filter(function (q) { return q.ys.length && (!c || q.label === c); });
    var lo = 0, hi = 1;
    curves.forEach(function (q) { q.ys.forEach(function (y) { lo = Math.min(lo, y); hi = Math.max(hi, y); }); });
    var top = 4, laneTop = top, curveTop = laneTop + L.length * LANE + 6, attTop = curveTop + CURVE + 8,
        axisTop = attTop + (streams.length ? ATT + 6 : 0), h = axisTop + AXIS;
    scale = function (t) { return LEFT + W * t / v.duration; };
    box.textContent = "";
    svg = el("svg", {width: "100%", viewBox: "0 0 " + (LEFT + W + 10) + " " + h, id: "tl"}, box);
    el("rect", {x: LEFT, y: 0, width: W, height: h - AXIS, fill: "#fafafa", "class": "bg"}, svg);
    var drawn = 0;
    L.forEach(function (lane, j) {
      var y = laneTop + j * LANE;
      el("text", {x: 4, y: y + LANE - 5, "class": lane.kind === "gt" ? "lab gt" : "lab"}, svg).textContent =
        lane.name.length > 18 ? lane.name.slice(0, 17) + "…" : lane.name;
      var best = Math.max.apply(null, lane.items.map(function (d) { return d[3] || 1; }));
      lane.items.forEach(function (d) {
        var r = el("rect", {x: scale(d[1]), y: y + 2, width: Math.max(1.5, scale(d[2]) - scale(d[1])), height: LANE - 4,
                            fill: colour(d[0]), "class": "iv " + lane.kind, "data-label": d[0],
                            "data-start": d[1], "data-end": d[2],
                            "fill-opacity": lane.kind === "gt" ? 0.9 : 0.25 + 0.75 * d[3] / best,
                            stroke: lane.kind === "gt" ? "#000" : "none"}, svg);
        if (lane.kind === "det") { r.setAttribute("data-score", d[3]); drawn++; }
        el("title", {}, r).textContent = d[0] + " " + fmt(d[1]) + "–" + fmt(d[2]) + " s" +
          (lane.kind === "det" ? ", score " + d[3] : " (ground truth)");
        r.addEventListener("click", function (e) { e.stopPropagation(); seek(d[1]); });
      });
    });
    el("text", {x: LEFT + 4, y: curveTop + 12, "class": "lab"}, svg).textContent = v.score_label;
    el("rect", {x: LEFT, y: curveTop, width: W, height: CURVE, fill: "none", stroke: "#ccc"}, svg);
    curves.forEach(function (q, i) {
      var p = polyline(v.times, q.ys, lo, hi, curveTop, CURVE, {stroke: colour(q.label), "stroke-width": 1.4,
                                                               "class": "curve", "data-label": q.label}, svg);
      el("title", {}, p).textContent = q.label + " (video score " + q.score + ")";
      el("text", {x: 4, y: curveTop + 12 + 13 * i, fill: colour(q.label), "class": "key"}, svg).textContent =
        (q.label.length > 14 ? q.label.slice(0, 13) + "…" : q.label) + " " + q.score;
    });
    if (streams.length) {
      el("text", {x: LEFT + 4, y: attTop + 12, "class": "lab"}, svg).textContent = "attention ÷ max";
      el("rect", {x: LEFT, y: attTop, width: W, height: ATT, fill: "none", stroke: "#ccc"}, svg);
      streams.forEach(function (s, i) {
        polyline(v.times, v.attention[s], 0, 1, attTop, ATT, {stroke: i ? "#888" : "#333", "stroke-width": 1.2,
                 "stroke-dasharray": i ? "4 2" : "", "class": "att", "data-stream": s}, svg);
        el("text", {x: 4, y: attTop + 12 + 12 * i, "class": "key"}, svg).textContent = (i ? "- - " : "—— ") + s;
      });
    }
    var step = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 1800].find(function (s) { return v.duration / s <= 12; })
               || 3600;
    for (var t = 0; t <= v.duration + 1e-9; t += step) {
      el("line", {x1: scale(t), x2: scale(t), y1: axisTop, y2: axisTop + 4, stroke: "#000"}, svg);
      el("text", {x: scale(t), y: axisTop + 16, "class": "tick"}, svg).textContent = t + " s";
    }
    cursor = el("line", {x1: scale(pos), x2: scale(pos), y1: 0, y2: axisTop, stroke: "#c00", "stroke-width": 1.5,
                         id: "cursor"}, svg);
    svg.addEventListener("click", function (e) {
      var b = svg.getBoundingClientRect(), x = (e.clientX - b.left) * (LEFT + W + 10) / b.width;
      if (x >= LEFT && x <= LEFT + W) seek((x - LEFT) / W * v.duration);
    });
    return drawn;
  }

  // -- the table of detections ---------------------------------------------------------------------------
  function targets(v) { var c = chosen(); return v.det.filter(function (d) { return !c || d[0] === c; }); }
  function fillTable(v) {
    tbody.textContent = "";
    targets(v).forEach(function (d) {
      var tr = document.createElement("tr");
      [d[0], fmt(d[1]), fmt(d[2]), d[3]].forEach(function (x) {
        var td = document.createElement("td"); td.textContent = x; tr.appendChild(td);
      });
      tr.dataset.start = d[1];
      tr.dataset.end = d[2];
      tr.addEventListener("click", function () { seek(d[1]); });
      tbody.appendChild(tr);
    });
  }

  // -- position: the video's time, or the cursor's alone when there is no video ----------------------------
  function hasVideo() { return !!(current && current.src) && !video.error; }
  function seek(t) {
    pos = Math.max(0, Math.min(t, current.duration));
    if (hasVideo()) video.currentTime = pos;
    moved();
  }
  function moved() {
    if (cursor && scale) { cursor.setAttribute("x1", scale(pos)); cursor.setAttribute("x2", scale(pos)); }
    Array.prototype.forEach.call(tbody.rows, function (tr) {
      tr.className = +tr.dataset.start <= pos + 1e-6 && pos <= +tr.dataset.end ? "on" : "";
    });
  }
  function follow() {
    if (!hasVideo()) return;
    pos = video.currentTime;
    moved();
    if (!video.paused) requestAnimationFrame(follow);
  }
  video.addEventListener("timeupdate", follow);
  video.addEventListener("play", follow);
  video.addEventListener("seeked", follow);
  video.addEventListener("loadedmetadata", function () { videoState = "ready"; report(); if (pos) seek(pos); });
  video.addEventListener("error", function () {
    videoState = "cannot be played";
    note.textContent = "This browser cannot play " + current.src + " (its codec or container); " +
      "detect --view-copy writes a copy browsers play.";
    report();
  });
  function step(dir) {
    var ds = targets(current), t = pos, next = null;
    for (var i = 0; i < ds.length; i++) {
      var s = ds[dir > 0 ? i : ds.length - 1 - i][1];
      if (dir > 0 ? s > t + 0.05 : s < t - 0.05) { next = s; break; }
    }
    if (next !== null) seek(next);
  }
  document.addEventListener("keydown", function (e) {
    var tag = e.target.tagName;
    if (!current || tag === "SELECT" || tag === "INPUT" || e.ctrlKey || e.metaKey || e.altKey) return;
    if (e.key === "n" || e.key === "]") { step(1); e.preventDefault(); }
    else if (e.key === "p" || e.key === "[") { step(-1); e.preventDefault(); }
    else if (e.key === " " && tag !== "VIDEO" && hasVideo()) {
      e.preventDefault();
      if (video.paused) { var played = video.play(); if (played) played.catch(function () {}); } else video.pause();
    }
  });

  // -- which video: the hash ----------------------------------------------------------------------------
  var drawn = 0;
  function report() {
    status.dataset.ok = "1";
    status.textContent = D.videos.length + " videos; " + (current ? current.id + ": " + drawn +
      " detections drawn, video " + (current.src ? videoState || "loading" : "not available") : "none shown");
  }
  function show() {
    var h = {};
    location.hash.replace(/^#/, "").split("&").forEach(function (kv) {
      var i = kv.indexOf("=");
      if (i > 0) h[kv.slice(0, i)] = decodeURIComponent(kv.slice(i + 1));
    });
    var v = byId[h.video] || (current ? null : D.videos[0]);
    if (!v) return;
    var t = h.t !== undefined && isFinite(+h.t) ? +h.t : 0;
    if (v !== current) {
      current = v;
      pos = t;
      videoState = "";
      document.getElementById("name").textContent = v.id;
      note.textContent = v.note || "";
      if (v.src) video.src = v.src; else { video.removeAttribute("src"); video.load(); }
      video.hidden = !v.src;
    } else {
      pos = t;
    }
    drawn = draw(v);
    fillTable(v);
    fillList();
    seek(pos);
    report();
  }
  window.addEventListener("hashchange", show);
  if (!D.videos.length) { status.dataset.ok = "1"; status.textContent = "0 videos"; return; }
  show();
})();
