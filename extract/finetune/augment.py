"""From a cached snippet to a training input: rotation, scale-jittered crop, flip, normalisation.

The paper names "rotating and cropping augmentation" without details; the
choices here (documented in docs/backbone.md):

- rotation by an angle drawn uniformly from ``[-rotation, rotation]`` degrees
  about the frame centre, borders replicated. A flow field is rotated as an
  image *and* its vectors are turned by the same matrix, so the stack still
  describes the motion of the rotated frames;
- a square crop whose side is ``s`` times the short side, ``s`` drawn from
  ``scales`` (TSN's scale jittering, 1 / .875 / .75 / .66), at a uniformly
  random position, resized to ``size``; flow vectors scale with the resize;
- a horizontal flip with probability 1/2 (TSN's), negating the x components;
- the extractor's normalisation (``tsrnet.extract.features.normalise_rgb`` /
  ``normalise_flow``), so the fine-tuned network sees inputs on the scale
  ``extract-features`` will give it.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from tsrnet.extract.features import normalise_flow, normalise_rgb


@dataclass(frozen=True)
class Draw:
    """One snippet's random augmentation."""

    angle: float  # degrees, counter-clockwise as shown
    side: int  # crop side in pixels of the cached frame
    top: int
    left: int
    flip: bool


def draw(rng: np.random.Generator, h: int, w: int, rotation: float, scales, flip: bool) -> Draw:
    side = max(1, int(round(min(h, w) * float(rng.choice(scales)))))
    return Draw(angle=float(rng.uniform(-rotation, rotation)) if rotation > 0 else 0.0, side=side,
                top=int(rng.integers(0, h - side + 1)), left=int(rng.integers(0, w - side + 1)),
                flip=bool(flip and rng.random() < 0.5))


def _rotation(h: int, w: int, angle: float) -> np.ndarray:
    return cv2.getRotationMatrix2D(((w - 1) / 2, (h - 1) / 2), angle, 1.0)  # (2, 3): dst = M @ [x, y, 1]


def rotate_flow(fields: np.ndarray, angle: float) -> np.ndarray:
    """Flow (h, w, 2k) of frames rotated by ``angle``: each map moved as an image, each vector turned."""
    if angle == 0.0:
        return fields
    h, w = fields.shape[:2]
    m = _rotation(h, w, angle)
    moved = np.stack([cv2.warpAffine(fields[..., c], m, (w, h), flags=cv2.INTER_LINEAR,
                                     borderMode=cv2.BORDER_REPLICATE) for c in range(fields.shape[-1])], axis=-1)
    a = m[:, :2].astype(np.float32)  # a point moves by m, so a displacement d moves to a @ d
    x, y = moved[..., 0::2], moved[..., 1::2]
    out = np.empty_like(moved)
    out[..., 0::2] = a[0, 0] * x + a[0, 1] * y
    out[..., 1::2] = a[1, 0] * x + a[1, 1] * y
    return out


def _crop_resize(img: np.ndarray, d: Draw, size: int) -> np.ndarray:
    x = img[d.top:d.top + d.side, d.left:d.left + d.side]
    if d.side == size:
        return x
    interp = cv2.INTER_AREA if d.side > size else cv2.INTER_LINEAR
    if x.ndim == 3 and x.shape[2] > 4:  # OpenCV resizes at most 4 channels at a time
        return np.concatenate([cv2.resize(x[..., c:c + 2], (size, size), interpolation=interp)
                               for c in range(0, x.shape[2], 2)], axis=-1)
    return cv2.resize(x, (size, size), interpolation=interp)


def rgb_sample(img: np.ndarray, d: Draw, size: int) -> np.ndarray:
    """uint8 RGB (h, w, 3) -> (3, size, size) float32."""
    h, w = img.shape[:2]
    if d.angle:
        img = cv2.warpAffine(img, _rotation(h, w, d.angle), (w, h), flags=cv2.INTER_LINEAR,
                             borderMode=cv2.BORDER_REPLICATE)
    x = _crop_resize(img, d, size)
    if d.flip:
        x = x[:, ::-1]
    return normalise_rgb(np.ascontiguousarray(x))


def flow_sample(fields: np.ndarray, d: Draw, size: int) -> np.ndarray:
    """Flow in px (h, w, 10) -> (10, size, size) float32."""
    g = _crop_resize(rotate_flow(fields, d.angle), d, size) * (size / d.side)
    if d.flip:
        g = g[:, ::-1].copy()
        g[..., 0::2] *= -1
    return normalise_flow(g).transpose(2, 0, 1).astype(np.float32)
