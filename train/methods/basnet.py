"""BaS-Net, Background Suppression Network (Lee, Uh and Byun, AAAI 2020), on cached features.

The streams are read as one sequence, ``X = [X_rgb, X_flow]`` (B, T, D), D
both widths together (2,048 on I3D), as the paper concatenates them; its
scores are reported under the key ``fused``. Equation numbers follow the
arXiv version (1911.09963), not checked against its PDF here (no access);
the settings are the authors' released code's, read for this (none of it is
copied). docs/methods/basnet.md gives each setting with the code's value
and what is done here.

- **CAS module** f_conv (Eq. 1), shared by both branches: two temporal
  convolutions (kernel 3, LeakyReLU), dropout, and a kernel-1 convolution
  without bias to C + 1 outputs, the last being background: the class
  activation sequence A (B, T, C + 1). The layer count, LeakyReLU, the
  missing bias and dropout 0.7 are the authors' code's; its width is that
  of the input (2,048 -> 2,048 in the code), here ``--hidden-dim`` with 0
  meaning the input's width.
- **Video score** (Eqs. 2-3): per class the mean of its k = max(1, T // r)
  highest rows (r = 8), softmax over the C + 1 classes.
- **Base branch**: f_conv on X; its label is the video's classes plus
  background = 1 (every untrimmed video has background rows).
- **Suppression branch**: the filtering module f_filter (Eq. 5: a conv D ->
  512, LeakyReLU, a conv 512 -> 1, sigmoid; both kernel 1 in the code) gives
  foreground weights W (B, T) in [0, 1]; f_conv on X ⊙ W (Eq. 6); its label
  is the video's classes with background = 0, so W must close on the
  background rows.
- **Loss** (Eqs. 4, 7-9): L_base + L_supp + ``--norm-weight`` · L_norm. The
  branch losses are the cross-entropy against the label normalised to sum 1
  (``--class-loss ce``, the paper's); the code applies ``nn.BCELoss`` to the
  softmax scores instead (``--class-loss bce``). L_norm is the L1 norm of W
  taken as its mean over the real rows (one weight for any T); the code
  sums over its 750 rows with weight 1e-4, so the default 0.075 = 750 x 1e-4
  puts the same pressure on each row.
- **Training rows**: T = 750 uniform strata with random perturbation
  (``Strata``), the code's sampling; a shorter video is read whole, where
  the code repeats rows up to 750 (the top-k fraction, 1/r, is the same).

Localisation, through the shared post-processing, with the authors' code's
numbers (the paper describes the steps): classes whose suppression-branch
video score reaches 0.25; that branch's CAS of the class (logits), min-max
normalised per video (``--scale video``), thresholded at 0, 0.025, ...,
0.225 and the runs of all thresholds pooled; each run scored by its
outer-inner contrast on the same normalised CAS (a quarter of its length each
side) plus 0.2 x the video score (``--score contrast+video``); NMS at tIoU 0.7
per class. One departure from the code: it clamps the minimum and maximum
at 0 before normalising (``--scale clamped``), which ties the thresholds to
logit 0; the softmax of Eq. 3 does not change when one constant is added to
all of a video's logits, so the loss does not fix where 0 lies (on the
planted-action set, seed 0: mAP@0.5 25.2 clamped, 80.4 min-max). Other
details of the code (it interpolates the CAS 24x before thresholding, reads
the outer area with the rows below the current threshold set to 0, and adds
0.2 x the *binarised* video score, a constant) and what is done here:
docs/methods/basnet.md.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from tsrnet.data.format.batching import Strata
from tsrnet.data.core.settings import opt
from tsrnet.detect.localize import Evidence, Source, threshold_level

from ..losses import multi_label_cross_entropy
from ..modules import top_k_mean
from .base import (ACTIVITYNET13_TIOU, THUMOS14_TIOU, Method, MethodModule, float32_loss, published_row, register,
                   to_float32)

KEY = "fused"  # the one sequence (both streams concatenated): the key of its rows and video scores


@dataclass
class BaSNetOptions:
    hidden_dim: int = opt(0, "Width of the CAS module's two temporal convolutions; 0 = the width of its input, both "
                          "streams together (2,048 -> 2,048 on I3D features, the authors' code).")
    kernel: int = opt(3, "Kernel size of the CAS module's temporal convolutions (odd; the authors' code: 3).")
    filter_dim: int = opt(512, "Hidden width of the filtering module (the authors' code: 512).")
    filter_kernel: int = opt(1, "Kernel size of the filtering module's first convolution (odd; the authors' code: 1, "
                             "a layer applied to each row alone).")
    dropout: float = opt(0.7, "Dropout before the CAS module's classifier (the authors' code: 0.7).")
    topk_ratio: int = opt(8, "r of Eq. 2: a class's video score is the mean of its k = max(1, T // r) highest CAS rows "
                          "(the authors' code: 8).")
    norm_weight: float = opt(0.075, "Weight of L_norm, the L1 norm of the foreground weights taken as their mean over "
                             "rows: 0.075 = the authors' 1e-4 on the sum over their 750 rows.")
    class_loss: str = opt("ce", "Each branch's class loss against its label normalised to sum 1: 'ce' = cross-entropy "
                          "(the paper's Eqs. 4 and 7); 'bce' = binary cross-entropy of the softmax scores, averaged "
                          "over the C + 1 classes (the authors' code).", choices=("ce", "bce"))
    max_rows: int = opt(750, "Rows sampled per training video: T = 750 uniform strata with random perturbation (the "
                        "authors'; 0 = all rows); a shorter video is read whole.")


def _odd(kernel: int, what: str) -> int:
    if kernel < 1 or kernel % 2 != 1:
        raise ValueError(f"{what} {kernel} must be odd and positive")
    return kernel


class CASModule(nn.Module):
    """f_conv, Eq. (1): features (B, T, D) -> class activation sequence (B, T, C + 1); both branches share it."""

    def __init__(self, dim: int, width: int, n_out: int, kernel: int, dropout: float):
        super().__init__()
        pad = _odd(kernel, "kernel") // 2
        self.convs = nn.ModuleList([nn.Conv1d(dim, width, kernel, padding=pad),
                                    nn.Conv1d(width, width, kernel, padding=pad)])
        self.drop = nn.Dropout(dropout)
        self.classifier = nn.Conv1d(width, n_out, 1, bias=False)  # the code's last layer has no bias

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        # x: (B, T, D), mask: (B, T)
        m = mask.unsqueeze(1).to(x.dtype)  # (B, 1, T)
        h = x.transpose(1, 2) * m  # (B, D, T)
        for conv in self.convs:
            # Zero beyond each video's rows after every layer, so its last rows read zeros, as zero padding gives
            # a video alone, and never the padding's activations (a conv's bias fills them).
            h = F.leaky_relu(conv(h)) * m  # (B, W, T)
        return self.classifier(self.drop(h)).transpose(1, 2)  # (B, T, C + 1)


class FilteringModule(nn.Module):
    """f_filter, Eq. (5): features (B, T, D) -> foreground weights (B, T) in [0, 1], 0 beyond each video."""

    def __init__(self, dim: int, hidden: int, kernel: int):
        super().__init__()
        self.conv1 = nn.Conv1d(dim, hidden, _odd(kernel, "filter kernel"), padding=kernel // 2)
        self.conv2 = nn.Conv1d(hidden, 1, 1)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        # x: (B, T, D), mask: (B, T)
        m = mask.unsqueeze(1).to(x.dtype)  # (B, 1, T)
        h = F.leaky_relu(self.conv1(x.transpose(1, 2) * m)) * m  # (B, hidden, T)
        return torch.sigmoid(self.conv2(h)).squeeze(1) * mask  # (B, T)


def video_scores(cas: torch.Tensor, mask: torch.Tensor, r: int) -> torch.Tensor:
    """Eq. (2): per class the mean of its k = max(1, n // r) highest rows of the video's n real rows.

    cas: (B, T, C + 1), mask: (B, T) -> (B, C + 1) logits, to which Eq. (3) applies the softmax.
    """
    k = (mask.sum(dim=1) // r).clamp_min(1)  # (B,)
    return top_k_mean(cas, mask, k)


def branch_labels(targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The two branches' labels (B, C + 1), normalised to sum 1: the base branch's with background = 1, the
    suppression branch's with background = 0 (targets: (B, C) multi-hot)."""
    ones, zeros = targets.new_ones(len(targets), 1), targets.new_zeros(len(targets), 1)
    base, supp = torch.cat([targets, ones], dim=1), torch.cat([targets, zeros], dim=1)
    return (base / base.sum(dim=1, keepdim=True).clamp_min(1e-12),
            supp / supp.sum(dim=1, keepdim=True).clamp_min(1e-12))


def branch_loss(scores: torch.Tensor, label: torch.Tensor, kind: str) -> torch.Tensor:
    """One branch's class loss, Eq. (4) / (7): video logits (B, C + 1) against a label (B, C + 1) summing to 1.

    ``ce``: −Σ_c y_c log p_c, p = softmax(scores), mean over videos (the paper). ``bce``: the binary
    cross-entropy of p against y, mean over videos and classes (the code's ``nn.BCELoss`` on the softmax).
    """
    if kind == "ce":
        return multi_label_cross_entropy(torch.log_softmax(scores, dim=1), label)
    return F.binary_cross_entropy(torch.softmax(scores, dim=1), label)


def l1_norm(weights: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """L_norm, Eq. (9): ||W||_1 of each video divided by its rows, mean over videos. weights, mask: (B, T)."""
    return ((weights * mask).sum(dim=1) / mask.sum(dim=1).clamp_min(1)).mean()


class BaSNetModel(MethodModule):
    def __init__(self, streams, dim: int, classes, opts: BaSNetOptions):
        super().__init__(streams, classes)
        in_dim = dim * len(self.streams)
        self.r = opts.topk_ratio
        if self.r < 1:
            raise ValueError(f"topk_ratio {self.r} must be >= 1")
        self.cas = CASModule(in_dim, opts.hidden_dim or in_dim, len(classes) + 1, opts.kernel, opts.dropout)
        self.filter = FilteringModule(in_dim, opts.filter_dim, opts.filter_kernel)

    @property
    def outputs(self) -> tuple:
        return (KEY,)

    def forward(self, x: dict, mask: torch.Tensor) -> dict:
        """Both branches: CAS (B, T, C + 1) and video logits (B, C + 1) of each, foreground weights (B, T)."""
        seq = torch.cat([x[s] for s in self.streams], dim=-1)  # (B, T, D)
        w = self.filter(seq, mask)  # (B, T), Eq. 5
        cas_base = self.cas(seq, mask)  # base branch, Eq. 1
        cas_supp = self.cas(seq * w.unsqueeze(-1), mask)  # suppression branch: X ⊙ W (Eq. 6), the same f_conv
        return {"cas_base": cas_base, "cas_supp": cas_supp, "weights": w,
                "video_base": video_scores(cas_base, mask, self.r), "video_supp": video_scores(cas_supp, mask, self.r)}

    @torch.no_grad()
    def score(self, x: dict, mask: torch.Tensor) -> dict:
        """Rows under one key (``fused``): the suppression branch's CAS ``cas`` (B, T, C), the base branch's
        ``cas_base`` (B, T, C), both logits of the action classes, and the foreground weights ``attention``
        (B, T); video probabilities: the suppression branch's softmax over C + 1, the C action classes."""
        o = self(x, mask)
        c = len(self.classes)
        rows = {"cas": o["cas_supp"][..., :c], "cas_base": o["cas_base"][..., :c], "attention": o["weights"]}
        return {"rows": {KEY: rows}, "video_prob": {KEY: torch.softmax(o["video_supp"], dim=1)[:, :c]}}


@register
class BaSNet(Method):
    name = "basnet"
    description = "BaS-Net: background class + filtered suppression branch, OIC proposals (Lee et al., AAAI 2020)"
    Options = BaSNetOptions
    # The authors' code: classes whose video score reaches 0.25; thresholds np.arange(0, 0.25, 0.025) on the
    # normalised CAS; outer-inner contrast + 0.2 x video score; NMS 0.7. It keeps runs of any length (it thresholds
    # the CAS interpolated 24x, so one row is 24 positions): min_rows 1. It normalises with the minimum and
    # maximum clamped at 0 (scale "clamped"); here plain min-max ("video"): the softmax over classes (Eq. 3) does
    # not change when one constant is added to all of a video's logits, so the loss does not fix the logits' zero,
    # where the clamp puts every threshold (module docstring; docs/methods/basnet.md).
    detect_defaults = dict(threshold=[round(0.025 * i, 3) for i in range(10)], scale="video", class_threshold=0.25,
                           score="contrast+video", nms=0.7, min_rows=1)  # the rest: DetectConfig's
    published = {
        "thumos14": {"basnet": published_row(THUMOS14_TIOU, (58.2, 52.3, 44.6, 36.0, 27.0, 18.6, 10.4, 3.9, 0.5),
                                             "I3D", "BaS-Net, THUMOS14 table")},
        "activitynet13": {"basnet": published_row(ACTIVITYNET13_TIOU, (34.5, 22.5, 4.9), "I3D",
                                                  "BaS-Net, ActivityNet 1.3 table")},
    }

    # Mean foreground weight below which the filter has closed on every row (the suppression branch then sees
    # nothing), or above which it has opened on every row (it suppresses nothing: the branch is the base one).
    CLOSED, OPEN = 0.01, 0.99

    def build(self, streams, dim, classes):
        return BaSNetModel(streams, dim, classes, self.options)

    def sampler(self):
        return Strata(self.options.max_rows)

    def diagnose(self, history):
        last = next((r for r in reversed(history) if r.get("stage") == "main"), {})
        w = last.get("norm")
        if w is None:
            return []
        if w < self.CLOSED:
            return [f"the filtering module closed on every row (mean foreground weight {w:.2g} in the last epoch): "
                    "the suppression branch sees nothing and localisation fails; train with a lower --norm-weight"]
        if w > self.OPEN:
            return [f"the filtering module is open on every row (mean foreground weight {w:.3f} in the last epoch): "
                    "it suppresses no background, and the suppression branch's CAS is the base branch's"]
        return []

    def loss(self, model, batch, stage):
        out = model(batch.x, batch.mask)
        # Under bf16 autocast (--precision bf16) the terms still run in float32 on float32 outputs.
        with float32_loss(batch.mask.device):
            out = to_float32(out)
            y_base, y_supp = branch_labels(batch.targets)
            kind = self.options.class_loss
            lb = branch_loss(out["video_base"], y_base, kind)  # Eq. 4
            ls = branch_loss(out["video_supp"], y_supp, kind)  # Eq. 7
            ln = l1_norm(out["weights"], batch.mask)  # Eq. 9
            total = lb + ls + self.options.norm_weight * ln  # Eq. 8, α = β = 1
        return total, {"class_base": lb.detach(), "class_supp": ls.detach(), "norm": ln.detach()}

    def evidence(self, vs, cfg):
        """The suppression branch's CAS is thresholded; intervals are scored on it as the threshold saw it."""
        r = vs.rows[KEY]
        cas = r["cas"]  # (T, C) logits
        # The code scores a proposal on the normalised CAS it thresholds (not on the logits), so the contrast is
        # on one scale in every video, and the video score alone ranks videos' best proposals against each other.
        seen = np.stack([threshold_level(cas[:, c], cfg.scale) for c in range(cas.shape[1])], axis=1)
        label = f"suppression-branch CAS ({cfg.scale} scale)"
        return Evidence(vs.video_prob[KEY], [Source(level=cas, evidence=seen)], seen, label)
