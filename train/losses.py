"""The loss terms, each a function named after its equation.

``g`` is the localisation weight of :class:`train.modules.SelfAttention`,
shape (B, T, r); ``mask`` (B, T) marks real rows.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def classification_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """L_class, Eq. (2): multi-label cross-entropy on video labels.

    Binary cross-entropy per class, summed over classes and averaged over
    videos. Per-class sigmoids (rather than one softmax) are what Eq. (10)
    applies to each row at detection time, so training them directly keeps
    detection consistent with training.
    """
    # logits, targets: (B, C)
    return F.binary_cross_entropy_with_logits(logits, targets, reduction="none").sum(dim=1).mean()


def multi_label_cross_entropy(log_prob: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """−Σ_c ȳ_c log p_c, ȳ the label vector normalised to sum 1; mean over videos.

    log_prob, targets: (B, C). A video without labels has ȳ = 0 and adds 0. UntrimmedNet's Eq. (5) (with the
    minus sign its print lost) and BaS-Net's branch losses.
    """
    y = targets / targets.sum(dim=1, keepdim=True).clamp_min(1e-12)
    return -(y * log_prob).sum(dim=1).mean()


def smoothness(g: torch.Tensor, mask: torch.Tensor, reduction: str = "sum") -> torch.Tensor:
    """R_smooth, Eq. (4): (g_i - g_{i+1})^2 over adjacent real rows, averaged over videos and hops.

    ``reduction="sum"`` is Eq. (4) literally. ``"mean"`` divides each video's
    sum by its number of adjacent pairs, as :func:`sparsity` divides by its
    rows, so alpha means the same for any length; it is the methods' default
    (``--smoothness``). Why: the sum grows with the rows sampled (511 pairs
    at --max-rows 512) and can outweigh what the gates learn from the class
    loss, until the attention learns a constant (docs/studies/attention.md).
    The function's own default stays the literal form, for callers that ask
    for Eq. (4).
    """
    pair = (mask[:, 1:] & mask[:, :-1]).unsqueeze(-1)  # (B, T-1, 1)
    diff2 = (g[:, 1:] - g[:, :-1]).pow(2) * pair  # (B, T-1, r)
    per_video = diff2.sum(dim=1)  # (B, r)
    if reduction == "mean":
        per_video = per_video / pair.sum(dim=1).clamp_min(1)
    return per_video.mean()


def sparsity(g: torch.Tensor, mask: torch.Tensor, keep: float = 0.0, weights: torch.Tensor | None = None) -> torch.Tensor:
    """R_sparsity, Eq. (5): ||g||_1, divided by the number of rows.

    Dividing by n makes one beta fit videos of any length (the paper's sum
    would weigh a 10-minute video forty times a 15-second one).

    ``keep`` > 0 exempts each video's ``keep`` fraction of rows with the
    highest gates (per hop): the L1 sums only the lowest
    ``floor((1 - keep) * n)`` gates, still divided by n (``keep=0`` is Eq. 5).
    Why: with pooling ``a = g / n`` the plain L1 never stops pushing; the
    classifier needs only a few open rows, so on the synthetic set at beta 3
    the gates closed on 80-90% of the action rows and kept isolated spikes
    (median gate 0.00). Exempting the top fraction stops the push on the rows
    the attention ranks highest, so the class loss alone decides how far
    they open, while the floor is still pushed to 0.

    ``weights`` (B,), when given, scales each video's term before the mean.
    """
    m = mask.unsqueeze(-1)  # (B, T, 1)
    n = m.sum(dim=1).clamp_min(1)  # (B, 1)
    if keep <= 0:
        per_video = (g.abs() * m).sum(dim=1) / n  # (B, r)
    else:
        low = g.abs().masked_fill(~m, float("inf")).sort(dim=1).values  # (B, T, r), ascending, padding last
        k = torch.floor((1.0 - keep) * n)  # (B, 1): rows penalised per video
        rank = torch.arange(g.shape[1], device=g.device).view(1, -1, 1)  # (1, T, 1)
        sel = rank < k.unsqueeze(1)  # (B, T, 1)
        per_video = torch.where(sel, low, torch.zeros_like(low)).sum(dim=1) / n  # (B, r)
    if weights is not None:
        per_video = per_video * weights.unsqueeze(-1)
    return per_video.mean()


def self_attention_regulariser(g, mask, alpha: float, beta: float, smooth_reduction: str = "sum", keep: float = 0.0,
                               weights: torch.Tensor | None = None) -> tuple[torch.Tensor, dict]:
    """R_SA = alpha * R_smooth + beta * R_sparsity, Eq. (3); ``weights`` (B,) scale R_sparsity per video."""
    rs, rp = smoothness(g, mask, smooth_reduction), sparsity(g, mask, keep, weights)
    return alpha * rs + beta * rp, {"smooth": rs.detach(), "sparsity": rp.detach()}


def background_loss(logits_bg: torch.Tensor) -> torch.Tensor:
    """L_bg: the complement pool must look like no class (all-zero targets, BCE as L_class).

    ``logits_bg`` (B, C) is the classifier applied to the rows pooled with
    weights ``1 - g`` (normalised to sum to 1). Why it exists: when every row
    of a video shows its class's scene, L_class is met by the scene alone,
    the classifier ignores the action, the gates get the same gradient on
    action and context rows and settle at one value for all (measured on the
    THUMOS-layout benchmark). Asking the left-out rows to carry no class
    makes scene-only evidence useless to the classifier, so it must use what
    only action rows have, and the gates must open on them. The idea is the
    background modelling of Nguyen et al. (ICCV 2019) and BaS-Net (Lee et
    al., AAAI 2020), without their extra background class.
    """
    return F.binary_cross_entropy_with_logits(logits_bg, torch.zeros_like(logits_bg),
                                              reduction="none").sum(dim=1).mean()
