"""The diagnosis as one static HTML page: tables, charts and every video's timeline, methods side by side.

The page needs no server and no network: charts are PNG files beside it,
the timelines are drawn by a little inline JavaScript from data embedded
in the page, and the folder is written through a staging folder (a reader
never sees half a report).
"""
from __future__ import annotations

import html
import json
from pathlib import Path

from tsrnet.data.annotations import Annotations
from tsrnet.data.io import staged_dir, write_json
from .diagnose import CHARACTERISTICS, ERROR_NAMES, ERROR_TYPES, TRUE_POSITIVE, Diagnosis
from .diagnose_plot import TYPE_COLOURS, plot_false_positives, plot_sensitivity

OUTCOMES = (TRUE_POSITIVE, *ERROR_TYPES)


def write_report(report_dir, runs: dict[str, Diagnosis], ann: Annotations, title: str = "") -> Path:
    """Write ``index.html``, its charts and ``diagnosis.json`` (every run's summary) into ``report_dir``."""
    report_dir = Path(report_dir)
    names = list(runs)
    with staged_dir(report_dir) as stage:
        charts = []
        for i, (name, d) in enumerate(runs.items()):
            # Untitled: the page names each column of charts.
            fp = plot_false_positives(d.summary, stage / f"run{i}-false-positives.png")
            sens = plot_sensitivity(d.summary, stage / f"run{i}-sensitivity.png")
            charts.append((fp.name, sens.name))
        write_json(stage / "diagnosis.json", {n: runs[n].summary for n in names})
        (stage / "index.html").write_text(_page(runs, ann, charts, title), encoding="utf-8")
    return report_dir / "index.html"


def _e(x) -> str:
    return html.escape(str(x), quote=True)


def _pct(x) -> str:
    return "–" if x is None else f"{100 * x:.1f}"


def _page(runs: dict[str, Diagnosis], ann: Annotations, charts, title: str) -> str:
    names = list(runs)
    first = runs[names[0]].summary
    head = (f"tIoU {first['tiou']:.2f} · top {first['top_k']}G predictions per class · {first['bins']} bins · "
            f"{first['videos']} videos, {first['instances']} instances")
    parts = [_HEAD.replace("%TITLE%", _e(title or "Detection diagnosis")),
             f"<h1>{_e(title or 'Detection diagnosis')}</h1><p class='sub'>{_e(head)}</p>",
             "<p id='status'>loading</p>",
             _map_table(runs), _fp_table(runs), _charts(names, charts), _sensitivity_table(runs),
             _class_table(runs), _timelines_section(runs, ann), _SCRIPT, "</body></html>"]
    return "\n".join(parts)


def _map_table(runs) -> str:
    s0 = next(iter(runs.values())).summary
    tious = list(s0["mAP_by_tiou"])
    rows = "".join(f"<tr><th>{_e(n)}</th>" + "".join(f"<td>{_pct(d.summary['mAP_by_tiou'][t])}</td>" for t in tious)
                   + f"<td>{_pct(d.summary['mAP'])}</td></tr>" for n, d in runs.items())
    cols = "".join(f"<th>{float(t):.1f}</th>" for t in tious)
    return (f"<h2>mAP (%)</h2><table><tr><th>method</th>{cols}<th>top-{s0['top_k']}G @{s0['tiou']:.2f}</th></tr>"
            f"{rows}</table><p class='note'>Columns 0.1–0.9: all predictions (as <code>evaluate</code> scores them); "
            "last column: the predictions the diagnosis keeps, the base of the gains below.</p>")


def _fp_table(runs) -> str:
    cols = "".join(f"<th colspan='3'>{_e(n)}</th>" for n in runs)
    sub = "<th>count</th><th>share %</th><th>mAP gain</th>" * len(runs)
    rows = []
    for t in OUTCOMES:
        cells = ""
        for d in runs.values():
            s = d.summary
            n = s["true_positives"] if t == TRUE_POSITIVE else s["false_positives"][t]
            gain = "" if t == TRUE_POSITIVE else f"{100 * s['map_gain'][t]:+.1f}"
            cells += f"<td>{n}</td><td>{100 * n / max(s['predictions'], 1):.1f}</td><td>{gain}</td>"
        rows.append(f"<tr><th><span class='sw' style='background:{TYPE_COLOURS[t]}'></span>{_e(ERROR_NAMES[t])}"
                    f"</th>{cells}</tr>")
    return (f"<h2>False positives</h2><table><tr><th></th>{cols}</tr><tr><th>outcome</th>{sub}</tr>{''.join(rows)}"
            "</table><p class='note'>Share: of the kept predictions. mAP gain: points of mAP at the diagnosis "
            "tIoU when that type's predictions are removed.</p>")


def _charts(names, charts) -> str:
    cells = "".join(f"<div class='col'><h3>{_e(n)}</h3><img src='{_e(fp)}' alt='false positives of {_e(n)}'>"
                    f"<img src='{_e(sens)}' alt='sensitivity of {_e(n)}'></div>" for n, (fp, sens) in zip(names, charts))
    return f"<h2>Charts</h2><div class='grid'>{cells}</div>"


