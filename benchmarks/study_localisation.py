"""How detection settings change mAP on trained runs: the study behind ``detect``'s defaults.

Each run's row scores are computed once; every setting is then only
post-processing and evaluation. Two kinds of rows in the output:

- ``sweep``: one threshold at a time, 0.05 ... 0.95, on each scale: Otsu's
  two class means (the default), min-max per video, the per-video maximum
  and the row level as it is (the paper's rule); the rest of the method's
  current localisation defaults are kept (its suppression too: one
  threshold on one row level gives no overlapping intervals, but STPN
  pools two streams' proposals);
- ``candidate``: named settings (the defaults and their alternatives).

Every setting starts from the method's *current* defaults, not from those
recorded in the run, so runs trained before a default changed are studied
with today's rule.

::

    python benchmarks/study_localisation.py --features th14/untrimmed.h5 --annotations th14/annotations.json \\
        --subset test --out study/th14 runs/th14-srnet-seed0 runs/th14-tsrnet-seed0 ...

Writes ``OUT/study.csv`` (one row per run and setting), prints mAP@0.5 per
method (mean over the runs of each method) and draws ``OUT/sweep.png``.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

import numpy as np
import pandas as pd

from tsrnet.data.format.annotations import detections_frame
from tsrnet.data.format.ground_truth import load_annotations
from tsrnet.data.format.store import FeatureStore
from tsrnet.detect.evaluate import evaluate_detections
from tsrnet.detect.pipeline import detections
from tsrnet.detect.config import DetectConfig
from tsrnet.train.scoring import score_run

TIOUS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7)
SWEEP = [round(t, 2) for t in np.arange(0.05, 0.96, 0.05)]
MULTI = [round(t, 2) for t in np.arange(0.1, 0.91, 0.1)]
LOW = [round(t, 2) for t in np.arange(0.05, 0.51, 0.05)]
SCALES = ("otsu", "video", "max", "absolute")

CANDIDATES = {
    "paper: absolute 0.2, 1 row": dict(threshold=[0.2], scale="absolute", min_rows=1),
    "min-max 0.2, 1 row": dict(threshold=[0.2], scale="video", min_rows=1),
    "min-max 0.2": dict(threshold=[0.2], scale="video"),
    "otsu 0.2, 1 row": dict(threshold=[0.2], scale="otsu", min_rows=1),
    "otsu 0.2": dict(threshold=[0.2], scale="otsu"),
    "otsu 0.2, contrast": dict(threshold=[0.2], scale="otsu", score="contrast"),
    "otsu 0.2, calibrate video": dict(threshold=[0.2], scale="otsu", calibrate="video"),
    "otsu 0.1:0.3, contrast, nms 0.5": dict(threshold=[0.1, 0.2, 0.3], scale="otsu", score="contrast",
                                            suppress="nms", nms=0.5),
    "min-max 0.05:0.5, contrast, nms 0.5": dict(threshold=LOW, scale="video", score="contrast", suppress="nms",
                                                nms=0.5),
    "min-max 0.1:0.9, contrast, soft-nms": dict(threshold=MULTI, scale="video", score="contrast",
                                                suppress="soft-nms", nms=0.0),
}


def evaluate(scores, classes, gt, cfg: DetectConfig, localise) -> dict:
    res = detections(scores, classes, cfg, localise)
    ev = evaluate_detections(gt, detections_frame(res), TIOUS)
    row = {f"mAP@{t:.1f}": v * 100 for t, v in zip(ev.tiou_thresholds, ev.map)}
    row["avg"] = float(np.mean(ev.map)) * 100
    row["detections"] = sum(len(v) for v in res.values())
    return row


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("runs", nargs="+", type=Path)
    p.add_argument("--features", required=True)
    p.add_argument("--annotations", required=True)
    p.add_argument("--subset", required=True)
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--label", default="", help="Name of this data set in the output.")
    a = p.parse_args(argv)
    store = FeatureStore(a.features)
    ann = load_annotations(a.annotations)
    rows = []
    for run in a.runs:
        scored = score_run(run, store, ann, a.subset, device="cpu")  # the run's training videos left out
        model, cfg, scores = scored.model, scored.config, scored.scores
        gt = scored.truth.ground_truth_frame()
        base = dict(model=cfg.method, seed=cfg.train.seed, run=str(run), data=a.label, instances=len(gt))
        localise = model.method.evidence
        # Every setting starts from the method's current defaults and changes only what it names.
        defaults = type(model.method).detect_config()
        for scale in SCALES:
            for t in SWEEP:
                d = dataclasses.replace(defaults, threshold=[t], scale=scale)
                rows.append({**base, "kind": "sweep", "setting": f"{scale} {t}", "scale": scale, "threshold": t,
                             **evaluate(scores, model.classes, gt, d, localise)})
        rows.append({**base, "kind": "candidate", "setting": "the method's defaults",
                     **evaluate(scores, model.classes, gt, defaults, localise)})
        for name, kw in CANDIDATES.items():
            d = dataclasses.replace(defaults, **kw)
            rows.append({**base, "kind": "candidate", "setting": name,
                         **evaluate(scores, model.classes, gt, d, localise)})
        print(f"{run}: done", flush=True)
    df = pd.DataFrame(rows)
    a.out.mkdir(parents=True, exist_ok=True)
    df.to_csv(a.out / "study.csv", index=False)
    summary = summarise(df)
    (a.out / "summary.json").write_text(json.dumps(summary, indent=1))
    print(format_summary(summary))
    # One drawing for one data set or several: study_summary's (this folder is on sys.path when run as a script).
    from study_summary import plot

    plot(df, a.out / "sweep.png")


def summarise(df: pd.DataFrame) -> dict:
    """Per method: best single threshold of each scale (mean over seeds) and every candidate."""
    out = {}
    for model, g in df.groupby("model", sort=False):
        sweep = g[g.kind == "sweep"].groupby(["scale", "threshold"])["mAP@0.5"].mean()
        best = {s: (float(sweep[s].idxmax()), float(sweep[s].max())) for s in SCALES}
        cand = g[g.kind == "candidate"].groupby("setting", sort=False)[["mAP@0.5", "avg", "detections"]].mean()
        out[model] = {"best_single": best, "candidates": cand.round(2).to_dict("index"),
                      "instances": int(g["instances"].iloc[0]), "seeds": sorted(g.seed.unique().tolist())}
    return out


def format_summary(summary: dict) -> str:
    lines = []
    for model, s in summary.items():
        lines.append(f"{model} (seeds {s['seeds']}, {s['instances']} instances)")
        for scale, (t, v) in s["best_single"].items():
            lines.append(f"  best single {scale:8s} threshold {t:.2f}: mAP@0.5 {v:5.1f}")
        for name, c in s["candidates"].items():
            lines.append(f"  {name:38s} mAP@0.5 {c['mAP@0.5']:5.1f}  avg {c['avg']:5.1f}  "
                         f"detections {c['detections']:.0f}")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
