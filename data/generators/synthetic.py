"""Planted-action feature stores with known ground truth.

A fast stand-in for real two-stream features, for tests and for the
ablation. Each class has a few appearance *modes* (think camera angles or
athletes); an action row is one mode's prototype plus noise, a background
row is a mixture of background prototypes plus noise, and some background
rows next to an action carry a weak trace of its class (the scene context
of a sport, which fools a model without attention). Action rows also share a
class-agnostic *actionness* direction per stream (a person moving, in real
features), absent from the context rows: this is what a class-agnostic
attention module can learn and a classifier trained on video labels alone
has no reason to use, since every training video contains some action. RGB and flow see
different prototypes with class-dependent strength, so fusing the streams
helps.

The trimmed set (the UCF101 stand-in) holds clips of single actions drawn
from *all* modes of each class and shifted into another domain (a fixed
offset and scale per stream), while the untrimmed training videos are few and
show only some modes: what the trimmed clips add is exactly the knowledge
TSRNet means to transfer, and the domain shift is what MMD aligns.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from tsrnet.data.format.annotations import Annotations, Segment, VideoAnnotation
from tsrnet.data.core.errors import DataError
from tsrnet.data.core.settings import opt
from tsrnet.data.format.store import STREAMS, StoreWriter

CLASS_NAMES = (
    "BaseballPitch", "BasketballDunk", "Billiards", "CleanAndJerk", "CliffDiving", "CricketBowling",
    "CricketShot", "Diving", "FrisbeeCatch", "GolfSwing", "HammerThrow", "HighJump", "JavelinThrow",
    "LongJump", "PoleVault", "Shotput", "SoccerPenalty", "TennisSwing", "ThrowDiscus", "VolleyballSpiking",
)


@dataclass
class SyntheticSpec:
    """The generator's own layout: random durations and action times, ``n_train``/``n_test`` videos."""

    n_classes: int = opt(10, "Action classes.")
    dim: int = opt(128, "Feature dimensions per stream.")
    n_train: int = opt(40, "Untrimmed training videos (subset 'train').")
    n_test: int = opt(60, "Untrimmed test videos (subset 'test').")
    n_trimmed: int = opt(400, "Trimmed single-action clips (the transfer methods' source domain).")
    rows_per_second: float = opt(2.0, "Feature rows per second of video.")
    min_duration: float = opt(40.0, "Shortest untrimmed video, seconds.")
    max_duration: float = opt(120.0, "Longest untrimmed video, seconds.")
    min_action: float = opt(4.0, "Shortest action instance, seconds.")
    max_action: float = opt(14.0, "Longest action instance, seconds.")
    max_instances: int = opt(4, "Most action instances per video.")
    modes: int = opt(4, "Appearance modes per class (each instance shows one).")
    train_modes: int = opt(3, "Modes of each class that the untrimmed training videos show (the test videos and "
                              "trimmed clips show all).")
    strength: float = opt(0.45, "Class prototype norm per sqrt(dim), relative to unit noise.")
    context: float = opt(0.35, "Strength of the class trace in the background near an action.")
    domain_shift: float = opt(0.6, "Trimmed-domain offset norm per sqrt(dim).")
    actionness: float = opt(0.3, "Norm per sqrt(dim) of the class-agnostic direction shared by action rows.")
    seed: int = opt(0, "Random seed of the whole set.")

    def check(self) -> None:
        """Raise :class:`DataError` naming every setting that cannot make a usable set."""
        rules = layout_rules(self) + [
            (self.n_classes >= 1, "--n-classes must be >= 1"),
            (self.dim >= 1, "--dim must be >= 1"),
            (self.n_trimmed >= 0, "--n-trimmed must be >= 0"),
            (self.rows_per_second > 0, "--rows-per-second must be positive"),
            (1 <= self.train_modes <= self.modes, "need 1 <= --train-modes <= --modes"),
            (min(self.strength, self.context, self.domain_shift, self.actionness) >= 0,
             "--strength, --context, --domain-shift and --actionness must be >= 0"),
        ]
        raise_broken(rules)


