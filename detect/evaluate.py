"""ActivityNet detection protocol and video-level classification metrics.

Detection mAP follows the official ActivityNet ``Evaluation/eval_detection.py``
to the letter, written again here to be fast:

1. For each class present in the ground truth, its predictions (in the order
   the detections file lists them) are ranked by ``score.argsort()[::-1]``.
2. At each tIoU threshold, each prediction in rank order tries the ground-truth
   segments of its video and class (in ground-truth file order) in the order
   ``tiou.argsort()[::-1]`` gives: it stops as a false positive at the first
   segment whose tIoU is below the threshold, skips segments already locked at
   that threshold, and takes and locks the first other one (a true positive).
   A prediction on a video without ground truth of the class is a false positive.
3. AP is the all-point interpolated area under precision/recall, with
   recall = TP / number of ground-truth segments of the class.
4. mAP is the mean AP over the classes in the ground truth; classes without
   predictions count with AP 0; predictions of classes absent from the ground
   truth are ignored (with a warning from the command line).

Ties (equal scores, equal tIoUs) are broken as numpy's default, unstable sort
breaks them in the official code. That order depends on numpy's version and
the CPU's sort kernel, so it is not imitated: :func:`score_order` and
:func:`candidate_order` make the same ``argsort`` call on arrays with the same
values in the same order (tIoUs are computed with the official operand order).
tests/test_evaluate.py checks every AP against a literal implementation to
1e-12 on the real THUMOS14 test ground truth with tied scores and tIoUs.

Speed: matching is independent between videos, so each (class, video) pair is
matched on its small tIoU matrix, all thresholds at once, and predictions below
the lowest threshold against every segment of their video are marked false
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
    # Same operand order as the official segment_iou (candidate length first), so every
    # value, and hence numpy's order among equal values, is bit for bit the same.
    union = (b[None, :, 1] - b[None, :, 0]) + (a[:, None, 1] - a[:, None, 0]) - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        return inter / union


def interpolated_ap(precision: np.ndarray, recall: np.ndarray) -> np.ndarray:
    """All-point interpolated AP along the last axis (VOC 2010+ / ActivityNet).

    Summed over the points where recall changes only, as the official code
    does: adding the zero-width terms would change numpy's pairwise summation
    grouping and so the last bits of the result.
    """
    precision = np.atleast_2d(precision)
    recall = np.atleast_2d(recall)
    return np.array([_interpolated_ap_row(p, r) for p, r in zip(precision, recall)])


def _interpolated_ap_row(precision: np.ndarray, recall: np.ndarray) -> float:
    mprec = np.concatenate([[0.0], precision, [0.0]])
    mrec = np.concatenate([[0.0], recall, [1.0]])
    mprec = np.maximum.accumulate(mprec[::-1])[::-1]  # monotone envelope from the right
    idx = np.nonzero(mrec[1:] != mrec[:-1])[0] + 1
    return float(np.sum((mrec[idx] - mrec[idx - 1]) * mprec[idx]))


def candidate_order(iou_row: np.ndarray) -> np.ndarray:
    """Ground-truth columns in the order the official code tries them.

    The official code calls numpy's default (unstable) ``argsort()[::-1]`` on
    this very array; its order among equal tIoUs depends on numpy's version and
    the CPU's sort kernel, so it is obtained by the same call, not imitated.
    """
    return iou_row.argsort()[::-1]


def _match_prediction(row: np.ndarray, thresholds: np.ndarray, locked: np.ndarray) -> np.ndarray:
    """Take a segment for one prediction at every threshold; returns the thresholds it hit.

    Official rule per threshold: walk the candidates in ``candidate_order``;
    stop with a false positive at the first whose tIoU is below the threshold
    (written ``< thr`` so a NaN tIoU passes as it does there), skip locked
    ones, take the first other one.
    """
    order = candidate_order(row) if len(row) > 1 else np.zeros(1, dtype=np.intp)
    below = row[order][None, :] < thresholds[:, None]
    stop_here = below | ~locked[:, order]
    first = stop_here.argmax(axis=1)
    k_idx = np.arange(len(thresholds))
    hit = stop_here[k_idx, first] & ~below[k_idx, first]
    taken = order[first]
    locked[k_idx[hit], taken[hit]] = True
    return hit, taken


def _match_video(iou: np.ndarray, thresholds: np.ndarray, tp: np.ndarray, rank: np.ndarray,
                 matched: np.ndarray, columns: np.ndarray) -> None:
    """Greedy matching of one video's predictions (rows of ``iou``, already in rank order).

    Writes 1 into ``tp[:, rank[p]]`` for each threshold at which prediction
    ``p`` takes a segment, and the segment's ground-truth row (``columns``
    maps ``iou``'s columns to them) into ``matched``; locks are per
    threshold, as in the official code.
    """
    locked = np.zeros((len(thresholds), iou.shape[1]), dtype=bool)
    for p in range(iou.shape[0]):
        hit, taken = _match_prediction(iou[p], thresholds, locked)
        tp[hit, rank[p]] = 1
        matched[hit, rank[p]] = columns[taken[hit]]


def score_order(scores: np.ndarray) -> np.ndarray:
    """Prediction ranking exactly as the official code makes it: default ``argsort()[::-1]``.

    Equal scores therefore come in numpy's own (unstable) order, which is what
    makes APs identical when detections share a score.
    """
    return scores.argsort()[::-1]


def match_detections(ground_truth: pd.DataFrame, prediction: pd.DataFrame,
                     tiou_thresholds=ACTIVITYNET_TIOUS) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The official matching of one class's predictions, at each threshold.

    Columns as for :func:`average_precision_detection`. Returns ``order``
    (prediction rows in rank order), ``tp`` (K, n): 1 where the prediction
    ranked r takes a segment at threshold k, and ``matched`` (K, n): the
    positional ground-truth row it takes, -1 for a false positive.
    """
    thresholds = np.asarray(tiou_thresholds, dtype=float)
    order = score_order(prediction["score"].to_numpy(dtype=float))
    n = len(order)
    tp = np.zeros((len(thresholds), n))
    matched = np.full((len(thresholds), n), -1, dtype=np.intp)
    if n == 0 or len(ground_truth) == 0:
        return order, tp, matched
    pred_vid = prediction["video-id"].to_numpy()[order]
    pred_seg = prediction[["t-start", "t-end"]].to_numpy(dtype=float)[order]

    gt_groups = ground_truth.groupby("video-id", sort=False).indices
    gt_seg = ground_truth[["t-start", "t-end"]].to_numpy(dtype=float)
    pred_groups = pd.Series(np.arange(n)).groupby(pred_vid, sort=False).indices
    tmin = thresholds.min()
    for vid, pos in pred_groups.items():
        gidx = gt_groups.get(vid)
        if gidx is None:
            continue  # every prediction here is a false positive
        iou = pairwise_iou(pred_seg[pos], gt_seg[gidx])
        # A prediction whose every tIoU is below the lowest threshold is a false
        # positive everywhere and locks nothing, so skipping it changes no match.
        live = ~(iou < tmin).all(axis=1)
        if live.any():
            _match_video(iou[live], thresholds, tp, pos[live], matched, gidx)
    return order, tp, matched


