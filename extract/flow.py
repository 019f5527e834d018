"""TV-L1 optical flow with two backends behind one function.

``tvl1(prev, next, backend="torch"|"opencv")`` takes uint8 grayscale frames
(H, W) or batches (B, H, W) and returns float32 flow (..., H, W, 2) in pixels,
``flow[..., 0]`` horizontal and ``flow[..., 1]`` vertical, such that
``next(x + flow(x)) ≈ prev(x)``, as OpenCV defines it.

- ``opencv``: ``cv2.optflow.DualTVL1OpticalFlow`` from opencv-contrib, the
  implementation the published two-stream features were made with.
- ``torch``: this project's TV-L1, the same algorithm (Zach, Pock & Bischof 2007
  with Wedel et al.'s median filtering; the iteration structure of Sánchez,
  Meinhardt-Llopis & Facciolo 2013, which OpenCV follows) with fused
  iterations. On a CPU it runs :mod:`.tvl1_cpu`: OpenCV's own primitives
  around a C kernel that does one iteration in one sweep, one pair per thread.
  On a GPU it runs the tensor code below on a batch of pairs, the iteration
  and the median filter each compiled into one kernel by ``torch.compile``.
  Each pair keeps its own convergence test either way.

The tensor code follows OpenCV step for step so that the two agree:
images stay in [0, 255]; the pyramid is built by bilinear resizing at
``scale_step`` until a side would fall under 16 px; at each scale the dual
variables restart from 0; each warp resamples I1 and its centred gradient
bicubically (zero outside the image, as ``cv2.remap``'s default border); the
stopping test is ``sum |u_k - u_{k-1}|^2 <= epsilon^2 * H * W``. A pair that
meets it is frozen by a mask for the rest of the warp, exactly as if it had
left the loop, so the GPU need not stop to look at every iteration: it
checks every ``check_every`` iterations and only then drops finished pairs
from the working batch. Known
differences: ``cv2.remap`` quantises sample positions to 1/32 px and
``cv2.resize`` with a scale factor maps coordinates with the exact factor
where torch uses the ratio of the rounded sizes; both are far below the
agreement the tests require.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn.functional as F

from tsrnet.data.core.devices import resolve_device
from tsrnet.data.core.settings import opt

BACKENDS = ("torch", "opencv")


@dataclass(frozen=True)
class TVL1Params:
    """TV-L1 parameters; the defaults are OpenCV's."""

    tau: float = opt(0.25, "TV-L1 time step of the primal-dual scheme.")
    lambda_: float = opt(0.15, "TV-L1 data-term weight (smaller: smoother flow).")
    theta: float = opt(0.3, "TV-L1 coupling of u and v.")
    scales: int = opt(5, "TV-L1 pyramid levels.")
    scale_step: float = opt(0.8, "TV-L1 size ratio between pyramid levels.")
    warps: int = opt(5, "TV-L1 warps per level.")
    epsilon: float = opt(0.01, "TV-L1 stopping threshold.")
    inner_iterations: int = opt(30, "TV-L1 iterations per outer iteration.")
    outer_iterations: int = opt(10, "TV-L1 outer iterations (median filter between).")
    median: int = opt(5, "TV-L1 median filter size (<= 1: off).")

    def to_dict(self) -> dict:
        return asdict(self)


def default_backend(device: str | torch.device | None = None) -> str:
    """torch (this project's fused TV-L1) on a GPU, and on a CPU where its C kernel builds; else opencv."""
    if resolve_device(device).type == "cuda":
        return "torch"
    from . import tvl1_cpu

    return "torch" if tvl1_cpu.available() else "opencv"


def tvl1(prev, next, backend: str = "torch", device=None, params: TVL1Params = TVL1Params()) -> np.ndarray:
    """Optical flow from ``prev`` to ``next``: uint8 (H, W) or (B, H, W) -> float32 (..., H, W, 2)."""
    prev, next = np.asarray(prev), np.asarray(next)
    if prev.shape != next.shape or prev.ndim not in (2, 3):
        raise ValueError(f"tvl1 needs two (H, W) or (B, H, W) arrays of one shape, got {prev.shape} and {next.shape}")
    if min(prev.shape[-2:]) < 3:
        raise ValueError(f"frames of {prev.shape[-2:]} are too small for TV-L1 (at least 3 x 3)")
    single = prev.ndim == 2
    if single:
        prev, next = prev[None], next[None]
    if backend == "opencv":
        out = _tvl1_opencv(prev, next, params)
    elif backend == "torch":
        dev = resolve_device(device)
        if dev.type == "cpu":
            from .tvl1_cpu import tvl1_cpu

            out = tvl1_cpu(prev, next, params, threads=torch.get_num_threads())
        else:
            a = torch.from_numpy(np.ascontiguousarray(prev)).to(dev, torch.float32)
            b = torch.from_numpy(np.ascontiguousarray(next)).to(dev, torch.float32)
            with torch.no_grad():
                out = tvl1_torch(a, b, params).cpu().numpy()
    else:
        raise ValueError(f"unknown TV-L1 backend {backend!r}; choose one of {BACKENDS}")
    return out[0] if single else out


