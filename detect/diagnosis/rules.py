"""Why a detector misses: the error diagnosis of DETAD (Alwassel, Caba Heilbron, Escorcia and Ghanem, ECCV 2018).

Two analyses at one tIoU threshold alpha, both built on the evaluator's own
matching (:func:`detect.evaluate.match_detections`) and AP, so that every
number here agrees with ``evaluate``:

**False positives.** Each class keeps its top ``k * G`` predictions (G: the
class's instances; the evaluator's ranking decides, ties at the cut
included). These are matched as the protocol matches them; each one that
takes no instance is put in the first of these that applies, judged against
the instance of its video (any class) it overlaps most:

- double detection: tIoU >= alpha, same label (that instance was taken by a
  higher-scored prediction, else the matching would have given it this one);
- wrong label: tIoU >= alpha, other label;
- localisation: 0.1 <= tIoU < alpha, same label;
- confusion: 0.1 <= tIoU < alpha, other label;
- background: tIoU < 0.1 with every instance, or a video without any.

The mAP gain of an error type is the mAP of the kept predictions with that
type's predictions removed, less their mAP (both by the evaluator).

**Sensitivity.** Instances are binned by length (seconds), coverage (length
/ video duration) and the number of instances in their video (of any
class, as DETAD counts them; of their own class with ``instances="class"``),
with DETAD's bins. A bin's AP is DETAD's: all predictions of a class
(no top-k cut) are matched against all its instances, those that took an
instance outside the bin are dropped, and AP is computed against the bin's
instances; the bin's value is the mean over the classes with instances in
it. Reported plain (the evaluator's AP on that set) and normalised (AP_N:
precision computed as if every class had the mean number of instances per
class, DETAD's way of making bins of different sizes comparable). A bin's
false-negative rate is the share of its instances that no prediction takes
at a rank where the class's normalised precision is still above 5% (DETAD's
floor: a hit far down a hopeless ranking is not a detection).

Choices where DETAD leaves room (DETAD's code decides the rest):

- "The instance it overlaps most": when instances of its own and of another
  class tie for the highest tIoU, the own-class one is taken (DETAD takes
  the first in file order), so a tie never depends on file order.
- A tIoU that is not a number (a zero-length prediction on a zero-length
  instance) counts as 0 when classifying; matching is the evaluator's.
- Instances of zero length are kept (DETAD drops them), so that the
  diagnosis sees the ground truth ``evaluate`` scores. An instance whose
  video has no duration, or whose coverage exceeds 1, is left out of the
  coverage bins only (counted as ``unbinned``).
- A class with instances in a bin but no predictions has AP 0 there (the
  evaluator's rule for classes without predictions).
- Bin edges are right-closed, ``(lo, hi]``, the first bin also taking its
  lower edge (pandas.cut with include_lowest, as DETAD bins them).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from tsrnet.data.core.settings import opt
from tsrnet.data.format.annotations import Annotations
from ..evaluate import (THUMOS_TIOUS, average_precision_detection, evaluate_detections, interpolated_ap,
                       match_detections, pairwise_iou, score_order)

ERROR_TYPES = ("double", "wrong_label", "localization", "confusion", "background")
TRUE_POSITIVE = "true_positive"
ERROR_NAMES = {TRUE_POSITIVE: "true positive", "double": "double detection", "wrong_label": "wrong label",
               "localization": "localisation", "confusion": "confusion", "background": "background"}
MIN_TIOU = 0.1  # DETAD's line between a poorly placed detection and one on background
FN_PRECISION_FLOOR = 0.05  # DETAD's: below this normalised precision a match no longer counts as finding
GT_COLUMNS = ["video-id", "label", "t-start", "t-end"]
PRED_COLUMNS = ["video-id", "label", "score", "t-start", "t-end"]

_INF = float("inf")
_SIZES5 = ("XS", "S", "M", "L", "XL")
# DETAD's bins (its sensitivity and false-negative scripts): THUMOS14's for short actions in long videos,
# ActivityNet's for long actions in short ones.
BINS = {
    "thumos14": {"length": ((0, 3, 6, 12, 18, _INF), _SIZES5),
                 "coverage": ((0, 0.02, 0.04, 0.06, 0.08, 1), _SIZES5),
                 "instances": ((-1, 1, 40, 80, _INF), ("XS", "S", "M", "L"))},
    "activitynet": {"length": ((0, 30, 60, 120, 180, _INF), _SIZES5),
                    "coverage": ((0, 0.2, 0.4, 0.6, 0.8, 1), _SIZES5),
                    "instances": ((-1, 1, 4, 8, _INF), ("XS", "S", "M", "L"))},
}
CHARACTERISTICS = ("length", "coverage", "instances")


@dataclass
class Diagnosis:
    summary: dict  # the JSON document (see diagnose_detections)
    predictions: pd.DataFrame  # the kept (top k*G) predictions with their "type", "rank", "instance", "tiou"
    # The ground truth with its characteristics and bins, "found" (taken by a kept prediction) and "found_any"
    # (taken by any prediction above DETAD's precision floor: not a false negative).
    instances: pd.DataFrame


def bin_index(values: np.ndarray, edges) -> np.ndarray:
    """Bin of each value for right-closed bins ``(lo, hi]`` (the first also holds its lower edge); -1 outside."""
    values = np.asarray(values, dtype=float)
    edges = np.asarray(edges, dtype=float)
    idx = np.searchsorted(edges, values, side="left") - 1
    idx[values == edges[0]] = 0
    idx[(idx < 0) | (idx >= len(edges) - 1) | np.isnan(values)] = -1
    return idx


INSTANCE_COUNTS = ("video", "class")


def instance_table(ann: Annotations, bins: dict, instances: str = "video") -> pd.DataFrame:
    """One row per instance (the evaluator's ground-truth frame) with length, coverage, instances and their bins.

    ``instances``: "video" counts every instance in the instance's video, of any class (DETAD's
    characteristics files); "class" only those of its own class."""
    if instances not in INSTANCE_COUNTS:
        raise ValueError(f"instances={instances!r}: choose from {INSTANCE_COUNTS}")
    gt = ann.ground_truth_frame().reset_index(drop=True)
    gt["length"] = gt["t-end"] - gt["t-start"]
    duration = gt["video-id"].map(lambda v: ann[v].duration if ann[v].duration else np.nan).astype(float)
    gt["coverage"] = gt["length"] / duration
    by = ["video-id"] if instances == "video" else ["video-id", "label"]
    gt["instances"] = gt.groupby(by)["label"].transform("size").astype(float)
    for name in CHARACTERISTICS:
        edges, names = bins[name]
        idx = bin_index(gt[name].to_numpy(), edges)
        # Object dtype: pandas would otherwise turn "no bin" into a NaN string.
        gt[f"{name}-bin"] = pd.Series([names[i] if i >= 0 else None for i in idx], index=gt.index, dtype=object)
    return gt


def top_predictions(gt: pd.DataFrame, pred: pd.DataFrame, top_k: int) -> pd.DataFrame:
    """Each class's first ``top_k * G`` predictions in the evaluator's ranking, in file order, with their rank."""
    counts = gt.groupby("label").size()
    keep, ranks = [], []
    for c, rows in pred.groupby("label", sort=False).indices.items():
        order = score_order(pred["score"].to_numpy(dtype=float)[rows])[: top_k * int(counts[c])]
        keep.append(rows[order])
        ranks.append(np.arange(len(order)))
    if not keep:
        return pred.iloc[0:0].assign(rank=pd.Series(dtype=int))
    keep, ranks = np.concatenate(keep), np.concatenate(ranks)
    file_order = np.argsort(keep)  # file order keeps the evaluator's tie-breaking as on the whole file
    out = pred.iloc[keep[file_order]].copy()
    out["rank"] = ranks[file_order]
    return out.reset_index(drop=True)


def _match_by_class(gt: pd.DataFrame, pred: pd.DataFrame, tiou: float) -> dict:
    """Per class: (prediction rows in rank order, their matched instance row or -1), by the evaluator."""
    out = {}
    gt_rows = gt.groupby("label").indices
    for c, rows in pred.groupby("label", sort=False).indices.items():
        g = gt_rows[c]
        order, _, matched = match_detections(gt.iloc[g][GT_COLUMNS], pred.iloc[rows][PRED_COLUMNS], [tiou])
        out[c] = (rows[order], np.where(matched[0] >= 0, g[matched[0].clip(0)], -1))
    return out


def classify(gt: pd.DataFrame, pred: pd.DataFrame, tiou: float) -> pd.DataFrame:
    """``pred`` with ``instance`` (the instance row it takes, -1 for none), ``tiou`` (its highest tIoU with any
    instance of its video) and ``type`` (true_positive or one of ERROR_TYPES)."""
    pred = pred.copy()
    instance = np.full(len(pred), -1, dtype=np.intp)
    for rows, matched in _match_by_class(gt, pred, tiou).values():
        instance[rows] = matched
    best = np.zeros(len(pred))
    own_label = np.zeros(len(pred), dtype=bool)
    gt_by_video = gt.groupby("video-id").indices
    for vid, rows in pred.groupby("video-id", sort=False).indices.items():
        g = gt_by_video.get(vid)
        if g is None:
            continue  # no instance at all: background
        iou = np.nan_to_num(pairwise_iou(pred.iloc[rows][["t-start", "t-end"]].to_numpy(float),
                                         gt.iloc[g][["t-start", "t-end"]].to_numpy(float)), nan=0.0)
        same = pred["label"].to_numpy()[rows][:, None] == gt["label"].to_numpy()[g][None, :]
        best[rows] = iou.max(axis=1)
        # Own class first among the instances of highest tIoU (see the module's notes).
        own_label[rows] = np.where(same, iou, -1.0).max(axis=1) >= best[rows]
    kind = np.where(best >= tiou, np.where(own_label, "double", "wrong_label"),
                    np.where(best >= MIN_TIOU, np.where(own_label, "localization", "confusion"), "background"))
    pred["instance"] = instance
    pred["tiou"] = best
    pred["type"] = np.where(instance >= 0, TRUE_POSITIVE, kind)
    return pred


def _normalised_precision(tp: np.ndarray, npos: int, mean_instances: float) -> tuple[np.ndarray, np.ndarray]:
    """DETAD's normalised precision and recall along a rank-ordered 0/1 true-positive vector."""
    tp_c = np.cumsum(tp)
    fp_c = np.cumsum(1.0 - tp)
    recall = tp_c / float(npos)
    return recall * mean_instances / (recall * mean_instances + fp_c), recall


