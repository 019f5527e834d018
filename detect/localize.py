"""From per-row scores to scored time intervals (the paper's "Temporal Action Detection").

For each video and stream the model gives the localisation weight ``g_i``
(attention) and the row class probability ``sigmoid(v_c^T x_i)``. Then:

1. Normalise the attention per video and stream, ``ĝ_i = g_i / max_j g_j``.
   Softmax weights sum to one, so their raw scale shrinks with video length;
   dividing by the maximum puts every video on [0, 1] with its most attended
   row at 1, whichever attention kind is used.
2. Weighted score, Eq. (10): ``w_i^c = ĝ_i · sigmoid(v_c^T x_i)``.
3. Fusion, Eq. (11): ``w̄_i^c = θ w_i,RGB^c + (1 − θ) w_i,FLOW^c``.
4. Classes: those whose fused video-level score passes ``class_threshold``
   (the best class is always kept).
5. Rows with ``w̄ >= threshold`` form connected runs; each run becomes an
   interval from the start of its first row to the end of its last, row
   bounds being the midpoints between consecutive ``times`` (Eq. 12's
   ``ind / F`` is the special case of rows at a constant rate).
6. Score (comparable across videos): ``contrast`` = mean of w̄ inside − mean
   of w̄ in a margin of a quarter of the interval's length on each side
   (the outer-inner contrast), plus the video-level class score; or ``mean``
   = mean inside × video-level class score.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from train.config import DetectConfig


@dataclass
class VideoScores:
    """Everything detection needs about one video, as numpy arrays."""

    video_id: str
    times: np.ndarray  # (T,)
    duration: float
    gates: dict  # stream -> (T,) localisation weights, raw
    row_prob: dict  # stream -> (T, C)
    video_prob: dict  # stream -> (C,)

    def fused_video_prob(self, theta: float) -> np.ndarray:
        return fuse(self.video_prob, theta)

    def weighted(self, theta: float) -> np.ndarray:
        """w̄ (T, C), Eqs. (10)-(11) with per-video attention normalisation."""
        per_stream = {}
        for s, g in self.gates.items():
            gn = g / max(float(g.max()), 1e-12)
            per_stream[s] = gn[:, None] * self.row_prob[s]
        return fuse(per_stream, theta)


def fuse(per_stream: dict, theta: float) -> np.ndarray:
    """Eq. (11): θ·RGB + (1 − θ)·FLOW; a single stream passes through."""
    if set(per_stream) == {"rgb", "flow"}:
        return theta * per_stream["rgb"] + (1.0 - theta) * per_stream["flow"]
    (only,) = per_stream.values()
    return only


def runs(active: np.ndarray) -> list[tuple[int, int]]:
    """Maximal runs of True as inclusive ``(first, last)`` row indices."""
    a = np.concatenate([[False], np.asarray(active, dtype=bool), [False]])
    d = np.diff(a.astype(np.int8))
    starts = np.nonzero(d == 1)[0]
    ends = np.nonzero(d == -1)[0] - 1
    return list(zip(starts.tolist(), ends.tolist()))


def row_bounds(times: np.ndarray, duration: float | None) -> tuple[np.ndarray, np.ndarray]:
    """Start and end time of each row: midpoints between neighbours, clipped to [0, duration]."""
    t = np.asarray(times, dtype=float)
    n = len(t)
    known = duration is not None and np.isfinite(duration) and duration > 0
    if n == 1:
        if known:
            return np.array([0.0]), np.array([float(duration)])
        return np.array([max(0.0, t[0] - 0.5)]), np.array([t[0] + 0.5])
    mid = (t[1:] + t[:-1]) / 2
    starts = np.concatenate([[t[0] - (t[1] - t[0]) / 2], mid])
    ends = np.concatenate([mid, [t[-1] + (t[-1] - t[-2]) / 2]])
    hi = duration if known else np.inf
    return np.clip(starts, 0.0, hi), np.clip(ends, 0.0, hi)


def interval_score(w: np.ndarray, first: int, last: int, video_score: float, kind: str) -> float:
    inside = float(w[first:last + 1].mean())
    if kind == "mean":
        return inside * video_score
    length = last - first + 1
    margin = max(1, int(round(length / 4)))
    outer = np.concatenate([w[max(0, first - margin):first], w[last + 1:last + 1 + margin]])
    outer_mean = float(outer.mean()) if len(outer) else 0.0
    return inside - outer_mean + video_score


def nms_1d(dets: list[dict], iou: float) -> list[dict]:
    """Greedy per-class non-maximum suppression on ``segment`` by tIoU."""
    keep: list[dict] = []
    for d in sorted(dets, key=lambda d: -d["score"]):
        s, e = d["segment"]
        ok = True
        for k in keep:
            ks, ke = k["segment"]
            inter = max(0.0, min(e, ke) - max(s, ks))
            union = (e - s) + (ke - ks) - inter
            if union > 0 and inter / union > iou:
                ok = False
                break
        if ok:
            keep.append(d)
    return keep


def detect_video(vs: VideoScores, classes: list[str], cfg: DetectConfig) -> list[dict]:
    """Detections of one video: ``[{"label", "score", "segment": [start, end]}, ...]``."""
    w = vs.weighted(cfg.theta)  # (T, C)
    vp = vs.fused_video_prob(cfg.theta)  # (C,)
    keep = set(np.nonzero(vp >= cfg.class_threshold)[0].tolist()) | {int(vp.argmax())}
    starts, ends = row_bounds(vs.times, vs.duration)
    out = []
    for c in sorted(keep):
        dets = []
        for first, last in runs(w[:, c] >= cfg.threshold):
            if last - first + 1 < cfg.min_rows:
                continue
            score = interval_score(w[:, c], first, last, float(vp[c]), cfg.score)
            dets.append({"label": classes[c], "score": round(score, 6),
                         "segment": [round(float(starts[first]), 3), round(float(ends[last]), 3)]})
        if cfg.nms > 0:
            dets = nms_1d(dets, cfg.nms)
        out.extend(dets)
    return out


@torch.no_grad()
def score_videos(model, loader, durations: dict, device) -> list[VideoScores]:
    """Run ``model.localise`` over a loader of whole videos (no row subsampling)."""
    model.eval()
    out = []
    for batch in loader:
        b = batch.to(device)
        loc = model.localise(b.x, b.mask)
        for i, vid in enumerate(batch.ids):
            n = int(batch.mask[i].sum())
            out.append(VideoScores(
                video_id=vid,
                times=batch.times[i],
                duration=durations.get(vid, float("nan")),
                gates={s: loc[s]["g"][i, :n].float().cpu().numpy() for s in loc},
                row_prob={s: loc[s]["row_prob"][i, :n].float().cpu().numpy() for s in loc},
                video_prob={s: loc[s]["video_prob"][i].float().cpu().numpy() for s in loc},
            ))
    return out
