"""AutoLoc's outer-inner contrast (OIC) and the anchor geometry around it (Shou et al., ECCV 2018), as
KT-MGFN's boundary regression module uses them.

An anchor at row i is centred at i + 0.5 with a length from ``scales``; regression values move and stretch it
(:func:`decode`, inverse :func:`encode`). L_OIC contrasts the mean class activation of an inflated outer
margin with that inside (:func:`oic`), read from the CAS's running integral (:func:`cumulative`), so it is
differentiable in the boundaries.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

PW_CLAMP = 4.0  # the log-length regression value is clamped to +-this before exp


def decode(p: torch.Tensor, scales, gamma: float) -> tuple[torch.Tensor, ...]:
    """Anchors + regression values -> inner ``s, e`` and outer ``S, E`` boundaries, in rows (each (..., T, M)).

    p: (..., T, M, 2). Anchor at row i is centred at t_x = i + 0.5 with length t_w (row i covers [i, i+1)).
    """
    t = p.shape[-3]
    tx = torch.arange(t, dtype=p.dtype, device=p.device).unsqueeze(-1) + 0.5  # (T, 1)
    tw = torch.as_tensor(list(scales), dtype=p.dtype, device=p.device)  # (M,)
    rx = tx + tw * p[..., 0]
    rw = tw * torch.exp(p[..., 1].clamp(-PW_CLAMP, PW_CLAMP))
    s, e = rx - rw / 2, rx + rw / 2
    return s, e, s - gamma * rw, e + gamma * rw


def encode(s: torch.Tensor, e: torch.Tensor, scales) -> torch.Tensor:
    """Inverse of :func:`decode`'s inner boundaries: (..., T, M) boundaries -> (..., T, M, 2) p_x, p_w."""
    t = s.shape[-2]
    tx = torch.arange(t, dtype=s.dtype, device=s.device).unsqueeze(-1) + 0.5
    tw = torch.as_tensor(list(scales), dtype=s.dtype, device=s.device)
    rx, rw = (s + e) / 2, e - s
    return torch.stack([(rx - tx) / tw, torch.log(rw / tw)], dim=-1)


def cumulative(cas: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """∫_0^x of the piecewise-constant CAS (row i = cas[i] on [i, i+1)), linear between row bounds.

    cas: (B, T, C), x: (B, N) positions, clipped to [0, T] -> (B, N, C). Differentiable in x and cas.
    """
    b, t, c = cas.shape
    x = x.clamp(0.0, float(t))
    cum = F.pad(cas.cumsum(dim=1), (0, 0, 1, 0))  # (B, T+1, C): cum[i] = Σ_{j<i} cas[j]
    i = x.detach().floor().long().clamp(max=t - 1)  # (B, N)
    frac = (x - i.to(x.dtype)).unsqueeze(-1)  # x = T: i = T-1, frac = 1
    idx = i.unsqueeze(-1).expand(-1, -1, c)
    return cum.gather(1, idx) + frac * cas.gather(1, idx)


def oic(cas: torch.Tensor, s, e, S, E, eps: float = 1e-6) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """AutoLoc's outer-inner contrast for boundaries (B, N) on a CAS (B, T, C): L_OIC and mean inside,
    (B, N, C), and whether the anchor has a contrast at all, (B, N).

    L_OIC = mean CAS over [S, s) ∪ (e, E] − mean CAS over [s, e], boundaries clipped to [0, T]; a margin
    outside the video contributes nothing. An anchor with no outer or no inner length inside the video (one
    covering the whole video, or lying beyond it) has no contrast: it is marked invalid (its loss reads 0).
    """
    t = float(cas.shape[1])
    cs, ce, cS, cE = (v.clamp(0.0, t) for v in (s, e, S, E))
    Is, Ie, IS, IE = (cumulative(cas, v) for v in (cs, ce, cS, cE))
    inner_len = (ce - cs).unsqueeze(-1)
    outer_len = ((cs - cS) + (cE - ce)).unsqueeze(-1)
    valid = (outer_len > eps) & (inner_len > eps)
    inner = (Ie - Is) / inner_len.clamp_min(eps)
    outer = ((Is - IS) + (IE - Ie)) / outer_len.clamp_min(eps)
    return torch.where(valid, outer - inner, torch.zeros_like(inner)), inner, valid.squeeze(-1)


def anchor_oic(cas: torch.Tensor, p: torch.Tensor, scales, gamma: float) -> dict:
    """OIC of every anchor of every position and class: cas (B, T, C), p (B, T, M, 2) -> (B, T, M, C) each."""
    b, t, m, _ = p.shape
    s, e, S, E = (v.reshape(b, t * m) for v in decode(p, scales, gamma))
    loss, inner, valid = oic(cas, s, e, S, E)
    c = cas.shape[-1]
    return {"loss": loss.view(b, t, m, c), "inner": inner.view(b, t, m, c), "valid": valid.view(b, t, m),
            "s": s.view(b, t, m), "e": e.view(b, t, m)}


def select_anchors(loss: torch.Tensor, cas: torch.Tensor, allowed: torch.Tensor, floor: float, ceiling: float,
                   valid: torch.Tensor | None = None):
    """The paper's filtering: per position and class, the best scale; kept where CAS ≥ floor and L_OIC ≤ ceiling.

    loss: (B, T, M, C), cas: (B, T, C), allowed: (B, T, C) bool, valid: (B, T, M) bool (anchors with a
    contrast; None = all) -> best scale (B, T, C) and keep (B, T, C) bool.
    """
    ranked = loss.detach()
    if valid is not None:
        ranked = ranked.masked_fill(~valid.unsqueeze(-1), float("inf"))
    best = ranked.argmin(dim=2)  # (B, T, C)
    best_loss = ranked.gather(2, best.unsqueeze(2)).squeeze(2)  # inf where no scale is valid
    keep = allowed & (cas.detach() >= floor) & (best_loss <= ceiling)
    return best, keep
