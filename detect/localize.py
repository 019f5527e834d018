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
5. Threshold (``scale="video"``, the default): each class's w̄ is min-max
   normalised over the video, and rows whose normalised level passes the
   threshold form connected runs. The paper thresholds w̄ itself at 0.2
   (``scale="absolute"``), which works only while background scores sit
   near 0; when every row of a video shows its class's scene, as in real
   THUMOS14 videos, background w̄ sits at 0.5 or more and the absolute rule
   returns the whole video. The normalised level is invariant to the
   video's score floor and scale, so one threshold fits every video, class
   and method. Several thresholds may be given: their runs are pooled.
6. Each run becomes an interval from the start of its first row to the end
   of its last, row bounds being the midpoints between consecutive
   ``times`` (Eq. 12's ``ind / F`` is the special case of rows at a
   constant rate).
7. Score (comparable across videos, computed on w̄ itself): ``mean`` = mean
   inside × video-level class score; ``contrast`` = outer-inner contrast
   plus the video-level class score.
8. Overlapping intervals of a class (from pooled thresholds) are suppressed
   by NMS or soft-NMS.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from tsrnet.train.config import DetectConfig

from .postprocess import inside_mean, nms, normalise, outer_inner_contrast, proposals, soft_nms


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
    """Score of rows ``first..last`` of one class's fused weighted score ``w``, comparable across videos.

    Always computed on ``w`` itself, not on the normalised level the threshold
    saw: the level only decides *where* intervals are, the score keeps how
    sure the model is. Both kinds are >= 0, as soft-NMS needs.
    """
    if kind == "mean":
        return inside_mean(w, first, last) * video_score
    return max(outer_inner_contrast(w, first, last), 0.0) + video_score


def detect_video(vs: VideoScores, classes: list[str], cfg: DetectConfig) -> list[dict]:
    """Detections of one video: ``[{"label", "score", "segment": [start, end]}, ...]``."""
    w = vs.weighted(cfg.theta)  # (T, C)
    vp = vs.fused_video_prob(cfg.theta)  # (C,)
    keep = set(np.nonzero(vp >= cfg.class_threshold)[0].tolist()) | {int(vp.argmax())}
    starts, ends = row_bounds(vs.times, vs.duration)
    out = []
    for c in sorted(keep):
        level = normalise(w[:, c]) if cfg.scale == "video" else w[:, c]
        found = proposals(level, cfg.threshold, cfg.min_rows)
        if not found:
            continue
        segments = np.array([[starts[f], ends[l]] for f, l in found])
        scores = np.array([interval_score(w[:, c], f, l, float(vp[c]), cfg.score) for f, l in found])
        if cfg.suppress == "soft-nms":
            idx, scores_kept = soft_nms(segments, scores, cfg.soft_nms_sigma, cfg.nms)
        elif cfg.suppress == "nms":
            idx = nms(segments, scores, cfg.nms)
            scores_kept = scores[idx]
        else:
            idx, scores_kept = list(range(len(found))), scores
        out.extend({"label": classes[c], "score": round(float(sc), 6),
                    "segment": [round(float(segments[i, 0]), 3), round(float(segments[i, 1]), 3)]}
                   for i, sc in zip(idx, scores_kept))
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