def sensitivity(gt: pd.DataFrame, pred: pd.DataFrame, tiou: float, bins: dict) -> tuple[dict, np.ndarray]:
    """AP, AP_N and false-negative rate per bin of each characteristic; also whether each instance was found."""
    matches = _match_by_class(gt, pred, tiou)
    classes = sorted(gt["label"].unique())
    mean_instances = len(gt) / len(classes)
    gt_rows = gt.groupby("label").indices
    found = np.zeros(len(gt), dtype=bool)
    for c, (rows, matched) in matches.items():
        if len(rows):
            prec, _ = _normalised_precision((matched >= 0).astype(float), len(gt_rows[c]), mean_instances)
            found[matched[(matched >= 0) & (prec > FN_PRECISION_FLOOR)]] = True
    out = {}
    for name in CHARACTERISTICS:
        edges, names = bins[name]
        col = gt[f"{name}-bin"].to_numpy()
        table = {}
        for i, b in enumerate(names):
            in_bin = col == b
            entry = {"range": [edges[i], edges[i + 1] if np.isfinite(edges[i + 1]) else None],
                     "instances": int(in_bin.sum())}
            if in_bin.any():
                aps, ap_ns = [], []
                for c in classes:
                    g = gt_rows[c][in_bin[gt_rows[c]]]
                    if not len(g):
                        continue
                    rows, matched = matches.get(c, (np.zeros(0, np.intp), np.zeros(0, np.intp)))
                    kept = (matched < 0) | in_bin[matched.clip(0)]
                    sub = pred.iloc[np.sort(rows[kept])]
                    aps.append(float(average_precision_detection(gt.iloc[g], sub, [tiou])[0]))
                    if kept.any():
                        prec, rec = _normalised_precision((matched[kept] >= 0).astype(float), len(g), mean_instances)
                        ap_ns.append(float(interpolated_ap(prec, rec)[0]))
                    else:
                        ap_ns.append(0.0)
                entry.update(ap=float(np.mean(aps)), ap_n=float(np.mean(ap_ns)),
                             false_negative_rate=float(1.0 - found[in_bin].mean()))
            else:
                entry.update(ap=None, ap_n=None, false_negative_rate=None)
            table[b] = entry
        out[name] = {"bins": table, "unbinned": int(pd.isna(col).sum())}
    return out, found


