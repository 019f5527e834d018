"""TV-L1 optical flow with two backends behind one function.

``tvl1(prev, next, backend="torch"|"opencv")`` takes uint8 grayscale frames
(H, W) or batches (B, H, W) and returns float32 flow (..., H, W, 2) in pixels,
``flow[..., 0]`` horizontal and ``flow[..., 1]`` vertical, such that
``next(x + flow(x)) ≈ prev(x)``, as OpenCV defines it.

- ``opencv``: ``cv2.optflow.DualTVL1OpticalFlow`` from opencv-contrib, the
  implementation the published two-stream features were made with.
- ``torch``: the same algorithm (Zach, Pock & Bischof 2007 with Wedel et al.'s
  median filtering; the iteration structure of Sánchez, Meinhardt-Llopis &
  Facciolo 2013, which OpenCV follows) written on batched tensors, so that a
  GPU solves many frame pairs at once. Each pair keeps its own convergence
  test: a pair that has converged at a warp stops iterating (it is dropped
  from the working batch) while the others go on.

The torch backend follows OpenCV step for step so that the two agree:
images stay in [0, 255]; the pyramid is built by bilinear resizing at
``scale_step`` until a side would fall under 16 px; at each scale the dual
variables restart from 0; each warp resamples I1 and its centred gradient
bicubically (zero outside the image, as ``cv2.remap``'s default border); the
stopping test is ``sum |u_k - u_{k-1}|^2 <= epsilon^2 * H * W``. Known
differences: ``cv2.remap`` quantises sample positions to 1/32 px and
``cv2.resize`` with a scale factor maps coordinates with the exact factor
where torch uses the ratio of the rounded sizes; both are far below the
agreement the tests require.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

BACKENDS = ("torch", "opencv")


@dataclass(frozen=True)
class TVL1Params:
    """TV-L1 parameters; the defaults are OpenCV's (and the issue's)."""

    tau: float = field(default=0.25, metadata={"help": "TV-L1 time step of the primal-dual scheme."})
    lambda_: float = field(default=0.15, metadata={"help": "TV-L1 data-term weight (smaller: smoother flow)."})
    theta: float = field(default=0.3, metadata={"help": "TV-L1 coupling of u and v."})
    scales: int = field(default=5, metadata={"help": "TV-L1 pyramid levels."})
    scale_step: float = field(default=0.8, metadata={"help": "TV-L1 size ratio between pyramid levels."})
    warps: int = field(default=5, metadata={"help": "TV-L1 warps per level."})
    epsilon: float = field(default=0.01, metadata={"help": "TV-L1 stopping threshold."})
    inner_iterations: int = field(default=30, metadata={"help": "TV-L1 iterations per outer iteration."})
    outer_iterations: int = field(default=10, metadata={"help": "TV-L1 outer iterations (median filter between)."})
    median: int = field(default=5, metadata={"help": "TV-L1 median filter size (<= 1: off)."})

    def to_dict(self) -> dict:
        return asdict(self)


def default_backend(device: str | torch.device | None = None) -> str:
    """torch on a GPU, opencv on a CPU (plain-PyTorch TV-L1 is ~10x slower than OpenCV's C++ there)."""
    dev = torch.device(device) if device not in (None, "auto") else None
    if dev is None:
        return "torch" if torch.cuda.is_available() else "opencv"
    return "torch" if dev.type == "cuda" else "opencv"


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
        dev = torch.device("cuda" if torch.cuda.is_available() else "cpu") if device in (None, "auto") else device
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


def _median(u: torch.Tensor, k: int) -> torch.Tensor:
    # u: (B, H, W); k x k median with replicated borders, as cv2.medianBlur.
    r = k // 2
    p = F.pad(u[:, None], (r, r, r, r), mode="replicate")[:, 0]
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


def _one_scale(i0, i1, u1, u2, p: TVL1Params):
    """TV-L1 at one pyramid level. i0, i1, u1, u2: (B, H, W); returns the refined (u1, u2)."""
    b, h, w = i0.shape
    eps = p.epsilon * p.epsilon * h * w
    l_t, taut = p.lambda_ * p.theta, p.tau / p.theta
    i1x, i1y = _centred_gradient(i1)
    dual = torch.zeros(4, b, h, w, device=i0.device, dtype=i0.dtype)  # p11, p12, p21, p22
    u1, u2 = u1.clone(), u2.clone()
    for _ in range(p.warps):
        warped = _warp(torch.stack([i1, i1x, i1y], dim=1), u1, u2)
        i1w, i1wx, i1wy = warped.unbind(1)  # each (B, H, W)
        grad = i1wx * i1wx + i1wy * i1wy
        rho_c = i1w - i1wx * u1 - i1wy * u2 - i0
        # The working batch: pairs still iterating at this warp.
        idx = torch.arange(b, device=i0.device)
        s = dict(u1=u1, u2=u2, dual=dual, i1wx=i1wx, i1wy=i1wy, grad=grad, rho_c=rho_c)
        for _outer in range(p.outer_iterations):
            if len(idx) == 0:
                break
            if p.median > 1:
                s["u1"], s["u2"] = _median(s["u1"], p.median), _median(s["u2"], p.median)
            for _inner in range(p.inner_iterations):
                done = _iterate(s, l_t, taut, p.theta, eps)
                if bool(done.any()):
                    # A converged pair ends both loops (OpenCV's `error > epsilon` guards
                    # both): write it back and go on with the rest of the batch.
                    fin = idx[done]
                    u1[fin], u2[fin], dual[:, fin] = s["u1"][done], s["u2"][done], s["dual"][:, done]
                    keep = ~done
                    idx = idx[keep]
                    s = {k: (v[:, keep] if k == "dual" else v[keep]) for k, v in s.items()}
                    if len(idx) == 0:
                        break
        if len(idx):
            u1[idx], u2[idx], dual[:, idx] = s["u1"], s["u2"], s["dual"]
    return u1, u2


def _iterate(s: dict, l_t: float, taut: float, theta: float, eps: float) -> torch.Tensor:
    """One primal-dual iteration on the working batch, in place in ``s``; returns converged (B,)."""
    u1, u2, i1wx, i1wy, grad = s["u1"], s["u2"], s["i1wx"], s["i1wy"], s["grad"]
    # Thresholding step (TH): v = u + d, with d depending on rho(u) against lambda*theta*|grad I1|^2.
    rho = s["rho_c"] + i1wx * u1 + i1wy * u2
    lo, hi = rho < -l_t * grad, rho > l_t * grad
    fi = torch.where(grad > torch.finfo(grad.dtype).eps, -rho / grad.clamp_min(1e-30), torch.zeros_like(rho))
    coef = torch.where(lo, torch.full_like(rho, l_t), torch.where(hi, torch.full_like(rho, -l_t), fi))
    v1, v2 = u1 + coef * i1wx, u2 + coef * i1wy
    p11, p12, p21, p22 = s["dual"].unbind(0)
    n1 = v1 + theta * _divergence(p11, p12)
    n2 = v2 + theta * _divergence(p21, p22)
    err = ((n1 - u1) ** 2 + (n2 - u2) ** 2).sum(dim=(1, 2))  # (B,)
    u1x, u1y = _forward_gradient(n1)
    u2x, u2y = _forward_gradient(n2)
    ng1 = 1.0 + taut * torch.hypot(u1x, u1y)
    ng2 = 1.0 + taut * torch.hypot(u2x, u2y)
    s["dual"] = torch.stack([(p11 + taut * u1x) / ng1, (p12 + taut * u1y) / ng1,
                             (p21 + taut * u2x) / ng2, (p22 + taut * u2y) / ng2])
    s["u1"], s["u2"] = n1, n2
    return err <= eps


def tvl1_torch(i0: torch.Tensor, i1: torch.Tensor, params: TVL1Params = TVL1Params()) -> torch.Tensor:
    """Batched TV-L1 on tensors: i0, i1 (B, H, W) float in [0, 255] -> flow (B, H, W, 2)."""
    p = params
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
        u1, u2 = _one_scale(pyr0[s], pyr1[s], u1, u2, p)
        if s:
            size = tuple(pyr0[s - 1].shape[-2:])
            u1, u2 = _resize(u1, size) / p.scale_step, _resize(u2, size) / p.scale_step
    return torch.stack([u1, u2], dim=-1)
