"""Synthetic untrimmed and trimmed *videos* with known ground truth, for the end-to-end demo.

Each class is an actor with its own appearance (shape, colour: what the RGB
stream sees) and its own motion (direction, rotation, oscillation, speed: what
the flow stream sees). An untrimmed video is a textured scene seen by a
drifting, jittering hand-held camera, with a grey distractor wandering
through it at any time, and 1-4 action instances of one or two classes
separated by background. Trimmed clips (the UCF101 stand-in, in
``trimmed/<Class>/<clip>.mp4`` layout so the folder names the label) show one
instance each on a differently textured, brighter scene: the domain shift
that knowledge transfer has to bridge.

Everything is drawn with OpenCV on numpy frames and encoded with PyAV;
the same seed gives the same files.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np

from tsrnet.data.format.annotations import Annotations, Segment, VideoAnnotation
from tsrnet.data.generators.synthetic import layout_rules, raise_broken
from tsrnet.data.core.io import write_json
from tsrnet.data.core.settings import opt
from tsrnet.data.generators.synthetic_motion import texture
from tsrnet.data.generators.videos import write_video


@dataclass(frozen=True)
class Actor:
    name: str
    shape: str  # square | circle | triangle | bar
    colour: tuple  # RGB in [0, 255]
    motion: str  # translate | rotate | oscillate | zoom
    velocity: tuple = (0.0, 0.0)  # px per frame at 10 fps (translate), or the oscillation axis
    rate: float = 0.0  # degrees per frame (rotate), cycles per second (oscillate, zoom)


ACTORS = (
    Actor("SlideRight", "square", (230, 40, 40), "translate", (3.0, 0.0)),
    Actor("Rise", "circle", (40, 200, 60), "translate", (0.0, -2.5)),
    Actor("Spin", "bar", (50, 80, 240), "rotate", rate=18.0),
    Actor("Bounce", "circle", (240, 220, 40), "oscillate", (0.0, 1.0), rate=1.5),
    Actor("Pulse", "square", (220, 60, 220), "zoom", rate=1.0),
    Actor("SlideLeft", "triangle", (40, 220, 220), "translate", (-3.0, 0.0)),
    Actor("Swing", "bar", (240, 140, 30), "oscillate", (1.0, 0.0), rate=1.0),
    Actor("Sink", "triangle", (150, 90, 40), "translate", (0.0, 2.0)),
)


@dataclass
class VideoSpec:
    n_classes: int = opt(5, "Action classes (actors differing in shape, colour and motion).")
    width: int = opt(160, "Frame width, pixels.")
    height: int = opt(120, "Frame height, pixels.")
    fps: float = opt(10.0, "Frames per second.")
    # with 20 training videos the attention barely learned
    n_train: int = opt(40, "Untrimmed training videos (subset 'train').")
    n_test: int = opt(20, "Untrimmed test videos (subset 'test').")
    clips_per_class: int = opt(12, "Trimmed clips per class.")
    min_duration: float = opt(20.0, "Shortest untrimmed video, seconds.")
    max_duration: float = opt(40.0, "Longest untrimmed video, seconds.")
    min_action: float = opt(3.0, "Shortest action instance, seconds.")
    max_action: float = opt(8.0, "Longest action instance, seconds.")
    max_instances: int = opt(4, "Most action instances per video.")
    clip_duration: float = opt(3.0, "Length of a trimmed clip, seconds.")
    actor_size: float = opt(18.0, "Actor half-size in pixels (a circle's radius), +-20% per instance.")
    camera_drift: float = opt(0.15, "Slow panning, at most this many pixels per frame.")
    camera_jitter: float = opt(0.15, "Hand-held shake added each frame: standard deviation in pixels.")
    seed: int = opt(0, "Random seed of the whole set.")

    def check(self) -> None:
        """Raise :class:`DataError` naming every setting that cannot make a usable set."""
        rules = layout_rules(self) + [
            (1 <= self.n_classes <= len(ACTORS), f"--n-classes must be 1..{len(ACTORS)} (there are "
                                                 f"{len(ACTORS)} actor classes)"),
            (self.clips_per_class >= 0, "--clips-per-class must be >= 0"),
            (self.fps > 0, "--fps must be positive"),
            (min(self.width, self.height) >= 2.5 * self.actor_size > 0,
             "--width and --height must be at least 2.5 x --actor-size (the actor must fit on screen)"),
            (self.clip_duration * self.fps >= 2, "--clip-duration must span at least 2 frames"),
            (self.camera_drift >= 0 and self.camera_jitter >= 0, "camera drift and jitter must be >= 0"),
        ]
        raise_broken(rules)


def _polygon(shape: str, size: float, angle: float) -> np.ndarray:
    if shape == "square":
        pts = np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]], dtype=np.float64)
    elif shape == "triangle":
        pts = np.array([[0, -1.2], [1.1, 0.9], [-1.1, 0.9]], dtype=np.float64)
    elif shape == "bar":
        pts = np.array([[-1.6, -0.35], [1.6, -0.35], [1.6, 0.35], [-1.6, 0.35]], dtype=np.float64)
    else:
        raise ValueError(shape)
    a = np.deg2rad(angle)
    rot = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    return pts @ rot.T * size


def _draw(img: np.ndarray, actor: Actor, centre, size: float, angle: float) -> None:
    c = (int(round(centre[0])), int(round(centre[1])))
    if actor.shape == "circle":
        cv2.circle(img, c, int(round(size)), actor.colour, -1, lineType=cv2.LINE_AA)
    else:
        pts = (_polygon(actor.shape, size, angle) + np.array(centre)).round().astype(np.int32)
        cv2.fillPoly(img, [pts], actor.colour, lineType=cv2.LINE_AA)


def _actor_state(actor: Actor, t: float, fps: float, start, size0: float):
    """Centre, size and angle of ``actor`` t seconds into its action."""
    k = t * fps  # frames since the start
    cx, cy = start
    size, angle = size0, 0.0
    if actor.motion == "translate":
        cx, cy = cx + actor.velocity[0] * k, cy + actor.velocity[1] * k
    elif actor.motion == "rotate":
        angle = actor.rate * k
    elif actor.motion == "oscillate":
        amp = 14.0
        s = np.sin(2 * np.pi * actor.rate * t) * amp
        cx, cy = cx + actor.velocity[0] * s, cy + actor.velocity[1] * s
    elif actor.motion == "zoom":
        size = size0 * (1.0 + 0.45 * np.sin(2 * np.pi * actor.rate * t))
    return (cx, cy), size, angle


class _Scene:
    """A textured canvas seen through a drifting, jittering camera, with a distractor."""

    def __init__(self, spec: VideoSpec, rng: np.random.Generator, n_frames: int, style: str):
        self.spec, self.rng = spec, rng
        w, h = spec.width, spec.height
        self.margin = 40
        H, W = h + 2 * self.margin, w + 2 * self.margin
        ys, xs = np.mgrid[0:H, 0:W].astype(np.float64)
        if style == "trimmed":  # another domain: coarser, brighter, warmer scenes
            g = texture(xs, ys, rng, n_waves=20, min_period=12, max_period=120)
            tint = np.array([1.0, 0.9, 0.7]) * rng.uniform(0.9, 1.1, 3)
            base = 0.35 + 0.5 * g[..., None] * tint
        else:
            g = texture(xs, ys, rng, n_waves=40, min_period=4, max_period=64)
            tint = np.array([0.6, 0.65, 0.6]) * rng.uniform(0.85, 1.15, 3)
            base = 0.1 + 0.6 * g[..., None] * tint
        self.canvas = (np.clip(base, 0, 1) * 255).astype(np.uint8)
        # Camera path: slow drift plus hand-held jitter, in canvas pixels.
        drift = rng.uniform(-spec.camera_drift, spec.camera_drift, 2)
        jitter = rng.normal(0, spec.camera_jitter, (n_frames, 2)).cumsum(axis=0)
        k = np.arange(n_frames)[:, None]
        pos = self.margin + np.clip(drift * k + jitter, -self.margin + 1, self.margin - 1)
        self.offsets = np.round(pos).astype(int)
        # A grey distractor wandering through the scene (not an action).
        self.distractor = rng.uniform([0, 0], [w, h]) + rng.normal(0, 1.5, (n_frames, 2)).cumsum(axis=0)
        self.distractor_on = rng.random() < 0.8

    def frame(self, i: int) -> np.ndarray:
        ox, oy = self.offsets[i]
        img = np.ascontiguousarray(self.canvas[oy:oy + self.spec.height, ox:ox + self.spec.width])
        if self.distractor_on:
            x, y = self.distractor[i] % [self.spec.width, self.spec.height]
            cv2.circle(img, (int(x), int(y)), 7, (128, 128, 128), -1, lineType=cv2.LINE_AA)
        return img


def _render(spec: VideoSpec, rng, n_frames: int, instances: list, style: str) -> np.ndarray:
    """Frames of a scene with ``instances`` = [(actor, first frame, last frame + 1, start xy, size)]."""
    scene = _Scene(spec, rng, n_frames, style)
    frames = np.empty((n_frames, spec.height, spec.width, 3), dtype=np.uint8)
    for i in range(n_frames):
        img = scene.frame(i)
        for actor, a, b, start, size in instances:
            if a <= i < b:
                centre, sz, ang = _actor_state(actor, (i - a) / spec.fps, spec.fps, start, size)
                _draw(img, actor, centre, sz, ang)
        frames[i] = img
    return frames


def _start_point(actor: Actor, spec: VideoSpec, rng, n_frames: int):
    """Where an instance starts so that its motion stays mostly inside the frame."""
    w, h = spec.width, spec.height
    dx, dy = (np.array(actor.velocity) * n_frames) if actor.motion == "translate" else (0.0, 0.0)
    lo = np.array([0.15 * w - min(dx, 0), 0.2 * h - min(dy, 0)])
    hi = np.array([0.85 * w - max(dx, 0), 0.8 * h - max(dy, 0)])
    lo, hi = np.minimum(lo, hi), np.maximum(lo, hi)
    return tuple(rng.uniform(lo, hi))


def generate_videos(out_dir: str | Path, spec: VideoSpec | None = None, progress: bool = True) -> dict:
    """Write ``untrimmed/*.mp4``, ``trimmed/<Class>/*.mp4`` and ``annotations.json`` into ``out_dir``."""
    from tsrnet.data.core.progress import progress_bar

    spec = spec or VideoSpec()
    spec.check()
    out = Path(out_dir)
    (out / "untrimmed").mkdir(parents=True, exist_ok=True)
    actors = ACTORS[: spec.n_classes]
    rng = np.random.default_rng([spec.seed, 21])
    anns: dict[str, VideoAnnotation] = {}
    jobs = [("train", i) for i in range(spec.n_train)] + [("test", i) for i in range(spec.n_test)]
    for subset, i in progress_bar(jobs, total=len(jobs), desc="untrimmed videos", unit="video", disable=not progress):
        vid = f"video_{subset}_{i:04d}"
        dur = rng.uniform(spec.min_duration, spec.max_duration)
        n = int(round(dur * spec.fps))
        n_cls = 1 if rng.random() < 0.75 else 2
        classes = rng.choice(len(actors), size=min(n_cls, len(actors)), replace=False)
        k = int(rng.integers(1, spec.max_instances + 1))
        busy = np.zeros(n, dtype=bool)
        instances, segs = [], []
        for _ in range(20 * k):
            if len(instances) == k:
                break
            length = int(round(rng.uniform(spec.min_action, spec.max_action) * spec.fps))
            length = min(length, n // 3)
            a = int(rng.integers(0, n - length + 1))
            gap = int(spec.fps)  # at least a second of background between instances
            if busy[max(0, a - gap):min(n, a + length + gap)].any():
                continue
            busy[a:a + length] = True
            actor = actors[int(classes[len(instances) % len(classes)])]
            size = spec.actor_size * rng.uniform(0.8, 1.2)
            instances.append((actor, a, a + length, _start_point(actor, spec, rng, length), size))
            segs.append(Segment(actor.name, a / spec.fps, (a + length) / spec.fps))
        frames = _render(spec, rng, n, instances, "untrimmed")
        write_video(out / "untrimmed" / f"{vid}.mp4", frames, fps=spec.fps)
        anns[vid] = VideoAnnotation(vid, subset, n / spec.fps, sorted(segs, key=lambda s: s.start))
    Annotations(anns).write(out / "annotations.json")
    clips = [(c, j) for c in range(len(actors)) for j in range(spec.clips_per_class)]
    for c, j in progress_bar(clips, total=len(clips), desc="trimmed clips", unit="clip", disable=not progress):
        actor = actors[c]
        n = int(round(spec.clip_duration * spec.fps * rng.uniform(0.8, 1.2)))
        inst = [(actor, 0, n, _start_point(actor, spec, rng, n), spec.actor_size * rng.uniform(0.8, 1.2))]
        d = out / "trimmed" / actor.name
        d.mkdir(parents=True, exist_ok=True)
        write_video(d / f"clip_{actor.name}_{j:03d}.mp4", _render(spec, rng, n, inst, "trimmed"), fps=spec.fps)
    write_json(out / "spec.json", asdict(spec))
    return {"untrimmed": out / "untrimmed", "trimmed": out / "trimmed", "annotations": out / "annotations.json"}