def _count(types: pd.Series) -> dict:
    counts = types.value_counts()
    return {t: int(counts.get(t, 0)) for t in ERROR_TYPES}


@dataclass(frozen=True)
class DetadParams:
    """DETAD's parameters: the one declaration of their defaults (``diagnose``, ``detect --diagnose``,
    ``compare-methods --diagnose``)."""

    tiou: float = opt(0.5, "tIoU threshold alpha of the matching (evaluate's): a detection with tIoU >= alpha can "
                           "take an instance.", range=(0.01, 1.0))
    top_k: int = opt(10, "False positives are counted among each class's top k x G predictions (G: its "
                         "instances).", range=(1, None))
    bins: str = opt("thumos14", "DETAD's bins of length, coverage and instances per video: THUMOS14's (short "
                                "actions) or ActivityNet's (long ones).", choices=tuple(BINS))
    instances: str = opt("video", "What 'instances per video' counts: every instance in the instance's video, of "
                                  "any class (DETAD's), or those of its own class only.", choices=INSTANCE_COUNTS)


DETAD = DetadParams()


def diagnose_detections(ann: Annotations, pred: pd.DataFrame, tiou: float = DETAD.tiou, top_k: int = DETAD.top_k,
                        bins: str = DETAD.bins, instances: str = DETAD.instances) -> Diagnosis:
    """DETAD's diagnosis of ``pred`` (the evaluator's prediction frame) against the segments of ``ann``.

    ``summary`` holds: ``tiou``, ``top_k``, ``false_positives`` (count per error type), ``true_positives``,
    ``predictions`` (kept), ``instances``, ``mAP`` (kept predictions, at ``tiou``), ``map_gain`` (per error
    type), ``profile`` (counts per type in each slice of G predictions: top 1G, 2G, ...), ``per_class``
    (AP, instances and counts per class), ``mAP_by_tiou`` (all predictions, THUMOS14's thresholds) and
    ``sensitivity`` (per characteristic: its bins' range, instances, ap, ap_n, false_negative_rate).
    """
    edges = BINS[bins]
    gt = instance_table(ann, edges, instances)
    classes = sorted(gt["label"].unique())
    pred = pred[pred["label"].isin(classes)][PRED_COLUMNS].reset_index(drop=True)
    kept = classify(gt, top_predictions(gt, pred, top_k), tiou)
    base = evaluate_detections(gt[GT_COLUMNS], kept[PRED_COLUMNS], [tiou])
    gain = {t: float(evaluate_detections(gt[GT_COLUMNS], kept.loc[kept["type"] != t, PRED_COLUMNS], [tiou]).map[0]
                     - base.map[0]) for t in ERROR_TYPES}
    g_of = kept["label"].map(gt.groupby("label").size())
    slice_of = kept["rank"] // g_of
    profile = []
    for j in range(top_k):
        types = kept.loc[slice_of == j, "type"]
        profile.append({"top": f"{j + 1}G", TRUE_POSITIVE: int((types == TRUE_POSITIVE).sum()), **_count(types)})
    per_class = {}
    for c in classes:
        types = kept.loc[kept["label"] == c, "type"]
        per_class[c] = {"ap": float(base.per_class[c][0]), "instances": int((gt["label"] == c).sum()),
                        "true_positives": int((types == TRUE_POSITIVE).sum()), "false_positives": _count(types)}
    full = evaluate_detections(gt[GT_COLUMNS], pred, THUMOS_TIOUS)
    sens, found = sensitivity(gt, pred, tiou, edges)
    gt = gt.assign(found=False, found_any=found)
    gt.loc[kept.loc[kept["instance"] >= 0, "instance"].to_numpy(), "found"] = True
    summary = {
        "tiou": float(tiou), "top_k": int(top_k), "bins": bins, "instances_counted": instances,
        "false_positives": _count(kept["type"]), "true_positives": int((kept["type"] == TRUE_POSITIVE).sum()),
        "predictions": int(len(kept)), "instances": int(len(gt)), "videos": len(ann.video_ids()),
        "mAP": float(base.map[0]), "map_gain": gain, "profile": profile, "per_class": per_class,
        "mAP_by_tiou": {f"{t:.2f}": float(v) for t, v in zip(full.tiou_thresholds, full.map)},
        "sensitivity": sens,
    }
    return Diagnosis(summary, kept, gt)


