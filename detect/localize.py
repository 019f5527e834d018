"""From per-row scores to scored time intervals: the localisation every method shares.

A trained method scores each video once (:class:`VideoScores`: its raw row
outputs per stream, named by the method, and video-level class
probabilities). Its localisation turns them into :class:`Evidence` for given
settings: the fused video-level class scores, and one or more *sources*, each
a row level to threshold and the evidence intervals are scored on. Then, for
every method alike (:func:`detect_video`):

1. Classes: those whose video-level score passes ``class_threshold`` (the
   best class is always kept).
2. Threshold each source's level for each kept class, on a scale that
   means the same on every video. ``scale="otsu"`` (default) puts 0 at the
   mean of the video's low rows and 1 at the mean of its high rows, the two
   classes of Otsu's split of the level; ``scale="video"`` min-max
   normalises it. The paper thresholds the score itself at 0.2
   (``scale="absolute"``), which works only while background scores sit
   near 0: when every row of a video shows its class's scene, as in real
   THUMOS14 videos, background sits at 0.5 or more and the absolute rule
   returns the whole video. Min-max fixes that but anchors on the single
   lowest and highest rows, so where a threshold falls between background
   and action depends on how much of the video is action: on short THUMOS
   actions the gaps between them pass 0.2 and neighbours merge, on long
   ActivityNet actions 0.2 cuts them up (best min-max thresholds 0.40 and
   0.05). The two class means do not move with that share (docs/studies/localisation.md). ``scale="max"`` divides by the per-video maximum
   (UntrimmedNet's released rule); ``scale="clamped"`` is min-max with
   both ends clamped at 0 (BaS-Net's released rule, for logits). With ``smooth``, each level is first
   median-filtered over that many seconds (off by default: it merges THUMOS14's short, dense actions, and
   keeps ActivityNet's long ones whole where row noise would cut them up). Rows whose attention is below
   ``attention_floor`` never pass; with ``attention_weight`` every level is first weighted by the row's
   place in the video's range of attention (:func:`localised`). Several thresholds pool their runs, and
   runs shorter than ``min_rows`` are dropped.
3. Each run becomes an interval from the start of its first row to the end
   of its last, row bounds being the midpoints between consecutive
   ``times`` (Eq. 12's ``ind / F`` is the special case of rows at a
   constant rate).
4. Score each interval on the source's evidence (``mean``, ``contrast``,
   ``mean+video``, ``inside``; see :func:`with_video_score`), optionally
   calibrated per video (``calibrate="video"``: each divided by the best of
   its class in the video, see :func:`calibrate`); intervals of all sources
   are pooled.
5. Overlapping intervals of a class are suppressed by NMS or soft-NMS.

A method may also hand over ready-made, scored intervals
(``Evidence.intervals``, e.g. from boundary regression): they skip steps 2-4,
are mapped from row coordinates to time like step 3, and join step 5.

TSRNet's localisation, Eqs. (10)-(11), is :func:`weighted_evidence`, a
building block other attention-based methods use too.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import torch

from .config import DetectConfig

from .postprocess import (clamped_normalise, inside_mean, median_smooth, nms, normalise, outer_inner_contrast, proposals,
                          soft_nms, two_class_normalise, window_rows)


@dataclass
class VideoScores:
    """What a method computed for one video, as numpy arrays (the input of every localisation)."""

    video_id: str
    times: np.ndarray  # (T,)
    duration: float
    rows: dict  # stream -> {name: (T,) or (T, C)}: the method's raw row outputs, e.g. "attention", "class_prob"
    video_prob: dict  # stream -> (C,) video-level class probabilities

    def attention(self) -> dict:
        """stream -> (T,) attention, for the streams whose method has one."""
        return {s: r["attention"] for s, r in self.rows.items() if "attention" in r}

    def mean_attention(self) -> np.ndarray | None:
        """(T,) the attention averaged over the streams that have one (None: the method has none)."""
        att = self.attention()
        return np.mean(list(att.values()), axis=0) if att else None


@dataclass
class Source:
    """One way a method proposes intervals: ``level`` (T, C) is thresholded, ``evidence`` (T, C) scores them."""

    level: np.ndarray
    evidence: np.ndarray


@dataclass
class Evidence:
    """A method's localisation of one video under given settings."""

    video: np.ndarray  # (C,) fused video-level class scores
    sources: list  # [Source, ...]; intervals of all sources are pooled
    shown: np.ndarray  # (T, C) the fused row score drawn on timelines and used by diagnose
    shown_label: str = "fused weighted score w̄"
    # Ready-made intervals, for methods that find them without thresholding (e.g. boundary regression):
    # [(class index, start, end, score), ...] with start and end in continuous row coordinates (row i covers
    # [i, i + 1)). They skip steps 2-4 and join the sources' intervals of their class in step 5.
    intervals: list | None = None