def layout_rules(spec) -> list[tuple[bool, str]]:
    """The checks both synthetic generators share: video counts, durations, action lengths."""
    return [
        (spec.n_train >= 0 and spec.n_test >= 0 and spec.n_train + spec.n_test >= 1,
         "--n-train and --n-test must be >= 0, with at least one video in all"),
        (0 < spec.min_duration <= spec.max_duration, "need 0 < --min-duration <= --max-duration"),
        (0 < spec.min_action <= spec.max_action, "need 0 < --min-action <= --max-action"),
        (spec.min_action + 2 <= spec.min_duration,
         "--min-duration must leave 1 s of background on each side of an action of --min-action"),
        (spec.max_instances >= 1, "--max-instances must be >= 1"),
    ]


def raise_broken(rules: list[tuple[bool, str]]) -> None:
    bad = [msg for ok, msg in rules if not ok]
    if bad:
        raise DataError("; ".join(bad))


def _unit(rng, k, d):
    v = rng.standard_normal((k, d))
    return v / np.linalg.norm(v, axis=1, keepdims=True)


class _World:
    """Prototypes shared by the untrimmed and trimmed sets."""

    def __init__(self, spec: SyntheticSpec):
        self.spec = spec
        rng = np.random.default_rng([spec.seed, 7])
        d, c, k = spec.dim, spec.n_classes, spec.modes
        scale = np.sqrt(d)
        self.classes = [CLASS_NAMES[i] if i < len(CLASS_NAMES) else f"Action{i:03d}" for i in range(c)]
        self.proto, self.bg, self.shift, self.gain = {}, {}, {}, {}
        for s in STREAMS:
            base = _unit(rng, c, d)
            modes = _unit(rng, c * k, d).reshape(c, k, d)
            proto = base[:, None, :] * 0.6 + modes * 0.8
            proto /= np.linalg.norm(proto, axis=2, keepdims=True)
            # Class-dependent visibility per stream: some classes are clearer in RGB, others in flow.
            vis = rng.uniform(0.6, 1.4, size=(c, 1, 1))
            self.proto[s] = proto * vis * spec.strength * scale  # (C, K, D)
            self.bg[s] = _unit(rng, 6, d) * spec.strength * scale  # (6, D)
            self.shift[s] = _unit(rng, 1, d)[0] * spec.domain_shift * scale
            self.gain[s] = rng.uniform(0.7, 1.3)
        # Drawn from its own generator so that adding it left the other prototypes unchanged.
        arng = np.random.default_rng([spec.seed, 13])
        self.actionness = {s: _unit(arng, 1, d)[0] * spec.actionness * scale for s in STREAMS}

    def background(self, rng, n):
        w = rng.dirichlet(np.ones(len(self.bg["rgb"])) * 0.5)
        drift = np.linspace(0, 1, n)[:, None]
        return {s: ((w @ self.bg[s]) * (0.7 + 0.6 * drift) + rng.standard_normal((n, self.spec.dim)))
                for s in STREAMS}

    def action(self, rng, cls, mode, n):
        amp = 0.8 + 0.4 * rng.random()
        ramp = np.minimum(1.0, np.minimum(np.arange(1, n + 1), np.arange(n, 0, -1)) / 2.0)[:, None]
        return {s: (self.proto[s][cls, mode] * amp + self.actionness[s]) * ramp for s in STREAMS}


