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


def smoothness(g: torch.Tensor, mask: torch.Tensor, reduction: str = "sum") -> torch.Tensor:
    """R_smooth, Eq. (4): (g_i - g_{i+1})^2 over adjacent real rows, averaged over videos and hops.

    ``reduction="sum"`` is Eq. (4) literally. ``"mean"`` divides each video's
    sum by its number of adjacent pairs, as :func:`sparsity` divides by its
    rows, so alpha means the same for any length. Why both: the sum grows
    with the rows sampled (511 pairs at --max-rows 512); at alpha 0.5 on the
    THUMOS-layout benchmark it outweighed what the gates learn from the class
    loss and the attention learned a constant (its output weights shrank to a
    third of their initial norm; gates 0.89 on action rows and 0.89
    elsewhere). The mean at alpha 0.5 is some 500 times weaker: with beta 3
    it separates action from context there, but on the synthetic set the
    gates turned spiky and detections fragmented. The right weight between
    the two is not settled, so the literal form stays the default.
    """
    pair = (mask[:, 1:] & mask[:, :-1]).unsqueeze(-1)  # (B, T-1, 1)
    diff2 = (g[:, 1:] - g[:, :-1]).pow(2) * pair  # (B, T-1, r)
    per_video = diff2.sum(dim=1)  # (B, r)
    if reduction == "mean":
        per_video = per_video / pair.sum(dim=1).clamp_min(1)
    return per_video.mean()


def sparsity(g: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """R_sparsity, Eq. (5): ||g||_1, divided by the number of rows.

    Dividing by n makes one beta fit videos of any length (the paper's sum
    would weigh a 10-minute video forty times a 15-second one).
    """
    m = mask.unsqueeze(-1)  # (B, T, 1)
    n = m.sum(dim=1).clamp_min(1)  # (B, 1)
    return ((g.abs() * m).sum(dim=1) / n).mean()


def self_attention_regulariser(g, mask, alpha: float, beta: float,
                               smooth_reduction: str = "sum") -> tuple[torch.Tensor, dict]:
    """R_SA = alpha * R_smooth + beta * R_sparsity, Eq. (3)."""
    rs, rp = smoothness(g, mask, smooth_reduction), sparsity(g, mask)
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
