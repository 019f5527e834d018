"""ActivityNet detection protocol and video-level classification metrics.

Detection mAP follows the official ActivityNet ``Evaluation/eval_detection.py``
to the letter, written again here to be fast:

1. For each class present in the ground truth, its predictions are ranked by
   score (ties: the later prediction first, as ``argsort()[::-1]`` does).
2. At each tIoU threshold, a prediction is a true positive if, among the
   ground-truth segments of the same video and class not yet matched at that
   threshold, the one with the highest tIoU has tIoU >= threshold (equal tIoUs:
   the later segment first); that segment is then locked. Otherwise it is a
   false positive, which covers predictions on videos without ground truth of
   the class.
3. AP is the all-point interpolated area under precision/recall, with
   recall = TP / number of ground-truth segments of the class.
4. mAP is the mean AP over the classes in the ground truth; classes without
   predictions count with AP 0; predictions of classes absent from the ground
   truth are ignored (with a warning from the command line).

Speed: matching is independent between videos, so each (class, video) pair is
matched on its small tIoU matrix, all thresholds at once, and predictions that
overlap no segment of their video at the lowest threshold are marked false
positives without entering the loop.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

THUMOS_TIOUS = tuple(round(0.1 * i, 2) for i in range(1, 10))  # 0.1:0.1:0.9
ACTIVITYNET_TIOUS = tuple(round(0.5 + 0.05 * i, 2) for i in range(10))  # 0.5:0.05:0.95


def segment_iou(segment: np.ndarray, candidates: np.ndarray) -> np.ndarray:
    """tIoU between one ``[start, end]`` and each row of ``candidates`` (M, 2)."""
    inter = (np.minimum(segment[1], candidates[:, 1]) - np.maximum(segment[0], candidates[:, 0])).clip(0)
    union = (candidates[:, 1] - candidates[:, 0]) + (segment[1] - segment[0]) - inter
    return inter / union


def pairwise_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """tIoU matrix between segments ``a`` (P, 2) and ``b`` (G, 2) -> (P, G)."""
    inter = (np.minimum(a[:, None, 1], b[None, :, 1]) - np.maximum(a[:, None, 0], b[None, :, 0])).clip(0)
    union = (a[:, None, 1] - a[:, None, 0]) + (b[None, :, 1] - b[None, :, 0]) - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        return inter / union


def interpolated_ap(precision: np.ndarray, recall: np.ndarray) -> np.ndarray:
    """All-point interpolated AP along the last axis (VOC 2010+ / ActivityNet)."""
    precision = np.atleast_2d(precision)
    recall = np.atleast_2d(recall)
    k = precision.shape[0]
    mprec = np.concatenate([np.zeros((k, 1)), precision, np.zeros((k, 1))], axis=1)
    mrec = np.concatenate([np.zeros((k, 1)), recall, np.ones((k, 1))], axis=1)
    mprec = np.maximum.accumulate(mprec[:, ::-1], axis=1)[:, ::-1]
    # Sum only where recall changes; where it does not the width is 0 anyway.
    widths = np.diff(mrec, axis=1)
    return (widths * mprec[:, 1:]).sum(axis=1)


def _match_video(iou: np.ndarray, thresholds: np.ndarray, tp: np.ndarray, order_pos: np.ndarray) -> None:
    """Greedy matching of one video's predictions (rows of ``iou``, already in rank order).

    Writes 1 into ``tp[:, order_pos[p]]`` for each threshold at which prediction
    ``p`` takes a segment.
    """
    k, g = len(thresholds), iou.shape[1]
    locked = np.zeros((k, g), dtype=bool)
    # Reverse columns so argmax's first-hit picks the later segment on equal tIoU.
    iou_rev = iou[:, ::-1]
    for p in range(iou.shape[0]):
        row = iou_rev[p]
        avail = (row[None, :] >= thresholds[:, None]) & ~locked
        hit = avail.any(axis=1)
        if not hit.any():
            continue
        best = np.where(avail, row[None, :], -1.0).argmax(axis=1)
        ks = np.nonzero(hit)[0]
        locked[ks, best[ks]] = True
        tp[ks, order_pos[p]] = 1


def average_precision_detection(
    ground_truth: pd.DataFrame, prediction: pd.DataFrame, tiou_thresholds=ACTIVITYNET_TIOUS
) -> np.ndarray:
    """AP of one class at each threshold.

    ``ground_truth``: columns ``video-id, t-start, t-end``; ``prediction``:
    ``video-id, t-start, t-end, score``. Returns an array (len(thresholds),).
    """
    thresholds = np.asarray(tiou_thresholds, dtype=float)
    ap = np.zeros(len(thresholds))
    npos = len(ground_truth)
    if len(prediction) == 0 or npos == 0:
        return ap
    scores = prediction["score"].to_numpy(dtype=float)
    order = np.argsort(scores, kind="stable")[::-1]
    pred_vid = prediction["video-id"].to_numpy()[order]
    pred_seg = prediction[["t-start", "t-end"]].to_numpy(dtype=float)[order]
    n = len(order)
    tp = np.zeros((len(thresholds), n))

    gt_groups = ground_truth.groupby("video-id", sort=False).indices
    gt_seg = ground_truth[["t-start", "t-end"]].to_numpy(dtype=float)
    pred_groups = pd.Series(np.arange(n)).groupby(pred_vid, sort=False).indices
    tmin = thresholds.min()
    for vid, pos in pred_groups.items():
        gidx = gt_groups.get(vid)
        if gidx is None:
            continue  # every prediction here is a false positive
        iou = pairwise_iou(pred_seg[pos], gt_seg[gidx])
        iou = np.nan_to_num(iou, nan=0.0)
        live = iou.max(axis=1) >= tmin
        if not live.any():
            continue
        # Predictions that reach no segment cannot lock one; skipping them keeps order intact.
        _match_video(iou[live], thresholds, tp, pos[live])

    fp = 1.0 - tp
    tp_c = np.cumsum(tp, axis=1)
    fp_c = np.cumsum(fp, axis=1)
    recall = tp_c / npos
    precision = tp_c / (tp_c + fp_c)
    return interpolated_ap(precision, recall)


@dataclass
class DetectionResult:
    tiou_thresholds: list[float]
    map: np.ndarray  # (K,)
    per_class: dict[str, np.ndarray] = field(default_factory=dict)  # class -> (K,)
    ignored_labels: list[str] = field(default_factory=list)

    @property
    def average_map(self) -> float:
        return float(np.mean(self.map)) if len(self.map) else 0.0

    def to_dict(self) -> dict:
        key = [f"{t:.2f}" for t in self.tiou_thresholds]
        return {
            "mAP": {k: float(v) for k, v in zip(key, self.map)},
            "average_mAP": self.average_map,
            "per_class": {c: {k: float(v) for k, v in zip(key, ap)} for c, ap in self.per_class.items()},
            "tiou_thresholds": list(self.tiou_thresholds),
            "ignored_labels": self.ignored_labels,
        }


def evaluate_detections(
    ground_truth: pd.DataFrame, prediction: pd.DataFrame, tiou_thresholds=THUMOS_TIOUS
) -> DetectionResult:
    """mAP over the classes present in ``ground_truth``.

    ``ground_truth``: ``video-id, label, t-start, t-end`` (see
    :meth:`data.annotations.Annotations.ground_truth_frame`); ``prediction``:
    ``video-id, label, score, t-start, t-end`` (see
    :func:`data.annotations.read_detections`).
    """
    thresholds = [float(t) for t in tiou_thresholds]
    classes = sorted(ground_truth["label"].unique())
    pred_by_label = dict(tuple(prediction.groupby("label", sort=False))) if len(prediction) else {}
    gt_by_label = dict(tuple(ground_truth.groupby("label", sort=False)))
    per_class = {}
    for c in classes:
        pred_c = pred_by_label.get(c, prediction.iloc[0:0])
        per_class[c] = average_precision_detection(gt_by_label[c], pred_c, thresholds)
    mAP = np.mean(np.stack(list(per_class.values())), axis=0) if per_class else np.zeros(len(thresholds))
    ignored = sorted(set(pred_by_label) - set(classes))
    return DetectionResult(thresholds, mAP, per_class, ignored)


def average_precision_ranking(scores: np.ndarray, positives: np.ndarray) -> float:
    """Non-interpolated AP of a ranking: mean precision at the rank of each positive."""
    order = np.argsort(-scores, kind="stable")
    pos = positives[order].astype(bool)
    if not pos.any():
        return float("nan")
    hits = np.cumsum(pos)
    precision_at_hit = hits[pos] / (np.nonzero(pos)[0] + 1)
    return float(precision_at_hit.mean())


def classification_metrics(scores: np.ndarray, targets: np.ndarray, classes: list[str]) -> dict:
    """Video-level top-1 accuracy and mAP.

    ``scores``: (V, C) video-level class scores; ``targets``: (V, C) multi-hot.
    Top-1 counts a hit when the best-scored class is one of the video's labels
    (THUMOS14 videos may carry several). mAP averages, over classes with at
    least one positive video, the AP of ranking the videos by that class's score.
    """
    scores = np.asarray(scores, dtype=float)
    targets = np.asarray(targets) > 0
    has_label = targets.any(axis=1)
    if not has_label.any():
        return {"top1": float("nan"), "mAP": float("nan"), "per_class_ap": {}}
    top1 = targets[np.arange(len(scores)), scores.argmax(axis=1)][has_label].mean()
    per_class = {}
    for j, c in enumerate(classes):
        if targets[:, j].any():
            per_class[c] = average_precision_ranking(scores[:, j], targets[:, j])
    return {"top1": float(top1), "mAP": float(np.mean(list(per_class.values()))), "per_class_ap": per_class}
