"""The post-processing every method shares: per-row class scores -> scored, de-duplicated intervals.

Pure functions on numpy arrays, so each method's localisation picks from the
same parts:

- :func:`normalise` puts one class's row scores on [0, 1] per video, so a
  threshold means the same on every video whatever the score's floor and
  ceiling (a video whose background carries its class's scene has a high
  floor; a method whose scores are probabilities and one whose scores are
  attention-weighted differ in ceiling). :func:`two_class_normalise` does
  the same with the means of the video's low and high rows (Otsu's split)
  in place of its minimum and maximum. :func:`clamped_normalise` is
  min-max with both ends clamped at 0 (BaS-Net's released code), for row
  scores whose sign means something (class logits).
- :func:`runs` and :func:`proposals`: connected runs of rows above one or
  several thresholds, pooled (multi-threshold proposals, as BaS-Net and its
  successors generate them).
- :func:`outer_inner_contrast` and :func:`inside_mean`: interval scores.
- :func:`nms` and :func:`soft_nms`: suppression of overlapping intervals of
  one class.

Row indices are inclusive ``(first, last)`` pairs; times come from
:func:`detect.localize.row_bounds`.
"""
from __future__ import annotations

import numpy as np
from scipy.ndimage import median_filter


def normalise(w: np.ndarray) -> np.ndarray:
    """Min-max normalisation over time, per column: ``(w - min) / (max - min)``.

    ``w``: (T,) or (T, C). Invariant to any increasing affine map ``a*w + b``
    (a > 0) of a column, so intervals found on it do not depend on a video's
    score floor or scale. A constant column has no structure to threshold: it
    maps to 1 (every row equally the video's best), so a class that fills the
    whole video (a trimmed clip, a long ActivityNet action) is still found.
    """
    w = np.asarray(w, dtype=float)
    lo, hi = w.min(axis=0), w.max(axis=0)
    span = hi - lo
    flat = span <= 1e-12 * np.maximum(1.0, np.abs(hi))
    out = (w - lo) / np.where(flat, 1.0, span)
    return np.where(flat, 1.0, out)


def clamped_normalise(w: np.ndarray) -> np.ndarray:
    """Per column, ``(w - lo) / (hi - lo)`` with ``lo = max(min, 0)`` and ``hi = max(max, 0)``.

    ``w``: (T,) or (T, C) row scores whose sign matters, such as class
    logits. Where a column has negative and positive scores it is divided by
    its maximum, so the negative rows stay below 0 and no threshold >= 0
    takes them; where all are positive it is min-max normalised; where none
    is positive it is left as it is (<= 0). A span of 0 counts as 1. This is
    the normalisation of the CAS in BaS-Net's released code (Lee et al.,
    AAAI 2020), before its thresholds from 0 to 0.225.
    """
    w = np.asarray(w, dtype=float)
    lo, hi = np.maximum(w.min(axis=0), 0.0), np.maximum(w.max(axis=0), 0.0)
    span = hi - lo
    return (w - lo) / np.where(span > 0, span, 1.0)


def otsu_split(v: np.ndarray) -> tuple[float, float]:
    """Means of the low and high class of Otsu's two-class split of the values ``v`` (1-D).

    Otsu (1979): the split point that maximises the between-class variance
    ``n_lo n_hi (mean_lo - mean_hi)^2``, searched between distinct sorted
    values (exactly, not over a histogram). Equal values never straddle it.
    """
    v = np.sort(np.asarray(v, dtype=float))
    n = len(v)
    c = np.cumsum(v)
    k = np.nonzero(v[1:] > v[:-1])[0] + 1  # sizes of the low class at each distinct split
    if len(k) == 0:
        return float(v[0]), float(v[0])
    lo = c[k - 1] / k
    hi = (c[-1] - c[k - 1]) / (n - k)
    best = int(np.argmax(k * (n - k) * (hi - lo) ** 2))
    return float(lo[best]), float(hi[best])


def two_class_normalise(w: np.ndarray) -> np.ndarray:
    """Per column, 0 at the mean of the video's low rows and 1 at the mean of its high rows (Otsu's split).

    ``w``: (T,) or (T, C). Like :func:`normalise`, invariant to any
    increasing affine map of a column, but anchored on where most rows are
    rather than on the single lowest and highest: a threshold of 0.2 is a
    fifth of the way from the video's typical background to its typical
    action. Min-max puts a video's background noise and the gaps between
    close actions at a height that depends on how much of the video is
    action; the two means do not. Values fall outside [0, 1] (below the low
    mean, above the high mean). A constant column maps to 1, as in
    :func:`normalise`.
    """
    w = np.asarray(w, dtype=float)
    cols = w.reshape(len(w), -1)
    out = np.ones_like(cols)
    for j in range(cols.shape[1]):
        lo, hi = otsu_split(cols[:, j])
        if hi - lo > 1e-12 * max(1.0, abs(hi)):
            out[:, j] = (cols[:, j] - lo) / (hi - lo)
    return out.reshape(w.shape)


def window_rows(times: np.ndarray, seconds: float) -> int:
    """The odd number of rows nearest to ``seconds`` at the rows' median spacing (1 = no window)."""
    if seconds <= 0 or len(times) < 2:
        return 1
    step = float(np.median(np.diff(times)))
    return int(round(seconds / step)) | 1 if step > 0 else 1