def format_diagnosis_table(s: dict) -> str:
    """The diagnosis as a short table for the terminal."""
    kept = max(s["predictions"], 1)
    lines = [f"diagnosis at tIoU {s['tiou']:.2f}: top {s['top_k']}G predictions of each class (G: its instances), "
             f"{s['predictions']} predictions for {s['instances']} instances",
             f"mAP@{s['tiou']:.2f} of these {s['mAP'] * 100:.1f}%",
             f"{'':<17}{'count':>7}{'share':>8}  mAP gain if removed",
             f"{ERROR_NAMES[TRUE_POSITIVE]:<17}{s['true_positives']:>7}{s['true_positives'] / kept * 100:>7.1f}%"]
    for t in ERROR_TYPES:
        n = s["false_positives"][t]
        lines.append(f"{ERROR_NAMES[t]:<17}{n:>7}{n / kept * 100:>7.1f}%  {s['map_gain'][t] * 100:+.1f}")
    lines.append("sensitivity (bin: instances, AP_N %, false negatives %):")
    for name in CHARACTERISTICS:
        parts = [f"{b} {e['instances']}, {e['ap_n'] * 100:.1f}, {e['false_negative_rate'] * 100:.0f}"
                 for b, e in s["sensitivity"][name]["bins"].items() if e["instances"]]
        lines.append(f"  {name:<10} " + " | ".join(parts))
    return "\n".join(lines)
