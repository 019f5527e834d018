"""The diagnosis as one static HTML page: tables, charts and every video's timeline, methods side by side.

The page needs no server and no network: charts are PNG files beside it,
the timelines are drawn by a little inline JavaScript from data embedded
in the page, and the folder is written through a staging folder (a reader
never sees half a report).
"""
from __future__ import annotations

import html
import json
import os
from pathlib import Path

from tsrnet.data.format.annotations import Annotations
from tsrnet.data.core.io import staged_dir, write_json
from .rules import CHARACTERISTICS, ERROR_NAMES, ERROR_TYPES, TRUE_POSITIVE, Diagnosis
from .charts import TYPE_COLOURS, plot_false_positives, plot_sensitivity

OUTCOMES = (TRUE_POSITIVE, *ERROR_TYPES)


def write_report(report_dir, runs: dict[str, Diagnosis], ann: Annotations, title: str = "",
                 viewer: tuple | None = None) -> Path:
    """Write ``index.html``, its charts and ``diagnosis.json`` (every run's summary) into ``report_dir``.

    ``viewer``: (the viewer's page, the video ids it shows): each of those videos' timelines links to it.
    """
    report_dir = Path(report_dir)
    link = None
    if viewer is not None:
        # Relative, as the viewer refers to its videos: the two folders can move together.
        link = {"page": os.path.relpath(Path(viewer[0]).resolve(), report_dir.resolve()).replace(os.sep, "/"),
                "videos": sorted(viewer[1])}
    names = list(runs)
    with staged_dir(report_dir) as stage:
        charts = []
        for i, (name, d) in enumerate(runs.items()):
            # Untitled: the page names each column of charts.
            fp = plot_false_positives(d.summary, stage / f"run{i}-false-positives.png")
            sens = plot_sensitivity(d.summary, stage / f"run{i}-sensitivity.png")
            charts.append((fp.name, sens.name))
        write_json(stage / "diagnosis.json", {n: runs[n].summary for n in names})
        (stage / "index.html").write_text(_page(runs, ann, charts, title, link), encoding="utf-8")
    return report_dir / "index.html"


def _e(x) -> str:
    return html.escape(str(x), quote=True)


def _pct(x) -> str:
    return "–" if x is None else f"{100 * x:.1f}"


def _page(runs: dict[str, Diagnosis], ann: Annotations, charts, title: str, link: dict | None) -> str:
    names = list(runs)
    first = runs[names[0]].summary
    head = (f"tIoU {first['tiou']:.2f} · top {first['top_k']}G predictions per class · {first['bins']} bins · "
            f"{first['videos']} videos, {first['instances']} instances")
    parts = [_HEAD.replace("%TITLE%", _e(title or "Detection diagnosis")),
             f"<h1>{_e(title or 'Detection diagnosis')}</h1><p class='sub'>{_e(head)}</p>",
             "<p id='status'>loading</p>",
             _map_table(runs), _fp_table(runs), _charts(names, charts), _sensitivity_table(runs),
             _class_table(runs), _timelines_section(runs, ann, link), _SCRIPT, "</body></html>"]
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


def _timelines_section(runs, ann, link: dict | None = None) -> str:
    data = json.dumps({**timeline_data(runs, ann), "viewer": link}, separators=(",", ":")).replace("</", "<\\/")
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


def _asset(name: str) -> str:
    """The page's stylesheet or script, package data beside this module, inlined: the page is one file."""
    return (Path(__file__).with_name(name)).read_text(encoding="utf-8")


_HEAD = ("<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>%TITLE%</title><style>\n"
         + _asset("report.css") + "</style></head><body>")


_SCRIPT = "<script>\n" + _asset("report.js") + "</script>"