def median_smooth(level: np.ndarray, rows: int) -> np.ndarray:
    """(T,) level median-filtered over ``rows`` (odd) rows, the ends repeating the first and last row: runs and
    gaps shorter than half the window vanish, edges of longer ones stay where they were."""
    if rows <= 1:
        return level
    return median_filter(level, size=rows, mode="nearest")


def runs(active: np.ndarray) -> list[tuple[int, int]]:
    """Maximal runs of True as inclusive ``(first, last)`` row indices."""
    a = np.concatenate([[False], np.asarray(active, dtype=bool), [False]])
    d = np.diff(a.astype(np.int8))
    starts = np.nonzero(d == 1)[0]
    ends = np.nonzero(d == -1)[0] - 1
    return list(zip(starts.tolist(), ends.tolist()))


def proposals(level: np.ndarray, thresholds, min_rows: int = 1) -> list[tuple[int, int]]:
    """Runs of ``level >= t`` for every ``t`` in ``thresholds``, pooled without duplicates, in row order.

    Lower thresholds give longer runs that merge neighbouring actions; higher
    ones split them. Pooling both and letting suppression choose by score
    avoids betting on one threshold.
    """
    found = set()
    for t in thresholds:
        found.update(r for r in runs(level >= t) if r[1] - r[0] + 1 >= min_rows)
    return sorted(found)


def inside_mean(w: np.ndarray, first: int, last: int) -> float:
    return float(w[first:last + 1].mean())


def outer_inner_contrast(w: np.ndarray, first: int, last: int, margin: float = 0.25) -> float:
    """Mean of ``w`` inside minus its mean in the rows just outside (``margin`` x length each side).

    The outer-inner contrast of AutoLoc (Shou et al., 2018) and W-TALC's
    scoring: high for an interval whose edges sit where the score drops; a run
    cut out of a long plateau scores near 0. At the ends of the video the
    outer region is whatever rows exist; with none, the outer mean is 0.
    """
    length = last - first + 1
    m = max(1, int(round(length * margin)))
    outer = np.concatenate([w[max(0, first - m):first], w[last + 1:last + 1 + m]])
    return inside_mean(w, first, last) - (float(outer.mean()) if len(outer) else 0.0)


def tiou(segment, others: np.ndarray) -> np.ndarray:
    """Temporal IoU of one ``[start, end]`` with each row of ``others`` (K, 2); 0 where both have no length.

    Not :func:`detect.evaluate.segment_iou`: that one keeps the official
    evaluator's 0/0 = NaN on purpose, which would make suppression drop a
    zero-length interval instead of keeping it.
    """
    others = np.asarray(others, dtype=float).reshape(-1, 2)
    inter = np.clip(np.minimum(segment[1], others[:, 1]) - np.maximum(segment[0], others[:, 0]), 0.0, None)
    union = (segment[1] - segment[0]) + (others[:, 1] - others[:, 0]) - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)


def _order(scores: np.ndarray) -> np.ndarray:
    # Stable, so equal scores keep their input order and results do not depend on the sort routine.
    return np.argsort(-scores, kind="stable")


def nms(segments, scores, iou: float) -> list[int]:
    """Greedy non-maximum suppression: indices kept, best first.

    A segment is dropped when its tIoU with an already kept one exceeds ``iou``.
    """
    seg = np.asarray(segments, dtype=float).reshape(-1, 2)
    sc = np.asarray(scores, dtype=float)
    keep: list[int] = []
    for i in _order(sc):
        if not keep or tiou(seg[i], seg[keep]).max() <= iou:
            keep.append(int(i))
    return keep


def soft_nms(segments, scores, sigma: float = 0.75, iou: float = 0.0,
             min_score: float = 1e-3) -> tuple[list[int], np.ndarray]:
    """Gaussian soft-NMS (Bodla et al., 2017): indices kept, best first, and their decayed scores.

    Repeatedly take the best remaining segment; every remaining one whose tIoU
    with it exceeds ``iou`` has its score multiplied by ``exp(-tIoU^2 / sigma)``.
    Segments whose score falls below ``min_score`` times the best input score
    are dropped. Unlike NMS, a near-duplicate survives with a lower score,
    which helps AP at the strict tIoUs when the best-scoring copy is the
    misplaced one.
    """
    seg = np.asarray(segments, dtype=float).reshape(-1, 2)
    sc = np.asarray(scores, dtype=float).copy()
    floor = min_score * (float(sc.max()) if len(sc) else 0.0)
    remaining = np.ones(len(sc), dtype=bool)
    live = sc.copy()  # the scores of the remaining segments, -inf where taken
    keep, kept_scores = [], []
    # Each pick depends on the decays of the picks before it, so the loop over picks stays; within a pick
    # the work is array operations over all segments.
    for _ in range(len(sc)):
        j = int(np.argmax(live))  # the first of equal scores, the lowest index: the stable order of _order
        if live[j] == -np.inf:  # only -inf scores remain: the lowest remaining index
            j = int(np.flatnonzero(remaining)[0])
        remaining[j], live[j] = False, -np.inf
        if sc[j] < floor:
            break
        keep.append(j)
        kept_scores.append(sc[j])
        o = tiou(seg[j], seg)
        hit = remaining & (o > iou)
        sc[hit] = sc[hit] * np.exp(-(o[hit] ** 2) / sigma)
        live[hit] = sc[hit]
    return keep, np.array(kept_scores)
