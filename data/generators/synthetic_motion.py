"""Textured frame pairs with known optical flow, for testing and benchmarking TV-L1.

The texture is a sum of random plane waves, so it can be sampled exactly at any
point; the motion is affine, ``M(x) = A (x - c) + c + t``, so it inverts
exactly: ``next(y) = T(M^{-1}(y))`` and the true flow is ``M(x) - x``.
"""
from __future__ import annotations

import numpy as np


def texture(points_x: np.ndarray, points_y: np.ndarray, rng: np.random.Generator, n_waves: int = 40,
            min_period: float = 4.0, max_period: float = 64.0) -> np.ndarray:
    """A random smooth texture in [0, 1] sampled at the given points (any shape).

    Amplitudes grow with the period (a 1/f spectrum, like natural images), so the
    coarse pyramid levels of a flow method still see texture.
    """
    angles = rng.uniform(0, 2 * np.pi, n_waves)
    periods = np.exp(rng.uniform(np.log(min_period), np.log(max_period), n_waves))
    phases = rng.uniform(0, 2 * np.pi, n_waves)
    amps = rng.uniform(0.5, 1.0, n_waves) * periods / max_period
    k = 2 * np.pi / periods
    val = np.zeros(np.shape(points_x), dtype=np.float64)
    for a, kk, ph, am in zip(angles, k, phases, amps):
        val += am * np.sin(kk * (np.cos(a) * points_x + np.sin(a) * points_y) + ph)
    val = val / amps.sum()
    return 0.5 + 1.2 * val  # most values well inside [0, 1]; clipped when quantised


def affine_pair(h: int, w: int, rng: np.random.Generator, max_motion: float = 10.0):
    """(prev, next, flow): uint8 (H, W) frames and the true float32 flow (H, W, 2).

    A random translation, rotation and scaling whose largest displacement over
    the frame is ``max_motion`` pixels.
    """
    seed = rng.integers(2**31)
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float64)
    c = np.array([w / 2, h / 2])
    radius = np.hypot(w / 2, h / 2)
    # Split the motion budget between translation and the linear part.
    t = rng.uniform(-1, 1, 2)
    t *= rng.uniform(0.2, 0.6) * max_motion / max(np.linalg.norm(t), 1e-9)
    lin_budget = (max_motion - np.linalg.norm(t)) / radius
    ang = rng.uniform(-1, 1) * lin_budget * 0.7
    scale = 1 + rng.uniform(-1, 1) * lin_budget * 0.3
    A = scale * np.array([[np.cos(ang), -np.sin(ang)], [np.sin(ang), np.cos(ang)]])
    X = np.stack([xs - c[0], ys - c[1]], axis=-1)  # (H, W, 2)
    # The flow (A - I)(x - c) + t is linear in (A - I, t): rescale both so that the
    # largest displacement is exactly max_motion.
    k = max_motion / np.linalg.norm(X @ (A - np.eye(2)).T + t, axis=-1).max()
    A, t = np.eye(2) + k * (A - np.eye(2)), k * t
    moved = X @ A.T + c + t
    flow = moved - np.stack([xs, ys], axis=-1)
    Ainv = np.linalg.inv(A)
    src = (np.stack([xs, ys], axis=-1) - c - t) @ Ainv.T + c
    prev = texture(xs, ys, np.random.default_rng(seed))
    nxt = texture(src[..., 0], src[..., 1], np.random.default_rng(seed))
    q = lambda im: np.clip(np.round(im * 255), 0, 255).astype(np.uint8)  # noqa: E731
    return q(prev), q(nxt), flow.astype(np.float32)
