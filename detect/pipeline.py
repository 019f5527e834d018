"""Detection over a whole store: the one path shared by ``detect``, ``compare-methods`` and the tests."""
from __future__ import annotations

import numpy as np
from torch.utils.data import DataLoader

from tsrnet.data.format.annotations import Annotations, detections_frame
from tsrnet.data.format.batching import VideoDataset, collate
from tsrnet.data.core.progress import progress_bar
from tsrnet.data.format.store import FeatureStore
from .config import DetectConfig
from .evaluate import THUMOS_TIOUS, DetectionResult, classification_metrics, evaluate_detections
from .localize import VideoScores, detect_video, localised, score_videos, weighted_evidence


def score_store(model, store: FeatureStore, ids: list[str], device, batch_size: int = 4,
                progress: bool = False) -> list[VideoScores]:
    """Per-row and video scores of ``ids``, every row of each video (no subsampling)."""
    ds = VideoDataset(store, ids, np.zeros((len(ids), len(model.classes)), np.float32), model.streams)
    loader = DataLoader(ds, batch_size=batch_size, shuffle=False, collate_fn=collate)
    durations = {v: store.info(v).duration for v in ids}
    it = progress_bar(loader, desc="detect", unit="batch", disable=not progress, leave=False)
    return score_videos(model, it, durations, device)


def random_scores(store: FeatureStore, ids: list[str], n_classes: int, seed: int = 0) -> list[VideoScores]:
    """Uniform random row and video scores for every video: the floor every method's mAP is read against.

    Localised with the default post-processing (no attention, so the row
    score is the random class score itself), this is what detection gives
    when a model has learned nothing.
    """
    rng = np.random.default_rng(seed)
    out = []
    for v in ids:
        info = store.info(v)
        times = store.read(v, [store.streams[0]])["times"]
        rows = {s: {"class_prob": rng.random((len(times), n_classes))} for s in store.streams}
        out.append(VideoScores(v, times, info.duration, rows, {s: rng.random(n_classes) for s in store.streams}))
    return out


def detections(scores: list[VideoScores], classes: list[str], cfg: DetectConfig, localise=weighted_evidence) -> dict:
    """ActivityNet ``results`` mapping: video id -> list of detections (``localise``: the method's localisation)."""
    return {vs.video_id: detect_video(vs, classes, cfg, localise) for vs in scores}


def video_level(scores: list[VideoScores], cfg: DetectConfig, localise=weighted_evidence) -> np.ndarray:
    """Fused video-level class scores (V, C), in the order of ``scores``."""
    return np.stack([localise(vs, cfg).video for vs in scores])  # --attention-weight leaves .video as it is


def evaluate_scores(scores: list[VideoScores], results: dict, ann: Annotations, classes: list[str],
                    cfg: DetectConfig, localise=weighted_evidence,
                    tious=THUMOS_TIOUS, ambiguous: dict | None = None) -> tuple[DetectionResult, dict]:
    """Detection mAP of ``results`` and video-level classification metrics of ``scores`` against ``ann``
    (``ambiguous``: THUMOS14's rule, see :func:`detect.evaluate.evaluate_detections`)."""
    ev = evaluate_detections(ann.ground_truth_frame(), detections_frame(results), tious, ambiguous)
    y = np.array([[c in ann[vs.video_id].labels for c in classes] for vs in scores], dtype=float)
    return ev, classification_metrics(video_level(scores, cfg, localise), y, classes)