# -- OpenCV ---------------------------------------------------------------------------------------
def opencv_solver(params: TVL1Params = TVL1Params()):
    import cv2

    if not hasattr(cv2, "optflow"):
        raise RuntimeError("the opencv TV-L1 backend needs opencv-contrib-python(-headless); "
                           "pip install opencv-contrib-python-headless, or use --flow-backend torch")
    p = params
    return cv2.optflow.DualTVL1OpticalFlow_create(
        tau=p.tau, lambda_=p.lambda_, theta=p.theta, nscales=p.scales, warps=p.warps, epsilon=p.epsilon,
        innnerIterations=p.inner_iterations, outerIterations=p.outer_iterations, scaleStep=p.scale_step,
        gamma=0.0, medianFiltering=p.median, useInitialFlow=False)


def _tvl1_opencv(prev: np.ndarray, next: np.ndarray, params: TVL1Params) -> np.ndarray:
    solver = opencv_solver(params)
    out = np.empty(prev.shape + (2,), dtype=np.float32)
    for i in range(len(prev)):
        out[i] = solver.calc(np.ascontiguousarray(prev[i], dtype=np.uint8),
                             np.ascontiguousarray(next[i], dtype=np.uint8), None)
    return out


# -- torch ----------------------------------------------------------------------------------------
def _centred_gradient(img: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    # img: (B, H, W). Central differences; at the border OpenCV takes half the one-sided
    # difference, which is what replicate padding gives.
    p = F.pad(img[:, None], (1, 1, 1, 1), mode="replicate")[:, 0]
    return 0.5 * (p[:, 1:-1, 2:] - p[:, 1:-1, :-2]), 0.5 * (p[:, 2:, 1:-1] - p[:, :-2, 1:-1])


def _forward_gradient(u: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    # u: (B, H, W). Forward differences, 0 on the last column / row.
    ux = F.pad(u[:, :, 1:] - u[:, :, :-1], (0, 1))
    uy = F.pad(u[:, 1:, :] - u[:, :-1, :], (0, 0, 0, 1))
    return ux, uy


def _divergence(p1: torch.Tensor, p2: torch.Tensor) -> torch.Tensor:
    # Backward differences with p = 0 before the first column / row: the adjoint of
    # _forward_gradient as OpenCV writes it.
    return (p1 - F.pad(p1[:, :, :-1], (1, 0))) + (p2 - F.pad(p2[:, :-1, :], (0, 0, 1, 0)))


def _median_network(m: int) -> list[tuple[int, int]]:
    """Compare-exchanges that bring the median of m values to index m // 2.

    Batcher's odd-even merge sort on the next power of two, without the
    comparators that touch the padding (it would hold +inf and never move)
    and without those the median does not depend on. For m = 25 (a 5 x 5
    window) 150 of the 191 remain: a fixed sequence of min/max, which
    torch.compile turns into one kernel where a sort would not fuse.
    """
    n = 1 << (m - 1).bit_length()
    pairs, p = [], 1
    while p < n:
        k = p
        while k >= 1:
            for j in range(k % p, n - k, 2 * k):
                for i in range(min(k, n - j - k)):
                    if (i + j) // (2 * p) == (i + j + k) // (2 * p):
                        pairs.append((i + j, i + j + k))
            k //= 2
        p *= 2
    need, kept = {m // 2}, []
    for i, j in reversed([(i, j) for i, j in pairs if j < m]):
        if i in need or j in need:
            kept.append((i, j))
            need |= {i, j}
    return kept[::-1]


_NETWORKS = {k: _median_network(k * k) for k in (3, 5)}


def _median(u: torch.Tensor, k: int) -> torch.Tensor:
    # u: (B, H, W); k x k median with replicated borders, as cv2.medianBlur.
    r, (h, w) = k // 2, u.shape[-2:]
    p = F.pad(u[:, None], (r, r, r, r), mode="replicate")[:, 0]
    if k in _NETWORKS:
        v = [p[:, dy:dy + h, dx:dx + w] for dy in range(k) for dx in range(k)]
        for i, j in _NETWORKS[k]:
            v[i], v[j] = torch.minimum(v[i], v[j]), torch.maximum(v[i], v[j])
        return v[(k * k) // 2]
    win = p.unfold(1, k, 1).unfold(2, k, 1)  # (B, H, W, k, k)
    return win.reshape(*u.shape, k * k).median(dim=-1).values


def _resize(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    # x: (B, H, W); bilinear with half-pixel centres and no antialiasing, as cv2.INTER_LINEAR.
    return F.interpolate(x[:, None], size=size, mode="bilinear", align_corners=False)[:, 0]


def _downscale(x: torch.Tensor, factor: float) -> torch.Tensor:
    """cv2.resize(x, None, fx=factor, fy=factor, INTER_LINEAR) on (B, H, W).

    OpenCV rounds the output size but maps coordinates with the exact factor,
    ``src = (dst + 0.5) / factor - 0.5``, clamping at the border; F.interpolate
    would use the ratio of the rounded sizes instead.
    """
    b, h, w = x.shape
    oh, ow = int(round(h * factor)), int(round(w * factor))
    sy = (torch.arange(oh, device=x.device, dtype=x.dtype) + 0.5) / factor - 0.5
    sx = (torch.arange(ow, device=x.device, dtype=x.dtype) + 0.5) / factor - 0.5
    gy = (sy * (2.0 / (h - 1)) - 1.0).view(oh, 1).expand(oh, ow)
    gx = (sx * (2.0 / (w - 1)) - 1.0).view(1, ow).expand(oh, ow)
    grid = torch.stack([gx, gy], dim=-1).expand(b, oh, ow, 2)
    return F.grid_sample(x[:, None], grid, mode="bilinear", padding_mode="border", align_corners=True)[:, 0]


def _warp(images: torch.Tensor, u1: torch.Tensor, u2: torch.Tensor) -> torch.Tensor:
    """Sample ``images`` (B, K, H, W) at x + u: bicubic (a = -0.75, as OpenCV), zero outside."""
    b, _, h, w = images.shape
    ys = torch.arange(h, device=u1.device, dtype=u1.dtype).view(1, h, 1)
    xs = torch.arange(w, device=u1.device, dtype=u1.dtype).view(1, 1, w)
    gx = (xs + u1) * (2.0 / max(w - 1, 1)) - 1.0
    gy = (ys + u2) * (2.0 / max(h - 1, 1)) - 1.0
    grid = torch.stack([gx, gy], dim=-1)  # (B, H, W, 2)
    return F.grid_sample(images, grid, mode="bicubic", padding_mode="zeros", align_corners=True)


def _step(u1, u2, p11, p12, p21, p22, i1wx, i1wy, grad, rho_c, active, l_t: float, taut: float, theta: float,
          epsilon2: float):
    """One primal-dual iteration of every pair whose ``active`` (B,) is set; the others pass through.

    All images (B, H, W). Returns the new (u1, u2, p11, p12, p21, p22) and ``active`` with the pairs
    that met the stopping test (squared update summed over the image <= epsilon2 * H * W) in this
    iteration cleared; their update of this iteration is kept, as OpenCV keeps it. Pure, so that
    torch.compile fuses it into one kernel; the threshold is formed here from the (symbolic) size so
    that one compiled kernel serves every pyramid level.
    """
    # Thresholding step (TH): v = u + d, with d depending on rho(u) against lambda*theta*|grad I1|^2.
    rho = rho_c + i1wx * u1 + i1wy * u2
    fi = torch.where(grad > torch.finfo(grad.dtype).eps, -rho / grad.clamp_min(1e-30), torch.zeros_like(rho))
    coef = torch.where(rho < -l_t * grad, l_t, torch.where(rho > l_t * grad, -l_t, fi))
    n1 = u1 + coef * i1wx + theta * _divergence(p11, p12)
    n2 = u2 + coef * i1wy + theta * _divergence(p21, p22)
    err = ((n1 - u1) ** 2 + (n2 - u2) ** 2).sum(dim=(1, 2))  # (B,)
    eps = epsilon2 * u1.shape[1] * u1.shape[2]
    u1x, u1y = _forward_gradient(n1)
    u2x, u2y = _forward_gradient(n2)
    ng1 = 1.0 + taut * torch.sqrt(u1x * u1x + u1y * u1y)
    ng2 = 1.0 + taut * torch.sqrt(u2x * u2x + u2y * u2y)
    a = active[:, None, None]
    return (torch.where(a, n1, u1), torch.where(a, n2, u2),
            torch.where(a, (p11 + taut * u1x) / ng1, p11), torch.where(a, (p12 + taut * u1y) / ng1, p12),
            torch.where(a, (p21 + taut * u2x) / ng2, p21), torch.where(a, (p22 + taut * u2y) / ng2, p22),
            active & (err > eps))


def _median_active(u: torch.Tensor, active: torch.Tensor, k: int) -> torch.Tensor:
    return torch.where(active[:, None, None], _median(u, k), u)


class _Kernels:
    """The iteration and the median filter: compiled on a GPU (one kernel each), plain tensor code elsewhere.

    ``check_every``: iterations between looks at which pairs have converged. Each look waits for the
    GPU, so there it is 10 (a frozen pair costs less than a wait); on a CPU 1. The result is the same
    for any value (frozen pairs do not move).
    """

    _compiled: dict = {}

    def __init__(self, device: torch.device, compile: bool | None = None, check_every: int | None = None):
        compile = device.type == "cuda" if compile is None else compile
        if compile:
            if not self._compiled:
                self._compiled["step"] = torch.compile(_step, dynamic=True)
                self._compiled["median"] = torch.compile(_median_active, dynamic=True)
            self.step, self.median = self._compiled["step"], self._compiled["median"]
        else:
            self.step, self.median = _step, _median_active
        self.check_every = check_every or (10 if device.type == "cuda" else 1)


def _one_scale(i0, i1, u1, u2, p: TVL1Params, kern: _Kernels):
    """TV-L1 at one pyramid level. i0, i1, u1, u2: (B, H, W); returns the refined (u1, u2)."""
    b = len(i0)
    l_t, taut = p.lambda_ * p.theta, p.tau / p.theta
    i1x, i1y = _centred_gradient(i1)
    dual = [torch.zeros_like(i0) for _ in range(4)]  # p11, p12, p21, p22
    u1, u2 = u1.clone(), u2.clone()
    for _ in range(p.warps):
        i1w, i1wx, i1wy = _warp(torch.stack([i1, i1x, i1y], dim=1), u1, u2).unbind(1)  # each (B, H, W)
        grad = i1wx * i1wx + i1wy * i1wy
        rho_c = i1w - i1wx * u1 - i1wy * u2 - i0
        # The working batch: pairs still iterating at this warp (idx into the whole batch).
        idx = torch.arange(b, device=i0.device)
        s = [u1, u2, *dual, i1wx, i1wy, grad, rho_c]
        active = torch.ones(b, dtype=torch.bool, device=i0.device)
        k = 0
        for _outer in range(p.outer_iterations):
            if p.median > 1:
                s[0], s[1] = kern.median(s[0], active, p.median), kern.median(s[1], active, p.median)
            for inner in range(p.inner_iterations):
                *s[:6], active = kern.step(*s, active, l_t, taut, p.theta, p.epsilon * p.epsilon)
                k += 1
                if k % kern.check_every and inner < p.inner_iterations - 1:
                    continue
                # A converged pair has ended both loops (OpenCV's `error > epsilon` guards both):
                # write it back and go on with the rest of the batch.
                if bool(active.all()):
                    continue
                fin, keep = idx[~active], active
                for full, part in zip((u1, u2, *dual), s[:6]):
                    full[fin] = part[~keep]
                idx, s, active = idx[keep], [v[keep] for v in s], active[keep]
                if len(idx) == 0:
                    break
            if len(idx) == 0:
                break
        for full, part in zip((u1, u2, *dual), s[:6]):
            full[idx] = part
    return u1, u2


def tvl1_torch(i0: torch.Tensor, i1: torch.Tensor, params: TVL1Params = TVL1Params(), compile: bool | None = None,
               check_every: int | None = None) -> torch.Tensor:
    """Batched TV-L1 on tensors: i0, i1 (B, H, W) float in [0, 255] -> flow (B, H, W, 2).

    ``compile``: torch.compile the iteration and the median (default: on a GPU); ``check_every``: see
    :class:`_Kernels`."""
    p, kern = params, _Kernels(i0.device, compile, check_every)
    pyr0, pyr1 = [i0.float()], [i1.float()]
    for _ in range(1, p.scales):
        h, w = pyr0[-1].shape[-2:]
        size = (int(round(h * p.scale_step)), int(round(w * p.scale_step)))
        if min(size) < 16:
            break
        pyr0.append(_downscale(pyr0[-1], p.scale_step))
        pyr1.append(_downscale(pyr1[-1], p.scale_step))
    u1 = torch.zeros_like(pyr0[-1])
    u2 = torch.zeros_like(pyr0[-1])
    for s in range(len(pyr0) - 1, -1, -1):
        u1, u2 = _one_scale(pyr0[s], pyr1[s], u1, u2, p, kern)
        if s:
            size = tuple(pyr0[s - 1].shape[-2:])
            u1, u2 = _resize(u1, size) / p.scale_step, _resize(u2, size) / p.scale_step
    return torch.stack([u1, u2], dim=-1)