def fused_video_prob(vs: VideoScores, theta: float) -> np.ndarray:
    return fuse(vs.video_prob, theta)


def weighted_evidence(vs: VideoScores, cfg: DetectConfig) -> Evidence:
    """TSRNet's localisation, Eqs. (10)-(11), with per-video attention normalisation.

    ``w_i^c = ĝ_i · p_i^c`` per stream, with ``ĝ = g / max g`` (softmax
    weights sum to one, so their raw scale shrinks with video length;
    dividing by the maximum puts every video on [0, 1]) and ``p`` the row
    class probability ``sigmoid(v_c^T x_i)``; fused as ``θ w_RGB + (1 − θ) w_FLOW``.
    Methods without attention (``rows`` lack "attention") use ``p`` alone.
    """
    per_stream = {}
    for s, r in vs.rows.items():
        p = r["class_prob"]
        g = r.get("attention")
        per_stream[s] = p if g is None else (g / max(float(g.max()), 1e-12))[:, None] * p
    w = fuse(per_stream, cfg.theta)
    return Evidence(fused_video_prob(vs, cfg.theta), [Source(w, w)], w)


# The least attention the weighting tells apart from the video's most attended row: a row whose attention is 0
# (a closed gate) would otherwise stretch the log range without end.
ATTENTION_RANGE = 1e-6
# Log ranges narrower than this (attention within 1e-6 of its maximum everywhere) count as flat: float32
# rounding in an attention that does not vary would otherwise be stretched to the whole [0, 1].
FLAT_SPAN = 1e-6


def attention_weights(a: np.ndarray, k: float) -> np.ndarray:
    """(T,) weights in [0, 1] of ``--attention-weight`` k > 0 for the attention ``a`` (T,): ``min(1, r_i / k)``,
    r_i the place of log a_i between the video's least and most attended rows (0 and 1). On a log scale, because
    a softmax attention (UntrimmedNet's) is the exponential of its logits, and r is then the min-max of those
    logits: unchanged by the video's length (a softmax over more rows divides every a_i alike) and by how peaked
    the attention is. A video whose rows are all attended alike keeps its scores."""
    a = np.asarray(a, dtype=float)  # in float64: float32 attention and a float64 maximum made a flat video's
    top = float(a.max())            # span 1e-8 instead of 0, and every weight 0
    if top <= 0:
        return np.ones_like(a)
    la = np.log(np.maximum(a, top * ATTENTION_RANGE))
    lo = float(la.min())
    span = float(la.max()) - lo
    if span <= FLAT_SPAN:  # attended alike, up to float rounding: no range to place the rows in
        return np.ones_like(a)
    return np.minimum(1.0, (la - lo) / (span * k))


def localised(vs: VideoScores, cfg: DetectConfig, localise=weighted_evidence) -> Evidence:
    """``localise(vs, cfg)``, the method's evidence, with ``attention_weight`` applied: what every consumer
    (detection, timelines, the viewer, diagnose) thresholds and draws.

    With ``attention_weight`` k > 0, each source's level and evidence (and the row score shown) are multiplied
    row by row by :func:`attention_weights` of ā, the attention averaged over the streams: rows in the top
    (1 − k) of the video's log attention range keep their score, the others lose it in proportion. Relative to
    the video's own range, not to its mean: a mean is set by the few rows the attention peaks on, and on videos
    whose attention is peaked it cut most action rows (docs/studies/defaults.md, "UntrimmedNet on
    th14-overlap"). Soft, because a hard cut would split actions whose attention peaks on a few of their rows.
    Ready-made intervals keep their scores.
    """
    ev = localise(vs, cfg)
    if cfg.attention_weight <= 0:  # the default: no attention mean on every video's detection
        return ev
    a = vs.mean_attention()  # (T,)
    if a is None:
        return ev
    w = attention_weights(a, cfg.attention_weight)[:, None]  # (T, 1)
    shown = ev.shown * w

    def weighted(x):  # a level or evidence that is the shown score stays that same array (timelines test it)
        return shown if x is ev.shown else x * w

    return dataclasses.replace(
        ev, sources=[Source(weighted(s.level), weighted(s.evidence)) for s in ev.sources], shown=shown,
        shown_label=f"{ev.shown_label} × attention weight")


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


def interval_evidence(w: np.ndarray, first: int, last: int, cfg: DetectConfig) -> float:
    """What rows ``first..last`` of one class's evidence ``w`` say by themselves: their mean, or their
    outer-inner contrast for ``score="contrast"`` (clipped at 0) and ``"contrast+video"`` (as it is)."""
    if cfg.score == "contrast":
        return max(outer_inner_contrast(w, first, last), 0.0)
    if cfg.score == "contrast+video":
        return outer_inner_contrast(w, first, last)
    return inside_mean(w, first, last)


