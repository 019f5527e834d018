"""Planted-action features on a *real* annotation layout.

:mod:`tsrnet.data.generators.synthetic` draws its own video lengths and action times. Real
benchmarks differ from that in the ways that break localisation: THUMOS14
test videos hold up to 200+ instances of a few seconds each, ActivityNet
videos one or two long ones, and every row of a real video, action or not,
shows the scene of its class (the golf course around each golf swing). This
generator keeps the features' vocabulary of :mod:`tsrnet.data.generators.synthetic` (class
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
- ``salient_fraction`` shows the class only in a phase of each instance
  (the take-off of a jump), the rest of it with the class-agnostic
  motion and a faint class pattern: a classifier's activation then covers
  the discriminative part, not the whole action, as every WTAL paper
  observes of real CAS.
- ``noise_memory`` makes each dimension's noise an AR(1) process along the
  rows: features of overlapping clips (a 64-frame window every 16 frames)
  share most of their frames, so their noise moves slowly, and a method
  that thresholds one row's score meets runs, not single-row flickers.

Videos without a duration (THUMOS14 text files, gt.json) are given the last
segment's end plus 10 s.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from scipy.signal import lfilter

from tsrnet.data.format.annotations import Annotations, Segment, VideoAnnotation
from tsrnet.data.core.errors import DataError
from tsrnet.data.format.ground_truth import load_annotations
from tsrnet.data.core.settings import opt
from tsrnet.data.format.store import STREAMS, StoreWriter
from tsrnet.data.generators.synthetic import SyntheticSpec, _unit, _World, raise_broken

ACTIVITYNET_LIKE = "activitynet-like"
THUMOS_ROWS_PER_SECOND = 25 / 16  # the common I3D/UntrimmedNet feature rate: 16 frames at 25 fps


STATISTICS = ("gaussian", "relu")
PATTERNS = ("additive", "replaced", "drifting")
DISTRACTORS = ("other-class", "own-motion")


@dataclass
class LayoutSpec:
    layout: str = opt(ACTIVITYNET_LIKE, "Annotation path, or 'activitynet-like'.")
    max_videos: int = opt(100, "Videos per subset, chosen at random (seeded) when the layout has more.")
    n_layout_classes: int = opt(0, "Keep only the videos of this many classes of the layout, chosen at random "
                                "(seeded); 0 = every class.")
    rows_per_second: float = opt(0.0, "Feature rows per second; 0 = 25/16 for a file layout, 1 for "
                                 "activitynet-like.")
    dim: int = opt(256, "Feature width per stream.")
    modes: int = opt(4, "Appearance modes per class.")
    train_modes: int = opt(3, "Modes of each class the training subset shows (the trimmed clips show all).")
    strength: float = opt(0.45, "Action prototype norm per sqrt(dim), relative to unit noise.")
    actionness: float = opt(0.3, "Class-agnostic direction shared by action rows, norm per sqrt(dim).")
    context: float = opt(0.6, "The class's scene in every row of a video, norm per sqrt(dim) (0 = none).")
    context_varies: bool = opt(True, "The scene's amplitude wanders along the video (camera cuts, zoom); "
                               "false = constant per video.")
    background: float = opt(0.45, "Class-free background prototypes, norm per sqrt(dim).")
    noise: float = opt(1.0, "Per-dimension noise std.")
    noise_memory: float = opt(0.0, "Lag-1 autocorrelation of each dimension's noise from one row to the next (an "
                              "AR(1) process; every row's noise keeps the std --noise). Features of overlapping or "
                              "adjacent clips move slowly; 0 = independent rows.", range=(0.0, 0.99))
    pattern: str = opt("additive", "How an action shows in its rows: 'additive' (added to the scene), 'replaced' "
                       "(the action replaces scene and background: a close-up), 'drifting' (the pattern moves from "
                       "one appearance mode to another along the instance).", choices=PATTERNS)
    salient_fraction: float = opt(1.0, "Fraction of each instance that shows its class's pattern at full strength, "
                                  "at a phase fixed per class (the take-off of a jump, the release of a throw); the "
                                  "rest of the instance shows it at --salient-floor, the class-agnostic actionness "
                                  "throughout. 1 = the whole instance alike.", range=(0.01, 1.0))
    salient_floor: float = opt(0.25, "With --salient-fraction below 1: the class pattern's factor outside the "
                               "salient phase.", range=(0.0, 1.0))
    rgb_gain: float = opt(1.0, "Factor on the class patterns in the RGB stream.")
    flow_gain: float = opt(1.0, "Factor on the class patterns in the flow stream.")
    distractors: float = opt(0.0, "Distractor segments per minute of background: rows that look like an action "
                             "but are none (see --distractor-kind).")
    distractor_kind: str = opt("other-class", "'other-class': another class's pattern, without actionness; "
                               "'own-motion': the video's own class's motion in flow (with actionness), nothing "
                               "in RGB, as a run-up without the jump.", choices=DISTRACTORS)
    statistics: str = opt("gaussian", "'gaussian': signed, unit-scale rows; 'relu': non-negative, sparse and "
                          "heavy-tailed, as ReLU CNN features (each dimension thresholded, raised to 1.5 and "
                          "scaled by a log-normal factor).", choices=STATISTICS)
    domain_shift: float = opt(0.6, "Trimmed-domain offset, norm per sqrt(dim).")
    trimmed_per_class: int = opt(20, "Trimmed clips per class.")
    n_classes: int = opt(20, "activitynet-like only: classes.")
    n_train: int = opt(100, "activitynet-like only: training videos.")
    n_test: int = opt(100, "activitynet-like only: test videos.")
    seed: int = opt(0, "Random seed.")

    def check(self) -> None:
        raise_broken([
            (self.max_videos >= 1, "--max-videos must be >= 1"),
            (self.n_layout_classes >= 0, "--n-layout-classes must be >= 0"),
            (self.rows_per_second >= 0, "--rows-per-second must be >= 0 (0 = the layout's usual rate)"),
            (self.dim >= 1, "--dim must be >= 1"),
            (1 <= self.train_modes <= self.modes, "need 1 <= --train-modes <= --modes"),
            (min(self.strength, self.actionness, self.context, self.background, self.noise,
                 self.domain_shift, self.rgb_gain, self.flow_gain, self.distractors) >= 0,
             "strengths, gains, --noise, --distractors and --domain-shift must be >= 0"),
            (0.0 <= self.noise_memory <= 0.99, "--noise-memory must be in [0, 0.99] (1 would freeze the noise)"),
            (0.0 < self.salient_fraction <= 1.0, "--salient-fraction must be in (0, 1]"),
            (0.0 <= self.salient_floor <= 1.0, "--salient-floor must be in [0, 1]"),
            (self.pattern in PATTERNS, f"--pattern must be one of {', '.join(PATTERNS)}"),
            (self.statistics in STATISTICS, f"--statistics must be one of {', '.join(STATISTICS)}"),
            (self.distractor_kind in DISTRACTORS, f"--distractor-kind must be one of {', '.join(DISTRACTORS)}"),
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
    """At most ``max_videos`` annotated videos per subset (seeded), each with a duration; with
    ``n_layout_classes``, only videos all of whose labels are among that many classes (seeded)."""
    rng = np.random.default_rng([spec.seed, 31])
    allowed = None
    if spec.n_layout_classes and spec.n_layout_classes < len(ann.classes()):
        # Its own generator, so that the choice of videos below does not depend on whether classes were chosen.
        crng = np.random.default_rng([spec.seed, 53])
        allowed = set(crng.choice(ann.classes(), size=spec.n_layout_classes, replace=False).tolist())
    keep = {}
    for subset in ann.subsets():
        ids = [v for v in ann.video_ids(subset) if ann[v].segments
               and (allowed is None or set(ann[v].labels) <= allowed)]
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
    return coverage_and_progress(n_rows, rate, segments, classes)[0]


def coverage_and_progress(n_rows: int, rate: float, segments: list[Segment],
                          classes: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """:func:`coverage` and, (n_rows, C), how far through its instance each row's centre lies (0 at the
    start, 1 at the end; from the segment that covers the row most, 0 outside every segment)."""
    cov = np.zeros((n_rows, len(classes)))
    prog = np.zeros((n_rows, len(classes)))
    lo = np.arange(n_rows) / rate
    hi = lo + 1.0 / rate
    index = {c: i for i, c in enumerate(classes)}
    for s in segments:
        inter = np.clip(np.minimum(hi, s.end) - np.maximum(lo, s.start), 0.0, None) * rate
        c = index[s.label]
        more = inter > cov[:, c]
        prog[more, c] = np.clip(((lo + hi)[more] / 2 - s.start) / max(s.end - s.start, 1e-9), 0.0, 1.0)
        cov[:, c] = np.maximum(cov[:, c], inter)
    return np.clip(cov, 0.0, 1.0), prog


def place_distractors(rng, n: int, rate: float, busy: np.ndarray, per_minute: float) -> np.ndarray:
    """(n,) 0/1: rows of distractor segments, 2-8 s each, in background rows only (``busy`` marks actions),
    ``per_minute`` of them per minute of background on average."""
    out = np.zeros(n)
    free = int((~busy).sum())
    count = rng.poisson(per_minute * free / rate / 60.0)
    for _ in range(count):
        length = max(1, int(round(rng.uniform(2.0, 8.0) * rate)))
        for _attempt in range(10):
            start = int(rng.integers(0, max(1, n - length + 1)))
            if not busy[start:start + length].any():
                out[start:start + length] = 1.0
                break
    return out


def correlated(e: np.ndarray, rho: float) -> np.ndarray:
    """(n, D) white unit noise ``e`` -> a stationary AR(1) process along the rows with lag-1 autocorrelation
    ``rho``, unit variance in every row: z_0 = e_0, z_k = rho z_(k-1) + sqrt(1 - rho^2) e_k. At 0, ``e`` itself
    (the same draws, so the families without memory are unchanged)."""
    if rho <= 0 or len(e) == 0:
        return e
    g = np.sqrt(1.0 - rho * rho)
    first = e[:1] / g  # so that z_0 = e_0: the process starts in its stationary state
    return lfilter([g], [1.0, -rho], np.concatenate([first, e[1:]]), axis=0)


class _LayoutWorld(_World):
    """:class:`tsrnet.data.generators.synthetic._World` plus one scene direction per class and stream, and the
    family's choices of statistics, pattern and distractors (:class:`LayoutSpec`)."""

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
        # Per stream, the factor on the class patterns (self.gain, from _World, is the trimmed domain's scale).
        self.pattern_gain = {"rgb": spec.rgb_gain, "flow": spec.flow_gain}
        # The centre of each class's salient phase, as a fraction of the instance (own generator: the other draws
        # stay as they were).
        f = spec.salient_fraction
        self.salient_centre = np.random.default_rng([spec.seed, 61]).uniform(f / 2, 1 - f / 2, len(classes))
        # ReLU statistics: per dimension a threshold (about a third of the values pass) and a log-normal scale,
        # so some dimensions are loud and most are quiet, as in a CNN's pooled activations. Own generator: the
        # other draws stay as they were.
        trng = np.random.default_rng([spec.seed, 47])
        self.relu = {s: (trng.normal(-0.5, 0.3, spec.dim), np.exp(trng.normal(0.0, 0.7, spec.dim)))
                     for s in STREAMS}

    def finish(self, s: str, x: np.ndarray) -> np.ndarray:
        """The family's feature statistics, applied to rows built in the signed, unit-noise space."""
        if self.layout.statistics == "relu":
            shift, scale = self.relu[s]
            x = np.maximum(x + shift, 0.0) ** 1.5 * scale
        return x.astype(np.float32)

    def rows(self, rng, n: int, cov: np.ndarray, video_classes: list[int], modes_allowed: int,
             prog: np.ndarray | None = None, distractor: np.ndarray | None = None, trimmed: bool = False) -> dict:
        """Feature rows of one video: noise + background + scene everywhere + actions where ``cov`` says
        (``prog``: where in its instance each row lies, for the drifting pattern), and ``distractor`` rows.
        ``trimmed``: a clip of the trimmed domain, shifted and scaled before the family's statistics, as a
        change of camera would be."""
        spec = self.layout
        w = rng.dirichlet(np.ones(len(self.bg["rgb"])) * 0.5)
        # Slowly varying scene amplitude in [0.5, 1]: a smoothed random walk.
        walk = np.cumsum(rng.standard_normal(n)) / np.sqrt(max(n, 1)) * 2.0
        amp = 0.75 + 0.25 * np.tanh(walk - walk.mean())[:, None] if spec.context_varies else 1.0
        mode = {c: int(rng.integers(modes_allowed)) for c in range(cov.shape[1])}
        strength = 0.8 + 0.4 * rng.random()
        busy = cov.max(axis=1, keepdims=True)  # (n, 1): how much of each row some action covers
        out = {}
        for s in STREAMS:
            scene = np.zeros((1, spec.dim))
            if video_classes:
                scene = amp * self.scene[s][video_classes].mean(axis=0)
            around = (w @ self.bg[s]) + scene  # (n or 1, D): what the camera sees besides the action
            if spec.pattern == "replaced":
                around = around * (1.0 - busy)
            x = correlated(rng.standard_normal((n, spec.dim)), spec.noise_memory) * spec.noise + around
            for c in np.nonzero(cov.any(axis=0))[0]:
                proto = self.proto[s][c, mode[c]]
                if spec.pattern == "drifting" and prog is not None:
                    # From the video's mode to the next one along the instance: (n, D).
                    proto = (1 - prog[:, [c]]) * proto + prog[:, [c]] * self.proto[s][c, (mode[c] + 1) % spec.modes]
                pattern = proto * strength * self.pattern_gain[s] * self.salience(prog, c) + self.actionness[s]
                x = x + cov[:, [c]] * pattern
            if distractor is not None and distractor.any():
                x = x + distractor[:, None] * self.distractor_pattern(s, video_classes, mode)
            if trimmed:
                x = (x + self.shift[s]) * self.gain[s]
            out[s] = self.finish(s, x)
        return out

    def salience(self, prog: np.ndarray | None, c: int) -> np.ndarray | float:
        """(n, 1): the class pattern's factor on each row of class ``c``'s instances, 1 in the salient phase
        (``salient_fraction`` of the instance around the class's centre), ``salient_floor`` elsewhere."""
        spec = self.layout
        if spec.salient_fraction >= 1.0 or prog is None:
            return 1.0
        inside = np.abs(prog[:, [c]] - self.salient_centre[c]) <= spec.salient_fraction / 2
        return np.where(inside, 1.0, spec.salient_floor)

    def distractor_pattern(self, s: str, video_classes: list[int], mode: dict) -> np.ndarray:
        """(D,): what a distractor row adds in stream ``s``."""
        spec = self.layout
        if spec.distractor_kind == "own-motion":
            if s != "flow" or not video_classes:
                return np.zeros(spec.dim)
            c = video_classes[0]
            return self.proto[s][c, mode[c]] * 0.7 * self.pattern_gain[s] + self.actionness[s]
        # Another class, the same for every video of a class: the next class in order (a look-alike).
        c = (video_classes[0] + 1) % len(self.classes) if video_classes else 0
        return self.proto[s][c, 0] * 0.7 * self.pattern_gain[s]


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
    drng = np.random.default_rng([spec.seed, 59])  # distractors: their own draws, the rest unchanged
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    attrs = {"source": "planted-action features on a real annotation layout (data.synthetic_layout)",
             "layout_spec": str(asdict(spec)), "rows_per_second": rate}
    index = {c: i for i, c in enumerate(classes)}
    with StoreWriter(out / "untrimmed.h5", spec.dim, STREAMS, attrs) as w:
        for vid in ann.video_ids():
            a = ann[vid]
            n = max(2, int(np.ceil(a.duration * rate)))
            cov, prog = coverage_and_progress(n, rate, a.segments, classes)
            modes = spec.train_modes if a.subset == train_subset else spec.modes
            distractor = (place_distractors(drng, n, rate, cov.any(axis=1), spec.distractors)
                          if spec.distractors > 0 else None)
            feats = world.rows(rng, n, cov, [index[c] for c in a.labels], modes, prog, distractor)
            times = (np.arange(n) + 0.5) / rate
            w.add(vid, times=times, fps=25.0, duration=a.duration, n_frames=int(round(a.duration * 25)),
                  domain="untrimmed", subset=a.subset, labels=a.labels, **feats)
    ann.write(out / "annotations.json")
    with StoreWriter(out / "trimmed.h5", spec.dim, STREAMS, attrs) as w:
        for i in range(spec.trimmed_per_class * len(classes)):
            c = i % len(classes)
            n = int(rng.integers(6, 16))
            cov = np.eye(len(classes))[[c] * n]
            prog = cov * np.linspace(0, 1, n)[:, None]
            feats = world.rows(rng, n, cov, [c], spec.modes, prog, trimmed=True)
            dur = n / rate
            w.add(f"clip_{i:05d}", times=(np.arange(n) + 0.5) / rate, fps=25.0, duration=dur,
                  n_frames=int(round(dur * 25)), domain="trimmed", labels=[classes[c]], **feats)
    return {"untrimmed": out / "untrimmed.h5", "trimmed": out / "trimmed.h5", "annotations": out / "annotations.json"}