def _untrimmed_video(world: _World, rng, modes_allowed: int):
    spec = world.spec
    dur = rng.uniform(spec.min_duration, spec.max_duration)
    n = max(8, int(round(dur * spec.rows_per_second)))
    dur = n / spec.rows_per_second
    feats = world.background(rng, n)
    n_cls = 1 if rng.random() < 0.8 else 2
    classes = rng.choice(spec.n_classes, size=n_cls, replace=False)
    k = int(rng.integers(1, spec.max_instances + 1))
    occupied = np.zeros(n, dtype=bool)
    segs = []
    for _ in range(k * 4):  # attempts
        if len(segs) == k:
            break
        length = int(round(rng.uniform(spec.min_action, spec.max_action) * spec.rows_per_second))
        length = max(2, min(length, n // 3))
        start = int(rng.integers(0, n - length + 1))
        lo, hi = max(0, start - 3), min(n, start + length + 3)  # keep background between instances
        if occupied[lo:hi].any():
            continue
        occupied[start:start + length] = True
        cls = int(classes[len(segs) % n_cls])
        mode = int(rng.integers(modes_allowed))
        act = world.action(rng, cls, mode, length)
        for s in STREAMS:
            feats[s][start:start + length] += act[s]
            # Scene context: a faint trace of the class around the action.
            ctx = int(round(length * rng.uniform(0.5, 1.5)))
            for a, b in ((max(0, start - ctx), start), (start + length, min(n, start + length + ctx))):
                feats[s][a:b] += world.proto[s][cls, mode] * spec.context * rng.uniform(0.5, 1.0)
        segs.append(Segment(world.classes[cls], start / spec.rows_per_second,
                            (start + length) / spec.rows_per_second))
    segs.sort(key=lambda s: s.start)
    times = (np.arange(n) + 0.5) / spec.rows_per_second
    return feats, times, dur, segs


def generate(out_dir: str | Path, spec: SyntheticSpec | None = None) -> dict:
    """Write ``untrimmed.h5``, ``trimmed.h5`` and ``annotations.json`` into ``out_dir``.

    Subsets: ``train`` (video-level labels only matter) and ``test``. Returns
    the paths written.
    """
    spec = spec or SyntheticSpec()
    spec.check()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    world = _World(spec)
    rng = np.random.default_rng([spec.seed, 11])
    attrs = {"source": "synthetic planted-action features (data.synthetic)", "synthetic_spec": str(asdict(spec)),
             "rows_per_second": spec.rows_per_second}
    anns: dict[str, VideoAnnotation] = {}
    with StoreWriter(out / "untrimmed.h5", spec.dim, STREAMS, attrs) as w:
        for subset, count, modes in (("train", spec.n_train, spec.train_modes), ("test", spec.n_test, spec.modes)):
            for i in range(count):
                vid = f"synth_{subset}_{i:04d}"
                feats, times, dur, segs = _untrimmed_video(world, rng, modes)
                labels = sorted({s.label for s in segs})
                w.add(vid, times=times, fps=30.0, duration=dur, n_frames=int(round(dur * 30)), domain="untrimmed",
                      subset=subset, labels=labels, **feats)
                anns[vid] = VideoAnnotation(vid, subset, dur, segs)
    Annotations(anns).write(out / "annotations.json")
    with StoreWriter(out / "trimmed.h5", spec.dim, STREAMS, attrs) as w:
        for i in range(spec.n_trimmed):
            cls = i % spec.n_classes
            mode = int(rng.integers(spec.modes))
            n = int(rng.integers(8, 24))
            bg = world.background(rng, n)
            act = world.action(rng, cls, mode, n)
            feats = {s: (bg[s] * 0.5 + act[s] + world.shift[s]) * world.gain[s] for s in STREAMS}
            times = (np.arange(n) + 0.5) / spec.rows_per_second
            dur = n / spec.rows_per_second
            w.add(f"synth_clip_{i:05d}", times=times, fps=30.0, duration=dur, n_frames=int(round(dur * 30)),
                  domain="trimmed", labels=[world.classes[cls]], **feats)
    return {"untrimmed": out / "untrimmed.h5", "trimmed": out / "trimmed.h5", "annotations": out / "annotations.json"}