def with_video_score(evidence: float, video_score: float, cfg: DetectConfig) -> float:
    """An interval's score from its evidence and the video-level class score v, by ``cfg.score``.

    Computed on the evidence, not on the normalised level the threshold saw:
    the level only decides *where* intervals are, the score keeps how sure
    the model is. ``mean`` and ``contrast`` are >= 0 for evidence >= 0, as
    soft-NMS needs; ``inside`` (STPN's Eq. 7 on class activations) and
    ``contrast+video`` (BaS-Net's, unclipped) may be negative.
    """
    if cfg.score == "mean":
        return evidence * video_score
    if cfg.score in ("mean+video", "contrast+video"):
        return evidence + cfg.video_weight * video_score
    if cfg.score == "inside":
        return evidence
    return evidence + video_score


def calibrate(evidence: list[float], how: str) -> list[float]:
    """Per class and video: ``"video"`` divides each interval's evidence by the largest of them.

    Every video's best interval of a class then carries 1, and the
    video-level score alone ranks it against other videos' best; weaker
    intervals keep their ratio to it. Evidence that is nowhere positive is
    left as it is.
    """
    if how == "none" or not evidence:
        return evidence
    top = max(evidence)
    return [e / top for e in evidence] if top > 0 else evidence


def threshold_level(level: np.ndarray, scale: str) -> np.ndarray:
    """What the threshold is compared with, for one class's row level (T,)."""
    if scale == "otsu":
        return two_class_normalise(level)
    if scale == "video":
        return normalise(level)
    if scale == "max":
        return level / max(float(level.max()), 1e-12)
    if scale == "clamped":
        return clamped_normalise(level)
    return level


def detect_video(vs: VideoScores, classes: list[str], cfg: DetectConfig, localise=weighted_evidence) -> list[dict]:
    """Detections of one video: ``[{"label", "score", "segment": [start, end]}, ...]``.

    ``localise(vs, cfg) -> Evidence`` is the method's localisation (default:
    TSRNet's weighted score).
    """
    ev = localised(vs, cfg, localise)
    vp = ev.video  # (C,)
    keep = set(np.nonzero(vp >= cfg.class_threshold)[0].tolist()) | {int(vp.argmax())}
    starts, ends = row_bounds(vs.times, vs.duration)
    allowed = None
    att = vs.mean_attention()
    if cfg.attention_floor > 0 and att is not None:
        allowed = att >= cfg.attention_floor
    edges = np.concatenate([starts, ends[-1:]])  # row coordinate i -> time, linear within a row
    smooth = window_rows(vs.times, cfg.smooth)
    given = {}
    for k, s, e, sc in ev.intervals or []:
        given.setdefault(int(k), []).append((s, e, sc))
    out = []
    for c in sorted(keep):
        found, scores = [], []
        for src in ev.sources:
            level = threshold_level(median_smooth(src.level[:, c], smooth), cfg.scale)
            if allowed is not None:
                level = np.where(allowed, level, -np.inf)
            runs_c = proposals(level, cfg.threshold, cfg.min_rows)
            found += [(starts[f], ends[l]) for f, l in runs_c]
            scores += [interval_evidence(src.evidence[:, c], f, l, cfg) for f, l in runs_c]
        scores = [with_video_score(e, float(vp[c]), cfg) for e in calibrate(scores, cfg.calibrate)]
        for s, e, sc in given.get(c, []):
            rows = np.interp([s, e], np.arange(len(edges)), edges)
            found.append((float(rows[0]), float(rows[1])))
            scores.append(float(sc))
        if not found:
            continue
        segments = np.array(found, dtype=float)
        scores = np.array(scores)
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
    """Run ``model.score`` over a loader of whole videos (no row subsampling).

    ``model.score(x, mask)`` returns ``{"rows": {stream: {name: (B, T, ...)}},
    "video_prob": {stream: (B, C)}}``; each video's real rows are cut out here.
    """
    model.eval()
    out = []
    for batch in loader:
        b = batch.to(device)
        sc = model.score(b.x, b.mask)
        for i, vid in enumerate(batch.ids):
            n = int(batch.mask[i].sum())
            out.append(VideoScores(
                video_id=vid,
                times=batch.times[i],
                duration=durations.get(vid, float("nan")),
                rows={s: {k: v[i, :n].float().cpu().numpy() for k, v in r.items()} for s, r in sc["rows"].items()},
                video_prob={s: v[i].float().cpu().numpy() for s, v in sc["video_prob"].items()},
            ))
    return out