def _sensitivity_table(runs) -> str:
    s0 = next(iter(runs.values())).summary["sensitivity"]
    head = "".join(f"<th colspan='{len(s0[c]['bins'])}'>{c}</th>" for c in CHARACTERISTICS)
    bins = "".join(f"<th>{b}<br><small>{e['instances']}</small></th>" for c in CHARACTERISTICS
                   for b, e in s0[c]["bins"].items())
    rows = []
    for n, d in runs.items():
        sens = d.summary["sensitivity"]
        for key, what in (("ap_n", "AP<sub>N</sub>"), ("ap", "AP"), ("false_negative_rate", "false neg.")):
            cells = "".join(f"<td>{_pct(e[key])}</td>" for c in CHARACTERISTICS for e in sens[c]["bins"].values())
            rows.append(f"<tr><th>{_e(n)} · {what}</th>{cells}</tr>")
    return (f"<h2>Sensitivity (%)</h2><table><tr><th></th>{head}</tr><tr><th>bin (instances)</th>{bins}</tr>"
            f"{''.join(rows)}</table>")


def _class_table(runs) -> str:
    s0 = next(iter(runs.values())).summary
    cols = "".join(f"<th>{_e(n)}<br>AP %</th><th>main error</th>" for n in runs)
    rows = []
    for c in s0["per_class"]:
        cells = ""
        for d in runs.values():
            pc = d.summary["per_class"][c]
            fp = pc["false_positives"]
            worst = max(ERROR_TYPES, key=lambda t: fp[t])
            cells += f"<td>{_pct(pc['ap'])}</td><td>{_e(ERROR_NAMES[worst]) if fp[worst] else ''}</td>"
        rows.append(f"<tr><th>{_e(c)}</th><td>{s0['per_class'][c]['instances']}</td>{cells}</tr>")
    return (f"<h2>Per class (AP at tIoU {s0['tiou']:.2f}, kept predictions)</h2><table class='sortable'>"
            f"<tr><th>class</th><th>instances</th>{cols}</tr>{''.join(rows)}</table>")


def timeline_data(runs: dict[str, Diagnosis], ann: Annotations) -> dict:
    """What the timelines draw, compact: per video its instances (with whether each run found it) and each
    run's kept predictions with their outcome."""
    names = list(runs)
    classes = sorted(next(iter(runs.values())).instances["label"].unique())
    cidx = {c: i for i, c in enumerate(classes)}
    videos = {v: {"id": v, "duration": ann[v].duration or 0.0, "gt": [], "pred": []} for v in ann.video_ids()}
    key = ["video-id", "label", "t-start", "t-end"]
    # By instance, not by row: runs tested on different video sets still line up.
    found = [dict(zip(map(tuple, d.instances[key].to_numpy().tolist()), d.instances["found"])) for d in runs.values()]
    for r in runs[names[0]].instances[key].itertuples(index=False):
        if r[0] in videos:
            videos[r[0]]["gt"].append([cidx[r[1]], round(r[2], 2), round(r[3], 2),
                                       [int(f.get(tuple(r), False)) for f in found]])
    for m, d in enumerate(runs.values()):
        p = d.predictions
        for vid, lab, score, s, e, kind in zip(p["video-id"], p["label"], p["score"], p["t-start"], p["t-end"],
                                               p["type"]):
            if vid in videos:  # detections of videos outside the ground truth have no timeline
                videos[vid]["pred"].append([m, cidx[lab], round(float(score), 4), round(float(s), 2),
                                            round(float(e), 2), OUTCOMES.index(kind)])
    for v in videos.values():
        ends = [g[2] for g in v["gt"]] + [q[4] for q in v["pred"]]
        v["duration"] = max([v["duration"], *ends, 1.0])
    return {"methods": names, "classes": classes, "outcomes": [ERROR_NAMES[t] for t in OUTCOMES],
            "keys": list(OUTCOMES), "colours": [TYPE_COLOURS[t] for t in OUTCOMES], "videos": list(videos.values())}


def _timelines_section(runs, ann) -> str:
    data = json.dumps(timeline_data(runs, ann), separators=(",", ":")).replace("</", "<\\/")
    legend = "".join(f"<span class='sw' style='background:{TYPE_COLOURS[t]}'></span>{_e(ERROR_NAMES[t])} "
                     for t in OUTCOMES)
    return f"""<h2>Timelines</h2>
<div class='controls'>
 <label>class <select id='f-class'><option value='-1'>all</option></select></label>
 <label>outcome <select id='f-type'><option value='-1'>all</option></select></label>
 <label>sort <select id='f-sort'><option value='id'>video id</option><option value='type'>most of the chosen outcome
 </option><option value='missed'>most missed instances</option></select></label>
 <span id='f-count'></span>
</div>
<p class='note'>Top lane: ground truth (grey: taken by a kept prediction of at least one method; white:
missed by all; a × in a method's lane: missed by that method). Each further lane: one method's kept
predictions, coloured by outcome, opacity by score (hover for class, times and score). Filter by class and
outcome, sort by the chosen outcome's count or by missed instances. Legend: {legend}</p>
<div id='timelines'></div>
<script type='application/json' id='timeline-data'>{data}</script>"""


_HEAD = """<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>%TITLE%</title><style>
body{font:14px system-ui,sans-serif;margin:1.5em;color:#222}
h1{margin:0}.sub,.note{color:#555}.note{font-size:12px;max-width:60em}
table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;padding:2px 6px;text-align:right}
th{background:#f4f4f4}table.sortable th{cursor:pointer}
.sw{display:inline-block;width:10px;height:10px;margin-right:4px;vertical-align:middle}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(460px,1fr));gap:12px}.col img{width:100%;display:block}
.controls{margin:.5em 0}.controls label{margin-right:1em}
.video{margin:4px 0 10px}.video .name{font-size:12px;color:#333}
svg text{font:10px system-ui,sans-serif}
</style></head><body>"""

_SCRIPT = """<script>
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
</script>"""
