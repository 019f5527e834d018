"""Planted-action features on a *real* annotation layout.

:mod:`tsrnet.data.synthetic` draws its own video lengths and action times. Real
benchmarks differ from that in the ways that break localisation: THUMOS14
test videos hold up to 200+ instances of a few seconds each, ActivityNet
videos one or two long ones, and every row of a real video, action or not,
shows the scene of its class (the golf course around each golf swing). This
generator keeps the features' vocabulary of :mod:`tsrnet.data.synthetic` (class
prototypes with appearance modes, a class-agnostic actionness direction,
a domain-shifted trimmed set) and takes the *times* from a real annotation
file:

- ``layout`` is any ground truth :func:`data.ground_truth.load_annotations`
  reads (W-TALC folder, THUMOS14 per-class folder, ActivityNet JSON, CSV),
  or ``activitynet-like`` for a built-in sampler of ActivityNet-shaped videos
  (1-3 long instances covering 30-90% of a 40-200 s video).
- Rows are ``1 / rows_per_second`` long; row k covers ``[k/r, (k+1)/r)`` and
  its time is the centre, ``(k + 0.5) / r`` (for THUMOS14's usual 16 frames
  at 25 fps: ``(16k + 8) / 25``).
- An action adds its pattern to each row in proportion to the fraction of
  the row it covers, so the planted actions start and end exactly at the
  annotated times (a row half inside gets half the pattern).
- ``context`` is the strength of the video's *scene*: a per-class direction
  added to every row of the video, action rows included, with a slowly
  varying amplitude (camera cuts, zoom). At 0 the background is class-free.

Videos without a duration (THUMOS14 text files, gt.json) are given the last
segment's end plus 10 s.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from .annotations import Annotations, Segment, VideoAnnotation
from .errors import DataError
from .ground_truth import load_annotations
from .store import STREAMS, StoreWriter
from .synthetic import SyntheticSpec, _unit, _World, raise_broken

ACTIVITYNET_LIKE = "activitynet-like"
THUMOS_ROWS_PER_SECOND = 25 / 16  # the common I3D/UntrimmedNet feature rate: 16 frames at 25 fps


@dataclass
class LayoutSpec:
    layout: str = ACTIVITYNET_LIKE  # annotation path, or "activitynet-like"
    max_videos: int = 100  # per subset, chosen at random (seeded) when the layout has more
    rows_per_second: float = 0.0  # 0 = 25/16 for a file layout, 1 for activitynet-like
    dim: int = 256
    modes: int = 4
    train_modes: int = 3  # modes of each class the training subset shows (the trimmed clips show all)
    strength: float = 0.45  # action prototype norm per sqrt(dim), relative to unit noise
    actionness: float = 0.3  # class-agnostic direction of action rows, norm per sqrt(dim)
    context: float = 0.6  # class scene in every row of a video, norm per sqrt(dim)
    background: float = 0.45  # class-free background prototypes, norm per sqrt(dim)
    noise: float = 1.0  # per-dimension noise std
    domain_shift: float = 0.6  # trimmed-domain offset, norm per sqrt(dim)
    trimmed_per_class: int = 20
    n_classes: int = 20  # activitynet-like only; a file layout brings its own classes
    n_train: int = 100  # activitynet-like only
    n_test: int = 100  # activitynet-like only
    seed: int = 0

    def check(self) -> None:
        raise_broken([
            (self.max_videos >= 1, "--max-videos must be >= 1"),
            (self.rows_per_second >= 0, "--rows-per-second must be >= 0 (0 = the layout's usual rate)"),
            (self.dim >= 1, "--dim must be >= 1"),
            (1 <= self.train_modes <= self.modes, "need 1 <= --train-modes <= --modes"),
            (min(self.strength, self.actionness, self.context, self.background, self.noise,
                 self.domain_shift) >= 0, "strengths, --noise and --domain-shift must be >= 0"),
            (self.trimmed_per_class >= 0, "--trimmed-per-class must be >= 0"),
            (self.n_classes >= 1 and self.n_train >= 0 and self.n_test >= 0 and self.n_train + self.n_test >= 1,
             "activitynet-like needs --n-classes >= 1 and at least one video"),
        ])

    @property
    def rate(self) -> float:
        if self.rows_per_second > 0:
            return self.rows_per_second
        return 1.0 if self.layout == ACTIVITYNET_LIKE else THUMOS_ROWS_PER_SECOND


def activitynet_like(spec: LayoutSpec) -> Annotations:
    """ActivityNet-shaped ground truth: few long instances per video, one class per video.

    Subsets are ActivityNet's names, ``training`` and ``validation``.
    """
    rng = np.random.default_rng([spec.seed, 29])
    classes = [f"Activity{i:03d}" for i in range(spec.n_classes)]
    videos = {}
    for subset, count in (("training", spec.n_train), ("validation", spec.n_test)):
        for i in range(count):
            vid = f"anet_{subset}_{i:04d}"
            dur = float(np.round(rng.uniform(40, 200), 2))
            k = int(rng.choice([1, 2, 3], p=[0.6, 0.3, 0.1]))
            cover = rng.uniform(0.3, 0.9) * dur
            # k instances and k+1 gaps: instance lengths split the covered time, gaps the rest.
            lengths = rng.dirichlet(np.ones(k) * 4) * cover
            gaps = rng.dirichlet(np.ones(k + 1)) * (dur - cover)
            cls = classes[int(rng.integers(spec.n_classes))]
            t, segs = 0.0, []
            for j in range(k):
                t += gaps[j]
                segs.append(Segment(cls, round(t, 2), round(min(dur, t + lengths[j]), 2)))
                t += lengths[j]
            videos[vid] = VideoAnnotation(vid, subset, dur, segs)
    return Annotations(videos)


def select_videos(ann: Annotations, spec: LayoutSpec) -> Annotations:
    """At most ``max_videos`` annotated videos per subset (seeded), each with a duration."""
    rng = np.random.default_rng([spec.seed, 31])
    keep = {}
    for subset in ann.subsets():
        ids = [v for v in ann.video_ids(subset) if ann[v].segments]
        if len(ids) > spec.max_videos:
            ids = sorted(rng.choice(ids, size=spec.max_videos, replace=False).tolist())
        for v in ids:
            a = ann[v]
            dur = a.duration if a.duration else max(s.end for s in a.segments) + 10.0
            keep[v] = VideoAnnotation(v, subset, float(dur), list(a.segments), set(a.extra_labels))
    if not keep:
        raise DataError("the layout has no video with segments and a subset", ann.path)
    return Annotations(keep, ann.path)


def coverage(n_rows: int, rate: float, segments: list[Segment], classes: list[str]) -> np.ndarray:
    """(n_rows, C): the fraction of each row that each class's segments cover.

    Row k spans ``[k/rate, (k+1)/rate)``; overlapping segments of one class count once.
    """
    cov = np.zeros((n_rows, len(classes)))
    lo = np.arange(n_rows) / rate
    hi = lo + 1.0 / rate
    index = {c: i for i, c in enumerate(classes)}
    for s in segments:
        inter = np.clip(np.minimum(hi, s.end) - np.maximum(lo, s.start), 0.0, None) * rate
        c = index[s.label]
        cov[:, c] = np.maximum(cov[:, c], inter)
    return np.clip(cov, 0.0, 1.0)


class _LayoutWorld(_World):
    """:class:`tsrnet.data.synthetic._World` plus one scene direction per class and stream."""

    def __init__(self, spec: LayoutSpec, classes: list[str]):
        super().__init__(SyntheticSpec(n_classes=len(classes), dim=spec.dim, modes=spec.modes,
                                       train_modes=spec.train_modes, strength=spec.strength,
                                       domain_shift=spec.domain_shift, actionness=spec.actionness,
                                       seed=spec.seed))
        self.layout = spec
        self.classes = list(classes)
        rng = np.random.default_rng([spec.seed, 37])
        scale = np.sqrt(spec.dim)
        self.scene = {s: _unit(rng, len(classes), spec.dim) * spec.context * scale for s in STREAMS}
        # Rescale the class-free background of the parent to its own strength.
        for s in STREAMS:
            self.bg[s] *= spec.background / max(spec.strength, 1e-12)

    def rows(self, rng, n: int, cov: np.ndarray, video_classes: list[int], modes_allowed: int) -> dict:
        """Feature rows of one video: noise + background + scene everywhere + actions where ``cov`` says."""
        spec = self.layout
        w = rng.dirichlet(np.ones(len(self.bg["rgb"])) * 0.5)
        # Slowly varying scene amplitude in [0.5, 1]: a smoothed random walk.
        walk = np.cumsum(rng.standard_normal(n)) / np.sqrt(max(n, 1)) * 2.0
        amp = 0.75 + 0.25 * np.tanh(walk - walk.mean())[:, None]
        mode = {c: int(rng.integers(modes_allowed)) for c in range(cov.shape[1])}
        strength = 0.8 + 0.4 * rng.random()
        out = {}
        for s in STREAMS:
            x = rng.standard_normal((n, spec.dim)) * spec.noise + (w @ self.bg[s])
            if video_classes:
                x = x + amp * self.scene[s][video_classes].mean(axis=0)
            for c in np.nonzero(cov.any(axis=0))[0]:
                pattern = self.proto[s][c, mode[c]] * strength + self.actionness[s]
                x = x + cov[:, [c]] * pattern
            out[s] = x.astype(np.float32)
        return out


def generate_from_layout(out_dir: str | Path, spec: LayoutSpec | None = None) -> dict:
    """Write ``untrimmed.h5``, ``trimmed.h5`` and ``annotations.json`` (the selected videos) into ``out_dir``."""
    spec = spec or LayoutSpec()
    spec.check()
    ann = activitynet_like(spec) if spec.layout == ACTIVITYNET_LIKE else load_annotations(spec.layout)
    ann = select_videos(ann, spec)
    classes = ann.classes()
    subsets = ann.subsets()
    # The subset with the most videos named like a training split shows only train_modes modes.
    train_subset = next((s for s in ("train", "training", "validation") if s in subsets and len(subsets) > 1), None)
    world = _LayoutWorld(spec, classes)
    rate = spec.rate
    rng = np.random.default_rng([spec.seed, 41])
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    attrs = {"source": "planted-action features on a real annotation layout (data.synthetic_layout)",
             "layout_spec": str(asdict(spec)), "rows_per_second": rate}
    index = {c: i for i, c in enumerate(classes)}
    with StoreWriter(out / "untrimmed.h5", spec.dim, STREAMS, attrs) as w:
        for vid in ann.video_ids():
            a = ann[vid]
            n = max(2, int(np.ceil(a.duration * rate)))
            cov = coverage(n, rate, a.segments, classes)
            modes = spec.train_modes if a.subset == train_subset else spec.modes
            feats = world.rows(rng, n, cov, [index[c] for c in a.labels], modes)
            times = (np.arange(n) + 0.5) / rate
            w.add(vid, times=times, fps=25.0, duration=a.duration, n_frames=int(round(a.duration * 25)),
                  domain="untrimmed", subset=a.subset, labels=a.labels, **feats)
    ann.write(out / "annotations.json")
    with StoreWriter(out / "trimmed.h5", spec.dim, STREAMS, attrs) as w:
        for i in range(spec.trimmed_per_class * len(classes)):
            c = i % len(classes)
            n = int(rng.integers(6, 16))
            feats = world.rows(rng, n, np.eye(len(classes))[[c] * n], [c], spec.modes)
            feats = {s: ((feats[s] + world.shift[s]) * world.gain[s]).astype(np.float32) for s in STREAMS}
            dur = n / rate
            w.add(f"clip_{i:05d}", times=(np.arange(n) + 0.5) / rate, fps=25.0, duration=dur,
                  n_frames=int(round(dur * 25)), domain="trimmed", labels=[classes[c]], **feats)
    return {"untrimmed": out / "untrimmed.h5", "trimmed": out / "trimmed.h5", "annotations": out / "annotations.json"}