def diagnose(scores: list[VideoScores], results: dict, ann: Annotations, classes: list[str], cfg: DetectConfig,
             localise=weighted_evidence) -> dict:
    """What the model does on annotated videos, beyond mAP: the numbers that tell a useful detector
    from one that returns whole videos.

    - detections against instances, their mean lengths, and the share of video time each covers;
    - per stream, the attention (÷ its per-video maximum) on action rows against the other rows;
    - the method's fused row score of each video's own classes on action rows against the other rows.

    A row is an action row when its time lies inside a ground-truth segment.
    """
    index = {c: i for i, c in enumerate(classes)}
    sums: dict[str, list[float]] = {}

    def add(key, values):
        if len(values):
            sums.setdefault(key, []).append(float(np.mean(values)))

    det_len, det_cover, gt_cover = [], [], []
    for vs in scores:
        a = ann[vs.video_id]
        t = vs.times
        inside = np.zeros(len(t), bool)
        for s in a.segments:
            inside |= (t >= s.start) & (t <= s.end)
        for s, g in vs.attention().items():
            gn = g / max(float(g.max()), 1e-12)
            add(f"attention_{s}_action", gn[inside])
            add(f"attention_{s}_other", gn[~inside])
        own = [index[c] for c in a.labels if c in index]
        if own:
            w = localised(vs, cfg, localise).shown[:, own].max(axis=1)
            add("score_action", w[inside])
            add("score_other", w[~inside])
        dur = vs.duration if np.isfinite(vs.duration) and vs.duration > 0 else float(t[-1])
        dets = results.get(vs.video_id, [])
        det_len += [d["segment"][1] - d["segment"][0] for d in dets]
        det_cover.append(_union([d["segment"] for d in dets]) / dur)
        gt_cover.append(_union([[s.start, s.end] for s in a.segments]) / dur)
    out = {k: float(np.mean(v)) for k, v in sums.items()}
    lengths = [s.end - s.start for v in ann.video_ids() for s in ann[v].segments]
    out.update(detections=len(det_len), instances=len(lengths),
               detection_length=float(np.mean(det_len)) if det_len else 0.0,
               instance_length=float(np.mean(lengths)) if lengths else 0.0,
               detection_cover=float(np.mean(det_cover)), instance_cover=float(np.mean(gt_cover)))
    return out


def _union(segments) -> float:
    """Total length covered by a set of [start, end] intervals."""
    total, end = 0.0, -np.inf
    for s, e in sorted(segments):
        if e > end:
            total += e - max(s, end)
            end = e
    return total


def format_diagnosis(d: dict, scale: str = "otsu", smooth: float = 0.0) -> str:
    lines = [f"{d['detections']} detections for {d['instances']} instances; mean length "
             f"{d['detection_length']:.1f} s (instances {d['instance_length']:.1f} s); detections cover "
             f"{d['detection_cover'] * 100:.0f}% of the videos' time (actions {d['instance_cover'] * 100:.0f}%)"]
    parts = [f"attention (÷ max) {s} {d[f'attention_{s}_action']:.2f} on actions, {d[f'attention_{s}_other']:.2f} "
             "elsewhere" for s in ("rgb", "flow") if f"attention_{s}_action" in d and f"attention_{s}_other" in d]
    if "score_action" in d and "score_other" in d:
        parts.append(f"row score of the videos' classes {d['score_action']:.2f} on actions, "
                     f"{d['score_other']:.2f} elsewhere")
    if parts:
        lines.append("; ".join(parts))
    if d["instance_cover"] > 0 and d["detection_cover"] > max(2 * d["instance_cover"], d["instance_cover"] + 0.3):
        hint = ("try --scale otsu" if scale == "absolute" else
                "the row scores hardly separate actions from the rest (compare the two numbers above); a higher "
                "--threshold may help")
        lines.append(f"warning: detections cover far more time than the actions do ({hint})")
    # Fragments: many short intervals per action (row noise crossing the threshold inside long actions).
    if d["instances"] and d["detections"] > 2 * d["instances"] and \
            0 < d["detection_length"] < d["instance_length"] / 3:
        wider = (f"a window wider than {smooth:g} s" if smooth > 0 else
                 "--smooth with a window of about a third of the actions' length (8 on ActivityNet-like data)")
        lines.append(f"warning: detections are fragments of the actions ({d['detection_length']:.1f} s against "
                     f"{d['instance_length']:.1f} s): median-filter the row scores, {wider} (docs/localisation.md)")
    return "\n".join(lines)