def average_precision_detection(
    ground_truth: pd.DataFrame, prediction: pd.DataFrame, tiou_thresholds=ACTIVITYNET_TIOUS,
    ignore: np.ndarray | None = None,
) -> np.ndarray:
    """AP of one class at each threshold.

    ``ground_truth``: columns ``video-id, t-start, t-end``; ``prediction``:
    ``video-id, t-start, t-end, score``. Row order matters only for ties, and
    then as in the official code (which sees each class's rows in file order).
    ``ignore`` (bool per prediction row): a prediction marked here that is a
    false positive at a threshold counts neither way there (THUMOS14's rule
    for detections overlapping an Ambiguous span). Returns an array
    (len(thresholds),).
    """
    thresholds = np.asarray(tiou_thresholds, dtype=float)
    npos = len(ground_truth)
    if len(prediction) == 0 or npos == 0:
        return np.zeros(len(thresholds))
    order, tp, _ = match_detections(ground_truth, prediction, thresholds)
    fp = 1.0 - tp
    if ignore is not None:
        fp[:, np.asarray(ignore, dtype=bool)[order]] *= tp[:, np.asarray(ignore, dtype=bool)[order]]
    tp_c = np.cumsum(tp, axis=1)
    fp_c = np.cumsum(fp, axis=1)
    recall = tp_c / float(npos)
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
    ground_truth: pd.DataFrame, prediction: pd.DataFrame, tiou_thresholds=THUMOS_TIOUS,
    ambiguous: dict | None = None,
) -> DetectionResult:
    """mAP over the classes present in ``ground_truth``.

    ``ground_truth``: ``video-id, label, t-start, t-end`` (see
    :meth:`data.annotations.Annotations.ground_truth_frame`); ``prediction``:
    ``video-id, label, score, t-start, t-end`` (see
    :func:`data.annotations.read_detections`). ``ambiguous`` (video id ->
    [(start, end), ...]) applies the official THUMOS14 rule: a false positive
    that overlaps one of its video's Ambiguous spans is not counted. Without
    it (default) the protocol is ActivityNet's, which has no such rule.
    """
    from tsrnet.data.format.protocols import overlaps_ambiguous

    thresholds = [float(t) for t in tiou_thresholds]
    classes = sorted(ground_truth["label"].unique())
    pred_by_label = dict(tuple(prediction.groupby("label", sort=False))) if len(prediction) else {}
    gt_by_label = dict(tuple(ground_truth.groupby("label", sort=False)))
    per_class = {}
    for c in classes:
        pred_c = pred_by_label.get(c, prediction.iloc[0:0])
        ignore = None
        if ambiguous:
            ignore = overlaps_ambiguous(pred_c["video-id"].to_numpy(), pred_c["t-start"].to_numpy(),
                                        pred_c["t-end"].to_numpy(), ambiguous)
        per_class[c] = average_precision_detection(gt_by_label[c], pred_c, thresholds, ignore)
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
